//! `callahead-loadgen`: a load generator that measures push latency.
//!
//! It starts `callahead-server serve` as a child process (or targets a running
//! server), creates depots, couriers and routes over the HTTP API, connects
//! every courier (and one supervisor per depot) over a real websocket, then
//! makes couriers tap "call" in one of two shapes:
//!
//! * **burst** (default): every courier requests `--calls-per-courier` calls,
//!   the couriers spread over `--ramp-secs`;
//! * **steady** (`--events-per-s N --duration-secs S`): calls are requested
//!   round-robin over the couriers at the rate that makes the server log about
//!   N events per second (the events per call are measured as the run goes).
//!
//! For every event a socket receives it measures the wall time from its cause
//! (the simulated key press, ring, answer, or the courier's request) to its
//! arrival. It reports the call phase (events caused after the first tap) and
//! the setup phase (route imports, apps connecting) apart, the connection
//! storm (how long until every socket had caught up), server CPU by thread
//! over the call phase, and server RSS per connection. At the end it asks the
//! server to replay each courier's log and counts lost and duplicated events.
//! The last line printed is one JSON object with the figures.
//!
//! **Several nodes** of one deployment (one PostgreSQL database, ADR 0009 and
//! 0011): `--target URL` repeated, or `--nodes N` to spawn N servers on one
//! `--db postgres://…`. Courier *i* talks to node *i* mod N only (its
//! websocket, its taps and the final replay of its log), depot *d*'s
//! supervisor to node *d* mod N; depots, couriers and routes are created on
//! the first node. Latency is measured from the event's `origin_wall_ms`, the
//! real wall clock of the node that caused it (all nodes run on this
//! machine), so it includes, for an event caused on another node than the
//! socket's, the way into that node's hub through the LISTEN/NOTIFY feed
//! (`store/follow.rs`). Lost and duplicated are counted against a replay from
//! the courier's own node.
//!
//! Many sockets need many file descriptors: it raises its own soft limit to
//! the hard one (which the spawned server inherits); `ulimit -n 65536` before
//! a 10,000-courier run if the hard limit is lower.

use callahead_core::wire::{self, paths, EventKind, ServerFrame};
use callahead_server::store::Location;
use clap::Parser;
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(name = "callahead-loadgen", about = "Push-latency load generator for callahead-server")]
struct Args {
    /// Courier apps to connect (each with its own websocket).
    #[arg(long, default_value_t = 1000)]
    couriers: usize,
    /// Burst: smart calls each courier requests (at most 5 run at once; 0:
    /// connect only, to measure idle memory).
    #[arg(long, default_value_t = 5)]
    calls_per_courier: usize,
    /// Couriers per depot; each depot also gets one supervisor feed.
    #[arg(long, default_value_t = 100)]
    couriers_per_depot: usize,
    /// Burst: real seconds over which the couriers' taps are spread.
    #[arg(long, default_value_t = 20.0)]
    ramp_secs: f64,
    /// Steady: the server's log grows by about this many events per second
    /// (every event reaches its courier and the depot's supervisor).
    #[arg(long)]
    events_per_s: Option<f64>,
    /// Steady: how long to keep that rate, in real seconds.
    #[arg(long, default_value_t = 60.0)]
    duration_secs: f64,
    /// Real seconds over which the apps connect (default: 1,000 apps per
    /// second, at least 1 s): a depot's morning start.
    #[arg(long)]
    connect_secs: Option<f64>,
    /// Domain seconds per real second on the spawned server (ring and talk
    /// times of the simulated customers shrink by this factor).
    #[arg(long, default_value_t = 20.0)]
    time_scale: f64,
    /// Target a running server instead of spawning one (needs --admin-token).
    /// Repeat it for the nodes of one deployment (sharing one database): the
    /// couriers are spread over them round-robin.
    #[arg(long)]
    target: Vec<String>,
    /// Spawn this many servers, all on the same `--db` (more than one needs
    /// a PostgreSQL URL), each on its own port, and spread the couriers over
    /// them round-robin.
    #[arg(long, default_value_t = 1, conflicts_with = "target")]
    nodes: usize,
    #[arg(long, env = "CALLAHEAD_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// The spawned server's `--db` (default: a SQLite file in a temporary
    /// directory). A PostgreSQL URL measures that engine; give it an empty
    /// database of its own (with `--nodes`, shared by every node).
    #[arg(long)]
    db: Option<String>,
    /// The server binary to spawn (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Give up waiting for calls to finish after this many real seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Latency from which an event counts as slow in the tail breakdown
    /// (printed by kind and by second of its cause).
    #[arg(long, default_value_t = 250)]
    slow_ms: i64,
    /// The spawned server's tokio worker threads (its `TOKIO_WORKER_THREADS`;
    /// default: one per core).
    #[arg(long)]
    server_worker_threads: Option<usize>,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    /// Server nodes the couriers were spread over (spawned or targeted).
    nodes: usize,
    couriers: usize,
    supervisors: usize,
    calls: usize,
    /// Call-phase events received by sockets (deliveries).
    events: u64,
    p50_ms: i64,
    p99_ms: i64,
    max_ms: i64,
    /// Events from the setup phase and their p99 (see `run`).
    setup_events: u64,
    setup_p99_ms: i64,
    /// Deliveries per second over the call phase.
    events_per_s: f64,
    /// Events the server logged per second over the call phase.
    log_events_per_s: f64,
    target_events_per_s: Option<f64>,
    /// The connection storm: seconds from the first connect until every
    /// socket had caught up, and the p99 of one socket's connect-to-caught-up.
    connect_all_secs: f64,
    connect_p99_ms: i64,
    lost: u64,
    duplicated: u64,
    unfinished_calls: u64,
    /// RSS of the spawned servers, summed over the nodes (none when
    /// targeting running servers).
    server_rss_idle_kb: Option<u64>,
    server_rss_connected_kb: Option<u64>,
    server_rss_per_connection_kb: Option<f64>,
    server_rss_peak_kb: Option<u64>,
    /// Server CPU seconds over the call phase, by thread name, summed over
    /// the nodes (`callahead-write` is every node's writer together). The
    /// PostgreSQL server's own processes are not in it.
    server_cpu_secs: BTreeMap<String, f64>,
    /// Bytes the server wrote (WAL, then checkpoints into the database)
    /// per event it logged in the call phase: the pages each event dirties.
    /// SQLite only: on PostgreSQL the database's writes are the PostgreSQL
    /// server's, not the node's.
    server_write_bytes_per_event: Option<f64>,
}

