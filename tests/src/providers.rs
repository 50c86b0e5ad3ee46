//! A real provider for the end-to-end tests: the server configured with
//! `--telephony`/`--messaging` twilio (or voximplant) against its double on
//! loopback, reached back through a stable public address (a proxy, so a
//! restarted server on a new port keeps the URLs the provider was given).

use crate::server::{quick_policy, stops, today, Configure, Depot, TestServer};
use crate::twilio_double::{self, Pace, TwilioDouble};
use crate::voximplant_double::{self, VoximplantDouble};
use crate::{Phone, Proxy};
use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_core::wire::{Event, EventKind, LineWait};
use callahead_core::{CallStatus, Outcome, StopId};
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::{Behaviour, SimConfig, SimMessagingConfig};
use callahead_server::providers::twilio::TwilioConfig;
use callahead_server::providers::voximplant::VoximplantConfig;
use callahead_server::providers::{ProviderChoice, ProviderConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Twilio,
    Voximplant,
}

pub struct Rig {
    pub kind: Kind,
    /// The public URL the provider calls back (`--public-url`).
    pub public: Proxy,
    pub twilio: Option<TwilioDouble>,
    pub voximplant: Option<VoximplantDouble>,
    pub clock: SharedClock,
}

impl Rig {
    pub async fn start(kind: Kind, speed: f64) -> Rig {
        let clock: SharedClock = Arc::new(ScaledClock::new(crate::server::morning(), speed));
        Self::start_on(kind, clock, Pace::default()).await
    }

    pub async fn start_on(kind: Kind, clock: SharedClock, pace: Pace) -> Rig {
        // Nothing listens on the discard port: the target is set once the
        // server is up.
        let public = Proxy::start("127.0.0.1:9".parse().expect("addr")).await;
        let (twilio, voximplant) = match kind {
            Kind::Twilio => (Some(TwilioDouble::start(clock.clone(), pace).await), None),
            Kind::Voximplant => (None, Some(VoximplantDouble::start(clock.clone(), pace).await)),
        };
        Rig { kind, public, twilio, voximplant, clock }
    }

    pub fn twilio(&self) -> &TwilioDouble {
        self.twilio.as_ref().expect("a Twilio rig")
    }

    pub fn voximplant(&self) -> &VoximplantDouble {
        self.voximplant.as_ref().expect("a Voximplant rig")
    }

    pub fn public_url(&self) -> String {
        format!("http://{}", self.public.addr())
    }

    /// The configuration the server needs for this provider, with `lines`.
    pub fn configure(&self, lines: LineLimits) -> Configure {
        let public_url = self.public_url();
        let mut providers = ProviderConfig::default();
        match self.kind {
            Kind::Twilio => {
                providers.telephony = ProviderChoice::Twilio;
                providers.messaging = ProviderChoice::Twilio;
                providers.twilio = Some(TwilioConfig {
                    account_sid: twilio_double::ACCOUNT_SID.into(),
                    auth_token: twilio_double::AUTH_TOKEN.into(),
                    api_key: Some((twilio_double::API_KEY_SID.into(), twilio_double::API_KEY_SECRET.into())),
                    from_number: twilio_double::FROM_NUMBER.into(),
                    api_base: self.twilio().base_url(),
                    public_url: public_url.clone(),
                    machine_detection: false,
                    request_timeout: Duration::from_secs(5),
                });
            }
            Kind::Voximplant => {
                providers.telephony = ProviderChoice::Voximplant;
                providers.messaging = ProviderChoice::Voximplant;
                providers.voximplant = Some(VoximplantConfig {
                    key: voximplant_double::service_account(),
                    rule_id: voximplant_double::RULE_ID.into(),
                    caller_id: voximplant_double::CALLER_ID.into(),
                    sms_from: None,
                    api_base: self.voximplant().api_base(),
                    public_url: public_url.clone(),
                    request_timeout: Duration::from_secs(5),
                });
            }
        }
        Arc::new(move |config| {
            config.public_url = Some(public_url.clone());
            config.providers = providers.clone();
            config.lines = lines;
        })
    }

