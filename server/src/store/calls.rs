//! Smart calls and their attempts: every write the orchestrator makes to
//! them. The reads (row mapping included) are in [`super::queries`], shared
//! with the read pool. Every statement is of the dialect both engines
//! accept (docs/adr/0009) and, on SQLite, goes through the statement cache
//! ([`WriteTx::exec`]): these run thousands of times a minute.

use super::queries::hours_to_sql;
use super::{ms, StoreError, WriteTx};
use callahead_core::call::{AttemptResult, CallStatus, Key, Outcome};
use callahead_core::policy::AttemptPolicy;
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// A call as requested, due at once.
pub struct NewCall<'a> {
    pub courier: CourierId,
    pub depot: DepotId,
    pub stop: StopId,
    pub idempotency_key: &'a str,
    pub policy: &'a AttemptPolicy,
    pub at: DateTime<Utc>,
}

/// Stores a new call, `scheduled` and due at its creation; its id.
pub fn insert(tx: &WriteTx<'_>, c: &NewCall<'_>) -> Result<CallId, StoreError> {
    let p = c.policy;
    let id: i64 = tx.db().one(
        "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, attempt, max_attempts,
           retry_spacing_secs, ring_timeout_secs, next_action_at, created_at, updated_at, calling_hours,
           stop_at_window_start, min_heard_secs, machine_detection, retry_at_best_hour)
         VALUES (?1, ?2, ?3, ?4, 'scheduled', 0, ?5, ?6, ?7, ?8, ?8, ?8, ?9, ?10, ?11, ?12, ?13)
         RETURNING id",
        params![
            c.courier.0,
            c.depot.0,
            c.stop.0,
            c.idempotency_key,
            p.max_attempts,
            p.retry_spacing_secs,
            p.ring_timeout_secs,
            ms(c.at),
            hours_to_sql(&p.calling_hours)?,
            p.stop_at_window_start,
            p.min_heard_secs,
            p.machine_detection,
            p.retry_at_best_hour
        ],
        |r| r.get(0),
    )?;
    Ok(CallId(id))
}

pub fn set_status(
    tx: &WriteTx<'_>,
    id: CallId,
    status: CallStatus,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET status = ?1, updated_at = ?2 WHERE id = ?3",
        params![status.as_str(), ms(at), id.0],
    )?;
    Ok(())
}

/// The call is over with `outcome`; nothing more is due.
pub fn finish(tx: &WriteTx<'_>, id: CallId, outcome: Outcome, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET status = 'finished', outcome = ?1, next_action_at = NULL, updated_at = ?2 WHERE id = ?3",
        params![outcome.as_str(), ms(at), id.0],
    )?;
    Ok(())
}

/// The call was cancelled; nothing more is due.
pub fn cancel(tx: &WriteTx<'_>, id: CallId, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET status = 'cancelled', next_action_at = NULL, updated_at = ?1 WHERE id = ?2",
        params![ms(at), id.0],
    )?;
    Ok(())
}

/// The next attempt waits until `due`.
pub fn schedule_retry(
    tx: &WriteTx<'_>,
    id: CallId,
    due: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET status = 'scheduled', next_action_at = ?1, updated_at = ?2 WHERE id = ?3",
        params![ms(due), ms(at), id.0],
    )?;
    Ok(())
}

/// Moves the call's due time to `until`, status unchanged.
pub fn defer(
    tx: &WriteTx<'_>,
    id: CallId,
    until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE calls SET next_action_at = ?1, updated_at = ?2 WHERE id = ?3",
        params![ms(until), ms(at), id.0],
    )?;
    Ok(())
}

/// Nothing is due on the call any more.
pub fn clear_due(tx: &WriteTx<'_>, id: CallId) -> Result<(), StoreError> {
    tx.exec("UPDATE calls SET next_action_at = NULL WHERE id = ?1", params![id.0])?;
    Ok(())
}

/// Attempt `n` starts: its row with the script the customer will hear, and
/// the call `dialing`.
pub fn start_attempt(
    tx: &WriteTx<'_>,
    id: CallId,
    n: u32,
    script: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO attempts (call_id, number, placed_at, script) VALUES (?1, ?2, ?3, ?4)",
        params![id.0, n, ms(at), script],
    )?;
    tx.exec(
        "UPDATE calls SET status = 'dialing', attempt = ?1, next_action_at = NULL, updated_at = ?2 WHERE id = ?3",
        params![n, ms(at), id.0],
    )?;
    Ok(())
}

/// The provider's per-attempt seq last applied (reports at or below it are
/// duplicates).
pub fn set_provider_seq(tx: &WriteTx<'_>, id: CallId, n: u32, seq: u32) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET provider_seq = ?1 WHERE call_id = ?2 AND number = ?3",
        params![seq, id.0, n],
    )?;
    Ok(())
}

pub fn set_ringing(tx: &WriteTx<'_>, id: CallId, n: u32, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET ringing_at = ?1 WHERE call_id = ?2 AND number = ?3",
        params![ms(at), id.0, n],
    )?;
    Ok(())
}

pub fn set_answered(tx: &WriteTx<'_>, id: CallId, n: u32, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET answered_at = ?1 WHERE call_id = ?2 AND number = ?3",
        params![ms(at), id.0, n],
    )?;
    Ok(())
}

pub fn set_key(tx: &WriteTx<'_>, id: CallId, n: u32, key: Key) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET key = ?1 WHERE call_id = ?2 AND number = ?3",
        params![String::from(key), id.0, n],
    )?;
    Ok(())
}

/// Attempt `n` ended; a key already recorded is kept.
pub fn end_attempt(
    tx: &WriteTx<'_>,
    id: CallId,
    n: u32,
    result: AttemptResult,
    key: Option<Key>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET ended_at = ?1, result = ?2, key = COALESCE(key, ?3) WHERE call_id = ?4 AND number = ?5",
        params![ms(at), result.as_str(), key.map(String::from), id.0, n],
    )?;
    Ok(())
}

pub fn set_talk_secs(tx: &WriteTx<'_>, id: CallId, n: u32, secs: u32) -> Result<(), StoreError> {
    tx.exec("UPDATE attempts SET talk_secs = ?1 WHERE call_id = ?2 AND number = ?3", params![secs, id.0, n])?;
    Ok(())
}