/// What one socket saw.
#[derive(Default)]
struct Seen {
    /// Per event: wall ms of its cause, push latency, kind.
    samples: Vec<(i64, i64, &'static str)>,
    seqs: Vec<u64>,
    finished_calls: usize,
    /// From the connect to `caught_up`.
    connect_ms: i64,
    /// Wall ms when this socket started connecting: an event older than
    /// that is measured from here (how long the replay took to reach the
    /// app), not from a cause the socket could not have seen sooner.
    connect_started_ms: i64,
}

struct ServerProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU ticks (user + system) per thread name, from `/proc/PID/task`.
fn cpu_ticks_by_thread(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // `pid (comm) state ...`: comm may contain spaces; fields after it
        // are space separated, utime and stime are the 12th and 13th.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].trim().to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Worker threads share a name; numbered ones are folded together.
        let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-').to_owned();
        *out.entry(name).or_insert(0) += ticks(11) + ticks(12);
    }
    out
}

/// Bytes this process caused to be written to storage (`/proc/PID/io`).
fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `f` summed over the spawned servers: `None` without any, or when one of
/// them has no figure.
fn summed(pids: &[u32], f: impl Fn(u32) -> Option<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

/// Each spawned server's CPU seconds between two readings, by thread name.
fn cpu_secs_between(
    before: &[BTreeMap<String, u64>],
    after: &[BTreeMap<String, u64>],
) -> Vec<BTreeMap<String, f64>> {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| {
            after
                .iter()
                .map(|(name, after)| {
                    let before = before.get(name).copied().unwrap_or(0);
                    (name.clone(), after.saturating_sub(before) as f64 / TICKS_PER_SEC)
                })
                .filter(|(_, secs)| *secs > 0.0)
                .collect()
        })
        .collect()
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Domain time starts inside calling hours (10:00 in Moscow), whatever the
/// hour of the run, so every call is placed at once.
fn clock_start() -> chrono::DateTime<chrono::Utc> {
    let today = chrono::Utc::now().date_naive();
    today.and_hms_opt(7, 0, 0).map_or_else(chrono::Utc::now, |t| t.and_utc())
}

/// Spawns `--nodes` servers on the one `--db`, all on the same domain clock;
/// returns them and their base URLs.
fn spawn_servers(args: &Args, admin: &str) -> Result<(Vec<ServerProcess>, Vec<String>), Error> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let shared = args.db.as_deref().map(Location::parse);
    if args.nodes > 1 && !shared.as_ref().is_some_and(Location::is_postgres) {
        return Err(format!(
            "--nodes {} needs --db postgres://…: several nodes share one PostgreSQL database, \
             a SQLite file belongs to one server",
            args.nodes
        )
        .into());
    }
    // One domain clock for every node: taken once, not per spawn.
    let start = clock_start();
    let mut servers = Vec::with_capacity(args.nodes);
    let mut bases = Vec::with_capacity(args.nodes);
    for _ in 0..args.nodes {
        let (server, base) = spawn_server(args, admin, start)?;
        servers.push(server);
        bases.push(base);
    }
    Ok((servers, bases))
}

