//! Voximplant (issue #11). One attempt is one `StartScenarios` of the
//! operator's rule, whose scenario (`server/voximplant/scenario.js`, in
//! this repository) dials the customer, speaks the rendered texts, reads the
//! key and bridges to the courier on 0. Everything the scenario needs comes
//! in `script_custom_data`, including where to report and a per-attempt
//! secret: each report is signed HMAC-SHA256 with it, numbered, and
//! timestamped ([`callbacks`]). Callahead owns the attempt policy, so
//! Voximplant's call lists are not used.
//!
//! Requests are authorized with a service-account JWT ([`jwt`]); hang-up
//! goes through the session's media-session URL; a restart looks the
//! session up (first the session itself, then the call history, where the
//! scenario leaves its summary in the session's custom data).

mod callbacks;
pub mod jwt;

use crate::providers::{
    AttemptRef, BoxFuture, DirectDialRequest, Lookup, Message, Messaging, MessagingError, PlaceCall, Placed,
    ProviderStore, Sent, Telephony, TelephonyError,
};
use crate::store::providers as stored;
use callahead_core::call::{EndReason, Key, ProviderEvent};
use callahead_core::channel::Channel;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_API_BASE: &str = "https://api.voximplant.com/platform_api";

#[derive(Clone)]
pub struct VoximplantConfig {
    /// The service account's key (`VOXIMPLANT_CREDENTIALS`: the JSON file).
    pub key: jwt::ServiceAccountKey,
    /// The routing rule whose scenario is `scenario.js` (`VOXIMPLANT_RULE_ID`).
    pub rule_id: String,
    /// The number customers see (`VOXIMPLANT_CALLER_ID`), rented or verified
    /// in the account; also the SMS sender unless `sms_from` is set.
    pub caller_id: String,
    /// `VOXIMPLANT_SMS_FROM`: an SMS-enabled number of the account.
    pub sms_from: Option<String>,
    pub api_base: String,
    pub public_url: String,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for VoximplantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoximplantConfig")
            .field("key", &self.key)
            .field("rule_id", &self.rule_id)
            .field("caller_id", &self.caller_id)
            .field("sms_from", &self.sms_from)
            .field("api_base", &self.api_base)
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// What the scenario leaves in the session's custom data when it ends (at
/// most 200 bytes): `callahead;{attempt_key};{result};{answered};{key};{talk}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub attempt_key: String,
    pub result: EndReason,
    pub answered: bool,
    pub key: Option<Key>,
    pub talk_secs: Option<u32>,
}

impl Summary {
    pub fn parse(s: &str) -> Option<Summary> {
        let mut parts = s.split(';');
        if parts.next()? != "callahead" {
            return None;
        }
        let attempt_key = parts.next()?.to_owned();
        let result = callbacks::end_reason(parts.next()?)?;
        let answered = parts.next()? == "1";
        let key = parts.next().and_then(|k| k.chars().next()).and_then(Key::new);
        let talk_secs = parts.next().and_then(|t| t.parse().ok());
        Some(Summary { attempt_key, result, answered, key, talk_secs })
    }

    pub fn events(&self) -> Vec<ProviderEvent> {
        let mut out = Vec::new();
        if self.answered {
            out.push(ProviderEvent::Answered { voicemail: false });
        }
        if let Some(key) = self.key {
            out.push(ProviderEvent::KeyPressed { key });
        }
        out.push(ProviderEvent::Ended {
            result: self.result,
            answered: self.answered,
            key: self.key,
            talk_secs: self.talk_secs,
        });
        out
    }
}

pub struct Voximplant {
    config: VoximplantConfig,
    signer: jwt::Signer,
    http: reqwest::Client,
    store: ProviderStore,
}

/// What went wrong with one management-API request.
enum ApiError {
    NotTaken { rate_limited: bool, why: String },
    Uncertain(String),
    Refused(String),
}

impl From<ApiError> for TelephonyError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotTaken { rate_limited: true, why } => TelephonyError::RateLimited(why),
            ApiError::NotTaken { rate_limited: false, why } => TelephonyError::Unavailable(why),
            ApiError::Uncertain(why) => TelephonyError::Uncertain(why),
            ApiError::Refused(why) => TelephonyError::Rejected(why),
        }
    }
}

impl From<ApiError> for MessagingError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Refused(why) => MessagingError::Rejected(why),
            ApiError::NotTaken { why, .. } | ApiError::Uncertain(why) => MessagingError::Unavailable(why),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Started {
    call_session_history_id: Option<Value>,
    media_session_access_secure_url: Option<String>,
    media_session_access_url: Option<String>,
}

