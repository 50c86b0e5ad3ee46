//! The scenario's reports to `/v1/providers/voximplant/calls/{key}/events`:
//! a JSON body signed `X-Callahead-Signature: hex(HMAC-SHA256(secret, body))`
//! with the attempt's own secret, numbered (`n`, from 1) and timestamped
//! (`ts`, ms). The signature is checked over the raw bytes before the body
//! is parsed; a report older than the replay window is refused.

use super::Voximplant;
use crate::providers::callbacks::DirectUpdate;
use crate::providers::callbacks::{
    constant_time_eq, Accepted, CallbackError, Inbound, Loaded, ProviderCallbacks, Reply, Subject,
    REPLAY_WINDOW_SECS,
};
use crate::providers::Placed;
use callahead_core::call::{EndReason, Key, ProviderEvent};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-callahead-signature";

/// One report, as scenario.js sends it.
#[derive(Debug, Deserialize)]
pub struct Report {
    pub attempt_key: String,
    #[serde(default)]
    pub session_id: Option<String>,
    pub n: u64,
    pub ts: i64,
    pub event: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub connected: Option<bool>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub answered: Option<bool>,
    #[serde(default)]
    pub talk_secs: Option<u32>,
    #[serde(default)]
    pub machine: Option<bool>,
    #[serde(default)]
    pub recording_ref: Option<String>,
    #[serde(default)]
    pub duration_secs: Option<u32>,
}