fn spawn_server(
    args: &Args,
    admin: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<(ServerProcess, String), Error> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("callahead-server"),
    };
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut command = Command::new(&bin);
    if let Some(n) = args.server_worker_threads {
        command.env("TOKIO_WORKER_THREADS", n.to_string());
    }
    let child = command
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(args.db.clone().map_or_else(|| dir.path().join("load.db"), PathBuf::from))
        .args(["--time-scale", &args.time_scale.to_string()])
        .args(["--clock-start", &start.to_rfc3339()])
        .env("CALLAHEAD_ADMIN_TOKEN", admin)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| {
            format!("cannot start {}: {e} (build it with `cargo build --release`)", bin.display())
        })?;
    Ok((ServerProcess { child, _dir: dir }, format!("http://127.0.0.1:{port}")))
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn head(&self) -> Result<u64, Error> {
        let h: wire::Health =
            self.client.get(format!("{}{}", self.base, paths::HEALTHZ)).send().await?.json().await?;
        Ok(h.head_seq)
    }
}

async fn wait_healthy(http: &Http) -> Result<u64, Error> {
    // The child needs a moment to migrate and bind: poll, bounded.
    for _ in 0..600 {
        if let Ok(head) = http.head().await {
            return Ok(head);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("server did not become healthy within 30 s".into())
}

/// One websocket subscriber: counts events until `expect_finished` calls
/// finished (0 = until told to stop).
async fn subscribe(
    base: String,
    token: String,
    after: u64,
    expect_finished: usize,
    mut stop: watch::Receiver<bool>,
    ready: Arc<Semaphore>,
    finished: Arc<AtomicU64>,
) -> Result<Seen, Error> {
    let url = format!("{}{}?after={after}", base.replacen("http", "ws", 1), paths::WS);
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let connecting = Instant::now();
    let mut seen = Seen { connect_started_ms: callahead_core::clock::wall_ms(), ..Seen::default() };
    // Small frames both ways: never wait for Nagle.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    let mut caught_up = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            // Registered once, outside the loop body's other branch: a stop
            // sent while this socket was busy is still seen.
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(msg) = msg else { break };
        let Message::Text(text) = msg? else { continue };
        let frame: LiteFrame<'_> = serde_json::from_str(&text)?;
        match (frame.kind.as_ref(), frame.event) {
            ("event", Some(event)) => {
                if record(&mut seen, &event) {
                    finished.fetch_add(1, Ordering::Relaxed);
                }
                if expect_finished > 0 && seen.finished_calls >= expect_finished {
                    break;
                }
            }
            ("caught_up", _) if !caught_up => {
                caught_up = true;
                seen.connect_ms = connecting.elapsed().as_millis() as i64;
                ready.add_permits(1);
            }
            ("error", _) => return Err(format!("the server closed the socket: {text}").into()),
            _ => {}
        }
    }
    Ok(seen)
}

/// What the load generator reads of a frame. `ServerFrame` is an internally
/// tagged enum, which serde parses by buffering the whole frame (the call
/// snapshot included) and parsing it again: at 10,000 sockets that made the
/// load generator the machine's largest CPU user, taking it from the server
/// it measures. This reads the few fields it needs and skips the rest.
#[derive(serde::Deserialize)]
struct LiteFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event: Option<LiteEvent<'a>>,
}

#[derive(serde::Deserialize)]
struct LiteEvent<'a> {
    seq: u64,
    origin_wall_ms: i64,
    #[serde(borrow)]
    kind: LiteKind<'a>,
}

#[derive(serde::Deserialize)]
struct LiteKind<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Records one event; true when it ended a call.
fn record(seen: &mut Seen, event: &LiteEvent<'_>) -> bool {
    let latency = callahead_core::clock::wall_ms() - event.origin_wall_ms.max(seen.connect_started_ms);
    let kind = EventKind::TYPES.iter().copied().find(|t| *t == event.kind.kind).unwrap_or("unknown");
    seen.samples.push((event.origin_wall_ms, latency, kind));
    seen.seqs.push(event.seq);
    let ended = matches!(kind, "call_finished" | "call_cancelled");
    if ended {
        seen.finished_calls += 1;
    }
    ended
}

