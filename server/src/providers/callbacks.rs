//! Inbound provider callbacks on `/v1/providers/{provider}/{kind}/{key}/{action}`
//! (docs/architecture.md §4). A provider adapter sees the raw request and checks
//! its authenticity before it parses anything; what it accepts comes back
//! as data (events for one attempt, a message receipt, dedupe keys and the
//! reply), which `crate::api::providers` applies in one writer transaction
//! through the same transition path as the simulator's reports.

use crate::store::providers::{ProviderMessage, StoredAttempt, StoredDial};
use axum::http::HeaderMap;
use callahead_core::call::ProviderEvent;
use chrono::{DateTime, Utc};

use super::Placed;

/// How long after its first arrival a repeated callback still counts as a
/// provider's own retry (answered as before, nothing applied); later, the
/// same signed request is a replay and is refused.
pub const REPLAY_WINDOW_SECS: i64 = 600;

/// One request, before anything in it is trusted.
pub struct Inbound<'a> {
    /// The URL the provider requested, as it was given to the provider: the
    /// public base, the path and the query (what Twilio signs).
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// `kind`, `key`, `action`, … (the path after `/v1/providers/{provider}/`).
    pub segments: &'a [String],
    /// Domain time of arrival (freshness of signed timestamps).
    pub now: DateTime<Utc>,
}

/// What a request is about, read from its path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A smart-call attempt, by its key (`call-{id}-{n}`).
    Attempt(String),
    /// A text message, by its idempotency key.
    Message(String),
    /// A courier's direct call, by its key (`direct-{id}`).
    Direct(String),
}

/// The stored thing a request is about, loaded before verification (a
/// per-attempt secret lives there).
#[derive(Debug, Clone)]
pub enum Loaded {
    Attempt(Option<Box<StoredAttempt>>),
    Message(Option<ProviderMessage>),
    Direct(Option<Box<StoredDial>>),
}

/// A verified callback, translated.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// Dedupe keys (Twilio: `(CallSid, SequenceNumber)` and the
    /// `I-Twilio-Idempotency-Token`; Voximplant: the scenario's counter). If
    /// one was already recorded the request is a duplicate: nothing is
    /// applied and the same reply is given.
    pub receipts: Vec<String>,
    /// Events for the attempt, in order.
    pub events: Vec<ProviderEvent>,
    /// The provider's reference as the callback states it: adopted when the
    /// attempt has none (the create's answer was lost).
    pub placed: Option<Placed>,
    /// A message's new provider status and error.
    pub message: Option<MessageUpdate>,
    /// What happened to a direct call.
    pub direct: Vec<DirectUpdate>,
    pub reply: Reply,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUpdate {
    pub provider_ref: Option<String>,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectUpdate {
    /// The provider's reference for the dial (adopted if none is known).
    Placed(String),
    /// Whether the customer's leg connected.
    Connected(bool),
    /// The courier's leg ended.
    Ended { talk_secs: Option<u32> },
    /// The recording is ready at the provider.
    Recorded { recording_ref: String, duration_secs: u32 },
}

/// What the provider gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::empty()
    }
}

impl Reply {
    pub fn empty() -> Reply {
        Reply { content_type: "text/plain; charset=utf-8", body: String::new() }
    }
    pub fn xml(body: String) -> Reply {
        Reply { content_type: "text/xml; charset=utf-8", body }
    }
    pub fn json(body: String) -> Reply {
        Reply { content_type: "application/json", body }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Missing or wrong signature, or signed for something else: 403.
    #[error("signature does not verify: {0}")]
    Forged(String),
    /// Authentic but stale: 403.
    #[error("replayed callback: {0}")]
    Replayed(String),
    /// Authentic, about nothing we know: 404.
    #[error("{0}")]
    Unknown(String),
    /// Authentic, but not a shape we can read: 400.
    #[error("{0}")]
    Invalid(String),
}

pub trait ProviderCallbacks: Send + Sync {
    /// Which stored thing the request is about, from the path only.
    fn subject(&self, segments: &[String]) -> Result<Subject, CallbackError>;
    /// Verifies the request, then translates it.
    fn handle(&self, req: &Inbound<'_>, loaded: &Loaded) -> Result<Accepted, CallbackError>;
}

/// Compares two secrets' MACs without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
