//! The durable state machine (docs/architecture.md §3). A call is a row with a
//! status and a `next_action_at`; three things move it, each in one writer
//! transaction together with the events it produces:
//!
//! * the scheduler places due attempts (row first, `Telephony::place` after
//!   the commit — so an attempt number is never placed twice, even across a
//!   crash: a crash after the commit leaves an attempt that recovery ends as
//!   `interrupted`, and the next attempt gets a new number and key);
//! * provider reports go through [`Orchestrator::apply_report`], which applies
//!   exactly the `Transition` that `callahead_core::call::on_provider_event`
//!   decides, deduplicated by the provider's per-attempt seq;
//! * recovery at start closes in-flight attempts with what the provider
//!   says happened, and ends the ones it no longer knows.
//!
//! Placing itself (a line, outages, uncertain creates) is in
//! [`crate::placing`].

use crate::error::AppError;
use crate::providers::lines::Lines;
use crate::providers::{PlaceCall, ProviderReport, Script, Telephony};
use crate::store::calls::{self as stored, NewCall};
use crate::store::leases::{self, Claims, Kind, Lease};
use crate::store::{answers, queries, NewEvent, Readers, StoreError, WriteTx, Writer};
use crate::tasks::Tasks;
use callahead_core::call::{
    after_interrupted, closing_result, on_provider_event, AfterAttempt, AttemptCursor, AttemptResult,
    CallCursor, CallStatus, Key, Outcome, ProviderEvent, Transition,
};
use callahead_core::calling_hours::CallingHours;
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::template::{RenderedScript, TemplateSet, Vars};
use callahead_core::wire::{CallView, Depot, EventKind, Money, Stop};
use callahead_core::wire::{CreateCall, ErrorCode};
use callahead_core::{CallId, CourierId, DepotId, MAX_ACTIVE_CALLS_PER_COURIER};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Calls placed per scheduler pass; the rest are picked up on the next pass.
const DUE_BATCH: usize = 256;
/// Pause before retrying an attempt a server stop cut (domain seconds, at
/// most the policy's spacing): long enough that a crash loop does not burn
/// a customer's attempts in seconds, short enough that the customer whose
/// call dropped hears back at once.
pub const INTERRUPTED_RETRY_SECS: u32 = 60;

pub struct Orchestrator {
    pub(crate) writer: Writer,
    pub(crate) readers: Arc<Readers>,
    pub(crate) clock: SharedClock,
    pub(crate) telephony: Arc<dyn Telephony>,
    /// The provider account's lines (calls per second, concurrent calls).
    pub(crate) lines: Arc<Lines>,
    wake: Notify,
    pub(crate) tasks: Arc<Tasks>,
    /// A reschedule offer committed: its SMS is due (`crate::reschedule`).
    offers: Arc<Notify>,
    /// Who may place which due call (docs/adr/0011).
    pub(crate) claims: Arc<Claims>,
}

/// What applying one change asks the caller to do after the commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AfterCommit {
    /// A retry was scheduled: wake the scheduler.
    pub wake_scheduler: bool,
    /// Attempts to hang up (the call was cancelled while it ran).
    pub hang_up: Vec<String>,
    /// A reschedule offer was made: wake the SMS sender.
    pub send_sms: bool,
    /// Attempts that ended: their lines are free again.
    pub ended: Vec<String>,
}

impl AfterCommit {
    pub fn merge(&mut self, other: AfterCommit) {
        self.wake_scheduler |= other.wake_scheduler;
        self.hang_up.extend(other.hang_up);
        self.send_sms |= other.send_sms;
        self.ended.extend(other.ended);
    }
}

impl Orchestrator {
    pub fn new(
        writer: Writer,
        readers: Arc<Readers>,
        clock: SharedClock,
        telephony: Arc<dyn Telephony>,
        lines: Arc<Lines>,
        tasks: Arc<Tasks>,
        claims: Arc<Claims>,
    ) -> Arc<Self> {
        Arc::new(Self {
            writer,
            readers,
            clock,
            telephony,
            lines,
            wake: Notify::new(),
            tasks,
            offers: Arc::new(Notify::new()),
            claims,
        })
    }

    /// Notified after a commit that made a reschedule offer.
    pub fn offers(&self) -> Arc<Notify> {
        self.offers.clone()
    }

    /// A call became due (created, or retried): look again now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Carries out what a committed write asked for.
    pub fn after_commit(self: &Arc<Self>, todo: AfterCommit) {
        if todo.wake_scheduler {
            self.wake();
        }
        if todo.send_sms {
            self.offers.notify_one();
        }
        for key in &todo.ended {
            self.lines.release(key);
        }
        for key in todo.hang_up {
            let this = self.clone();
            self.tasks.spawn(async move {
                let attempt = this.attempt_ref(&key).await;
                if let Err(e) = this.telephony.hang_up(&attempt).await {
                    tracing::warn!(attempt_key = %key, error = %e, "hang-up failed");
                }
            });
        }
    }

