//! Row mapping and the reads both the writer jobs and the read pool use.
//! Every function takes a [`Db`], so it works inside a write transaction
//! as well as on a read connection, on either engine (docs/adr/0009).

use super::{from_ms, Db, Dialect, Row, StoreError};
use crate::hub::Scope;
use callahead_core::call::{AttemptResult, CallStatus, Key, Outcome};
use callahead_core::calling_hours::CallingHours;
use callahead_core::ids::SupervisorId;
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::TemplateSet;
use callahead_core::wire::{
    AttemptView, CallDetail, CallView, Courier, Depot, Event, GeoPoint, Money, PickupPoint, RouteStop, Stop,
};
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.to_string().into())
}

pub(crate) fn opt_ms(v: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    v.map(from_ms).transpose()
}

fn parse<T: std::str::FromStr<Err = String>>(s: String) -> rusqlite::Result<T> {
    s.parse::<T>().map_err(corrupt)
}

pub fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_date(s: String) -> rusqlite::Result<NaiveDate> {
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(corrupt)
}

// ---------------------------------------------------------------- depots, people

const DEPOT_COLS: &str = "id, name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, \
     calling_hours, stop_at_window_start, min_heard_secs, machine_detection, retry_at_best_hour";

/// Calling hours as stored: JSON, `NULL` for the default.
pub fn hours_to_sql(h: &CallingHours) -> Result<Option<String>, StoreError> {
    if *h == CallingHours::default() {
        Ok(None)
    } else {
        Ok(Some(serde_json::to_string(h)?))
    }
}

fn hours_from_sql(json: Option<String>) -> rusqlite::Result<CallingHours> {
    json.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose().map(Option::unwrap_or_default)
}

fn depot_row(r: &Row<'_>) -> rusqlite::Result<Depot> {
    Ok(Depot {
        id: DepotId(r.get(0)?),
        name: r.get(1)?,
        time_zone: r.get(2)?,
        policy: AttemptPolicy {
            max_attempts: r.get(3)?,
            retry_spacing_secs: r.get(4)?,
            ring_timeout_secs: r.get(5)?,
            calling_hours: hours_from_sql(r.get(6)?)?,
            stop_at_window_start: r.get(7)?,
            min_heard_secs: r.get(8)?,
            machine_detection: r.get(9)?,
            retry_at_best_hour: r.get(10)?,
        },
    })
}

