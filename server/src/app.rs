//! Starting and stopping the whole server in-process: the CLI, the
//! end-to-end tests, the demo and the load generator all go through
//! [`RunningServer`].

use crate::api;
use crate::cascade::CascadeSender;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::hub::Hub;
use crate::orchestrator::Orchestrator;
use crate::presence::Presence;
use crate::providers::lines::Lines;
use crate::providers::simulator::SimMessaging;
use crate::providers::simulator::Simulator;
use crate::providers::Telephony;
use crate::providers::{Messaging, ProviderStore};
use crate::store::{Readers, Store, StoreError, Writer};
use crate::tasks::Tasks;
use crate::webhooks::Webhooks;
use axum::http::Request;
use callahead_core::clock::SharedClock;
use callahead_core::policy::AttemptPolicy;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

/// Provider reports waiting for the writer; beyond this the provider waits.
const REPORT_QUEUE: usize = 8192;
/// How long a graceful shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);
/// How long it waits for websockets to send their close frames.
const SOCKETS_CLOSE: Duration = Duration::from_secs(5);

/// What every handler sees.
pub struct AppState {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    pub hub: Arc<Hub>,
    pub clock: SharedClock,
    pub orchestrator: Arc<Orchestrator>,
    pub default_policy: AttemptPolicy,
    pub heartbeat: Duration,
    pub ws_queue: usize,
    /// Wakes the campaign runner after an enrollment.
    pub campaigns: Arc<tokio::sync::Notify>,
    pub webhooks: Arc<Webhooks>,
    /// The currency messages are priced in (reports sum in it).
    pub currency: String,
    pub presence: Arc<Presence>,
    /// Real time: token lifetimes (the domain clock may be scaled).
    pub wall_clock: SharedClock,
    pub token_lifetimes: crate::tokens::TokenLifetimes,
    pub limiters: Arc<crate::api::limits::Limiters>,
    pub sockets: Arc<crate::sockets::Sockets>,
    pub connections: crate::connections::ConnectionLimits,
    pub metrics_token: Option<String>,
    /// Retention for depots that set none.
    pub retention_days: u32,
    /// The request body limit (stated in every 413).
    pub max_body_bytes: usize,
    /// The text-message provider (its receipts come back on
    /// `/v1/providers/{name}/messages/…`).
    pub messaging: Arc<dyn Messaging>,
    /// Where providers reach this server: the base of the URLs they sign.
    pub public_url: String,
}

pub struct RunningServer {
    addr: SocketAddr,
    simulator: Arc<Simulator>,
    messaging: Arc<SimMessaging>,
    store: Arc<Store>,
    hub: Arc<Hub>,
    sockets: Arc<crate::sockets::Sockets>,
    tasks: Arc<Tasks>,
    stop_http: oneshot::Sender<()>,
    http: JoinHandle<()>,
    wall_clock: SharedClock,
    clock: SharedClock,
    retention_days: u32,
    claims: Arc<crate::store::leases::Claims>,
}

