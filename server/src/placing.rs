//! Placing an attempt with a real provider (docs/architecture.md §4, ADR 0002 and
//! 0008): after the attempt row committed, the attempt waits for a line,
//! then asks the provider; what can go wrong there is handled here, apart
//! from the state machine in [`crate::orchestrator`]:
//!
//! * an outage is not an attempt: "unavailable" and "rate limited" retry the
//!   same attempt with backoff and jitter, and the courier sees "waiting for
//!   a line" instead of a failure;
//! * an uncertain create (the request went out, no answer came back) is
//!   never re-sent blindly: the provider is asked whether the call exists;
//!   only a "no such call" lets the same attempt go out again, and if the
//!   provider cannot tell, the attempt ends as interrupted;
//! * a definite refusal ends the call as failed, with the provider's reason;
//! * after a restart, an attempt in flight is looked up at the provider and
//!   closed with what really happened there ([`Orchestrator::reconcile`]).

use crate::orchestrator::{self, emit, AfterCommit, Orchestrator};
use crate::providers::lines::Busy;
use crate::providers::{AttemptRef, Lookup, PlaceCall, Placed, TelephonyError};
use crate::store::{providers as stored, queries, StoreError, WriteTx};
use callahead_core::call::{AttemptResult, CallStatus, EndReason, Outcome, ProviderEvent};
use callahead_core::clock::wall_ms;
use callahead_core::wire::{EventKind, LineWait};
use callahead_core::CallId;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use std::sync::Arc;

/// First backoff after an outage (domain time); doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::seconds(1);
const BACKOFF_MAX: Duration = Duration::seconds(30);
/// An outage longer than this ends the attempt as failed (domain time), and
/// the policy decides: the customer's delivery window does not wait for ever.
const OUTAGE_GIVE_UP: Duration = Duration::minutes(30);
/// How long an uncertain create may stay unresolved (the provider cannot be
/// asked) before the attempt is closed as interrupted.
const UNCERTAIN_GIVE_UP: Duration = Duration::minutes(10);
/// A "no such call" right after an uncertain create is asked again after
/// this long: the provider's list may trail its create by a moment.
const LOOKUP_GRACE: Duration = Duration::seconds(5);

/// A per-attempt secret for the provider's side to sign its reports with.
pub fn callback_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Exponential backoff with jitter: each wait is drawn from the upper half
/// of the current step, so many attempts retrying after the same outage do
/// not hit the provider in one burst.
struct Backoff {
    step: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { step: BACKOFF_FIRST }
    }

    fn next(&mut self) -> Duration {
        let ms = self.step.num_milliseconds().max(2);
        let wait = rand::rng().random_range(ms / 2..=ms);
        self.step = (self.step * 2).min(BACKOFF_MAX);
        Duration::milliseconds(wait)
    }
}

/// How an uncertain create was resolved.
enum Resolved {
    Done,
    SendAgain,
}

impl Orchestrator {
    /// Places a committed attempt in the background.
    pub(crate) fn spawn_place(self: &Arc<Self>, req: PlaceCall) {
        let this = self.clone();
        self.tasks.spawn(async move {
            let key = req.attempt_key.clone();
            if let Err(e) = this.place(req).await {
                tracing::error!(attempt_key = %key, error = %e, "cannot record the attempt's placing");
                this.lines.release(&key);
            }
        });
    }