    /// Starts the server on this provider and points the public URL at it.
    pub async fn server(&self, lines: LineLimits) -> TestServer {
        let ts = TestServer::start_configured(
            self.clock.clone(),
            SimConfig::default(),
            SimMessagingConfig::default(),
            Some(self.configure(lines)),
        )
        .await;
        self.public.set_target(ts.addr);
        ts
    }

    /// How an operator starts `callahead-server serve` on this provider
    /// (docs/providers.md): the flags, and the credentials in the
    /// environment under the platform's usual names. The API base is the
    /// double's.
    pub fn serve_flags_and_env(&self) -> (Vec<String>, Vec<(String, String)>) {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let (name, base_flag, base, env) = match self.kind {
            Kind::Twilio => (
                "twilio",
                "--twilio-api-base",
                self.twilio().base_url(),
                vec![
                    pair("TWILIO_ACCOUNT_SID", twilio_double::ACCOUNT_SID),
                    pair("TWILIO_AUTH_TOKEN", twilio_double::AUTH_TOKEN),
                    pair("TWILIO_API_KEY_SID", twilio_double::API_KEY_SID),
                    pair("TWILIO_API_KEY_SECRET", twilio_double::API_KEY_SECRET),
                    pair("TWILIO_FROM_NUMBER", twilio_double::FROM_NUMBER),
                ],
            ),
            Kind::Voximplant => {
                let key = voximplant_double::fixtures().join("test-service-account.json");
                (
                    "voximplant",
                    "--voximplant-api-base",
                    self.voximplant().api_base(),
                    vec![
                        pair("VOXIMPLANT_CREDENTIALS", &key.to_string_lossy()),
                        pair("VOXIMPLANT_RULE_ID", voximplant_double::RULE_ID),
                        pair("VOXIMPLANT_CALLER_ID", voximplant_double::CALLER_ID),
                    ],
                )
            }
        };
        let flags =
            ["--telephony", name, "--messaging", name, "--public-url", &self.public_url(), base_flag, &base];
        (flags.iter().map(|f| f.to_string()).collect(), env)
    }

    /// After `ts.restart()`: the provider's URLs reach the new process.
    pub fn reattach(&self, ts: &TestServer) {
        self.public.set_target(ts.addr);
    }

    /// While on, every call waits at the provider just before it ends.
    pub fn hold_ends(&self, on: bool) {
        match self.kind {
            Kind::Twilio => self.twilio().hold_ends(on),
            Kind::Voximplant => self.voximplant().hold_ends(on),
        }
    }

    /// Calls waiting at the provider to end.
    pub fn held(&self) -> usize {
        match self.kind {
            Kind::Twilio => self.twilio().held(),
            Kind::Voximplant => self.voximplant().held(),
        }
    }

    /// Calls over at the provider: ended, their last report sent (Twilio's
    /// final status callback; the scenario's `ended` report and summary).
    pub fn over(&self) -> usize {
        match self.kind {
            Kind::Twilio => self.twilio().calls().iter().filter(|c| c.over).count(),
            Kind::Voximplant => self.voximplant().sessions().iter().filter(|s| s.summary.is_some()).count(),
        }
    }

    /// Final reports of calls (Twilio's status callback with a final
    /// status, the scenario's `ended`) that the server accepted (2xx).
    pub fn end_reports_accepted(&self) -> usize {
        let ok = |status: Option<u16>| status.is_some_and(|s| (200..300).contains(&s));
        match self.kind {
            Kind::Twilio => self
                .twilio()
                .sent()
                .iter()
                .filter(|s| {
                    s.url.ends_with("/status")
                        && s.form.iter().any(|(k, v)| {
                            k == "CallStatus"
                                && matches!(
                                    v.as_str(),
                                    "completed" | "busy" | "no-answer" | "failed" | "canceled"
                                )
                        })
                })
                .filter(|s| ok(s.status))
                .count(),
            Kind::Voximplant => self
                .voximplant()
                .sent()
                .iter()
                .filter(|s| s.body.contains("\"event\":\"ended\"") && ok(s.status))
                .count(),
        }
    }