    // ------------------------------------------------------------ recovery

    /// Closes every attempt that died with the previous process: the current
    /// attempt of a call still in flight (then the policy decides, promptly),
    /// and an attempt whose call was already decided by a key press or a
    /// cancel while the robot was still talking. Runs before the scheduler
    /// and the report loop start; returns how many attempts it closed.
    ///
    /// Among nodes sharing a database (docs/adr/0011) an open attempt may be
    /// another live node's: only the attempts nobody holds a lease on are
    /// recovered, here and by [`Orchestrator::run_takeover`] as leases lapse.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        if self.claims.is_shared() {
            let orphans = self.claims.heartbeat().await?;
            return self.take_over(orphans).await;
        }
        let open = self.readers.read(|c| queries::unfinished_attempts(c)).await?;
        let mut closed = 0;
        for (id, n) in open {
            // Live at the provider, or closed with what really happened
            // there (crate::placing); otherwise it died with the process.
            if self.reconcile(id, n).await? {
                continue;
            }
            let now = self.clock.now();
            let (todo, did) = self.writer.write(move |tx| interrupt(tx, id, n, now)).await?;
            self.after_commit(todo);
            closed += usize::from(did);
        }
        if closed > 0 {
            tracing::info!(attempts = closed, "recovery closed interrupted attempts");
        }
        Ok(closed)
    }

    /// Recovers open attempts whose node is gone, as restart recovery does
    /// (docs/adr/0002): each is claimed first (a new epoch, so the node that
    /// died can no longer record anything for it), asked of the provider,
    /// else ended `interrupted` under the fence. Never placed again.
    async fn take_over(self: &Arc<Self>, orphans: Vec<(CallId, u32)>) -> Result<usize, StoreError> {
        let mut closed = 0;
        for (id, n) in orphans {
            let Some(lease) = self.claims.claim_one(Kind::Call, id.0).await? else { continue };
            tracing::info!(call_id = %id, attempt = n, epoch = lease.epoch, "taking over an attempt whose node is gone");
            if self.reconcile(id, n).await? {
                continue;
            }
            let (now, claims) = (self.clock.now(), self.claims.clone());
            let done = self
                .writer
                .write(move |tx| {
                    claims.fence(tx, &lease)?;
                    let (todo, did) = interrupt(tx, id, n, now)?;
                    // A call whose attempt was already closed keeps no lease.
                    leases::finished(tx, Kind::Call, id.0)?;
                    Ok::<_, StoreError>((todo, did))
                })
                .await;
            match done {
                Ok((todo, did)) => {
                    self.after_commit(todo);
                    closed += usize::from(did);
                }
                Err(StoreError::LeaseLost(why)) => {
                    tracing::info!(%why, "another node took the attempt over first")
                }
                Err(e) => return Err(e),
            }
        }
        if closed > 0 {
            tracing::info!(attempts = closed, "takeover closed interrupted attempts");
        }
        Ok(closed)
    }

    /// Among nodes (PostgreSQL): renews this node's leases every
    /// [`leases::HEARTBEAT`], and takes over the attempts of nodes that
    /// stopped renewing theirs. Publishes the stuck-lease gauges.
    pub async fn run_takeover(self: Arc<Self>) {
        if !self.claims.is_shared() {
            return;
        }
        loop {
            tokio::time::sleep(leases::HEARTBEAT).await;
            match self.claims.heartbeat().await {
                Ok(orphans) => {
                    if let Err(e) = self.take_over(orphans).await {
                        if matches!(e, StoreError::Closed) {
                            return;
                        }
                        tracing::error!(error = %e, "takeover failed; retrying at the next heartbeat");
                    }
                }
                Err(StoreError::Closed) => return,
                Err(e) => tracing::error!(error = %e, "cannot renew this node's leases"),
            }
        }
    }

    // ------------------------------------------------------------ scheduler

    pub async fn run_scheduler(self: Arc<Self>) {
        let readers = self.readers.clone();
        let next_due = || {
            let readers = readers.clone();
            async move { readers.read(|c| queries::next_due(c)).await }
        };
        crate::due_loop::run("scheduler", &self.clock, &self.wake, next_due, |now| self.place_due(now)).await;
    }

    /// Places what is due and this node could claim; `false` when every
    /// due call is another node's (the loop then waits instead of spinning).
    async fn place_due(self: &Arc<Self>, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let ids = self.readers.read(move |c| queries::due_calls(c, now, DUE_BATCH)).await?;
        let wanted = ids.len();
        let leases = self.claims.claim(Kind::Call, ids.into_iter().map(|id| id.0).collect()).await?;
        let progress = wanted == 0 || !leases.is_empty();
        let jobs = leases.into_iter().map(|lease| {
            let claims = self.claims.clone();
            self.writer.write(move |tx| {
                start_claimed(tx, &claims, &lease, now).map(|started| started.map(|req| (req, lease)))
            })
        });
        for started in futures_util::future::join_all(jobs).await {
            match started {
                Ok(Some((req, lease))) if self.claims.may_act(&lease) => self.spawn_place(req),
                // The lease may lapse before the provider hears of it: not
                // placed, the attempt ends at once (never placed late).
                Ok(Some((req, _))) => self.unplaced(req).await?,
                Ok(None) => {}
                Err(StoreError::LeaseLost(why)) => tracing::info!(%why, "due call taken by another node"),
                Err(e) => return Err(e),
            }
        }
        Ok(progress)
    }

    async fn unplaced(self: &Arc<Self>, req: PlaceCall) -> Result<(), StoreError> {
        tracing::warn!(attempt_key = %req.attempt_key, "lease too close to lapsing to place; attempt interrupted");
        let (id, n, now) = (req.call_id, req.attempt, self.clock.now());
        let (todo, _) = self.writer.write(move |tx| interrupt(tx, id, n, now)).await?;
        self.after_commit(todo);
        Ok(())
    }

    // ------------------------------------------------------------ reports

    /// The one inbox for provider reports. Jobs are queued in arrival order
    /// (the writer keeps it); replies are awaited off the loop so reports
    /// share group commits.
    pub async fn run_reports(self: Arc<Self>, mut rx: mpsc::Receiver<ProviderReport>) {
        while let Some(report) = rx.recv().await {
            let reply = self.writer.enqueue(move |tx| Self::apply_report(tx, &report)).await;
            let reply = match reply {
                Ok(r) => r,
                Err(_) => return,
            };
            let this = self.clone();
            self.tasks.spawn(async move {
                match reply.await {
                    Ok(Ok(todo)) => this.after_commit(todo),
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot apply a provider report"),
                    Err(_) => {}
                }
            });
        }
    }

    /// Applies one provider report: dedupe on its seq, then exactly the
    /// transition the core decides. Recording the seq and applying happen in
    /// the same transaction, so a crash can never lose a change.
    pub fn apply_report(tx: &mut WriteTx<'_>, r: &ProviderReport) -> Result<AfterCommit, StoreError> {
        apply(tx, r.call_id, r.attempt, r.provider_seq, &r.event, r.at, r.wall_ms)
    }
}