/// The scenario's names for how a call ended.
pub fn end_reason(s: &str) -> Option<EndReason> {
    Some(match s {
        "hung_up" => EndReason::HungUp,
        "no_answer" => EndReason::NoAnswer,
        "busy" => EndReason::Busy,
        "voicemail" => EndReason::Voicemail,
        "failed" => EndReason::Failed,
        _ => return None,
    })
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn single_key(k: Option<&str>) -> Option<Key> {
    let k = k?;
    let mut chars = k.chars();
    chars.next().filter(|_| chars.next().is_none()).and_then(Key::new)
}

impl Report {
    fn events(&self) -> Result<Vec<ProviderEvent>, CallbackError> {
        let bad = |what: &str| CallbackError::Invalid(format!("{what} in a {} report", self.event));
        Ok(match self.event.as_str() {
            "started" => Vec::new(),
            "ringing" => vec![ProviderEvent::Ringing],
            "answered" => vec![ProviderEvent::Answered { voicemail: self.machine.unwrap_or(false) }],
            "key" => vec![ProviderEvent::KeyPressed {
                key: single_key(self.key.as_deref()).ok_or_else(|| bad("no key"))?,
            }],
            "bridged" => vec![ProviderEvent::Bridged { connected: self.connected.unwrap_or(false) }],
            "ended" => {
                let result = self.result.as_deref().and_then(end_reason).ok_or_else(|| bad("no result"))?;
                vec![ProviderEvent::Ended {
                    result,
                    answered: self.answered.unwrap_or(false),
                    key: single_key(self.key.as_deref()),
                    talk_secs: self.talk_secs,
                }]
            }
            other => return Err(CallbackError::Invalid(format!("unknown event {other:?}"))),
        })
    }
}

impl ProviderCallbacks for Voximplant {
    fn subject(&self, segments: &[String]) -> Result<Subject, CallbackError> {
        match segments {
            [kind, key, action] if kind == "calls" && action == "events" => Ok(Subject::Attempt(key.clone())),
            [kind, key, action] if kind == "direct" && action == "events" => Ok(Subject::Direct(key.clone())),
            _ => Err(CallbackError::Unknown("no such Voximplant callback".into())),
        }
    }

    fn handle(&self, req: &Inbound<'_>, loaded: &Loaded) -> Result<Accepted, CallbackError> {
        if let Loaded::Direct(dial) = loaded {
            let dial = dial.as_ref().ok_or_else(|| CallbackError::Forged("no such direct call".into()))?;
            let key = crate::providers::DirectDialRequest::key(dial.id);
            let report = verified(req, &dial.callback_secret, &key)?;
            let mut direct = Vec::new();
            if let Some(session) = &report.session_id {
                direct.push(DirectUpdate::Placed(session.clone()));
            }
            match report.event.as_str() {
                "started" => {}
                "connected" => direct.push(DirectUpdate::Connected(report.connected.unwrap_or(false))),
                "ended" => direct.push(DirectUpdate::Ended { talk_secs: report.talk_secs }),
                "recorded" => direct.push(DirectUpdate::Recorded {
                    recording_ref: report.recording_ref.clone().unwrap_or_default(),
                    duration_secs: report.duration_secs.unwrap_or(0),
                }),
                other => return Err(CallbackError::Invalid(format!("unknown event {other:?}"))),
            }
            return Ok(Accepted {
                receipts: vec![format!("voximplant:{key}:{}", report.n)],
                direct,
                reply: Reply::json("{\"ok\":true}".into()),
                ..Accepted::default()
            });
        }
        // Without the attempt there is no secret to check against: an
        // unknown attempt is indistinguishable from a forgery.
        let Loaded::Attempt(Some(attempt)) = loaded else {
            return Err(CallbackError::Forged("no such attempt".into()));
        };
        let report = verified(req, &attempt.request.callback_secret, &attempt.request.attempt_key)?;
        let placed = match (&attempt.placed, &report.session_id) {
            (Some(p), Some(s)) if &p.reference != s => {
                return Err(CallbackError::Forged("reported by another session".into()));
            }
            (None, Some(s)) => Some(Placed { reference: s.clone(), control_url: None }),
            _ => None,
        };
        Ok(Accepted {
            receipts: vec![format!("voximplant:{}:{}", report.attempt_key, report.n)],
            events: report.events()?,
            placed,
            message: None,
            direct: Vec::new(),
            reply: Reply::json("{\"ok\":true}".into()),
        })
    }
}

/// Checks the signature over the raw body with `secret`, then that the
/// report is for `key` and fresh; only then is it read.
fn verified(req: &Inbound<'_>, secret: &str, key: &str) -> Result<Report, CallbackError> {
    let sig = req
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CallbackError::Forged("no X-Callahead-Signature".into()))?;
    if secret.is_empty() || !constant_time_eq(sign(secret, req.body).as_bytes(), sig.as_bytes()) {
        return Err(CallbackError::Forged("X-Callahead-Signature does not match".into()));
    }
    let report: Report =
        serde_json::from_slice(req.body).map_err(|e| CallbackError::Invalid(format!("not a report: {e}")))?;
    if report.attempt_key != key {
        return Err(CallbackError::Forged("signed for another call".into()));
    }
    // The scenario's clock is real time, like ours.
    let age_ms = chrono::Utc::now().timestamp_millis() - report.ts;
    if age_ms.abs() > REPLAY_WINDOW_SECS * 1000 {
        return Err(CallbackError::Replayed(format!("report {} is {} s old", report.n, age_ms / 1000)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOCOL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/voximplant/protocol.json"));

    #[test]
    fn every_report_the_scenario_sends_parses() {
        let doc: serde_json::Value = serde_json::from_str(PROTOCOL).expect("protocol.json");
        let examples = doc["examples"].as_array().expect("examples");
        let mut kinds = Vec::new();
        for e in examples {
            let mut body = e.clone();
            body["n"] = 1.into();
            body["ts"] = 0.into();
            body["attempt_key"] = "call-1-1".into();
            body["session_id"] = "42".into();
            let report: Report = serde_json::from_value(body).expect("a report");
            let events = report.events().unwrap_or_else(|e| panic!("{}: {e}", report.event));
            kinds.push((report.event.clone(), events));
        }
        let key = Key::new('1').expect("key");
        assert_eq!(kinds[3].1, vec![ProviderEvent::KeyPressed { key }]);
        assert_eq!(
            kinds[5].1,
            vec![ProviderEvent::Ended {
                result: EndReason::HungUp,
                answered: true,
                key: Some(key),
                talk_secs: Some(12)
            }]
        );
        assert_eq!(kinds[4].1, vec![ProviderEvent::Bridged { connected: true }]);
        assert!(kinds[0].1.is_empty(), "started only names the session");
    }

    #[test]
    fn the_signature_is_hmac_sha256_hex_of_the_raw_body() {
        // The same computation as scenario.test.mjs (node:crypto).
        let sig = sign("key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(sig, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    }
}
