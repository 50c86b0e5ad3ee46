//! What the provider seam keeps (schema version 13): per attempt, what was
//! placed and the provider's reference; the keys of callbacks already
//! applied; SMS sent through a provider and their receipts.

use super::{from_ms, ms, Db, Row, StoreError, WriteTx};
use crate::providers::{PlaceCall, Placed};
use callahead_core::wire::DirectCall;
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// An attempt as a provider callback needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    pub call_id: CallId,
    pub number: u32,
    pub request: PlaceCall,
    pub placed: Option<Placed>,
    pub placed_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Keeps what is being placed, so the provider's mid-call questions are
/// answered from it (and never from a template edited since).
pub fn save_request(tx: &WriteTx<'_>, req: &PlaceCall) -> Result<(), StoreError> {
    let json = serde_json::to_string(req)?;
    tx.exec(
        "UPDATE attempts SET request = ?1 WHERE call_id = ?2 AND number = ?3",
        params![json, req.call_id.0, req.attempt],
    )?;
    Ok(())
}

/// Records the provider's reference for an attempt (after the create, or
/// when a lookup found the call an uncertain create made).
pub fn set_placed(tx: &WriteTx<'_>, id: CallId, n: u32, placed: &Placed) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE attempts SET provider_ref = ?1, provider_control = ?2 WHERE call_id = ?3 AND number = ?4",
        params![placed.reference, placed.control_url, id.0, n],
    )?;
    Ok(())
}

pub fn attempt(db: &Db, id: CallId, n: u32) -> Result<Option<StoredAttempt>, StoreError> {
    let row = db.opt(
        "SELECT request, provider_ref, provider_control, placed_at, ended_at
           FROM attempts WHERE call_id = ?1 AND number = ?2",
        params![id.0, n],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        },
    )?;
    let Some((request, reference, control_url, placed_at, ended_at)) = row else { return Ok(None) };
    // Attempts placed before version 13 have no request: nothing a provider
    // callback could be about.
    let Some(request) = request else { return Ok(None) };
    Ok(Some(StoredAttempt {
        call_id: id,
        number: n,
        request: serde_json::from_str(&request)?,
        placed: reference.map(|reference| Placed { reference, control_url }),
        placed_at: from_ms(placed_at)?,
        ended_at: ended_at.map(from_ms).transpose()?,
    }))
}

/// The attempt a key (`call-{id}-{n}`) names.
pub fn attempt_by_key(db: &Db, key: &str) -> Result<Option<StoredAttempt>, StoreError> {
    match PlaceCall::parse_attempt_key(key) {
        Some((id, n)) => attempt(db, id, n),
        None => Ok(None),
    }
}

/// Every attempt not ended yet, with what was placed (start-up: what holds a
/// line, and what to look up at the provider).
pub fn open_attempts(db: &Db) -> Result<Vec<StoredAttempt>, StoreError> {
    let keys: Vec<(i64, u32)> = db.all(
        "SELECT call_id, number FROM attempts WHERE ended_at IS NULL AND request IS NOT NULL ORDER BY id",
        params![],
        |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)),
    )?;
    let mut out = Vec::with_capacity(keys.len());
    for (id, n) in keys {
        if let Some(a) = attempt(db, CallId(id), n)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// What recording a callback's dedupe keys found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// None seen before: recorded now, apply the callback.
    New,
    /// Seen at this time (ms): a duplicate, apply nothing.
    Seen { first_at_ms: i64 },
}

/// Records the dedupe keys of one callback, all or none: if any is known the
/// callback was already applied.
pub fn record_receipts(tx: &WriteTx<'_>, keys: &[String], now: DateTime<Utc>) -> Result<Receipt, StoreError> {
    for key in keys {
        let first: Option<i64> =
            tx.db()
                .opt("SELECT first_at FROM provider_receipts WHERE key = ?1", params![key], |r| r.get(0))?;
        if let Some(first_at_ms) = first {
            return Ok(Receipt::Seen { first_at_ms });
        }
    }
    for key in keys {
        tx.exec("INSERT INTO provider_receipts (key, first_at) VALUES (?1, ?2)", params![key, ms(now)])?;
    }
    Ok(Receipt::New)
}

