//! The telephony provider boundary (architecture §4). The orchestrator talks
//! only to this trait; the embedded [`crate::simulator::Simulator`] is the
//! default implementation, real providers (HTTP APIs with signed webhooks)
//! come as further ones.
//!
//! Reports flow back through an `mpsc::Sender<ProviderReport>` handed to the
//! provider when it is built, so the orchestrator has one inbox for them.

use callahead_core::call::{Key, ProviderEvent};
use callahead_core::CallId;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the robot says and which keys it listens for.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One attempt to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceCall {
    /// `call-{call_id}-{attempt}`: the provider deduplicates on it, so a
    /// retried request never rings the customer twice for one attempt.
    pub attempt_key: String,
    pub call_id: CallId,
    pub attempt: u32,
    /// E.164 number to dial.
    pub to: String,
    pub script: Script,
    /// The courier's phone: "talk to the courier" (key 0) transfers the
    /// customer there at once, within the same call, so nobody waits in a
    /// queue for a callback that the cap of 5 could delay.
    pub bridge_to: Option<String>,
    /// Give up ringing after this long (domain seconds): `EndReason::NoAnswer`.
    pub ring_timeout_secs: u32,
}

impl PlaceCall {
    pub fn attempt_key(call_id: CallId, attempt: u32) -> String {
        format!("call-{call_id}-{attempt}")
    }
}

/// One provider callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderReport {
    pub call_id: CallId,
    pub attempt: u32,
    /// Per attempt, from 1, in the order the provider produced them.
    pub provider_seq: u32,
    pub event: ProviderEvent,
    /// Domain time the provider observed it.
    pub at: DateTime<Utc>,
    /// Wall-clock ms when it happened, for push-latency measurement.
    pub wall_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelephonyError {
    /// Worth retrying later (provider down, rate limited).
    #[error("telephony provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused this call for good (bad number, blocked).
    #[error("telephony provider rejected the call: {0}")]
    Rejected(String),
}

pub trait Telephony: Send + Sync + 'static {
    /// Places one attempt; returns once the provider accepted it. Idempotent
    /// on `attempt_key`. Reports for it arrive on the report channel.
    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<(), TelephonyError>>;
    /// Hangs up an attempt in progress (the call was cancelled). An unknown
    /// or already finished attempt is not an error.
    fn hang_up(&self, attempt_key: &str) -> BoxFuture<'_, Result<(), TelephonyError>>;
    /// Whether the provider still carries this attempt (used after a restart
    /// to tell a live attempt from one that died with the server).
    fn is_live(&self, attempt_key: &str) -> BoxFuture<'_, Result<bool, TelephonyError>>;
}
