//! The embedded messaging provider: two simulated messengers and SMS, each
//! idempotent on the message key, with scripted reach per number.

use crate::providers::{BoxFuture, Message, Messaging, MessagingError, Sent};
use callahead_core::channel::Channel;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// How a simulated messenger treats a registered number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Delivered at once, with a receipt.
    Delivered,
    /// Accepted, but no receipt ever comes (phone off, app gone).
    NoReceipt,
    /// The provider rejects every message to it.
    Fails,
}

/// How the simulated provider behaves. Every number gets SMS; a messenger
/// reaches only the numbers registered on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimMessagingConfig {
    /// The first this many SMS sends fail as `Unavailable` (tests of the retry).
    pub fail_first: u32,
    /// Per number, the messengers it is registered on and how they behave.
    pub messengers: BTreeMap<String, BTreeMap<Channel, Reach>>,
}

impl SimMessagingConfig {
    /// Registers `phone` on messenger `channel`.
    pub fn register(mut self, phone: &str, channel: Channel, reach: Reach) -> Self {
        self.messengers.entry(phone.to_owned()).or_default().insert(channel, reach);
        self
    }
}

#[derive(Default)]
struct State {
    config: SimMessagingConfig,
    sent: Vec<Message>,
    /// Every accepted key and its answer, so a resend answers the same.
    keys: HashMap<String, Sent>,
    duplicates: u64,
    failed: u64,
    rejecting: bool,
}

/// The embedded provider: records what was accepted, in order, once per
/// idempotency key, and lets tests wait for a message and make it fail.
pub struct SimMessaging {
    state: Mutex<State>,
    /// Bumped on every accepted message: tests wait on it.
    count: watch::Sender<usize>,
}

impl SimMessaging {
    pub fn new(config: SimMessagingConfig) -> Arc<SimMessaging> {
        let state = State { config, ..State::default() };
        Arc::new(SimMessaging { state: Mutex::new(state), count: watch::channel(0).0 })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every accepted message, in order (duplicates by key not repeated),
    /// whether or not it was delivered.
    pub fn sent(&self) -> Vec<Message> {
        self.lock().sent.clone()
    }

    /// Messages sent again with a key already accepted.
    pub fn duplicates(&self) -> u64 {
        self.lock().duplicates
    }

    /// Sends refused so far (outages and rejections; "not registered" aside).
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
    pub async fn wait_for(&self, to: &str) -> Message {
        self.wait_until(|sent| sent.iter().find(|m| m.to == to).cloned()).await
    }

    /// Waits until `found` finds something in the accepted messages.
    pub async fn wait_until<T>(&self, found: impl Fn(&[Message]) -> Option<T>) -> T {
        let mut rx = self.count.subscribe();
        loop {
            if let Some(t) = found(&self.lock().sent) {
                return t;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`: unreachable, but never spin.
                std::future::pending::<()>().await;
            }
        }
    }

    fn take(&self, m: Message) -> Result<Sent, MessagingError> {
        let mut s = self.lock();
        if let Some(answer) = s.keys.get(&m.idempotency_key).copied() {
            s.duplicates += 1;
            return Ok(answer);
        }
        if s.rejecting {
            s.failed += 1;
            return Err(MessagingError::Rejected("the simulator rejects every message".into()));
        }
        let answer = match m.channel {
            Channel::Sms if s.config.fail_first > 0 => {
                s.config.fail_first -= 1;
                s.failed += 1;
                return Err(MessagingError::Unavailable("simulated outage".into()));
            }
            Channel::Sms => Sent::Delivered,
            messenger => match s.config.messengers.get(&m.to).and_then(|r| r.get(&messenger)) {
                None => return Err(MessagingError::NotRegistered(messenger)),
                Some(Reach::Fails) => {
                    s.failed += 1;
                    return Err(MessagingError::Rejected(format!("{messenger} refuses this number")));
                }
                Some(Reach::Delivered) => Sent::Delivered,
                Some(Reach::NoReceipt) => Sent::Accepted,
            },
        };
        s.keys.insert(m.idempotency_key.clone(), answer);
        s.sent.push(m);
        let n = s.sent.len();
        drop(s);
        self.count.send_replace(n);
        Ok(answer)
    }
}

impl Messaging for SimMessaging {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<Sent, MessagingError>> {
        Box::pin(async move { self.take(message) })
    }

    fn delivered(&self, idempotency_key: &str) -> BoxFuture<'_, Result<bool, MessagingError>> {
        let delivered = self.lock().keys.get(idempotency_key) == Some(&Sent::Delivered);
        Box::pin(async move { Ok(delivered) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(key: &str, to: &str) -> Message {
        msg(Channel::Sms, key, to)
    }

    fn msg(channel: Channel, key: &str, to: &str) -> Message {
        Message { channel, idempotency_key: key.into(), to: to.into(), text: format!("hello {to}") }
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
        let sim = SimMessaging::new(SimMessagingConfig { fail_first: 2, ..Default::default() });
        for _ in 0..2 {
            assert!(matches!(sim.send(sms("a", "+1")).await, Err(MessagingError::Unavailable(_))));
        }
        sim.send(sms("a", "+1")).await.expect("third try goes through");
        sim.set_rejecting(true);
        assert!(matches!(sim.send(sms("b", "+2")).await, Err(MessagingError::Rejected(_))));
        assert_eq!((sim.sent().len(), sim.failed()), (1, 3));
    }

    #[tokio::test]
    async fn a_messenger_reaches_only_the_numbers_registered_on_it() {
        let config = SimMessagingConfig::default()
            .register("+1", Channel::MessengerA, Reach::Delivered)
            .register("+2", Channel::MessengerA, Reach::NoReceipt)
            .register("+3", Channel::MessengerB, Reach::Fails);
        let sim = SimMessaging::new(config);
        let a = Channel::MessengerA;
        assert_eq!(sim.send(msg(a, "k1", "+1")).await, Ok(Sent::Delivered));
        assert_eq!(sim.delivered("k1").await, Ok(true));
        assert_eq!(sim.send(msg(a, "k2", "+2")).await, Ok(Sent::Accepted));
        assert_eq!(sim.delivered("k2").await, Ok(false), "no receipt ever");
        assert_eq!(sim.send(msg(a, "k3", "+3")).await, Err(MessagingError::NotRegistered(a)));
        let b = sim.send(msg(Channel::MessengerB, "k4", "+3")).await;
        assert!(matches!(b, Err(MessagingError::Rejected(_))), "{b:?}");
        assert_eq!(
            sim.send(msg(Channel::MessengerB, "k5", "+1")).await,
            Err(MessagingError::NotRegistered(Channel::MessengerB))
        );
        assert_eq!(sim.send(msg(a, "k2", "+2")).await, Ok(Sent::Accepted), "a resend answers the same");
        assert_eq!(sim.delivered("unknown").await, Ok(false));
        let to: Vec<_> = sim.sent().iter().map(|m| (m.channel, m.to.clone())).collect();
        assert_eq!(to, vec![(a, "+1".to_owned()), (a, "+2".to_owned())], "only the accepted ones");
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
