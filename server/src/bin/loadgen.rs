//! `callahead-loadgen`: a load generator that measures push latency.
//!
//! It starts `callahead-server serve` as a child process (or targets a running
//! server), creates depots, couriers and routes over the HTTP API, connects
//! every courier (and one supervisor per depot) over a real websocket, makes
//! each courier tap "call" for their stops, and measures, for every event a
//! socket receives, the wall time from its cause (the simulated key press,
//! ring, answer, or the courier's request) to its arrival. At the end it asks
//! the server to replay each courier's log and counts lost and duplicated
//! events. The last line printed is one JSON object with the figures.

use callahead_core::wire::{self, paths, Event, EventKind, ServerFrame};
use clap::Parser;
use futures_util::StreamExt;
use serde::Serialize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
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
    /// Smart calls each courier requests (at most 5 run at once).
    #[arg(long, default_value_t = 5)]
    calls_per_courier: usize,
    /// Couriers per depot; each depot also gets one supervisor feed.
    #[arg(long, default_value_t = 100)]
    couriers_per_depot: usize,
    /// Real seconds over which the couriers' taps are spread.
    #[arg(long, default_value_t = 20.0)]
    ramp_secs: f64,
    /// Domain seconds per real second on the spawned server (ring and talk
    /// times of the simulated customers shrink by this factor).
    #[arg(long, default_value_t = 20.0)]
    time_scale: f64,
    /// Target a running server instead of spawning one (needs --admin-token).
    #[arg(long)]
    target: Option<String>,
    #[arg(long, env = "CALLAHEAD_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// The server binary to spawn (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Give up waiting for calls to finish after this many real seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Serialize)]
struct Report {
    couriers: usize,
    supervisors: usize,
    calls: usize,
    events: u64,
    p50_ms: i64,
    p99_ms: i64,
    max_ms: i64,
    /// Events from the setup phase and their p99 (see `run`).
    setup_events: u64,
    setup_p99_ms: i64,
    events_per_s: f64,
    lost: u64,
    duplicated: u64,
    unfinished_calls: u64,
    server_rss_idle_kb: Option<u64>,
    server_rss_connected_kb: Option<u64>,
    server_rss_per_connection_kb: Option<f64>,
    server_rss_peak_kb: Option<u64>,
}

/// What one socket saw.
#[derive(Default)]
struct Seen {
    /// Per event: wall ms of its cause, push latency, kind.
    samples: Vec<(i64, i64, &'static str)>,
    seqs: Vec<u64>,
    finished_calls: usize,
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

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn spawn_server(args: &Args, admin: &str) -> Result<(ServerProcess, String), Error> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("callahead-server"),
    };
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = Command::new(&bin)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(dir.path().join("load.db"))
        .args(["--time-scale", &args.time_scale.to_string()])
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
}

async fn wait_healthy(http: &Http) -> Result<u64, Error> {
    // The child needs a moment to migrate and bind: poll, bounded.
    for _ in 0..600 {
        if let Ok(resp) = http.client.get(format!("{}{}", http.base, paths::HEALTHZ)).send().await {
            if resp.status().is_success() {
                let h: wire::Health = resp.json().await?;
                return Ok(h.head_seq);
            }
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
    stop: Arc<tokio::sync::Notify>,
    ready: Arc<Semaphore>,
) -> Result<Seen, Error> {
    let url = format!("{}{}?after={after}", base.replacen("http", "ws", 1), paths::WS);
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false).await?;
    let mut seen = Seen::default();
    let mut caught_up = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.notified() => break,
        };
        let Some(msg) = msg else { break };
        let Message::Text(text) = msg? else { continue };
        match serde_json::from_str::<ServerFrame>(&text)? {
            ServerFrame::Event { event } => {
                record(&mut seen, &event);
                if expect_finished > 0 && seen.finished_calls >= expect_finished {
                    break;
                }
            }
            ServerFrame::CaughtUp { .. } if !caught_up => {
                caught_up = true;
                ready.add_permits(1);
            }
            ServerFrame::Error { code, message } => return Err(format!("{code:?}: {message}").into()),
            _ => {}
        }
    }
    Ok(seen)
}

