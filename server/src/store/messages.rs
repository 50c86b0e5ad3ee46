//! The notification cascade's messages (`crate::cascade`, ADR 0005): one
//! `messages` row per message, one `message_sends` row per channel tried,
//! written before the provider is asked and finished after.

use super::{from_ms, ms, Db, StoreError, WriteTx};
use crate::cascade::ChannelPrice;
use callahead_core::channel::Channel;
use callahead_core::wire::Stop;
use callahead_core::{CourierId, DepotId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// Queues a message to the stop's customer (one per `(purpose, ref_id)`:
/// a second is ignored).
pub fn queue(
    tx: &WriteTx<'_>,
    purpose: &str,
    ref_id: i64,
    stop: &Stop,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO messages (depot_id, courier_id, stop_id, purpose, ref_id, phone, state, next_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', ?7, ?7) ON CONFLICT (purpose, ref_id) DO NOTHING",
        params![stop.depot_id.0, stop.courier_id.0, stop.id.0, purpose, ref_id, stop.phone, ms(at)],
    )?;
    Ok(())
}

/// When the earliest message is due, if any.
pub fn next_at(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let v: Option<i64> =
        db.one("SELECT MIN(next_at) FROM messages WHERE next_at IS NOT NULL", params![], |r| r.get(0))?;
    Ok(v.map(from_ms).transpose()?)
}

/// Where a due message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// The step's channel is to be (re)sent.
    Sending,
    /// The step's channel took it; its receipt is due by `next_at`.
    Awaiting,
}

/// A message due now, as stored.
pub struct DueMessage {
    pub id: i64,
    pub purpose: String,
    pub ref_id: i64,
    pub phone: String,
    pub depot: DepotId,
    pub courier: CourierId,
    pub stop: StopId,
    /// The channels and prices fixed at its first send; `None` before it.
    pub plan: Option<(Vec<ChannelPrice>, String)>,
    pub step: i64,
    pub state: MessageState,
    pub tries: u32,
}

type DueRow = (i64, String, i64, String, i64, i64, i64, Option<String>, Option<String>, i64, String, u32);

/// Messages due at `now`, earliest first.
pub fn due(db: &Db, now: DateTime<Utc>, limit: usize) -> Result<Vec<DueMessage>, StoreError> {
    let rows: Vec<DueRow> = db.all(
        "SELECT id, purpose, ref_id, phone, depot_id, courier_id, stop_id, plan, currency, step, state, tries
         FROM messages WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
        params![ms(now), limit as i64],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        },
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, purpose, ref_id, phone, depot, courier, stop, plan, currency, step, state, tries) in rows {
        let plan = match (plan, currency) {
            (Some(p), Some(c)) => Some((serde_json::from_str::<Vec<ChannelPrice>>(&p)?, c)),
            _ => None,
        };
        let state = match state.as_str() {
            "sending" => MessageState::Sending,
            "awaiting" => MessageState::Awaiting,
            other => return Err(StoreError::Corrupt(format!("message {id} is due in state {other:?}"))),
        };
        out.push(DueMessage {
            id,
            purpose,
            ref_id,
            phone,
            depot: DepotId(depot),
            courier: CourierId(courier),
            stop: StopId(stop),
            plan,
            step,
            state,
            tries,
        });
    }
    Ok(out)
}

/// Fixes the message's plan at its first send (a later config change does
/// not reprice it).
pub fn set_plan(tx: &WriteTx<'_>, id: i64, plan: &[ChannelPrice], currency: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE messages SET plan = ?1, currency = ?2 WHERE id = ?3 AND plan IS NULL",
        params![serde_json::to_string(plan)?, currency, id],
    )?;
    Ok(())
}

/// The intent to send step `step` on `channel` (kept if it already exists:
/// a resend after a crash).
pub fn start_send(
    tx: &WriteTx<'_>,
    id: i64,
    step: usize,
    channel: Channel,
    segments: u32,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO message_sends (message_id, step, channel, started_at, result, segments)
         VALUES (?1, ?2, ?3, ?4, 'sending', ?5) ON CONFLICT (message_id, step) DO NOTHING",
        params![id, step as i64, channel.as_str(), ms(at), segments],
    )?;
    Ok(())
}

/// How step `step` went.
pub fn end_send(
    tx: &WriteTx<'_>,
    id: i64,
    step: usize,
    result: &str,
    cost: i64,
    error: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE message_sends SET result = ?1, cost_minor = ?2, error = ?3, ended_at = ?4
         WHERE message_id = ?5 AND step = ?6",
        params![result, cost, error, ms(at), id, step as i64],
    )?;
    Ok(())
}

/// Step `step`'s receipt came: delivered. Returns the segments it billed.
pub fn send_delivered(tx: &WriteTx<'_>, id: i64, step: usize) -> Result<u32, StoreError> {
    tx.db().one(
        "UPDATE message_sends SET result = 'delivered' WHERE message_id = ?1 AND step = ?2 RETURNING segments",
        params![id, step as i64],
        |r| r.get(0),
    )
}

/// Step `step`'s receipt did not come in time.
pub fn send_timed_out(tx: &WriteTx<'_>, id: i64, step: usize, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE message_sends SET result = 'timeout', ended_at = ?1 WHERE message_id = ?2 AND step = ?3",
        params![ms(at), id, step as i64],
    )?;
    Ok(())
}

/// The message is due again at `at`, nothing else changed.
pub fn due_again(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec("UPDATE messages SET next_at = ?1 WHERE id = ?2", params![ms(at), id])?;
    Ok(())
}

/// One more try of the same channel, at `at`.
pub fn retry(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec("UPDATE messages SET tries = tries + 1, next_at = ?1 WHERE id = ?2", params![ms(at), id])?;
    Ok(())
}

/// A provider billed `cost` for the message's text of `segments`.
pub fn bill(tx: &WriteTx<'_>, id: i64, cost: i64, segments: u32) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE messages SET cost_minor = cost_minor + ?1, segments = ?2 WHERE id = ?3",
        params![cost, segments, id],
    )?;
    Ok(())
}

/// The channel took it; its receipt is due by `deadline`.
pub fn await_receipt(tx: &WriteTx<'_>, id: i64, deadline: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec("UPDATE messages SET state = 'awaiting', next_at = ?1 WHERE id = ?2", params![ms(deadline), id])?;
    Ok(())
}

/// On to the next channel, at once.
pub fn next_channel(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE messages SET step = step + 1, state = 'sending', tries = 0, next_at = ?1 WHERE id = ?2",
        params![ms(at), id],
    )?;
    Ok(())
}

/// No channel reached the customer.
pub fn undelivered(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE messages SET state = 'undelivered', next_at = NULL, finished_at = ?1 WHERE id = ?2",
        params![ms(at), id],
    )?;
    Ok(())
}

/// Delivered through `channel`. Returns what the message cost in all.
pub fn delivered(tx: &WriteTx<'_>, id: i64, channel: Channel, at: DateTime<Utc>) -> Result<i64, StoreError> {
    tx.db().one(
        "UPDATE messages SET state = 'delivered', channel = ?1, next_at = NULL, finished_at = ?2 WHERE id = ?3
         RETURNING cost_minor",
        params![channel.as_str(), ms(at), id],
        |r| r.get(0),
    )
}