impl Voximplant {
    pub fn new(config: VoximplantConfig, store: ProviderStore) -> Result<Arc<Voximplant>, String> {
        if config.rule_id.is_empty() {
            return Err("VOXIMPLANT_RULE_ID is required (the rule that runs scenario.js)".into());
        }
        if !config.caller_id.starts_with('+') {
            return Err("VOXIMPLANT_CALLER_ID must be an E.164 number (+…)".into());
        }
        if !(config.public_url.starts_with("https://") || config.public_url.starts_with("http://")) {
            return Err("--public-url is required: the scenario reports to this server there".into());
        }
        let signer = jwt::Signer::new(&config.key)?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| format!("voximplant http client: {e}"))?;
        Ok(Arc::new(Voximplant { config, signer, http, store }))
    }

    fn events_url(&self, attempt_key: &str) -> String {
        format!(
            "{}/v1/providers/voximplant/calls/{attempt_key}/events",
            self.config.public_url.trim_end_matches('/')
        )
    }

    /// One management-API method, form-encoded, with a fresh JWT.
    async fn call(&self, method: &str, form: &[(&str, String)]) -> Result<Value, ApiError> {
        let token = self.signer.token(Utc::now().timestamp()).map_err(ApiError::Refused)?;
        let url = format!("{}/{method}", self.config.api_base.trim_end_matches('/'));
        let resp = match self.http.post(url).bearer_auth(token).form(form).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(ApiError::NotTaken { rate_limited: false, why: format!("cannot connect: {e}") })
            }
            Err(e) => return Err(ApiError::Uncertain(format!("no answer: {e}"))),
        };
        let status = resp.status();
        let body: Result<Value, _> = resp.json().await;
        match status.as_u16() {
            429 => {
                return Err(ApiError::NotTaken { rate_limited: true, why: "429 Too Many Requests".into() })
            }
            503 => {
                return Err(ApiError::NotTaken { rate_limited: false, why: "503 Service Unavailable".into() })
            }
            500..=599 => return Err(ApiError::Uncertain(format!("{status}"))),
            _ => {}
        }
        let body = body.map_err(|e| ApiError::Uncertain(format!("unreadable answer ({status}): {e}")))?;
        if let Some(err) = body.get("error") {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            let msg = err.get("msg").and_then(Value::as_str).unwrap_or("");
            let why = format!("Voximplant error {code}: {msg}");
            // Voximplant's "too many requests" and "internal error" codes.
            return Err(match code {
                185 => ApiError::NotTaken { rate_limited: true, why },
                500 => ApiError::Uncertain(why),
                _ => ApiError::Refused(why),
            });
        }
        if !status.is_success() {
            return Err(ApiError::Refused(format!("{status}")));
        }
        Ok(body)
    }

    /// What the scenario is told for one attempt.
    fn custom_data(&self, req: &PlaceCall) -> String {
        let s = &req.script;
        let (connecting, busy) = match s.language.as_str() {
            "ru" => ("Соединяю с курьером.", "Курьер сейчас не может ответить и перезвонит вам."),
            _ => (
                "Connecting you to your courier.",
                "Your courier cannot answer right now and will call you back.",
            ),
        };
        let keys: serde_json::Map<String, Value> =
            s.keys.iter().map(|(k, what)| (k.to_string(), Value::String(what.clone()))).collect();
        json!({
            "v": 1,
            "attempt_key": req.attempt_key,
            "to": req.to,
            "caller_id": self.config.caller_id,
            "language": s.language,
            "voice": voice(&s.language),
            "texts": {
                "message": s.text, "no_input": s.no_input, "goodbye": s.goodbye,
                "connecting": connecting, "courier_busy": busy,
            },
            "keys": keys,
            "bridge_to": req.bridge_to,
            "ring_timeout_secs": req.ring_timeout_secs,
            "callback_url": self.events_url(&req.attempt_key),
            "secret": req.callback_secret,
        })
        .to_string()
    }

    /// Asks the running session (its media-session URL) how it is.
    async fn session_alive(&self, control_url: &str) -> bool {
        let resp = self.http.post(control_url).json(&json!({"action": "status"})).send().await;
        resp.is_ok_and(|r| r.status().is_success())
    }

    async fn history(&self, form: &[(&str, String)]) -> Result<Vec<Value>, ApiError> {
        let body = self.call("GetCallHistory", form).await?;
        Ok(body.get("result").and_then(Value::as_array).cloned().unwrap_or_default())
    }
}

