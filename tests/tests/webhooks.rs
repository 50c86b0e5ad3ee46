//! Outbound webhooks end to end (issue #5): a real HTTP receiver on
//! loopback that fails, goes away and comes back; the server's own event
//! log is the reference. Every delivery is checked against its signature.

use callahead_core::wire::{
    self, paths, CreateCall, CreateWebhook, CreatedWebhook, DeadLetterList, Event, ReplayStarted,
    RotateWebhookSecret, RotatedWebhookSecret, Webhook, WebhookFailureList,
};
use callahead_core::StopId;
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::webhook_receiver::{verifies, Got, Receiver};
use callahead_e2e::{within, ws, Api};
use callahead_server::providers::simulator::SimConfig;
use reqwest::Method;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

/// Domain seconds per real second: the 5 s first backoff takes 50 ms.
const SPEED: f64 = 100.0;
const SECRET: &str = "whsec_e2e_receiver_secret_0123456789";

/// Asks `check` again until it answers, within the harness's bound. For
/// state only visible through the API (no event to wait on).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

fn hook_path(template: &str, id: i64) -> String {
    paths::fill(template, &[("webhook_id", &id.to_string())])
}

async fn create_webhook(api: &Api, depot: &Depot, body: &CreateWebhook) -> CreatedWebhook {
    let path = paths::fill(paths::DEPOT_WEBHOOKS, &[("depot_id", &depot.depot.id.to_string())]);
    api.send(Method::POST, Some(&depot.integrator), &path, Some(body)).await.expect("webhook created")
}

fn webhook_to(url: String) -> CreateWebhook {
    CreateWebhook { url, event_types: vec![], max_attempts: None, secret: None, after_seq: None }
}

async fn webhook(api: &Api, depot: &Depot, id: i64) -> Webhook {
    api.send(Method::GET, Some(&depot.integrator), &hook_path(paths::WEBHOOK, id), None::<&()>)
        .await
        .expect("get")
}

async fn failures(api: &Api, depot: &Depot, id: i64) -> WebhookFailureList {
    let path = format!("{}?limit=1000", hook_path(paths::WEBHOOK_FAILURES, id));
    api.send(Method::GET, Some(&depot.integrator), &path, None::<&()>).await.expect("failures")
}

/// Imports `n` stops for courier `courier` and requests a smart call for each.
async fn route_and_calls(ts: &TestServer, depot: &Depot, courier: usize, tag: u32, n: usize) -> Vec<StopId> {
    let route = ts
        .api
        .import_route(&depot.integrator, depot.courier_id(courier), today(), stops(tag, n, ts.now()))
        .await
        .expect("route imported");
    let ids: Vec<StopId> = route.stops.iter().map(|s| s.stop.id).collect();
    for id in &ids {
        let body = CreateCall { stop_id: *id, idempotency_key: format!("tap-for-stop-{id}"), policy: None };
        ts.api.request_call(depot.courier_token(courier), &body).await.expect("call requested");
    }
    ids
}

async fn all_calls_over(ts: &TestServer, depot: &Depot, expected: usize) -> bool {
    let calls = ts.api.calls(&depot.supervisor, None, Some(today())).await.expect("calls").calls;
    // A call is over before its last attempt is (a bridge to the courier
    // and the hang-up come after the key): wait for both, so no event follows.
    calls.len() == expected
        && calls
            .iter()
            .all(|c| c.call.status.is_terminal() && c.attempts.iter().all(|a| a.ended_at.is_some()))
}

/// The depot's whole event log, as the server itself replays it, without
/// the opt-in kinds an unfiltered endpoint does not get.
async fn depot_log(ts: &TestServer, depot: &Depot) -> Vec<Event> {
    let log = ws::replay(&ts.api.base, &depot.supervisor, 0).await;
    log.into_iter()
        .filter(|e| !callahead_core::wire::EventKind::OPT_IN.contains(&e.kind.type_name()))
        .collect()
}

