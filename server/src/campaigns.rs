//! Runs campaigns (core's `campaign` module has the rules): one row per
//! enrolled stop, a due time for its next step, and a worker that takes the
//! due steps. Each step commits with its effect and its event in one
//! transaction (an SMS link offer, a smart call, a hand-over), so a crash
//! never takes a step twice or loses one.
//!
//! A reaction ends a run at once, wherever it comes from: the link used
//! (`crate::reschedule::choose`) or a call answered with a choice
//! (`crate::orchestrator`), through [`on_reaction`].

use crate::api::calls::create_in_tx;
use crate::error::AppError;
use crate::store::queries::{self, corrupt, opt_ms};
use crate::store::{from_ms, ms, NewEvent, Readers, StoreError, WriteTx, Writer};
use callahead_core::campaign::{Campaign, CampaignRun, CampaignStep, RunState, StepAction};
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::wire::{CreateCall, ErrorCode, EventKind};
use callahead_core::{DepotId, StopId};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::Arc;
use tokio::sync::Notify;

/// Steps taken per pass; the rest on the next one.
const STEP_BATCH: usize = 256;
/// A call step finds the courier at their cap, or the stop already being
/// called: it looks again this much later.
const BUSY_RETRY: i64 = 60;

const RUN_COLS: &str = "id, campaign_id, stop_id, state, next_step, next_at, enrolled_at, updated_at";

fn run_row(r: &Row<'_>) -> rusqlite::Result<CampaignRun> {
    let state: String = r.get(3)?;
    Ok(CampaignRun {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        stop_id: StopId(r.get(2)?),
        state: RunState::parse(&state).ok_or_else(|| corrupt(format!("run state {state:?}")))?,
        next_step: r.get(4)?,
        next_at: opt_ms(r.get(5)?)?,
        enrolled_at: from_ms(r.get(6)?)?,
        updated_at: from_ms(r.get(7)?)?,
    })
}

pub fn campaign(conn: &Connection, id: i64) -> Result<Option<Campaign>, StoreError> {
    let row = conn
        .prepare_cached("SELECT id, depot_id, name, steps, created_at FROM campaigns WHERE id = ?1")?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        })
        .optional()?;
    let Some((id, depot, name, steps, created)) = row else { return Ok(None) };
    Ok(Some(Campaign {
        id,
        depot_id: DepotId(depot),
        name,
        steps: serde_json::from_str(&steps)?,
        created_at: from_ms(created)?,
    }))
}

pub fn campaigns(conn: &Connection, depot: DepotId) -> Result<Vec<Campaign>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM campaigns WHERE depot_id = ?1 ORDER BY id")?
        .query_map([depot.0], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.into_iter().filter_map(|id| campaign(conn, id).transpose()).collect()
}

pub fn run(conn: &Connection, id: i64) -> rusqlite::Result<Option<CampaignRun>> {
    conn.prepare_cached(&format!("SELECT {RUN_COLS} FROM campaign_runs WHERE id = ?1"))?
        .query_row([id], run_row)
        .optional()
}

pub fn runs(conn: &Connection, campaign: i64) -> rusqlite::Result<Vec<CampaignRun>> {
    conn.prepare_cached(&format!("SELECT {RUN_COLS} FROM campaign_runs WHERE campaign_id = ?1 ORDER BY id"))?
        .query_map([campaign], run_row)?
        .collect()
}

/// Runs handed over to an operator, in the depot, oldest first.
pub fn operator_queue(conn: &Connection, depot: DepotId) -> rusqlite::Result<Vec<CampaignRun>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id
         WHERE c.depot_id = ?1 AND r.state = 'handed_over' ORDER BY r.updated_at, r.id",
        RUN_COLS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
    ))?
    .query_map([depot.0], run_row)?
    .collect()
}

/// Enrolls `stop` in `campaign` (at most once: a second enrollment returns
/// `None`). The first step is due its `after_secs` from `at`.
pub fn enroll(
    tx: &mut WriteTx<'_>,
    campaign: &Campaign,
    stop: StopId,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let first = campaign.steps.first().map_or(0, |s| s.after_secs);
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO campaign_runs (campaign_id, stop_id, state, next_step, next_at, enrolled_at, updated_at)
         VALUES (?1, ?2, 'active', 0, ?3, ?4, ?4)",
        params![campaign.id, stop.0, ms(at + Duration::seconds(i64::from(first))), ms(at)],
    )?;
    Ok((inserted == 1).then(|| tx.conn().last_insert_rowid()))
}