/// A VoxEngine voice for a template language.
pub fn voice(language: &str) -> &'static str {
    match language {
        "ru" => "Amazon.ru_RU_Tatyana",
        _ => "Amazon.en_US_Joanna",
    }
}

fn session_id(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Telephony for Voximplant {
    fn name(&self) -> &'static str {
        "voximplant"
    }

    fn place(&self, req: PlaceCall) -> BoxFuture<'_, Result<Placed, TelephonyError>> {
        Box::pin(async move {
            let form =
                [("rule_id", self.config.rule_id.clone()), ("script_custom_data", self.custom_data(&req))];
            let body = self.call("StartScenarios", &form).await?;
            let started: Started = serde_json::from_value(body)
                .map_err(|e| TelephonyError::Uncertain(format!("unreadable StartScenarios answer: {e}")))?;
            let reference = started
                .call_session_history_id
                .as_ref()
                .and_then(session_id)
                .ok_or_else(|| TelephonyError::Uncertain("StartScenarios named no session".into()))?;
            Ok(Placed {
                reference,
                control_url: started.media_session_access_secure_url.or(started.media_session_access_url),
            })
        })
    }

    fn hang_up(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<(), TelephonyError>> {
        let control = attempt.placed.as_ref().and_then(|p| p.control_url.clone());
        Box::pin(async move {
            let Some(url) = control else { return Ok(()) };
            match self.http.post(url).json(&json!({"action": "hangup"})).send().await {
                // A session that is gone has hung up already.
                Ok(_) => Ok(()),
                Err(e) if e.is_connect() => Ok(()),
                Err(e) => Err(TelephonyError::Unavailable(format!("hang-up: {e}"))),
            }
        })
    }

    fn lookup(&self, attempt: &AttemptRef) -> BoxFuture<'_, Result<Lookup, TelephonyError>> {
        let attempt = attempt.clone();
        Box::pin(async move {
            let mut placed = attempt.placed.clone();
            if placed.as_ref().and_then(|p| p.control_url.as_deref()).is_some() {
                let url = placed.as_ref().and_then(|p| p.control_url.clone()).unwrap_or_default();
                if self.session_alive(&url).await {
                    return Ok(Lookup::Live(placed.unwrap_or_default()));
                }
            }
            let records = match &placed {
                Some(p) => self.history(&[("call_session_history_id", p.reference.clone())]).await?,
                None => {
                    if attempt.to.is_empty() {
                        return Ok(Lookup::NotFound);
                    }
                    // The create's answer was lost: a session of our rule
                    // for this attempt since it began.
                    let fmt = "%Y-%m-%d %H:%M:%S";
                    let from = (attempt.placed_at - chrono::Duration::minutes(2)).format(fmt).to_string();
                    let to = (Utc::now() + chrono::Duration::minutes(1)).format(fmt).to_string();
                    self.history(&[
                        ("from_date", from),
                        ("to_date", to),
                        ("remote_number", attempt.to.clone()),
                    ])
                    .await?
                }
            };
            let ours = records.into_iter().find(|r| {
                let custom = r.get("custom_data").and_then(Value::as_str).unwrap_or("");
                placed.is_some() || custom.contains(&attempt.attempt_key)
            });
            let Some(record) = ours else { return Ok(Lookup::NotFound) };
            if placed.is_none() {
                let reference =
                    record.get("call_session_history_id").and_then(session_id).unwrap_or_default();
                placed = Some(Placed { reference, control_url: None });
            }
            let placed = placed.unwrap_or_default();
            let custom = record.get("custom_data").and_then(Value::as_str).unwrap_or("");
            match Summary::parse(custom).filter(|s| s.attempt_key == attempt.attempt_key) {
                Some(summary) => Ok(Lookup::Ended { placed, events: summary.events() }),
                // Still running (no summary yet), as far as the history says.
                None if record.get("duration").is_none_or(Value::is_null) => Ok(Lookup::Live(placed)),
                // Ended without a summary: the scenario never got to report.
                None => Ok(Lookup::NotFound),
            }
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
            let url = format!(
                "{}/v1/providers/voximplant/direct/{}/events",
                self.config.public_url.trim_end_matches('/'),
                req.key
            );
            let data = json!({
                "v": 1,
                "mode": "direct",
                "attempt_key": req.key,
                "courier": req.courier_phone,
                "to": req.customer_phone,
                "caller_id": self.config.caller_id,
                "record": req.record,
                "ring_timeout_secs": 30,
                "callback_url": url,
                "secret": req.callback_secret,
            });
            let form = [("rule_id", self.config.rule_id.clone()), ("script_custom_data", data.to_string())];
            let body = self.call("StartScenarios", &form).await?;
            let started: Started = serde_json::from_value(body)
                .map_err(|e| TelephonyError::Uncertain(format!("unreadable StartScenarios answer: {e}")))?;
            let reference = started.call_session_history_id.as_ref().and_then(session_id).unwrap_or_default();
            Ok(Placed {
                reference,
                control_url: started.media_session_access_secure_url.or(started.media_session_access_url),
            })
        })
    }
}