/// Replays a courier's log from `after` to the head: the server's truth.
async fn replay(base: &str, token: &str, after: u64) -> Result<Vec<u64>, Error> {
    let url = format!("{}{}?after={after}", base.replacen("http", "ws", 1), paths::WS);
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let mut seqs = Vec::new();
    while let Some(msg) = ws.next().await {
        let Message::Text(text) = msg? else { continue };
        match serde_json::from_str::<ServerFrame>(&text)? {
            ServerFrame::Event { event } => seqs.push(event.seq),
            ServerFrame::CaughtUp { .. } => break,
            _ => {}
        }
    }
    Ok(seqs)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if (n as usize) < args.couriers + args.couriers / 50 + MAX_HTTP_IN_FLIGHT + 256 => eprintln!(
            "callahead-loadgen: only {n} file descriptors allowed; run `ulimit -n 65536` first for {} couriers",
            args.couriers
        ),
        Ok(_) => {}
        Err(e) => eprintln!("callahead-loadgen: cannot raise the file descriptor limit: {e}"),
    }
    match run(args).await {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        }
        Err(e) => {
            eprintln!("callahead-loadgen: {e}");
            std::process::exit(1);
        }
    }
}

/// How the couriers tap during the call phase.
enum Shape {
    Burst { calls_each: usize, ramp: Duration },
    Steady { events_per_s: f64, duration: Duration },
}

/// Calls a steady run needs in all: a call logs about this many events
/// (requested, placed, ringing, answered, key, ended, finished) before the
/// run measures the real figure.
const EVENTS_PER_CALL_GUESS: f64 = 7.0;

