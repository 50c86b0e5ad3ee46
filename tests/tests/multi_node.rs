//! The start of issue #14 part 6 (docs/adr/0011): three `callahead-server`
//! processes on one PostgreSQL database, couriers spread over them, one
//! node SIGKILLed while its calls ring. Then: every call reached its
//! outcome, no attempt was placed twice, the attempts the dead node carried
//! ended `interrupted` and the survivors retried them under new numbers, a
//! client on a surviving node holds every event once in seq order, and
//! `callahead-server leases` reports no stuck lease. Runs when
//! `CALLAHEAD_TEST_PG` names a server (scripts/pg-test-cluster).

use callahead_core::call::AttemptResult;
use callahead_core::wire::{CreateCall, EventKind};
use callahead_core::{CallId, CallStatus};
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, ADMIN};
use callahead_e2e::ws::Follower;
use callahead_e2e::{Api, ServerProcess};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const NODES: usize = 3;
const STOPS_PER_COURIER: usize = 4;
/// A dead node's leases lapse (15 s) and are swept (5 s); then the retries
/// and the remaining calls run at 10× domain time.
const SETTLE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_mid_calls_every_call_reaches_its_outcome_once() {
    let Some(pg) = callahead_server::store::scratch::ScratchDb::create("three_nodes_one_killed") else {
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
    ];
    let mut nodes = Vec::new();
    for n in 0..NODES {
        let node_dir = dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let mut p = ServerProcess::new(&node_dir, ADMIN, &args);
        p.db = pg.url().into();
        p.start().await;
        nodes.push(p);
    }
    let apis: Vec<Api> = nodes.iter().map(|p| Api::new(p.url())).collect();
    // A client on a node that survives, from the start of the log.
    let mut watcher = Follower::connect(&nodes[2].url(), ADMIN, Some(0)).await;

    let d = Depot::create(&apis[0], "North", NODES, quick_policy()).await;
    let mut calls: Vec<CallId> = Vec::new();
    for (i, api) in apis.iter().enumerate() {
        let route = api
            .import_route(
                &d.integrator,
                d.courier_id(i),
                today(),
                stops(i as u32 + 1, STOPS_PER_COURIER, morning()),
            )
            .await
            .expect("route imported");
        // Courier i's device talks to node i.
        for s in &route.stops {
            let body = CreateCall {
                stop_id: s.stop.id,
                idempotency_key: format!("multi-node-tap-{}", s.stop.id),
                policy: None,
            };
            calls.push(api.request_call(d.courier_token(i), &body).await.expect("call requested").id);
        }
    }
    // Node 0 is woken by its own couriers' calls and places them at once:
    // wait until every call's first attempt is out, then kill it.
    let mut placed = HashSet::new();
    while placed.len() < calls.len() {
        let e = watcher
            .until("attempts placed", |e| matches!(e.kind, EventKind::AttemptPlaced { attempt: 1 }))
            .await;
        placed.insert(e.call.expect("call").id);
    }
    nodes[0].kill().await;

    // Every call reaches its outcome on the surviving nodes.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let list = apis[1].calls(ADMIN, None, None).await.expect("calls");
        let open: Vec<_> = list
            .calls
            .iter()
            .filter(|c| !c.call.status.is_terminal())
            .map(|c| (c.call.id, c.call.status))
            .collect();
        if open.is_empty() && list.calls.len() == calls.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "calls still open: {open:?}\n{}",
            nodes[1].server_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // No attempt placed twice; numbers run 1, 2, … per call.
    let log = apis[1].all_events(ADMIN).await;
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one gap-free log in seq order");
    let mut placed: BTreeMap<CallId, Vec<u32>> = BTreeMap::new();
    let mut interrupted = 0;
    for e in &log {
        let Some(call) = &e.call else { continue };
        match e.kind {
            EventKind::AttemptPlaced { attempt } => placed.entry(call.id).or_default().push(attempt),
            EventKind::AttemptEnded { result: AttemptResult::Interrupted, .. } => interrupted += 1,
            _ => {}
        }
    }
    for (call, attempts) in &placed {
        let expected: Vec<u32> = (1..=attempts.len() as u32).collect();
        assert_eq!(attempts, &expected, "call {call}: each attempt number placed once, in order");
    }
    assert!(interrupted > 0, "the killed node carried attempts; they ended interrupted");
    for id in &calls {
        let detail = apis[2].call(ADMIN, *id).await.expect("detail");
        assert!(detail.call.status.is_terminal(), "{detail:?}");
        for a in &detail.attempts {
            assert!(a.ended_at.is_some(), "call {id}: attempt {} never ended", a.number);
        }
        if detail.attempts.first().is_some_and(|a| a.result == Some(AttemptResult::Interrupted)) {
            assert!(
                detail.attempts.len() > 1 || detail.call.status != CallStatus::Scheduled,
                "call {id}: an interrupted attempt is retried under a new number"
            );
        }
    }

    // The surviving node's client holds every event once, in order.
    while watcher.events.len() < log.len() {
        watcher.frame().await.expect("the socket stays open");
    }
    let got: Vec<u64> = watcher.events.iter().map(|e| e.seq).collect();
    assert_eq!(got, seqs, "the client's events: each once, in seq order");

    // Nothing is left stuck behind the dead node.
    let out = std::process::Command::new(callahead_e2e::process::server_bin())
        .args(["leases", "--db", pg.url()])
        .output()
        .expect("run callahead-server leases");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("no stuck lease"), "{stdout}");
    for n in nodes.iter_mut().skip(1) {
        n.kill().await;
    }
}