/// Ends `run` in `state` (if still active) with a `campaign_left` event.
fn leave(
    tx: &mut WriteTx<'_>,
    run: &CampaignRun,
    state: RunState,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<bool, StoreError> {
    let changed = tx.execute(
        "UPDATE campaign_runs SET state = ?1, next_at = NULL, updated_at = ?2 WHERE id = ?3 AND state = 'active'",
        params![state.as_str(), ms(at), run.id],
    )?;
    if changed == 1 {
        event(
            tx,
            run.stop_id,
            EventKind::CampaignLeft { campaign_id: run.campaign_id, run_id: run.id, state },
            at,
            wall,
        )?;
    }
    Ok(changed == 1)
}

fn event(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    kind: EventKind,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    let s = queries::stop(tx.conn(), stop)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {stop} vanished")))?;
    tx.append_event(NewEvent {
        at,
        origin_wall_ms: wall,
        depot_id: s.stop.depot_id,
        courier_id: s.stop.courier_id,
        stop_id: Some(stop),
        kind,
        call: None,
    })?;
    Ok(())
}

fn active_runs_of_stop(conn: &Connection, stop: StopId) -> rusqlite::Result<Vec<CampaignRun>> {
    conn.prepare_cached(&format!(
        "SELECT {RUN_COLS} FROM campaign_runs WHERE stop_id = ?1 AND state = 'active'"
    ))?
    .query_map([stop.0], run_row)?
    .collect()
}

/// The customer reacted (link used, or a choice on a call): every campaign
/// they are in leaves them alone from now on.
pub fn on_reaction(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    for run in active_runs_of_stop(tx.conn(), stop)? {
        leave(tx, &run, RunState::Reacted, at, wall)?;
    }
    Ok(())
}

/// Ends `stop`'s active run in `campaign`, if any (a `cancel_on` event).
pub fn cancel(
    tx: &mut WriteTx<'_>,
    campaign: i64,
    stop: StopId,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<Option<i64>, StoreError> {
    let runs = active_runs_of_stop(tx.conn(), stop)?;
    let Some(run) = runs.into_iter().find(|r| r.campaign_id == campaign) else { return Ok(None) };
    Ok(leave(tx, &run, RunState::Cancelled, at, wall)?.then_some(run.id))
}

/// What a committed step asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Woken {
    pub scheduler: bool,
    pub sms: bool,
}

/// Takes run `id`'s next step if it is due at `now`.
pub fn take_step(tx: &mut WriteTx<'_>, id: i64, now: DateTime<Utc>) -> Result<Woken, StoreError> {
    let wall = wall_ms();
    let mut woken = Woken::default();
    let Some(run) = run(tx.conn(), id)? else { return Ok(woken) };
    if run.state != RunState::Active || run.next_at.is_none_or(|t| t > now) {
        return Ok(woken);
    }
    let campaign = campaign(tx.conn(), run.campaign_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("campaign {} vanished", run.campaign_id)))?;
    let stop = queries::stop(tx.conn(), run.stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", run.stop_id)))?;
    if stop.removed {
        leave(tx, &run, RunState::Cancelled, now, wall)?;
        return Ok(woken);
    }
    // Nothing happens while the stop is being called: the call's answer may
    // end the run (a reaction), and a step never overlaps a call.
    if !queries::active_calls_for_stop(tx.conn(), run.stop_id)?.is_empty() {
        postpone(tx, run.id, now)?;
        return Ok(woken);
    }
    let Some(step) = campaign.steps.get(run.next_step as usize).copied() else {
        leave(tx, &run, RunState::Completed, now, wall)?;
        return Ok(woken);
    };
    match step.action {
        StepAction::Sms => {
            woken.sms = crate::reschedule::campaign_offer(tx, run.id, run.stop_id, now)?;
        }
        StepAction::Call { policy } => {
            let req = CreateCall {
                stop_id: run.stop_id,
                idempotency_key: format!("campaign-{}-{}", run.id, run.next_step),
                policy,
            };
            match create_in_tx(tx, stop.stop.courier_id, stop.stop.depot_id, &req, now, wall) {
                Ok(_) => woken.scheduler = true,
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::TooManyActiveCalls
                            | ErrorCode::CallAlreadyActive
                            | ErrorCode::QuotaExceeded
                    ) =>
                {
                    postpone(tx, run.id, now)?;
                    return Ok(woken);
                }
                // The depot may not call this number: the run ends here.
                Err(e) if e.code == ErrorCode::DestinationNotAllowed => {
                    leave(tx, &run, RunState::Cancelled, now, wall)?;
                    return Ok(woken);
                }
                Err(e) => return Err(into_store(e)),
            }
        }
        StepAction::Operator => {}
    }
    let kind = EventKind::CampaignStepTaken {
        campaign_id: run.campaign_id,
        run_id: run.id,
        step: run.next_step,
        action: step.action.name().to_owned(),
    };
    event(tx, run.stop_id, kind, now, wall)?;
    let next = run.next_step + 1;
    match (step.action, campaign.steps.get(next as usize)) {
        (StepAction::Operator, _) => {
            advance(tx, run.id, next, None, now)?;
            leave(tx, &run, RunState::HandedOver, now, wall)?;
        }
        (_, Some(CampaignStep { after_secs, .. })) => {
            advance(tx, run.id, next, Some(now + Duration::seconds(i64::from(*after_secs))), now)?;
        }
        // The last step was taken; the run completes when its call (if any)
        // is over, at the next pass, unless the customer reacts first.
        (_, None) => advance(tx, run.id, next, Some(now), now)?,
    }
    Ok(woken)
}