/// A depot's pickup points (none until it saves some).
pub fn pickup_points(db: &Db, depot: DepotId) -> Result<Vec<PickupPoint>, StoreError> {
    let json: Option<Option<String>> =
        db.opt("SELECT pickup_points FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))?;
    Ok(json
        .flatten()
        .map(|j| serde_json::from_str(&j).map_err(corrupt))
        .transpose()
        .map(Option::unwrap_or_default)?)
}

/// A depot's templates; the built-in wording until it saves its own.
pub fn templates(db: &Db, depot: DepotId) -> Result<Option<TemplateSet>, StoreError> {
    let json: Option<Option<String>> =
        db.opt("SELECT templates FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))?;
    Ok(json
        .map(|j| {
            j.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose().map(Option::unwrap_or_default)
        })
        .transpose()?)
}

pub fn depot(db: &Db, id: DepotId) -> Result<Option<Depot>, StoreError> {
    db.opt(&format!("SELECT {DEPOT_COLS} FROM depots WHERE id = ?1"), params![id.0], depot_row)
}

fn courier_row(r: &Row<'_>) -> rusqlite::Result<Courier> {
    Ok(Courier { id: CourierId(r.get(0)?), depot_id: DepotId(r.get(1)?), name: r.get(2)?, phone: r.get(3)? })
}

pub fn courier(db: &Db, id: CourierId) -> Result<Option<Courier>, StoreError> {
    db.opt("SELECT id, depot_id, name, phone FROM couriers WHERE id = ?1", params![id.0], courier_row)
}

/// Every depot, `only` one when given, in id order.
pub fn depots(db: &Db, only: Option<DepotId>) -> Result<Vec<Depot>, StoreError> {
    db.all(
        &format!("SELECT {DEPOT_COLS} FROM depots WHERE CAST(?1 AS BIGINT) IS NULL OR id = ?1 ORDER BY id"),
        params![only.map(|d| d.0)],
        depot_row,
    )
}

pub fn depot_couriers(db: &Db, depot: DepotId) -> Result<Vec<Courier>, StoreError> {
    db.all(
        "SELECT id, depot_id, name, phone FROM couriers WHERE depot_id = ?1 ORDER BY id",
        params![depot.0],
        courier_row,
    )
}

/// A stored token, found by its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub role: String,
    pub subject_id: Option<i64>,
    pub depot_id: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

pub fn token(db: &Db, hash: &str) -> Result<Option<TokenRow>, StoreError> {
    db.opt(
        "SELECT role, subject_id, depot_id, expires_at, revoked FROM tokens WHERE hash = ?1",
        params![hash],
        |r| {
            Ok::<_, rusqlite::Error>(TokenRow {
                role: r.get(0)?,
                subject_id: r.get(1)?,
                depot_id: r.get(2)?,
                expires_at: opt_ms(r.get(3)?)?,
                revoked: r.get(4)?,
            })
        },
    )
}

pub fn supervisor_depot(db: &Db, id: SupervisorId) -> Result<Option<DepotId>, StoreError> {
    db.opt("SELECT depot_id FROM supervisors WHERE id = ?1", params![id.0], |r| r.get(0).map(DepotId))
}

// ---------------------------------------------------------------- stops

const STOP_COLS: &str = "id, courier_id, depot_id, route_date, position, external_id, customer_name, phone, \
     time_zone, address, window_start, window_end, order_numbers, amount_minor, amount_currency, removed, \
     sequence, lat, lon, language, pickup_point, out_of_chain";

/// A stop and whether it was removed from its route.
#[derive(Debug, Clone)]
pub struct StopRow {
    pub stop: Stop,
    pub removed: bool,
}

fn stop_row(r: &Row<'_>) -> rusqlite::Result<StopRow> {
    let orders: String = r.get(12)?;
    let minor: Option<i64> = r.get(13)?;
    let currency: Option<String> = r.get(14)?;
    let lat: Option<f64> = r.get(17)?;
    let lon: Option<f64> = r.get(18)?;
    let language: Option<String> = r.get(19)?;
    let pickup: Option<String> = r.get(20)?;
    let out_of_chain: Option<String> = r.get(21)?;
    Ok(StopRow {
        stop: Stop {
            id: StopId(r.get(0)?),
            courier_id: CourierId(r.get(1)?),
            depot_id: DepotId(r.get(2)?),
            route_date: parse_date(r.get(3)?)?,
            position: r.get(4)?,
            sequence: r.get(16)?,
            external_id: r.get(5)?,
            customer_name: r.get(6)?,
            phone: r.get(7)?,
            time_zone: r.get(8)?,
            address: r.get(9)?,
            window_start: from_ms(r.get(10)?)?,
            window_end: from_ms(r.get(11)?)?,
            order_numbers: serde_json::from_str(&orders).map_err(corrupt)?,
            amount: minor.zip(currency).map(|(minor, currency)| Money { minor, currency }),
            location: lat.zip(lon).map(|(lat, lon)| GeoPoint { lat, lon }),
            language: language
                .map(|l| serde_json::from_value(serde_json::Value::String(l)))
                .transpose()
                .map_err(corrupt)?,
            pickup_point: pickup.map(|p| serde_json::from_str(&p)).transpose().map_err(corrupt)?,
            out_of_chain: out_of_chain
                .map(|o| serde_json::from_value(serde_json::Value::String(o)))
                .transpose()
                .map_err(corrupt)?,
        },
        removed: r.get(15)?,
    })
}

pub fn stop(db: &Db, id: StopId) -> Result<Option<StopRow>, StoreError> {
    db.opt(&format!("SELECT {STOP_COLS} FROM stops WHERE id = ?1"), params![id.0], stop_row)
}

/// Every stop of a route, removed ones included, in route order.
pub fn route_stops(db: &Db, courier: CourierId, date: NaiveDate) -> Result<Vec<StopRow>, StoreError> {
    // `removed` sorts live (false) first on both engines.
    db.all(
        &format!(
            "SELECT {STOP_COLS} FROM stops WHERE courier_id = ?1 AND route_date = ?2
             ORDER BY removed, sequence, position, id"
        ),
        params![courier.0, date_str(date)],
        stop_row,
    )
}

/// The live stops of every route of `date` in a depot.
pub fn depot_stops(db: &Db, depot: DepotId, date: NaiveDate) -> Result<Vec<Stop>, StoreError> {
    db.all(
        &format!(
            "SELECT {STOP_COLS} FROM stops WHERE depot_id = ?1 AND route_date = ?2 AND removed = FALSE
             ORDER BY courier_id, sequence, position, id"
        ),
        params![depot.0, date_str(date)],
        |r| stop_row(r).map(|s| s.stop),
    )
}

/// Whether the courier planned their own order for this route.
pub fn route_planned(db: &Db, courier: CourierId, date: NaiveDate) -> Result<bool, StoreError> {
    let found = db.opt(
        "SELECT 1 FROM route_plans WHERE courier_id = ?1 AND route_date = ?2",
        params![courier.0, date_str(date)],
        |_| Ok::<_, StoreError>(()),
    )?;
    Ok(found.is_some())
}

/// The route as the courier sees it: live stops with each one's latest call.
pub fn route(db: &Db, courier: CourierId, date: NaiveDate) -> Result<Vec<RouteStop>, StoreError> {
    let mut out = Vec::new();
    for row in route_stops(db, courier, date)? {
        if row.removed {
            continue;
        }
        let call = latest_call_for_stop(db, row.stop.id)?.map(|c| c.view);
        out.push(RouteStop { stop: row.stop, call });
    }
    Ok(out)
}

// ---------------------------------------------------------------- calls

const CALL_COLS: &str = "id, stop_id, courier_id, depot_id, idempotency_key, status, outcome, attempt, \
     max_attempts, next_action_at, created_at, updated_at, last_seq, retry_spacing_secs, ring_timeout_secs, \
     calling_hours, stop_at_window_start, min_heard_secs, machine_detection, retry_at_best_hour";

/// A call with the policy snapshot it runs under.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub view: CallView,
    pub retry_spacing_secs: u32,
    pub ring_timeout_secs: u32,
    pub calling_hours: CallingHours,
    pub stop_at_window_start: bool,
    pub min_heard_secs: u32,
    pub machine_detection: bool,
    pub retry_at_best_hour: bool,
}

fn call_row(r: &Row<'_>) -> rusqlite::Result<CallRow> {
    let outcome: Option<String> = r.get(6)?;
    Ok(CallRow {
        view: CallView {
            id: CallId(r.get(0)?),
            stop_id: StopId(r.get(1)?),
            courier_id: CourierId(r.get(2)?),
            depot_id: DepotId(r.get(3)?),
            idempotency_key: r.get(4)?,
            status: parse::<CallStatus>(r.get(5)?)?,
            outcome: outcome.map(parse::<Outcome>).transpose()?,
            attempts_made: r.get(7)?,
            max_attempts: r.get(8)?,
            next_attempt_at: opt_ms(r.get(9)?)?,
            created_at: from_ms(r.get(10)?)?,
            updated_at: from_ms(r.get(11)?)?,
            last_seq: r.get::<_, i64>(12)? as u64,
        },
        retry_spacing_secs: r.get(13)?,
        ring_timeout_secs: r.get(14)?,
        calling_hours: hours_from_sql(r.get(15)?)?,
        stop_at_window_start: r.get(16)?,
        min_heard_secs: r.get(17)?,
        machine_detection: r.get(18)?,
        retry_at_best_hour: r.get(19)?,
    })
}

pub fn call(db: &Db, id: CallId) -> Result<Option<CallRow>, StoreError> {
    db.opt(&format!("SELECT {CALL_COLS} FROM calls WHERE id = ?1"), params![id.0], call_row)
}

pub fn call_by_key(db: &Db, courier: CourierId, key: &str) -> Result<Option<CallRow>, StoreError> {
    db.opt(
        &format!("SELECT {CALL_COLS} FROM calls WHERE courier_id = ?1 AND idempotency_key = ?2"),
        params![courier.0, key],
        call_row,
    )
}

pub fn latest_call_for_stop(db: &Db, stop: StopId) -> Result<Option<CallRow>, StoreError> {
    db.opt(
        &format!("SELECT {CALL_COLS} FROM calls WHERE stop_id = ?1 ORDER BY id DESC LIMIT 1"),
        params![stop.0],
        call_row,
    )
}

pub fn active_calls_for_stop(db: &Db, stop: StopId) -> Result<Vec<CallRow>, StoreError> {
    db.all(
        &format!(
            "SELECT {CALL_COLS} FROM calls WHERE stop_id = ?1 AND status NOT IN ('finished', 'cancelled')"
        ),
        params![stop.0],
        call_row,
    )
}

pub fn active_call_count(db: &Db, courier: CourierId) -> Result<usize, StoreError> {
    let n: i64 = db.one(
        "SELECT COUNT(*) FROM calls WHERE courier_id = ?1 AND status NOT IN ('finished', 'cancelled')",
        params![courier.0],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// When the earliest scheduled call is due, if any.
pub fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let v: Option<i64> =
        db.one("SELECT MIN(next_action_at) FROM calls WHERE next_action_at IS NOT NULL", params![], |r| {
            r.get(0)
        })?;
    Ok(opt_ms(v)?)
}

pub fn due_calls(db: &Db, now: DateTime<Utc>, limit: usize) -> Result<Vec<CallId>, StoreError> {
    db.all(
        "SELECT id FROM calls WHERE next_action_at IS NOT NULL AND next_action_at <= ?1
         ORDER BY next_action_at, id LIMIT ?2",
        params![super::ms(now), limit as i64],
        |r| r.get(0).map(CallId),
    )
}

/// What a stopped server may have left open: every attempt without an end,
/// whatever its call's status (a key press finishes the call while the
/// goodbye still plays), and every call still in flight (dialing, ringing,
/// answered) even if its attempt row says otherwise. `(call, attempt)`
/// pairs, oldest first.
pub fn unfinished_attempts(db: &Db) -> Result<Vec<(CallId, u32)>, StoreError> {
    db.all(
        "SELECT call_id, number FROM attempts WHERE ended_at IS NULL
         UNION
         SELECT id, attempt FROM calls WHERE status IN ('dialing', 'ringing', 'answered')
         ORDER BY 1, 2",
        params![],
        |r| Ok::<_, rusqlite::Error>((CallId(r.get(0)?), r.get(1)?)),
    )
}

// ---------------------------------------------------------------- presence

/// Records that a courier's app is (or is no longer) connected, in the same
/// transaction as its `app_connection` event.
pub fn set_app_online(
    tx: &super::WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    online: bool,
) -> Result<(), StoreError> {
    if online {
        tx.exec(
            "INSERT INTO apps_online (courier_id, depot_id) VALUES (?1, ?2)
             ON CONFLICT(courier_id) DO UPDATE SET depot_id = excluded.depot_id",
            params![courier.0, depot.0],
        )?;
    } else {
        tx.exec("DELETE FROM apps_online WHERE courier_id = ?1", params![courier.0])?;
    }
    Ok(())
}

/// Every courier recorded as connected, with their depot.
pub fn apps_online(db: &Db) -> Result<Vec<(CourierId, DepotId)>, StoreError> {
    db.all("SELECT courier_id, depot_id FROM apps_online ORDER BY courier_id", params![], |r| {
        Ok::<_, rusqlite::Error>((CourierId(r.get(0)?), DepotId(r.get(1)?)))
    })
}

// ---------------------------------------------------------------- the log

/// The log's identity: a random id made with the database, so a client that
/// resumes against another database (a server swap) can tell.
pub fn log_id(db: &Db) -> Result<String, StoreError> {
    db.one("SELECT value FROM server_meta WHERE key = 'log_id'", params![], |r| r.get(0))
}

/// The domain time of the newest event, if any.
pub fn last_event_at(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> =
        db.opt("SELECT at FROM events ORDER BY seq DESC LIMIT 1", params![], |r| r.get(0))?;
    Ok(opt_ms(at)?)
}

/// Filter for the call list: `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub depot: Option<DepotId>,
    pub courier: Option<CourierId>,
    pub date: Option<NaiveDate>,
}

pub fn list_calls(db: &Db, f: &CallFilter, limit: usize) -> Result<Vec<CallDetail>, StoreError> {
    let calls = filtered_calls(db, f, limit)?;
    calls.into_iter().map(|c| Ok(CallDetail { attempts: attempts(db, c.view.id)?, call: c.view })).collect()
}

/// The calls matching `f`, without their attempts, in id order.
pub fn filtered_calls(db: &Db, f: &CallFilter, limit: usize) -> Result<Vec<CallRow>, StoreError> {
    let sql = format!(
        "SELECT {} FROM calls c JOIN stops s ON s.id = c.stop_id
         WHERE (CAST(?1 AS BIGINT) IS NULL OR c.depot_id = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR c.courier_id = ?2)
           AND (CAST(?3 AS TEXT) IS NULL OR s.route_date = ?3)
         ORDER BY c.id LIMIT ?4",
        CALL_COLS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
    );
    db.all(
        &sql,
        params![f.depot.map(|d| d.0), f.courier.map(|c| c.0), f.date.map(date_str), limit as i64],
        call_row,
    )
}

/// Every smart call of a stop, oldest first, with its attempts.
pub fn stop_calls(db: &Db, stop: StopId) -> Result<Vec<CallDetail>, StoreError> {
    let calls = db.all(
        &format!("SELECT {CALL_COLS} FROM calls WHERE stop_id = ?1 ORDER BY id"),
        params![stop.0],
        call_row,
    )?;
    calls.into_iter().map(|c| Ok(CallDetail { attempts: attempts(db, c.view.id)?, call: c.view })).collect()
}

// ---------------------------------------------------------------- attempts

/// An attempt as recorded, with the last provider seq applied to it.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub view: AttemptView,
    pub provider_seq: u32,
}