/// A text sent (or being sent) through a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMessage {
    pub idempotency_key: String,
    pub provider_ref: Option<String>,
    /// The provider's own status word (`queued`, `sent`, `delivered`,
    /// `undelivered`, `failed`; `sending` before its answer came).
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub fn message(db: &Db, key: &str) -> Result<Option<ProviderMessage>, StoreError> {
    let row = db.opt(
        "SELECT idempotency_key, provider_ref, status, error, created_at FROM provider_messages
          WHERE idempotency_key = ?1",
        params![key],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    row.map(|(idempotency_key, provider_ref, status, error, created_at)| {
        Ok(ProviderMessage { idempotency_key, provider_ref, status, error, created_at: from_ms(created_at)? })
    })
    .transpose()
}

/// Notes a message as going out before the request is sent: a resend after
/// a crash then looks it up instead of texting the customer twice.
pub fn message_sending(
    tx: &WriteTx<'_>,
    key: &str,
    provider: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO provider_messages (idempotency_key, provider, status, created_at, updated_at)
         VALUES (?1, ?2, 'sending', ?3, ?3) ON CONFLICT (idempotency_key) DO NOTHING",
        params![key, provider, ms(now)],
    )?;
    Ok(())
}

/// The provider's answer or receipt for a message. A receipt never moves a
/// final status back (`delivered` stays delivered whatever arrives late).
pub fn message_status(
    tx: &WriteTx<'_>,
    key: &str,
    provider_ref: Option<&str>,
    status: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE provider_messages SET provider_ref = COALESCE(?2, provider_ref),
            status = CASE WHEN status IN ('delivered', 'undelivered', 'failed') THEN status ELSE ?3 END,
            error = COALESCE(?4, error), updated_at = ?5
          WHERE idempotency_key = ?1",
        params![key, provider_ref, status, error, ms(now)],
    )?;
    Ok(())
}

/// A courier's direct call through the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDial {
    pub id: i64,
    pub stop_id: StopId,
    pub courier_id: CourierId,
    pub depot_id: DepotId,
    pub customer_phone: String,
    pub record: bool,
    /// `placing`, `placed`, `connected`, `not_connected`, `ended`, `failed`.
    pub status: String,
    pub provider_ref: Option<String>,
    pub callback_secret: String,
    pub recording_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

const DIAL_COLS: &str =
    "d.id, d.stop_id, d.courier_id, d.depot_id, s.phone, d.record, d.status, d.provider_ref, \
     d.callback_secret, d.recording_ref, d.created_at";

fn dial_row(r: &Row<'_>) -> rusqlite::Result<(StoredDial, i64)> {
    let created: i64 = r.get(10)?;
    Ok((
        StoredDial {
            id: r.get(0)?,
            stop_id: StopId(r.get(1)?),
            courier_id: CourierId(r.get(2)?),
            depot_id: DepotId(r.get(3)?),
            customer_phone: r.get(4)?,
            record: r.get(5)?,
            status: r.get(6)?,
            provider_ref: r.get(7)?,
            callback_secret: r.get(8)?,
            recording_ref: r.get(9)?,
            created_at: DateTime::<Utc>::MIN_UTC,
        },
        created,
    ))
}

pub fn dial(db: &Db, id: i64) -> Result<Option<StoredDial>, StoreError> {
    let row = db.opt(
        &format!("SELECT {DIAL_COLS} FROM direct_dials d JOIN stops s ON s.id = d.stop_id WHERE d.id = ?1"),
        params![id],
        dial_row,
    )?;
    row.map(|(mut d, created)| {
        d.created_at = from_ms(created)?;
        Ok(d)
    })
    .transpose()
}

pub fn dial_by_key(db: &Db, key: &str) -> Result<Option<StoredDial>, StoreError> {
    match crate::providers::DirectDialRequest::parse_key(key) {
        Some(id) => dial(db, id),
        None => Ok(None),
    }
}

