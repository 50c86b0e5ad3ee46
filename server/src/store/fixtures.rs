//! Rows the unit tests of the modules outside `store/` start from, and the
//! raw state they check: kept here so no SQL lives outside the seam.

use super::{ms, Db, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// Depot 1 (Europe/Moscow, 3 attempts 600 s apart, 30 s rings), its courier
/// 1 (Ivan), and nothing else.
fn depot_and_courier(tx: &WriteTx<'_>, depot_name: &str) -> Result<(), StoreError> {
    tx.sqlite()?.execute(
        "INSERT INTO depots (id, name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at)
           VALUES (1, ?1, 'Europe/Moscow', 3, 600, 30, 0)",
        [depot_name],
    )?;
    tx.sqlite()?.execute(
        "INSERT INTO couriers (id, depot_id, name, phone, created_at) VALUES (1, 1, 'Ivan', '+79990000001', 0)",
        [],
    )?;
    Ok(())
}

/// Depot "North", courier 1, stop 1 (Anna, window 00:00–01:00 UTC 1970)
/// and call 1 (`key-12345`), scheduled and due at `due`.
pub fn one_due_call(tx: &WriteTx<'_>, due: DateTime<Utc>) -> Result<(), StoreError> {
    depot_and_courier(tx, "North")?;
    tx.sqlite()?.execute(
        "INSERT INTO stops (id, courier_id, depot_id, route_date, position, external_id, customer_name,
           phone, time_zone, address, window_start, window_end, order_numbers)
         VALUES (1, 1, 1, '2027-01-15', 0, 'o1', 'Anna', '+79160000001', 'Europe/Moscow', 'Lenina 1',
           0, 3600000, '[]')",
        [],
    )?;
    tx.sqlite()?.execute(
        "INSERT INTO calls (id, courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
           retry_spacing_secs, ring_timeout_secs, next_action_at, created_at, updated_at)
         VALUES (1, 1, 1, 1, 'key-12345', 'scheduled', 3, 600, 30, ?1, ?1, ?1)",
        [ms(due)],
    )?;
    Ok(())
}

/// Depot "FastBox", courier 1, stop 1 (Anna, English, order 1001, window
/// `start`–`end`) and call 1, finished `reschedule_requested`.
pub fn reschedule_requested(
    tx: &WriteTx<'_>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), StoreError> {
    depot_and_courier(tx, "FastBox")?;
    tx.execute(
        "INSERT INTO stops (id, courier_id, depot_id, route_date, position, external_id, customer_name,
           phone, time_zone, address, window_start, window_end, order_numbers, language)
         VALUES (1, 1, 1, '2027-01-15', 0, 'o1', 'Anna', '+79160000001', 'Europe/Moscow', 'Lenina 1',
           ?1, ?2, '[\"1001\"]', 'en')",
        params![ms(start), ms(end)],
    )?;
    tx.execute(
        "INSERT INTO calls (id, courier_id, depot_id, stop_id, idempotency_key, status, outcome,
           max_attempts, retry_spacing_secs, ring_timeout_secs, created_at, updated_at)
         VALUES (1, 1, 1, 1, 'key-1', 'finished', 'reschedule_requested', 3, 600, 30, 0, 0)",
        [],
    )?;
    Ok(())
}

/// Depot 1 "North" (Europe/Moscow) and its courier 1, for calls added with
/// [`stop_and_call`].
pub fn depot(tx: &WriteTx<'_>) -> Result<(), StoreError> {
    depot_and_courier(tx, "North")
}

/// Stop `n` of courier 1 (customer `phone`, Moscow, window `window`) and
/// call `n` for it, due at `due`: `max_attempts` attempts 15 minutes apart,
/// the default calling hours, no retry once the window starts, retries at
/// the best hour if `best_hour`.
pub fn stop_and_call(
    tx: &WriteTx<'_>,
    n: i64,
    phone: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    due: DateTime<Utc>,
    max_attempts: u32,
    best_hour: bool,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO stops (id, courier_id, depot_id, route_date, position, external_id, customer_name,
           phone, time_zone, address, window_start, window_end, order_numbers)
         VALUES (?1, 1, 1, '2026-11-23', ?1, 'o' || ?1, 'Customer', ?2, 'Europe/Moscow', 'Lenina 1', ?3, ?4, '[]')",
        params![n, phone, ms(window.0), ms(window.1)],
    )?;
    tx.execute(
        "INSERT INTO calls (id, courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
           retry_spacing_secs, ring_timeout_secs, next_action_at, created_at, updated_at, retry_at_best_hour)
         VALUES (?1, 1, 1, ?1, 'key-' || ?1, 'scheduled', ?2, 900, 30, ?3, ?3, ?3, ?4)",
        params![n, max_attempts, ms(due), best_hour],
    )?;
    Ok(())
}

/// What `number_answer_stats` holds, every column as text (a blob as hex):
/// to check no number is kept in the clear.
pub fn number_stats_rows(db: &Db) -> Result<Vec<String>, StoreError> {
    Ok(db.sqlite()?
        .prepare("SELECT stop_id || ' ' || hour || ' ' || depot_id || ' ' || hex(number_key) || ' ' || attempts || ' ' || answered FROM number_answer_stats")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The one message's `(state, channel, cost)` and its sends as `(channel,
/// result, cost)`, in step order.
#[allow(clippy::type_complexity)]
pub fn the_message(
    db: &Db,
) -> Result<((String, Option<String>, i64), Vec<(String, String, i64)>), StoreError> {
    let m = db.sqlite()?.query_row("SELECT state, channel, cost_minor FROM messages", [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    let sends = db
        .sqlite()?
        .prepare("SELECT channel, result, cost_minor FROM message_sends ORDER BY step")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((m, sends))
}

/// Every event's kind as stored (JSON), in log order.
pub fn event_kinds(db: &Db) -> Result<Vec<String>, StoreError> {
    Ok(db
        .sqlite()?
        .prepare("SELECT kind FROM events ORDER BY seq")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}