const ATTEMPT_COLS: &str =
    "number, placed_at, ringing_at, answered_at, key, ended_at, result, provider_seq, script, talk_secs, provider_ref";

fn attempt_row(r: &Row<'_>) -> rusqlite::Result<AttemptRow> {
    let key: Option<String> = r.get(4)?;
    let result: Option<String> = r.get(6)?;
    Ok(AttemptRow {
        view: AttemptView {
            number: r.get(0)?,
            placed_at: from_ms(r.get(1)?)?,
            ringing_at: opt_ms(r.get(2)?)?,
            answered_at: opt_ms(r.get(3)?)?,
            key: key.map(Key::try_from).transpose().map_err(corrupt)?,
            ended_at: opt_ms(r.get(5)?)?,
            result: result.map(parse::<AttemptResult>).transpose()?,
            script: r.get(8)?,
            talk_secs: r.get(9)?,
            provider_ref: r.get(10)?,
        },
        provider_seq: r.get(7)?,
    })
}

pub fn attempt(db: &Db, call: CallId, number: u32) -> Result<Option<AttemptRow>, StoreError> {
    db.opt(
        &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE call_id = ?1 AND number = ?2"),
        params![call.0, number],
        attempt_row,
    )
}

pub fn attempts(db: &Db, call: CallId) -> Result<Vec<AttemptView>, StoreError> {
    db.all(
        &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE call_id = ?1 ORDER BY number"),
        params![call.0],
        |r| attempt_row(r).map(|a| a.view),
    )
}

