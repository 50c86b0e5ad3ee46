//! The phone's source of truth: stops, call snapshots, the outbox and the
//! event cursor in one SQLite file. Every write goes through [`Db::write`],
//! one immediate transaction each, so a crash leaves either all of a change
//! or none of it.

use super::error::{Error, Result};
use super::listener::{OutboxState, PlannedStop, StopState, Timeline};
use crate::auto_call::{AutoCallAhead, AutoDue, AutoStop, LeadBounds};
use crate::call::CallStatus;
use crate::ids::{CallId, StopId};
use crate::planning::{self, PlanSettings, PlanStop};
use crate::wire::{
    CallView, Degrees, ErrorCode, Event, EventKind, GeoPoint, OutOfChain, PickupPoint, PositionReport, Route,
    Stop,
};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Schema version stored in `PRAGMA user_version`.
pub(crate) const VERSION: u32 = 6;

const META_CURSOR: &str = "cursor";
const META_ROUTE_DATE: &str = "route_date";
const META_PLAN_SETTINGS: &str = "plan_settings";
const META_CREDENTIALS: &str = "credentials";
/// The identity of the server log the cursor belongs to (`Hello.log_id`).
const META_LOG_ID: &str = "log_id";
/// Set when the server's log turned out not to be the one the cursor and the
/// cached calls came from: the next route fetch replaces them.
const META_RESYNC: &str = "resync";
const META_AUTO: &str = "auto_call_ahead";
/// The courier's last reported position: `{"lat", "lon", "at"}`.
const META_POSITION: &str = "position";
/// The lead times the courier's depot allows (`LeadBounds`, from the route).
const META_AUTO_BOUNDS: &str = "auto_lead_bounds";
/// The fix time (ms) of the last position the server has.
const META_POSITION_SENT: &str = "position_sent_ms";
/// The latest server order held back by a pending reorder ([`HeldPlan`]).
const META_HELD_PLAN: &str = "held_plan";

