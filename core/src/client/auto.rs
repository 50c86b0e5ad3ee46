//! Automatic call-ahead's task: applies [`crate::auto_call`]'s rule to the
//! stored route whenever something changed or the next stop's lead time
//! comes, and queues what is due in the outbox like a tap. The queueing and
//! the "already called automatically" mark are one local transaction, so a
//! restart or an offline spell never calls a stop twice.

use super::Shared;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// ETAs move as time passes (a courier who has not left yet is later for
/// everyone): look again at least this often, in the clock's time.
const RECHECK: chrono::Duration = chrono::Duration::minutes(1);

pub(crate) async fn run(shared: Arc<Shared>) {
    tokio::select! {
        _ = shared.closing() => {}
        _ = watch(&shared) => {}
    }
}

async fn watch(shared: &Arc<Shared>) {
    let clock = shared.config.clock.clone();
    loop {
        let now = clock.now();
        let next = match tick(shared, now) {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!("automatic call-ahead: {e}");
                None
            }
        };
        let deadline = next.map_or(now + RECHECK, |n| n.min(now + RECHECK)).max(now);
        tokio::select! {
            _ = shared.auto_wake.notified() => {}
            _ = clock.sleep_until(deadline) => {}
        }
    }
}

/// Queues what is due at `now`; returns when to look again.
fn tick(shared: &Arc<Shared>, now: DateTime<Utc>) -> super::error::Result<Option<DateTime<Utc>>> {
    let (settings, mut stops) = shared.db.auto_candidates(now)?;
    let due = crate::auto_call::due(&settings, &stops, now);
    if !due.is_empty() {
        for state in shared.db.request_auto(&due, now)? {
            shared.listener.on_stop_changed(state);
        }
        shared.dispatch_wake.notify_one();
    }
    // What was just queued is touched now; the next check is for the rest.
    for s in stops.iter_mut().filter(|s| due.iter().any(|d| d.id == s.id)) {
        s.touched = true;
    }
    Ok(crate::auto_call::next_check(&settings, &stops, now).filter(|t| *t > now))
}
