//! Depots, their settings, and the people who work in them (couriers,
//! supervisors). Tokens are in [`super::tokens`]; the reads in
//! [`super::queries`].

use super::queries::hours_to_sql;
use super::{ms, StoreError, WriteTx};
use callahead_core::ids::SupervisorId;
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::TemplateSet;
use callahead_core::wire::PickupPoint;
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// Stores a new depot; its id.
pub fn insert_depot(
    tx: &WriteTx<'_>,
    name: &str,
    time_zone: &str,
    policy: &AttemptPolicy,
    at: DateTime<Utc>,
) -> Result<DepotId, StoreError> {
    tx.db().one(
        "INSERT INTO depots (name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at,
           calling_hours, stop_at_window_start, min_heard_secs, machine_detection, retry_at_best_hour)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
        params![
            name,
            time_zone,
            policy.max_attempts,
            policy.retry_spacing_secs,
            policy.ring_timeout_secs,
            ms(at),
            hours_to_sql(&policy.calling_hours)?,
            policy.stop_at_window_start,
            policy.min_heard_secs,
            policy.machine_detection,
            policy.retry_at_best_hour
        ],
        |r| r.get(0).map(DepotId),
    )
}

/// Saves the depot's templates; `false` if there is no such depot.
pub fn set_templates(tx: &WriteTx<'_>, depot: DepotId, set: &TemplateSet) -> Result<bool, StoreError> {
    let json = serde_json::to_string(set)?;
    Ok(tx.exec("UPDATE depots SET templates = ?1 WHERE id = ?2", params![json, depot.0])? > 0)
}

/// Saves the depot's pickup points (none: back to none); `false` if there
/// is no such depot.
pub fn set_pickup_points(
    tx: &WriteTx<'_>,
    depot: DepotId,
    points: &[PickupPoint],
) -> Result<bool, StoreError> {
    let json = (!points.is_empty()).then(|| serde_json::to_string(points)).transpose()?;
    Ok(tx.exec("UPDATE depots SET pickup_points = ?1 WHERE id = ?2", params![json, depot.0])? > 0)
}

/// Stores a new courier of `depot`; their id.
pub fn insert_courier(
    tx: &WriteTx<'_>,
    depot: DepotId,
    name: &str,
    phone: &str,
    at: DateTime<Utc>,
) -> Result<CourierId, StoreError> {
    tx.db().one(
        "INSERT INTO couriers (depot_id, name, phone, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![depot.0, name, phone, ms(at)],
        |r| r.get(0).map(CourierId),
    )
}

/// Stores a new supervisor of `depot`; their id.
pub fn insert_supervisor(
    tx: &WriteTx<'_>,
    depot: DepotId,
    name: &str,
    at: DateTime<Utc>,
) -> Result<SupervisorId, StoreError> {
    tx.db().one(
        "INSERT INTO supervisors (depot_id, name, created_at) VALUES (?1, ?2, ?3) RETURNING id",
        params![depot.0, name, ms(at)],
        |r| r.get(0).map(SupervisorId),
    )
}