pub fn call_detail(db: &Db, id: CallId) -> Result<Option<CallDetail>, StoreError> {
    match call(db, id)? {
        None => Ok(None),
        Some(c) => Ok(Some(CallDetail { attempts: attempts(db, id)?, call: c.view })),
    }
}

// ---------------------------------------------------------------- events

pub fn head_seq(db: &Db) -> Result<u64, StoreError> {
    db.one("SELECT COALESCE(MAX(seq), 0) FROM events", params![], |r| r.get::<_, i64>(0).map(|v| v as u64))
}

fn event_row(r: &Row<'_>) -> Result<Event, StoreError> {
    let kind: String = r.get(6)?;
    let call: Option<String> = r.get(7)?;
    Ok(Event {
        seq: r.get::<_, i64>(0)? as u64,
        at: from_ms(r.get(1)?)?,
        origin_wall_ms: r.get(2)?,
        depot_id: DepotId(r.get(3)?),
        courier_id: CourierId(r.get(4)?),
        stop_id: r.get::<_, Option<i64>>(5)?.map(StopId),
        kind: serde_json::from_str(&kind)?,
        call: call.map(|c| serde_json::from_str(&c)).transpose()?,
    })
}

const EVENT_COLS: &str = "seq, at, origin_wall_ms, depot_id, courier_id, stop_id, kind, call";

