//! The provider boundary (docs/architecture.md §4): telephony ([`Telephony`]) and
//! text messages ([`Messaging`]). The orchestrator and the cascade talk only
//! to these traits; the embedded [`simulator`] is the default, [`twilio`] and
//! [`voximplant`] are real providers behind the same seam.
//!
//! Reports flow back through an `mpsc::Sender<ProviderReport>` handed to the
//! provider when it is built (the simulator), or come in over HTTP on
//! `/v1/providers/{provider}/…` (real providers), so the orchestrator has one
//! transition path for them.
//!
//! [`Messaging::send`] answers whether the provider took the message: with a
//! delivery receipt already ([`Sent::Delivered`]), or not yet
//! ([`Sent::Accepted`]: ask [`Messaging::delivered`] later), or why not. A
//! messenger answers [`MessagingError::NotRegistered`] for a number without
//! an account. The cascade (`crate::cascade`) decides what to do next; the
//! idempotency key lets the provider drop the duplicates a retry after a
//! crash can produce.

pub mod callbacks;
pub mod lines;
pub mod simulator;
pub mod twilio;
pub mod voximplant;

use crate::store::{Readers, Writer};
use callahead_core::call::{Key, ProviderEvent};
use callahead_core::channel::Channel;
use callahead_core::clock::SharedClock;
use callahead_core::{CallId, CourierId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a real provider's adapter may keep in the database (through the
/// named functions of `crate::store::providers`).
#[derive(Clone)]
pub struct ProviderStore {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    pub clock: SharedClock,
}

/// What the robot says and which keys it listens for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The personalized message and the menu, spoken by text-to-speech on
    /// pickup.
    pub text: String,
    /// Said before repeating the menu when no key was pressed.
    pub no_input: String,
    /// Said after a choice, before hanging up.
    pub goodbye: String,
    /// ISO 639-1 code of the language the text is in (for the TTS voice).
    pub language: String,
    /// Keys the menu offers, with what each means (for the provider's IVR).
    pub keys: Vec<(Key, String)>,
}

/// One attempt to place. Stored with the attempt (JSON), so a provider that
/// asks what to say mid-call (Twilio fetches TwiML) is answered from it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceCall {
    /// `call-{call_id}-{attempt}`: the provider deduplicates on it, so a
    /// retried request never rings the customer twice for one attempt.
    pub attempt_key: String,
    pub call_id: CallId,
    pub attempt: u32,
    /// Whose call it is: lines are shared fairly across couriers.
    pub courier_id: CourierId,
    /// E.164 number to dial.
    pub to: String,
    pub script: Script,
    /// The courier's phone: "talk to the courier" (key 0) transfers the
    /// customer there at once, within the same call, so nobody waits in a
    /// queue for a callback that the cap of 5 could delay.
    pub bridge_to: Option<String>,
    /// Give up ringing after this long (domain seconds): `EndReason::NoAnswer`.
    pub ring_timeout_secs: u32,
    /// Ask the provider to tell answering machines from people.
    #[serde(default)]
    pub machine_detection: bool,
    /// Signs what the provider's side reports for this attempt (Voximplant:
    /// the scenario's HMAC key). Never logged.
    #[serde(default)]
    pub callback_secret: String,
}

impl std::fmt::Debug for PlaceCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaceCall")
            .field("attempt_key", &self.attempt_key)
            .field("courier_id", &self.courier_id)
            .field("ring_timeout_secs", &self.ring_timeout_secs)
            .field("machine_detection", &self.machine_detection)
            .finish_non_exhaustive()
    }
}

impl PlaceCall {
    pub fn attempt_key(call_id: CallId, attempt: u32) -> String {
        format!("call-{call_id}-{attempt}")
    }

    /// The call and attempt an attempt key names (`call-{id}-{n}`).
    pub fn parse_attempt_key(key: &str) -> Option<(CallId, u32)> {
        let rest = key.strip_prefix("call-")?;
        let (id, n) = rest.split_once('-')?;
        Some((CallId(id.parse().ok()?), n.parse().ok()?))
    }
}