/// The latest schema, created in one go on a fresh file.
const SCHEMA: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE stops (
    id INTEGER PRIMARY KEY NOT NULL,
    route_date TEXT NOT NULL,
    position INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_end_ms INTEGER NOT NULL,
    data TEXT NOT NULL,
    sequence INTEGER NOT NULL DEFAULT 0,
    visited INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stops_by_route ON stops (route_date, position);
CREATE TABLE calls (
    id INTEGER PRIMARY KEY NOT NULL,
    stop_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX calls_by_stop ON calls (stop_id, id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stop_id INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    last_error TEXT,
    last_error_code TEXT,
    send_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE pending_plan (
    route_date TEXT PRIMARY KEY NOT NULL,
    stop_ids TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE stop_events (
    seq INTEGER PRIMARY KEY NOT NULL,
    stop_id INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX stop_events_by_stop ON stop_events (stop_id, seq);
CREATE TABLE auto_calls (
    stop_id INTEGER PRIMARY KEY NOT NULL,
    eta_ms INTEGER NOT NULL,
    requested_at_ms INTEGER NOT NULL
);
CREATE TABLE withdrawn_stops (
    stop_id INTEGER PRIMARY KEY NOT NULL,
    at_ms INTEGER NOT NULL
);
";

/// Creates the latest schema on an empty database.
fn init(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(SCHEMA)?;
    Ok(())
}

/// Moves the schema from `version` to `version + 1`.
fn upgrade_from(tx: &Transaction<'_>, version: u32) -> Result<()> {
    match version {
        // v2: a failed request keeps its machine-readable code (the app shows
        // a different hint for "stop removed" than for "already called"),
        // sends are counted, and a stop's latest call is found by index.
        1 => tx.execute_batch(
            "ALTER TABLE outbox ADD COLUMN last_error_code TEXT;
             ALTER TABLE outbox ADD COLUMN send_attempts INTEGER NOT NULL DEFAULT 0;
             CREATE INDEX calls_by_stop ON calls (stop_id, id);",
        )?,
        // v3: route planning. The courier's order lives in `sequence` (the
        // server's until they reorder), `visited` takes a stop out of the ETA
        // chain, and a reorder waits in `pending_plan` until the server has it.
        2 => tx.execute_batch(
            "ALTER TABLE stops ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE stops ADD COLUMN visited INTEGER NOT NULL DEFAULT 0;
             UPDATE stops SET sequence = position;
             CREATE TABLE pending_plan (
                 route_date TEXT PRIMARY KEY NOT NULL,
                 stop_ids TEXT NOT NULL,
                 version INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?,
        // v4: every applied event about a stop is kept, so the app can show
        // the stop's whole story (the timeline) after a restart, offline.
        3 => tx.execute_batch(
            "CREATE TABLE stop_events (
                 seq INTEGER PRIMARY KEY NOT NULL,
                 stop_id INTEGER NOT NULL,
                 event TEXT NOT NULL
             );
             CREATE INDEX stop_events_by_stop ON stop_events (stop_id, seq);",
        )?,
        // v5: automatic call-ahead marks each stop it requested, with the
        // ETA that triggered it: once per stop, and the app shows why.
        4 => tx.execute_batch(
            "CREATE TABLE auto_calls (
                 stop_id INTEGER PRIMARY KEY NOT NULL,
                 eta_ms INTEGER NOT NULL,
                 requested_at_ms INTEGER NOT NULL
             );",
        )?,
        // v6: a stop whose request the courier withdrew before it was sent
        // leaves no outbox row behind, yet automatic call-ahead must still
        // leave that stop to the courier: the withdrawal is marked.
        5 => tx.execute_batch(
            "CREATE TABLE withdrawn_stops (
                 stop_id INTEGER PRIMARY KEY NOT NULL,
                 at_ms INTEGER NOT NULL
             );",
        )?,
        v => return Err(Error::Corrupt(format!("no upgrade from schema version {v}"))),
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        return Err(Error::Corrupt(format!(
            "the database has schema version {version}, newer than this app's {VERSION}"
        )));
    }
    if version == VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    if version == 0 {
        init(&tx)?;
    } else {
        for v in version..VERSION {
            upgrade_from(&tx, v)?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// A queued outbox entry, as the dispatcher sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutboxEntry {
    pub id: i64,
    pub stop_id: StopId,
    pub idempotency_key: String,
    pub send_attempts: u32,
}

/// What the dispatcher needs to decide what to send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DispatchView {
    /// Non-terminal calls known locally plus requests on their way.
    pub active: usize,
    /// Entries waiting to be sent, oldest first.
    pub queued: Vec<OutboxEntry>,
}

/// A reorder the server has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingPlan {
    pub date: NaiveDate,
    pub stop_ids: Vec<StopId>,
    /// Bumped by every local reorder: a confirmation of an older version
    /// must not clear a newer one.
    pub version: i64,
}

/// A `route_planned` the courier's pending reorder held back. Once the
/// server has the reorder, the held order applies if the server made it
/// after the reorder landed (its seq is past the reorder's): it started from
/// the courier's order. An older one is what the reorder replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct HeldPlan {
    seq: u64,
    date: NaiveDate,
    stop_ids: Vec<StopId>,
}

/// What applying one event changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Applied {
    /// The stop whose state changed, if it is known locally.
    pub stop: Option<StopState>,
    /// Every stop, in the new order, when the event reordered the route.
    pub reordered: Option<Vec<StopState>>,
    /// A call reached a terminal status: a slot under the cap is free.
    pub call_ended: bool,
    /// The current route was replaced on the server and must be refetched.
    pub refetch_route: Option<NaiveDate>,
    /// The courier withdrew this call's request before knowing it had
    /// reached the server: cancel it there.
    pub withdrawn_call: Option<CallId>,
}

/// What a local cancel found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LocalCancel {
    /// An unsent or refused request was removed; nothing reached the server.
    Removed(StopState),
    /// The request is on its way: wait for the answer, then cancel the call.
    InFlight,
    /// Nothing local: the stop's call (if any) must be cancelled on the server.
    NothingQueued(StopState),
}

pub(crate) struct Db {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a transaction drops it, which rolls it back, so the
    // connection behind a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Db> {
        let mut writer = Connection::open(path)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL lets the reader see committed data while the writer works.
        // NORMAL sync survives an app kill (the case the outbox promises);
        // only a power cut can lose the last commits.
        writer.pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))?;
        writer.pragma_update(None, "synchronous", "normal")?;
        migrate(&mut writer)?;
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Db { writer: Mutex::new(writer), reader: Mutex::new(reader) })
    }

    /// Runs `f` in one immediate transaction and commits it.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.reader);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.finish()?;
        Ok(value)
    }

    // ------------------------------------------------------------ reads

    pub(crate) fn cursor(&self) -> Result<u64> {
        self.read(cursor)
    }

    /// The courier's newest sign-in (kept in the app's private database).
    pub(crate) fn credentials(&self) -> Result<Option<super::credentials::Credentials>> {
        self.read(|tx| get_meta(tx, META_CREDENTIALS)?.map(|v| Ok(serde_json::from_str(&v)?)).transpose())
    }

    pub(crate) fn store_credentials(&self, c: &super::credentials::Credentials) -> Result<()> {
        let json = serde_json::to_string(c)?;
        self.write(|tx| set_meta(tx, META_CREDENTIALS, &json))
    }

    /// Whether this file holds a starting point for the event stream: a
    /// synced route or an applied event.
    pub(crate) fn has_synced(&self) -> Result<bool> {
        self.read(|tx| Ok(cursor(tx)? > 0 || route_date(tx)?.is_some()))
    }

    /// The date of the stored route, if one was synced.
    pub(crate) fn current_route_date(&self) -> Result<Option<NaiveDate>> {
        self.read(route_date)
    }

    pub(crate) fn stops(&self) -> Result<Vec<StopState>> {
        self.read(route_states)
    }

    /// The current route in planned order, with an ETA for every stop not
    /// yet visited, leaving `origin` (when known) at `now`.
    pub(crate) fn planned(&self, now: DateTime<Utc>, origin: Option<GeoPoint>) -> Result<Vec<PlannedStop>> {
        self.read(|tx| {
            let settings = plan_settings(tx)?;
            Ok(plan(route_states(tx)?, now, origin, &settings))
        })
    }

    /// Stops the courier will reach within `minutes` of `now` by the planned
    /// order's ETAs (or, arriving early, whose window opens by then), whose
    /// window is not over, not visited, in today's chain, and that a tap would call: no call
    /// yet (or only a cancelled one) and no request waiting.
    pub(crate) fn stops_due_within(&self, now: DateTime<Utc>, minutes: u32) -> Result<Vec<StopState>> {
        let horizon = now + chrono::Duration::minutes(i64::from(minutes));
        Ok(self
            .planned(now, None)?
            .into_iter()
            .filter(|p| {
                let s = &p.state;
                let reached_by = p.eta.is_some_and(|eta| eta.max(s.stop.window_start) <= horizon);
                let called = s.call.as_ref().is_some_and(|c| c.status != CallStatus::Cancelled);
                let waiting = matches!(s.outbox, Some(OutboxState::Queued | OutboxState::Sending));
                reached_by && s.stop.window_end > now && !called && !waiting
            })
            .map(|p| p.state)
            .collect())
    }

    /// Everything this phone knows happened to a stop, oldest first: the
    /// events it applied, then a request still waiting to be sent.
    pub(crate) fn timeline(&self, stop_id: StopId) -> Result<Timeline> {
        self.read(|tx| {
            let events = tx
                .prepare_cached("SELECT event FROM stop_events WHERE stop_id = ?1 ORDER BY seq")?
                .query_map([stop_id.0], |r| r.get::<_, String>(0))?
                .map(|row| Ok(serde_json::from_str::<Event>(&row?)?))
                .collect::<Result<Vec<_>>>()?;
            let waiting = tx
                .prepare_cached(
                    "SELECT created_at_ms FROM outbox WHERE stop_id = ?1 AND state IN ('queued', 'sending')
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row([stop_id.0], |r| r.get::<_, i64>(0))
                .optional()?
                .and_then(DateTime::from_timestamp_millis);
            Ok(Timeline { events, requested_at: waiting })
        })
    }

    pub(crate) fn plan_settings(&self) -> Result<PlanSettings> {
        self.read(plan_settings)
    }

    pub(crate) fn pending_plan(&self) -> Result<Option<PendingPlan>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT route_date, stop_ids, version FROM pending_plan ORDER BY route_date LIMIT 1",
                )?
                .query_row([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
                .optional()?;
            row.map(|(date, ids, version)| {
                Ok(PendingPlan {
                    date: date.parse().map_err(|_| Error::Corrupt(format!("plan date {date:?}")))?,
                    stop_ids: serde_json::from_str(&ids)?,
                    version,
                })
            })
            .transpose()
        })
    }

    pub(crate) fn dispatch_view(&self) -> Result<DispatchView> {
        self.read(|tx| {
            let active = active_count(tx)?;
            let mut stmt = tx.prepare_cached(
                "SELECT id, stop_id, idempotency_key, send_attempts FROM outbox WHERE state = 'queued' ORDER BY id",
            )?;
            let queued = stmt
                .query_map([], |r| {
                    Ok(OutboxEntry {
                        id: r.get(0)?,
                        stop_id: StopId(r.get(1)?),
                        idempotency_key: r.get(2)?,
                        send_attempts: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DispatchView { active, queued })
        })
    }

    pub(crate) fn active_count(&self) -> Result<usize> {
        self.read(active_count)
    }

    // ------------------------------------------------------------ writes

    /// Stores a fetched route as the current one and moves the cursor up to
    /// its `head_seq`: the route already reflects every event up to there.
    /// Also returns the calls the courier withdrew before knowing they existed.
    pub(crate) fn store_route(&self, route: &Route) -> Result<(Vec<StopState>, Vec<CallId>)> {
        self.write(|tx| {
            let mut withdrawn = Vec::new();
            let date = route.date.to_string();
            set_meta(tx, META_ROUTE_DATE, &date)?;
            set_meta(tx, META_AUTO_BOUNDS, &serde_json::to_string(&route.auto_lead)?)?;
            // Stops missing from the new import are gone from the route; an
            // entry still queued for one is refused by the server and shown.
            // The others are updated in place, keeping what only this phone
            // knows (visited).
            let kept: std::collections::HashSet<i64> = route.stops.iter().map(|rs| rs.stop.id.0).collect();
            for id in route_ids(tx, route.date)? {
                if !kept.contains(&id.0) {
                    tx.execute("DELETE FROM stops WHERE id = ?1", [id.0])?;
                }
            }
            for rs in &route.stops {
                upsert_stop(tx, &rs.stop)?;
                if let Some(call) = &rs.call {
                    withdrawn.extend(withdrawn_call(tx, call)?);
                    upsert_call_if_newer(tx, call)?;
                }
            }
            // A reorder the server has not confirmed yet wins over the
            // server's order, rebased onto the stops the route has now.
            if let Some(plan) = pending_plan_for(tx, route.date)? {
                set_order(tx, route.date, &plan)?;
                let rebased = route_ids(tx, route.date)?;
                if rebased != plan {
                    save_pending_plan(tx, route.date, &rebased)?;
                }
            }
            let cursor = cursor(tx)?;
            if get_meta(tx, META_RESYNC)?.is_some() {
                // The log was restored or replaced: what this phone saw after
                // the route's head no longer happened; resume from the route.
                tx.execute("DELETE FROM stop_events WHERE seq > ?1", [seq_i64(route.head_seq)?])?;
                set_meta(tx, META_CURSOR, &route.head_seq.to_string())?;
                tx.execute("DELETE FROM meta WHERE key = ?1", [META_RESYNC])?;
            } else if route.head_seq > cursor {
                set_meta(tx, META_CURSOR, &route.head_seq.to_string())?;
            }
            Ok((route_states(tx)?, withdrawn))
        })
    }

    /// Applies one event and advances the cursor, in one transaction. An
    /// event at or below the cursor was applied before and is skipped.
    pub(crate) fn apply_event(&self, event: &Event) -> Result<Option<Applied>> {
        self.write(|tx| {
            if event.seq <= cursor(tx)? {
                return Ok(None);
            }
            set_meta(tx, META_CURSOR, &event.seq.to_string())?;
            let mut call_ended = false;
            let mut withdrawn = None;
            if let Some(call) = &event.call {
                withdrawn = withdrawn_call(tx, call)?;
                if upsert_call_if_newer(tx, call)? {
                    call_ended = call.status.is_terminal();
                }
            }
            let current = route_date(tx)?;
            let refetch_route = match &event.kind {
                EventKind::RouteReplaced { date } if current == Some(*date) => Some(*date),
                _ => None,
            };
            // Another device of this courier (or this one, echoed) planned the
            // route, or the server re-planned it after a customer's answer; a
            // reorder made here and not yet confirmed wins (docs/adr/0010).
            // Whether the answer took the stop out of today's chain is a
            // fact, not an order: it applies either way.
            let reordered = match &event.kind {
                EventKind::RoutePlanned { date, stop_ids, reason } if current == Some(*date) => {
                    if let (Some(reason), Some(id)) = (reason, event.stop_id) {
                        set_out_of_chain(tx, id, reason.out_of_chain())?;
                    }
                    if pending_plan_for(tx, *date)?.is_none() {
                        set_order(tx, *date, stop_ids)?;
                        Some(route_states(tx)?)
                    } else {
                        let held = HeldPlan { seq: event.seq, date: *date, stop_ids: stop_ids.clone() };
                        set_meta(tx, META_HELD_PLAN, &serde_json::to_string(&held)?)?;
                        None
                    }
                }
                _ => None,
            };
            // The customer picked a new window, or a pickup point, by the SMS link.
            match (&event.kind, event.stop_id) {
                (EventKind::StopRescheduled { window_start, window_end }, Some(id)) => {
                    set_window(tx, id, *window_start, *window_end)?;
                }
                (EventKind::PickupPointChosen { pickup_point }, Some(id)) => {
                    set_pickup_point(tx, id, pickup_point)?;
                }
                _ => {}
            }
            let stop_id = event.stop_id.or(event.call.as_ref().map(|c| c.stop_id));
            if let Some(id) = stop_id {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO stop_events (seq, stop_id, event) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    i64::try_from(event.seq).map_err(|_| Error::Corrupt(format!("seq {}", event.seq)))?,
                    id.0,
                    serde_json::to_string(event)?
                ])?;
            }
            let stop = match stop_id {
                Some(id) => stop_state(tx, id)?,
                None => None,
            };
            Ok(Some(Applied { stop, reordered, call_ended, refetch_route, withdrawn_call: withdrawn }))
        })
    }

    /// Moves the cursor forward to `seq` (never back).
    /// The server's log is not the one this phone followed (its cursor is
    /// beyond the head, or the log's identity changed). Forgets the cursor
    /// and the cached call snapshots (the server's are the truth now) and
    /// asks for a route fetch before the stream resumes. Taps in the outbox
    /// stay: their idempotency keys make resending them safe.
    pub(crate) fn forget_history(&self) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM calls", [])?;
            tx.execute(
                "DELETE FROM meta WHERE key IN (?1, ?2, ?3)",
                [META_CURSOR, META_LOG_ID, META_HELD_PLAN],
            )?;
            set_meta(tx, META_RESYNC, "1")
        })
    }

    /// Resync without a route (none was ever fetched): live from now on.
    pub(crate) fn resume_live(&self) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM meta WHERE key = ?1", [META_RESYNC])?;
            Ok(())
        })
    }

    /// Whether the stream must wait for a route fetch ([`Db::forget_history`]).
    pub(crate) fn needs_resync(&self) -> Result<bool> {
        self.read(|tx| Ok(get_meta(tx, META_RESYNC)?.is_some()))
    }

    /// Checks the server log's identity against the one the cursor came
    /// from; remembers it when none was known. `false`: another log.
    pub(crate) fn same_log(&self, log_id: &str) -> Result<bool> {
        self.write(|tx| match get_meta(tx, META_LOG_ID)? {
            Some(known) => Ok(known == log_id),
            None => set_meta(tx, META_LOG_ID, log_id).map(|()| true),
        })
    }

    pub(crate) fn advance_cursor(&self, seq: u64) -> Result<()> {
        self.write(|tx| {
            if seq > cursor(tx)? {
                set_meta(tx, META_CURSOR, &seq.to_string())?;
            }
            Ok(())
        })
    }

    /// The tap: one outbox entry per stop that has neither an active call nor
    /// a waiting request. Unknown stops reject the whole tap.
    /// Returns each stop's state and whether this tap queued a request for it.
    pub(crate) fn request_calls(
        &self,
        stop_ids: &[StopId],
        now: DateTime<Utc>,
    ) -> Result<Vec<(StopState, bool)>> {
        self.write(|tx| {
            let mut states = Vec::with_capacity(stop_ids.len());
            for &id in stop_ids {
                let Some(state) = stop_state(tx, id)? else {
                    return Err(Error::InvalidInput(format!(
                        "stop {id} is not on the stored route; sync the route first"
                    )));
                };
                let active = state.call.as_ref().is_some_and(|c| c.status.is_active());
                let waiting = matches!(state.outbox, Some(OutboxState::Queued | OutboxState::Sending));
                if active || waiting {
                    states.push((state, false));
                    continue;
                }
                tx.execute("DELETE FROM outbox WHERE stop_id = ?1 AND state = 'failed'", [id.0])?;
                tx.execute(
                    "INSERT INTO outbox (stop_id, idempotency_key, state, created_at_ms) VALUES (?1, ?2, 'queued', ?3)",
                    params![id.0, uuid::Uuid::new_v4().to_string(), now.timestamp_millis()],
                )?;
                let state = stop_state(tx, id)?.ok_or_else(|| Error::Corrupt(format!("stop {id} vanished")))?;
                states.push((state, true));
            }
            Ok(states)
        })
    }

    /// After a restart nothing is on its way any more: whatever was being
    /// sent goes back to the queue and is resent with the same key.
    pub(crate) fn requeue_interrupted(&self) -> Result<usize> {
        self.write(|tx| Ok(tx.execute("UPDATE outbox SET state = 'queued' WHERE state = 'sending'", [])?))
    }

    /// Forgets withdrawn requests older than `before`: had one reached the
    /// server, its call would have shown up long since.
    pub(crate) fn purge_withdrawn(&self, before: DateTime<Utc>) -> Result<usize> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM outbox WHERE state = 'withdrawn' AND created_at_ms < ?1",
                [before.timestamp_millis()],
            )?)
        })
    }

    /// Claims a queued entry for sending; `None` if it was cancelled meanwhile.
    pub(crate) fn mark_sending(&self, entry_id: i64) -> Result<Option<StopState>> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE outbox SET state = 'sending', send_attempts = send_attempts + 1
                 WHERE id = ?1 AND state = 'queued'",
                [entry_id],
            )?;
            if n == 0 {
                return Ok(None);
            }
            entry_stop_state(tx, entry_id)
        })
    }

    /// The server accepted the request: keep its call, drop the entry.
    pub(crate) fn complete_send(
        &self,
        entry_id: i64,
        stop_id: StopId,
        call: &CallView,
    ) -> Result<Option<StopState>> {
        self.write(|tx| {
            upsert_call_if_newer(tx, call)?;
            tx.execute("DELETE FROM outbox WHERE id = ?1", [entry_id])?;
            stop_state(tx, stop_id)
        })
    }

    /// Back to the queue (network down, cap reached elsewhere).
    pub(crate) fn requeue(&self, entry_id: i64, error: &str) -> Result<Option<StopState>> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET state = 'queued', last_error = ?2 WHERE id = ?1 AND state = 'sending'",
                params![entry_id, error],
            )?;
            entry_stop_state(tx, entry_id)
        })
    }

    /// The server refused the request for good.
    pub(crate) fn fail(&self, entry_id: i64, code: ErrorCode, message: &str) -> Result<Option<StopState>> {
        self.write(|tx| {
            tx.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?2, last_error_code = ?3 WHERE id = ?1",
                params![entry_id, message, code_to_str(code)?],
            )?;
            entry_stop_state(tx, entry_id)
        })
    }

    /// Removes a request that has not reached the server. One that was sent
    /// before and failed on the way may have reached it after all: it is kept
    /// as withdrawn, so the call is cancelled if it ever shows up.
    pub(crate) fn cancel_local(&self, stop_id: StopId, now: DateTime<Utc>) -> Result<LocalCancel> {
        self.write(|tx| {
            let Some(state) = stop_state(tx, stop_id)? else {
                return Err(Error::InvalidInput(format!("stop {stop_id} is not on the stored route")));
            };
            match state.outbox {
                Some(OutboxState::Sending) => Ok(LocalCancel::InFlight),
                Some(OutboxState::Queued | OutboxState::Failed { .. }) => {
                    tx.execute(
                        "UPDATE outbox SET state = 'withdrawn'
                         WHERE stop_id = ?1 AND state = 'queued' AND send_attempts > 0",
                        [stop_id.0],
                    )?;
                    tx.execute(
                        "DELETE FROM outbox WHERE stop_id = ?1 AND state IN ('queued', 'failed')",
                        [stop_id.0],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO withdrawn_stops (stop_id, at_ms) VALUES (?1, ?2)",
                        params![stop_id.0, now.timestamp_millis()],
                    )?;
                    let state = stop_state(tx, stop_id)?
                        .ok_or_else(|| Error::Corrupt(format!("stop {stop_id} vanished")))?;
                    Ok(LocalCancel::Removed(state))
                }
                None => Ok(LocalCancel::NothingQueued(state)),
            }
        })
    }

    /// The courier's new order for the current route: every stop exactly
    /// once. Stored now, sent to the server by the dispatcher.
    pub(crate) fn reorder(&self, stop_ids: &[StopId]) -> Result<Vec<StopState>> {
        self.write(|tx| {
            let Some(date) = route_date(tx)? else {
                return Err(Error::InvalidInput("no route is stored yet; sync the route first".into()));
            };
            let live = route_ids(tx, date)?;
            crate::validate::plan(stop_ids, &live).map_err(|e| Error::InvalidInput(e.message))?;
            set_order(tx, date, stop_ids)?;
            save_pending_plan(tx, date, stop_ids)?;
            route_states(tx)
        })
    }

    /// The server has this version of the plan, as of its event `server_head`
    /// (0 when it refused it): forget it unless the courier reordered again
    /// meanwhile. A server order that was held back for it and is newer than
    /// that (a re-plan made from the courier's order after it landed) applies
    /// now; the route in its order is returned then.
    pub(crate) fn plan_delivered(
        &self,
        date: NaiveDate,
        version: i64,
        server_head: u64,
    ) -> Result<Option<Vec<StopState>>> {
        self.write(|tx| {
            let cleared = tx.execute(
                "DELETE FROM pending_plan WHERE route_date = ?1 AND version = ?2",
                params![date.to_string(), version],
            )?;
            if cleared == 0 {
                return Ok(None);
            }
            let Some(held) = get_meta(tx, META_HELD_PLAN)? else { return Ok(None) };
            tx.execute("DELETE FROM meta WHERE key = ?1", [META_HELD_PLAN])?;
            let held: HeldPlan = serde_json::from_str(&held)?;
            if held.date != date || held.seq <= server_head || route_date(tx)? != Some(date) {
                return Ok(None);
            }
            set_order(tx, date, &held.stop_ids)?;
            Ok(Some(route_states(tx)?))
        })
    }

    pub(crate) fn set_visited(&self, stop_id: StopId, visited: bool) -> Result<StopState> {
        self.write(|tx| {
            tx.execute("UPDATE stops SET visited = ?2 WHERE id = ?1", params![stop_id.0, visited])?;
            stop_state(tx, stop_id)?
                .ok_or_else(|| Error::InvalidInput(format!("stop {stop_id} is not on the stored route")))
        })
    }

    pub(crate) fn set_plan_settings(&self, settings: &PlanSettings) -> Result<()> {
        settings.check().map_err(Error::InvalidInput)?;
        self.write(|tx| set_meta(tx, META_PLAN_SETTINGS, &serde_json::to_string(settings)?))
    }

    pub(crate) fn auto_settings(&self) -> Result<AutoCallAhead> {
        self.read(auto_settings)
    }

    /// Refused outside the depot's bounds (as of the last route fetch).
    pub(crate) fn set_auto_settings(&self, settings: &AutoCallAhead) -> Result<()> {
        self.write(|tx| {
            settings.check(&lead_bounds(tx)?).map_err(Error::InvalidInput)?;
            set_meta(tx, META_AUTO, &serde_json::to_string(settings)?)
        })
    }

    pub(crate) fn auto_lead_bounds(&self) -> Result<LeadBounds> {
        self.read(lead_bounds)
    }

    pub(crate) fn set_position(&self, position: GeoPoint, at: DateTime<Utc>) -> Result<()> {
        // Ranges exclude NaN; infinities are out of range too.
        let valid = (-90.0..=90.0).contains(&position.lat) && (-180.0..=180.0).contains(&position.lon);
        if !valid {
            return Err(Error::InvalidInput(format!(
                "position ({}, {}) is not a latitude and longitude",
                position.lat, position.lon
            )));
        }
        let json = serde_json::json!({ "lat": position.lat, "lon": position.lon, "at": at });
        self.write(|tx| set_meta(tx, META_POSITION, &json.to_string()))
    }

    /// The last position, unless the server has it (or a newer one).
    pub(crate) fn unsent_position(&self) -> Result<Option<PositionReport>> {
        self.read(|tx| {
            let Some(json) = get_meta(tx, META_POSITION)? else { return Ok(None) };
            let v: serde_json::Value = serde_json::from_str(&json)?;
            let (Some(lat), Some(lon)) = (v["lat"].as_f64(), v["lon"].as_f64()) else { return Ok(None) };
            let at: DateTime<Utc> = serde_json::from_value(v["at"].clone())?;
            let sent = get_meta(tx, META_POSITION_SENT)?.and_then(|s| s.parse::<i64>().ok());
            if sent.is_some_and(|ms| ms >= at.timestamp_millis()) {
                return Ok(None);
            }
            Ok(Some(PositionReport { lat: Degrees(lat), lon: Degrees(lon), at }))
        })
    }

    pub(crate) fn position_sent(&self, at: DateTime<Utc>) -> Result<()> {
        self.write(|tx| set_meta(tx, META_POSITION_SENT, &at.timestamp_millis().to_string()))
    }

    /// What automatic call-ahead decides on: its settings and the route in
    /// planned order with ETAs from the courier's last position at `now`,
    /// each stop marked if anyone ever asked to call it.
    pub(crate) fn auto_candidates(&self, now: DateTime<Utc>) -> Result<(AutoCallAhead, Vec<AutoStop>)> {
        self.read(|tx| {
            let settings = auto_settings(tx)?;
            if !settings.enabled {
                return Ok((settings, Vec::new()));
            }
            let origin = position(tx)?;
            let planned = plan(route_states(tx)?, now, origin, &plan_settings(tx)?);
            let stops = planned
                .into_iter()
                .map(|p| {
                    Ok(AutoStop {
                        id: p.state.stop.id,
                        eta: p.eta,
                        window_start: p.state.stop.window_start,
                        window_end: p.state.stop.window_end,
                        touched: touched(tx, p.state.stop.id)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((settings, stops))
        })
    }

    /// Queues automatic requests, each with its mark, in one transaction;
    /// a stop touched meanwhile (a tap) is skipped.
    pub(crate) fn request_auto(&self, due: &[AutoDue], now: DateTime<Utc>) -> Result<Vec<StopState>> {
        self.write(|tx| {
            let mut states = Vec::with_capacity(due.len());
            for d in due {
                if touched(tx, d.id)? {
                    continue;
                }
                tx.execute(
                    "INSERT INTO outbox (stop_id, idempotency_key, state, created_at_ms) VALUES (?1, ?2, 'queued', ?3)",
                    params![d.id.0, uuid::Uuid::new_v4().to_string(), now.timestamp_millis()],
                )?;
                tx.execute(
                    "INSERT INTO auto_calls (stop_id, eta_ms, requested_at_ms) VALUES (?1, ?2, ?3)",
                    params![d.id.0, d.eta.timestamp_millis(), now.timestamp_millis()],
                )?;
                if let Some(state) = stop_state(tx, d.id)? {
                    states.push(state);
                }
            }
            Ok(states)
        })
    }

    /// Stores a call snapshot the server returned (newer-only).
    pub(crate) fn store_call(&self, call: &CallView) -> Result<Option<StopState>> {
        self.write(|tx| {
            upsert_call_if_newer(tx, call)?;
            stop_state(tx, call.stop_id)
        })
    }
}

// ---------------------------------------------------------------- helpers

fn get_meta(tx: &Transaction<'_>, key: &str) -> Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, String>(0))
        .optional()?)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
    )?
    .execute([key, value])?;
    Ok(())
}

fn cursor(tx: &Transaction<'_>) -> Result<u64> {
    match get_meta(tx, META_CURSOR)? {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| Error::Corrupt(format!("cursor {v:?}"))),
    }
}

