//! The TwiML Callahead answers Twilio with, built from the attempt's stored
//! script: the message inside `<Gather input="dtmf" numDigits="1">`, one
//! repeat on no input, `<Dial>` to the courier for key 0 (the courier sees
//! the robot's number), goodbye and hang-up otherwise.

use crate::providers::{PlaceCall, Script};
use callahead_core::call::{Key, Outcome};

/// Seconds Twilio waits for a key after the message.
const GATHER_TIMEOUT_SECS: u32 = 6;
/// Seconds the courier's phone rings on "talk to the courier".
const DIAL_TIMEOUT_SECS: u32 = 20;

/// Twilio's language tag and a neural voice for a template language.
pub fn voice(language: &str) -> (&'static str, &'static str) {
    match language {
        "ru" => ("ru-RU", "Polly.Tatyana"),
        _ => ("en-US", "Polly.Joanna-Neural"),
    }
}

/// Phrases the templates do not carry: the bridge to the courier.
fn phrase(language: &str, what: Phrase) -> &'static str {
    match (language, what) {
        ("ru", Phrase::Connecting) => "Соединяю с курьером.",
        ("ru", Phrase::CourierBusy) => "Курьер сейчас не может ответить и перезвонит вам.",
        (_, Phrase::Connecting) => "Connecting you to your courier.",
        (_, Phrase::CourierBusy) => "Your courier cannot answer right now and will call you back.",
    }
}

#[derive(Clone, Copy)]
enum Phrase {
    Connecting,
    CourierBusy,
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn document(verbs: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{verbs}</Response>")
}

fn say(script: &Script, text: &str) -> String {
    let (language, voice) = voice(&script.language);
    format!("<Say language=\"{language}\" voice=\"{voice}\">{}</Say>", escape(text))
}

fn gather(script: &Script, action: &str) -> String {
    format!(
        "<Gather input=\"dtmf\" numDigits=\"1\" timeout=\"{GATHER_TIMEOUT_SECS}\" action=\"{}\" method=\"POST\">{}</Gather>",
        escape(action),
        say(script, &script.text)
    )
}

fn goodbye(script: &Script) -> String {
    format!("{}<Hangup/>", say(script, &script.goodbye))
}

/// When the customer answers: the message and the menu, once more after
/// silence, then goodbye. `gather_url` is where Twilio posts the key.
pub fn answer(script: &Script, gather_url: &str) -> String {
    let repeat_url = format!("{gather_url}?repeat=1");
    document(&format!(
        "{}{}{}{}",
        gather(script, gather_url),
        say(script, &script.no_input),
        gather(script, &repeat_url),
        goodbye(script)
    ))
}

/// An answering machine picked up: nothing to say to it.
pub fn hang_up() -> String {
    document("<Hangup/>")
}

/// After a key: goodbye for a choice; the courier for 0; the menu once more
/// for an unmapped key (unless this was the repeat already).
pub fn after_key(
    req: &PlaceCall,
    key: Option<Key>,
    repeated: bool,
    gather_url: &str,
    dial_url: &str,
    caller_id: &str,
) -> String {
    let script = &req.script;
    match key.and_then(Key::outcome) {
        Some(Outcome::WantsCourier) => match &req.bridge_to {
            Some(courier) => document(&format!(
                "{}<Dial callerId=\"{}\" timeout=\"{DIAL_TIMEOUT_SECS}\" action=\"{}\" method=\"POST\"><Number>{}</Number></Dial>",
                say(script, phrase(&script.language, Phrase::Connecting)),
                escape(caller_id),
                escape(dial_url),
                escape(courier)
            )),
            None => document(&goodbye(script)),
        },
        Some(_) => document(&goodbye(script)),
        None if repeated => document(&goodbye(script)),
        None => document(&format!("{}{}", gather(script, &format!("{gather_url}?repeat=1")), goodbye(script))),
    }
}

/// The courier answered their direct call: now the customer, showing the
/// company's number; recorded from the customer's answer, both sides.
pub fn direct(customer: &str, caller_id: &str, dial_url: &str, recording_url: Option<&str>) -> String {
    let record = recording_url.map_or(String::new(), |url| {
        format!(
            " record=\"record-from-answer-dual\" recordingStatusCallback=\"{}\" recordingStatusCallbackMethod=\"POST\" recordingStatusCallbackEvent=\"completed\"",
            escape(url)
        )
    });
    document(&format!(
        "<Dial callerId=\"{}\" timeout=\"{DIAL_TIMEOUT_SECS}\" action=\"{}\" method=\"POST\"{record}><Number>{}</Number></Dial>",
        escape(caller_id),
        escape(dial_url),
        escape(customer)
    ))
}

/// After the bridge to the courier ended (or never connected).
pub fn after_dial(script: &Script, connected: bool) -> String {
    if connected {
        document("<Hangup/>")
    } else {
        document(&format!("{}<Hangup/>", say(script, phrase(&script.language, Phrase::CourierBusy))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callahead_core::{CallId, CourierId};

    fn req(bridge: Option<&str>) -> PlaceCall {
        PlaceCall {
            attempt_key: "call-1-1".into(),
            call_id: CallId(1),
            attempt: 1,
            courier_id: CourierId(1),
            to: "+79160000001".into(),
            script: Script {
                text: "Anna, your order <16001> & more arrives 10:00–11:00. Press 1.".into(),
                no_input: "We did not hear you.".into(),
                goodbye: "Thank you!".into(),
                language: "en".into(),
                keys: Vec::new(),
            },
            bridge_to: bridge.map(str::to_owned),
            ring_timeout_secs: 30,
            machine_detection: false,
            callback_secret: String::new(),
        }
    }

    #[test]
    fn the_answer_gathers_one_key_twice_then_says_goodbye() {
        let xml = answer(&req(None).script, "https://cb.example/g");
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather input=\"dtmf\" numDigits=\"1\""
        ));
        assert_eq!(xml.matches("<Gather ").count(), 2);
        assert!(xml.contains("action=\"https://cb.example/g?repeat=1\""));
        assert!(xml.contains("your order &lt;16001&gt; &amp; more"), "{xml}");
        assert!(xml.contains("language=\"en-US\""));
        assert!(xml.ends_with(
            "<Say language=\"en-US\" voice=\"Polly.Joanna-Neural\">Thank you!</Say><Hangup/></Response>"
        ));
    }

    #[test]
    fn key_zero_dials_the_courier_with_the_robots_number() {
        let k = |c| Key::new(c);
        let xml =
            after_key(&req(Some("+79990000001")), k('0'), false, "g", "https://cb.example/d", "+15005550006");
        assert!(xml.contains("<Dial callerId=\"+15005550006\" timeout=\"20\" action=\"https://cb.example/d\" method=\"POST\"><Number>+79990000001</Number></Dial>"), "{xml}");
        assert!(after_key(&req(None), k('0'), false, "g", "d", "+1").ends_with("<Hangup/></Response>"));
        assert!(!after_key(&req(None), k('1'), false, "g", "d", "+1").contains("<Gather"));
        assert!(
            after_key(&req(None), k('9'), false, "g", "d", "+1").contains("<Gather"),
            "unmapped: the menu again"
        );
        assert!(!after_key(&req(None), k('9'), true, "g", "d", "+1").contains("<Gather"), "only once");
        assert!(after_dial(&req(None).script, false).contains("will call you back"));
    }
}