    /// Requests the double sent the server (callbacks, TwiML fetches, reports).
    pub fn callbacks_sent(&self) -> usize {
        match self.kind {
            Kind::Twilio => self.twilio().sent().len(),
            Kind::Voximplant => self.voximplant().sent().len(),
        }
    }

    /// Those the server did not answer with a 2xx: `{status} {url}`.
    pub fn callbacks_not_accepted(&self) -> Vec<String> {
        let sent: Vec<(Option<u16>, String)> = match self.kind {
            Kind::Twilio => self.twilio().sent().into_iter().map(|s| (s.status, s.url)).collect(),
            Kind::Voximplant => self.voximplant().sent().into_iter().map(|s| (s.status, s.url)).collect(),
        };
        sent.into_iter()
            .filter(|(status, _)| !status.is_some_and(|s| (200..300).contains(&s)))
            .map(|(status, url)| format!("{status:?} {url}"))
            .collect()
    }

    /// How often the provider dialled each number for a smart call.
    pub fn dials_per_number(&self) -> HashMap<String, usize> {
        let numbers: Vec<String> = match self.kind {
            Kind::Twilio => self.twilio().calls().into_iter().map(|c| c.to).collect(),
            Kind::Voximplant => self
                .voximplant()
                .sessions()
                .into_iter()
                .map(|s| s.data["to"].as_str().unwrap_or("").to_owned())
                .collect(),
        };
        let mut out = HashMap::new();
        for n in numbers {
            *out.entry(n).or_insert(0) += 1;
        }
        out
    }

    /// Waits until `done` holds of the provider's double.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Rig) -> bool) {
        match self.kind {
            Kind::Twilio => self.twilio().wait_until(what, |_| done(self).then_some(())).await,
            Kind::Voximplant => self.voximplant().wait_until(what, |_| done(self).then_some(())).await,
        }
    }

    pub fn script(&self, phone: &str, behaviour: Behaviour) {
        match self.kind {
            Kind::Twilio => self.twilio().script(phone, behaviour),
            Kind::Voximplant => self.voximplant().script(phone, behaviour),
        }
    }

    /// Attempt keys of every call the provider created, in order.
    pub fn placed(&self) -> Vec<String> {
        match self.kind {
            Kind::Twilio => self.twilio().calls().into_iter().map(|c| c.attempt_key).collect(),
            Kind::Voximplant => self
                .voximplant()
                .sessions()
                .into_iter()
                .map(|s| s.data["attempt_key"].as_str().unwrap_or("").to_owned())
                .collect(),
        }
    }

    /// What the provider found wrong in the adapter's requests.
    pub fn violations(&self) -> Vec<String> {
        match self.kind {
            Kind::Twilio => self.twilio().violations(),
            Kind::Voximplant => self.voximplant().violations(),
        }
    }

    /// The first text the provider took for `to`.
    pub async fn wait_for_sms(&self, to: &str) -> String {
        match self.kind {
            Kind::Twilio => {
                self.twilio()
                    .wait_until("the SMS", |d| d.sms().into_iter().find(|m| m.to == to).map(|m| m.body))
                    .await
            }
            Kind::Voximplant => {
                self.voximplant()
                    .wait_until("the SMS", |d| d.sms().into_iter().find(|m| m.to == to).map(|m| m.text))
                    .await
            }
        }
    }

    /// Every number the provider dialled, in order, with the caller id shown.
    pub fn all_dialled(&self) -> Vec<(String, String)> {
        match self.kind {
            Kind::Twilio => self
                .twilio()
                .calls()
                .into_iter()
                .flat_map(|c| std::iter::once((c.to.clone(), c.from.clone())).chain(c.dialled))
                .collect(),
            Kind::Voximplant => self.voximplant().sessions().into_iter().flat_map(|s| s.dialled).collect(),
        }
    }

    /// Numbers the provider dialled for the first call, with the caller id.
    pub fn dialled(&self) -> Vec<(String, String)> {
        match self.kind {
            Kind::Twilio => self.twilio().calls().first().map(|c| c.dialled.clone()).unwrap_or_default(),
            Kind::Voximplant => {
                self.voximplant().sessions().first().map(|s| s.dialled[1..].to_vec()).unwrap_or_default()
            }
        }
    }

    /// The caller id the provider shows for this account.
    pub fn caller_id(&self) -> &'static str {
        match self.kind {
            Kind::Twilio => twilio_double::FROM_NUMBER,
            Kind::Voximplant => voximplant_double::CALLER_ID,
        }
    }
}