fn seq_i64(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Corrupt(format!("seq {seq}")))
}

fn route_date(tx: &Transaction<'_>) -> Result<Option<NaiveDate>> {
    get_meta(tx, META_ROUTE_DATE)?
        .map(|v| v.parse().map_err(|_| Error::Corrupt(format!("route date {v:?}"))))
        .transpose()
}

fn active_count(tx: &Transaction<'_>) -> Result<usize> {
    let calls: i64 =
        tx.query_row("SELECT COUNT(*) FROM calls WHERE status NOT IN ('finished', 'cancelled')", [], |r| {
            r.get(0)
        })?;
    // A request whose call is stored was deleted with it, so none counts twice.
    let sending: i64 =
        tx.query_row("SELECT COUNT(*) FROM outbox WHERE state = 'sending'", [], |r| r.get(0))?;
    Ok(usize::try_from(calls + sending).unwrap_or(0))
}

fn upsert_stop(tx: &Transaction<'_>, stop: &Stop) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO stops (id, route_date, position, window_start_ms, window_end_ms, data, sequence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET route_date = ?2, position = ?3, window_start_ms = ?4,
             window_end_ms = ?5, data = ?6, sequence = ?7",
    )?
    .execute(params![
        stop.id.0,
        stop.route_date.to_string(),
        stop.position,
        stop.window_start.timestamp_millis(),
        stop.window_end.timestamp_millis(),
        serde_json::to_string(stop)?,
        stop.sequence,
    ])?;
    Ok(())
}