async fn run(args: Args) -> Result<Report, Error> {
    let shape = match args.events_per_s {
        Some(rate) if rate > 0.0 => Shape::Steady {
            events_per_s: rate,
            duration: Duration::from_secs_f64(args.duration_secs.max(1.0)),
        },
        Some(_) => return Err("--events-per-s must be above 0".into()),
        None => Shape::Burst {
            calls_each: args.calls_per_courier,
            ramp: Duration::from_secs_f64(args.ramp_secs.max(0.0)),
        },
    };
    let stops_each = match &shape {
        Shape::Burst { calls_each, .. } => (*calls_each).min(callahead_core::MAX_ACTIVE_CALLS_PER_COURIER),
        Shape::Steady { events_per_s, duration } => {
            // Twice the guess, so a slower run never runs out of stops.
            let calls = events_per_s * duration.as_secs_f64() / EVENTS_PER_CALL_GUESS * 2.0;
            (calls / args.couriers.max(1) as f64).ceil() as usize + 1
        }
    };
    let (servers, bases, admin) = if args.target.is_empty() {
        let admin = format!("loadgen-admin-{}", uuid::Uuid::new_v4());
        let (servers, bases) = spawn_servers(&args, &admin)?;
        (servers, bases, admin)
    } else {
        let admin =
            args.admin_token.clone().ok_or("--target needs --admin-token or CALLAHEAD_ADMIN_TOKEN")?;
        (Vec::new(), args.target.iter().map(|url| url.trim_end_matches('/').to_string()).collect(), admin)
    };
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    // The node's own storage writes are the database's only on SQLite.
    let on_sqlite = !args.db.as_deref().map(Location::parse).as_ref().is_some_and(Location::is_postgres);
    let client =
        reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(MAX_HTTP_IN_FLIGHT).build()?;
    let nodes: Vec<Arc<Http>> =
        bases.iter().map(|base| Arc::new(Http { base: base.clone(), client: client.clone() })).collect();
    for node in &nodes {
        wait_healthy(node).await?;
    }
    // Setup (depots, couriers, routes) and the log's head: the first node.
    let http = nodes[0].clone();
    eprintln!(
        "server at {}; creating {} couriers with {stops_each} stops each…",
        bases.join(", "),
        args.couriers
    );

    let depots = create_depots(&http, &admin, args.couriers.div_ceil(args.couriers_per_depot.max(1))).await?;
    let couriers = create_couriers(
        &http,
        &admin,
        &depots,
        args.couriers,
        args.couriers_per_depot.max(1),
        stops_each,
        nodes.len(),
    )
    .await?;
    let rss_idle = summed(&pids, rss_kb);

    // Connect every courier and one supervisor per depot (spread over the
    // connect window); wait for every socket to catch up.
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(Semaphore::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let expect_each = match &shape {
        Shape::Burst { .. } => stops_each,
        // Steady runs stop on the clock, not on a count.
        Shape::Steady { .. } => 0,
    };
    let sockets = couriers.len() + depots.len();
    let connect_secs = args.connect_secs.unwrap_or((sockets as f64 / 1000.0).max(1.0));
    let connect_started = Instant::now();
    let mut courier_subs = futures_util::stream::FuturesOrdered::new();
    let mut supervisor_subs = JoinSet::new();
    for (i, d) in depots.iter().enumerate() {
        supervisor_subs.spawn(subscribe(
            bases[i % bases.len()].clone(),
            d.supervisor.clone(),
            0,
            0,
            stop_rx.clone(),
            ready.clone(),
            Arc::new(AtomicU64::new(0)),
        ));
    }
    for (i, c) in couriers.iter().enumerate() {
        let at = Duration::from_secs_f64(connect_secs * i as f64 / couriers.len().max(1) as f64);
        let task = subscribe(
            bases[c.node].clone(),
            c.token.clone(),
            c.route.head_seq,
            expect_each,
            stop_rx.clone(),
            ready.clone(),
            finished.clone(),
        );
        courier_subs.push_back(tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(connect_started + at)).await;
            task.await
        }));
    }
    tokio::time::timeout(Duration::from_secs(300), ready.acquire_many(sockets as u32))
        .await
        .map_err(|_| "websockets did not all catch up within 300 s")??
        .forget();
    let connect_all_secs = connect_started.elapsed().as_secs_f64();
    let rss_connected = summed(&pids, rss_kb);
    eprintln!("{sockets} websockets connected and caught up in {connect_all_secs:.1} s");

    // The call phase.
    let started = Instant::now();
    let taps_started_ms = callahead_core::clock::wall_ms();
    let cpu_before: Vec<_> = pids.iter().map(|p| cpu_ticks_by_thread(*p)).collect();
    let written_before = summed(&pids, write_bytes).filter(|_| on_sqlite);
    let head_before = http.head().await?;
    let mut taps = JoinSet::new();
    let tapper = Tapper {
        nodes: nodes.clone(),
        errors: Arc::new(AtomicU64::new(0)),
        in_flight: Arc::new(Semaphore::new(MAX_HTTP_IN_FLIGHT)),
    };
    let mut calls = 0usize;
    let mut steady_end = None;
    match &shape {
        Shape::Burst { ramp, .. } => {
            let n = couriers.len().max(1);
            for (i, c) in couriers.iter().enumerate() {
                let delay = ramp.mul_f64(i as f64 / n as f64);
                let (t, token, stops) = (tapper.clone(), c.token.clone(), c.route.stops.clone());
                let node = c.node;
                calls += stops.len();
                taps.spawn(async move {
                    tokio::time::sleep(delay).await;
                    for s in stops {
                        t.tap(node, &token, s.stop.id).await;
                    }
                });
            }
            eprintln!("{calls} calls requested over {} s…", ramp.as_secs_f64());
        }
        Shape::Steady { events_per_s, duration } => {
            eprintln!("steady: about {events_per_s} events/s for {} s…", duration.as_secs_f64());
            calls =
                steady(&tapper, &http, &couriers, *events_per_s, *duration, head_before, &finished).await?;
            steady_end = Some((Instant::now(), http.head().await?));
        }
    }

    // Burst: wait for every courier to see all its calls finish. Steady: the
    // rate was held for the duration; let what is in flight land.
    let mut peak = rss_connected;
    let mut sampler = tokio::time::interval(Duration::from_millis(500));
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout_secs));
    tokio::pin!(deadline);
    let mut seen_by_courier: Vec<Seen> = Vec::with_capacity(couriers.len());
    let mut taps_left = true;
    if matches!(shape, Shape::Steady { .. }) {
        let settle = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = &mut settle => break,
                _ = sampler.tick() => {
                    if let Some(now) = summed(&pids, rss_kb) {
                        peak = Some(peak.unwrap_or(0).max(now));
                    }
                }
            }
        }
    }
    let stopping = expect_each == 0;
    if stopping {
        let _ = stop_tx.send(true);
    }
    while seen_by_courier.len() < couriers.len() {
        tokio::select! {
            t = taps.join_next(), if taps_left => if t.is_none() { taps_left = false },
            r = courier_subs.next() => match r {
                Some(r) => seen_by_courier.push(r??),
                None => break,
            },
            _ = sampler.tick() => {
                if let Some(now) = summed(&pids, rss_kb) {
                    peak = Some(peak.unwrap_or(0).max(now));
                }
            }
            _ = &mut deadline => {
                eprintln!("timed out: {} couriers still waiting for calls to finish", couriers.len() - seen_by_courier.len());
                break;
            }
        }
    }
    let (end, head_after) = match steady_end {
        Some(e) => e,
        None => (Instant::now(), http.head().await?),
    };
    let elapsed = end.duration_since(started).as_secs_f64();
    let cpu_after: Vec<_> = pids.iter().map(|p| cpu_ticks_by_thread(*p)).collect();
    let written = match (written_before, summed(&pids, write_bytes)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let _ = stop_tx.send(true);
    let mut supervisors = Vec::new();
    while let Some(r) = supervisor_subs.join_next().await {
        supervisors.push(r??);
    }
    drop(courier_subs);

    // Lost and duplicated: each courier's socket against the server's replay.
    let (mut lost, mut duplicated, mut unfinished) = (0u64, 0u64, 0u64);
    for (i, c) in couriers.iter().enumerate() {
        let truth = replay(&bases[c.node], &c.token, c.route.head_seq).await?;
        let Some(seen) = seen_by_courier.get(i) else {
            unfinished += expect_each as u64;
            continue;
        };
        unfinished += expect_each.saturating_sub(seen.finished_calls) as u64;
        let got: std::collections::HashSet<u64> = seen.seqs.iter().copied().collect();
        duplicated += (seen.seqs.len() - got.len()) as u64;
        // Only what the socket could have seen before it closed counts.
        let last = seen.seqs.last().copied().unwrap_or(c.route.head_seq);
        lost += truth.iter().filter(|s| **s <= last && !got.contains(s)).count() as u64;
    }

    // The headline is the call phase: events caused after the first tap.
    // Events from the setup (route imports, apps connecting) reach a socket
    // as a replay or amid the connection storm; they are reported apart,
    // since they measure connecting, not pushing call statuses: an event
    // older than its socket counts from the socket's connect.
    let samples: Vec<(i64, i64, &str)> =
        seen_by_courier.iter().chain(supervisors.iter()).flat_map(|s| s.samples.iter().copied()).collect();
    let end_ms = taps_started_ms + (elapsed * 1000.0) as i64;
    let in_phase = |origin: i64| origin >= taps_started_ms && origin <= end_ms;
    let mut latencies: Vec<i64> = samples.iter().filter(|(o, ..)| in_phase(*o)).map(|(_, l, _)| *l).collect();
    latencies.sort_unstable();
    let mut setup: Vec<i64> =
        samples.iter().filter(|(origin, ..)| *origin < taps_started_ms).map(|(_, l, _)| *l).collect();
    setup.sort_unstable();
    let mut connects: Vec<i64> =
        seen_by_courier.iter().chain(supervisors.iter()).map(|s| s.connect_ms).collect();
    connects.sort_unstable();
    let events = latencies.len() as u64;
    let connections = sockets.max(1) as f64;
    let cpu_by_node = cpu_secs_between(&cpu_before, &cpu_after);
    let mut server_cpu_secs = BTreeMap::new();
    for (name, secs) in cpu_by_node.iter().flatten() {
        *server_cpu_secs.entry(name.clone()).or_insert(0.0) += secs;
    }
    let report = Report {
        mode: if matches!(shape, Shape::Steady { .. }) { "steady" } else { "burst" },
        nodes: nodes.len(),
        couriers: couriers.len(),
        supervisors: depots.len(),
        calls,
        events,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0),
        setup_events: setup.len() as u64,
        setup_p99_ms: percentile(&setup, 0.99),
        events_per_s: if elapsed > 0.0 { events as f64 / elapsed } else { 0.0 },
        log_events_per_s: if elapsed > 0.0 {
            head_after.saturating_sub(head_before) as f64 / elapsed
        } else {
            0.0
        },
        target_events_per_s: args.events_per_s,
        connect_all_secs,
        connect_p99_ms: percentile(&connects, 0.99),
        lost,
        duplicated,
        unfinished_calls: unfinished,
        server_rss_idle_kb: rss_idle,
        server_rss_connected_kb: rss_connected,
        server_rss_per_connection_kb: match (rss_idle, rss_connected) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / connections),
            _ => None,
        },
        server_rss_peak_kb: peak,
        server_cpu_secs,
        server_write_bytes_per_event: written
            .filter(|_| head_after > head_before)
            .map(|w| w as f64 / (head_after - head_before) as f64),
    };
    eprintln!(
        "push latency p50 {} ms, p99 {} ms, max {} ms over {} deliveries ({:.0}/s; the log grew {:.0} events/s); lost {}, duplicated {}, unfinished calls {}",
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        report.events,
        report.events_per_s,
        report.log_events_per_s,
        report.lost,
        report.duplicated,
        report.unfinished_calls
    );
    eprintln!(
        "setup events (before the first tap): {}, p99 {} ms, max {} ms; connecting: all {sockets} caught up in {:.1} s, one socket p99 {} ms",
        setup.len(),
        report.setup_p99_ms,
        setup.last().copied().unwrap_or(0),
        report.connect_all_secs,
        report.connect_p99_ms
    );
    if tapper.errors.load(Ordering::Relaxed) > 0 {
        eprintln!("{} call requests were refused", tapper.errors.load(Ordering::Relaxed));
    }
    // Where a tail comes from: slow events by kind, and by the second
    // (from the first tap; negative: setup) their cause happened in.
    let mut by_kind = BTreeMap::new();
    let mut by_second = BTreeMap::new();
    for (origin, _, kind) in samples.iter().filter(|(_, l, _)| *l >= args.slow_ms) {
        *by_kind.entry(*kind).or_insert(0u64) += 1;
        *by_second.entry((origin - taps_started_ms).div_euclid(1000)).or_insert(0u64) += 1;
    }
    if !by_kind.is_empty() {
        eprintln!(
            "events over {} ms by kind {by_kind:?}; by second of their cause {by_second:?}",
            args.slow_ms
        );
    }
    if let Some(per) = report.server_rss_per_connection_kb {
        eprintln!(
            "server RSS: {} kB idle, {} kB with {sockets} sockets ({per:.1} kB per connection), peak {} kB",
            rss_idle.unwrap_or(0),
            rss_connected.unwrap_or(0),
            peak.unwrap_or(0)
        );
    }
    if let Some(per) = report.server_write_bytes_per_event {
        eprintln!("server wrote {per:.0} bytes to storage per logged event");
    }
    if !report.server_cpu_secs.is_empty() {
        eprintln!("server CPU seconds over the call phase, by thread: {:?}", report.server_cpu_secs);
    }
    if cpu_by_node.len() > 1 {
        for (i, cpu) in cpu_by_node.iter().enumerate() {
            eprintln!("  node {i} ({}): {cpu:?}", bases[i]);
        }
    }
    drop(servers);
    Ok(report)
}