/// The events of stop `?1`, found through its courier's range of the log:
/// every event about a stop carries the stop's courier (a stop never
/// changes courier; a re-import elsewhere is another stop), so the log needs
/// no index by stop, which would cost a random page on every append.
pub(super) const OF_STOP: &str = "courier_id = (SELECT courier_id FROM stops WHERE id = ?1) AND stop_id = ?1";

/// Every event of one stop, in seq order.
pub fn stop_events(db: &Db, stop: StopId) -> Result<Vec<Event>, StoreError> {
    db.all(
        &format!("SELECT {EVENT_COLS} FROM events WHERE {OF_STOP} ORDER BY seq"),
        params![stop.0],
        event_row,
    )
}

/// Domain time of each courier's latest event, for a depot's couriers.
pub fn last_activity(
    db: &Db,
    depot: DepotId,
) -> Result<std::collections::HashMap<CourierId, DateTime<Utc>>, StoreError> {
    // One index probe per courier (events_courier), not a scan of the
    // depot's whole history: this runs on every dashboard load.
    let rows = db.all(
        "SELECT c.id, (SELECT at FROM events e WHERE e.courier_id = c.id ORDER BY e.seq DESC LIMIT 1)
         FROM couriers c WHERE c.depot_id = ?1",
        params![depot.0],
        |r| Ok::<_, rusqlite::Error>((CourierId(r.get(0)?), r.get::<_, Option<i64>>(1)?)),
    )?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        if let (id, Some(at)) = row {
            out.insert(id, from_ms(at)?);
        }
    }
    Ok(out)
}

