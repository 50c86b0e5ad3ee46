//! A depot's call-ahead settings (`CallAheadSettings`, JSON in
//! `depots.call_ahead`; `NULL`: the defaults).

use super::{Db, StoreError, WriteTx};
use callahead_core::wire::CallAheadSettings;
use callahead_core::{CourierId, DepotId};
use rusqlite::params;

fn parse(raw: Option<String>) -> Result<CallAheadSettings, StoreError> {
    Ok(raw.map(|json| serde_json::from_str(&json)).transpose()?.unwrap_or_default())
}

/// `None` when the depot does not exist.
pub fn of_depot(db: &Db, depot: DepotId) -> Result<Option<CallAheadSettings>, StoreError> {
    let raw: Option<Option<String>> =
        db.opt("SELECT call_ahead FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))?;
    raw.map(parse).transpose()
}

/// The settings of the courier's depot (the defaults for an unknown courier).
pub fn of_courier(db: &Db, courier: CourierId) -> Result<CallAheadSettings, StoreError> {
    let raw: Option<Option<String>> = db.opt(
        "SELECT d.call_ahead FROM couriers c JOIN depots d ON d.id = c.depot_id WHERE c.id = ?1",
        params![courier.0],
        |r| r.get(0),
    )?;
    parse(raw.flatten())
}

/// False when the depot does not exist.
pub fn save(tx: &WriteTx<'_>, depot: DepotId, settings: &CallAheadSettings) -> Result<bool, StoreError> {
    let json = serde_json::to_string(settings)?;
    Ok(tx.exec("UPDATE depots SET call_ahead = ?1 WHERE id = ?2", params![json, depot.0])? == 1)
}