/// Call requests in flight at once: each holds a connection (a descriptor
/// beside the 10,000 websockets), and a server that answers slowly must not
/// make the generator open ever more of them.
const MAX_HTTP_IN_FLIGHT: usize = 256;

#[derive(Clone)]
struct Tapper {
    nodes: Vec<Arc<Http>>,
    errors: Arc<AtomicU64>,
    in_flight: Arc<Semaphore>,
}

impl Tapper {
    /// A courier's tap, sent to its own node.
    async fn tap(&self, node: usize, token: &str, stop: callahead_core::StopId) {
        let Ok(_permit) = self.in_flight.acquire().await else { return };
        let body = wire::CreateCall {
            stop_id: stop,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            policy: None,
        };
        let sent: Result<wire::CallView, Error> =
            self.nodes[node].send(reqwest::Method::POST, token, paths::CALLS, &body).await;
        if let Err(e) = sent {
            if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("a call request failed: {e}");
            }
        }
    }
}

/// Taps round-robin over the couriers so that the log grows by about
/// `events_per_s`; every second the events per call are measured from what
/// the run has logged, and the tap rate follows. Returns the calls requested.
async fn steady(
    tapper: &Tapper,
    http: &Http,
    couriers: &[LoadCourier],
    events_per_s: f64,
    duration: Duration,
    head_before: u64,
    finished: &AtomicU64,
) -> Result<usize, Error> {
    let mut next_stop = vec![0usize; couriers.len()];
    let mut courier = 0usize;
    let mut per_call = EVENTS_PER_CALL_GUESS;
    let started = Instant::now();
    let mut calls = 0usize;
    let mut last_check = Instant::now();
    let mut inflight = JoinSet::new();
    while started.elapsed() < duration {
        // The call due now, by the schedule the current rate implies.
        let due = started + Duration::from_secs_f64(calls as f64 * per_call / events_per_s);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let mut tries = 0;
        while next_stop[courier] >= couriers[courier].route.stops.len() && tries < couriers.len() {
            courier = (courier + 1) % couriers.len();
            tries += 1;
        }
        let c = &couriers[courier];
        let Some(s) = c.route.stops.get(next_stop[courier]) else { break };
        next_stop[courier] += 1;
        let (t, node, token, stop) = (tapper.clone(), c.node, c.token.clone(), s.stop.id);
        inflight.spawn(async move { t.tap(node, &token, stop).await });
        while inflight.try_join_next().is_some() {}
        calls += 1;
        courier = (courier + 1) % couriers.len();
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            // Log events per finished call, once enough calls finished.
            let done = finished.load(Ordering::Relaxed) as f64;
            if done >= 50.0 {
                let logged = http.head().await?.saturating_sub(head_before) as f64;
                per_call = (logged / (done + (calls as f64 - done) * 0.5)).clamp(2.0, 20.0);
            }
        }
    }
    while inflight.join_next().await.is_some() {}
    Ok(calls)
}