    async fn place(self: &Arc<Self>, req: PlaceCall) -> Result<(), StoreError> {
        let (id, n, key) = (req.call_id, req.attempt, req.attempt_key.clone());
        let this = self.clone();
        self.lines
            .acquire(req.courier_id, &key, |_busy: Busy| {
                // The wait is the courier's to see while it lasts.
                let this = this.clone();
                this.clone().tasks.spawn(async move {
                    if let Err(e) = this.note_waiting(id, n, LineWait::LinesBusy).await {
                        tracing::warn!(call_id = %id, error = %e, "cannot record the wait for a line");
                    }
                });
            })
            .await;
        let started = self.clock.now();
        let mut backoff = Backoff::new();
        let mut told: Option<LineWait> = None;
        loop {
            if !self.still_dialing(id, n).await? {
                // Cancelled while it waited: nobody was called.
                return self.close_unplaced(id, n).await;
            }
            match self.telephony.place(req.clone()).await {
                Ok(placed) => {
                    self.record_placed(id, n, placed).await?;
                    if self.cancelled(id).await? {
                        // Cancelled while the create was on its way: the
                        // hang-up then had no reference to use.
                        self.after_commit(AfterCommit { hang_up: vec![key], ..AfterCommit::default() });
                    }
                    return Ok(());
                }
                Err(TelephonyError::Rejected(reason)) => {
                    tracing::warn!(attempt_key = %key, %reason, "the provider refused the call");
                    return self.reject(id, n, reason).await;
                }
                Err(TelephonyError::Uncertain(why)) => {
                    tracing::warn!(attempt_key = %key, %why, "uncertain create; looking the call up");
                    match self.resolve_uncertain(&req).await? {
                        Resolved::Done => return Ok(()),
                        Resolved::SendAgain => {
                            tracing::info!(attempt_key = %key, "the provider has no such call; placing it again");
                        }
                    }
                }
                Err(e) => {
                    let reason = match e {
                        TelephonyError::RateLimited(_) => LineWait::RateLimited,
                        _ => LineWait::ProviderUnavailable,
                    };
                    tracing::warn!(attempt_key = %key, error = %e, "provider outage; the attempt waits");
                    if told != Some(reason) {
                        told = Some(reason);
                        self.note_waiting(id, n, reason).await?;
                    }
                    if self.clock.now() - started > OUTAGE_GIVE_UP {
                        tracing::warn!(attempt_key = %key, "the provider was unavailable for too long; the attempt fails");
                        return self.fail(id, n).await;
                    }
                    let due = self.clock.now() + backoff.next();
                    self.clock.sleep_until(due).await;
                    self.lines.pace().await;
                }
            }
        }
    }

    /// After an uncertain create: asks the provider whether the call exists.
    async fn resolve_uncertain(self: &Arc<Self>, req: &PlaceCall) -> Result<Resolved, StoreError> {
        let (id, n) = (req.call_id, req.attempt);
        let since = self.clock.now();
        let attempt = AttemptRef {
            attempt_key: req.attempt_key.clone(),
            placed: None,
            to: req.to.clone(),
            placed_at: self.placed_at(id, n).await?.unwrap_or(since),
        };
        let mut backoff = Backoff::new();
        let mut not_found = 0;
        loop {
            if self.attempt_ref(&attempt.attempt_key).await.placed.is_some() {
                // The provider's own callback named the call meanwhile.
                return Ok(Resolved::Done);
            }
            match self.telephony.lookup(&attempt).await {
                Ok(Lookup::Live(placed)) => {
                    self.record_placed(id, n, placed).await?;
                    return Ok(Resolved::Done);
                }
                Ok(Lookup::Ended { placed, events }) => {
                    self.close_with(id, n, Some(placed), events).await?;
                    return Ok(Resolved::Done);
                }
                Ok(Lookup::NotFound) if not_found > 0 => return Ok(Resolved::SendAgain),
                Ok(Lookup::NotFound) => not_found += 1,
                Err(e) => tracing::warn!(attempt_key = %attempt.attempt_key, error = %e, "lookup failed"),
            }
            if self.clock.now() - since > UNCERTAIN_GIVE_UP {
                // Cannot tell whether the customer's phone rang: the attempt
                // counts (ADR 0002), and is never sent again.
                let now = self.clock.now();
                let (todo, _) = self.writer.write(move |tx| orchestrator::interrupt(tx, id, n, now)).await?;
                self.after_commit(todo);
                return Ok(Resolved::Done);
            }
            let wait = if not_found > 0 { LOOKUP_GRACE } else { backoff.next() };
            let due = self.clock.now() + wait;
            self.clock.sleep_until(due).await;
        }
    }

