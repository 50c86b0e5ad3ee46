//! A real provider for the end-to-end tests: the server configured with
//! `--telephony`/`--messaging` twilio (or voximplant) against its double on
//! loopback, reached back through a stable public address (a proxy, so a
//! restarted server on a new port keeps the URLs the provider was given).

use crate::server::{Configure, TestServer};
use crate::twilio_double::{self, Pace, TwilioDouble};
use crate::voximplant_double::{self, VoximplantDouble};
use crate::Proxy;
use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::{Behaviour, SimConfig, SimMessagingConfig};
use callahead_server::providers::twilio::TwilioConfig;
use callahead_server::providers::voximplant::VoximplantConfig;
use callahead_server::providers::{ProviderChoice, ProviderConfig};
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

    /// After `ts.restart()`: the provider's URLs reach the new process.
    pub fn reattach(&self, ts: &TestServer) {
        self.public.set_target(ts.addr);
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
