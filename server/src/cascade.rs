//! The notification cascade (issue #5, ADR 0005): a text message to a
//! customer goes by the cheapest channel that reaches them. The channels
//! are tried in order of cost; a channel that answers "not registered",
//! fails, or takes the message but confirms no delivery within its timeout
//! hands over to the next one. The last channel (SMS by default) is not
//! waited on: there is nothing to fall back to.
//!
//! Durability: a message is a `messages` row queued in the transaction that
//! decided to send it ([`queue`]); every channel tried is a `message_sends`
//! row written *before* the provider is asked, and its result after. A crash
//! in between resends on the same channel with the same idempotency key
//! (`{purpose}-{ref}-{channel}`), which the provider deduplicates: never
//! lost, never sent twice through one channel.
//!
//! Cost: every send a provider accepted bills (price per message, per
//! segment for SMS), including one accepted but not confirmed in time.

use crate::providers::{Message, Messaging, MessagingError, Sent};
use crate::store::leases::{self, Claims, Kind, Lease};
use crate::store::messages::{self as stored, MessageState as State};
use crate::store::{Db, NewEvent, Readers, StoreError, WriteTx, Writer};
use callahead_core::channel::Channel;
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::wire::{EventKind, Money};
use callahead_core::{CourierId, DepotId, StopId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Messages handled per pass; the rest go on the next one.
const BATCH: usize = 64;
/// After this many outages of the last channel in a row the message is
/// given up (logged, kept).
const MAX_TRIES: u32 = 8;

/// What a message is for: the module that composes its text.
pub const RESCHEDULE: &str = "reschedule";

/// One channel's price and patience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPrice {
    pub channel: Channel,
    /// Minor units per message; per segment for SMS.
    pub cost_minor: i64,
    /// How long a delivery receipt may take before the next channel is tried.
    pub timeout_secs: u32,
}

/// The channels the server may use, with their prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeConfig {
    /// ISO 4217 code of every price.
    pub currency: String,
    /// In any order ([`CascadeConfig::plan`] sorts); a channel left out is
    /// never used.
    pub channels: Vec<ChannelPrice>,
}

impl Default for CascadeConfig {
    /// Roughly what Russian providers charged in 2026, in kopecks.
    fn default() -> Self {
        let price = |channel, cost_minor, timeout_secs| ChannelPrice { channel, cost_minor, timeout_secs };
        CascadeConfig {
            currency: "RUB".into(),
            channels: vec![
                price(Channel::MessengerA, 30, 120),
                price(Channel::MessengerB, 50, 120),
                price(Channel::Sms, 250, 0),
            ],
        }
    }
}

impl CascadeConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("currency {:?} is not an ISO 4217 code", self.currency));
        }
        if self.channels.is_empty() {
            return Err("at least one channel is needed".into());
        }
        for (i, c) in self.channels.iter().enumerate() {
            if self.channels[..i].iter().any(|o| o.channel == c.channel) {
                return Err(format!("channel {} is listed twice", c.channel));
            }
            if c.cost_minor < 0 {
                return Err(format!("channel {} has a negative cost", c.channel));
            }
        }
        Ok(())
    }

    /// The order to try: cheapest first (SMS priced as one segment); equal
    /// prices keep [`Channel`] order.
    pub fn plan(&self) -> Vec<ChannelPrice> {
        let mut plan = self.channels.clone();
        plan.sort_by_key(|c| (c.cost_minor, c.channel));
        plan
    }
}

/// Queues a message to the stop's customer inside the caller's transaction
/// (sent once it commits). One per `(purpose, ref_id)`.
pub fn queue(
    tx: &WriteTx<'_>,
    purpose: &str,
    ref_id: i64,
    stop: &callahead_core::wire::Stop,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    stored::queue(tx, purpose, ref_id, stop, at)
}

/// One message to act on now.
#[derive(Debug, Clone)]
struct Due {
    id: i64,
    purpose: String,
    ref_id: i64,
    phone: String,
    depot: DepotId,
    courier: CourierId,
    stop: StopId,
    plan: Vec<ChannelPrice>,
    currency: String,
    /// Whether `plan` comes from the config now (first send) rather than the row.
    fresh_plan: bool,
    step: usize,
    state: State,
    tries: u32,
    /// The text for the step's channel (`Sending` only); `None`: nothing
    /// left to send (the purpose withdrew it).
    text: Option<String>,
}