/// The depot's log once the receiver has all of it and nothing more was
/// logged meanwhile: a call is over before everything it causes is (the
/// reschedule SMS is sent and logged after the key), so one read of the log
/// may miss an event the receiver then gets.
async fn settled_log(ts: &TestServer, depot: &Depot, rx: &Receiver) -> Vec<Event> {
    loop {
        let log = depot_log(ts, depot).await;
        let want: BTreeSet<u64> = log.iter().map(|e| e.seq).collect();
        rx.wait_until("every event of the depot", |i| i.acked_seqs().is_superset(&want)).await;
        if depot_log(ts, depot).await.len() == log.len() {
            return log;
        }
    }
}

/// The checks every test makes on what the receiver acknowledged: each
/// signature verified, body and header agree, every event of `log` exactly
/// as the server has it, nothing else, and seq order (hence per-stop order).
/// Returns the seqs acknowledged more than once.
fn check_deliveries(acked: &[Got], log: &[Event]) -> BTreeSet<u64> {
    assert!(acked.iter().all(|g| g.verified), "every delivery verifies against the secret");
    assert!(acked.iter().all(|g| g.header_seq == g.event.seq));
    let by_seq: HashMap<u64, &Event> = log.iter().map(|e| (e.seq, e)).collect();
    for g in acked {
        assert_eq!(Some(&&g.event), by_seq.get(&g.event.seq), "delivered as logged");
    }
    let got: BTreeSet<u64> = acked.iter().map(|g| g.event.seq).collect();
    let want: BTreeSet<u64> = by_seq.keys().copied().collect();
    assert_eq!(got, want, "every event of the depot, none missing, none extra");
    let mut per_stop: BTreeMap<Option<StopId>, Vec<u64>> = BTreeMap::new();
    for g in acked {
        per_stop.entry(g.event.stop_id).or_default().push(g.event.seq);
    }
    for (stop, seqs) in per_stop {
        assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "stop {stop:?} in order: {seqs:?}");
    }
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for g in acked {
        *count.entry(g.event.seq).or_default() += 1;
    }
    count.into_iter().filter(|(_, n)| *n > 1).map(|(s, _)| s).collect()
}

