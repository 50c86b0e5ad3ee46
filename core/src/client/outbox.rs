//! The dispatcher: the one task that sends stored taps to the server, oldest
//! first, while fewer than [`MAX_ACTIVE_CALLS_PER_COURIER`] calls are active.
//! Each entry carries the idempotency key it was stored with, so resending
//! after a crash or a lost answer returns the same call, never a second one.

use super::backoff::Backoff;
use super::db::OutboxEntry;
use super::error::Disposition;
use super::Shared;
use crate::MAX_ACTIVE_CALLS_PER_COURIER;
use std::sync::Arc;

/// Which queued entries to send now: the oldest ones, as many as there are
/// free slots under the cap.
pub(crate) fn next_batch(active: usize, queued: &[OutboxEntry]) -> &[OutboxEntry] {
    let free = MAX_ACTIVE_CALLS_PER_COURIER.saturating_sub(active);
    &queued[..queued.len().min(free)]
}

/// What the dispatcher waits for before looking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Look again at once: something was sent, slots and queue changed.
    Nothing,
    /// Nothing to send, or no free slot: wait for a tap or a finished call.
    Wake,
    /// The network or the server is down: back off, or go as soon as the
    /// websocket is back.
    Backoff,
    /// Another device of this courier filled the cap: wait for a call to end.
    Slot,
    /// The token is refused: try rarely, keeping the taps.
    Auth,
}

/// How one send ended.
enum Sent {
    Done,
    /// Cancelled locally before it could be sent.
    Skipped,
    Retry(Wait),
}

pub(crate) async fn run(shared: Arc<Shared>) {
    tokio::select! {
        _ = shared.closing() => {}
        _ = dispatch(&shared) => {}
    }
}

