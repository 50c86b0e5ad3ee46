//! The offline-first courier client.
//!
//! SQLite on the phone is the source of truth (stops, call snapshots, the
//! outbox of taps, the event cursor). A tap is stored before anything else
//! happens; one task (the dispatcher, [`outbox`]) sends taps while fewer than
//! [`crate::MAX_ACTIVE_CALLS_PER_COURIER`] calls are active, and one task
//! ([`subscription`]) owns the websocket, applying each event and advancing
//! the cursor in one transaction. The client owns its tokio runtime, so its
//! async methods work from any executor (uniffi's foreign ones included).

mod auto;
mod backoff;
mod credentials;
mod db;
mod error;
mod http;
mod listener;
mod outbox;
mod position;
mod subscription;

pub use crate::auto_call::AutoCallAhead;
pub use crate::planning::{PlanSettings, WindowFit};
pub use error::ClientError;
pub use listener::{ClientListener, ConnectionState, OutboxState, PlannedStop, StopState, Timeline};

use crate::ids::{CallId, StopId};
use crate::wire::{DirectCall, GeoPoint, LogDirectCall};
use chrono::{DateTime, NaiveDate, Utc};
use db::{Db, LocalCancel};
use error::{Error, Result};
use http::Http;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How long `cancel` waits for a request already on its way to be answered.
const CANCEL_WAIT_FOR_SEND: Duration = Duration::from_secs(30);
/// How long a withdrawn request is remembered in case its call turns up.
const WITHDRAWN_KEPT: chrono::Duration = chrono::Duration::days(7);
/// How long closing waits for the client's tasks to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ClientConfig {
    pub db_path: PathBuf,
    /// `http://host:port`; the websocket URL is derived from it.
    pub server_url: String,
    /// The courier's bearer (access) token.
    pub token: String,
    /// Exchanged for a new pair before `token` expires (`CreatedCourier`'s
    /// `refresh_token`); without it the app signs in again at expiry.
    pub refresh_token: Option<String>,
    /// When `token` expires, if known (else learnt from the server).
    pub token_expires_at: Option<DateTime<Utc>>,
    /// First reconnect / resend delay.
    pub reconnect_min: Duration,
    /// Longest reconnect / resend delay.
    pub reconnect_max: Duration,
    /// No frame (not even a ping) for this long means the connection is dead.
    pub heartbeat_timeout: Duration,
    /// The time automatic call-ahead compares ETAs with (the system clock;
    /// a scaled one in tests and demos).
    pub clock: crate::clock::SharedClock,
    /// The least time between two positions sent to the server.
    pub position_every: Duration,
}

impl ClientConfig {
    pub fn new(db_path: impl Into<PathBuf>, server_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            db_path: db_path.into(),
            server_url: server_url.into(),
            token: token.into(),
            refresh_token: None,
            token_expires_at: None,
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(60),
            clock: Arc::new(crate::clock::SystemClock),
            position_every: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    // The token must not end up in logs or crash reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("db_path", &self.db_path)
            .field("server_url", &self.server_url)
            .field("token", &"<redacted>")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("token_expires_at", &self.token_expires_at)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("clock_speed", &self.clock.speed())
            .field("position_every", &self.position_every)
            .finish()
    }
}

/// State shared by the public handle and the client's tasks.
pub(crate) struct Shared {
    config: ClientConfig,
    db: Arc<Db>,
    http: Http,
    listener: Arc<dyn ClientListener>,
    connection: watch::Sender<ConnectionState>,
    /// Something may be sendable now: a tap, a freed slot, a reconnect.
    dispatch_wake: Notify,
    /// Connect now instead of waiting out the backoff (a route was synced).
    ws_wake: Notify,
    /// Look at automatic call-ahead again: settings, route, order or
    /// position changed.
    auto_wake: Notify,
    /// A new position waits to be sent.
    position_wake: Notify,
    /// Bumped whenever a send finishes, however it ended.
    send_finished: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn open(config: ClientConfig, listener: Arc<dyn ClientListener>) -> Result<Arc<Shared>> {
        let db = Arc::new(Db::open(&config.db_path)?);
        let resumed = db.requeue_interrupted()?;
        if resumed > 0 {
            tracing::info!(resumed, "resending call requests interrupted by the last shutdown");
        }
        db.purge_withdrawn(Utc::now() - WITHDRAWN_KEPT)?;
        let session = credentials::Session::open(
            db.clone(),
            &config.token,
            config.refresh_token.as_deref(),
            config.token_expires_at,
        )?;
        let http = Http::new(&config.server_url, Arc::new(session))?;
        Ok(Arc::new(Shared {
            config,
            db,
            http,
            listener,
            connection: watch::channel(ConnectionState::Offline).0,
            dispatch_wake: Notify::new(),
            ws_wake: Notify::new(),
            auto_wake: Notify::new(),
            position_wake: Notify::new(),
            send_finished: watch::channel(0).0,
            shutdown: watch::channel(false).0,
        }))
    }