/// The statement for [`events_after`] of one kind of scope, per engine: a
/// courier's feed leaves out what is not for couriers by the event's type,
/// a JSON field.
fn events_after_sql(scope: &Scope, dialect: Dialect) -> String {
    const COLS: &str = EVENT_COLS;
    match (scope, dialect) {
        // Filtered here, not after the query: replay pages by row count.
        (Scope::Courier(_), Dialect::Sqlite) => format!(
            "SELECT {COLS} FROM events WHERE courier_id = ?1 AND seq > ?2
               AND json_extract(kind, '$.type') NOT IN ('{}') ORDER BY seq LIMIT ?3",
            crate::hub::NOT_FOR_COURIERS.join("', '")
        ),
        (Scope::Courier(_), Dialect::Postgres) => format!(
            "SELECT {COLS} FROM events WHERE courier_id = ?1 AND seq > ?2
               AND kind::jsonb ->> 'type' NOT IN ('{}') ORDER BY seq LIMIT ?3",
            crate::hub::NOT_FOR_COURIERS.join("', '")
        ),
        (Scope::Depot(_), _) => {
            format!("SELECT {COLS} FROM events WHERE depot_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")
        }
        (Scope::All, _) => {
            format!(
                "SELECT {COLS} FROM events WHERE CAST(?1 AS BIGINT) = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            )
        }
    }
}

/// Up to `limit` events of `scope` with seq > `after`, in seq order.
pub fn events_after(db: &Db, scope: Scope, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
    let id = match scope {
        Scope::Courier(c) => c.0,
        Scope::Depot(d) => d.0,
        Scope::All => 0,
    };
    db.all(&events_after_sql(&scope, db.dialect()), params![id, after as i64, limit as i64], event_row)
}

// ---------------------------------------------------------------- metrics

/// A gauge: name, labels, value.
pub type Gauge = (&'static str, Vec<(&'static str, String)>, f64);

