//! Two nodes on one PostgreSQL database (issue #14 part 4, docs/adr/0011):
//! a courier's two devices on two nodes at the same instant cannot pass the
//! cap of 5 or create two calls for one key; each due call is placed by one
//! node once; a killed node's attempts are taken over by the other, ended
//! `interrupted` and never placed again.

mod common;

use callahead_core::call::AttemptResult;
use callahead_core::wire::{EventKind, ServerFrame};
use callahead_core::MAX_ACTIVE_CALLS_PER_COURIER;
use common::*;
use reqwest::StatusCode;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Long enough for a dead node's leases to lapse and be swept (15 s + 5 s).
const TAKEOVER: Duration = Duration::from_secs(60);

fn on_postgres() -> bool {
    let yes = callahead_server::store::scratch::suites_on_postgres();
    if !yes {
        eprintln!("skipped on SQLite: one file is one node");
    }
    yes
}

/// Two nodes on one database, each with a frozen domain clock (calls stay
/// in flight until the test moves time).
async fn two_nodes() -> (Harness, Harness, callahead_core::clock::ManualClock) {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let (clock_a, a_shared) = manual_clock();
    let a = Harness::start_with(dir.clone(), config(&dir, a_shared, HashMap::new())).await;
    let (clock_b, b_shared) = manual_clock();
    let b = Harness::start_with(dir.clone(), config(&dir, b_shared, HashMap::new())).await;
    drop(clock_a);
    (a, b, clock_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_devices_on_two_nodes_keep_the_cap_and_the_idempotency_key() {
    if !on_postgres() {
        return;
    }
    let (a, b, _clock) = two_nodes().await;
    let d = a.depot(policy(), 8, 0).await;

    // One tap, sent by both devices, one to each node, at the same instant.
    let (ra, rb) = tokio::join!(
        a.request_call(&d, d.stop_ids[0], "tap-0001"),
        b.request_call(&d, d.stop_ids[0], "tap-0001")
    );
    let statuses: HashSet<StatusCode> = [ra.0, rb.0].into();
    assert!(statuses.contains(&StatusCode::CREATED), "{ra:?} {rb:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::OK), "{ra:?} {rb:?}");
    assert_eq!(ra.1["id"], rb.1["id"], "one call for one key: {ra:?} {rb:?}");

    // Seven more stops at once, alternating nodes: the cap admits four more.
    let requests = d.stop_ids[1..].iter().enumerate().map(|(i, stop)| {
        let node = if i % 2 == 0 { &a } else { &b };
        let d = &d;
        async move { node.request_call(d, *stop, &format!("more-{i:04}")).await }
    });
    let results = futures_util::future::join_all(requests).await;
    let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(created + 1, MAX_ACTIVE_CALLS_PER_COURIER, "{results:?}");
    assert_eq!(refused.len(), 8 - MAX_ACTIVE_CALLS_PER_COURIER, "{results:?}");
    assert!(refused.iter().all(|(_, v)| v["code"] == "too_many_active_calls"), "{refused:?}");

    // Each of the five is placed once, by one node.
    let deadline = tokio::time::Instant::now() + WAIT;
    let placed = loop {
        let (pa, pb) = (a.server().simulator().placed(), b.server().simulator().placed());
        if pa.len() + pb.len() >= MAX_ACTIVE_CALLS_PER_COURIER || tokio::time::Instant::now() > deadline {
            break (pa, pb);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (pa, pb): (HashSet<_>, HashSet<_>) =
        (placed.0.iter().cloned().collect(), placed.1.iter().cloned().collect());
    assert!(pa.is_disjoint(&pb), "an attempt placed by both nodes: {pa:?} {pb:?}");
    assert_eq!(pa.len() + pb.len(), MAX_ACTIVE_CALLS_PER_COURIER, "{pa:?} {pb:?}");
    assert!(pa.iter().chain(&pb).all(|k| k.ends_with("-1")), "first attempts only: {pa:?} {pb:?}");
    assert_eq!(a.server().simulator().duplicate_places() + b.server().simulator().duplicate_places(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_attempts_are_taken_over_and_never_placed_again() {
    if !on_postgres() {
        return;
    }
    let (mut a, b, clock_b) = two_nodes().await;
    let d = a.depot(policy(), 3, 0).await;
    let mut ws = b.ws(&d.supervisor_token, None).await;
    let mut ids = HashSet::new();
    for (i, stop) in d.stop_ids.iter().enumerate() {
        let (s, call) = a.request_call(&d, *stop, &format!("tap-{i:04}")).await;
        assert_eq!(s, StatusCode::CREATED, "{call}");
        ids.insert(call["id"].as_i64().expect("id"));
    }
    // Wait until each call's first attempt was placed (by either node).
    let placed_first = |a: &Harness, b: &Harness| {
        let mut all = a.server().simulator().placed();
        all.extend(b.server().simulator().placed());
        all
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while placed_first(&a, &b).len() < ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "not all placed: {:?}", placed_first(&a, &b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_a: HashSet<String> = a.server().simulator().placed().into_iter().collect();
    let on_b_before: HashSet<String> = b.server().simulator().placed().into_iter().collect();
    assert!(on_a.is_disjoint(&on_b_before));

    // Node a dies with its calls ringing; node b takes them over once a's
    // leases lapse: each ends interrupted (its provider died with it).
    a.server.take().expect("a").kill();
    let a_calls: HashSet<i64> =
        on_a.iter().filter_map(|k| k.strip_prefix("call-")?.split('-').next()?.parse().ok()).collect();
    assert!(!a_calls.is_empty(), "node a placed nothing: {on_b_before:?}");
    let mut interrupted = HashSet::new();
    let deadline = tokio::time::Instant::now() + TAKEOVER;
    while interrupted != a_calls {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = ws.try_frame(left).await else {
            panic!("not taken over in time: interrupted {interrupted:?} of {a_calls:?}");
        };
        if let ServerFrame::Event { event } = frame {
            if let EventKind::AttemptEnded { attempt: 1, result: AttemptResult::Interrupted } = event.kind {
                interrupted.insert(event.call.expect("call").id.0);
            }
        }
    }
    // The retry goes within a minute (ADR 0002): attempt 2, never 1 again.
    clock_b.advance(chrono::Duration::seconds(61));
    let deadline = tokio::time::Instant::now() + WAIT;
    let wanted: HashSet<String> = a_calls.iter().map(|id| format!("call-{id}-2")).collect();
    loop {
        let on_b: HashSet<String> = b.server().simulator().placed().into_iter().collect();
        assert!(on_b.is_disjoint(&on_a), "node b placed an attempt node a had placed: {on_b:?} {on_a:?}");
        if wanted.is_subset(&on_b) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "attempt 2 not placed: {on_b:?}, wanted {wanted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.server().simulator().duplicate_places(), 0);
}

/// A node's name (`--node-id`, docs/adr/0011): a second running node under
/// it refuses to start, and a node restarted under it takes its unfinished
/// attempts back during its start, before it answers a request, instead of
/// waiting for its leases to lapse.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_under_its_name_takes_its_work_back_at_once() {
    if !on_postgres() {
        return;
    }
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let named = |clock| {
        let mut c = config(&dir, clock, HashMap::new());
        c.node_id = Some("depot-north-1".into());
        c
    };
    let (_frozen, shared) = manual_clock();
    let mut a = Harness::start_with(dir.clone(), named(shared.clone())).await;
    let twin = callahead_server::RunningServer::start(named(shared.clone())).await;
    let Err(e) = twin else { panic!("a second node under a running node's name started") };
    assert!(e.to_string().contains("depot-north-1"), "{e}");

    let d = a.depot(policy(), 2, 0).await;
    for (i, stop) in d.stop_ids.iter().enumerate() {
        let (s, call) = a.request_call(&d, *stop, &format!("named-node-{i:04}")).await;
        assert_eq!(s, StatusCode::CREATED, "{call}");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.server().simulator().placed().len() < d.stop_ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "not placed: {:?}", a.server().simulator().placed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.server.take().expect("a").kill();

    // Back under its name: by the time it serves, no attempt is open, well
    // inside the 15 s its leases would otherwise still run.
    let b = Harness::start_with(dir.clone(), named(shared)).await;
    let (s, calls) = b.get("/v1/calls", ADMIN).await;
    assert_eq!(s, StatusCode::OK, "{calls}");
    let calls = calls["calls"].as_array().expect("calls").clone();
    assert_eq!(calls.len(), d.stop_ids.len());
    for c in &calls {
        let attempts = c["attempts"].as_array().expect("attempts");
        assert!(
            attempts.iter().all(|a| !a["ended_at"].is_null()),
            "an attempt of the node's earlier life is still open: {c}"
        );
        assert_eq!(attempts[0]["result"], "interrupted", "{c}");
    }
    assert_eq!(b.server().simulator().duplicate_places(), 0);
}

/// Stuck leases are visible (docs/adr/0011): `/metrics` carries the gauges,
/// and `callahead-server leases` lists a lease held by a node that is gone
/// (nobody left to sweep it) and exits 1. Runs on both engines: SQLite has
/// one node and never a stuck lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_leases_are_reported_by_metrics_and_the_leases_command() {
    use callahead_server::store::leases::{self, Kind, LEASE_TTL_MS};
    use callahead_server::store::scratch::{off_runtime, suites_on_postgres, ScratchDb};
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let mut h = Harness::start_with(dir.clone(), config(&dir, fast_clock(), HashMap::new())).await;
    let (s, text) = h.get("/metrics", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().expect("text").to_owned();
    assert!(text.contains("callahead_leases_stuck 0"), "{text}");
    assert!(text.contains("callahead_nodes_alive 1"), "{text}");
    h.server.take().expect("server").shutdown().await;

    let db = db_path(&dir);
    let run = |db: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callahead-server"))
            .args(["leases", "--db"])
            .arg(db)
            .output()
            .expect("run callahead-server leases")
    };
    let out = run(&db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("no stuck lease"), "{stdout}");
    if !suites_on_postgres() {
        return;
    }
    // A node that claimed an endpoint long ago and died, with no node left.
    let url = db.to_string_lossy().into_owned();
    off_runtime(|| {
        let conn = ScratchDb::connect(&url);
        leases::register(&conn, "gone-node", 0).expect("register");
        leases::claim(&conn, "gone-node", Kind::Webhook, &[42], 0, LEASE_TTL_MS).expect("claim");
    });
    let out = run(&db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("webhook 42") && stdout.contains("owner gone-node epoch 1"), "{stdout}");
    assert!(stdout.contains("gone-node  silent"), "{stdout}");
}