    fn set_connection(&self, state: ConnectionState) {
        let changed = self.connection.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if changed {
            self.listener.on_connection_changed(state);
        }
    }

    fn notify_stop(&self, state: Option<StopState>) {
        if let Some(state) = state {
            self.listener.on_stop_changed(state);
        }
    }

    async fn sync_route(self: &Arc<Self>, date: NaiveDate) -> Result<Vec<StopState>> {
        let route = self.http.my_route(date).await?;
        let (states, withdrawn) = self.db.store_route(&route)?;
        self.cancel_withdrawn(withdrawn);
        for s in &states {
            self.listener.on_stop_changed(s.clone());
        }
        if *self.connection.borrow() != ConnectionState::Online {
            self.ws_wake.notify_one();
        }
        self.dispatch_wake.notify_one();
        self.auto_wake.notify_one();
        Ok(states)
    }

    async fn cancel(self: &Arc<Self>, stop_id: StopId) -> Result<StopState> {
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT_FOR_SEND;
        loop {
            let mut sent = self.send_finished.subscribe();
            match self.db.cancel_local(stop_id, self.config.clock.now())? {
                LocalCancel::Removed(state) => {
                    self.listener.on_stop_changed(state.clone());
                    return Ok(state);
                }
                LocalCancel::InFlight => {
                    // The server may be placing the call right now; cancel
                    // the call it returns rather than guess.
                    tokio::time::timeout_at(deadline, sent.changed())
                        .await
                        .map_err(|_| Error::Timeout("the call request is still on its way"))?
                        .map_err(|_| Error::Closed)?;
                }
                LocalCancel::NothingQueued(state) => {
                    let Some(call) = state.call.as_ref().filter(|c| c.status.is_active()) else {
                        return Ok(state);
                    };
                    let call = self.http.cancel_call(call.id).await?;
                    let state = self.db.store_call(&call)?.unwrap_or(state);
                    self.listener.on_stop_changed(state.clone());
                    self.dispatch_wake.notify_one();
                    return Ok(state);
                }
            }
        }
    }

    /// Cancels on the server calls whose requests the courier withdrew while
    /// not knowing they had arrived. Best effort: this runs when the call has
    /// just been seen, so the server is reachable.
    fn cancel_withdrawn(self: &Arc<Self>, calls: Vec<CallId>) {
        for id in calls {
            let shared = self.clone();
            tokio::spawn(async move {
                match shared.http.cancel_call(id).await {
                    Ok(call) => match shared.db.store_call(&call) {
                        Ok(state) => shared.notify_stop(state),
                        Err(e) => tracing::warn!(call = %id, "storing a withdrawn call failed: {e}"),
                    },
                    Err(e) => tracing::warn!(call = %id, "cancelling a withdrawn call failed: {e}"),
                }
            });
        }
    }

    /// Resolves when the client is closing.
    async fn closing(&self) {
        let mut rx = self.shutdown.subscribe();
        // An error means the sender is gone, which is closing too.
        let _ = rx.wait_for(|closing| *closing).await;
    }
}

/// The courier client. Cheap to call from any thread; `close` (or drop) stops
/// its tasks.
pub struct Client {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Client {
    /// Opens (creating or migrating) the database, then starts the websocket
    /// task and the dispatcher, which resumes any taps left from a previous run.
    pub fn open(config: ClientConfig, listener: Arc<dyn ClientListener>) -> Result<Client, ClientError> {
        Ok(Self::open_inner(config, listener)?)
    }

    fn open_inner(config: ClientConfig, listener: Arc<dyn ClientListener>) -> Result<Client> {
        let shared = Shared::open(config, listener)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("callahead-client")
            .enable_all()
            .build()?;
        runtime.spawn(subscription::run(shared.clone()));
        runtime.spawn(outbox::run(shared.clone()));
        runtime.spawn(auto::run(shared.clone()));
        runtime.spawn(position::run(shared.clone()));
        Ok(Client { shared, runtime: Some(runtime) })
    }

    /// Fetches the courier's route for `date`, stores it (with each stop's
    /// latest call) and makes it the current route.
    pub async fn sync_route(&self, date: NaiveDate) -> Result<Vec<StopState>, ClientError> {
        let shared = self.shared.clone();
        self.run(async move { shared.sync_route(date).await }).await
    }

