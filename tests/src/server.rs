//! The real server, in-process on an ephemeral loopback port, over a SQLite
//! file in a temp dir, with a time-scaled clock so minutes of call policy
//! pass in a fraction of a second.

use crate::Api;
use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{self, Money, StopInput};
use callahead_core::CourierId;
use callahead_server::providers::simulator::SimConfig;
use callahead_server::providers::simulator::SimMessagingConfig;
use callahead_server::{RunningServer, ServerConfig};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub const ADMIN: &str = "test-admin-token-0123456789-abcdefghij";

/// 10:00 in Moscow on the test day: inside calling hours.
pub fn morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 7, 0, 0).single().expect("valid time")
}

/// A node id naming the server on `db` (one per test server, the same
/// across its restarts).
fn node_id(db: &std::path::Path) -> String {
    // FNV-1a: short and stable; the names only need to differ per database.
    let hash = db
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("test-{hash:016x}")
}

pub fn today() -> NaiveDate {
    morning().date_naive()
}

/// Changes the server's configuration before every start (and restart).
pub type Configure = Arc<dyn Fn(&mut ServerConfig) + Send + Sync>;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub clock: SharedClock,
    pub sim: SimConfig,
    /// The SMS provider's behaviour; change it before a restart.
    pub messaging: SimMessagingConfig,
    pub server: Option<RunningServer>,
    pub api: Api,
    pub addr: SocketAddr,
    pub configure: Option<Configure>,
}

impl TestServer {
    /// Starts a server whose domain time runs `speed` times faster than real.
    pub async fn start(speed: f64, sim: SimConfig) -> TestServer {
        Self::start_with(speed, sim, SimMessagingConfig::default()).await
    }

    /// [`TestServer::start`] with an SMS provider that behaves as told.
    pub async fn start_with(speed: f64, sim: SimConfig, messaging: SimMessagingConfig) -> TestServer {
        Self::start_on(Arc::new(ScaledClock::new(morning(), speed)), sim, messaging).await
    }

    /// A server on the given clock (a `WarpClock` for tests that span days).
    pub async fn start_on(clock: SharedClock, sim: SimConfig, messaging: SimMessagingConfig) -> TestServer {
        Self::start_configured(clock, sim, messaging, None).await
    }

    /// A server whose configuration `configure` changes (a real provider).
    pub async fn start_configured(
        clock: SharedClock,
        sim: SimConfig,
        messaging: SimMessagingConfig,
        configure: Option<Configure>,
    ) -> TestServer {
        crate::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let server = Self::boot(
            &callahead_server::store::scratch::database_in(dir.path(), "server.db"),
            clock.clone(),
            sim.clone(),
            messaging.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            configure.as_ref(),
        )
        .await;
        let addr = server.addr();
        TestServer {
            api: Api::new(server.base_url()),
            dir,
            clock,
            sim,
            messaging,
            server: Some(server),
            addr,
            configure,
        }
    }

    async fn boot(
        db: &std::path::Path,
        clock: SharedClock,
        sim: SimConfig,
        messaging: SimMessagingConfig,
        listen: SocketAddr,
        configure: Option<&Configure>,
    ) -> RunningServer {
        let mut config = ServerConfig::new(listen, db.to_path_buf());
        config.admin_token = Some(ADMIN.to_string());
        config.clock = clock;
        config.simulator = sim;
        config.messaging = messaging;
        config.heartbeat = std::time::Duration::from_secs(2);
        // The tests' webhook receivers listen on loopback.
        config.outbound_allow = callahead_server::outbound::loopback();
        // No DNS here: every webhook host is this machine.
        config.resolver = std::sync::Arc::new(callahead_server::outbound::StaticResolver::everything_to(
            std::net::Ipv4Addr::LOCALHOST.into(),
        ));
        // Several nodes on PostgreSQL: a restart comes back under the same
        // name and takes its own work back at once, as `--node-id` does.
        config.node_id = Some(node_id(db));
        if let Some(configure) = configure {
            configure(&mut config);
        }
        RunningServer::start(config).await.expect("server starts")
    }

    /// The server's `--db`: a file, or a PostgreSQL URL when the suite runs
    /// on PostgreSQL (`store::scratch`).
    pub fn db_path(&self) -> PathBuf {
        callahead_server::store::scratch::database_in(self.dir.path(), "server.db")
    }

    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// A crash: every task aborted at once, nothing flushed beyond what was
    /// committed.
    pub fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill();
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts again over the same database file (on a new port: point a
    /// [`crate::Proxy`] at [`TestServer::addr`] again).
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "kill or shut down first");
        let server = Self::boot(
            &self.db_path(),
            self.clock.clone(),
            self.sim.clone(),
            self.messaging.clone(),
            "127.0.0.1:0".parse().expect("addr"),
            self.configure.as_ref(),
        )
        .await;
        self.addr = server.addr();
        self.api = Api::new(server.base_url());
        self.server = Some(server);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// One depot with couriers, tokens and routes, made over the API.
pub struct Depot {
    pub depot: wire::Depot,
    pub integrator: String,
    pub supervisor: String,
    pub couriers: Vec<wire::CreatedCourier>,
}

impl Depot {
    pub async fn create(api: &Api, name: &str, couriers: usize, policy: AttemptPolicy) -> Depot {
        let depot = api.create_depot(ADMIN, name, Some(policy)).await;
        let integrator = api.create_integrator(ADMIN, depot.id, &format!("{name} CRM")).await.token;
        let supervisor = api.create_supervisor(ADMIN, depot.id, &format!("{name} dispatcher")).await.token;
        let mut cs = Vec::new();
        for i in 0..couriers {
            cs.push(api.create_courier(ADMIN, depot.id, &format!("{name} courier {i}")).await);
        }
        Depot { depot, integrator, supervisor, couriers: cs }
    }

    pub fn courier_token(&self, i: usize) -> &str {
        &self.couriers[i].token
    }

    pub fn courier_id(&self, i: usize) -> CourierId {
        self.couriers[i].courier.id
    }
}

/// A fast policy for tests: 3 attempts a minute apart, 30 s of ringing.
pub fn quick_policy() -> AttemptPolicy {
    AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 60,
        ring_timeout_secs: 30,
        ..AttemptPolicy::default()
    }
}

/// `n` stops whose delivery windows start within the next hour of `from`;
/// phones are `+7999{tag}{i:04}` so tests can script customers by phone.
pub fn stops(tag: u32, n: usize, from: DateTime<Utc>) -> Vec<StopInput> {
    (0..n)
        .map(|i| StopInput {
            external_id: format!("ORD-{tag}-{i}"),
            customer_name: format!("Customer {tag}-{i}"),
            phone: phone(tag, i),
            time_zone: "Europe/Moscow".into(),
            address: format!("Tverskaya {i}, Moscow"),
            window_start: from + Duration::minutes(10 + 5 * i as i64),
            window_end: from + Duration::minutes(70 + 5 * i as i64),
            order_numbers: vec![format!("{}", 16000 + i)],
            amount: Some(Money { minor: 150_000, currency: "RUB".into() }),
            location: None,
            language: None,
        })
        .collect()
}

pub fn phone(tag: u32, i: usize) -> String {
    format!("+7999{tag:03}{i:04}")
}

/// Makes `token` expired, as if its lifetime had passed.
pub async fn expire_token(ts: &TestServer, token: &str) {
    let found = ts.running().expire_token(token).await.expect("token expired");
    assert!(found, "the token exists");
}