/// Documented duplicates: the server saw no answer (connection error,
/// timeout) for a delivery the receiver had in fact processed.
fn only_documented_duplicates(dups: &BTreeSet<u64>, failures: &WebhookFailureList) {
    for seq in dups {
        assert!(
            failures.failures.iter().any(|f| f.seq == *seq && f.status.is_none()),
            "seq {seq} delivered twice without a lost answer: {failures:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_and_goes_down_still_gets_every_event_signed_and_in_order() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 2, quick_policy()).await;
    let mut rx = Receiver::start(SECRET).await;
    rx.inbox().fail_next = 3;
    let created = create_webhook(
        &ts.api,
        &depot,
        &CreateWebhook { secret: Some(SECRET.into()), ..webhook_to(rx.url()) },
    )
    .await;
    assert_eq!(created.secret, SECRET);
    let id = created.webhook.id;
    // A second endpoint, only for finished calls, whose receiver stays up.
    let finished_rx = Receiver::start(SECRET).await;
    let only_finished = CreateWebhook {
        event_types: vec!["call_finished".into()],
        secret: Some(SECRET.into()),
        ..webhook_to(finished_rx.url())
    };
    create_webhook(&ts.api, &depot, &only_finished).await;

    // Courier 0's app comes online and goes: app_connection events, which an
    // endpoint without a filter does not get (opt-in; see docs/webhooks.md).
    ws::replay(&ts.api.base, depot.courier_token(0), 0).await;
    eventually("the app_connection event in the log", || async {
        let raw = ws::replay(&ts.api.base, &depot.supervisor, 0).await;
        raw.iter().any(|e| e.kind.type_name() == "app_connection").then_some(())
    })
    .await;

    // Courier 0's customers are called; the receiver refuses the first three.
    route_and_calls(&ts, &depot, 0, 61, 4).await;
    rx.wait_until("deliveries acknowledged after three 500s", |i| i.refused == 3 && i.acked.len() >= 3).await;

    // The receiver goes away while courier 1's customers are called.
    rx.down().await;
    route_and_calls(&ts, &depot, 1, 62, 4).await;
    eventually("calls finished and refused connections recorded", || async {
        let f = failures(&ts.api, &depot, id).await;
        let refused = f.failures.iter().filter(|f| f.status.is_none()).count();
        (all_calls_over(&ts, &depot, 8).await && refused >= 2).then_some(())
    })
    .await;
    let pending = webhook(&ts.api, &depot, id).await.pending.expect("an event waits for the receiver");
    assert!(pending.failed_attempts >= 2, "{pending:?}");

    // The other endpoint was not held back, and got only what it asked for.
    let log = depot_log(&ts, &depot).await;
    let finished: Vec<u64> = log
        .iter()
        .filter(|e| matches!(e.kind, wire::EventKind::CallFinished { .. }))
        .map(|e| e.seq)
        .collect();
    assert_eq!(finished.len(), 8);
    finished_rx
        .wait_until("the finished calls at the other endpoint", |i| i.acked.len() >= finished.len())
        .await;
    let other = finished_rx.inbox().acked.clone();
    assert_eq!(
        other.iter().map(|g| g.event.seq).collect::<Vec<_>>(),
        finished,
        "only call_finished, in order"
    );
    assert!(other.iter().all(|g| g.verified));

    // Back on the same port: everything arrives.
    rx.up().await;
    let log = settled_log(&ts, &depot, &rx).await;
    let want: BTreeSet<u64> = log.iter().map(|e| e.seq).collect();

    let acked = rx.inbox().acked.clone();
    let dups = check_deliveries(&acked, &log);
    let f = failures(&ts.api, &depot, id).await;
    only_documented_duplicates(&dups, &f);
    let seqs: Vec<u64> = acked.iter().map(|g| g.event.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "one endpoint, one order: the log's");
    assert!(f.failures.iter().filter(|f| f.status == Some(500)).count() == 3, "{f:?}");
    let kinds: BTreeSet<&str> = log.iter().map(|e| e.kind.type_name()).collect();
    assert!(kinds.contains("call_finished") && kinds.contains("route_replaced"), "{kinds:?}");

    // Every delivery carries its event's audit link, and the chain in the
    // database passes through each one a CRM could keep (docs/audit.md).
    let mut verifier = callahead_server::audit::Verifier::default();
    for g in &acked {
        let hash = callahead_server::audit::parse_hex(&g.audit_hash)
            .unwrap_or_else(|| panic!("seq {}: audit hash {:?}", g.event.seq, g.audit_hash));
        verifier = verifier.expect(g.event.seq, hash);
    }
    // Blocking reads (PostgreSQL's client may not block a runtime thread).
    let db = ts.db_path();
    let verified = tokio::task::spawn_blocking(move || callahead_server::store::audit::verify(&db, verifier))
        .await
        .expect("join")
        .expect("the chain holds");
    assert!(verified.head_seq >= *want.last().expect("events"));

    let head = *want.last().expect("events");
    let state = eventually("the last delivery recorded", || async {
        let w = webhook(&ts.api, &depot, id).await;
        (w.cursor == head).then_some(w)
    })
    .await;
    assert_eq!((state.pending, state.dead_letters), (None, 0));
    let refused = f.failures.iter().filter(|f| f.status.is_none()).count();
    assert!(f.failures.iter().filter(|f| f.status.is_none()).all(|f| f.error.starts_with("cannot connect")));
    println!(
        "webhooks e2e: {} events, {} deliveries acknowledged, 3 answered 500, {refused} connection failures \
         while down, {} duplicates",
        log.len(),
        acked.len(),
        dups.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_and_the_retry_state_survive_a_crash() {
    let mut ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 2, quick_policy()).await;
    let mut rx = Receiver::start("").await;
    let created = create_webhook(&ts.api, &depot, &webhook_to(rx.url())).await;
    rx.inbox().secret = created.secret.clone();
    let id = created.webhook.id;

    route_and_calls(&ts, &depot, 0, 71, 2).await;
    eventually("courier 0's calls finished", || async { all_calls_over(&ts, &depot, 2).await.then_some(()) })
        .await;
    let log = settled_log(&ts, &depot, &rx).await;
    let before: BTreeSet<u64> = log.iter().map(|e| e.seq).collect();
    rx.wait_until("courier 0's events", |i| i.acked_seqs() == before).await;

    // Receiver down, more events, and the server crashes mid-retry.
    rx.down().await;
    route_and_calls(&ts, &depot, 1, 72, 2).await;
    let failed = eventually("a delivery failing", || async {
        webhook(&ts.api, &depot, id).await.pending.filter(|p| p.failed_attempts >= 1)
    })
    .await;
    ts.kill();
    ts.restart().await;
    let after_restart = webhook(&ts.api, &depot, id).await;
    assert_eq!(after_restart.cursor, *before.last().expect("events"), "the cursor is durable");
    let pending = after_restart.pending.expect("the retry state is durable");
    assert!(pending.seq == failed.seq && pending.failed_attempts >= failed.failed_attempts, "{pending:?}");

    rx.up().await;
    eventually("every call finished after the restart", || async {
        all_calls_over(&ts, &depot, 4).await.then_some(())
    })
    .await;
    let log = settled_log(&ts, &depot, &rx).await;
    let acked = rx.inbox().acked.clone();
    let dups = check_deliveries(&acked, &log);
    assert!(dups.is_disjoint(&before), "nothing delivered before the crash is delivered again: {dups:?}");
    only_documented_duplicates(&dups, &failures(&ts.api, &depot, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_given_up_become_dead_letters_and_replay_on_request() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let rx = Receiver::start(SECRET).await;
    rx.inbox().failing = true;
    let body = CreateWebhook {
        event_types: vec!["route_replaced".into()],
        max_attempts: Some(2),
        secret: Some(SECRET.into()),
        ..webhook_to(rx.url())
    };
    let id = create_webhook(&ts.api, &depot, &body).await.webhook.id;

    // Three imports while the receiver answers 500: two tries each, then dead.
    let import = |tag: u32| {
        let (api, integrator, courier) = (ts.api.clone(), depot.integrator.clone(), depot.courier_id(0));
        let from = ts.now();
        async move { api.import_route(&integrator, courier, today(), stops(tag, 1, from)).await.expect("import") }
    };
    let mut dead_seqs = Vec::new();
    for tag in 81..84 {
        let route = import(tag).await;
        dead_seqs.push(route.head_seq);
    }
    let state = eventually("three dead letters", || async {
        let w = webhook(&ts.api, &depot, id).await;
        (w.dead_letters == 3 && w.pending.is_none()).then_some(w)
    })
    .await;
    assert_eq!(state.cursor, dead_seqs[2], "the cursor moved past the dead letters");
    let path = hook_path(paths::WEBHOOK_DEAD_LETTERS, id);
    let dead: DeadLetterList =
        ts.api.send(Method::GET, Some(&depot.integrator), &path, None::<&()>).await.expect("dead letters");
    assert_eq!(dead.dead_letters.iter().map(|d| d.seq).collect::<Vec<_>>(), dead_seqs);
    assert!(dead.dead_letters.iter().all(|d| d.attempts == 2 && d.last_error == "HTTP 500" && !d.replaying));
    let f = failures(&ts.api, &depot, id).await;
    assert_eq!(f.failures.len(), 6);
    assert!(f.failures.iter().all(|f| f.status == Some(500)));
    let mut tries: Vec<(u64, u32)> = f.failures.iter().map(|f| (f.seq, f.attempt)).collect();
    tries.sort();
    assert_eq!(tries, dead_seqs.iter().flat_map(|s| [(*s, 1), (*s, 2)]).collect::<Vec<_>>());

    // The receiver recovers: new events flow at once, the dead wait for a replay.
    rx.inbox().failing = false;
    let fourth = import(84).await.head_seq;
    rx.wait_until("the new event", |i| i.acked_seqs().contains(&fourth)).await;
    assert_eq!(rx.inbox().acked.len(), 1, "dead letters are not retried on their own");

    let one = paths::fill(
        paths::WEBHOOK_REPLAY,
        &[("webhook_id", &id.to_string()), ("seq", &dead_seqs[0].to_string())],
    );
    let started: ReplayStarted =
        ts.api.send(Method::POST, Some(&depot.integrator), &one, None::<&()>).await.expect("replay one");
    assert_eq!(started.replaying, 1);
    rx.wait_until("the replayed dead letter", |i| i.acked_seqs().contains(&dead_seqs[0])).await;
    let all = hook_path(paths::WEBHOOK_REPLAY_ALL, id);
    let started: ReplayStarted =
        ts.api.send(Method::POST, Some(&depot.integrator), &all, None::<&()>).await.expect("replay all");
    assert_eq!(started.replaying, 2);
    rx.wait_until("every dead letter", |i| i.acked.len() == 4).await;

    let acked = rx.inbox().acked.clone();
    let order: Vec<u64> = acked.iter().map(|g| g.event.seq).collect();
    assert_eq!(
        order,
        vec![fourth, dead_seqs[0], dead_seqs[1], dead_seqs[2]],
        "replays come after newer events"
    );
    assert!(acked
        .iter()
        .all(|g| g.verified && matches!(g.event.kind, wire::EventKind::RouteReplaced { .. })));
    let state = eventually("the replays recorded", || async {
        let w = webhook(&ts.api, &depot, id).await;
        (w.dead_letters == 0).then_some(w)
    })
    .await;
    assert_eq!(state.cursor, fourth);
    let again = ts.api.send::<ReplayStarted>(Method::POST, Some(&depot.integrator), &one, None::<&()>).await;
    assert_eq!(again.expect_err("no longer dead").body.code, wire::ErrorCode::DeadLetterNotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_secret_rotation_both_secrets_verify_then_only_the_new_one() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let rx = Receiver::start(SECRET).await;
    let created = create_webhook(
        &ts.api,
        &depot,
        &CreateWebhook { secret: Some(SECRET.into()), ..webhook_to(rx.url()) },
    )
    .await;
    let id = created.webhook.id;
    let import = |tag: u32| {
        let (api, integrator, courier) = (ts.api.clone(), depot.integrator.clone(), depot.courier_id(0));
        let from = ts.now();
        async move { api.import_route(&integrator, courier, today(), stops(tag, 1, from)).await.expect("import") }
    };

    // Rotate with a 200 s overlap (2 s of real time at this speed).
    let body = RotateWebhookSecret { secret: None, overlap_secs: Some(200) };
    let rotated: RotatedWebhookSecret = ts
        .api
        .send(
            Method::POST,
            Some(&depot.integrator),
            &hook_path(paths::WEBHOOK_ROTATE_SECRET, id),
            Some(&body),
        )
        .await
        .expect("rotated");
    let new = rotated.secret;
    assert!(rotated.webhook.previous_secret_valid_until.is_some());
    let during = import(91).await.head_seq;
    rx.wait_until("a delivery during the overlap", |i| i.acked_seqs().contains(&during)).await;
    let got = rx.inbox().acked.iter().find(|g| g.event.seq == during).cloned().expect("delivered");
    assert_eq!(got.signature.matches("v1=").count(), 2, "{}", got.signature);
    assert!(verifies(&got.signature, &got.body, SECRET), "the old secret still verifies");
    assert!(verifies(&got.signature, &got.body, &new), "so does the new one");

    // Once the overlap is over only the new secret signs.
    eventually("the overlap to end", || async {
        webhook(&ts.api, &depot, id).await.previous_secret_valid_until.is_none().then_some(())
    })
    .await;
    let after = import(92).await.head_seq;
    rx.wait_until("a delivery after the overlap", |i| i.acked_seqs().contains(&after)).await;
    let got = rx.inbox().acked.iter().find(|g| g.event.seq == after).cloned().expect("delivered");
    assert_eq!(got.signature.matches("v1=").count(), 1, "{}", got.signature);
    assert!(verifies(&got.signature, &got.body, &new));
    assert!(!verifies(&got.signature, &got.body, SECRET), "the old secret no longer verifies");
}