// ---------------------------------------------------------------- transactions

fn load(tx: &WriteTx<'_>, id: CallId) -> Result<CallView, StoreError> {
    queries::call(tx.db(), id)?
        .map(|c| c.view)
        .ok_or_else(|| StoreError::Corrupt(format!("call {id} vanished")))
}

/// Appends a call event carrying the call's current snapshot.
pub fn emit(
    tx: &mut WriteTx<'_>,
    id: CallId,
    kind: EventKind,
    at: DateTime<Utc>,
    origin_wall_ms: i64,
) -> Result<CallView, StoreError> {
    let view = load(tx, id)?;
    let event = tx.append_event(NewEvent {
        at,
        origin_wall_ms,
        depot_id: view.depot_id,
        courier_id: view.courier_id,
        stop_id: Some(view.stop_id),
        kind,
        call: Some(view),
    })?;
    event.call.ok_or_else(|| StoreError::Corrupt("event lost its call".into()))
}

pub(crate) fn finish(
    tx: &mut WriteTx<'_>,
    id: CallId,
    outcome: Outcome,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<AfterCommit, StoreError> {
    stored::finish(tx, id, outcome, at)?;
    let view = emit(tx, id, EventKind::CallFinished { outcome }, at, wall)?;
    if outcome.is_reached() {
        crate::campaigns::on_reaction(tx, view.stop_id, at, wall)?;
    }
    crate::replan::after_outcome(tx, view.stop_id, outcome, at, wall)?;
    if outcome == Outcome::RescheduleRequested {
        // The offer commits with the outcome; its SMS goes after the commit.
        if let Some(sms_to_masked) = crate::reschedule::offer(tx, id, at)? {
            emit(tx, id, EventKind::RescheduleOffered { sms_to_masked }, at, wall)?;
            return Ok(AfterCommit { send_sms: true, ..AfterCommit::default() });
        }
    }
    Ok(AfterCommit::default())
}

/// What the call does after an attempt ended.
pub(crate) fn after_attempt(
    tx: &mut WriteTx<'_>,
    id: CallId,
    then: AfterAttempt,
    ended_at: DateTime<Utc>,
    wall: i64,
) -> Result<AfterCommit, StoreError> {
    match then {
        AfterAttempt::Nothing => Ok(AfterCommit::default()),
        AfterAttempt::Finish(outcome) => finish(tx, id, outcome, ended_at, wall),
        AfterAttempt::Retry | AfterAttempt::RetrySoon => {
            let call = queries::call(tx.db(), id)?
                .ok_or_else(|| StoreError::Corrupt(format!("call {id} vanished")))?;
            let stop = queries::stop(tx.db(), call.view.stop_id)?
                .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", call.view.stop_id)))?
                .stop;
            // Spacing runs from the end of the attempt (AttemptPolicy docs);
            // after an attempt the server itself cut, only a short pause.
            let spacing = match then {
                AfterAttempt::RetrySoon => call.retry_spacing_secs.min(INTERRUPTED_RETRY_SECS),
                _ => call.retry_spacing_secs,
            };
            let mut due = ended_at + Duration::seconds(i64::from(spacing));
            if call.stop_at_window_start && due >= stop.window_start {
                // The courier is at the door by then: another robot call
                // would only get in the way.
                finish(tx, id, Outcome::NoAnswer, ended_at, wall)?;
                return Ok(AfterCommit::default());
            }
            // A retry the server's own stop caused goes soon, whatever the hour.
            if then == AfterAttempt::Retry && call.retry_at_best_hour {
                due = crate::best_hour::retry_at(tx, &call, &stop, due)?;
            }
            stored::schedule_retry(tx, id, due, ended_at)?;
            Ok(AfterCommit { wake_scheduler: true, ..AfterCommit::default() })
        }
    }
}

/// Applies one provider event (or a locally detected failure, `seq = None`).
pub fn apply(
    tx: &mut WriteTx<'_>,
    id: CallId,
    n: u32,
    provider_seq: Option<u32>,
    event: &ProviderEvent,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<AfterCommit, StoreError> {
    let nothing = Ok(AfterCommit::default());
    let Some(call) = queries::call(tx.db(), id)? else {
        tracing::warn!(call_id = %id, "report for an unknown call");
        return nothing;
    };
    let Some(attempt) = queries::attempt(tx.db(), id, n)? else {
        tracing::warn!(call_id = %id, attempt = n, "report for an unknown attempt");
        return nothing;
    };
    if let Some(seq) = provider_seq {
        if seq <= attempt.provider_seq {
            tracing::debug!(call_id = %id, attempt = n, seq, "duplicate or out-of-order report ignored");
            return nothing;
        }
        stored::set_provider_seq(tx, id, n, seq)?;
    }
    let cursor = CallCursor {
        status: call.view.status,
        attempt: call.view.attempts_made,
        max_attempts: call.view.max_attempts,
        min_heard_secs: call.min_heard_secs,
    };
    let a = &attempt.view;
    // The provider's talk time when it reports one, else our own measure
    // from the answer we recorded.
    let measured = |answered: bool| {
        a.answered_at.filter(|_| answered).map(|t| u32::try_from((at - t).num_seconds()).unwrap_or(0))
    };
    let (event, talk_secs) = match event {
        ProviderEvent::Ended { result, answered, key, talk_secs } => {
            let talk = talk_secs.or_else(|| measured(*answered || a.answered_at.is_some()));
            (&ProviderEvent::Ended { result: *result, answered: *answered, key: *key, talk_secs: talk }, talk)
        }
        other => (other, None),
    };
    let acursor = AttemptCursor {
        ringing: a.ringing_at.is_some(),
        answered: a.answered_at.is_some(),
        key: a.key,
        ended: a.ended_at.is_some(),
    };
    match on_provider_event(cursor, n, acursor, event) {
        Transition::Ignore(why) => {
            tracing::debug!(call_id = %id, attempt = n, why, "provider event ignored");
            nothing
        }
        Transition::Ringing { call_status } => {
            stored::set_ringing(tx, id, n, at)?;
            if let Some(s) = call_status {
                stored::set_status(tx, id, s, at)?;
            }
            emit(tx, id, EventKind::Ringing { attempt: n }, at, wall)?;
            nothing
        }
        Transition::Answered { call_status } => {
            stored::set_answered(tx, id, n, at)?;
            if let Some(s) = call_status {
                stored::set_status(tx, id, s, at)?;
            }
            emit(tx, id, EventKind::Answered { attempt: n }, at, wall)?;
            nothing
        }
        Transition::KeyPressed { key, outcome } => {
            stored::set_key(tx, id, n, key)?;
            emit(tx, id, EventKind::KeyPressed { attempt: n, key }, at, wall)?;
            match outcome {
                Some(outcome) => finish(tx, id, outcome, at, wall),
                None => nothing,
            }
        }
        Transition::Bridged { connected } => {
            emit(tx, id, EventKind::CourierBridged { attempt: n, connected }, at, wall)?;
            nothing
        }
        Transition::AttemptEnded { result, key, then } => {
            stored::end_attempt(tx, id, n, result, key, at)?;
            answers::record(tx, id, n, result)?;
            if let Some(talk) = talk_secs {
                stored::set_talk_secs(tx, id, n, talk)?;
            }
            emit(tx, id, EventKind::AttemptEnded { attempt: n, result }, at, wall)?;
            let mut todo = after_attempt(tx, id, then, at, wall)?;
            todo.ended.push(PlaceCall::attempt_key(id, n));
            Ok(todo)
        }
    }
}

/// Closes attempt `n` after a server stop (recovery); `true` if it was open.
/// The current attempt of a call in flight ends `interrupted` and the call
/// moves on as [`after_interrupted`] decides; an attempt left open after its
/// call was decided ends by what was recorded ([`closing_result`]) and
/// changes nothing else. Either way the attempt gets its end, its talk time
/// as far as it is known, and an `attempt_ended` event.
pub(crate) fn interrupt(
    tx: &mut WriteTx<'_>,
    id: CallId,
    n: u32,
    now: DateTime<Utc>,
) -> Result<(AfterCommit, bool), StoreError> {
    let call = load(tx, id)?;
    let wall = wall_ms();
    let current = n == call.attempts_made
        && matches!(call.status, CallStatus::Dialing | CallStatus::Ringing | CallStatus::Answered);
    let attempt = queries::attempt(tx.db(), id, n)?.filter(|a| a.view.ended_at.is_none());
    let mut closed = false;
    if let Some(a) = attempt {
        let a = a.view;
        let cursor = AttemptCursor {
            ringing: a.ringing_at.is_some(),
            answered: a.answered_at.is_some(),
            key: a.key,
            ended: false,
        };
        let result = if current { AttemptResult::Interrupted } else { closing_result(call.status, cursor) };
        stored::end_attempt(tx, id, n, result, None, now)?;
        answers::record(tx, id, n, result)?;
        // Talk time up to the last thing we heard of the call: what is known
        // for sure (the provider that carried the rest is gone).
        if let Some(answered) = a.answered_at {
            let talk = u32::try_from((call.updated_at.max(answered) - answered).num_seconds()).unwrap_or(0);
            stored::set_talk_secs(tx, id, n, talk)?;
        }
        emit(tx, id, EventKind::AttemptEnded { attempt: n, result }, now, wall)?;
        closed = true;
    }
    if !current {
        let mut todo = AfterCommit::default();
        if closed {
            todo.ended.push(PlaceCall::attempt_key(id, n));
        }
        return Ok((todo, closed));
    }
    let then = after_interrupted(CallCursor {
        status: call.status,
        attempt: n,
        max_attempts: call.max_attempts,
        min_heard_secs: 0,
    });
    let mut todo = after_attempt(tx, id, then, now, wall)?;
    todo.ended.push(PlaceCall::attempt_key(id, n));
    Ok((todo, closed))
}

/// [`start_attempt`] by the holder of the call's lease only (the fence);
/// a call it does not start keeps no lease.
pub(crate) fn start_claimed(
    tx: &mut WriteTx<'_>,
    claims: &Claims,
    lease: &Lease,
    now: DateTime<Utc>,
) -> Result<Option<PlaceCall>, StoreError> {
    claims.fence(tx, lease)?;
    let started = start_attempt(tx, CallId(lease.item), now)?;
    if started.is_none() {
        leases::release_in(tx, lease)?;
    }
    Ok(started)
}

/// Starts the next attempt of a due call: the attempt row, status dialing and
/// the event commit first; the caller places the call after the commit.
pub(crate) fn start_attempt(
    tx: &mut WriteTx<'_>,
    id: CallId,
    now: DateTime<Utc>,
) -> Result<Option<PlaceCall>, StoreError> {
    let Some(call) = queries::call(tx.db(), id)? else { return Ok(None) };
    let v = &call.view;
    let due = v.next_attempt_at.is_some_and(|d| d <= now);
    if v.status != CallStatus::Scheduled {
        // A due time on a call that is not waiting would keep the scheduler
        // spinning on it; it means nothing, so drop it.
        stored::clear_due(tx, id)?;
        return Ok(None);
    }
    if !due {
        return Ok(None);
    }
    let wall = wall_ms();
    let n = v.attempts_made + 1;
    if n > v.max_attempts {
        // Cannot happen through the state machine; refuse to over-call.
        tracing::error!(call_id = %id, "scheduled past its last attempt; finishing it");
        finish(tx, id, Outcome::Failed, now, wall)?;
        return Ok(None);
    }
    let stop = queries::stop(tx.db(), v.stop_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("stop {} vanished", v.stop_id)))?;
    let depot = queries::depot(tx.db(), v.depot_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("depot {} vanished", v.depot_id)))?;
    let tz: chrono_tz::Tz = stop.stop.time_zone.parse().unwrap_or(chrono_tz::UTC);
    if !call.calling_hours.allows(now, tz) {
        defer_for_calling_hours(tx, id, &call.calling_hours, tz, stop.stop.window_end, now, wall)?;
        return Ok(None);
    }
    let templates = queries::templates(tx.db(), v.depot_id)?.unwrap_or_default();
    let courier = queries::courier(tx.db(), v.courier_id)?;
    let courier_name = courier.as_ref().map(|c| c.name.clone()).unwrap_or_default();
    let script = script(&depot, &templates, &stop.stop, &courier_name);
    // The rendered text is stored with the attempt: the audit shows what
    // this customer actually heard.
    stored::start_attempt(tx, id, n, &script.text, now)?;
    emit(tx, id, EventKind::AttemptPlaced { attempt: n }, now, wall)?;
    let req = PlaceCall {
        attempt_key: PlaceCall::attempt_key(id, n),
        call_id: id,
        attempt: n,
        courier_id: v.courier_id,
        to: stop.stop.phone.clone(),
        script,
        bridge_to: courier.map(|c| c.phone),
        ring_timeout_secs: call.ring_timeout_secs,
        machine_detection: call.machine_detection,
        callback_secret: crate::placing::callback_secret(),
    };
    // Kept with the attempt: a provider asking mid-call what to say is
    // answered from it, and a restart knows whom it was calling.
    crate::store::providers::save_request(tx, &req)?;
    Ok(Some(req))
}