/// The provider's own handle on a placed attempt, stored with it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Placed {
    /// Twilio's CallSid; Voximplant's call session history id; the
    /// simulator's attempt key.
    pub reference: String,
    /// Where the running call is controlled (Voximplant's media session
    /// URL). A capability: never logged.
    pub control_url: Option<String>,
}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placed")
            .field("reference", &self.reference)
            .field("control_url", &self.control_url.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// An attempt as the provider seam sees it after placing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRef {
    pub attempt_key: String,
    /// `None`: the create request's answer never came back (uncertain).
    pub placed: Option<Placed>,
    /// Number dialled and when: how an uncertain create is found again.
    pub to: String,
    pub placed_at: DateTime<Utc>,
}

/// What the provider knows about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Still going on at the provider; its reports will come.
    Live(Placed),
    /// It ended while nobody listened: what really happened, as the events
    /// the provider's record supports (answered, key, end), in order.
    Ended { placed: Placed, events: Vec<ProviderEvent> },
    /// The provider has no such call: it was never placed (or is forgotten).
    NotFound,
}

/// One provider callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub call_id: CallId,
    pub attempt: u32,
    /// Per attempt, from 1, in the order the provider produced them, when
    /// the provider numbers its reports; only a hint: the core transition
    /// rule decides what a late or repeated event means.
    pub provider_seq: Option<u32>,
    pub event: ProviderEvent,
    /// Domain time the provider observed it.
    pub at: DateTime<Utc>,
    /// Wall-clock ms when it happened, for push-latency measurement.
    pub wall_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelephonyError {
    /// The provider did not take the request (down, connection refused,
    /// 5xx that says "not processed"): retry the same attempt later.
    #[error("telephony provider unavailable: {0}")]
    Unavailable(String),
    /// Too many requests (HTTP 429, Twilio 20429): not processed, retry later.
    #[error("telephony provider rate limit: {0}")]
    RateLimited(String),
    /// The request went out and no answer came back (timeout, a reset
    /// mid-response, a 5xx that may have been processed): the call may
    /// exist. Never re-sent blindly: look it up first.
    #[error("telephony provider did not answer: {0}")]
    Uncertain(String),
    /// The provider refused this call for good (bad number, blocked).
    #[error("telephony provider rejected the call: {0}")]
    Rejected(String),
}

impl TelephonyError {
    /// Worth trying again later with the same attempt.
    pub fn is_outage(&self) -> bool {
        matches!(self, TelephonyError::Unavailable(_) | TelephonyError::RateLimited(_))
    }
}

pub trait Telephony: Send + Sync + 'static {
    /// `simulator`, `twilio`, `voximplant`: the `{provider}` of its callbacks.
    fn name(&self) -> &'static str;
    /// Places one attempt; returns once the provider accepted it, with its
    /// reference. Reports for it arrive on the report channel (simulator) or
    /// as callbacks.
    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<Placed, TelephonyError>>;
    /// Hangs up an attempt in progress (the call was cancelled). An unknown
    /// or already finished attempt is not an error.
    fn hang_up(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<(), TelephonyError>>;
    /// What the provider knows of this attempt: after a restart, and after
    /// an uncertain create (`attempt.placed == None`: search for it).
    fn lookup(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<Lookup, TelephonyError>>;
    /// Answers a callback on `/v1/providers/{name}/…`; `None` for a provider
    /// that reports in-process (the simulator).
    fn callbacks(&self) -> Option<&dyn callbacks::ProviderCallbacks> {
        None
    }
    /// Whether [`Telephony::dial_direct`] connects real phones.
    fn supports_direct_dial(&self) -> bool {
        false
    }
    /// A courier's direct call (click-to-call): ring the courier, then the
    /// customer, both seeing the company's number; recorded if asked.
    fn dial_direct(&self, _req: DirectDialRequest) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async { Err(TelephonyError::Rejected("this provider connects no direct calls".into())) })
    }
}

/// One direct call to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectDialRequest {
    /// `direct-{id}`: names the dial in its callback URLs.
    pub key: String,
    pub courier_phone: String,
    pub customer_phone: String,
    /// Record the conversation (the depot records direct calls).
    pub record: bool,
    /// Signs the provider side's reports (Voximplant). Never logged.
    pub callback_secret: String,
}

impl std::fmt::Debug for DirectDialRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectDialRequest")
            .field("key", &self.key)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl DirectDialRequest {
    pub fn key(id: i64) -> String {
        format!("direct-{id}")
    }

    pub fn parse_key(key: &str) -> Option<i64> {
        key.strip_prefix("direct-")?.parse().ok()
    }
}