/// The courier's dial with this idempotency key, if any.
pub fn dial_by_idempotency(db: &Db, courier: CourierId, key: &str) -> Result<Option<StoredDial>, StoreError> {
    let id: Option<i64> = db.opt(
        "SELECT id FROM direct_dials WHERE idempotency_key = ?1",
        params![format!("{}:{key}", courier.0)],
        |r| r.get(0),
    )?;
    match id {
        Some(id) => dial(db, id),
        None => Ok(None),
    }
}

pub struct NewDial<'a> {
    pub stop_id: StopId,
    pub courier_id: CourierId,
    pub depot_id: DepotId,
    pub idempotency_key: &'a str,
    pub record: bool,
    pub callback_secret: &'a str,
    pub now: DateTime<Utc>,
}

pub fn create_dial(tx: &WriteTx<'_>, d: &NewDial<'_>) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO direct_dials (stop_id, courier_id, depot_id, idempotency_key, record, status, callback_secret,
           created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'placing', ?6, ?7, ?7) RETURNING id",
        params![
        d.stop_id.0,
        d.courier_id.0,
        d.depot_id.0,
        format!("{}:{}", d.courier_id.0, d.idempotency_key),
        d.record,
            d.callback_secret,
            ms(d.now)
        ],
        |r| r.get(0),
    )
}

/// Moves a dial to `status`; `false` if it had ended already (nothing changed).
pub fn dial_status(
    tx: &WriteTx<'_>,
    id: i64,
    status: &str,
    provider_ref: Option<&str>,
    talk_secs: Option<u32>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE direct_dials SET status = ?2, provider_ref = COALESCE(provider_ref, ?3),
            talk_secs = COALESCE(?4, talk_secs), updated_at = ?5
          WHERE id = ?1 AND status NOT IN ('ended', 'failed')",
        params![id, status, provider_ref, talk_secs, ms(now)],
    )?;
    Ok(n > 0)
}

/// Keeps the recording's reference; `false` if one was kept already.
pub fn dial_recorded(
    tx: &WriteTx<'_>,
    id: i64,
    recording_ref: &str,
    secs: u32,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE direct_dials SET recording_ref = ?2, recording_secs = ?3, updated_at = ?4
          WHERE id = ?1 AND recording_ref IS NULL",
        params![id, recording_ref, secs, ms(now)],
    )?;
    Ok(n > 0)
}

pub fn record_direct_calls(db: &Db, depot: DepotId) -> Result<bool, StoreError> {
    let v: Option<bool> =
        db.opt("SELECT record_direct_calls FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))?;
    Ok(v.unwrap_or(false))
}

/// `false` if there is no such depot.
pub fn set_record_direct_calls(tx: &WriteTx<'_>, depot: DepotId, on: bool) -> Result<bool, StoreError> {
    let n = tx.exec("UPDATE depots SET record_direct_calls = ?2 WHERE id = ?1", params![depot.0, on])?;
    Ok(n > 0)
}

/// A direct call the courier logged (dialled from their own phone), found
/// by its idempotency key.
pub fn logged_call(db: &Db, courier: CourierId, key: &str) -> Result<Option<DirectCall>, StoreError> {
    let row = db.opt(
        "SELECT id, stop_id, note, called_at, seq FROM direct_calls
         WHERE courier_id = ?1 AND idempotency_key = ?2",
        params![courier.0, key],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    let Some((id, stop, note, at, seq)) = row else { return Ok(None) };
    Ok(Some(DirectCall { id, stop_id: StopId(stop), note, called_at: from_ms(at)?, seq: seq as u64 }))
}

/// Records a logged direct call (its event already appended, as `seq`); its id.
pub fn log_call(
    tx: &WriteTx<'_>,
    courier: CourierId,
    stop: StopId,
    key: &str,
    note: &str,
    called_at: DateTime<Utc>,
    seq: u64,
) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO direct_calls (courier_id, stop_id, idempotency_key, note, called_at, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        params![courier.0, stop.0, key, note, ms(called_at), seq as i64],
        |r| r.get(0),
    )
}