/// Moves a stored stop's delivery window (a stop not stored is no-op).
/// Changes the stored stop's JSON; `None` if the stop is not stored.
fn edit_stop(tx: &Transaction<'_>, id: StopId, edit: impl FnOnce(&mut Stop)) -> Result<Option<Stop>> {
    let data: Option<String> = tx
        .prepare_cached("SELECT data FROM stops WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    let Some(data) = data else { return Ok(None) };
    let mut stop: Stop = serde_json::from_str(&data)?;
    edit(&mut stop);
    tx.prepare_cached("UPDATE stops SET data = ?1 WHERE id = ?2")?
        .execute(params![serde_json::to_string(&stop)?, id.0])?;
    Ok(Some(stop))
}

fn set_window(tx: &Transaction<'_>, id: StopId, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<()> {
    let edited = edit_stop(tx, id, |stop| {
        stop.window_start = start;
        stop.window_end = end;
    })?;
    if edited.is_some() {
        tx.prepare_cached("UPDATE stops SET window_start_ms = ?1, window_end_ms = ?2 WHERE id = ?3")?
            .execute(params![start.timestamp_millis(), end.timestamp_millis(), id.0])?;
    }
    Ok(())
}

fn set_pickup_point(tx: &Transaction<'_>, id: StopId, point: &PickupPoint) -> Result<()> {
    edit_stop(tx, id, |stop| stop.pickup_point = Some(point.clone()))?;
    Ok(())
}

fn set_out_of_chain(tx: &Transaction<'_>, id: StopId, out: Option<OutOfChain>) -> Result<()> {
    edit_stop(tx, id, |stop| stop.out_of_chain = out)?;
    Ok(())
}

/// The stops of `date`'s route in planned order.
fn route_ids(tx: &Transaction<'_>, date: NaiveDate) -> Result<Vec<StopId>> {
    let ids = tx
        .prepare_cached("SELECT id FROM stops WHERE route_date = ?1 ORDER BY sequence, position, id")?
        .query_map([date.to_string()], |r| r.get::<_, i64>(0).map(StopId))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// Puts `order` first, in that order; stops it does not name follow in their
/// previous order. Sequences end up dense from 0.
fn set_order(tx: &Transaction<'_>, date: NaiveDate, order: &[StopId]) -> Result<()> {
    let mut ids: Vec<StopId> = order.to_vec();
    let named: std::collections::HashSet<StopId> = order.iter().copied().collect();
    ids.extend(route_ids(tx, date)?.into_iter().filter(|id| !named.contains(id)));
    let mut stmt = tx.prepare_cached("UPDATE stops SET sequence = ?2 WHERE id = ?1 AND route_date = ?3")?;
    let mut sequence = 0u32;
    for id in ids {
        if stmt.execute(params![id.0, sequence, date.to_string()])? > 0 {
            sequence += 1;
        }
    }
    Ok(())
}

fn pending_plan_for(tx: &Transaction<'_>, date: NaiveDate) -> Result<Option<Vec<StopId>>> {
    tx.prepare_cached("SELECT stop_ids FROM pending_plan WHERE route_date = ?1")?
        .query_row([date.to_string()], |r| r.get::<_, String>(0))
        .optional()?
        .map(|ids| serde_json::from_str(&ids).map_err(Error::from))
        .transpose()
}

fn save_pending_plan(tx: &Transaction<'_>, date: NaiveDate, stop_ids: &[StopId]) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO pending_plan (route_date, stop_ids, version) VALUES (?1, ?2, 1)
         ON CONFLICT(route_date) DO UPDATE SET stop_ids = ?2, version = version + 1",
    )?
    .execute(params![date.to_string(), serde_json::to_string(stop_ids)?])?;
    Ok(())
}

/// The courier's setting, its lead moved into the depot's bounds should the
/// depot have narrowed them since the courier chose.
fn auto_settings(tx: &Transaction<'_>) -> Result<AutoCallAhead> {
    let mut settings = match get_meta(tx, META_AUTO)? {
        Some(json) => serde_json::from_str(&json)?,
        None => AutoCallAhead::default(),
    };
    settings.lead_minutes = lead_bounds(tx)?.clamp(settings.lead_minutes);
    Ok(settings)
}

fn lead_bounds(tx: &Transaction<'_>) -> Result<LeadBounds> {
    match get_meta(tx, META_AUTO_BOUNDS)? {
        Some(json) => Ok(serde_json::from_str(&json)?),
        None => Ok(LeadBounds::default()),
    }
}

fn position(tx: &Transaction<'_>) -> Result<Option<GeoPoint>> {
    let Some(json) = get_meta(tx, META_POSITION)? else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&json)?;
    Ok(v["lat"].as_f64().zip(v["lon"].as_f64()).map(|(lat, lon)| GeoPoint { lat, lon }))
}