impl Due {
    fn price(&self) -> &ChannelPrice {
        &self.plan[self.step]
    }

    fn key(&self) -> String {
        format!("{}-{}-{}", self.purpose, self.ref_id, self.price().channel)
    }

    fn last(&self) -> bool {
        self.step + 1 >= self.plan.len()
    }

    /// Segments the step's text bills as.
    fn segments(&self) -> u32 {
        self.text.as_deref().map_or(1, |t| self.price().channel.segments(t))
    }
}

/// What happened on one step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StepResult {
    Sent {
        sent: Sent,
        segments: u32,
    },
    Refused(MessagingError),
    Receipt(bool),
    /// The provider could not say: ask again shortly.
    ReceiptUnknown,
    /// The purpose withdrew the message (its text is gone).
    NothingToSend,
}

/// Sends queued messages after their commit, and again after a restart.
pub struct CascadeSender {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    pub clock: SharedClock,
    pub messaging: Arc<dyn Messaging>,
    pub config: CascadeConfig,
    /// `https://host` that reschedule links point at.
    pub link_base: String,
    /// How long a reschedule link works after its message went out.
    pub link_ttl: Duration,
    /// Notified when a message was queued.
    pub wake: Arc<Notify>,
    /// Which node sends which message (docs/adr/0011).
    pub claims: Arc<Claims>,
}

impl CascadeSender {
    pub async fn run(self: Arc<Self>) {
        let readers = self.readers.clone();
        let next_due = || {
            let readers = readers.clone();
            async move { readers.read(|c| stored::next_at(c)).await }
        };
        crate::due_loop::run("message sender", &self.clock, &self.wake, next_due, |now| self.send_due(now))
            .await;
    }

    /// Acts on everything due at `now` that this node could claim,
    /// including the next channels of messages this pass moved on. Per
    /// batch two commits, not two per message (the writer is shared with
    /// the calls): every intent before any provider hears of it, then every
    /// result. Each message is held under its lease for the pass, and each
    /// write on it passes the fence (docs/adr/0011). `false` when all that
    /// is due is another node's.
    pub async fn send_due(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        loop {
            let (base, config) = (self.link_base.clone(), self.config.clone());
            let due = self.readers.read(move |c| due(c, now, &config, &base)).await?;
            if due.is_empty() {
                return Ok(true);
            }
            let held: HashMap<i64, Lease> = self
                .claims
                .claim(Kind::Message, due.iter().map(|d| d.id).collect())
                .await?
                .into_iter()
                .map(|l| (l.item, l))
                .collect();
            if held.is_empty() {
                return Ok(false);
            }
            let due: Vec<Due> = due.into_iter().filter(|d| held.contains_key(&d.id)).collect();
            let intents: Vec<(Due, Lease)> = due
                .iter()
                .filter(|d| d.state == State::Sending && d.text.is_some())
                .filter_map(|d| held.get(&d.id).map(|l| (d.clone(), l.clone())))
                .collect();
            let mut skipped = Vec::new();
            if !intents.is_empty() {
                let (at, claims) = (self.clock.now(), self.claims.clone());
                skipped = self
                    .writer
                    .write(move |tx| -> Result<Vec<i64>, StoreError> {
                        let mut skipped = Vec::new();
                        for (d, lease) in &intents {
                            if !claims.holds(tx, lease)? {
                                skipped.push(d.id);
                            } else if let Some(why) = guard_refuses(tx, d, at)? {
                                crate::store::limits::refuse_message(tx, d.id, d.step as i64, why, at)?;
                                if d.purpose == RESCHEDULE {
                                    crate::reschedule::undeliverable(tx, d.ref_id, why, at)?;
                                }
                                skipped.push(d.id);
                            } else {
                                start_step(tx, d, at)?;
                            }
                        }
                        Ok(skipped)
                    })
                    .await?;
            }
            let mut results = Vec::with_capacity(due.len());
            for d in due.into_iter().filter(|d| !skipped.contains(&d.id)) {
                let Some(lease) = held.get(&d.id).cloned() else { continue };
                if !self.claims.may_act(&lease) {
                    continue;
                }
                let result = self.act(&d).await;
                results.push((d, lease, result, self.clock.now()));
            }
            let (ttl, claims) = (self.link_ttl, self.claims.clone());
            let all: Vec<Lease> = held.into_values().collect();
            self.writer
                .write(move |tx| {
                    for (d, lease, r, at) in &results {
                        // A result another node's takeover made moot is
                        // dropped: the new holder sends again under the same key.
                        if claims.holds(tx, lease)? {
                            record(tx, d, r, *at, ttl)?;
                        }
                    }
                    all.iter().try_for_each(|l| leases::release_in(tx, l))
                })
                .await?;
        }
    }

