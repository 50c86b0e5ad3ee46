//! The messaging provider boundary (architecture §4): text messages to
//! customers. The server talks only to [`Messaging`]; [`SimMessaging`] is the
//! embedded default, real SMS gateways come as further implementations.
//!
//! Delivery is reported by the result of [`Messaging::send`]: `Ok` once the
//! provider accepted the message, an error when it did not. The sender
//! (`crate::reschedule`) retries until accepted, so a message is sent at
//! least once; the idempotency key lets the provider drop the duplicates a
//! retry after a crash can produce.

use crate::telephony::BoxFuture;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// One text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The provider deduplicates on it: resending after a crash never
    /// texts the customer twice through a provider that honours it.
    pub idempotency_key: String,
    /// E.164 number.
    pub to: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// Worth retrying later (provider down, rate limited).
    #[error("messaging provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused this message for good (bad number, blocked).
    #[error("messaging provider rejected the message: {0}")]
    Rejected(String),
}

pub trait Messaging: Send + Sync + 'static {
    /// Sends one message; `Ok` once the provider accepted it. Idempotent on
    /// `sms.idempotency_key`.
    fn send(&self, sms: Sms) -> BoxFuture<'_, Result<(), MessagingError>>;
}

/// How the simulated provider behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimMessagingConfig {
    /// The first this many sends fail as `Unavailable` (tests of the retry).
    pub fail_first: u32,
}

#[derive(Default)]
struct State {
    sent: Vec<Sms>,
    keys: HashSet<String>,
    duplicates: u64,
    failures_left: u32,
    failed: u64,
    rejecting: bool,
}

/// The embedded provider: records what was sent, in order, once per
/// idempotency key, and lets tests wait for a message and make it fail.
pub struct SimMessaging {
    state: Mutex<State>,
    /// Bumped on every accepted message: tests wait on it.
    count: watch::Sender<usize>,
}

impl SimMessaging {
    pub fn new(config: SimMessagingConfig) -> Arc<SimMessaging> {
        let state = State { failures_left: config.fail_first, ..State::default() };
        Arc::new(SimMessaging { state: Mutex::new(state), count: watch::channel(0).0 })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every accepted message, in order (duplicates by key not repeated).
    pub fn sent(&self) -> Vec<Sms> {
        self.lock().sent.clone()
    }

    /// Messages sent again with a key already accepted.
    pub fn duplicates(&self) -> u64 {
        self.lock().duplicates
    }

    /// Sends refused so far (simulated outages and rejections).
    pub fn failed(&self) -> u64 {
        self.lock().failed
    }

    /// From now on, refuse every message for good (`true`) or accept again.
    pub fn set_rejecting(&self, rejecting: bool) {
        self.lock().rejecting = rejecting;
    }

    /// Changes whenever a message was accepted (the value: how many so far).
    pub fn changes(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Waits until a message to `to` was accepted and returns the first one.
    /// No timeout here: callers bound the wait.
    pub async fn wait_for(&self, to: &str) -> Sms {
        let mut rx = self.count.subscribe();
        loop {
            if let Some(sms) = self.lock().sent.iter().find(|s| s.to == to).cloned() {
                return sms;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`: unreachable, but never spin.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Messaging for SimMessaging {
    fn send(&self, sms: Sms) -> BoxFuture<'_, Result<(), MessagingError>> {
        Box::pin(async move {
            let accepted = {
                let mut s = self.lock();
                if s.rejecting {
                    s.failed += 1;
                    return Err(MessagingError::Rejected("the simulator rejects every message".into()));
                }
                if s.failures_left > 0 {
                    s.failures_left -= 1;
                    s.failed += 1;
                    return Err(MessagingError::Unavailable("simulated outage".into()));
                }
                if s.keys.insert(sms.idempotency_key.clone()) {
                    s.sent.push(sms);
                    s.sent.len()
                } else {
                    s.duplicates += 1;
                    return Ok(());
                }
            };
            self.count.send_replace(accepted);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(key: &str, to: &str) -> Sms {
        Sms { idempotency_key: key.into(), to: to.into(), text: format!("hello {to}") }
    }

    #[tokio::test]
    async fn records_each_message_once_per_key() {
        let sim = SimMessaging::new(SimMessagingConfig::default());
        sim.send(sms("a", "+79990000001")).await.expect("sent");
        sim.send(sms("a", "+79990000001")).await.expect("a resend is accepted");
        sim.send(sms("b", "+79990000002")).await.expect("sent");
        assert_eq!(sim.sent(), vec![sms("a", "+79990000001"), sms("b", "+79990000002")]);
        assert_eq!(sim.duplicates(), 1);
    }

    #[tokio::test]
    async fn fails_as_configured_then_recovers() {
        let sim = SimMessaging::new(SimMessagingConfig { fail_first: 2 });
        for _ in 0..2 {
            assert!(matches!(sim.send(sms("a", "+1")).await, Err(MessagingError::Unavailable(_))));
        }
        sim.send(sms("a", "+1")).await.expect("third try goes through");
        sim.set_rejecting(true);
        assert!(matches!(sim.send(sms("b", "+2")).await, Err(MessagingError::Rejected(_))));
        assert_eq!((sim.sent().len(), sim.failed()), (1, 3));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_message_arrives() {
        let sim = SimMessaging::new(SimMessagingConfig::default());
        let waiter = {
            let sim = sim.clone();
            tokio::spawn(async move { sim.wait_for("+3").await })
        };
        sim.send(sms("x", "+2")).await.expect("sent");
        sim.send(sms("y", "+3")).await.expect("sent");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woke")
            .expect("joined");
        assert_eq!(got.idempotency_key, "y");
    }
}