/// Anyone ever asked to call this stop: a call of any status, a request in
/// any state, one the courier withdrew, or automatic call-ahead.
fn touched(tx: &Transaction<'_>, id: StopId) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE stop_id = ?1)
                 OR EXISTS (SELECT 1 FROM outbox WHERE stop_id = ?1)
                 OR EXISTS (SELECT 1 FROM auto_calls WHERE stop_id = ?1)
                 OR EXISTS (SELECT 1 FROM withdrawn_stops WHERE stop_id = ?1)",
        )?
        .query_row([id.0], |r| r.get::<_, bool>(0))?)
}

fn plan_settings(tx: &Transaction<'_>) -> Result<PlanSettings> {
    match get_meta(tx, META_PLAN_SETTINGS)? {
        Some(json) => Ok(serde_json::from_str(&json)?),
        None => Ok(PlanSettings::default()),
    }
}

/// ETAs along the planned order; visited stops, and those the customer's
/// answer took out of today's chain, get none.
fn plan(
    states: Vec<StopState>,
    now: DateTime<Utc>,
    origin: Option<GeoPoint>,
    settings: &PlanSettings,
) -> Vec<PlannedStop> {
    let chain: Vec<PlanStop> = states
        .iter()
        .filter(|s| !s.visited && s.stop.out_of_chain.is_none())
        .map(|s| PlanStop {
            id: s.stop.id,
            window_start: s.stop.window_start,
            window_end: s.stop.window_end,
            location: s.stop.location,
        })
        .collect();
    let mut etas = planning::etas(&chain, now, origin, settings).into_iter().peekable();
    states
        .into_iter()
        .map(|state| {
            let eta = match etas.peek() {
                Some(e) if e.id == state.stop.id => etas.next(),
                _ => None,
            };
            PlannedStop { state, eta: eta.map(|e| e.eta), fit: eta.map(|e| e.fit) }
        })
        .collect()
}

/// Stores `call` unless what is stored is as new or newer (by `last_seq`);
/// an entry whose request created it is done. Returns whether it was stored.
fn upsert_call_if_newer(tx: &Transaction<'_>, call: &CallView) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO calls (id, stop_id, status, last_seq, data) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET stop_id = ?2, status = ?3, last_seq = ?4, data = ?5
             WHERE excluded.last_seq > calls.last_seq",
        )?
        .execute(params![
            call.id.0,
            call.stop_id.0,
            call.status.as_str(),
            i64::try_from(call.last_seq)
                .map_err(|_| Error::Corrupt(format!("last_seq {}", call.last_seq)))?,
            serde_json::to_string(call)?,
        ])?;
    // The server has this request: whatever the outbox still holds for its
    // key (a send whose answer was lost) must not be sent or shown again.
    tx.prepare_cached("DELETE FROM outbox WHERE idempotency_key = ?1")?.execute([&call.idempotency_key])?;
    Ok(n > 0)
}

/// `call`, if it is still active and the courier withdrew its request.
fn withdrawn_call(tx: &Transaction<'_>, call: &CallView) -> Result<Option<CallId>> {
    let withdrawn = tx
        .prepare_cached("SELECT 1 FROM outbox WHERE idempotency_key = ?1 AND state = 'withdrawn'")?
        .exists([&call.idempotency_key])?;
    Ok((withdrawn && call.status.is_active()).then_some(call.id))
}

fn stop_state(tx: &Transaction<'_>, id: StopId) -> Result<Option<StopState>> {
    let Some((data, sequence, visited)) = tx
        .prepare_cached("SELECT data, sequence, visited FROM stops WHERE id = ?1")?
        .query_row([id.0], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, bool>(2)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let mut stop: Stop = serde_json::from_str(&data)?;
    // The local order may be ahead of the server's (a reorder not yet sent).
    stop.sequence = sequence;
    let call = tx
        .prepare_cached("SELECT data FROM calls WHERE stop_id = ?1 ORDER BY id DESC LIMIT 1")?
        .query_row([id.0], |r| r.get::<_, String>(0))
        .optional()?
        .map(|d| serde_json::from_str::<CallView>(&d))
        .transpose()?;
    let outbox = tx
        .prepare_cached(
            "SELECT state, last_error_code, last_error FROM outbox WHERE stop_id = ?1 AND state != 'withdrawn'
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?))
        })
        .optional()?
        .map(|(state, code, message)| outbox_state(&state, code.as_deref(), message))
        .transpose()?;
    let auto_eta = tx
        .prepare_cached("SELECT eta_ms FROM auto_calls WHERE stop_id = ?1")?
        .query_row([id.0], |r| r.get::<_, i64>(0))
        .optional()?
        .and_then(DateTime::from_timestamp_millis);
    Ok(Some(StopState { stop, call, outbox, visited, auto_eta }))
}

fn entry_stop_state(tx: &Transaction<'_>, entry_id: i64) -> Result<Option<StopState>> {
    let stop_id = tx
        .prepare_cached("SELECT stop_id FROM outbox WHERE id = ?1")?
        .query_row([entry_id], |r| r.get::<_, i64>(0))
        .optional()?;
    match stop_id {
        Some(id) => stop_state(tx, StopId(id)),
        None => Ok(None),
    }
}

fn route_states(tx: &Transaction<'_>) -> Result<Vec<StopState>> {
    let Some(date) = route_date(tx)? else { return Ok(Vec::new()) };
    let ids = tx
        .prepare_cached("SELECT id FROM stops WHERE route_date = ?1 ORDER BY sequence, position, id")?
        .query_map([date.to_string()], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut states = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(s) = stop_state(tx, StopId(id))? {
            states.push(s);
        }
    }
    Ok(states)
}

fn outbox_state(state: &str, code: Option<&str>, message: Option<String>) -> Result<OutboxState> {
    match state {
        "queued" => Ok(OutboxState::Queued),
        "sending" => Ok(OutboxState::Sending),
        "failed" => Ok(OutboxState::Failed {
            code: match code {
                Some(c) => serde_json::from_value(serde_json::Value::String(c.to_owned()))?,
                None => ErrorCode::Internal,
            },
            message: message.unwrap_or_default(),
        }),
        other => Err(Error::Corrupt(format!("outbox state {other:?}"))),
    }
}