    /// Asks the provider what this step needs; writes nothing.
    async fn act(&self, d: &Due) -> StepResult {
        match (d.state, &d.text) {
            (State::Awaiting, _) => match self.messaging.delivered(&d.key()).await {
                Ok(delivered) => StepResult::Receipt(delivered),
                Err(e) => {
                    tracing::warn!(message = d.id, error = %e, "cannot read a delivery receipt");
                    StepResult::ReceiptUnknown
                }
            },
            (State::Sending, None) => StepResult::NothingToSend,
            (State::Sending, Some(text)) => {
                let channel = d.price().channel;
                let message =
                    Message { channel, idempotency_key: d.key(), to: d.phone.clone(), text: text.clone() };
                match self.messaging.send(message).await {
                    Ok(sent) => StepResult::Sent { sent, segments: d.segments() },
                    Err(e) => StepResult::Refused(e),
                }
            }
        }
    }
}

fn due(
    conn: &Db,
    now: DateTime<Utc>,
    config: &CascadeConfig,
    link_base: &str,
) -> Result<Vec<Due>, StoreError> {
    let rows = stored::due(conn, now, BATCH)?;
    let mut out = Vec::with_capacity(rows.len());
    for m in rows {
        let stored::DueMessage { id, purpose, ref_id, phone, depot, courier, stop, plan, step, state, tries } =
            m;
        let fresh_plan = plan.is_none();
        let (plan, currency) = plan.unwrap_or_else(|| (config.plan(), config.currency.clone()));
        let step = usize::try_from(step).unwrap_or(usize::MAX);
        if step >= plan.len() {
            return Err(StoreError::Corrupt(format!("message {id} is past its last channel")));
        }
        let text = match state {
            State::Sending => compose(conn, &purpose, ref_id, plan[step].channel, link_base)?,
            State::Awaiting => None,
        };
        out.push(Due {
            id,
            purpose,
            ref_id,
            phone,
            depot,
            courier,
            stop,
            plan,
            currency,
            fresh_plan,
            step,
            state,
            tries,
            text,
        });
    }
    Ok(out)
}

/// The text of a message for `channel`, from the module that queued it.
fn compose(
    conn: &Db,
    purpose: &str,
    ref_id: i64,
    channel: Channel,
    link_base: &str,
) -> Result<Option<String>, StoreError> {
    match purpose {
        RESCHEDULE => crate::reschedule::compose(conn, ref_id, channel, link_base),
        other => Err(StoreError::Corrupt(format!("a message for unknown purpose {other:?}"))),
    }
}

