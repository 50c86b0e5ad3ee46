//! Rows the unit tests of the modules outside `store/` start from, and the
//! raw state they check: kept here so no SQL lives outside the seam. The
//! database chooses the ids (docs/adr/0009: an explicit id would leave a
//! PostgreSQL identity behind, and the next default id would collide); on
//! a fresh database the first depot, courier, stop and call are 1.

use super::{ms, Db, Dialect, StoreError, WriteTx};
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::{params, ToSql};

/// A depot (Europe/Moscow, 3 attempts 600 s apart, 30 s rings) named
/// `depot_name` and its courier Ivan, and nothing else.
fn depot_and_courier(tx: &WriteTx<'_>, depot_name: &str) -> Result<(DepotId, CourierId), StoreError> {
    let depot: i64 = tx.db().one(
        "INSERT INTO depots (name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at)
           VALUES (?1, 'Europe/Moscow', 3, 600, 30, 0) RETURNING id",
        params![depot_name],
        |r| r.get(0),
    )?;
    let courier: i64 = tx.db().one(
        "INSERT INTO couriers (depot_id, name, phone, created_at) VALUES (?1, 'Ivan', '+79990000001', 0)
         RETURNING id",
        params![depot],
        |r| r.get(0),
    )?;
    Ok((DepotId(depot), CourierId(courier)))
}

/// Depot "North", its courier, a stop (Anna, window 00:00–01:00 UTC 1970)
/// and its call (`key-12345`), scheduled and due at `due`: the call's id.
pub fn one_due_call(tx: &WriteTx<'_>, due: DateTime<Utc>) -> Result<CallId, StoreError> {
    let (depot, courier) = depot_and_courier(tx, "North")?;
    let stop: i64 = tx.db().one(
        "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name,
           phone, time_zone, address, window_start, window_end, order_numbers)
         VALUES (?1, ?2, '2027-01-15', 0, 'o1', 'Anna', '+79160000001', 'Europe/Moscow', 'Lenina 1',
           0, 3600000, '[]')
         RETURNING id",
        params![courier.0, depot.0],
        |r| r.get(0),
    )?;
    let call: i64 = tx.db().one(
        "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
           retry_spacing_secs, ring_timeout_secs, next_action_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'key-12345', 'scheduled', 3, 600, 30, ?4, ?4, ?4)
         RETURNING id",
        params![courier.0, depot.0, stop, ms(due)],
        |r| r.get(0),
    )?;
    Ok(CallId(call))
}

/// Depot "FastBox", its courier, a stop (Anna, English, order 1001, window
/// `start`–`end`) and its call, finished `reschedule_requested`: the call's
/// id.
pub fn reschedule_requested(
    tx: &WriteTx<'_>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<CallId, StoreError> {
    let (depot, courier) = depot_and_courier(tx, "FastBox")?;
    let stop: i64 = tx.db().one(
        "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name,
           phone, time_zone, address, window_start, window_end, order_numbers, language)
         VALUES (?1, ?2, '2027-01-15', 0, 'o1', 'Anna', '+79160000001', 'Europe/Moscow', 'Lenina 1',
           ?3, ?4, '[\"1001\"]', 'en')
         RETURNING id",
        params![courier.0, depot.0, ms(start), ms(end)],
        |r| r.get(0),
    )?;
    let call: i64 = tx.db().one(
        "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, outcome,
           max_attempts, retry_spacing_secs, ring_timeout_secs, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'key-1', 'finished', 'reschedule_requested', 3, 600, 30, 0, 0)
         RETURNING id",
        params![courier.0, depot.0, stop],
        |r| r.get(0),
    )?;
    Ok(CallId(call))
}

/// Depot "North" (Europe/Moscow) and its courier, for calls added with
/// [`stop_and_call`].
pub fn depot(tx: &WriteTx<'_>) -> Result<(DepotId, CourierId), StoreError> {
    depot_and_courier(tx, "North")
}

/// A stop of courier 1 in depot 1 (customer `phone`, Moscow, window
/// `window`, position `n`, order `o{n}`) and its call `key-{n}`, due at
/// `due`: `max_attempts` attempts 15 minutes apart, the default calling
/// hours, no retry once the window starts, retries at the best hour if
/// `best_hour`. Their ids: on SQLite both are `n` (the tests outside
/// `store/` name them so; SQLite's AUTOINCREMENT moves past an explicit
/// id), on PostgreSQL the database chooses them.
pub fn stop_and_call(
    tx: &WriteTx<'_>,
    n: i64,
    phone: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    due: DateTime<Utc>,
    max_attempts: u32,
    best_hour: bool,
) -> Result<(StopId, CallId), StoreError> {
    let explicit = tx.db().dialect() == Dialect::Sqlite;
    let (id_col, id_arg) = if explicit { (", id", ", ?6") } else { ("", "") };
    let (order, key) = (format!("o{n}"), format!("key-{n}"));
    let (start, end, due) = (ms(window.0), ms(window.1), ms(due));
    let mut stop_args: Vec<&dyn ToSql> = vec![&n, &order, &phone, &start, &end];
    if explicit {
        stop_args.push(&n);
    }
    let stop: i64 = tx.db().one(
        &format!(
            "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name,
               phone, time_zone, address, window_start, window_end, order_numbers{id_col})
             VALUES (1, 1, '2026-11-23', ?1, ?2, 'Customer', ?3, 'Europe/Moscow', 'Lenina 1', ?4, ?5, '[]'{id_arg})
             RETURNING id"
        ),
        &stop_args,
        |r| r.get(0),
    )?;
    let mut call_args: Vec<&dyn ToSql> = vec![&stop, &key, &max_attempts, &due, &best_hour];
    if explicit {
        call_args.push(&n);
    }
    let call: i64 = tx.db().one(
        &format!(
            "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
               retry_spacing_secs, ring_timeout_secs, next_action_at, created_at, updated_at,
               retry_at_best_hour{id_col})
             VALUES (1, 1, ?1, ?2, 'scheduled', ?3, 900, 30, ?4, ?4, ?4, ?5{id_arg})
             RETURNING id"
        ),
        &call_args,
        |r| r.get(0),
    )?;
    Ok((StopId(stop), CallId(call)))
}

/// What `number_answer_stats` holds, every column as text (a blob as hex),
/// in key order: to check no number is kept in the clear.
pub fn number_stats_rows(db: &Db) -> Result<Vec<String>, StoreError> {
    db.all(
        "SELECT stop_id, hour, depot_id, number_key, attempts, answered FROM number_answer_stats
         ORDER BY stop_id, hour",
        params![],
        |r| {
            let key: Vec<u8> = r.get(3)?;
            let hex: String = key.iter().map(|b| format!("{b:02X}")).collect();
            Ok::<_, rusqlite::Error>(format!(
                "{} {} {} {hex} {} {}",
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?
            ))
        },
    )
}

/// The one message's `(state, channel, cost)` and its sends as `(channel,
/// result, cost)`, in step order.
#[allow(clippy::type_complexity)]
pub fn the_message(
    db: &Db,
) -> Result<((String, Option<String>, i64), Vec<(String, String, i64)>), StoreError> {
    let m = db.one("SELECT state, channel, cost_minor FROM messages", params![], |r| {
        Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    let sends =
        db.all("SELECT channel, result, cost_minor FROM message_sends ORDER BY step", params![], |r| {
            Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok((m, sends))
}

/// Every event's kind as stored (JSON), in log order.
pub fn event_kinds(db: &Db) -> Result<Vec<String>, StoreError> {
    db.all("SELECT kind FROM events ORDER BY seq", params![], |r| r.get(0))
}
