//! Issue #14 part 6 (docs/adr/0011, docs/deploy.md): three `callahead-server`
//! processes on one PostgreSQL database behind nginx running the documented
//! configuration with one `server` line per node. Couriers' apps (real client
//! cores) talk to nginx only, other couriers' devices to one node each, and a
//! webhook receiver takes the depot's events. In the middle of the morning
//! the node holding the most courier sockets is SIGKILLed while its calls
//! ring; it comes back later on its own port, and the morning goes on.
//!
//! Then: every call reached its outcome; no attempt was placed twice; the
//! attempts the dead node carried ended `interrupted` and were retried under
//! new numbers; every app holds every event of its scope exactly once, in
//! order, although its socket moved to another node; the receiver got every
//! event in order, at most the one in flight at the kill twice; a client on
//! the restarted node replays the same log; and `callahead-server leases`
//! reports no stuck lease. Runs when `CALLAHEAD_TEST_PG` names a server
//! (scripts/pg-test-cluster) and nginx is installed (scripts/test installs it).

use callahead_core::call::AttemptResult;
use callahead_core::client::ConnectionState;
use callahead_core::wire::{paths, CreateCall, CreateWebhook, CreatedWebhook, Event, EventKind};
use callahead_core::{CallId, CallStatus, StopId};
use callahead_e2e::nginx::{self, Nginx};
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, ADMIN};
use callahead_e2e::webhook_receiver::Receiver;
use callahead_e2e::ws::{self, Follower};
use callahead_e2e::{Api, Phone, ServerProcess};
use callahead_server::store::scratch::{peek, ScratchDb};
use reqwest::Method;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const NODES: usize = 3;
/// Couriers whose app (a client core) reaches the nodes through nginx.
const APPS: usize = 6;
/// Couriers whose device talks to one node directly: node `i % NODES`, so
/// every node is woken by calls of its own.
const DEVICES: usize = 3;
/// Stops per courier: the first half is called before the kill, the second
/// after the dead node is back.
const STOPS_PER_COURIER: usize = 4;
/// A dead node's leases lapse (15 s) and are swept (5 s); then the retries
/// and the remaining calls run at 10× domain time.
const SETTLE: Duration = Duration::from_secs(240);
const SECRET: &str = "whsec_multi_node_receiver_secret_0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behind_nginx_one_killed_and_restarted_every_call_and_event_once() {
    let Some(pg) = ScratchDb::create("three_nodes_one_killed") else {
        return;
    };
    let Some(nginx_bin) = nginx::bin() else {
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let start = morning().to_rfc3339();
    let args = [
        "--clock-start",
        start.as_str(),
        "--time-scale",
        "10",
        "--sim-ring-secs",
        "20",
        "40",
        "--sim-fail-rate",
        "0",
        // The receiver listens on loopback, which webhooks may not reach
        // unless the operator allows it (docs/security.md).
        "--outbound-allow",
        "127.0.0.0/8",
    ];
    let mut nodes = Vec::new();
    for n in 0..NODES {
        let node_dir = dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let name = format!("node-{n}");
        let mut p = ServerProcess::new(&node_dir, ADMIN, &args);
        // A name per node, kept across its restart (docs/deploy.md).
        p.args.extend(["--node-id".to_owned(), name]);
        p.db = pg.url().into();
        p.port = free_port();
        p.start().await;
        nodes.push(p);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(ServerProcess::addr).collect();
    let lb = Nginx::start(&nginx_bin, &addrs).await;
    let lb_url = format!("http://{}", lb.addr);
    let api = Api::new(&lb_url);
    let direct: Vec<Api> = nodes.iter().map(|p| Api::new(p.url())).collect();

    let d = Depot::create(&api, "North", APPS + DEVICES, quick_policy()).await;
    let rx = Receiver::start(SECRET).await;
    let hooks = paths::fill(paths::DEPOT_WEBHOOKS, &[("depot_id", &d.depot.id.to_string())]);
    let hook = CreateWebhook {
        url: rx.url(),
        event_types: vec![],
        max_attempts: None,
        secret: Some(SECRET.into()),
        after_seq: None,
    };
    let _: CreatedWebhook =
        api.send(Method::POST, Some(&d.integrator), &hooks, Some(&hook)).await.expect("webhook created");

    let mut routes: Vec<Vec<StopId>> = Vec::new();
    for c in 0..APPS + DEVICES {
        let route = api
            .import_route(
                &d.integrator,
                d.courier_id(c),
                today(),
                stops(c as u32 + 1, STOPS_PER_COURIER, morning()),
            )
            .await
            .expect("route imported");
        routes.push(route.stops.iter().map(|s| s.stop.id).collect());
    }
    let mut phones = Vec::new();
    for c in 0..APPS {
        let phone = Phone::new(lb.addr, d.courier_token(c)).await;
        phone.client().sync_route(today()).await.expect("sync through nginx");
        phone.wait_online().await;
        phones.push(phone);
    }
    let tap = |c: usize, half: std::ops::Range<usize>| routes[c][half].to_vec();
    let first = 0..STOPS_PER_COURIER / 2;
    let second = STOPS_PER_COURIER / 2..STOPS_PER_COURIER;

    // The first half of the morning: apps tap through nginx, devices ask
    // their node.
    let mut calls: Vec<CallId> = Vec::new();
    for (c, phone) in phones.iter().enumerate() {
        phone.client().request_calls(&tap(c, first.clone())).expect("tap");
    }
    for c in APPS..APPS + DEVICES {
        calls.extend(request(&direct[c % NODES], d.courier_token(c), &tap(c, first.clone())).await);
    }
    let wave = (APPS + DEVICES) * first.len();
    let mut watcher = Follower::connect(&nodes[NODES - 1].url(), ADMIN, Some(0)).await;
    let mut placed = HashSet::new();
    while placed.len() < wave {
        let e = watcher
            .until("first attempts placed", |e| matches!(e.kind, EventKind::AttemptPlaced { attempt: 1 }))
            .await;
        placed.insert(e.call.expect("call").id);
    }

    // Kill the node that carries both ringing calls and courier sockets.
    let victim = victim(&nodes, pg.url()).await;
    let watching = if victim == NODES - 1 { 0 } else { NODES - 1 };
    if watching != NODES - 1 {
        watcher = Follower::connect(&nodes[watching].url(), ADMIN, Some(0)).await;
    }
    let live_before: Vec<usize> = phones.iter().map(|p| p.rec.snapshot().connection.len()).collect();
    nodes[victim].kill().await;

    // Its attempts end interrupted once its leases lapse; then it comes back
    // on its own port, behind the same nginx line.
    watcher
        .until("a dead node's attempt taken over", |e| {
            matches!(e.kind, EventKind::AttemptEnded { result: AttemptResult::Interrupted, .. })
        })
        .await;
    nodes[victim].start().await;

    // The rest of the morning, the restarted node among the others.
    for (c, phone) in phones.iter().enumerate() {
        phone.client().request_calls(&tap(c, second.clone())).expect("tap");
    }
    for c in APPS..APPS + DEVICES {
        calls.extend(request(&direct[c % NODES], d.courier_token(c), &tap(c, second.clone())).await);
    }
    let all_stops: Vec<StopId> = routes.iter().flatten().copied().collect();

    // Every call reaches its outcome, and its last attempt ends.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let list = api.calls(ADMIN, None, None).await.expect("calls");
        let open: Vec<_> = list
            .calls
            .iter()
            .filter(|c| !c.call.status.is_terminal() || c.attempts.iter().any(|a| a.ended_at.is_none()))
            .map(|c| (c.call.id, c.call.status))
            .collect();
        if open.is_empty() && list.calls.len() == all_stops.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls still open: {open:?}\n{}",
            nodes[watching].server_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // One gap-free log; each attempt number placed once, in order.
    let log = api.all_events(ADMIN).await;
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one gap-free log in seq order");
    let mut attempts: BTreeMap<CallId, Vec<u32>> = BTreeMap::new();
    let mut interrupted = 0;
    for e in &log {
        let Some(call) = &e.call else { continue };
        match e.kind {
            EventKind::AttemptPlaced { attempt } => attempts.entry(call.id).or_default().push(attempt),
            EventKind::AttemptEnded { result: AttemptResult::Interrupted, .. } => interrupted += 1,
            _ => {}
        }
    }
    assert_eq!(attempts.len(), all_stops.len(), "every call was placed");
    for (call, numbers) in &attempts {
        let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, &expected, "call {call}: each attempt number placed once, in order");
    }
    assert!(interrupted > 0, "the killed node carried attempts; they ended interrupted");
    for call in api.calls(ADMIN, None, None).await.expect("calls").calls {
        assert!(call.call.status.is_terminal(), "{call:?}");
        if call.attempts.first().is_some_and(|a| a.result == Some(AttemptResult::Interrupted)) {
            assert!(
                call.attempts.len() > 1 || call.call.status != CallStatus::Scheduled,
                "call {}: an interrupted attempt is retried under a new number",
                call.call.id
            );
        }
    }

    // Every app: its scope exactly once, in order, across the move.
    for (c, phone) in phones.iter().enumerate() {
        phone.assert_heard_its_scope(&log, d.courier_id(c), &format!("app {c}")).await;
    }
    let moved = phones
        .iter()
        .zip(&live_before)
        .filter(|(p, before)| {
            p.rec.snapshot().connection[**before..].iter().any(|s| *s != ConnectionState::Online)
        })
        .count();
    assert!(moved > 0, "an app whose socket was on the killed node reconnected through nginx");

    // The receiver: every event of the depot, in seq order; only a delivery
    // in flight when the node died may come twice.
    let depot_log = settled_depot_log(&api, &d, &rx).await;
    let want: Vec<u64> = depot_log.iter().map(|e| e.seq).collect();
    let got: Vec<u64> = rx.inbox().acked.iter().map(|g| g.event.seq).collect();
    assert!(rx.inbox().acked.iter().all(|g| g.verified), "every delivery verifies against the secret");
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct, want, "the receiver got the depot's events in seq order");
    assert!(got.len() - distinct.len() <= 1, "at most the delivery in flight came twice: {got:?}");

    eprintln!(
        "multi-node: killed node {victim}; {} events, {} calls, {interrupted} attempts interrupted, \
         {moved} apps moved, {} deliveries repeated",
        log.len(),
        attempts.len(),
        got.len() - distinct.len()
    );

    // The restarted node replays the same log.
    let mut late = Follower::connect(&nodes[victim].url(), ADMIN, Some(0)).await;
    while late.events.len() < log.len() {
        late.frame().await.expect("the socket stays open");
    }
    let replayed: Vec<u64> = late.events.iter().map(|e| e.seq).take(seqs.len()).collect();
    assert_eq!(replayed, seqs, "the restarted node replays every event once, in order");
    while watcher.events.len() < log.len() {
        watcher.frame().await.expect("the socket stays open");
    }
    let followed: Vec<u64> = watcher.events.iter().map(|e| e.seq).take(seqs.len()).collect();
    assert_eq!(followed, seqs, "a client on a surviving node: every event once, in order");
    drop(phones);

    // Nothing is left stuck behind the dead node.
    let out = std::process::Command::new(callahead_e2e::process::server_bin())
        .args(["leases", "--db", pg.url()])
        .output()
        .expect("run callahead-server leases");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("no stuck lease"), "{stdout}");
    for n in nodes.iter_mut() {
        n.kill().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

async fn request(api: &Api, token: &str, stops: &[StopId]) -> Vec<CallId> {
    let mut ids = Vec::new();
    for s in stops {
        let body = CreateCall { stop_id: *s, idempotency_key: format!("multi-node-tap-{s}"), policy: None };
        ids.push(api.request_call(token, &body).await.expect("call requested").id);
    }
    ids
}

/// The node to kill: one with courier sockets (from its /metrics) that holds
/// the most call leases (from the database: a lease's owner is a node's
/// `--node-id`).
async fn victim(nodes: &[ServerProcess], db: &str) -> usize {
    let owners: Vec<String> =
        peek(Path::new(db), "SELECT owner FROM leases WHERE kind = 'call' AND owner IS NOT NULL", &[])
            .expect("call leases");
    let http = reqwest::Client::new();
    let mut best = None;
    for (n, node) in nodes.iter().enumerate() {
        let id = format!("node-{n}");
        let leases = owners.iter().filter(|o| **o == id).count();
        let metrics = http
            .get(format!("{}/metrics", node.url()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics");
        let sockets = metrics
            .lines()
            .find_map(|l| l.strip_prefix("callahead_websocket_connections{role=\"courier\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if sockets >= 1.0 && leases > best.map_or(0, |(_, l)| l) {
            best = Some((n, leases));
        }
    }
    best.map(|(n, _)| n).expect("some node holds both ringing calls and an app's socket")
}

/// The depot's log as its unfiltered endpoint gets it, once the receiver
/// holds all of it and nothing more was logged meanwhile.
async fn settled_depot_log(api: &Api, d: &Depot, rx: &Receiver) -> Vec<Event> {
    let depot_log = || async {
        ws::replay(&api.base, &d.supervisor, 0)
            .await
            .into_iter()
            .filter(|e| !EventKind::OPT_IN.contains(&e.kind.type_name()))
            .collect::<Vec<_>>()
    };
    loop {
        let log = depot_log().await;
        let want: BTreeSet<u64> = log.iter().map(|e| e.seq).collect();
        rx.wait_until("every event of the depot", |i| i.acked_seqs().is_superset(&want)).await;
        if depot_log().await.len() == log.len() {
            return log;
        }
    }
}
