//! Reschedule offers (`crate::reschedule`): the link a customer gets, what
//! it offers, and what they chose. Tokens are kept as hashes; the plain
//! token only until its message went out.

use super::{from_ms, ms, Db, Row, StoreError, WriteTx};
use crate::reschedule::Slot;
use callahead_core::wire::PickupPoint;
use callahead_core::{CallId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// What an offer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFor {
    /// A call that ended `reschedule_requested`.
    Call(CallId),
    /// A campaign run's SMS step (it may also confirm the current window).
    CampaignRun(i64),
}

/// Stores an offer; its id, or `None` if its call or run already has one.
pub fn insert(
    tx: &WriteTx<'_>,
    of: OfferFor,
    stop: StopId,
    token_hash: &str,
    token: &str,
    slots: &[Slot],
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let slots = serde_json::to_string(slots)?;
    // `DO NOTHING` without a target: the call's, the run's and the token's
    // keys are each one offer; no row back is "already has one".
    let db = tx.db();
    let id = |r: &Row<'_>| r.get::<_, i64>(0);
    match of {
        OfferFor::Call(call) => db.opt(
            "INSERT INTO reschedule_offers (call_id, stop_id, token_hash, pending_token, slots, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING RETURNING id",
            params![call.0, stop.0, token_hash, token, slots, ms(at)],
            id,
        ),
        OfferFor::CampaignRun(run) => db.opt(
            "INSERT INTO reschedule_offers (campaign_run_id, confirmable, stop_id, token_hash,
               pending_token, slots, created_at)
             VALUES (?1, TRUE, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING RETURNING id",
            params![run, stop.0, token_hash, token, slots, ms(at)],
            id,
        ),
    }
}

/// An offer as stored.
pub struct Offer {
    pub id: i64,
    pub stop_id: StopId,
    pub slots: Vec<Slot>,
    pub expires_at: Option<DateTime<Utc>>,
    pub used: bool,
    pub chosen: Option<Slot>,
    pub chosen_pickup: Option<PickupPoint>,
    pub confirmable: bool,
    pub confirmed: bool,
}

/// The offer whose token hashes to `token_hash`.
pub fn by_token(db: &Db, token_hash: &str) -> Result<Option<Offer>, StoreError> {
    let raw = db.opt(
        "SELECT id, stop_id, slots, expires_at, used_at, chosen_start, chosen_end, chosen_pickup, confirmable,
           confirmed
         FROM reschedule_offers WHERE token_hash = ?1",
        params![token_hash],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
                (r.get::<_, bool>(8)?, r.get::<_, bool>(9)?),
            ))
        },
    )?;
    let Some((id, stop_id, slots, expires_at, used_at, start, end, pickup, (confirmable, confirmed))) = raw
    else {
        return Ok(None);
    };
    let chosen = match (start, end) {
        (Some(s), Some(e)) => Some(Slot { start: from_ms(s)?, end: from_ms(e)? }),
        _ => None,
    };
    Ok(Some(Offer {
        id,
        stop_id: StopId(stop_id),
        slots: serde_json::from_str(&slots)?,
        expires_at: expires_at.map(from_ms).transpose()?,
        used: used_at.is_some(),
        chosen,
        chosen_pickup: pickup.map(|p| serde_json::from_str(&p)).transpose()?,
        confirmable,
        confirmed,
    }))
}

/// The customer kept the current window.
pub fn confirm(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE reschedule_offers SET used_at = ?1, confirmed = TRUE WHERE id = ?2",
        params![ms(at), id],
    )?;
    Ok(())
}

/// The customer chose `slot`.
pub fn choose_slot(tx: &WriteTx<'_>, id: i64, slot: Slot, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE reschedule_offers SET used_at = ?1, chosen_start = ?2, chosen_end = ?3 WHERE id = ?4",
        params![ms(at), ms(slot.start), ms(slot.end), id],
    )?;
    Ok(())
}

/// The customer chose to collect at `point`.
pub fn choose_pickup(
    tx: &WriteTx<'_>,
    id: i64,
    point: &PickupPoint,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE reschedule_offers SET used_at = ?1, chosen_pickup = ?2 WHERE id = ?3",
        params![ms(at), serde_json::to_string(point)?, id],
    )?;
    Ok(())
}

/// An offer whose message is still to be composed.
pub struct Pending {
    pub stop_id: StopId,
    /// `None` once sent or given up.
    pub token: Option<String>,
    pub confirmable: bool,
}

pub fn pending(db: &Db, id: i64) -> Result<Option<Pending>, StoreError> {
    db.opt(
        "SELECT stop_id, pending_token, confirmable FROM reschedule_offers WHERE id = ?1",
        params![id],
        |r| {
            Ok::<_, rusqlite::Error>(Pending {
                stop_id: StopId(r.get(0)?),
                token: r.get(1)?,
                confirmable: r.get(2)?,
            })
        },
    )
}

/// The offer's message went out: the link works until `expires_at`, and
/// the plain token is no longer kept.
pub fn sent(
    tx: &WriteTx<'_>,
    id: i64,
    at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE reschedule_offers SET sent_at = ?1, expires_at = ?2, pending_token = NULL, send_error = NULL
         WHERE id = ?3",
        params![ms(at), ms(expires_at), id],
    )?;
    Ok(())
}

/// No channel reached the customer: the token is dropped. Returns the
/// offer's stop.
pub fn undeliverable(tx: &WriteTx<'_>, id: i64, reason: &str) -> Result<StopId, StoreError> {
    let stop: i64 = tx.db().one(
        "UPDATE reschedule_offers SET pending_token = NULL, send_error = ?1 WHERE id = ?2 RETURNING stop_id",
        params![reason, id],
        |r| r.get(0),
    )?;
    Ok(StopId(stop))
}