/// Gauges of stored state for `/metrics`, each on an index: active calls by
/// status, the queues of due work, and every webhook endpoint's backlog.
pub fn metric_gauges(db: &mut Db) -> Result<Vec<Gauge>, StoreError> {
    db.snapshot(gauges)
}

fn gauges(db: &Db) -> Result<Vec<Gauge>, StoreError> {
    let mut out: Vec<Gauge> = Vec::new();
    out.push(("callahead_event_log_head", Vec::new(), head_seq(db)? as f64));
    for status in ["scheduled", "dialing", "ringing", "answered"] {
        out.push(("callahead_calls_active", vec![("status", status.to_owned())], 0.0));
    }
    let rows = db.all(
        "SELECT status, COUNT(*) FROM calls WHERE status NOT IN ('finished', 'cancelled') GROUP BY status",
        params![],
        |r| Ok::<_, rusqlite::Error>((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )?;
    for (status, n) in rows {
        out.retain(|(name, l, _)| !(*name == "callahead_calls_active" && l[0].1 == status));
        out.push(("callahead_calls_active", vec![("status", status)], n as f64));
    }
    for (queue, sql) in [
        ("calls", "SELECT COUNT(*) FROM calls WHERE next_action_at IS NOT NULL"),
        ("messages", "SELECT COUNT(*) FROM messages WHERE next_at IS NOT NULL"),
        ("campaign_steps", "SELECT COUNT(*) FROM campaign_runs WHERE next_at IS NOT NULL"),
    ] {
        let n: i64 = db.one(sql, params![], |r| r.get(0))?;
        out.push(("callahead_queue_depth", vec![("queue", queue.to_owned())], n as f64));
    }
    let rows = db.all(
        "SELECT e.id, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE depot_id = e.depot_id) - e.cursor,
           (SELECT COUNT(*) FROM webhook_dead_letters d WHERE d.endpoint_id = e.id)
         FROM webhook_endpoints e",
        params![],
        |r| Ok::<_, rusqlite::Error>((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)),
    )?;
    for (id, backlog, dead) in rows {
        out.push((
            "callahead_webhook_backlog_events",
            vec![("endpoint", id.to_string())],
            backlog.max(0) as f64,
        ));
        out.push(("callahead_webhook_dead_letters", vec![("endpoint", id.to_string())], dead as f64));
    }
    Ok(out)
}