impl RunningServer {
    /// Migrates the database, recovers interrupted calls, binds, and spawns
    /// the HTTP server, the scheduler and the provider-report loop.
    pub async fn start(mut config: ServerConfig) -> Result<RunningServer, ServerError> {
        config.check().map_err(ServerError::Config)?;
        config.simulator.validate().map_err(|e| ServerError::Config(format!("simulator: {e}")))?;
        let db_err = |source: StoreError| ServerError::Database { path: config.db_path.clone(), source };

        // Installed first: what happens before the first scrape counts too.
        let _ = crate::metrics::handle();
        let hub = Hub::new();
        let (path, h) = (config.db_path.clone(), hub.clone());
        let store = tokio::task::spawn_blocking(move || Store::open(&path, h))
            .await
            .map_err(|e| db_err(StoreError::Aborted(e.to_string())))?
            .map_err(db_err)?;
        let store = Arc::new(store);
        // Which node acts on which shared work (docs/adr/0011).
        let (s, wall, node) = (store.clone(), config.wall_clock.clone(), config.node_id.clone());
        let claims = tokio::task::spawn_blocking(move || s.claims(wall, node))
            .await
            .map_err(|e| db_err(StoreError::Aborted(e.to_string())))?
            .map_err(db_err)?;
        if let Some(scaled) = config.scaled_time {
            let last =
                store.readers.read(|c| crate::store::queries::last_event_at(c)).await.map_err(db_err)?;
            let start = scaled.start.unwrap_or_else(chrono::Utc::now);
            let origin = last.map_or(start, |l| l.max(start));
            config.clock = Arc::new(callahead_core::clock::ScaledClock::new(origin, scaled.speed));
        }

        // The variable is the truth: a changed or unset token stops working.
        let (token, now) = (config.admin_token.clone(), config.wall_clock.now());
        let replaced = store
            .writer
            .write(move |tx| crate::tokens::bootstrap_admin(tx, token.as_deref(), now))
            .await
            .map_err(db_err)?;
        if replaced > 0 {
            tracing::info!(
                replaced,
                "bootstrap admin token replaced (CALLAHEAD_ADMIN_TOKEN changed or unset)"
            );
        }

        // Bound before the providers are built: their callback URLs default
        // to this address. Nothing is served before recovery has run.
        let listener = crate::connections::bind(config.listen)
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let addr =
            listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let (reports_tx, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let simulator = Simulator::new(config.simulator.clone(), config.clock.clone(), reports_tx);
        let sim_messaging = SimMessaging::new(config.messaging.clone());
        let provider_store = ProviderStore {
            writer: store.writer.clone(),
            readers: store.readers.clone(),
            clock: config.clock.clone(),
        };
        let (telephony, messaging) = crate::providers::build(
            &config.providers,
            &public_url,
            &provider_store,
            &simulator,
            &sim_messaging,
        )
        .map_err(ServerError::Config)?;
        // Counted for /metrics, whichever provider it is.
        let telephony: Arc<dyn Telephony> = Arc::new(crate::metered::MeteredTelephony(telephony));
        let messaging: Arc<dyn Messaging> = Arc::new(crate::metered::MeteredMessaging(messaging));
        let tasks = Arc::new(Tasks::default());
        let orchestrator = Orchestrator::new(
            store.writer.clone(),
            store.readers.clone(),
            config.clock.clone(),
            telephony,
            Lines::new(config.lines),
            tasks.clone(),
            claims.clone(),
        );
        orchestrator.recover().await.map_err(db_err)?;
        let webhooks = Webhooks::new(
            store.writer.clone(),
            store.readers.clone(),
            config.clock.clone(),
            hub.clone(),
            tasks.clone(),
            config.webhooks.clone(),
            crate::webhooks::Security {
                guard: crate::outbound::Guard::new(config.resolver.clone(), config.outbound_allow.clone()),
                keys: config.secret_keys.clone(),
                claims: claims.clone(),
            },
        )
        .map_err(ServerError::Config)?;
        if config.secret_keys.current.is_none() {
            tracing::warn!("CALLAHEAD_SECRET_KEY is not set: webhook secrets are stored in clear");
        }
        let resealed = webhooks.reseal_all().await.map_err(db_err)?;
        if resealed > 0 {
            tracing::info!(resealed, "webhook secrets encrypted under the current key");
        }
        // Every endpoint resumes from its durable cursor.
        webhooks.start_all().await.map_err(db_err)?;

        let campaign_wake = Arc::new(tokio::sync::Notify::new());
        let ghosts =
            crate::presence::close_after_crash(&store.writer, &config.clock).await.map_err(db_err)?;
        if ghosts > 0 {
            tracing::info!(apps = ghosts, "apps connected when the previous process stopped are now offline");
        }
        let (presence, record_presence) = Presence::new(store.writer.clone(), config.clock.clone());
        tasks.spawn(record_presence);
        let limiters = Arc::new(crate::api::limits::Limiters::new(&config.rates));
        let l = limiters.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                l.forget_idle();
            }
        });
        let sockets = crate::sockets::Sockets::new();
        let state = Arc::new(AppState {
            writer: store.writer.clone(),
            readers: store.readers.clone(),
            hub: hub.clone(),
            clock: config.clock.clone(),
            orchestrator: orchestrator.clone(),
            default_policy: config.default_policy.clone(),
            heartbeat: config.heartbeat,
            ws_queue: config.ws_queue,
            campaigns: campaign_wake.clone(),
            webhooks,
            currency: config.cascade.currency.clone(),
            presence,
            wall_clock: config.wall_clock.clone(),
            token_lifetimes: config.tokens.clone(),
            limiters,
            sockets: sockets.clone(),
            connections: config.connections.clone(),
            metrics_token: config.metrics_token.clone(),
            retention_days: config.retention_days,
            max_body_bytes: config.max_body_bytes,
            messaging: messaging.clone(),
            public_url: public_url.clone(),
        });
        // The span names method and path only: query strings may carry
        // `access_token` and are never logged, nor is a reschedule link's token.
        let trace = TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let path = req.uri().path();
            let path = if path.starts_with("/r/") { "/r/{token}" } else { path };
            tracing::info_span!("http", method = %req.method(), path = %path)
        });
        let app = api::router(state, config.max_body_bytes, config.connections.request_timeout).layer(trace);

        let ttl = chrono::Duration::from_std(config.reschedule_ttl)
            .map_err(|_| ServerError::Config("reschedule_ttl is too long".into()))?;
        let sender = Arc::new(CascadeSender {
            writer: store.writer.clone(),
            readers: store.readers.clone(),
            clock: config.clock.clone(),
            messaging,
            config: config.cascade.clone(),
            link_base: public_url,
            link_ttl: ttl,
            wake: orchestrator.offers(),
            claims: claims.clone(),
        });
        // Also sends what a previous process committed but did not send.
        tasks.spawn(sender.run());

        tasks.spawn(
            crate::campaigns::CampaignRunner::new(
                store.writer.clone(),
                store.readers.clone(),
                config.clock.clone(),
                campaign_wake,
                orchestrator.clone(),
            )
            .run(),
        );
        tasks.spawn(crate::retention::run(
            store.writer.clone(),
            store.readers.clone(),
            config.clock.clone(),
            config.retention_days,
        ));
        tasks.spawn(orchestrator.clone().run_scheduler());
        tasks.spawn(orchestrator.clone().run_takeover());
        tasks.spawn(orchestrator.run_reports(reports_rx));

        let (stop_http, stopped) = oneshot::channel::<()>();
        let http =
            tokio::spawn(crate::connections::serve(listener, app, config.connections.clone(), stopped));
        tracing::info!(%addr, "callahead server listening");
        Ok(RunningServer {
            addr,
            simulator,
            messaging: sim_messaging,
            store,
            hub,
            sockets,
            tasks,
            stop_http,
            http,
            wall_clock: config.wall_clock.clone(),
            clock: config.clock.clone(),
            retention_days: config.retention_days,
            claims,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn simulator(&self) -> Arc<Simulator> {
        self.simulator.clone()
    }

    /// The embedded messaging provider: what was sent to customers, by channel.
    pub fn messaging(&self) -> Arc<SimMessaging> {
        self.messaging.clone()
    }

    /// Makes `token` expire now (ops: end a lost phone's session; tests:
    /// exercise `token_expired`). Returns whether the token exists.
    pub async fn expire_token(&self, token: &str) -> Result<bool, StoreError> {
        let (hash, now) = (crate::auth::hash(token), self.wall_clock.now());
        self.store.writer.write(move |tx| crate::store::tokens::expire(tx, &hash, now)).await
    }

    /// Erases the customer data past every depot's retention now (the
    /// server also does it every hour); how many stops.
    pub async fn apply_retention(&self) -> Result<usize, StoreError> {
        crate::retention::apply(
            &self.store.writer,
            &self.store.readers,
            self.retention_days,
            self.clock.now(),
        )
        .await
    }

    /// Open websockets.
    pub fn open_sockets(&self) -> usize {
        self.sockets.open_count()
    }

    /// Stops in order: websockets get an `Error{unavailable}` frame and a
    /// close with code 1001 "going away" (clients resume from their cursor
    /// elsewhere or later), HTTP stops accepting and drains its requests,
    /// background work stops, the writer commits what it has. Calls in
    /// flight are recovered on the next start.
    pub async fn shutdown(self) {
        self.hub.close();
        if !self.sockets.all_closed(SOCKETS_CLOSE).await {
            tracing::warn!(open = self.sockets.open_count(), "websockets still open after their close");
        }
        let _ = self.stop_http.send(());
        let mut http = self.http;
        if tokio::time::timeout(DRAIN, &mut http).await.is_err() {
            tracing::warn!("requests still running after the drain period; aborting them");
            http.abort();
        }
        self.tasks.abort_all();
        // The other nodes take this node's work over at once, not after
        // its leases lapse (docs/adr/0011).
        if let Err(e) = self.claims.leave().await {
            tracing::warn!(error = %e, "cannot release this node's leases; they lapse by themselves");
        }
        let store = self.store;
        let checkpoints = store.take_checkpoint_thread();
        if let Some(thread) = store.take_thread() {
            drop(store);
            // The writer ends once the last sender is gone; do not wait for
            // a straggler holding one.
            let join = tokio::task::spawn_blocking(move || thread.join());
            let _ = tokio::time::timeout(Duration::from_secs(5), join).await;
        }
        if let Some(thread) = checkpoints {
            let join = tokio::task::spawn_blocking(move || thread.join());
            let _ = tokio::time::timeout(Duration::from_secs(5), join).await;
        }
        tracing::info!("callahead server stopped");
    }

    /// Abrupt stop, like a crash: nothing more is committed, every task is
    /// aborted now. A restart on the same database recovers.
    pub fn kill(self) {
        self.store.writer.kill();
        self.hub.close();
        self.tasks.abort_all();
        self.http.abort();
    }
}
