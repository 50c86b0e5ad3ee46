//! A real provider for the end-to-end tests: the server configured with
//! `--telephony`/`--messaging` twilio (or voximplant) against its double on
//! loopback, reached back through a stable public address (a proxy, so a
//! restarted server on a new port keeps the URLs the provider was given).

use crate::server::{Configure, TestServer};
use crate::twilio_double::{self, Pace, TwilioDouble};
use crate::Proxy;
use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::{Behaviour, SimConfig, SimMessagingConfig};
use callahead_server::providers::twilio::TwilioConfig;
use callahead_server::providers::{ProviderChoice, ProviderConfig};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Twilio,
}

pub struct Rig {
    pub kind: Kind,
    /// The public URL the provider calls back (`--public-url`).
    pub public: Proxy,
    pub twilio: Option<TwilioDouble>,
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
        let twilio = match kind {
            Kind::Twilio => Some(TwilioDouble::start(clock.clone(), pace).await),
        };
        Rig { kind, public, twilio, clock }
    }

    pub fn twilio(&self) -> &TwilioDouble {
        self.twilio.as_ref().expect("a Twilio rig")
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
        }
    }

    /// Attempt keys of every call the provider created, in order.
    pub fn placed(&self) -> Vec<String> {
        match self.kind {
            Kind::Twilio => self.twilio().calls().into_iter().map(|c| c.attempt_key).collect(),
        }
    }

    /// What the provider found wrong in the adapter's requests.
    pub fn violations(&self) -> Vec<String> {
        match self.kind {
            Kind::Twilio => self.twilio().violations(),
        }
    }
}
