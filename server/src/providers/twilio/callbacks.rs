//! Twilio's requests to `/v1/providers/twilio/…`: TwiML fetches when the
//! customer answers (`answer`), after a key (`gather`) and after the bridge
//! to the courier (`dial`); status callbacks (`status`); SMS receipts
//! (`messages/{key}/status`). Each is authenticated by its signature first.

use super::{signature, twiml, Twilio};
use crate::providers::callbacks::{
    Accepted, CallbackError, DirectUpdate, Inbound, Loaded, MessageUpdate, ProviderCallbacks, Reply, Subject,
};
use crate::providers::Placed;
use callahead_core::call::{EndReason, Key, ProviderEvent};

/// `AnsweredBy` values that are not a person ("unknown" is a person: a key
/// press proves it anyway).
pub fn is_machine(answered_by: Option<&str>) -> bool {
    answered_by.is_some_and(|a| a.starts_with("machine_") || a == "fax")
}

struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Twilio {
    /// Checks the signature over the raw request; returns its form fields.
    fn verify(&self, req: &Inbound<'_>) -> Result<Form, CallbackError> {
        let sig = req
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| CallbackError::Forged("no X-Twilio-Signature".into()))?;
        let is_json = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if is_json {
            if !signature::valid_json(&self.config.auth_token, req.url, req.body, sig) {
                return Err(CallbackError::Forged("X-Twilio-Signature does not match".into()));
            }
            return Ok(Form(Vec::new()));
        }
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(req.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if !signature::valid_form(&self.config.auth_token, req.url, &form, sig) {
            return Err(CallbackError::Forged("X-Twilio-Signature does not match".into()));
        }
        let form = Form(form);
        if form.get("AccountSid").is_some_and(|a| a != self.config.account_sid) {
            return Err(CallbackError::Forged("signed for another account".into()));
        }
        Ok(form)
    }
}

/// Twilio's retries carry the same idempotency token.
fn token_receipt(req: &Inbound<'_>) -> Option<String> {
    req.headers
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .map(|t| format!("twilio:token:{t}"))
}

fn status_events(form: &Form) -> Vec<ProviderEvent> {
    let machine = is_machine(form.get("AnsweredBy"));
    let talk_secs = form.get("CallDuration").and_then(|d| d.parse().ok());
    let ended = |result, answered| ProviderEvent::Ended { result, answered, key: None, talk_secs };
    match form.get("CallStatus").unwrap_or("") {
        "ringing" => vec![ProviderEvent::Ringing],
        "in-progress" => vec![ProviderEvent::Answered { voicemail: machine }],
        "completed" if machine => vec![ended(EndReason::Voicemail, false)],
        "completed" => vec![ended(EndReason::HungUp, true)],
        "busy" => vec![ended(EndReason::Busy, false)],
        "no-answer" | "canceled" => vec![ended(EndReason::NoAnswer, false)],
        "failed" => vec![ended(EndReason::Failed, false)],
        // queued, initiated: nothing the customer noticed yet.
        _ => Vec::new(),
    }
}

impl ProviderCallbacks for Twilio {
    fn subject(&self, segments: &[String]) -> Result<Subject, CallbackError> {
        match segments {
            [kind, key, action]
                if kind == "calls" && matches!(action.as_str(), "answer" | "gather" | "dial" | "status") =>
            {
                Ok(Subject::Attempt(key.clone()))
            }
            [kind, key, action] if kind == "messages" && action == "status" => {
                Ok(Subject::Message(key.clone()))
            }
            [kind, key, action]
                if kind == "direct"
                    && matches!(action.as_str(), "answer" | "dial" | "status" | "recording") =>
            {
                Ok(Subject::Direct(key.clone()))
            }
            _ => Err(CallbackError::Unknown("no such Twilio callback".into())),
        }
    }