struct LoadDepot {
    depot: wire::Depot,
    supervisor: String,
    integrator: String,
}

struct LoadCourier {
    token: String,
    route: wire::Route,
    /// The index of the node this courier's app talks to.
    node: usize,
}

async fn create_depots(http: &Http, admin: &str, n: usize) -> Result<Vec<LoadDepot>, Error> {
    let mut depots = Vec::new();
    for d in 0..n.max(1) {
        let policy = callahead_core::policy::AttemptPolicy {
            max_attempts: 3,
            retry_spacing_secs: 60,
            ring_timeout_secs: 30,
            // The measured load is the fixed rhythm of retries, run after run.
            retry_at_best_hour: false,
            ..Default::default()
        };
        let body = wire::CreateDepot {
            name: format!("Load depot {d}"),
            time_zone: "Europe/Moscow".into(),
            policy: Some(policy),
        };
        let depot: wire::Depot = http.send(reqwest::Method::POST, admin, paths::DEPOTS, &body).await?;
        let id = depot.id.to_string();
        let path = paths::fill(paths::DEPOT_SUPERVISORS, &[("depot_id", &id)]);
        let sup: wire::CreatedSupervisor = http
            .send(reqwest::Method::POST, admin, &path, &wire::CreateSupervisor { name: format!("sup {d}") })
            .await?;
        let path = paths::fill(paths::DEPOT_INTEGRATOR_KEYS, &[("depot_id", &id)]);
        let key: wire::CreatedIntegratorKey = http
            .send(
                reqwest::Method::POST,
                admin,
                &path,
                &wire::CreateIntegratorKey { name: format!("crm {d}") },
            )
            .await?;
        depots.push(LoadDepot { depot, supervisor: sup.token, integrator: key.token });
    }
    Ok(depots)
}

