//! What the send guard reads and writes (see `crate::guard`): a depot's
//! limits and how much of today's quota is spent.

use super::{ms, Db, StoreError, WriteTx};
use callahead_core::wire::SendLimits;
use callahead_core::DepotId;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// The depot's own limits (`None`: the server's defaults; `Err` if absent).
pub fn depot_limits(db: &Db, depot: DepotId) -> Result<Option<Option<SendLimits>>, StoreError> {
    let raw: Option<Option<String>> =
        db.opt("SELECT send_limits FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))?;
    Ok(match raw {
        None => None,
        Some(None) => Some(None),
        Some(Some(json)) => Some(Some(serde_json::from_str(&json)?)),
    })
}

pub fn save(tx: &WriteTx<'_>, depot: DepotId, limits: &SendLimits) -> Result<bool, StoreError> {
    let json = serde_json::to_string(limits)?;
    Ok(tx.exec("UPDATE depots SET send_limits = ?1 WHERE id = ?2", params![json, depot.0])? == 1)
}

/// Smart calls the depot requested since `from`.
pub fn calls_since(db: &Db, depot: DepotId, from: DateTime<Utc>) -> Result<u32, StoreError> {
    db.one(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM calls WHERE depot_id = ?1 AND created_at >= ?2",
        params![depot.0, ms(from)],
        |r| r.get(0),
    )
}

/// SMS the depot handed to a provider since `from`.
pub fn sms_since(db: &Db, depot: DepotId, from: DateTime<Utc>) -> Result<u32, StoreError> {
    db.one(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM message_sends s JOIN messages m ON m.id = s.message_id
         WHERE m.depot_id = ?1 AND s.channel = 'sms' AND s.started_at >= ?2 AND s.result <> 'refused'",
        params![depot.0, ms(from)],
        |r| r.get(0),
    )
}

/// Records a send the guard refused: the message ends `refused`.
pub fn refuse_message(
    tx: &WriteTx<'_>,
    message: i64,
    step: i64,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Replaces whatever this step had started (cost included), as the
    // refusal is all that step now is.
    tx.exec(
        "INSERT INTO message_sends (message_id, step, channel, started_at, result, segments, error, ended_at)
         VALUES (?1, ?2, 'sms', ?3, 'refused', 0, ?4, ?3)
         ON CONFLICT (message_id, step) DO UPDATE SET channel = excluded.channel, started_at = excluded.started_at,
           result = excluded.result, segments = excluded.segments, cost_minor = excluded.cost_minor,
           error = excluded.error, ended_at = excluded.ended_at",
        params![message, step, ms(at), reason],
    )?;
    tx.exec(
        "UPDATE messages SET state = 'refused', next_at = NULL, finished_at = ?1 WHERE id = ?2",
        params![ms(at), message],
    )?;
    Ok(())
}

pub fn refused_messages(db: &Db, depot: DepotId, from: i64, to: i64) -> Result<u32, StoreError> {
    db.one(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM messages
         WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state = 'refused'",
        params![depot.0, from, to],
        |r| r.get(0),
    )
}
