//! Runs campaigns (core's `campaign` module has the rules): one row per
//! enrolled stop, a due time for its next step, and a worker that takes the
//! due steps. Each step commits with its effect and its event in one
//! transaction (an SMS link offer, a smart call, a hand-over), so a crash
//! never takes a step twice or loses one.
//!
//! A reaction ends a run at once, wherever it comes from: the link used
//! (`crate::reschedule::choose`) or a call answered with a choice
//! (`crate::orchestrator`), through [`on_reaction`].

use crate::error::AppError;
use crate::store::campaigns as stored;
use crate::store::leases::{self, Kind};
use crate::store::queries;
use crate::store::{NewEvent, Readers, StoreError, WriteTx, Writer};
use callahead_core::campaign::{Campaign, CampaignRun, CampaignStep, RunState, StepAction};
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::wire::{CreateCall, ErrorCode, EventKind};
use callahead_core::StopId;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tokio::sync::Notify;

/// Steps taken per pass; the rest on the next one.
const STEP_BATCH: usize = 256;
/// A call step finds the courier at their cap, or the stop already being
/// called: it looks again this much later.
const BUSY_RETRY: i64 = 60;

/// Enrolls `stop` in `campaign` (at most once: a second enrollment returns
/// `None`). The first step is due its `after_secs` from `at`.
pub fn enroll(
    tx: &mut WriteTx<'_>,
    campaign: &Campaign,
    stop: StopId,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let first = campaign.steps.first().map_or(0, |s| s.after_secs);
    stored::enroll(tx, campaign.id, stop, at + Duration::seconds(i64::from(first)), at)
}

/// Ends `run` in `state` (if still active) with a `campaign_left` event.
fn leave(
    tx: &mut WriteTx<'_>,
    run: &CampaignRun,
    state: RunState,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<bool, StoreError> {
    let changed = stored::end_run(tx, run.id, state, at)?;
    if changed {
        event(
            tx,
            run.stop_id,
            EventKind::CampaignLeft { campaign_id: run.campaign_id, run_id: run.id, state },
            at,
            wall,
        )?;
    }
    Ok(changed)
}

fn event(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    kind: EventKind,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    let s =
        queries::stop(tx.db(), stop)?.ok_or_else(|| StoreError::Corrupt(format!("stop {stop} vanished")))?;
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

/// The customer reacted (link used, or a choice on a call): every campaign
/// they are in leaves them alone from now on.
pub fn on_reaction(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    for run in stored::active_runs_of_stop(tx.db(), stop)? {
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
    let runs = stored::active_runs_of_stop(tx.db(), stop)?;
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
    let Some(run) = stored::run(tx.db(), id)? else { return Ok(woken) };
    if run.state != RunState::Active || run.next_at.is_none_or(|t| t > now) {
        return Ok(woken);
    }
    let campaign = stored::campaign(tx.db(), run.campaign_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("campaign {} vanished", run.campaign_id)))?;
    let stop = queries::stop(tx.db(), run.stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", run.stop_id)))?;
    if stop.removed {
        leave(tx, &run, RunState::Cancelled, now, wall)?;
        return Ok(woken);
    }
    // Nothing happens while the stop is being called: the call's answer may
    // end the run (a reaction), and a step never overlaps a call.
    if !queries::active_calls_for_stop(tx.db(), run.stop_id)?.is_empty() {
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
            match crate::orchestrator::create(tx, stop.stop.courier_id, stop.stop.depot_id, &req, now, wall) {
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
            stored::advance(tx, run.id, next, None, now)?;
            leave(tx, &run, RunState::HandedOver, now, wall)?;
        }
        (_, Some(CampaignStep { after_secs, .. })) => {
            stored::advance(tx, run.id, next, Some(now + Duration::seconds(i64::from(*after_secs))), now)?;
        }
        // The last step was taken; the run completes when its call (if any)
        // is over, at the next pass, unless the customer reacts first.
        (_, None) => stored::advance(tx, run.id, next, Some(now), now)?,
    }
    Ok(woken)
}

fn into_store(e: AppError) -> StoreError {
    StoreError::Corrupt(format!("campaign call refused: {}", e.message))
}

fn postpone(tx: &WriteTx<'_>, run: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
    stored::postpone(tx, run, now + Duration::seconds(BUSY_RETRY), now)
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
            async move { readers.read(|c| stored::next_due(c)).await }
        };
        crate::due_loop::run("campaigns", &self.clock, &self.wake, next, |now| self.take_due(now)).await;
    }

    /// Takes the due steps this node could claim (docs/adr/0011): each
    /// under its run's lease, fenced, released with the step. `false` when
    /// every due run is another node's.
    async fn take_due(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let ids = self.readers.read(move |c| stored::due_runs(c, now, STEP_BATCH)).await?;
        let wanted = ids.len();
        let claims = self.scheduler.claims.clone();
        let leases = claims.claim(Kind::CampaignRun, ids).await?;
        let progress = wanted == 0 || !leases.is_empty();
        // One job per run: a run that fails does not hold back the others
        // (the writer still commits them together).
        let jobs = leases.into_iter().map(|lease| {
            let claims = claims.clone();
            self.writer.write(move |tx| {
                claims.fence(tx, &lease)?;
                let woken = take_step(tx, lease.item, now)?;
                leases::release_in(tx, &lease)?;
                Ok::<_, StoreError>(woken)
            })
        });
        let mut failed = None;
        for taken in futures_util::future::join_all(jobs).await {
            match taken {
                Err(StoreError::LeaseLost(why)) => {
                    tracing::info!(%why, "campaign step taken by another node")
                }
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
        failed.map_or(Ok(progress), Err)
    }
}