fn code_to_str(code: ErrorCode) -> Result<String> {
    match serde_json::to_value(code)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(Error::Corrupt(format!("error code serialized as {other}"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::call::{Key, Outcome};
    use crate::client::outbox::next_batch;
    use crate::ids::{CourierId, DepotId};
    use crate::wire::RouteStop;
    use chrono::TimeZone;

    pub(crate) fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date")
    }

    pub(crate) fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).single().expect("valid time")
    }

    /// Stop `id` at route position `id`, with a one-hour window from `h`:00.
    pub(crate) fn stop(id: i64, h: u32) -> Stop {
        Stop {
            id: StopId(id),
            courier_id: CourierId(1),
            depot_id: DepotId(1),
            route_date: date(),
            position: id as u32,
            sequence: id as u32,
            external_id: format!("order-{id}"),
            customer_name: format!("Customer {id}"),
            phone: "+79161234567".into(),
            time_zone: "Europe/Moscow".into(),
            address: "Tverskaya 1".into(),
            window_start: at(h, 0),
            window_end: at(h + 1, 0),
            order_numbers: vec![format!("N{id}")],
            amount: None,
            location: None,
            language: None,
            pickup_point: None,
            out_of_chain: None,
        }
    }

    pub(crate) fn call(id: i64, stop: i64, key: &str, status: CallStatus, last_seq: u64) -> CallView {
        CallView {
            id: CallId(id),
            stop_id: StopId(stop),
            courier_id: CourierId(1),
            depot_id: DepotId(1),
            idempotency_key: key.into(),
            status,
            outcome: (status == CallStatus::Finished).then_some(Outcome::Confirmed),
            attempts_made: 1,
            max_attempts: 3,
            next_attempt_at: None,
            created_at: at(9, 0),
            updated_at: at(9, 0),
            last_seq,
        }
    }

    pub(crate) fn event(seq: u64, kind: EventKind, call: Option<CallView>) -> Event {
        Event {
            seq,
            at: at(9, 0),
            origin_wall_ms: 0,
            depot_id: DepotId(1),
            courier_id: CourierId(1),
            stop_id: call.as_ref().map(|c| c.stop_id),
            kind,
            call,
        }
    }

    pub(crate) fn route(stops: Vec<Stop>, head_seq: u64) -> Route {
        Route {
            courier_id: CourierId(1),
            date: date(),
            stops: stops.into_iter().map(|stop| RouteStop { stop, call: None }).collect(),
            head_seq,
            auto_lead: Default::default(),
        }
    }

    fn open(dir: &tempfile::TempDir) -> Db {
        Db::open(&dir.path().join("client.db")).expect("db opens")
    }

    fn ids(states: &[StopState]) -> Vec<i64> {
        states.iter().map(|s| s.stop.id.0).collect()
    }

    /// Tables with their columns, and indexes with theirs: what a migrated
    /// database must share with a fresh one.
    fn schema(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .expect("prepare");
        let objects: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (kind, name, table) in objects {
            let pragma = if kind == "table" { "table_xinfo" } else { "index_xinfo" };
            let mut cols = conn.prepare(&format!("SELECT * FROM pragma_{pragma}(?1)")).expect("pragma");
            let n = cols.column_count();
            let rows: Vec<String> = cols
                .query_map([&name], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}")))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|v| v.join(","))
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            out.push(format!("{kind} {name} on {table}: {}", rows.join(" | ")));
        }
        out
    }

    const SCHEMA_V1: &str = "
        CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE stops (id INTEGER PRIMARY KEY NOT NULL, route_date TEXT NOT NULL,
            position INTEGER NOT NULL, window_start_ms INTEGER NOT NULL, window_end_ms INTEGER NOT NULL,
            data TEXT NOT NULL);
        CREATE INDEX stops_by_route ON stops (route_date, position);
        CREATE TABLE calls (id INTEGER PRIMARY KEY NOT NULL, stop_id INTEGER NOT NULL, status TEXT NOT NULL,
            last_seq INTEGER NOT NULL, data TEXT NOT NULL);
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, stop_id INTEGER NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE, state TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
            last_error TEXT);
        PRAGMA user_version = 1;
    ";

    #[test]
    fn a_migrated_database_matches_a_fresh_one_and_keeps_its_taps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("v1.db");
        {
            let conn = Connection::open(&old).expect("open v1");
            conn.execute_batch(SCHEMA_V1).expect("v1 schema");
            conn.execute(
                "INSERT INTO outbox (stop_id, idempotency_key, state, created_at_ms) VALUES (7, 'key-from-v1', 'queued', 0)",
                [],
            )
            .expect("v1 tap");
        }
        let migrated = Db::open(&old).expect("migrates");
        let fresh = open(&dir);
        let (m, f) = (lock(&migrated.writer), lock(&fresh.writer));
        assert_eq!(schema(&m), schema(&f));
        let version: u32 = m.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
        assert_eq!(version, VERSION);
        drop((m, f));
        let view = migrated.dispatch_view().expect("view");
        assert_eq!(view.queued.len(), 1);
        assert_eq!(view.queued[0].idempotency_key, "key-from-v1");
    }

    #[test]
    fn a_database_from_a_newer_app_is_refused_not_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.db");
        drop(Db::open(&path).expect("fresh"));
        Connection::open(&path)
            .expect("open")
            .pragma_update(None, "user_version", VERSION + 1)
            .expect("bump");
        assert!(matches!(Db::open(&path), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_tap_survives_closing_and_reopening_the_file_with_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = {
            let db = open(&dir);
            db.store_route(&route(vec![stop(1, 9), stop(2, 10)], 0)).expect("route");
            db.request_calls(&[StopId(2)], at(8, 0)).expect("tap");
            let entry = db.dispatch_view().expect("view").queued.remove(0);
            // The app dies while the request is on its way.
            db.mark_sending(entry.id).expect("claim").expect("still queued");
            entry.idempotency_key
        };
        let db = open(&dir);
        assert_eq!(db.stops().expect("stops")[1].outbox, Some(OutboxState::Sending));
        assert_eq!(db.requeue_interrupted().expect("requeue"), 1);
        let view = db.dispatch_view().expect("view");
        assert_eq!(view.queued.len(), 1);
        assert_eq!(view.queued[0].stop_id, StopId(2));
        assert_eq!(view.queued[0].idempotency_key, key, "the resend reuses the stored key");
        assert_eq!(view.queued[0].send_attempts, 1);
        assert_eq!(view.active, 0);
    }

    #[test]
    fn an_event_is_applied_once_and_advances_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9)], 3)).expect("route");
        assert_eq!(db.cursor().expect("cursor"), 3);
        let e = event(4, EventKind::CallRequested, Some(call(10, 1, "k-1", CallStatus::Scheduled, 4)));
        let applied = db.apply_event(&e).expect("apply").expect("applied");
        assert_eq!(applied.stop.and_then(|s| s.call).map(|c| c.id), Some(CallId(10)));
        assert_eq!(db.cursor().expect("cursor"), 4);
        assert_eq!(db.apply_event(&e).expect("apply again"), None, "a replayed event is skipped");
        // An event the route already covered is skipped too.
        let old = event(3, EventKind::CallCancelled, Some(call(10, 1, "k-1", CallStatus::Cancelled, 3)));
        assert_eq!(db.apply_event(&old).expect("apply old"), None);
        assert_eq!(
            db.stops().expect("stops")[0].call.as_ref().map(|c| c.status),
            Some(CallStatus::Scheduled)
        );
        assert_eq!(db.cursor().expect("cursor"), 4);
    }

    #[test]
    fn a_rescheduled_stop_shows_its_new_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 10)], 0)).expect("route");
        let mut e =
            event(1, EventKind::StopRescheduled { window_start: at(14, 0), window_end: at(15, 0) }, None);
        e.stop_id = Some(StopId(2));
        let applied = db.apply_event(&e).expect("apply").expect("applied");
        let shown = applied.stop.expect("the stop changed").stop;
        assert_eq!((shown.id, shown.window_start, shown.window_end), (StopId(2), at(14, 0), at(15, 0)));
        let stored = db.stops().expect("stops").into_iter().find(|s| s.stop.id == StopId(2)).expect("stop");
        assert_eq!(stored.stop.window_start, at(14, 0), "kept across reads");
    }

    #[test]
    fn a_stop_collected_at_a_pickup_point_shows_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        let point =
            PickupPoint { id: "pp-1".into(), name: "Shop".into(), address: "Main St 1".into(), hours: None };
        let mut e = event(1, EventKind::PickupPointChosen { pickup_point: Box::new(point.clone()) }, None);
        e.stop_id = Some(StopId(1));
        let applied = db.apply_event(&e).expect("apply").expect("applied");
        assert_eq!(applied.stop.expect("the stop changed").stop.pickup_point, Some(point.clone()));
        assert_eq!(db.stops().expect("stops")[0].stop.pickup_point, Some(point), "kept across reads");
    }

    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        db.request_calls(&[StopId(1)], at(8, 0)).expect("tap");
        let entry = db.dispatch_view().expect("view").queued.remove(0);
        db.mark_sending(entry.id).expect("claim");
        let key = entry.idempotency_key.as_str();
        // The push overtakes the HTTP answer.
        let ringing = call(10, 1, key, CallStatus::Ringing, 6);
        db.apply_event(&event(6, EventKind::Ringing { attempt: 1 }, Some(ringing.clone()))).expect("apply");
        let state = db
            .complete_send(entry.id, StopId(1), &call(10, 1, key, CallStatus::Scheduled, 4))
            .expect("store");
        assert_eq!(state.and_then(|s| s.call), Some(ringing.clone()));
        // A route fetched before the push is older too, but its head still
        // never moves the cursor back.
        let mut stale = route(vec![stop(1, 9)], 5);
        stale.stops[0].call = Some(call(10, 1, key, CallStatus::Scheduled, 4));
        let (states, _) = db.store_route(&stale).expect("route");
        assert_eq!(states[0].call, Some(ringing));
        assert_eq!(states[0].outbox, None);
        assert_eq!(db.cursor().expect("cursor"), 6);
    }

    #[test]
    fn a_pushed_call_settles_the_tap_whose_answer_was_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        db.request_calls(&[StopId(1)], at(8, 0)).expect("tap");
        let entry = db.dispatch_view().expect("view").queued.remove(0);
        db.mark_sending(entry.id).expect("claim");
        let placed = call(10, 1, &entry.idempotency_key, CallStatus::Scheduled, 1);
        db.apply_event(&event(1, EventKind::CallRequested, Some(placed))).expect("apply");
        // The answer never came; the entry must not be sent or counted again.
        assert_eq!(db.requeue(entry.id, "connection reset").expect("requeue"), None);
        let view = db.dispatch_view().expect("view");
        assert!(view.queued.is_empty());
        assert_eq!(view.active, 1);
        assert_eq!(db.stops().expect("stops")[0].outbox, None);
    }

    #[test]
    fn tapping_twice_or_on_a_called_stop_queues_nothing_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9), stop(3, 9)], 0)).expect("route");
        db.apply_event(&event(1, EventKind::CallRequested, Some(call(10, 3, "k-3", CallStatus::Dialing, 1))))
            .expect("apply");
        let first = db.request_calls(&[StopId(1), StopId(1), StopId(3)], at(8, 0)).expect("tap");
        assert_eq!(first.iter().map(|(_, queued)| *queued).collect::<Vec<_>>(), vec![true, false, false]);
        let second = db.request_calls(&[StopId(1), StopId(2)], at(8, 0)).expect("tap again");
        assert_eq!(second.iter().map(|(_, queued)| *queued).collect::<Vec<_>>(), vec![false, true]);
        let view = db.dispatch_view().expect("view");
        assert_eq!(view.queued.iter().map(|e| e.stop_id.0).collect::<Vec<_>>(), vec![1, 2]);
        // An unknown stop rejects the whole tap.
        assert!(matches!(db.request_calls(&[StopId(99)], at(8, 0)), Err(Error::InvalidInput(_))));
        assert_eq!(db.dispatch_view().expect("view").queued.len(), 2);
    }

    #[test]
    fn a_refused_tap_shows_why_and_a_new_tap_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        db.request_calls(&[StopId(1)], at(8, 0)).expect("tap");
        let entry = db.dispatch_view().expect("view").queued.remove(0);
        db.mark_sending(entry.id).expect("claim");
        let state = db.fail(entry.id, ErrorCode::StopRemoved, "removed").expect("fail").expect("state");
        assert_eq!(
            state.outbox,
            Some(OutboxState::Failed { code: ErrorCode::StopRemoved, message: "removed".into() })
        );
        assert_eq!(db.dispatch_view().expect("view").active, 0);
        let again = db.request_calls(&[StopId(1)], at(8, 0)).expect("tap");
        assert_eq!(again[0].0.outbox, Some(OutboxState::Queued));
        let view = db.dispatch_view().expect("view");
        assert_eq!(view.queued.len(), 1);
        assert_ne!(view.queued[0].idempotency_key, entry.idempotency_key, "a new tap is a new request");
    }

    #[test]
    fn stops_due_are_those_reached_within_the_horizon_not_yet_called_or_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        // In planned order, windows 8-9, 9-10, 9-10, 10-11, 9-10, 11-12.
        let stops = vec![stop(1, 8), stop(2, 9), stop(5, 9), stop(3, 10), stop(6, 9), stop(4, 11)];
        db.store_route(&route(stops, 0)).expect("route");
        db.reorder(&[1, 2, 5, 3, 6, 4].map(StopId)).expect("plan");
        db.set_visited(StopId(1), true).expect("delivered");
        db.request_calls(&[StopId(5)], at(8, 0)).expect("tap");
        db.apply_event(&event(
            1,
            EventKind::CallCancelled,
            Some(call(10, 6, "k-6", CallStatus::Cancelled, 1)),
        ))
        .expect("apply");
        // At 9:30, 10 min legs, 5 min service: 1 is done; 2 at 9:40, 5 at
        // 9:55, 3 at 10:10, 6 at 10:25 (late but still reached within the
        // hour), 4 at 10:40 arrives early and is served at 11:00: too far.
        let due = db.stops_due_within(at(9, 30), 60).expect("due");
        assert_eq!(ids(&due), vec![2, 3, 6], "stop 5 is queued; 6 was only cancelled");
        db.apply_event(&event(
            2,
            EventKind::CallRequested,
            Some(call(11, 2, "k-2", CallStatus::Scheduled, 2)),
        ))
        .expect("apply");
        db.apply_event(&event(
            3,
            EventKind::CallRequested,
            Some(call(12, 3, "k-3", CallStatus::Scheduled, 3)),
        ))
        .expect("apply");
        db.apply_event(&event(
            4,
            EventKind::CallFinished { outcome: Outcome::Confirmed },
            Some(call(12, 3, "k-3", CallStatus::Finished, 4)),
        ))
        .expect("apply");
        assert_eq!(ids(&db.stops_due_within(at(9, 30), 60).expect("due")), vec![6]);
        // Stop 4's window opens at 11:00: due only with a longer horizon.
        assert_eq!(ids(&db.stops_due_within(at(9, 30), 90).expect("due")), vec![6, 4]);
        db.set_visited(StopId(6), true).expect("visited");
        assert_eq!(ids(&db.stops_due_within(at(9, 30), 90).expect("due")), vec![4]);
    }

    #[test]
    fn a_stops_timeline_keeps_every_event_about_it_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = open(&dir);
            db.store_route(&route(vec![stop(1, 9), stop(2, 10)], 0)).expect("route");
            db.request_calls(&[StopId(2)], at(8, 30)).expect("tap");
            let story = [
                EventKind::CallRequested,
                EventKind::AttemptPlaced { attempt: 1 },
                EventKind::Ringing { attempt: 1 },
                EventKind::Answered { attempt: 1 },
                EventKind::KeyPressed { attempt: 1, key: Key::new('2').expect("key") },
                EventKind::CallFinished { outcome: Outcome::RescheduleRequested },
            ];
            for (i, kind) in story.into_iter().enumerate() {
                let seq = i as u64 + 1;
                db.apply_event(&event(seq, kind, Some(call(10, 1, "k-1", CallStatus::Scheduled, seq))))
                    .expect("apply");
            }
            db.apply_event(&event(
                7,
                EventKind::CallRequested,
                Some(call(11, 3, "k-3", CallStatus::Scheduled, 7)),
            ))
            .expect("another stop's event");
        }
        let db = open(&dir);
        let t = db.timeline(StopId(1)).expect("timeline");
        assert_eq!(t.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(t.events[5].kind, EventKind::CallFinished { outcome: Outcome::RescheduleRequested });
        assert_eq!(t.requested_at, None);
        let waiting = db.timeline(StopId(2)).expect("timeline");
        assert!(waiting.events.is_empty());
        assert_eq!(waiting.requested_at, Some(at(8, 30)), "the tap not yet sent is part of the story");
    }

    #[test]
    fn a_reorder_is_stored_at_once_and_waits_for_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 10), stop(3, 11)], 0)).expect("route");
        let bad = db.reorder(&[StopId(3), StopId(1)]);
        assert!(matches!(bad, Err(Error::InvalidInput(_))), "a plan must name every stop");
        assert!(matches!(db.reorder(&[3, 1, 1].map(StopId)), Err(Error::InvalidInput(_))));
        let states = db.reorder(&[3, 1, 2].map(StopId)).expect("plan");
        assert_eq!(ids(&states), vec![3, 1, 2]);
        assert_eq!(states.iter().map(|s| s.stop.sequence).collect::<Vec<_>>(), vec![0, 1, 2]);
        let pending = db.pending_plan().expect("pending").expect("a plan waits");
        assert_eq!(pending.stop_ids, [3, 1, 2].map(StopId));

        // The server's order (an old route fetch, an event from another
        // device) does not undo a reorder the server has not confirmed.
        db.store_route(&route(vec![stop(1, 9), stop(2, 10), stop(3, 11)], 0)).expect("refetch");
        assert_eq!(ids(&db.stops().expect("stops")), vec![3, 1, 2]);
        let planned =
            event(1, EventKind::RoutePlanned { date: date(), stop_ids: vec![StopId(2)], reason: None }, None);
        db.apply_event(&planned).expect("apply");
        assert_eq!(ids(&db.stops().expect("stops")), vec![3, 1, 2]);

        // A newer local reorder survives the confirmation of an older one.
        db.reorder(&[2, 3, 1].map(StopId)).expect("again");
        db.plan_delivered(date(), pending.version, 1).expect("old confirmed");
        assert_eq!(
            db.pending_plan().expect("pending").map(|p| p.stop_ids),
            Some(vec![StopId(2), StopId(3), StopId(1)])
        );
        let latest = db.pending_plan().expect("pending").expect("plan").version;
        db.plan_delivered(date(), latest, 1).expect("confirmed");
        assert_eq!(db.pending_plan().expect("pending"), None);

        // Confirmed: the next plan from another device applies.
        let planned = event(
            2,
            EventKind::RoutePlanned { date: date(), stop_ids: [1, 2, 3].map(StopId).to_vec(), reason: None },
            None,
        );
        let applied = db.apply_event(&planned).expect("apply").expect("new");
        assert_eq!(applied.reordered.map(|r| ids(&r)), Some(vec![1, 2, 3]));
    }

    #[test]
    fn a_replan_takes_a_declined_stop_out_of_the_etas_and_a_pending_reorder_still_wins() {
        use crate::wire::ReplanReason;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9), stop(3, 10)], 0)).expect("route");
        let auto = AutoCallAhead { enabled: true, lead_minutes: 120 };
        db.set_auto_settings(&auto).expect("auto on");
        let replan = |seq: u64, order: [i64; 3], stop: i64, reason: ReplanReason| {
            let kind = EventKind::RoutePlanned {
                date: date(),
                stop_ids: order.map(StopId).to_vec(),
                reason: Some(reason),
            };
            Event { stop_id: Some(StopId(stop)), ..event(seq, kind, None) }
        };
        let chain = |db: &Db| -> Vec<(i64, bool)> {
            let plan = db.planned(at(9, 0), None).expect("plan");
            plan.iter().map(|p| (p.state.stop.id.0, p.eta.is_some())).collect()
        };

        // Stop 1's customer declined: the server moved it to the end, out of
        // the chain. No ETA, never due, never called ahead.
        let applied = db.apply_event(&replan(1, [2, 3, 1], 1, ReplanReason::Declined)).expect("apply");
        let applied = applied.expect("new");
        assert_eq!(applied.reordered.map(|r| ids(&r)), Some(vec![2, 3, 1]));
        assert_eq!(applied.stop.and_then(|s| s.stop.out_of_chain), Some(OutOfChain::Declined));
        assert_eq!(chain(&db), vec![(2, true), (3, true), (1, false)]);
        assert_eq!(ids(&db.stops_due_within(at(9, 0), 180).expect("due")), vec![2, 3]);
        let (_, candidates) = db.auto_candidates(at(9, 0)).expect("candidates");
        let due = crate::auto_call::due(&auto, &candidates, at(9, 0));
        assert_eq!(due.iter().map(|d| d.id.0).collect::<Vec<_>>(), vec![2, 3]);

        // The courier puts 3 first; before the server has it, stop 1's
        // customer picks a window today after all. The courier's order
        // stays; stop 1 is back in the chain.
        db.reorder(&[3, 2, 1].map(StopId)).expect("reorder");
        let pending = db.pending_plan().expect("pending").expect("plan");
        let applied = db.apply_event(&replan(2, [2, 1, 3], 1, ReplanReason::NewWindowToday)).expect("apply");
        assert_eq!(applied.expect("new").reordered, None);
        assert_eq!(chain(&db), vec![(3, true), (2, true), (1, true)]);

        // The server gets the courier's order (its echo is seq 3): the
        // re-plan it replaced stays replaced.
        let echo = event(
            3,
            EventKind::RoutePlanned { date: date(), stop_ids: pending.stop_ids, reason: None },
            None,
        );
        db.apply_event(&echo).expect("apply");
        assert_eq!(db.plan_delivered(date(), pending.version, 3).expect("confirmed"), None);
        assert_eq!(chain(&db), vec![(3, true), (2, true), (1, true)]);

        // The server re-plans from the courier's order: stop 2 declined
        // moves 2 alone.
        db.apply_event(&replan(4, [3, 1, 2], 2, ReplanReason::Declined)).expect("apply");
        assert_eq!(chain(&db), vec![(3, true), (1, true), (2, false)]);

        // A re-plan the server made after the courier's next order landed,
        // but which reached the phone before the answer to its send did,
        // applies once that answer comes.
        db.reorder(&[1, 3, 2].map(StopId)).expect("reorder");
        let pending = db.pending_plan().expect("pending").expect("plan");
        let echo = event(
            5,
            EventKind::RoutePlanned { date: date(), stop_ids: pending.stop_ids, reason: None },
            None,
        );
        db.apply_event(&echo).expect("apply");
        db.apply_event(&replan(6, [3, 2, 1], 1, ReplanReason::Declined)).expect("apply");
        assert_eq!(chain(&db), vec![(1, false), (3, true), (2, false)], "held back while the send is out");
        let reordered = db.plan_delivered(date(), pending.version, 5).expect("confirmed");
        assert_eq!(reordered.map(|r| ids(&r)), Some(vec![3, 2, 1]));
        assert_eq!(chain(&db), vec![(3, true), (2, false), (1, false)]);
    }

    #[test]
    fn a_pending_reorder_is_rebased_onto_a_replaced_route() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 10), stop(3, 11)], 0)).expect("route");
        db.set_visited(StopId(1), true).expect("visited");
        db.reorder(&[3, 2, 1].map(StopId)).expect("plan");
        // The integrator drops stop 2 and adds stop 4 before the plan is sent.
        db.store_route(&route(vec![stop(1, 9), stop(3, 11), stop(4, 12)], 0)).expect("replaced");
        let states = db.stops().expect("stops");
        assert_eq!(ids(&states), vec![3, 1, 4]);
        assert!(states[1].visited, "a replaced route keeps what only the phone knows");
        let pending = db.pending_plan().expect("pending").expect("plan");
        assert_eq!(pending.stop_ids, [3, 1, 4].map(StopId), "the plan sent is valid for the new route");
    }

    #[test]
    fn etas_follow_the_planned_order_and_flag_windows_they_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9), stop(3, 12)], 0)).expect("route");
        let settings = PlanSettings { service_minutes: 20, speed_kmh: 20.0, default_travel_minutes: 30 };
        db.set_plan_settings(&settings).expect("settings");
        assert_eq!(db.plan_settings().expect("settings"), settings);
        assert!(db.set_plan_settings(&PlanSettings { speed_kmh: -1.0, ..settings }).is_err());
        let plan = db.planned(at(9, 0), None).expect("plan");
        let fits: Vec<_> = plan.iter().map(|p| (p.eta, p.fit)).collect();
        use crate::planning::WindowFit::*;
        assert_eq!(
            fits,
            vec![
                (Some(at(9, 30)), Some(Inside)),
                (Some(at(10, 20)), Some(Late)),
                (Some(at(11, 10)), Some(Early))
            ]
        );
        db.set_visited(StopId(1), true).expect("visited");
        let plan = db.planned(at(9, 0), None).expect("plan");
        assert_eq!((plan[0].eta, plan[0].fit), (None, None));
        assert_eq!((plan[1].eta, plan[1].fit), (Some(at(9, 30)), Some(Inside)));
    }

    #[test]
    fn stops_come_in_route_order_and_a_replaced_route_drops_removed_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        let mut s = vec![stop(3, 9), stop(1, 9), stop(2, 9)];
        for (i, stop) in s.iter_mut().enumerate() {
            (stop.position, stop.sequence) = (i as u32, i as u32);
        }
        db.store_route(&route(s, 0)).expect("route");
        assert_eq!(ids(&db.stops().expect("stops")), vec![3, 1, 2]);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9)], 0)).expect("route");
        assert_eq!(ids(&db.stops().expect("stops")), vec![1, 2]);
        let replaced = event(1, EventKind::RouteReplaced { date: date() }, None);
        assert_eq!(db.apply_event(&replaced).expect("apply").and_then(|a| a.refetch_route), Some(date()));
        let other_day =
            event(2, EventKind::RouteReplaced { date: date().succ_opt().expect("tomorrow") }, None);
        assert_eq!(db.apply_event(&other_day).expect("apply").and_then(|a| a.refetch_route), None);
    }

    #[test]
    fn seven_taps_five_start_two_wait_and_a_finished_call_frees_a_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route((1..=7).map(|i| stop(i, 9)).collect(), 0)).expect("route");
        let all: Vec<StopId> = (1..=7).map(StopId).collect();
        db.request_calls(&all, at(8, 0)).expect("tap");
        let mut seq = 0;
        // The dispatcher's loop, minus the network: the server accepts each.
        let mut send_what_fits = |db: &Db| {
            let view = db.dispatch_view().expect("view");
            let batch = next_batch(view.active, &view.queued).to_vec();
            for e in &batch {
                db.mark_sending(e.id).expect("claim");
                seq += 1;
                let c = call(100 + e.stop_id.0, e.stop_id.0, &e.idempotency_key, CallStatus::Scheduled, seq);
                db.complete_send(e.id, e.stop_id, &c).expect("store");
            }
            batch.len()
        };
        assert_eq!(send_what_fits(&db), 5);
        assert_eq!(send_what_fits(&db), 0, "the cap holds");
        let view = db.dispatch_view().expect("view");
        assert_eq!((view.active, view.queued.len()), (5, 2));
        assert_eq!(view.queued.iter().map(|e| e.stop_id.0).collect::<Vec<_>>(), vec![6, 7]);

        let done = call(101, 1, "ignored", CallStatus::Finished, 50);
        let applied = db
            .apply_event(&event(50, EventKind::CallFinished { outcome: Outcome::Confirmed }, Some(done)))
            .expect("apply")
            .expect("applied");
        assert!(applied.call_ended, "the dispatcher is woken");
        assert_eq!(send_what_fits(&db), 1);
        let view = db.dispatch_view().expect("view");
        assert_eq!((view.active, view.queued.len()), (5, 1));
    }

    #[test]
    fn a_withdrawn_tap_whose_call_turns_up_after_all_is_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9)], 0)).expect("route");
        db.request_calls(&[StopId(1), StopId(2)], at(8, 0)).expect("tap");
        let queued = db.dispatch_view().expect("view").queued;
        // Both sends time out: did the server get them? Nobody knows.
        for e in &queued {
            db.mark_sending(e.id).expect("claim");
            db.requeue(e.id, "timed out").expect("requeue");
        }
        for id in [1, 2] {
            let LocalCancel::Removed(state) = db.cancel_local(StopId(id), at(8, 0)).expect("cancel") else {
                panic!("an unsent tap is removed locally")
            };
            assert_eq!(state.outbox, None);
        }
        let view = db.dispatch_view().expect("view");
        assert!(view.queued.is_empty());
        assert_eq!(view.active, 0);
        // Stop 1's request had reached the server: its call must go.
        let placed = call(10, 1, &queued[0].idempotency_key, CallStatus::Scheduled, 1);
        let applied = db.apply_event(&event(1, EventKind::CallRequested, Some(placed))).expect("apply");
        assert_eq!(applied.and_then(|a| a.withdrawn_call), Some(CallId(10)));
        let mut later = route(vec![stop(1, 9), stop(2, 9)], 2);
        later.stops[1].call = Some(call(11, 2, &queued[1].idempotency_key, CallStatus::Dialing, 2));
        assert_eq!(db.store_route(&later).expect("route").1, vec![CallId(11)]);
        // Each is reported once.
        assert_eq!(db.store_route(&later).expect("route").1, vec![]);
        // Withdrawn requests that never turn up are forgotten eventually.
        db.store_route(&route(vec![stop(1, 9), stop(2, 9), stop(3, 9)], 2)).expect("route");
        db.request_calls(&[StopId(3)], at(8, 0)).expect("tap");
        let e = db.dispatch_view().expect("view").queued.remove(0);
        db.mark_sending(e.id).expect("claim");
        db.requeue(e.id, "timed out").expect("requeue");
        db.cancel_local(StopId(3), at(8, 0)).expect("cancel");
        assert_eq!(db.purge_withdrawn(at(8, 0)).expect("purge"), 0);
        assert_eq!(db.purge_withdrawn(at(8, 1)).expect("purge"), 1);
    }

    #[test]
    fn cancelling_an_unsent_tap_removes_it_locally() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.store_route(&route(vec![stop(1, 9), stop(2, 9)], 0)).expect("route");
        db.request_calls(&[StopId(1), StopId(2)], at(8, 0)).expect("tap");
        let queued = db.dispatch_view().expect("view").queued;
        db.mark_sending(queued[1].id).expect("claim");
        assert!(
            matches!(db.cancel_local(StopId(1), at(8, 0)).expect("cancel"), LocalCancel::Removed(s) if s.outbox.is_none())
        );
        assert_eq!(db.cancel_local(StopId(2), at(8, 0)).expect("cancel"), LocalCancel::InFlight);
        // A dispatcher that read the queue before the cancel skips it.
        assert_eq!(db.mark_sending(queued[0].id).expect("claim"), None);
        // The tap left no trace in the outbox, yet the stop stays the
        // courier's: automatic call-ahead does not take it up.
        db.set_auto_settings(&AutoCallAhead { enabled: true, lead_minutes: 60 }).expect("auto on");
        let (_, candidates) = db.auto_candidates(at(8, 0)).expect("candidates");
        assert!(candidates.iter().find(|c| c.id == StopId(1)).is_some_and(|c| c.touched), "{candidates:?}");
    }
}