    /// The current route as stored locally, in route order; works offline.
    pub fn stops(&self) -> Result<Vec<StopState>, ClientError> {
        Ok(self.shared.db.stops()?)
    }

    /// What "call the next hour" calls: stops the courier reaches within
    /// `minutes` of `now` by the planned order's ETAs (an early arrival counts
    /// when the window opens), whose window is not over, not visited, and
    /// with no call yet (or only a cancelled one) and nothing queued.
    pub fn stops_due_within(&self, now: DateTime<Utc>, minutes: u32) -> Result<Vec<StopState>, ClientError> {
        Ok(self.shared.db.stops_due_within(now, minutes)?)
    }

    /// The route in the courier's planned order with each stop's ETA and how
    /// it fits the delivery window, leaving `origin` (the courier's position,
    /// when known) at `now`. Works offline.
    pub fn planned(
        &self,
        now: DateTime<Utc>,
        origin: Option<GeoPoint>,
    ) -> Result<Vec<PlannedStop>, ClientError> {
        Ok(self.shared.db.planned(now, origin)?)
    }

    /// The courier's own order for the current route: every stop exactly
    /// once. Stored at once (works offline), sent to the server in the
    /// background, where the supervisor sees it. Returns the reordered route.
    pub fn reorder(&self, stop_ids: &[StopId]) -> Result<Vec<StopState>, ClientError> {
        let states = self.shared.db.reorder(stop_ids)?;
        for s in &states {
            self.shared.listener.on_stop_changed(s.clone());
        }
        self.shared.dispatch_wake.notify_one();
        self.shared.auto_wake.notify_one();
        Ok(states)
    }

    /// Marks a stop done (or not): a visited stop leaves the ETA chain and
    /// is never "due". Local to this phone.
    pub fn set_visited(&self, stop_id: StopId, visited: bool) -> Result<StopState, ClientError> {
        let state = self.shared.db.set_visited(stop_id, visited)?;
        self.shared.listener.on_stop_changed(state.clone());
        self.shared.auto_wake.notify_one();
        Ok(state)
    }

    /// The stop's story for the "why" screen: every event about it this
    /// phone applied (kept across restarts, readable offline) and a tap
    /// still waiting to be sent.
    pub fn timeline(&self, stop_id: StopId) -> Result<Timeline, ClientError> {
        Ok(self.shared.db.timeline(stop_id)?)
    }

    /// Logs a call the courier made themselves (a site pass, a gate code) on
    /// the stop's history and the server's audit. Needs the network: the
    /// courier is on the phone anyway, and an error says to retry.
    pub async fn log_direct_call(&self, stop_id: StopId, note: String) -> Result<DirectCall, ClientError> {
        let body = LogDirectCall {
            stop_id,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            note,
            // The server's clock, not the phone's (which may be off).
            called_at: None,
        };
        let shared = self.shared.clone();
        self.run(async move { shared.http.log_direct_call(&body).await }).await
    }

    pub fn plan_settings(&self) -> Result<PlanSettings, ClientError> {
        Ok(self.shared.db.plan_settings()?)
    }

    /// Service time, speed and default leg used for ETAs; stored locally.
    pub fn set_plan_settings(&self, settings: PlanSettings) -> Result<(), ClientError> {
        Ok(self.shared.db.set_plan_settings(&settings)?)
    }

    /// Automatic call-ahead: off until the courier switches it on.
    pub fn auto_call_ahead(&self) -> Result<AutoCallAhead, ClientError> {
        Ok(self.shared.db.auto_settings()?)
    }

    /// Switches automatic call-ahead on or off, or changes its lead time
    /// (10–180 minutes). While on, each stop of the route is called once,
    /// when its ETA comes within the lead time, through the same outbox as a
    /// tap (the cap of 5, idempotent, exactly once across restarts); a stop
    /// the courier already tapped or cancelled is left to the courier.
    /// Stored locally; works offline.
    /// The lead times the courier's depot allows (as of the last route
    /// fetch): what the app's setting offers.
    pub fn auto_call_lead_bounds(&self) -> Result<crate::auto_call::LeadBounds, ClientError> {
        Ok(self.shared.db.auto_lead_bounds()?)
    }

    /// Refused outside [`Client::auto_call_lead_bounds`].
    pub fn set_auto_call_ahead(&self, settings: AutoCallAhead) -> Result<(), ClientError> {
        self.shared.db.set_auto_settings(&settings)?;
        self.shared.auto_wake.notify_one();
        Ok(())
    }