/// Outside the customer's calling hours nobody is called: the attempt waits
/// for the hours to open, or, if the delivery window is over by then, the
/// call ends as "outside calling hours" (the courier sees which).
fn defer_for_calling_hours(
    tx: &mut WriteTx<'_>,
    id: CallId,
    hours: &CallingHours,
    tz: chrono_tz::Tz,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    match hours.next_allowed(now, tz).filter(|opens| *opens < window_end) {
        Some(until) => {
            stored::defer(tx, id, until, now)?;
            emit(tx, id, EventKind::CallDeferred { until }, now, wall)?;
        }
        None => {
            finish(tx, id, Outcome::OutsideCallingHours, now, wall)?;
        }
    }
    Ok(())
}

/// Cancels a call inside `tx`; `Ok(None)` if it already ended.
pub fn cancel(
    tx: &mut WriteTx<'_>,
    id: CallId,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<Option<(CallView, AfterCommit)>, StoreError> {
    let call = load(tx, id)?;
    if call.status.is_terminal() {
        return Ok(None);
    }
    let live = matches!(call.status, CallStatus::Dialing | CallStatus::Ringing | CallStatus::Answered);
    stored::cancel(tx, id, at)?;
    let view = emit(tx, id, EventKind::CallCancelled, at, wall)?;
    let hang_up = if live { vec![PlaceCall::attempt_key(id, call.attempts_made)] } else { Vec::new() };
    Ok(Some((view, AfterCommit { hang_up, ..AfterCommit::default() })))
}

/// The `Retry-After` of the cap's 429: about one ringing attempt, the soonest
/// a slot usually frees. A hint; the websocket tells exactly when.
pub const CAP_RETRY_AFTER_SECS: u32 = 30;

/// Creates a smart call a courier asked for (the API, a campaign step).
/// Every check runs inside the writer transaction, so requests racing from
/// several devices can never exceed the cap or create two calls for one key.
pub fn create(
    tx: &mut WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    req: &CreateCall,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(CallView, bool), AppError> {
    if let Some(existing) = queries::call_by_key(tx.db(), courier, &req.idempotency_key)? {
        return if existing.view.stop_id == req.stop_id {
            Ok((existing.view, false))
        } else {
            Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                "this idempotency key was already used for another stop; generate a new key per tap",
            )
            .with_field("idempotency_key"))
        };
    }
    let stop = queries::stop(tx.db(), req.stop_id)?.filter(|s| s.stop.courier_id == courier);
    let Some(stop) = stop else {
        return Err(
            AppError::new(ErrorCode::StopNotFound, "no such stop on your routes").with_field("stop_id")
        );
    };
    if stop.removed {
        return Err(AppError::new(
            ErrorCode::StopRemoved,
            "this stop was removed from your route; refresh it",
        )
        .with_field("stop_id"));
    }
    if !queries::active_calls_for_stop(tx.db(), req.stop_id)?.is_empty() {
        return Err(AppError::new(
            ErrorCode::CallAlreadyActive,
            "this stop already has a smart call in progress",
        )
        .with_field("stop_id"));
    }
    crate::guard::check_call(tx.db(), stop.stop.depot_id, &stop.stop.phone, at)?;
    if queries::active_call_count(tx.db(), courier)? >= MAX_ACTIVE_CALLS_PER_COURIER {
        return Err(AppError::new(
            ErrorCode::TooManyActiveCalls,
            format!(
                "at most {MAX_ACTIVE_CALLS_PER_COURIER} smart calls at once; retry when one finishes \
                 (a call_finished event on /v1/ws says when)"
            ),
        )
        .retry_after(CAP_RETRY_AFTER_SECS));
    }
    let depot_policy = queries::depot(tx.db(), depot)?
        .map(|d| d.policy)
        .ok_or_else(|| StoreError::Corrupt(format!("depot {depot} vanished")))?;
    let policy = match &req.policy {
        Some(o) => o.apply(&depot_policy),
        None => depot_policy,
    };
    let id = stored::insert(
        tx,
        &NewCall {
            courier,
            depot: stop.stop.depot_id,
            stop: req.stop_id,
            idempotency_key: &req.idempotency_key,
            policy: &policy,
            at,
        },
    )?;
    let view = emit(tx, id, EventKind::CallRequested, at, wall)?;
    Ok((view, true))
}

