//! Server configuration: everything `RunningServer::start` needs, with
//! production defaults; tests swap the clock and the simulator's customers.

use crate::api::limits::RateLimits;
use crate::cascade::CascadeConfig;
use crate::connections::ConnectionLimits;
use crate::outbound::{Resolve, SystemResolver};
use crate::providers::lines::LineLimits;
use crate::providers::simulator::SimConfig;
use crate::providers::simulator::SimMessagingConfig;
use crate::providers::ProviderConfig;
use crate::tokens::TokenLifetimes;
use crate::webhooks::WebhookConfig;
use callahead_core::clock::{SharedClock, SystemClock};
use callahead_core::policy::AttemptPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A domain clock of its own for demos and load tests: `speed` domain seconds
/// per real second from `start` (default: now). Built once the database is
/// open, never earlier than the log's last event, so a restart continues the
/// domain time instead of running it backwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledTime {
    pub speed: f64,
    pub start: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone)]
pub struct ServerConfig {
    /// Tests use `127.0.0.1:0`.
    pub listen: SocketAddr,
    pub db_path: PathBuf,
    /// Bootstraps an admin: its hash is stored (idempotent across restarts).
    pub admin_token: Option<String>,
    pub clock: SharedClock,
    /// When set, replaces `clock` with a scaled clock continuing the log.
    pub scaled_time: Option<ScaledTime>,
    pub simulator: SimConfig,
    /// The embedded messaging provider's behaviour.
    pub messaging: SimMessagingConfig,
    /// The channels for texts to customers, with prices and timeouts.
    pub cascade: CascadeConfig,
    /// How long a reschedule link works after its SMS went out (domain time).
    pub reschedule_ttl: Duration,
    /// Where customers reach this server (`https://callahead.example`): the
    /// base of the links in SMS. Defaults to the bound address.
    pub public_url: Option<String>,
    /// Used for depots created without a policy.
    pub default_policy: AttemptPolicy,
    /// Websocket ping period; a socket silent for twice this is closed.
    pub heartbeat: Duration,
    /// Per-connection outgoing queue bound (events).
    pub ws_queue: usize,
    pub max_body_bytes: usize,
    /// Outbound webhook delivery: timeout, backoff, default attempt limit.
    pub webhooks: WebhookConfig,
    /// The telephony provider's lines: calls per second and at once.
    pub lines: LineLimits,
    /// Which providers carry calls and texts (default: the simulator).
    pub providers: ProviderConfig,
    /// Real time, for what must not speed up with a scaled domain clock:
    /// token lifetimes. Tests inject a `ManualClock`.
    pub wall_clock: SharedClock,
    pub tokens: TokenLifetimes,
    pub connections: ConnectionLimits,
    pub rates: RateLimits,
    /// Networks webhooks may reach although the SSRF policy refuses them
    /// (an operator's own network; docs/security.md).
    pub outbound_allow: Vec<ipnet::IpNet>,
    /// How webhook hosts are resolved (tests map names without DNS).
    pub resolver: Arc<dyn Resolve>,
    /// This node's name among the nodes sharing a PostgreSQL database
    /// (`--node-id`; default a random one). A node restarted under its name
    /// takes its own work back at once (docs/adr/0011).
    pub node_id: Option<String>,
    /// Encrypts webhook secrets at rest (`CALLAHEAD_SECRET_KEY`, and the
    /// previous key during a rotation); without one they are stored in
    /// clear and a warning is logged.
    pub secret_keys: crate::secrets::Keys,
    /// Days a finished route keeps its customers' data, for depots that set
    /// none (docs/security.md).
    pub retention_days: u32,
    /// A bearer token for Prometheus, besides admin tokens (`CALLAHEAD_METRICS_TOKEN`).
    pub metrics_token: Option<String>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, db_path: PathBuf) -> Self {
        Self {
            listen,
            db_path,
            admin_token: None,
            clock: Arc::new(SystemClock),
            scaled_time: None,
            simulator: SimConfig::default(),
            messaging: SimMessagingConfig::default(),
            cascade: CascadeConfig::default(),
            reschedule_ttl: Duration::from_secs(24 * 3600),
            public_url: None,
            default_policy: AttemptPolicy::default(),
            heartbeat: Duration::from_secs(25),
            ws_queue: 256,
            max_body_bytes: 1024 * 1024,
            webhooks: WebhookConfig::default(),
            lines: LineLimits::UNLIMITED,
            providers: ProviderConfig::default(),
            wall_clock: Arc::new(SystemClock),
            tokens: TokenLifetimes::default(),
            connections: ConnectionLimits::default(),
            rates: RateLimits::default(),
            outbound_allow: Vec::new(),
            resolver: Arc::new(SystemResolver),
            node_id: None,
            secret_keys: crate::secrets::Keys::default(),
            metrics_token: None,
            retention_days: 90,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(t) = self.scaled_time {
            if !(t.speed.is_finite() && t.speed > 0.0) {
                return Err(format!("the time scale must be a positive number, got {}", t.speed));
            }
        }
        if self.heartbeat.is_zero() {
            return Err("heartbeat must be longer than zero".into());
        }
        if self.reschedule_ttl.is_zero() {
            return Err("reschedule_ttl must be longer than zero".into());
        }
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err("public_url must start with http:// or https://".into());
        }
        self.cascade.check().map_err(|e| format!("cascade: {e}"))?;
        if self.ws_queue == 0 {
            return Err("ws_queue must be at least 1".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        self.webhooks.check()?;
        self.lines.check().map_err(|e| format!("lines: {e}"))?;
        self.tokens.check()?;
        if !(1..=3650).contains(&self.retention_days) {
            return Err("retention_days must be 1 to 3650".into());
        }
        self.connections.check()?;
        self.rates.check()?;
        if let Some(t) = &self.admin_token {
            if t.trim().chars().count() < crate::tokens::MIN_ADMIN_TOKEN {
                return Err(format!(
                    "the admin token must be at least {} characters (e.g. `openssl rand -base64 32`)",
                    crate::tokens::MIN_ADMIN_TOKEN
                ));
            }
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.trim().chars().count() < crate::tokens::MIN_ADMIN_TOKEN)
        {
            return Err(format!(
                "the metrics token must be at least {} characters",
                crate::tokens::MIN_ADMIN_TOKEN
            ));
        }
        crate::api::admin::check_policy(&self.default_policy)
            .map_err(|e| format!("default_policy: {}", e.message))
    }
}

impl std::fmt::Debug for ServerConfig {
    // The admin token is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("scaled_time", &self.scaled_time)
            .field("db_path", &crate::store::Location::of(&self.db_path))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("messaging", &self.messaging)
            .field("cascade", &self.cascade)
            .field("reschedule_ttl", &self.reschedule_ttl)
            .field("public_url", &self.public_url)
            .field("default_policy", &self.default_policy)
            .field("heartbeat", &self.heartbeat)
            .field("ws_queue", &self.ws_queue)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("webhooks", &self.webhooks)
            .field("lines", &self.lines)
            .field("providers", &self.providers)
            .field("tokens", &self.tokens)
            .field("connections", &self.connections)
            .field("rates", &self.rates)
            .field("outbound_allow", &self.outbound_allow)
            .field("node_id", &self.node_id)
            .field("secret_keys", &self.secret_keys.current.as_ref().map(|_| "<set>"))
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}