    fn handle(&self, req: &Inbound<'_>, loaded: &Loaded) -> Result<Accepted, CallbackError> {
        let form = self.verify(req)?;
        let mut accepted =
            Accepted { receipts: token_receipt(req).into_iter().collect(), ..Accepted::default() };
        match loaded {
            Loaded::Message(message) => {
                if message.is_none() {
                    return Err(CallbackError::Unknown("no such message".into()));
                }
                let status = form.get("MessageStatus").or(form.get("SmsStatus")).unwrap_or("").to_owned();
                if status.is_empty() {
                    return Err(CallbackError::Invalid("no MessageStatus".into()));
                }
                accepted.message = Some(MessageUpdate {
                    provider_ref: form.get("MessageSid").map(str::to_owned),
                    status,
                    error: form.get("ErrorCode").map(|c| format!("Twilio error {c}")),
                });
                Ok(accepted)
            }
            Loaded::Direct(None) => Err(CallbackError::Unknown("no such direct call".into())),
            Loaded::Direct(Some(dial)) => {
                let action = req.segments.get(2).map(String::as_str).unwrap_or("");
                if let Some(sid) = form.get("CallSid") {
                    accepted.direct.push(DirectUpdate::Placed(sid.to_owned()));
                }
                let key = crate::providers::DirectDialRequest::key(dial.id);
                match action {
                    "answer" => {
                        let recording = dial.record.then(|| self.direct_url(&key, "recording"));
                        accepted.reply = Reply::xml(twiml::direct(
                            &dial.customer_phone,
                            &self.config.from_number,
                            &self.direct_url(&key, "dial"),
                            recording.as_deref(),
                        ));
                    }
                    "dial" => {
                        accepted
                            .direct
                            .push(DirectUpdate::Connected(form.get("DialCallStatus") == Some("completed")));
                        accepted.reply = Reply::xml(twiml::hang_up());
                    }
                    "recording" => {
                        if let (Some("completed"), Some(sid)) =
                            (form.get("RecordingStatus"), form.get("RecordingSid"))
                        {
                            let secs =
                                form.get("RecordingDuration").and_then(|d| d.parse().ok()).unwrap_or(0);
                            accepted.receipts.push(format!("twilio:recording:{sid}"));
                            accepted.direct.push(DirectUpdate::Recorded {
                                recording_ref: sid.to_owned(),
                                duration_secs: secs,
                            });
                        }
                    }
                    _ => {
                        let talk_secs = form.get("CallDuration").and_then(|d| d.parse().ok());
                        let status = form.get("CallStatus").unwrap_or("");
                        if matches!(status, "completed" | "busy" | "no-answer" | "failed" | "canceled") {
                            accepted.direct.push(DirectUpdate::Ended { talk_secs });
                        }
                    }
                }
                Ok(accepted)
            }
            Loaded::Attempt(None) => Err(CallbackError::Unknown("no such attempt".into())),
            Loaded::Attempt(Some(attempt)) => {
                let sid = form.get("CallSid").ok_or_else(|| CallbackError::Invalid("no CallSid".into()))?;
                let action = req.segments.get(2).map(String::as_str).unwrap_or("");
                let ours = attempt.placed.as_ref().is_none_or(|p| p.reference == sid);
                if !ours {
                    // Another call for the same attempt (cannot happen unless
                    // a lost create was placed twice): never let it move the
                    // attempt, and end it.
                    tracing::warn!(attempt_key = %attempt.request.attempt_key, "a second Twilio call for one attempt");
                    accepted.reply =
                        if action == "status" { Reply::empty() } else { Reply::xml(twiml::hang_up()) };
                    return Ok(accepted);
                }
                accepted.placed = Some(Placed { reference: sid.to_owned(), control_url: None });
                let request = &attempt.request;
                let key = &request.attempt_key;
                let gather_url = self.call_url(key, "gather");
                match action {
                    "answer" => {
                        let machine = is_machine(form.get("AnsweredBy"));
                        accepted.events.push(ProviderEvent::Answered { voicemail: machine });
                        accepted.reply = Reply::xml(if machine {
                            twiml::hang_up()
                        } else {
                            twiml::answer(&request.script, &gather_url)
                        });
                    }
                    "gather" => {
                        let key_pressed = form.get("Digits").and_then(|d| {
                            let mut chars = d.chars();
                            chars.next().filter(|_| chars.next().is_none()).and_then(Key::new)
                        });
                        if let Some(k) = key_pressed {
                            accepted.events.push(ProviderEvent::KeyPressed { key: k });
                        }
                        let repeated = req.url.contains("repeat=1");
                        accepted.reply = Reply::xml(twiml::after_key(
                            request,
                            key_pressed,
                            repeated,
                            &gather_url,
                            &self.call_url(key, "dial"),
                            &self.config.from_number,
                        ));
                    }
                    "dial" => {
                        let connected = form.get("DialCallStatus") == Some("completed");
                        accepted.events.push(ProviderEvent::Bridged { connected });
                        accepted.reply = Reply::xml(twiml::after_dial(&request.script, connected));
                    }
                    _ => {
                        if let Some(seq) = form.get("SequenceNumber") {
                            accepted.receipts.push(format!("twilio:{sid}:{seq}"));
                        }
                        accepted.events = status_events(&form);
                    }
                }
                Ok(accepted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_machine;

    #[test]
    fn unknown_is_a_person_and_a_fax_is_not() {
        for (answered_by, machine) in [
            (Some("human"), false),
            (Some("unknown"), false),
            (None, false),
            (Some("machine_start"), true),
            (Some("machine_end_beep"), true),
            (Some("machine_end_silence"), true),
            (Some("machine_end_other"), true),
            (Some("fax"), true),
        ] {
            assert_eq!(is_machine(answered_by), machine, "{answered_by:?}");
        }
    }
}
