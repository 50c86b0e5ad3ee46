//! The webhook tables: endpoints with their cursor and retry state, failed
//! attempts, dead letters. The delivery worker reads what is next and
//! records each attempt's result here, through the writer.

use super::{from_ms, ms, queries, Db, Dialect, Row, StoreError, WriteTx};
use crate::hub::Scope;
use crate::webhooks::signature::Secret;
use callahead_core::wire::{DeadLetter, Event, EventKind, PendingDelivery, Webhook, WebhookFailure};
use callahead_core::DepotId;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// Failed attempts kept per endpoint; older ones are pruned.
const KEEP_FAILURES: i64 = 1000;

#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: i64,
    pub depot_id: DepotId,
    pub url: String,
    pub event_types: Vec<String>,
    pub max_attempts: u32,
    pub secret: Secret,
    pub previous_secret: Option<Secret>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub cursor: u64,
    pub pending_seq: Option<u64>,
    pub pending_attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl EndpointRow {
    /// The secrets that sign a delivery at `now`: the current one, and the
    /// previous one while its overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        let mut out = vec![&self.secret];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if now < until {
                out.push(prev);
            }
        }
        out
    }

    /// Failed tries of `seq` so far (0 if it is not the one being retried).
    pub fn failures_of(&self, seq: u64) -> u32 {
        if self.pending_seq == Some(seq) {
            self.pending_attempts
        } else {
            0
        }
    }

    pub fn view(&self, dead_letters: u32, now: DateTime<Utc>) -> Webhook {
        Webhook {
            id: self.id,
            depot_id: self.depot_id,
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            max_attempts: self.max_attempts,
            cursor: self.cursor,
            pending: self.pending_seq.map(|seq| PendingDelivery {
                seq,
                failed_attempts: self.pending_attempts,
                next_attempt_at: self.next_attempt_at,
            }),
            dead_letters,
            previous_secret_valid_until: self.previous_secret_until.filter(|u| now < *u),
            created_at: self.created_at,
        }
    }
}

const COLS: &str =
    "id, depot_id, url, event_types, max_attempts, secret, previous_secret, previous_secret_until,
    cursor, pending_seq, pending_attempts, next_attempt_at, created_at";

fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<EndpointRow> {
    let types: String = r.get(3)?;
    Ok(EndpointRow {
        id: r.get(0)?,
        depot_id: DepotId(r.get(1)?),
        url: r.get(2)?,
        event_types: serde_json::from_str(&types).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
        })?,
        max_attempts: r.get(4)?,
        secret: Secret(r.get(5)?),
        previous_secret: r.get::<_, Option<String>>(6)?.map(Secret),
        previous_secret_until: r.get::<_, Option<i64>>(7)?.map(from_ms).transpose()?,
        cursor: r.get::<_, i64>(8)? as u64,
        pending_seq: r.get::<_, Option<i64>>(9)?.map(|s| s as u64),
        pending_attempts: r.get(10)?,
        next_attempt_at: r.get::<_, Option<i64>>(11)?.map(from_ms).transpose()?,
        created_at: from_ms(r.get(12)?)?,
    })
}

pub fn endpoint(db: &Db, id: i64) -> Result<Option<EndpointRow>, StoreError> {
    db.opt(&format!("SELECT {COLS} FROM webhook_endpoints WHERE id = ?1"), params![id], endpoint_row)
}

/// The endpoints of `depot`, or of every depot.
pub fn endpoints(db: &Db, depot: Option<DepotId>) -> Result<Vec<EndpointRow>, StoreError> {
    db.all(
        &format!("SELECT {COLS} FROM webhook_endpoints WHERE CAST(?1 AS BIGINT) IS NULL OR depot_id = ?1 ORDER BY id"),
        params![depot.map(|d| d.0)],
        endpoint_row,
    )
}

pub fn dead_letter_count(db: &Db, id: i64) -> Result<u32, StoreError> {
    db.one(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_dead_letters WHERE endpoint_id = ?1",
        params![id],
        |r| r.get(0),
    )
}

pub struct NewEndpoint {
    pub depot_id: DepotId,
    pub url: String,
    pub event_types: Vec<String>,
    pub max_attempts: u32,
    pub secret: Secret,
    pub cursor: u64,
    pub at: DateTime<Utc>,
}

pub fn insert(tx: &WriteTx<'_>, e: &NewEndpoint) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO webhook_endpoints (depot_id, url, event_types, max_attempts, secret, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            e.depot_id.0,
            e.url,
            serde_json::to_string(&e.event_types)?,
            e.max_attempts,
            e.secret.0,
            e.cursor as i64,
            ms(e.at)
        ],
        |r| r.get(0),
    )
}