/// Per attempt, how often each kind of call event reached the courier
/// (`call_finished` under attempt 0).
pub fn events_per_attempt(events: &[Event]) -> HashMap<(u32, String), usize> {
    let mut out = HashMap::new();
    for e in events {
        let attempt = match &e.kind {
            EventKind::Ringing { attempt }
            | EventKind::Answered { attempt }
            | EventKind::KeyPressed { attempt, .. }
            | EventKind::AttemptEnded { attempt, .. } => *attempt,
            EventKind::CallFinished { .. } => 0,
            _ => continue,
        };
        *out.entry((attempt, e.kind.type_name().to_owned())).or_insert(0) += 1;
    }
    out
}

/// The call's status after each event, as a phase (scheduled 0 … decided
/// 4): a status that moves back shows as a drop.
pub fn status_ranks(events: &[Event]) -> Vec<u8> {
    let rank = |s: CallStatus| match s {
        CallStatus::Scheduled => 0,
        CallStatus::Dialing => 1,
        CallStatus::Ringing => 2,
        CallStatus::Answered => 3,
        CallStatus::Finished | CallStatus::Cancelled => 4,
    };
    events.iter().filter_map(|e| e.call.as_ref()).map(|c| rank(c.status)).collect()
}

/// Two couriers tap five calls each, at once, on a server with these line
/// limits (customers' phones tagged `tags`): every call confirms in one
/// attempt, and a courier saw a call wait for a line (`lines_busy`). What
/// the provider saw is the caller's to check.
pub async fn ten_taps_under_line_limits(rig: &Rig, limits: LineLimits, tags: [u32; 2]) {
    let ts = rig.server(limits).await;
    let depot = Depot::create(&ts.api, "Lines", 2, quick_policy()).await;
    let mut couriers = Vec::new();
    for (i, tag) in tags.into_iter().enumerate() {
        let phone = Phone::new(ts.addr, depot.courier_token(i)).await;
        ts.api
            .import_route(&depot.integrator, depot.courier_id(i), today(), stops(tag, 5, ts.now()))
            .await
            .expect("route");
        let ids: Vec<StopId> =
            phone.client().sync_route(today()).await.expect("sync").iter().map(|s| s.stop.id).collect();
        phone.wait_online().await;
        couriers.push((phone, ids));
    }
    for (phone, ids) in &couriers {
        phone.client().request_calls(ids).expect("tap");
    }
    let mut waited = false;
    for (phone, ids) in &couriers {
        let seen = phone.wait_all_terminal(ids).await;
        for id in ids {
            let call = seen.stops[id].call.as_ref().expect("call");
            assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Confirmed), 1));
        }
        waited |= seen
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::WaitingForLine { reason: LineWait::LinesBusy, .. }));
    }
    assert!(waited, "a courier saw a call wait for a line");
}