impl Messaging for Voximplant {
    fn name(&self) -> &'static str {
        "voximplant"
    }

    fn send(&self, message: Message) -> BoxFuture<'_, Result<Sent, MessagingError>> {
        Box::pin(async move {
            if message.channel != Channel::Sms {
                return Err(MessagingError::NotRegistered(message.channel));
            }
            let key = message.idempotency_key.clone();
            let readers = self.store.readers.clone();
            let known = {
                let key = key.clone();
                readers
                    .read(move |c| stored::message(c, &key))
                    .await
                    .map_err(|e| MessagingError::Unavailable(e.to_string()))?
            };
            if let Some(known) = known.filter(|k| k.status != "sending") {
                return match known.status.as_str() {
                    "delivered" => Ok(Sent::Delivered),
                    "failed" => Err(MessagingError::Rejected(known.error.unwrap_or_default())),
                    _ => Ok(Sent::Accepted),
                };
            }
            let now = self.store.clock.now();
            {
                let key = key.clone();
                self.store
                    .writer
                    .write(move |tx| stored::message_sending(tx, &key, "voximplant", now))
                    .await
                    .map_err(|e| MessagingError::Unavailable(e.to_string()))?;
            }
            let from = self.config.sms_from.clone().unwrap_or_else(|| self.config.caller_id.clone());
            let strip = |n: &str| n.trim_start_matches('+').to_owned();
            let form = [
                ("src_number", strip(&from)),
                ("dst_numbers", strip(&message.to)),
                ("text", message.text.clone()),
            ];
            let body = self.call("A2PSendSms", &form).await?;
            let failed = body.get("failed").and_then(Value::as_array).and_then(|f| f.first()).cloned();
            let (status, sid, error) = match failed {
                Some(f) => {
                    ("failed", None, f.get("error_description").and_then(Value::as_str).map(str::to_owned))
                }
                None => {
                    let sid = body
                        .get("result")
                        .and_then(Value::as_array)
                        .and_then(|r| r.first())
                        .and_then(|r| r.get("message_id"))
                        .and_then(session_id);
                    ("sent", sid, None)
                }
            };
            let (k, s, e) = (key.clone(), status.to_owned(), error.clone());
            self.store
                .writer
                .write(move |tx| stored::message_status(tx, &k, sid.as_deref(), &s, e.as_deref(), now))
                .await
                .map_err(|e| MessagingError::Unavailable(e.to_string()))?;
            match status {
                "failed" => Err(MessagingError::Rejected(
                    error.unwrap_or_else(|| "Voximplant refused the SMS".into()),
                )),
                _ => Ok(Sent::Accepted),
            }
        })
    }

    fn delivered(&self, idempotency_key: &str) -> BoxFuture<'_, Result<bool, MessagingError>> {
        let key = idempotency_key.to_owned();
        Box::pin(async move {
            let readers = self.store.readers.clone();
            let k = key.clone();
            let known = readers
                .read(move |c| stored::message(c, &k))
                .await
                .map_err(|e| MessagingError::Unavailable(e.to_string()))?;
            let Some(known) = known else { return Ok(false) };
            if known.status == "delivered" {
                return Ok(true);
            }
            let Some(id) = known.provider_ref else { return Ok(false) };
            // Voximplant keeps each SMS's delivery status in its history.
            let body = self.call("A2PGetSmsHistory", &[("message_id", id.clone())]).await?;
            // delivery_status: DELIVERED (5 in the numeric form).
            let status = body
                .get("result")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(|r| r.get("delivery_status"))
                .cloned()
                .unwrap_or(Value::Null);
            let delivered = status == "DELIVERED" || status == 5;
            if delivered {
                let now = self.store.clock.now();
                self.store
                    .writer
                    .write(move |tx| stored::message_status(tx, &key, None, "delivered", None, now))
                    .await
                    .map_err(|e| MessagingError::Unavailable(e.to_string()))?;
            }
            Ok(delivered)
        })
    }
}
