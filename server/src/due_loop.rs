//! The one wait loop of the server's timed workers (the call scheduler, the
//! SMS sender): read the earliest due time, act when it has come, otherwise
//! sleep on the domain clock until then, a wake-up, or a periodic recheck.
//! A pass returns whether it acted; one that found only other nodes' work
//! (docs/adr/0011) waits like one that found nothing.

use crate::store::StoreError;
use callahead_core::clock::SharedClock;
use chrono::{DateTime, Utc};
use std::future::Future;
use tokio::sync::Notify;

/// Safety net: look again this often even without a wake-up, and wait this
/// long after a failed pass before retrying.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs until the store closes. `what` names the worker in logs.
pub async fn run<N, NF, P, PF>(what: &str, clock: &SharedClock, wake: &Notify, mut next_due: N, mut pass: P)
where
    N: FnMut() -> NF,
    NF: Future<Output = Result<Option<DateTime<Utc>>, StoreError>>,
    P: FnMut(DateTime<Utc>) -> PF,
    PF: Future<Output = Result<bool, StoreError>>,
{
    loop {
        let next = match next_due().await {
            Ok(n) => n,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "{what}: cannot read what is due");
                None
            }
        };
        let now = clock.now();
        if next.is_some_and(|d| d <= now) {
            match pass(now).await {
                Ok(true) => continue,
                // What is due is another node's (docs/adr/0011): wait for
                // a wake-up or the recheck rather than spin on it.
                Ok(false) => {}
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "{what}: pass failed");
                    tokio::time::sleep(RECHECK).await;
                    continue;
                }
            }
        }
        let sleep = match next {
            Some(due) if due > now => clock.sleep_until(due),
            _ => Box::pin(std::future::pending()),
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = sleep => {}
            _ = tokio::time::sleep(RECHECK) => {}
        }
    }
}