    /// The courier's position from the phone's GPS: the origin of the ETAs
    /// automatic call-ahead uses. Stored locally (the last one wins) and
    /// sent to the server for the supervisor's map when it is reachable.
    pub fn report_position(&self, position: GeoPoint) -> Result<(), ClientError> {
        self.shared.db.set_position(position, self.shared.config.clock.now())?;
        self.shared.auto_wake.notify_one();
        self.shared.position_wake.notify_one();
        Ok(())
    }

    /// The tap. Stores one request per stop durably before anything else,
    /// then wakes the dispatcher; never needs the network. Stops that already
    /// have an active call or a waiting request are left as they are.
    /// Returns the state of every given stop.
    pub fn request_calls(&self, stop_ids: &[StopId]) -> Result<Vec<StopState>, ClientError> {
        let tapped = self.shared.db.request_calls(stop_ids, Utc::now())?;
        let mut states = Vec::with_capacity(tapped.len());
        for (state, queued) in tapped {
            if queued {
                self.shared.listener.on_stop_changed(state.clone());
            }
            states.push(state);
        }
        self.shared.dispatch_wake.notify_one();
        Ok(states)
    }

    /// Cancels a stop's call: a request not yet sent (or refused) is removed
    /// locally; a placed call is cancelled on the server, which needs the
    /// network. A stop with nothing to cancel is returned as it is.
    pub async fn cancel(&self, stop_id: StopId) -> Result<StopState, ClientError> {
        let shared = self.shared.clone();
        self.run(async move { shared.cancel(stop_id).await }).await
    }

    /// Calls counting against the cap: non-terminal calls known locally plus
    /// requests on their way.
    pub fn active_count(&self) -> Result<usize, ClientError> {
        Ok(self.shared.db.active_count()?)
    }

    pub fn connection_state(&self) -> ConnectionState {
        *self.shared.connection.borrow()
    }

    /// Seq of the last event applied (or covered by a synced route).
    pub fn cursor(&self) -> Result<u64, ClientError> {
        Ok(self.shared.db.cursor()?)
    }

    /// Stops the client's tasks. Taps not yet sent stay stored and are sent
    /// by the next `Client::open` on the same file.
    pub fn close(mut self) {
        self.shutdown();
    }

    /// Runs `fut` on the client's runtime, whoever polls the result.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T, ClientError> {
        let runtime = self.runtime.as_ref().ok_or(Error::Closed)?;
        match runtime.spawn(fut).await {
            Ok(result) => Ok(result?),
            Err(e) if e.is_panic() => Err(ClientError::Internal { message: format!("task panicked: {e}") }),
            Err(_) => Err(Error::Closed.into()),
        }
    }

    fn shutdown(&mut self) {
        let Some(runtime) = self.runtime.take() else { return };
        self.shared.shutdown.send_replace(true);
        // Waiting for the workers must not happen on an async thread (tokio
        // forbids blocking there), so it happens on a thread of its own; the
        // wait is bounded, and afterwards no task of this client touches the
        // database any more, so the file can be reopened at once.
        let joined = std::thread::Builder::new()
            .name("callahead-client-close".into())
            .spawn(move || runtime.shutdown_timeout(SHUTDOWN_TIMEOUT))
            .map(|t| t.join());
        if !matches!(joined, Ok(Ok(()))) {
            tracing::warn!("the client's runtime did not shut down cleanly");
        }
        self.shared.set_connection(ConnectionState::Offline);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::db::tests::{route, stop};
    use super::*;
    use std::sync::mpsc;
    use std::sync::Mutex;

    const WAIT: Duration = Duration::from_secs(20);

    #[derive(Debug, Clone, PartialEq)]
    enum Note {
        Stop(Box<StopState>),
        Connection(ConnectionState),
    }

    struct Recorder(Mutex<mpsc::Sender<Note>>);

    impl Recorder {
        fn new() -> (Arc<Recorder>, mpsc::Receiver<Note>) {
            let (tx, rx) = mpsc::channel();
            (Arc::new(Recorder(Mutex::new(tx))), rx)
        }
        fn send(&self, note: Note) {
            let _ = self.0.lock().unwrap_or_else(|e| e.into_inner()).send(note);
        }
    }

    impl ClientListener for Recorder {
        fn on_stop_changed(&self, stop: StopState) {
            self.send(Note::Stop(Box::new(stop)));
        }
        fn on_connection_changed(&self, state: ConnectionState) {
            self.send(Note::Connection(state));
        }
    }

    /// Reads notes until `pred` matches one, failing after [`WAIT`].
    fn wait_for(rx: &mpsc::Receiver<Note>, what: &str, pred: impl Fn(&Note) -> bool) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(note) if pred(&note) => return,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// A loopback URL where nothing listens: the server is unreachable.
    fn unreachable_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    fn config(path: &std::path::Path, url: &str) -> ClientConfig {
        let mut c = ClientConfig::new(path, url, "courier-token");
        c.reconnect_min = Duration::from_millis(10);
        c.reconnect_max = Duration::from_millis(100);
        c
    }

    fn queued_keys(path: &std::path::Path) -> Vec<(i64, String)> {
        let db = Db::open(path).expect("db");
        db.requeue_interrupted().expect("requeue");
        db.dispatch_view()
            .expect("view")
            .queued
            .into_iter()
            .map(|e| (e.stop_id.0, e.idempotency_key))
            .collect()
    }

    /// Drives a future the way a foreign executor would: no tokio reactor,
    /// no timer, just polling.
    fn block_on_foreign<F: Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("bare executor").block_on(fut)
    }

