//! Couriers' last logged positions (`courier_positions`): what the
//! dashboard's snapshot shows, and what throttles the log (docs/dashboard.md).

use super::{from_ms, ms, Db, StoreError, WriteTx};
use callahead_core::wire::{CourierPosition, Degrees, PositionReport};
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::collections::HashMap;

/// When the courier's last position was logged (server domain time).
pub fn last_logged(db: &Db, courier: CourierId) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> =
        db.opt("SELECT logged_at FROM courier_positions WHERE courier_id = ?1", params![courier.0], |r| {
            r.get(0)
        })?;
    Ok(at.map(from_ms).transpose()?)
}

pub fn save(
    tx: &WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    report: &PositionReport,
    logged_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO courier_positions (courier_id, depot_id, lat, lon, reported_at, logged_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (courier_id) DO UPDATE SET depot_id = excluded.depot_id, lat = excluded.lat,
           lon = excluded.lon, reported_at = excluded.reported_at, logged_at = excluded.logged_at",
        params![courier.0, depot.0, report.lat.0, report.lon.0, ms(report.at), ms(logged_at)],
    )?;
    Ok(())
}

/// The depot's couriers' last positions.
pub fn of_depot(db: &Db, depot: DepotId) -> Result<HashMap<CourierId, CourierPosition>, StoreError> {
    let rows = db.all(
        "SELECT courier_id, lat, lon, reported_at FROM courier_positions WHERE depot_id = ?1",
        params![depot.0],
        |r| {
            Ok::<_, rusqlite::Error>((
                CourierId(r.get(0)?),
                CourierPosition {
                    lat: Degrees(r.get(1)?),
                    lon: Degrees(r.get(2)?),
                    reported_at: from_ms(r.get(3)?)?,
                },
            ))
        },
    )?;
    Ok(rows.into_iter().collect())
}