/// Seals every stored secret that is clear or under the previous key
/// (a secret that cannot be opened is left for the operator to rotate).
pub fn reseal(tx: &WriteTx<'_>, keys: &crate::secrets::Keys) -> Result<usize, StoreError> {
    let rows: Vec<(i64, String, Option<String>)> = tx.db().all(
        "SELECT id, secret, previous_secret FROM webhook_endpoints ORDER BY id",
        params![],
        |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut n = 0;
    for (id, secret, previous) in rows {
        let fresh = |stored: &str| -> Option<String> {
            if !keys.needs_resealing(stored) {
                return None;
            }
            match keys.open(stored) {
                Ok(plain) => Some(keys.seal(&plain)),
                Err(e) => {
                    tracing::error!(webhook = id, error = %e, "cannot re-encrypt a webhook secret; rotate it");
                    None
                }
            }
        };
        let (s, p) = (fresh(&secret), previous.as_deref().and_then(fresh));
        if s.is_some() || p.is_some() {
            tx.exec(
                "UPDATE webhook_endpoints SET secret = COALESCE(?1, secret), previous_secret = COALESCE(?2, previous_secret)
                 WHERE id = ?3",
                params![s, p, id],
            )?;
            n += 1;
        }
    }
    Ok(n)
}

pub fn delete(tx: &WriteTx<'_>, id: i64) -> Result<bool, StoreError> {
    Ok(tx.exec("DELETE FROM webhook_endpoints WHERE id = ?1", params![id])? > 0)
}

pub fn rotate(
    tx: &WriteTx<'_>,
    id: i64,
    secret: &Secret,
    overlap_until: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?1, secret = ?2 WHERE id = ?3",
        params![ms(overlap_until), secret.0, id],
    )?;
    Ok(())
}

/// What an endpoint delivers next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub seq: u64,
    /// A dead letter delivered again on request.
    pub replay: bool,
}

/// Replays asked for come first (oldest first), then the next event after
/// the cursor whose type the endpoint wants. `floor` is how far an earlier
/// search found nothing to deliver (see [`Scan`]), so a filtered endpoint
/// does not rescan the same unwanted events on every wake-up.
pub fn next_item(db: &Db, ep: &EndpointRow, floor: u64) -> Result<Scan, StoreError> {
    let replay: Option<i64> = db.one(
        "SELECT MIN(seq) FROM webhook_dead_letters WHERE endpoint_id = ?1 AND replaying = TRUE",
        params![ep.id],
        |r| r.get(0),
    )?;
    if let Some(seq) = replay {
        return Ok(Scan { item: Some(Item { seq: seq as u64, replay: true }), nothing_up_to: floor });
    }
    // Read before searching: every event up to it is visible to the search.
    let head: i64 = db.one(
        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE depot_id = ?1",
        params![ep.depot_id.0],
        |r| r.get(0),
    )?;
    // No filter: every type but the opt-in ones.
    let defaults = || {
        EventKind::TYPES.iter().filter(|t| !EventKind::OPT_IN.contains(t)).map(|t| (*t).to_owned()).collect()
    };
    let types: Vec<String> = if ep.event_types.is_empty() { defaults() } else { ep.event_types.clone() };
    let types =
        Some(serde_json::to_string(&types).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?);
    let from = ep.cursor.max(floor);
    // The wanted types go in as one JSON array, read per engine.
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT seq FROM events WHERE depot_id = ?1 AND seq > ?2
               AND (?3 IS NULL OR json_extract(kind, '$.type') IN (SELECT value FROM json_each(?3)))
             ORDER BY seq LIMIT 1"
        }
        Dialect::Postgres => {
            "SELECT seq FROM events WHERE depot_id = ?1 AND seq > ?2
               AND (CAST(?3 AS TEXT) IS NULL
                    OR kind::jsonb ->> 'type' IN (SELECT jsonb_array_elements_text(CAST(?3 AS TEXT)::jsonb)))
             ORDER BY seq LIMIT 1"
        }
    };
    let next: Option<i64> = db.opt(sql, params![ep.depot_id.0, from as i64, types], |r| r.get(0))?;
    Ok(match next {
        Some(seq) => {
            Scan { item: Some(Item { seq: seq as u64, replay: false }), nothing_up_to: seq as u64 - 1 }
        }
        None => Scan { item: None, nothing_up_to: from.max(head as u64) },
    })
}

/// What [`next_item`] found, and up to which seq it saw nothing else to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    pub item: Option<Item>,
    pub nothing_up_to: u64,
}

/// When `item` may be tried: now, unless it is waiting out a backoff.
pub fn due_at(ep: &EndpointRow, item: Item) -> DateTime<Utc> {
    match (ep.pending_seq == Some(item.seq), ep.next_attempt_at) {
        (true, Some(at)) => at,
        _ => DateTime::<Utc>::MIN_UTC,
    }
}

pub fn event(db: &Db, depot: DepotId, seq: u64) -> Result<Option<Event>, StoreError> {
    let mut found = queries::events_after(db, Scope::Depot(depot), seq.saturating_sub(1), 1)?;
    Ok(found.pop().filter(|e| e.seq == seq))
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Failed { status: Option<u16>, error: String },
}