async fn dispatch(shared: &Arc<Shared>) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    loop {
        let wait = step(shared, &mut backoff).await;
        let fallback = match wait {
            Wait::Nothing => continue,
            Wait::Wake => None,
            Wait::Backoff => Some(backoff.next_delay()),
            // Finished calls arrive as events; the timer only guards against
            // a cap filled by calls this phone never hears about.
            Wait::Slot | Wait::Auth => Some(config.reconnect_max),
        };
        match fallback {
            None => shared.dispatch_wake.notified().await,
            Some(delay) => {
                tokio::select! {
                    _ = shared.dispatch_wake.notified() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn step(shared: &Arc<Shared>, backoff: &mut Backoff) -> Wait {
    let view = match shared.db.dispatch_view() {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("outbox: reading the queue failed: {e}");
            return Wait::Backoff;
        }
    };
    if let Some(wait) = send_plan(shared).await {
        return wait;
    }
    let batch = next_batch(view.active, &view.queued);
    if batch.is_empty() {
        return Wait::Wake;
    }
    for entry in batch {
        match send(shared, entry).await {
            Sent::Done => backoff.reset(),
            Sent::Skipped => {}
            Sent::Retry(wait) => return wait,
        }
    }
    Wait::Nothing
}

/// Sends the courier's reorder, if one waits. `None` when there is nothing
/// more to do for it; otherwise what to wait for before trying again.
async fn send_plan(shared: &Arc<Shared>) -> Option<Wait> {
    let plan = match shared.db.pending_plan() {
        Ok(plan) => plan?,
        Err(e) => {
            tracing::error!("outbox: reading the pending plan failed: {e}");
            return Some(Wait::Backoff);
        }
    };
    let server_head = match shared.http.plan_route(plan.date, &plan.stop_ids).await {
        Ok(route) => Some(route.head_seq),
        Err(e) => match e.disposition() {
            Disposition::Transient => return Some(Wait::Backoff),
            Disposition::Unauthorized => return Some(Wait::Auth),
            // The route changed on the server meanwhile (its "route replaced"
            // event refetches it), or the plan is refused for good: either
            // way resending cannot help, and the local order stays on screen.
            Disposition::CapReached | Disposition::Permanent { .. } => {
                tracing::warn!(date = %plan.date, "outbox: the server refused the planned order: {e}");
                None
            }
        },
    };
    let delivered = server_head.is_some();
    match shared.db.plan_delivered(plan.date, plan.version, server_head.unwrap_or(0)) {
        Ok(reordered) => {
            // The server re-planned after the plan landed (docs/adr/0010).
            if let Some(states) = reordered {
                for s in states {
                    shared.listener.on_stop_changed(s);
                }
                shared.auto_wake.notify_one();
            }
        }
        Err(e) => {
            tracing::error!("outbox: clearing the sent plan failed: {e}");
            return Some(Wait::Backoff);
        }
    }
    tracing::debug!(date = %plan.date, delivered, "outbox: planned order sent");
    None
}

async fn send(shared: &Arc<Shared>, entry: &OutboxEntry) -> Sent {
    let sent = send_inner(shared, entry).await;
    shared.send_finished.send_modify(|n| *n = n.wrapping_add(1));
    sent
}

async fn send_inner(shared: &Arc<Shared>, entry: &OutboxEntry) -> Sent {
    let db = &shared.db;
    match db.mark_sending(entry.id) {
        Ok(Some(state)) => shared.notify_stop(Some(state)),
        Ok(None) => return Sent::Skipped,
        Err(e) => {
            tracing::error!(entry = entry.id, "outbox: claiming an entry failed: {e}");
            return Sent::Retry(Wait::Backoff);
        }
    }
    let result = shared.http.create_call(entry.stop_id, &entry.idempotency_key).await;
    let (stored, sent) = match result {
        Ok(call) => {
            tracing::debug!(entry = entry.id, call = %call.id, "outbox: call placed");
            (db.complete_send(entry.id, entry.stop_id, &call), Sent::Done)
        }
        Err(e) => {
            let (wait, permanent) = match e.disposition() {
                Disposition::Transient => (Wait::Backoff, None),
                Disposition::CapReached => (Wait::Slot, None),
                Disposition::Unauthorized => (Wait::Auth, None),
                Disposition::Permanent { code, message } => (Wait::Nothing, Some((code, message))),
            };
            match permanent {
                Some((code, message)) => {
                    tracing::info!(
                        entry = entry.id,
                        ?code,
                        "outbox: the server refused a call request: {message}"
                    );
                    (db.fail(entry.id, code, &message), Sent::Done)
                }
                None => {
                    tracing::debug!(entry = entry.id, "outbox: send failed, will retry: {e}");
                    (db.requeue(entry.id, &e.to_string()), Sent::Retry(wait))
                }
            }
        }
    };
    match stored {
        Ok(state) => {
            shared.notify_stop(state);
            sent
        }
        Err(e) => {
            // The entry stays "sending" until the next start requeues it;
            // its key makes that resend harmless.
            tracing::error!(entry = entry.id, "outbox: storing the answer failed: {e}");
            Sent::Retry(Wait::Backoff)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StopId;

    fn queued(n: usize) -> Vec<OutboxEntry> {
        (0..n)
            .map(|i| OutboxEntry {
                id: i as i64 + 1,
                stop_id: StopId(100 + i as i64),
                idempotency_key: format!("key-{i:08}"),
                send_attempts: 0,
            })
            .collect()
    }

    #[test]
    fn courier_taps_seven_stops_five_start_two_wait() {
        let q = queued(7);
        let batch = next_batch(0, &q);
        assert_eq!(batch.len(), 5);
        assert_eq!(batch, &q[..5], "the oldest taps go first");
    }

    #[test]
    fn a_full_cap_sends_nothing_and_a_freed_slot_sends_the_next() {
        let q = queued(2);
        assert!(next_batch(MAX_ACTIVE_CALLS_PER_COURIER, &q).is_empty());
        assert!(next_batch(MAX_ACTIVE_CALLS_PER_COURIER + 2, &q).is_empty());
        assert_eq!(next_batch(MAX_ACTIVE_CALLS_PER_COURIER - 1, &q), &q[..1]);
    }
}
