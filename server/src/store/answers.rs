//! What the best-hour retries learn from (`callahead_core::best_hour`):
//! counters of attempts and answers, updated in the transaction that ends
//! each attempt. Per depot by the customer's local weekday and hour; per
//! customer number by local hour, the number kept only as an HMAC-SHA256
//! under a random key of this database (`server_meta.number_key`), one row
//! per stop and hour so erasing a stop's personal data deletes exactly what
//! was learned from it (`super::erasure`). See docs/calling-policy.md.

use super::{from_ms, Args, Db, Row, StoreError, WriteTx};
use callahead_core::best_hour::{answer_signal, AnswerHistory, Slot, Tally};
use callahead_core::{AttemptResult, CallId, DepotId};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use rusqlite::{params, Connection};
use sha2::Sha256;
use std::str::FromStr;

/// The keyed hash a number's counters are filed under. The key lives in
/// the database: the hash keeps the number out of these rows (and makes it
/// differ between deployments); erasure is what removes a customer, by
/// deleting their rows.
fn keyed(key: &str, phone: &str) -> Result<Vec<u8>, StoreError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("number key: {e}")))?;
    mac.update(phone.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

const NUMBER_KEY: &str = "SELECT value FROM server_meta WHERE key = 'number_key'";

fn number_key(db: &Db, phone: &str) -> Result<Vec<u8>, StoreError> {
    let key: String = db.one(NUMBER_KEY, params![], |r| r.get(0))?;
    keyed(&key, phone)
}

struct Sample {
    depot: i64,
    stop: i64,
    phone: String,
    slot: Slot,
    answered: bool,
}

/// Adds `s` to the counters through `exec` (the store's connection, or the
/// SQLite one a migration runs on); `number` is its number's keyed hash,
/// `None` for an erased stop, which has no number left to learn about.
fn count(
    s: &Sample,
    number: Option<Vec<u8>>,
    exec: impl Fn(&str, Args<'_>) -> Result<usize, StoreError>,
) -> Result<(), StoreError> {
    let answered = u32::from(s.answered);
    exec(
        "INSERT INTO depot_answer_stats (depot_id, weekday, hour, attempts, answered) VALUES (?1, ?2, ?3, 1, ?4)
         ON CONFLICT (depot_id, weekday, hour)
         DO UPDATE SET attempts = depot_answer_stats.attempts + 1,
           answered = depot_answer_stats.answered + excluded.answered",
        params![s.depot, s.slot.weekday, s.slot.hour, answered],
    )?;
    if let Some(number) = number {
        exec(
            "INSERT INTO number_answer_stats (stop_id, hour, depot_id, number_key, attempts, answered)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT (stop_id, hour)
             DO UPDATE SET attempts = number_answer_stats.attempts + 1,
               answered = number_answer_stats.answered + excluded.answered",
            params![s.stop, s.slot.hour, s.depot, number, answered],
        )?;
    }
    Ok(())
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

/// An ended attempt with what [`sample`] needs of its call and stop.
const ATTEMPTS: &str = "SELECT c.depot_id, c.stop_id, s.phone, s.time_zone, a.placed_at, a.result
     FROM attempts a JOIN calls c ON c.id = a.call_id JOIN stops s ON s.id = c.stop_id";

/// The row as a sample, `None` if its result says nothing of answering.
fn sample(r: &Row<'_>) -> Result<Option<Sample>, StoreError> {
    let result: Option<String> = r.get(5)?;
    let Some(answered) = result.and_then(|x| AttemptResult::from_str(&x).ok()).and_then(answer_signal) else {
        return Ok(None);
    };
    let zone: String = r.get(3)?;
    let slot = Slot::of(from_ms(r.get(4)?)?, tz(&zone));
    Ok(Some(Sample { depot: r.get(0)?, stop: r.get(1)?, phone: r.get(2)?, slot, answered }))
}

/// Counts attempt `n` of call `id`, which just ended with `result`, if the
/// result says anything about the customer answering. Runs in the
/// transaction that ends the attempt, so the counters never miss or
/// double an attempt.
pub fn record(tx: &WriteTx<'_>, id: CallId, n: u32, result: AttemptResult) -> Result<(), StoreError> {
    if answer_signal(result).is_none() {
        return Ok(());
    }
    let db = tx.db();
    let found =
        db.opt(&format!("{ATTEMPTS} WHERE a.call_id = ?1 AND a.number = ?2"), params![id.0, n], sample)?;
    if let Some(s) = found.flatten() {
        let number = if s.phone.is_empty() { None } else { Some(number_key(db, &s.phone)?) };
        count(&s, number, |sql, args| db.exec(sql, args))?;
    }
    Ok(())
}

/// Counts every ended attempt of a database written before the counters
/// existed (schema 22), as [`record`] would have. SQLite only: no
/// PostgreSQL database is older than its counters (docs/adr/0009).
pub(super) fn backfill(conn: &Connection) -> Result<u64, StoreError> {
    let key: String = conn.query_row(NUMBER_KEY, [], |r| r.get(0))?;
    let exec = |sql: &str, args: Args<'_>| Ok(conn.prepare_cached(sql)?.execute(args)?);
    let mut read = conn.prepare(&format!("{ATTEMPTS} WHERE a.result IS NOT NULL"))?;
    let mut rows = read.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        if let Some(s) = sample(&Row::Sqlite(r))? {
            let number = if s.phone.is_empty() { None } else { Some(keyed(&key, &s.phone)?) };
            count(&s, number, exec)?;
            n += 1;
        }
    }
    Ok(n)
}

fn tally(r: &Row<'_>, from: usize) -> rusqlite::Result<Tally> {
    Ok(Tally { attempts: r.get(from)?, answered: r.get(from + 1)? })
}

/// What depot `depot` learned, and what it learned of the customer at
/// `phone` (nothing for an empty, erased number).
pub fn history(db: &Db, depot: DepotId, phone: &str) -> Result<AnswerHistory, StoreError> {
    let mut h = AnswerHistory::default();
    let rows = db.all(
        "SELECT weekday, hour, attempts, answered FROM depot_answer_stats WHERE depot_id = ?1",
        params![depot.0],
        |r| Ok::<_, rusqlite::Error>((r.get::<_, u8>(0)?, r.get::<_, u8>(1)?, tally(r, 2)?)),
    )?;
    for (w, hour, t) in rows {
        if let Some(slot) = h.depot.get_mut(usize::from(w)).and_then(|d| d.get_mut(usize::from(hour))) {
            *slot = t;
        }
    }
    if phone.is_empty() {
        return Ok(h);
    }
    let rows = db.all(
        "SELECT hour, CAST(SUM(attempts) AS BIGINT), CAST(SUM(answered) AS BIGINT) FROM number_answer_stats
         WHERE depot_id = ?1 AND number_key = ?2 GROUP BY hour",
        params![depot.0, number_key(db, phone)?],
        |r| Ok::<_, rusqlite::Error>((r.get::<_, u8>(0)?, tally(r, 1)?)),
    )?;
    for (hour, t) in rows {
        if let Some(slot) = h.customer.get_mut(usize::from(hour)) {
            *slot = t;
        }
    }
    Ok(h)
}

/// The attempts of the calls depot `depot` was asked for in `[from, to)`,
/// by the customer's local hour of placing, counted as [`record`] counts
/// them (the daily report's `answers_by_hour`).
pub fn by_hour(db: &Db, depot: DepotId, from: i64, to: i64) -> Result<[Tally; 24], StoreError> {
    let mut out = [Tally::default(); 24];
    let samples = db.all(
        &format!(
            "{ATTEMPTS} WHERE c.depot_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3 AND a.result IS NOT NULL"
        ),
        params![depot.0, from, to],
        sample,
    )?;
    for s in samples.into_iter().flatten() {
        if let Some(t) = out.get_mut(usize::from(s.slot.hour)) {
            t.add(Tally { attempts: 1, answered: u32::from(s.answered) });
        }
    }
    Ok(out)
}

/// Forgets what was learned from `stop` about its customer (the depot's
/// counters keep the attempts: they name nobody).
pub fn erase_stop(tx: &WriteTx<'_>, stop: i64) -> Result<(), StoreError> {
    tx.exec("DELETE FROM number_answer_stats WHERE stop_id = ?1", params![stop])?;
    Ok(())
}