async fn create_couriers(
    http: &Arc<Http>,
    admin: &str,
    depots: &[LoadDepot],
    n: usize,
    per_depot: usize,
    stops_each: usize,
    nodes: usize,
) -> Result<Vec<LoadCourier>, Error> {
    let limit = Arc::new(Semaphore::new(16));
    let mut setup = JoinSet::new();
    // Windows in the domain time the server runs on: well after the start,
    // so no retry is cut short by the window opening.
    let start = clock_start();
    for i in 0..n {
        let depot = &depots[(i / per_depot).min(depots.len() - 1)];
        let (http, limit, admin) = (http.clone(), limit.clone(), admin.to_string());
        let (depot_id, integrator) = (depot.depot.id, depot.integrator.clone());
        setup.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let path = paths::fill(paths::DEPOT_COURIERS, &[("depot_id", &depot_id.to_string())]);
            let body = wire::CreateCourier { name: format!("courier {i}"), phone: format!("+7990{i:07}") };
            let c: wire::CreatedCourier = http.send(reqwest::Method::POST, &admin, &path, &body).await?;
            let stops = (0..stops_each)
                .map(|s| wire::StopInput {
                    external_id: format!("L{i}-{s}"),
                    customer_name: format!("Customer {i}-{s}"),
                    phone: format!("+7991{i:06}{s:03}"),
                    time_zone: "Europe/Moscow".into(),
                    address: format!("Load street {s}"),
                    window_start: start + chrono::Duration::hours(3),
                    window_end: start + chrono::Duration::hours(4),
                    order_numbers: vec![format!("{i}-{s}")],
                    amount: None,
                    location: None,
                    language: None,
                })
                .collect();
            let date = start.date_naive().to_string();
            let path = paths::fill(
                paths::COURIER_ROUTE,
                &[("courier_id", &c.courier.id.to_string()), ("date", &date)],
            );
            let route: wire::Route =
                http.send(reqwest::Method::PUT, &integrator, &path, &wire::RouteImport { stops }).await?;
            Ok::<_, Error>((i, LoadCourier { token: c.token, route, node: i % nodes.max(1) }))
        });
    }
    let mut couriers = Vec::with_capacity(n);
    while let Some(r) = setup.join_next().await {
        couriers.push(r??);
    }
    couriers.sort_by_key(|(i, _)| *i);
    Ok(couriers.into_iter().map(|(_, c)| c).collect())
}