/// SMS go through the depot's send guard (`crate::guard`) when they are
/// about to go out; messengers cost next to nothing and are not pumped.
fn guard_refuses(tx: &WriteTx<'_>, d: &Due, at: DateTime<Utc>) -> Result<Option<&'static str>, StoreError> {
    if d.price().channel != Channel::Sms {
        return Ok(None);
    }
    crate::guard::sms_refusal(tx.db(), d.depot, &d.phone, at)
}

fn start_step(tx: &WriteTx<'_>, d: &Due, at: DateTime<Utc>) -> Result<(), StoreError> {
    if d.fresh_plan {
        stored::set_plan(tx, d.id, &d.plan, &d.currency)?;
    }
    stored::start_send(tx, d.id, d.step, d.price().channel, d.segments(), at)
}

/// Backoff between tries of the last channel: 1, 2, 4… minutes, at most 30.
fn retry_after(tries: u32) -> Duration {
    Duration::minutes((1i64 << tries.min(5)).min(30))
}

fn set_send(
    tx: &WriteTx<'_>,
    d: &Due,
    result: &str,
    cost: i64,
    error: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    stored::end_send(tx, d.id, d.step, result, cost, error.as_deref(), at)
}

fn record(
    tx: &mut WriteTx<'_>,
    d: &Due,
    result: &StepResult,
    at: DateTime<Utc>,
    ttl: Duration,
) -> Result<(), StoreError> {
    let price = d.price().clone();
    match *result {
        StepResult::ReceiptUnknown => stored::due_again(tx, d.id, at + Duration::seconds(30)),
        StepResult::NothingToSend => give_up(tx, d, at, "nothing to send"),
        StepResult::Sent { sent, segments } => {
            let cost = price.cost_minor * i64::from(segments);
            let name = if sent == Sent::Delivered { "delivered" } else { "accepted" };
            set_send(tx, d, name, cost, None, at)?;
            stored::bill(tx, d.id, cost, segments)?;
            if sent == Sent::Delivered || d.last() {
                delivered(tx, d, segments, at, ttl)
            } else {
                let deadline = at + Duration::seconds(i64::from(price.timeout_secs));
                stored::await_receipt(tx, d.id, deadline)
            }
        }
        StepResult::Receipt(true) => {
            let segments = stored::send_delivered(tx, d.id, d.step)?;
            delivered(tx, d, segments, at, ttl)
        }
        StepResult::Receipt(false) => {
            stored::send_timed_out(tx, d.id, d.step, at)?;
            advance(tx, d, at, "no delivery receipt in time")
        }
        StepResult::Refused(ref e) => {
            let name = match e {
                MessagingError::NotRegistered(_) => "not_registered",
                MessagingError::Rejected(_) | MessagingError::Unavailable(_) => "failed",
            };
            set_send(tx, d, name, 0, Some(e.to_string()), at)?;
            match e {
                MessagingError::Unavailable(why) if d.last() && d.tries + 1 < MAX_TRIES => {
                    tracing::warn!(message = d.id, channel = %price.channel, error = %why, "will retry");
                    stored::retry(tx, d.id, at + retry_after(d.tries + 1))
                }
                e => advance(tx, d, at, &e.to_string()),
            }
        }
    }
}

/// On to the next channel, or give up after the last.
fn advance(tx: &mut WriteTx<'_>, d: &Due, at: DateTime<Utc>, why: &str) -> Result<(), StoreError> {
    if d.last() {
        return give_up(tx, d, at, why);
    }
    stored::next_channel(tx, d.id, at)
}

fn give_up(tx: &mut WriteTx<'_>, d: &Due, at: DateTime<Utc>, why: &str) -> Result<(), StoreError> {
    tracing::error!(message = d.id, reason = why, "message reached nobody; given up");
    stored::undelivered(tx, d.id, at)?;
    match d.purpose.as_str() {
        RESCHEDULE => crate::reschedule::undeliverable(tx, d.ref_id, why, at),
        _ => Ok(()),
    }
}

fn delivered(
    tx: &mut WriteTx<'_>,
    d: &Due,
    segments: u32,
    at: DateTime<Utc>,
    ttl: Duration,
) -> Result<(), StoreError> {
    let channel = d.price().channel;
    let cost = stored::delivered(tx, d.id, channel, at)?;
    if d.purpose == RESCHEDULE {
        crate::reschedule::sent(tx, d.ref_id, at, ttl)?;
    }
    let kind = EventKind::MessageDelivered {
        channel,
        segments,
        cost: Money { minor: cost, currency: d.currency.clone() },
    };
    let mut event = NewEvent::route(at, wall_ms(), d.depot, d.courier, kind);
    event.stop_id = Some(d.stop);
    tx.append_event(event)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::simulator::{Reach, SimMessaging, SimMessagingConfig};
    use crate::reschedule::tests::offered;
    use crate::store::Store;
    use callahead_core::clock::{Clock, ManualClock};
    use chrono::TimeZone;

    /// The customer of the `offered` fixture.
    const CUSTOMER: &str = "+79160000001";

    fn t0() -> DateTime<Utc> {
        chrono_tz::Europe::Moscow
            .with_ymd_and_hms(2027, 1, 15, 10, 5, 0)
            .single()
            .expect("time")
            .with_timezone(&Utc)
    }

    fn sender(store: &Store, clock: &ManualClock, sim: &Arc<SimMessaging>) -> Arc<CascadeSender> {
        crate::reschedule::tests::sender(store, clock, sim.clone())
    }

    /// `(state, channel, cost)` of the one message, and its sends as
    /// `(channel, result, cost)`.
    async fn stored(store: &Store) -> ((String, Option<String>, i64), Vec<(String, String, i64)>) {
        store.readers.read(|c| crate::store::fixtures::the_message(c)).await.expect("read")
    }

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[tokio::test]
    async fn a_customer_on_messenger_a_gets_only_that() {
        let (_dir, store) = offered(t0()).await;
        let clock = ManualClock::new(t0());
        let sim = SimMessaging::new(SimMessagingConfig::default().register(
            CUSTOMER,
            Channel::MessengerA,
            Reach::Delivered,
        ));
        sender(&store, &clock, &sim).send_due(t0()).await.expect("pass");
        let sent = sim.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].channel, Channel::MessengerA);
        assert_eq!(sent[0].idempotency_key, "reschedule-1-messenger_a");
        let (message, sends) = stored(&store).await;
        assert_eq!(message, (s("delivered"), Some(s("messenger_a")), 30));
        assert_eq!(sends, vec![(s("messenger_a"), s("delivered"), 30)]);
        let kinds = store.readers.read(|c| crate::store::fixtures::event_kinds(c)).await.expect("events");
        assert_eq!(
            kinds,
            vec![s(
                r#"{"type":"message_delivered","channel":"messenger_a","segments":1,"cost":{"minor":30,"currency":"RUB"}}"#
            )]
        );
        assert_eq!(next_at_of(&store).await, None, "nothing left to do");
    }

    async fn next_at_of(store: &Store) -> Option<DateTime<Utc>> {
        store.readers.read(|c| stored::next_at(c)).await.expect("read")
    }

    #[tokio::test]
    async fn a_messenger_without_a_receipt_in_time_falls_through_to_the_next() {
        let (_dir, store) = offered(t0()).await;
        let clock = ManualClock::new(t0());
        let sim = SimMessaging::new(SimMessagingConfig::default().register(
            CUSTOMER,
            Channel::MessengerA,
            Reach::NoReceipt,
        ));
        let s1 = sender(&store, &clock, &sim);
        s1.send_due(clock.now()).await.expect("pass");
        assert_eq!(sim.sent().len(), 1, "messenger A took it; we wait for its receipt");
        assert_eq!(next_at_of(&store).await, Some(t0() + Duration::seconds(120)));
        clock.advance(Duration::seconds(119));
        s1.send_due(clock.now()).await.expect("pass");
        assert_eq!(sim.sent().len(), 1, "still within the timeout");
        clock.advance(Duration::seconds(1));
        s1.send_due(clock.now()).await.expect("pass");
        let sent = sim.sent();
        let channels: Vec<Channel> = sent.iter().map(|m| m.channel).collect();
        assert_eq!(channels, vec![Channel::MessengerA, Channel::Sms], "B: not registered");
        let segments = Channel::Sms.segments(&sent[1].text);
        assert_eq!(segments, 1, "{}", sent[1].text);
        let (message, sends) = stored(&store).await;
        assert_eq!(message, (s("delivered"), Some(s("sms")), 30 + 250));
        assert_eq!(
            sends,
            vec![
                (s("messenger_a"), s("timeout"), 30),
                (s("messenger_b"), s("not_registered"), 0),
                (s("sms"), s("delivered"), 250),
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_messenger_hands_over_to_the_next_and_costs_nothing() {
        let (_dir, store) = offered(t0()).await;
        let clock = ManualClock::new(t0());
        let config = SimMessagingConfig::default()
            .register(CUSTOMER, Channel::MessengerA, Reach::Fails)
            .register(CUSTOMER, Channel::MessengerB, Reach::Delivered);
        let sim = SimMessaging::new(config);
        sender(&store, &clock, &sim).send_due(t0()).await.expect("pass");
        let channels: Vec<Channel> = sim.sent().iter().map(|m| m.channel).collect();
        assert_eq!(channels, vec![Channel::MessengerB]);
        let (message, sends) = stored(&store).await;
        assert_eq!(message, (s("delivered"), Some(s("messenger_b")), 50));
        assert_eq!(sends, vec![(s("messenger_a"), s("failed"), 0), (s("messenger_b"), s("delivered"), 50)]);
    }

    #[tokio::test]
    async fn a_crash_between_the_send_and_its_record_resends_under_the_same_key() {
        let (_dir, store) = offered(t0()).await;
        let clock = ManualClock::new(t0());
        let sim = SimMessaging::new(SimMessagingConfig::default());
        let config = CascadeConfig::default();
        // The process gets as far as messenger A and B refusing, then writes
        // the SMS intent and hands it to the provider, and dies.
        let s1 = sender(&store, &clock, &sim);
        let now = t0();
        let due_now = || {
            let config = config.clone();
            store.readers.read(move |c| due(c, now, &config, "https://ca.example"))
        };
        for _ in 0..2 {
            let d = due_now().await.expect("due").remove(0);
            let refused = s1.act(&d).await;
            assert!(matches!(refused, StepResult::Refused(MessagingError::NotRegistered(_))), "{refused:?}");
            store
                .writer
                .write(move |tx| record(tx, &d, &refused, now, Duration::hours(24)))
                .await
                .expect("next");
        }
        let d = due_now().await.expect("due").remove(0);
        assert_eq!(d.price().channel, Channel::Sms);
        let intent = d.clone();
        store.writer.write(move |tx| start_step(tx, &intent, now)).await.expect("intent");
        let text = d.text.clone().expect("text");
        let message = Message { channel: Channel::Sms, idempotency_key: d.key(), to: d.phone.clone(), text };
        sim.send(message).await.expect("the provider took it");

        // After the restart the intent is still due: the resend is a duplicate.
        sender(&store, &clock, &sim).send_due(now).await.expect("pass");
        assert_eq!((sim.sent().len(), sim.duplicates()), (1, 1), "texted once");
        let (message, _) = stored(&store).await;
        assert_eq!(message, (s("delivered"), Some(s("sms")), 250));
    }

    #[test]
    fn the_plan_is_cheapest_first_and_ties_keep_channel_order() {
        let default = CascadeConfig::default();
        let order: Vec<Channel> = default.plan().iter().map(|c| c.channel).collect();
        assert_eq!(order, vec![Channel::MessengerA, Channel::MessengerB, Channel::Sms]);

        let price = |channel, cost_minor| ChannelPrice { channel, cost_minor, timeout_secs: 60 };
        let sms_cheapest = CascadeConfig {
            currency: "EUR".into(),
            channels: vec![
                price(Channel::MessengerB, 9),
                price(Channel::Sms, 4),
                price(Channel::MessengerA, 9),
            ],
        };
        let order: Vec<Channel> = sms_cheapest.plan().iter().map(|c| c.channel).collect();
        assert_eq!(order, vec![Channel::Sms, Channel::MessengerA, Channel::MessengerB]);
        assert_eq!(sms_cheapest.check(), Ok(()));
    }

    #[test]
    fn a_bad_config_is_refused() {
        let mut c = CascadeConfig::default();
        c.channels.push(ChannelPrice { channel: Channel::Sms, cost_minor: 1, timeout_secs: 0 });
        assert!(c.check().expect_err("twice").contains("twice"));
        let c = CascadeConfig { currency: "rub".into(), ..CascadeConfig::default() };
        assert!(c.check().is_err());
        let c = CascadeConfig { channels: Vec::new(), ..CascadeConfig::default() };
        assert!(c.check().is_err());
        let mut c = CascadeConfig::default();
        c.channels[0].cost_minor = -1;
        assert!(c.check().expect_err("negative").contains("negative"));
    }
}