/// One text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    /// The provider deduplicates on it: resending after a crash never
    /// texts the customer twice through a provider that honours it.
    pub idempotency_key: String,
    /// E.164 number.
    pub to: String,
    pub text: String,
}

/// The provider took the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// And it reached the customer's device.
    Delivered,
    /// No delivery receipt yet.
    Accepted,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessagingError {
    /// Worth retrying later (provider down, rate limited).
    #[error("messaging provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused this message for good (bad number, blocked).
    #[error("messaging provider rejected the message: {0}")]
    Rejected(String),
    /// The number has no account on this messenger.
    #[error("the number is not registered on {0}")]
    NotRegistered(Channel),
}

pub trait Messaging: Send + Sync + 'static {
    /// `simulator`, `twilio`, `voximplant`: the `{provider}` of its callbacks.
    fn name(&self) -> &'static str {
        "simulator"
    }

    /// Sends one message. Idempotent on `message.idempotency_key`: a resend
    /// answers as the first send did.
    fn send(&self, message: Message) -> BoxFuture<'_, Result<Sent, MessagingError>>;

    /// Whether the message sent with this key has a delivery receipt by now.
    fn delivered(&self, idempotency_key: &str) -> BoxFuture<'_, Result<bool, MessagingError>>;

    /// Answers receipts on `/v1/providers/{name}/messages/…`.
    fn callbacks(&self) -> Option<&dyn callbacks::ProviderCallbacks> {
        None
    }
}

/// Which provider carries calls, which carries texts (`serve --telephony`,
/// `--messaging`), and the accounts' settings.
#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    pub telephony: ProviderChoice,
    pub messaging: ProviderChoice,
    pub twilio: Option<twilio::TwilioConfig>,
    pub voximplant: Option<voximplant::VoximplantConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProviderChoice {
    /// The embedded simulator (the default: demo, tests, load generator).
    #[default]
    Simulator,
    Twilio,
    Voximplant,
}

impl std::str::FromStr for ProviderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "simulator" => Ok(ProviderChoice::Simulator),
            "twilio" => Ok(ProviderChoice::Twilio),
            "voximplant" => Ok(ProviderChoice::Voximplant),
            other => Err(format!("unknown provider {other:?}: simulator, twilio or voximplant")),
        }
    }
}

/// The telephony and the messaging provider in use.
pub type Providers = (Arc<dyn Telephony>, Arc<dyn Messaging>);

/// The configured providers; `public_url` is where they call back.
pub fn build(
    config: &ProviderConfig,
    public_url: &str,
    store: &ProviderStore,
    simulator: &Arc<simulator::Simulator>,
    sim_messaging: &Arc<simulator::SimMessaging>,
) -> Result<Providers, String> {
    let uses = |p| config.telephony == p || config.messaging == p;
    let twilio = if uses(ProviderChoice::Twilio) {
        let mut c = config.twilio.clone().ok_or("--telephony/--messaging twilio needs TWILIO_* settings")?;
        c.public_url = public_url.to_owned();
        Some(twilio::Twilio::new(c, store.clone())?)
    } else {
        None
    };
    let voximplant = if uses(ProviderChoice::Voximplant) {
        let mut c = config
            .voximplant
            .clone()
            .ok_or("--telephony/--messaging voximplant needs VOXIMPLANT_* settings")?;
        c.public_url = public_url.to_owned();
        Some(voximplant::Voximplant::new(c, store.clone())?)
    } else {
        None
    };
    let telephony: Arc<dyn Telephony> = match (config.telephony, &twilio, &voximplant) {
        (ProviderChoice::Twilio, Some(t), _) => t.clone(),
        (ProviderChoice::Voximplant, _, Some(v)) => v.clone(),
        _ => simulator.clone(),
    };
    let messaging: Arc<dyn Messaging> = match (config.messaging, &twilio, &voximplant) {
        (ProviderChoice::Twilio, Some(t), _) => t.clone(),
        (ProviderChoice::Voximplant, _, Some(v)) => v.clone(),
        _ => sim_messaging.clone(),
    };
    Ok((telephony, messaging))
}
