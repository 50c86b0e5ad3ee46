//! What both provider doubles play alike: an outage that lasts as long as
//! the double itself observed it (not a stretch of time the test hopes the
//! server's calls fall into), and a gate that holds every call just before
//! it ends at the provider, so a test can stop the server while calls are
//! live and let them end while nobody listens.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// The provider refuses every create (503) from the first one it refuses
/// until both: `span` of domain time has passed since then, and it refused
/// `attempts` different attempts. A loaded machine that places the calls
/// late only starts the outage late; it never misses it.
#[derive(Debug, Clone)]
pub struct Outage {
    span: Duration,
    attempts: usize,
    first: Option<DateTime<Utc>>,
    refused: HashSet<String>,
}

impl Outage {
    pub fn new(span: Duration, attempts: usize) -> Outage {
        Outage { span, attempts, first: None, refused: HashSet::new() }
    }

    /// Whether the create of `attempt_key` at domain time `now` is refused;
    /// `false` once the outage is over (for good).
    pub fn refuses(&mut self, attempt_key: &str, now: DateTime<Utc>) -> bool {
        let first = *self.first.get_or_insert(now);
        if now - first >= self.span && self.refused.len() >= self.attempts {
            return false;
        }
        self.refused.insert(attempt_key.to_owned());
        true
    }
}

/// Holds each call before its end while shut (its last report unsent).
pub struct Gate {
    shut: watch::Sender<bool>,
    held: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { shut: watch::channel(false).0, held: AtomicUsize::new(0) }
    }
}

impl Gate {
    pub fn set_shut(&self, shut: bool) {
        self.shut.send_replace(shut);
    }

    /// Calls waiting at the gate now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits while the gate is shut; `changed` is the double's change
    /// signal, bumped when a call starts and stops waiting.
    pub async fn pass(&self, changed: &watch::Sender<u64>) {
        let mut rx = self.shut.subscribe();
        if !*rx.borrow_and_update() {
            return;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        changed.send_modify(|n| *n += 1);
        let _ = rx.wait_for(|shut| !*shut).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
        changed.send_modify(|n| *n += 1);
    }
}

/// How long the provider was down, from what it answered (HTTP status
/// and domain time of each create, in order): from its first 503 to the
/// first create it took after that (`ok`).
pub fn outage_length(answers: &[(u16, DateTime<Utc>)], ok: u16) -> Option<Duration> {
    let first = answers.iter().find(|(status, _)| *status == 503)?.1;
    let back = answers.iter().find(|(status, at)| *status == ok && *at >= first)?.1;
    Some(back - first)
}

/// The most requests in any one second, from their real times in order.
pub fn busiest_second(at: &[std::time::Instant]) -> usize {
    (0..at.len())
        .map(|i| {
            at[i..].iter().filter(|t| t.duration_since(at[i]) < std::time::Duration::from_secs(1)).count()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_lasts_its_span_and_catches_every_attempt() {
        let t0 = crate::server::morning();
        let mut o = Outage::new(Duration::seconds(30), 2);
        assert!(o.refuses("a", t0));
        // Past the span, but the second attempt was not refused yet.
        assert!(o.refuses("a", t0 + Duration::seconds(31)));
        assert!(o.refuses("b", t0 + Duration::seconds(32)));
        assert!(!o.refuses("a", t0 + Duration::seconds(33)));
        assert!(!o.refuses("c", t0 + Duration::seconds(34)), "over for good");

        let mut o = Outage::new(Duration::seconds(30), 1);
        assert!(o.refuses("a", t0 + Duration::seconds(100)), "starts at the first create it sees");
        assert!(o.refuses("a", t0 + Duration::seconds(129)));
        assert!(!o.refuses("a", t0 + Duration::seconds(130)));
    }

    #[tokio::test]
    async fn the_gate_holds_calls_while_shut() {
        let gate = std::sync::Arc::new(Gate::default());
        let changed = std::sync::Arc::new(watch::channel(0u64).0);
        gate.pass(&changed).await;
        assert_eq!(*changed.borrow(), 0, "an open gate holds nobody");

        gate.set_shut(true);
        let mut seen = changed.subscribe();
        let (g, c) = (gate.clone(), changed.clone());
        let call = tokio::spawn(async move { g.pass(&c).await });
        crate::within("the call to wait", seen.wait_for(|_| gate.held() == 1)).await.expect("signal");
        assert!(!call.is_finished());
        gate.set_shut(false);
        crate::within("the call to pass", call).await.expect("passed");
        assert_eq!(gate.held(), 0);
    }
}