/// Latency from which an event counts as slow in the tail breakdown.
const SLOW_MS: i64 = 250;

fn record(seen: &mut Seen, event: &Event) {
    let latency = callahead_core::clock::wall_ms() - event.origin_wall_ms;
    seen.samples.push((event.origin_wall_ms, latency, event.kind.type_name()));
    seen.seqs.push(event.seq);
    if matches!(event.kind, EventKind::CallFinished { .. } | EventKind::CallCancelled) {
        seen.finished_calls += 1;
    }
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

async fn run(args: Args) -> Result<Report, Error> {
    let k = args.calls_per_courier.min(callahead_core::MAX_ACTIVE_CALLS_PER_COURIER);
    let (server, base, admin) = match &args.target {
        Some(url) => {
            let admin =
                args.admin_token.clone().ok_or("--target needs --admin-token or CALLAHEAD_ADMIN_TOKEN")?;
            (None, url.trim_end_matches('/').to_string(), admin)
        }
        None => {
            let admin = format!("loadgen-admin-{}", uuid::Uuid::new_v4());
            let (process, base) = spawn_server(&args, &admin)?;
            (Some(process), base, admin)
        }
    };
    let pid = server.as_ref().map(|s| s.child.id());
    let http = Arc::new(Http { base: base.clone(), client: reqwest::Client::new() });
    wait_healthy(&http).await?;
    eprintln!("server at {base}; creating {} couriers with {k} stops each…", args.couriers);

    let depots = create_depots(&http, &admin, args.couriers.div_ceil(args.couriers_per_depot.max(1))).await?;
    let couriers =
        create_couriers(&http, &admin, &depots, args.couriers, args.couriers_per_depot.max(1), k).await?;
    let rss_idle = pid.and_then(rss_kb);

    // Connect every courier and one supervisor per depot; wait for catch-up.
    let stop = Arc::new(tokio::sync::Notify::new());
    let ready = Arc::new(Semaphore::new(0));
    let mut courier_subs = futures_util::stream::FuturesOrdered::new();
    for c in &couriers {
        let task = tokio::spawn(subscribe(
            base.clone(),
            c.token.clone(),
            c.route.head_seq,
            k,
            stop.clone(),
            ready.clone(),
        ));
        courier_subs.push_back(task);
    }
    let mut supervisor_subs = JoinSet::new();
    for d in &depots {
        supervisor_subs.spawn(subscribe(
            base.clone(),
            d.supervisor.clone(),
            0,
            0,
            stop.clone(),
            ready.clone(),
        ));
    }
    let sockets = couriers.len() + depots.len();
    tokio::time::timeout(Duration::from_secs(120), ready.acquire_many(sockets as u32))
        .await
        .map_err(|_| "websockets did not all catch up within 120 s")??
        .forget();
    let rss_connected = pid.and_then(rss_kb);
    eprintln!(
        "{sockets} websockets connected; {} calls requested over {} s…",
        couriers.len() * k,
        args.ramp_secs
    );

    // Every courier taps "call" for their stops, spread over the ramp.
    let started = Instant::now();
    let taps_started_ms = callahead_core::clock::wall_ms();
    let mut taps = JoinSet::new();
    let n = couriers.len().max(1);
    for (i, c) in couriers.iter().enumerate() {
        let delay = Duration::from_secs_f64(args.ramp_secs * i as f64 / n as f64);
        let (http, token, stops) = (http.clone(), c.token.clone(), c.route.stops.clone());
        taps.spawn(async move {
            tokio::time::sleep(delay).await;
            for s in stops {
                let body = wire::CreateCall {
                    stop_id: s.stop.id,
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    policy: None,
                };
                let _: wire::CallView = http.send(reqwest::Method::POST, &token, paths::CALLS, &body).await?;
            }
            Ok::<_, Error>(())
        });
    }

    // Wait for every courier to see all its calls finish, sampling RSS.
    let mut peak = rss_connected;
    let mut sampler = tokio::time::interval(Duration::from_millis(500));
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout_secs));
    tokio::pin!(deadline);
    let mut seen_by_courier: Vec<Seen> = Vec::with_capacity(couriers.len());
    let mut taps_left = true;
    while seen_by_courier.len() < couriers.len() {
        tokio::select! {
            t = taps.join_next(), if taps_left => match t {
                Some(r) => r??,
                None => taps_left = false,
            },
            r = courier_subs.next() => match r {
                Some(r) => seen_by_courier.push(r??),
                None => break,
            },
            _ = sampler.tick() => {
                if let Some(now) = pid.and_then(rss_kb) {
                    peak = Some(peak.unwrap_or(0).max(now));
                }
            }
            _ = &mut deadline => {
                eprintln!("timed out: {} couriers still waiting for calls to finish", couriers.len() - seen_by_courier.len());
                break;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.notify_waiters();
    let mut supervisors = Vec::new();
    while let Some(r) = supervisor_subs.join_next().await {
        supervisors.push(r??);
    }
    drop(courier_subs);

    // Lost and duplicated: each courier's socket against the server's replay.
    let (mut lost, mut duplicated, mut unfinished) = (0u64, 0u64, 0u64);
    for (i, c) in couriers.iter().enumerate() {
        let truth = replay(&base, &c.token, c.route.head_seq).await?;
        let Some(seen) = seen_by_courier.get(i) else {
            unfinished += k as u64;
            continue;
        };
        unfinished += k.saturating_sub(seen.finished_calls) as u64;
        let got: std::collections::HashSet<u64> = seen.seqs.iter().copied().collect();
        duplicated += (seen.seqs.len() - got.len()) as u64;
        // Only what the socket could have seen before it closed counts.
        let last = seen.seqs.last().copied().unwrap_or(c.route.head_seq);
        lost += truth.iter().filter(|s| **s <= last && !got.contains(s)).count() as u64;
    }

    // The headline is the call phase: events caused after the first tap.
    // Events from the setup (route imports, 1,010 apps connecting) reach a
    // socket as a replay or amid the connection storm; they are reported
    // apart, since they measure connecting, not pushing call statuses.
    let samples: Vec<(i64, i64, &str)> =
        seen_by_courier.iter().chain(supervisors.iter()).flat_map(|s| s.samples.iter().copied()).collect();
    let mut latencies: Vec<i64> =
        samples.iter().filter(|(origin, ..)| *origin >= taps_started_ms).map(|(_, l, _)| *l).collect();
    latencies.sort_unstable();
    let mut setup: Vec<i64> =
        samples.iter().filter(|(origin, ..)| *origin < taps_started_ms).map(|(_, l, _)| *l).collect();
    setup.sort_unstable();
    let events = latencies.len() as u64;
    let connections = sockets.max(1) as f64;
    let report = Report {
        couriers: couriers.len(),
        supervisors: depots.len(),
        calls: couriers.len() * k,
        events,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0),
        setup_events: setup.len() as u64,
        setup_p99_ms: percentile(&setup, 0.99),
        events_per_s: if elapsed > 0.0 { events as f64 / elapsed } else { 0.0 },
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
    };
    eprintln!(
        "push latency p50 {} ms, p99 {} ms, max {} ms over {} events ({:.0} events/s delivered); lost {}, duplicated {}, unfinished calls {}",
        report.p50_ms, report.p99_ms, report.max_ms, report.events, report.events_per_s, report.lost, report.duplicated, report.unfinished_calls
    );
    eprintln!(
        "setup events (before the first tap): {}, p99 {} ms, max {} ms",
        setup.len(),
        percentile(&setup, 0.99),
        setup.last().copied().unwrap_or(0)
    );
    // Where a tail comes from: slow events by kind, and by the second
    // (from the first tap; negative: setup) their cause happened in.
    let mut by_kind = std::collections::BTreeMap::new();
    let mut by_second = std::collections::BTreeMap::new();
    for (origin, _, kind) in samples.iter().filter(|(_, l, _)| *l >= SLOW_MS) {
        *by_kind.entry(*kind).or_insert(0u64) += 1;
        *by_second.entry((origin - taps_started_ms).div_euclid(1000)).or_insert(0u64) += 1;
    }
    if !by_kind.is_empty() {
        eprintln!("events over {SLOW_MS} ms by kind {by_kind:?}; by second of their cause {by_second:?}");
    }
    if let Some(per) = report.server_rss_per_connection_kb {
        eprintln!(
            "server RSS: {} kB idle, {} kB with {sockets} sockets ({per:.1} kB per connection), peak {} kB",
            rss_idle.unwrap_or(0),
            rss_connected.unwrap_or(0),
            peak.unwrap_or(0)
        );
    }
    drop(server);
    Ok(report)
}

struct LoadDepot {
    depot: wire::Depot,
    supervisor: String,
    integrator: String,
}

struct LoadCourier {
    token: String,
    route: wire::Route,
}

async fn create_depots(http: &Http, admin: &str, n: usize) -> Result<Vec<LoadDepot>, Error> {
    let mut depots = Vec::new();
    for d in 0..n.max(1) {
        let policy = callahead_core::policy::AttemptPolicy {
            max_attempts: 3,
            retry_spacing_secs: 60,
            ring_timeout_secs: 30,
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
) -> Result<Vec<LoadCourier>, Error> {
    let limit = Arc::new(Semaphore::new(16));
    let mut setup = JoinSet::new();
    for i in 0..n {
        let depot = &depots[(i / per_depot).min(depots.len() - 1)];
        let (http, limit, admin) = (http.clone(), limit.clone(), admin.to_string());
        let (depot_id, integrator) = (depot.depot.id, depot.integrator.clone());
        setup.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let path = paths::fill(paths::DEPOT_COURIERS, &[("depot_id", &depot_id.to_string())]);
            let body = wire::CreateCourier { name: format!("courier {i}"), phone: format!("+7990{i:07}") };
            let c: wire::CreatedCourier = http.send(reqwest::Method::POST, &admin, &path, &body).await?;
            let now = chrono::Utc::now();
            let stops = (0..stops_each)
                .map(|s| wire::StopInput {
                    external_id: format!("L{i}-{s}"),
                    customer_name: format!("Customer {i}-{s}"),
                    phone: format!("+7991{i:06}{s:02}"),
                    time_zone: "Europe/Moscow".into(),
                    address: format!("Load street {s}"),
                    window_start: now + chrono::Duration::minutes(30),
                    window_end: now + chrono::Duration::minutes(90),
                    order_numbers: vec![format!("{i}-{s}")],
                    amount: None,
                    location: None,
                    language: None,
                })
                .collect();
            let date = now.date_naive().to_string();
            let path = paths::fill(
                paths::COURIER_ROUTE,
                &[("courier_id", &c.courier.id.to_string()), ("date", &date)],
            );
            let route: wire::Route =
                http.send(reqwest::Method::PUT, &integrator, &path, &wire::RouteImport { stops }).await?;
            Ok::<_, Error>((i, LoadCourier { token: c.token, route }))
        });
    }
    let mut couriers = Vec::with_capacity(n);
    while let Some(r) = setup.join_next().await {
        couriers.push(r??);
    }
    couriers.sort_by_key(|(i, _)| *i);
    Ok(couriers.into_iter().map(|(_, c)| c).collect())
}