/// Records an attempt at `item`: a delivery moves the cursor (or settles
/// the replayed dead letter); a failure schedules the next try `retry_in`
/// from `now`, or dead-letters the event once the endpoint's limit is
/// reached. Returns whether the event became a dead letter.
pub fn record(
    tx: &WriteTx<'_>,
    id: i64,
    item: Item,
    attempt: &Attempt,
    now: DateTime<Utc>,
    retry_in: chrono::Duration,
) -> Result<bool, StoreError> {
    // Deleted while the request was in flight: nothing to record.
    let Some(ep) = endpoint(tx.db(), id)? else { return Ok(false) };
    let seq = item.seq as i64;
    let (status, error) = match attempt {
        Attempt::Delivered => {
            if item.replay {
                tx.exec(
                    "DELETE FROM webhook_dead_letters WHERE endpoint_id = ?1 AND seq = ?2",
                    params![id, seq],
                )?;
            }
            done_with(tx, id, item)?;
            return Ok(false);
        }
        Attempt::Failed { status, error } => (*status, error),
    };
    let n = ep.failures_of(item.seq) + 1;
    tx.exec(
        "INSERT INTO webhook_failures (endpoint_id, seq, attempt, at, status, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, seq, n, ms(now), status, error],
    )?;
    tx.exec(
        "DELETE FROM webhook_failures WHERE endpoint_id = ?1 AND id <=
           (SELECT id FROM webhook_failures WHERE endpoint_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![id, KEEP_FAILURES],
    )?;
    if n >= ep.max_attempts {
        tx.exec(
            "INSERT INTO webhook_dead_letters (endpoint_id, seq, dead_at, attempts, last_error, replaying)
             VALUES (?1, ?2, ?3, ?4, ?5, FALSE)
             ON CONFLICT (endpoint_id, seq) DO UPDATE SET dead_at = excluded.dead_at, attempts = excluded.attempts,
               last_error = excluded.last_error, replaying = excluded.replaying",
            params![id, seq, ms(now), n, error],
        )?;
        done_with(tx, id, item)?;
        return Ok(true);
    }
    tx.exec(
        "UPDATE webhook_endpoints SET pending_seq = ?1, pending_attempts = ?2, next_attempt_at = ?3 WHERE id = ?4",
        params![seq, n, ms(now + retry_in), id],
    )?;
    Ok(false)
}

/// The endpoint is done with `item` (delivered or dead): the cursor moves
/// past a new event (a replay leaves it), the retry state resets.
fn done_with(tx: &WriteTx<'_>, id: i64, item: Item) -> Result<(), StoreError> {
    if !item.replay {
        // `CASE`, not `MAX(a, b)`: the two-argument form is SQLite's alone.
        tx.exec(
            "UPDATE webhook_endpoints SET cursor = CASE WHEN cursor > ?1 THEN cursor ELSE ?1 END WHERE id = ?2",
            params![item.seq as i64, id],
        )?;
    }
    tx.exec(
        "UPDATE webhook_endpoints SET pending_seq = NULL, pending_attempts = 0, next_attempt_at = NULL WHERE id = ?1",
        params![id],
    )?;
    Ok(())
}

/// Failed attempts, newest first.
pub fn failures(db: &Db, id: i64, limit: u32) -> Result<Vec<WebhookFailure>, StoreError> {
    db.all(
        "SELECT seq, attempt, at, status, error FROM webhook_failures WHERE endpoint_id = ?1
         ORDER BY id DESC LIMIT ?2",
        params![id, limit],
        |r| {
            Ok::<_, rusqlite::Error>(WebhookFailure {
                seq: r.get::<_, i64>(0)? as u64,
                attempt: r.get(1)?,
                at: from_ms(r.get(2)?)?,
                status: r.get(3)?,
                error: r.get(4)?,
            })
        },
    )
}

pub fn dead_letters(db: &Db, id: i64) -> Result<Vec<DeadLetter>, StoreError> {
    db.all(
        "SELECT seq, dead_at, attempts, last_error, replaying FROM webhook_dead_letters WHERE endpoint_id = ?1
         ORDER BY seq",
        params![id],
        |r| {
            Ok::<_, rusqlite::Error>(DeadLetter {
            seq: r.get::<_, i64>(0)? as u64,
            dead_at: from_ms(r.get(1)?)?,
            attempts: r.get(2)?,
            last_error: r.get(3)?,
            replaying: r.get(4)?,
        })
        },
    )
}

/// Queues dead letters for delivery again: one (`seq`, even if already
/// queued) or all not yet queued. Returns how many were queued (0 for a
/// `seq`: no such dead letter).
pub fn replay(tx: &WriteTx<'_>, id: i64, seq: Option<u64>) -> Result<u32, StoreError> {
    let n = tx.exec(
        "UPDATE webhook_dead_letters SET replaying = TRUE
         WHERE endpoint_id = ?1 AND ((CAST(?2 AS BIGINT) IS NULL AND replaying = FALSE) OR seq = ?2)",
        params![id, seq.map(|s| s as i64)],
    )?;
    Ok(n as u32)
}