fn into_store(e: AppError) -> StoreError {
    StoreError::Corrupt(format!("campaign call refused: {}", e.message))
}

fn postpone(tx: &WriteTx<'_>, run: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE campaign_runs SET next_at = ?1, updated_at = ?2 WHERE id = ?3",
        params![ms(now + Duration::seconds(BUSY_RETRY)), ms(now), run],
    )?;
    Ok(())
}

fn advance(
    tx: &WriteTx<'_>,
    run: i64,
    next: u32,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE campaign_runs SET next_step = ?1, next_at = ?2, updated_at = ?3 WHERE id = ?4",
        params![next, at.map(ms), ms(now), run],
    )?;
    Ok(())
}

fn next_due(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT MIN(next_at) FROM campaign_runs WHERE next_at IS NOT NULL")?
        .query_row([], |r| r.get(0))?;
    Ok(v.map(from_ms).transpose()?)
}

fn due_runs(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM campaign_runs WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2")?
        .query_map(params![ms(now), STEP_BATCH as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The worker: takes due steps, then sleeps until the next one (or until
/// woken by an enrollment).
pub struct CampaignRunner {
    writer: Writer,
    readers: Arc<Readers>,
    clock: SharedClock,
    wake: Arc<Notify>,
    scheduler: Arc<crate::orchestrator::Orchestrator>,
    sms: Arc<Notify>,
}

impl CampaignRunner {
    pub fn new(
        writer: Writer,
        readers: Arc<Readers>,
        clock: SharedClock,
        wake: Arc<Notify>,
        scheduler: Arc<crate::orchestrator::Orchestrator>,
    ) -> Arc<CampaignRunner> {
        let sms = scheduler.offers();
        Arc::new(CampaignRunner { writer, readers, clock, wake, scheduler, sms })
    }

    pub async fn run(self: Arc<Self>) {
        let readers = self.readers.clone();
        let next = || {
            let readers = readers.clone();
            async move { readers.read(|c| next_due(c)).await }
        };
        crate::due_loop::run("campaigns", &self.clock, &self.wake, next, |now| self.take_due(now)).await;
    }

    async fn take_due(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let ids = self.readers.read(move |c| due_runs(c, now)).await?;
        // One job per run: a run that fails does not hold back the others
        // (the writer still commits them together).
        let jobs = ids.into_iter().map(|id| self.writer.write(move |tx| take_step(tx, id, now)));
        let mut failed = None;
        for taken in futures_util::future::join_all(jobs).await {
            match taken {
                Ok(w) => {
                    if w.scheduler {
                        self.scheduler.wake();
                    }
                    if w.sms {
                        self.sms.notify_one();
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