    #[test]
    fn a_tap_made_offline_waits_across_restarts_with_its_key_and_can_be_withdrawn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.db");
        Db::open(&path).expect("db").store_route(&route(vec![stop(1, 9), stop(2, 9)], 0)).expect("route");
        let url = unreachable_url();

        let (recorder, rx) = Recorder::new();
        let client = Client::open(config(&path, &url), recorder).expect("opens");
        let tapped = client.request_calls(&[StopId(1), StopId(2)]).expect("tap works offline");
        assert!(tapped.iter().all(|s| s.outbox == Some(OutboxState::Queued)));
        wait_for(&rx, "the client to find the server unreachable", |n| {
            *n == Note::Connection(ConnectionState::Offline)
        });
        // The dispatcher tried, failed, and put the tap back in the queue.
        wait_for(
            &rx,
            "a send attempt",
            |n| matches!(n, Note::Stop(s) if s.outbox == Some(OutboxState::Sending)),
        );
        wait_for(&rx, "the requeue", |n| matches!(n, Note::Stop(s) if s.outbox == Some(OutboxState::Queued)));
        let synced = block_on_foreign(client.sync_route(super::db::tests::date()));
        assert!(matches!(synced, Err(ClientError::Offline { .. })), "{synced:?}");
        assert_eq!(client.stops().expect("stops").len(), 2, "the stored route is there offline");
        client.close();

        let keys = queued_keys(&path);
        assert_eq!(keys.iter().map(|(stop, _)| *stop).collect::<Vec<_>>(), vec![1, 2]);

        let (recorder, rx) = Recorder::new();
        let client = Client::open(config(&path, &url), recorder).expect("reopens");
        let state = block_on_foreign(client.cancel(StopId(1))).expect("an unsent tap is withdrawn offline");
        assert_eq!(state.outbox, None);
        wait_for(
            &rx,
            "the withdrawal",
            |n| matches!(n, Note::Stop(s) if s.stop.id == StopId(1) && s.outbox.is_none()),
        );
        drop(client);

        assert_eq!(queued_keys(&path), keys[1..].to_vec(), "the other tap waits with its original key");
    }

    #[test]
    fn cancelling_a_placed_call_needs_the_network() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.db");
        let db = Db::open(&path).expect("db");
        db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        let placed = super::db::tests::call(10, 1, "key-00000001", crate::CallStatus::Ringing, 1);
        db.apply_event(&super::db::tests::event(1, crate::wire::EventKind::CallRequested, Some(placed)))
            .expect("apply");
        drop(db);
        let (recorder, _rx) = Recorder::new();
        let client = Client::open(config(&path, &unreachable_url()), recorder).expect("opens");
        assert_eq!(client.active_count().expect("count"), 1);
        assert_eq!(client.cursor().expect("cursor"), 1);
        let cancelled = block_on_foreign(client.cancel(StopId(1)));
        assert!(matches!(cancelled, Err(ClientError::Offline { .. })), "{cancelled:?}");
        assert!(matches!(
            client.request_calls(&[StopId(1), StopId(404)]),
            Err(ClientError::InvalidInput { .. })
        ));
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let c = ClientConfig::new("/tmp/x.db", "http://localhost", "secret-token");
        assert!(!format!("{c:?}").contains("secret-token"));
    }

    #[tokio::test]
    async fn closing_or_dropping_inside_an_async_runtime_is_safe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = unreachable_url();
        let (recorder, _rx) = Recorder::new();
        let client = Client::open(config(&dir.path().join("a.db"), &url), recorder.clone()).expect("opens");
        assert!(client.stops().expect("stops").is_empty());
        client.close();
        let client = Client::open(config(&dir.path().join("a.db"), &url), recorder).expect("reopens");
        drop(client);
    }
}