    /// Start-up: what the provider says about attempt `n` of call `id`.
    /// `true` when it is still live (it keeps its line) or was closed with
    /// the provider's record; `false` when the provider does not know it (or
    /// cannot be asked), and recovery ends it as interrupted.
    pub(crate) async fn reconcile(self: &Arc<Self>, id: CallId, n: u32) -> Result<bool, StoreError> {
        let attempt = self.attempt_ref(&PlaceCall::attempt_key(id, n)).await;
        match self.telephony.lookup(&attempt).await {
            Ok(Lookup::Live(placed)) => {
                if attempt.placed.is_none() {
                    self.record_placed(id, n, placed).await?;
                }
                self.lines.adopt(&attempt.attempt_key);
                Ok(true)
            }
            Ok(Lookup::Ended { placed, events }) => {
                tracing::info!(attempt_key = %attempt.attempt_key, "closing the attempt with the provider's record");
                self.close_with(id, n, Some(placed), events).await?;
                Ok(true)
            }
            Ok(Lookup::NotFound) => Ok(false),
            Err(e) => {
                // Unknown counts as dead: ending it can at worst cost the
                // customer an attempt, never a second call.
                tracing::warn!(attempt_key = %attempt.attempt_key, error = %e, "cannot ask the provider; ending the attempt");
                Ok(false)
            }
        }
    }

    /// What the seam needs to name an attempt to the provider.
    pub(crate) async fn attempt_ref(&self, key: &str) -> AttemptRef {
        let k = key.to_owned();
        let stored = self.readers.read(move |c| stored::attempt_by_key(c, &k)).await;
        match stored {
            Ok(Some(a)) => AttemptRef {
                attempt_key: key.to_owned(),
                placed: a.placed,
                to: a.request.to,
                placed_at: a.placed_at,
            },
            Ok(None) | Err(_) => AttemptRef {
                attempt_key: key.to_owned(),
                placed: None,
                to: String::new(),
                placed_at: self.clock.now(),
            },
        }
    }

    async fn placed_at(&self, id: CallId, n: u32) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.readers.read(move |c| Ok(stored::attempt(c, id, n)?.map(|a| a.placed_at))).await
    }

    async fn still_dialing(&self, id: CallId, n: u32) -> Result<bool, StoreError> {
        self.readers
            .read(move |c| {
                let call = queries::call(c, id)?;
                Ok(call.is_some_and(|c| c.view.status == CallStatus::Dialing && c.view.attempts_made == n))
            })
            .await
    }

    async fn cancelled(&self, id: CallId) -> Result<bool, StoreError> {
        self.readers
            .read(move |c| Ok(queries::call(c, id)?.is_some_and(|c| c.view.status == CallStatus::Cancelled)))
            .await
    }

    async fn record_placed(&self, id: CallId, n: u32, placed: Placed) -> Result<(), StoreError> {
        self.writer.write(move |tx| stored::set_placed(tx, id, n, &placed)).await
    }

    async fn note_waiting(&self, id: CallId, n: u32, reason: LineWait) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.writer.write(move |tx| note_waiting(tx, id, n, reason, now)).await
    }

    async fn reject(self: &Arc<Self>, id: CallId, n: u32, reason: String) -> Result<(), StoreError> {
        let now = self.clock.now();
        let todo = self.writer.write(move |tx| reject(tx, id, n, &reason, now)).await?;
        self.after_commit(todo);
        Ok(())
    }

    /// The attempt fails as if the provider had said so; the policy decides.
    async fn fail(self: &Arc<Self>, id: CallId, n: u32) -> Result<(), StoreError> {
        let failed =
            ProviderEvent::Ended { result: EndReason::Failed, answered: false, key: None, talk_secs: None };
        self.close_with(id, n, None, vec![failed]).await
    }

    async fn close_unplaced(self: &Arc<Self>, id: CallId, n: u32) -> Result<(), StoreError> {
        let now = self.clock.now();
        let todo = self.writer.write(move |tx| close_unplaced(tx, id, n, now)).await?;
        self.after_commit(todo);
        Ok(())
    }

    /// Applies what the provider's record says happened, in order.
    async fn close_with(
        self: &Arc<Self>,
        id: CallId,
        n: u32,
        placed: Option<Placed>,
        events: Vec<ProviderEvent>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let todo = self
            .writer
            .write(move |tx| -> Result<AfterCommit, StoreError> {
                if let Some(placed) = &placed {
                    stored::set_placed(tx, id, n, placed)?;
                }
                let mut todo = AfterCommit::default();
                for event in &events {
                    todo.merge(orchestrator::apply(tx, id, n, None, event, now, wall_ms())?);
                }
                Ok(todo)
            })
            .await?;
        self.after_commit(todo);
        Ok(())
    }
}