// ---------------------------------------------------------------- the script

fn money(m: &Money) -> String {
    if m.minor % 100 == 0 {
        format!("{} {}", m.minor / 100, m.currency)
    } else {
        format!("{}.{:02} {}", m.minor / 100, m.minor % 100, m.currency)
    }
}

/// A stop's template variables, formatted for its customer (local times).
pub fn vars(company: &str, stop: &Stop, courier_name: &str) -> Vars {
    let tz: chrono_tz::Tz = stop.time_zone.parse().unwrap_or(chrono_tz::UTC);
    Vars {
        customer_name: stop.customer_name.clone(),
        order_numbers: stop.order_numbers.join(", "),
        amount: stop.amount.as_ref().map(money).unwrap_or_default(),
        window_start: stop.window_start.with_timezone(&tz).format("%H:%M").to_string(),
        window_end: stop.window_end.with_timezone(&tz).format("%H:%M").to_string(),
        courier_name: courier_name.to_owned(),
        company_name: company.to_owned(),
    }
}

/// The personalized message from the depot's templates in the customer's
/// language: who calls, about what, when (in the customer's own time zone).
pub fn script(depot: &Depot, templates: &TemplateSet, stop: &Stop, courier_name: &str) -> Script {
    let vars = vars(&depot.name, stop, courier_name);
    let (language, template) = templates.for_language(stop.language);
    let rendered = RenderedScript::new(language, &template, &vars);
    let keys = [('1', "confirm"), ('2', "reschedule"), ('3', "decline"), ('0', "talk to your courier")]
        .into_iter()
        .filter_map(|(c, what)| Key::new(c).map(|k| (k, what.to_owned())))
        .collect();
    Script {
        text: rendered.spoken(),
        no_input: rendered.no_input,
        goodbye: rendered.goodbye,
        language: language.code().to_owned(),
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, Scope};
    use crate::store::Store;
    use callahead_core::call::EndReason;
    use callahead_core::wire::Event;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    /// A store with one depot, courier, stop and a due call; returns its id.
    async fn seeded() -> (tempfile::TempDir, Store, Arc<Hub>, CallId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = Hub::new();
        let store = Store::open(&dir.path().join("t.db"), hub.clone()).expect("open");
        let id = store
            .writer
            .write(|tx| -> Result<CallId, StoreError> {
                crate::store::fixtures::one_due_call(tx, t0())?;
                Ok(CallId(1))
            })
            .await
            .expect("seed");
        (dir, store, hub, id)
    }

    fn report(seq: u32, event: ProviderEvent) -> ProviderReport {
        ProviderReport {
            call_id: CallId(1),
            attempt: 1,
            provider_seq: Some(seq),
            event,
            at: t0(),
            wall_ms: 0,
        }
    }

    fn key(c: char) -> Key {
        Key::new(c).expect("key")
    }

    async fn drain(sub: &mut crate::hub::Subscription) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(d) = sub.rx.try_recv() {
            let frame: callahead_core::wire::ServerFrame =
                serde_json::from_str(d.frame.as_str()).expect("frame");
            if let callahead_core::wire::ServerFrame::Event { event } = frame {
                out.push(event);
            }
        }
        out
    }

    #[tokio::test]
    async fn duplicate_and_out_of_order_reports_are_ignored() {
        let (_dir, store, hub, id) = seeded().await;
        let mut sub = hub.subscribe(Scope::All, 64);
        let placed = store.writer.write(move |tx| start_attempt(tx, id, t0())).await.expect("start");
        assert_eq!(placed.map(|p| p.attempt_key), Some("call-1-1".to_owned()));

        // Provider order: 1 ringing, 2 answered, 3 key '1', 4 ended. They
        // arrive 2, 1, 2, 4, 3.
        let arrivals = [
            report(2, ProviderEvent::Answered { voicemail: false }),
            report(1, ProviderEvent::Ringing),
            report(2, ProviderEvent::Answered { voicemail: false }),
            report(
                4,
                ProviderEvent::Ended {
                    result: EndReason::HungUp,
                    answered: true,
                    key: Some(key('1')),
                    talk_secs: None,
                },
            ),
            report(3, ProviderEvent::KeyPressed { key: key('1') }),
        ];
        for r in arrivals {
            store.writer.write(move |tx| Orchestrator::apply_report(tx, &r)).await.expect("apply");
        }
        let kinds: Vec<EventKind> = drain(&mut sub).await.into_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::AttemptPlaced { attempt: 1 },
                EventKind::Answered { attempt: 1 },
                EventKind::AttemptEnded { attempt: 1, result: AttemptResult::Completed },
                EventKind::CallFinished { outcome: Outcome::Confirmed },
            ]
        );
        let (call, attempts) = store
            .readers
            .read(move |c| -> Result<_, StoreError> {
                Ok((queries::call(c, id)?, queries::attempts(c, id)?))
            })
            .await
            .expect("read");
        let call = call.expect("call").view;
        assert_eq!((call.status, call.outcome), (CallStatus::Finished, Some(Outcome::Confirmed)));
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].ringing_at, None, "the late ringing was not applied");
        assert_eq!(attempts[0].key, Some(key('1')));
    }

    #[tokio::test]
    async fn reports_after_a_cancel_only_close_the_attempt() {
        let (_dir, store, hub, id) = seeded().await;
        store.writer.write(move |tx| start_attempt(tx, id, t0())).await.expect("start");
        let (view, todo) =
            store.writer.write(move |tx| cancel(tx, id, t0(), 0)).await.expect("cancel").expect("was active");
        assert_eq!(view.status, CallStatus::Cancelled);
        assert_eq!(todo.hang_up, vec!["call-1-1".to_owned()]);

        let mut sub = hub.subscribe(Scope::All, 64);
        for r in [
            report(1, ProviderEvent::Ringing),
            report(
                2,
                ProviderEvent::Ended {
                    result: EndReason::NoAnswer,
                    answered: false,
                    key: None,
                    talk_secs: None,
                },
            ),
        ] {
            store.writer.write(move |tx| Orchestrator::apply_report(tx, &r)).await.expect("apply");
        }
        let events = drain(&mut sub).await;
        let last = events.last().and_then(|e| e.call.clone()).expect("snapshot");
        assert_eq!(last.status, CallStatus::Cancelled, "a late report never revives a cancelled call");
        assert_eq!(last.next_attempt_at, None);
        assert!(events.iter().all(|e| !matches!(e.kind, EventKind::CallFinished { .. })));
    }

    #[tokio::test]
    async fn the_event_log_is_gap_free_when_a_job_in_the_batch_fails() {
        let (_dir, store, _hub, _id) = seeded().await;
        let w = store.writer.clone();
        // Three jobs queued together; the middle one appends then fails.
        let ok = |w: Writer| async move {
            w.write(|tx| emit(tx, CallId(1), EventKind::CallRequested, t0(), 0).map(|_| ())).await
        };
        let bad = |w: Writer| async move {
            w.write(|tx| -> Result<(), StoreError> {
                emit(tx, CallId(1), EventKind::CallRequested, t0(), 0)?;
                Err(StoreError::Corrupt("refused".into()))
            })
            .await
        };
        let (a, b, c) = tokio::join!(ok(w.clone()), bad(w.clone()), ok(w.clone()));
        assert!(a.is_ok() && b.is_err() && c.is_ok());
        let seqs: Vec<u64> = store
            .readers
            .read(|c| queries::events_after(c, Scope::All, 0, 100))
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![1, 2]);
    }
}
