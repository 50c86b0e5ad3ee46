//! Twilio Programmable Voice and Messaging (issue #11). One attempt is one
//! Create Call with a status callback for every progress event; when the
//! customer answers, Twilio fetches TwiML, answered from the attempt's
//! stored script ([`twiml`]); every inbound request is checked with
//! `X-Twilio-Signature` before anything in it is read ([`signature`]).
//! Texts go through the Messages API with a delivery-status callback.
//!
//! Twilio's Create Call and Create Message take no idempotency key, so a
//! create whose answer was lost is looked up (List Calls / List Messages to
//! the same number since the attempt began) before anything is sent again.

mod api;
mod callbacks;
pub mod signature;
pub mod twiml;

use crate::providers::{
    AttemptRef, BoxFuture, DirectDialRequest, Lookup, Message, Messaging, MessagingError, PlaceCall, Placed,
    ProviderStore, Sent, Telephony, TelephonyError,
};
use crate::store::providers as stored;
use crate::store::StoreError;
use api::{Api, ApiError, CallResource};
use callahead_core::call::{EndReason, ProviderEvent};
use callahead_core::channel::Channel;
use std::sync::Arc;
use std::time::Duration;

/// `https://api.twilio.com`; regional edges and tests override it.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// How to reach the Twilio account. Secrets are never printed.
#[derive(Clone)]
pub struct TwilioConfig {
    /// `TWILIO_ACCOUNT_SID` (`AC…`).
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`: validates Twilio's signatures, and authenticates
    /// requests when no API key is given.
    pub auth_token: String,
    /// `TWILIO_API_KEY_SID` / `TWILIO_API_KEY_SECRET`: preferred for
    /// requests (revocable without touching the auth token).
    pub api_key: Option<(String, String)>,
    /// `TWILIO_FROM_NUMBER`: the robot's number, E.164; also the caller id
    /// the courier sees on "talk to the courier".
    pub from_number: String,
    pub api_base: String,
    /// Where Twilio reaches this server (`--public-url`).
    pub public_url: String,
    /// Answering-machine detection on every call (`MachineDetection=Enable`).
    pub machine_detection: bool,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<secret>")
            .field("api_key", &self.api_key.as_ref().map(|(sid, _)| (sid, "<secret>")))
            .field("from_number", &self.from_number)
            .field("api_base", &self.api_base)
            .field("public_url", &self.public_url)
            .field("machine_detection", &self.machine_detection)
            .finish()
    }
}

impl TwilioConfig {
    pub fn check(&self) -> Result<(), String> {
        if !self.account_sid.starts_with("AC") {
            return Err("TWILIO_ACCOUNT_SID must be an account SID (AC…)".into());
        }
        if self.auth_token.is_empty() {
            return Err("TWILIO_AUTH_TOKEN is required (it validates Twilio's signatures)".into());
        }
        if !self.from_number.starts_with('+') {
            return Err("TWILIO_FROM_NUMBER must be an E.164 number (+…)".into());
        }
        if !(self.public_url.starts_with("https://") || self.public_url.starts_with("http://")) {
            return Err("--public-url is required: Twilio calls this server back there".into());
        }
        Ok(())
    }
}

/// Twilio as the telephony and/or the SMS provider.
pub struct Twilio {
    config: TwilioConfig,
    api: Api,
    store: ProviderStore,
}

impl Twilio {
    pub fn new(config: TwilioConfig, store: ProviderStore) -> Result<Arc<Twilio>, String> {
        config.check()?;
        let api = Api::new(config.clone())?;
        Ok(Arc::new(Twilio { config, api, store }))
    }

    fn base(&self) -> String {
        format!("{}/v1/providers/twilio", self.config.public_url.trim_end_matches('/'))
    }

    pub(crate) fn call_url(&self, attempt_key: &str, action: &str) -> String {
        format!("{}/calls/{attempt_key}/{action}", self.base())
    }

    pub(crate) fn direct_url(&self, key: &str, action: &str) -> String {
        format!("{}/direct/{key}/{action}", self.base())
    }

    fn message_url(&self, key: &str) -> String {
        let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        format!("{}/messages/{key}/status", self.base())
    }

    /// What a call resource says happened, as events (`None`: still going).
    fn outcome(call: &CallResource) -> Option<Vec<ProviderEvent>> {
        let machine = callbacks::is_machine(call.answered_by.as_deref());
        let talk_secs = call.duration.as_deref().and_then(|d| d.parse().ok());
        let ended = |result, answered| ProviderEvent::Ended { result, answered, key: None, talk_secs };
        Some(match call.status.as_str() {
            "queued" | "initiated" | "ringing" | "in-progress" => return None,
            "completed" if machine => {
                vec![ProviderEvent::Answered { voicemail: true }, ended(EndReason::Voicemail, false)]
            }
            "completed" => vec![ProviderEvent::Answered { voicemail: false }, ended(EndReason::HungUp, true)],
            "busy" => vec![ended(EndReason::Busy, false)],
            "no-answer" | "canceled" => vec![ended(EndReason::NoAnswer, false)],
            _ => vec![ended(EndReason::Failed, false)],
        })
    }

    fn lookup_result(call: CallResource) -> Lookup {
        let placed = Placed { reference: call.sid.clone(), control_url: None };
        match Self::outcome(&call) {
            None => Lookup::Live(placed),
            Some(events) => Lookup::Ended { placed, events },
        }
    }

    async fn send_sms(&self, m: &Message) -> Result<Sent, MessagingError> {
        let key = m.idempotency_key.clone();
        let (readers, writer) = (self.store.readers.clone(), self.store.writer.clone());
        let known = {
            let key = key.clone();
            readers.read(move |c| stored::message(c, &key)).await.map_err(store_err)?
        };
        if let Some(known) = &known {
            if known.status != "sending" {
                return answer_from(known.status.as_str(), known.error.clone());
            }
            // A send whose answer was lost (or a crash mid-send): find it
            // before texting the customer again.
            let since = known.created_at - chrono::Duration::minutes(2);
            match self.api.list_messages(&m.to, since).await {
                Ok(found) => {
                    if let Some(sent) = found.into_iter().find(|f| f.body.as_deref() == Some(m.text.as_str()))
                    {
                        self.record_message(
                            &key,
                            Some(sent.sid.clone()),
                            &sent.status,
                            sent.error_message.clone(),
                        )
                        .await?;
                        return answer_from(&sent.status, sent.error_message);
                    }
                }
                Err(e) => return Err(messaging_err(e)),
            }
        }
        let now = self.store.clock.now();
        {
            let key = key.clone();
            writer
                .write(move |tx| stored::message_sending(tx, &key, "twilio", now))
                .await
                .map_err(store_err)?;
        }
        let form = [
            ("To", m.to.clone()),
            ("From", self.config.from_number.clone()),
            ("Body", m.text.clone()),
            ("StatusCallback", self.message_url(&key)),
        ];
        match self.api.create_message(&form).await {
            Ok(msg) => {
                self.record_message(&key, Some(msg.sid.clone()), &msg.status, None).await?;
                answer_from(&msg.status, msg.error_message)
            }
            Err(ApiError::Refused { why, .. }) => {
                self.record_message(&key, None, "failed", Some(why.clone())).await?;
                Err(MessagingError::Rejected(why))
            }
            Err(e) => Err(messaging_err(e)),
        }
    }

    async fn record_message(
        &self,
        key: &str,
        sid: Option<String>,
        status: &str,
        error: Option<String>,
    ) -> Result<(), MessagingError> {
        let (key, status, now) = (key.to_owned(), status.to_owned(), self.store.clock.now());
        self.store
            .writer
            .write(move |tx| stored::message_status(tx, &key, sid.as_deref(), &status, error.as_deref(), now))
            .await
            .map_err(store_err)
    }
}

fn store_err(e: StoreError) -> MessagingError {
    MessagingError::Unavailable(format!("storage: {e}"))
}

fn messaging_err(e: ApiError) -> MessagingError {
    match e {
        ApiError::Refused { why, .. } => MessagingError::Rejected(why),
        ApiError::NotTaken { why, .. } | ApiError::Uncertain(why) => MessagingError::Unavailable(why),
    }
}

/// Twilio's message status, as the cascade needs it.
fn answer_from(status: &str, error: Option<String>) -> Result<Sent, MessagingError> {
    match status {
        "delivered" | "read" => Ok(Sent::Delivered),
        "failed" | "undelivered" => Err(MessagingError::Rejected(
            error.unwrap_or_else(|| format!("Twilio reports the message {status}")),
        )),
        _ => Ok(Sent::Accepted),
    }
}

impl Telephony for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move {
            let key = &req.attempt_key;
            let mut form = vec![
                ("To", req.to.clone()),
                ("From", self.config.from_number.clone()),
                ("Url", self.call_url(key, "answer")),
                ("Method", "POST".to_owned()),
                ("StatusCallback", self.call_url(key, "status")),
                ("StatusCallbackMethod", "POST".to_owned()),
                ("Timeout", req.ring_timeout_secs.clamp(5, 600).to_string()),
            ];
            for event in ["initiated", "ringing", "answered", "completed"] {
                form.push(("StatusCallbackEvent", event.to_owned()));
            }
            if req.machine_detection || self.config.machine_detection {
                form.push(("MachineDetection", "Enable".to_owned()));
            }
            let call = self.api.create_call(&form).await?;
            Ok(Placed { reference: call.sid, control_url: None })
        })
    }

    fn hang_up(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<(), TelephonyError>> {
        let sid = attempt.placed.as_ref().map(|p| p.reference.clone());
        Box::pin(async move {
            let Some(sid) = sid else { return Ok(()) };
            let call = match self.api.fetch_call(&sid).await {
                Ok(c) => c,
                Err(ApiError::Refused { status: 404, .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            // `canceled` stops a call that has not been answered yet,
            // `completed` hangs up one in progress.
            let status = match call.status.as_str() {
                "queued" | "initiated" | "ringing" => "canceled",
                "in-progress" => "completed",
                _ => return Ok(()),
            };
            self.api.update_call(&sid, &[("Status", status.to_owned())]).await?;
            Ok(())
        })
    }

    fn lookup(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<Lookup, TelephonyError>> {
        let attempt = attempt.clone();
        Box::pin(async move {
            if let Some(placed) = &attempt.placed {
                return match self.api.fetch_call(&placed.reference).await {
                    Ok(call) => Ok(Self::lookup_result(call)),
                    Err(ApiError::Refused { status: 404, .. }) => Ok(Lookup::NotFound),
                    Err(e) => Err(e.into()),
                };
            }
            if attempt.to.is_empty() {
                return Ok(Lookup::NotFound);
            }
            // No reference: the create's answer was lost. A call to the
            // same number from our number since the attempt began is it.
            let since = attempt.placed_at - chrono::Duration::minutes(2);
            let calls = self.api.list_calls(&attempt.to, since).await?;
            let ours = calls
                .into_iter()
                .filter(|c| c.created_at().is_none_or(|t| t >= since))
                .max_by_key(|c| c.created_at());
            Ok(ours.map_or(Lookup::NotFound, Self::lookup_result))
        })
    }

    fn callbacks(&self) -> Option<&dyn crate::providers::callbacks::ProviderCallbacks> {
        Some(self)
    }

    fn supports_direct_dial(&self) -> bool {
        true
    }

    fn dial_direct(&self, req: DirectDialRequest) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move {
            // The courier's phone first; when they answer, Twilio fetches
            // the TwiML that dials the customer (and records, if asked).
            let form = vec![
                ("To", req.courier_phone.clone()),
                ("From", self.config.from_number.clone()),
                ("Url", self.direct_url(&req.key, "answer")),
                ("Method", "POST".to_owned()),
                ("StatusCallback", self.direct_url(&req.key, "status")),
                ("StatusCallbackMethod", "POST".to_owned()),
                ("StatusCallbackEvent", "completed".to_owned()),
            ];
            let call = self.api.create_call(&form).await?;
            Ok(Placed { reference: call.sid, control_url: None })
        })
    }
}

impl Messaging for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn send(&self, message: Message) -> BoxFuture<'_, Result<Sent, MessagingError>> {
        Box::pin(async move {
            if message.channel != Channel::Sms {
                return Err(MessagingError::NotRegistered(message.channel));
            }
            self.send_sms(&message).await
        })
    }

    fn delivered(&self, idempotency_key: &str) -> BoxFuture<'_, Result<bool, MessagingError>> {
        let key = idempotency_key.to_owned();
        Box::pin(async move {
            let readers = self.store.readers.clone();
            let known = readers.read(move |c| stored::message(c, &key)).await.map_err(store_err)?;
            let Some(known) = known else { return Ok(false) };
            if known.status == "delivered" {
                return Ok(true);
            }
            // The receipt callback may have been lost: ask.
            let Some(sid) = known.provider_ref.clone() else { return Ok(false) };
            match self.api.fetch_message(&sid).await {
                Ok(m) => {
                    self.record_message(&known.idempotency_key, None, &m.status, m.error_message).await?;
                    Ok(m.status == "delivered")
                }
                Err(_) => Ok(false),
            }
        })
    }

    fn callbacks(&self) -> Option<&dyn crate::providers::callbacks::ProviderCallbacks> {
        Some(self)
    }
}