/// The attempt still open and its call still dialing it.
fn dialing(tx: &WriteTx<'_>, id: CallId, n: u32) -> Result<bool, StoreError> {
    let call = queries::call(tx.db(), id)?;
    let open = queries::attempt(tx.db(), id, n)?.is_some_and(|a| a.view.ended_at.is_none());
    Ok(open && call.is_some_and(|c| c.view.status == CallStatus::Dialing && c.view.attempts_made == n))
}

fn note_waiting(
    tx: &mut WriteTx<'_>,
    id: CallId,
    n: u32,
    reason: LineWait,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if dialing(tx, id, n)? {
        emit(tx, id, EventKind::WaitingForLine { attempt: n, reason }, now, wall_ms())?;
    }
    Ok(())
}

/// A definite refusal: the attempt fails, and the call with it (another
/// attempt to an invalid number would only be refused again).
fn reject(
    tx: &mut WriteTx<'_>,
    id: CallId,
    n: u32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<AfterCommit, StoreError> {
    let mut todo = AfterCommit { ended: vec![PlaceCall::attempt_key(id, n)], ..AfterCommit::default() };
    let open = queries::attempt(tx.db(), id, n)?.is_some_and(|a| a.view.ended_at.is_none());
    if !open {
        return Ok(todo);
    }
    let wall = wall_ms();
    crate::store::calls::end_attempt(tx, id, n, AttemptResult::Failed, None, now)?;
    emit(tx, id, EventKind::ProviderRejected { attempt: n, reason: reason.to_owned() }, now, wall)?;
    emit(tx, id, EventKind::AttemptEnded { attempt: n, result: AttemptResult::Failed }, now, wall)?;
    let call =
        queries::call(tx.db(), id)?.ok_or_else(|| StoreError::Corrupt(format!("call {id} vanished")))?;
    if !call.view.status.is_terminal() && call.view.attempts_made == n {
        todo.merge(orchestrator::finish(tx, id, Outcome::Failed, now, wall)?);
    }
    Ok(todo)
}

/// A cancelled call's attempt that never reached the provider.
fn close_unplaced(
    tx: &mut WriteTx<'_>,
    id: CallId,
    n: u32,
    now: DateTime<Utc>,
) -> Result<AfterCommit, StoreError> {
    let todo = AfterCommit { ended: vec![PlaceCall::attempt_key(id, n)], ..AfterCommit::default() };
    let open = queries::attempt(tx.db(), id, n)?.is_some_and(|a| a.view.ended_at.is_none());
    if open {
        crate::store::calls::end_attempt(tx, id, n, AttemptResult::Cancelled, None, now)?;
        emit(
            tx,
            id,
            EventKind::AttemptEnded { attempt: n, result: AttemptResult::Cancelled },
            now,
            wall_ms(),
        )?;
    }
    Ok(todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<i64> = (0..10).map(|_| b.next().num_milliseconds()).collect();
        assert!((500..=1000).contains(&waits[0]), "{waits:?}");
        assert!((1000..=2000).contains(&waits[1]), "{waits:?}");
        for w in &waits[6..] {
            assert!((15_000..=30_000).contains(w), "capped at 30 s: {waits:?}");
        }
    }

    #[test]
    fn secrets_differ() {
        assert_ne!(callback_secret(), callback_secret());
        assert_eq!(callback_secret().len(), 64);
    }
}
