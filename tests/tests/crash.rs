//! What `kill -9` leaves behind, on the real binary: each test runs
//! `callahead-server serve` as a child process, kills it with SIGKILL at the
//! moment that matters (read off its own websocket), starts it again on the
//! same database and checks what the restart made of it.

use callahead_core::call::AttemptResult;
use callahead_core::wire::{CreateCall, EventKind, PolicyOverride};
use callahead_core::{CallStatus, Outcome};
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, ADMIN};
use callahead_e2e::ws::Follower;
use callahead_e2e::{Api, ServerProcess};
use chrono::{DateTime, Utc};

/// Domain time starts at the test morning (inside calling hours), at the
/// speed of real time unless a test says otherwise.
fn clock_args() -> Vec<String> {
    vec!["--clock-start".into(), morning().to_rfc3339()]
}

fn args(extra: &[&str]) -> Vec<String> {
    let mut a = clock_args();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

async fn started(dir: &tempfile::TempDir, extra: &[&str]) -> (ServerProcess, Api) {
    let a = args(extra);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut server = ServerProcess::new(dir.path(), ADMIN, &a);
    server.start().await;
    let api = Api::new(server.url());
    (server, api)
}

async fn restarted(server: &mut ServerProcess) -> Api {
    server.kill().await;
    server.start().await;
    Api::new(server.url())
}

fn call_for(stop: callahead_core::StopId, policy: Option<PolicyOverride>) -> CreateCall {
    CreateCall { stop_id: stop, idempotency_key: format!("crash-test-{stop}"), policy }
}

#[tokio::test]
async fn a_kill_while_the_goodbye_plays_leaves_no_attempt_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The customer picks up at once and presses 1; the robot then says
    // goodbye for a few seconds before hanging up: the kill lands there.
    let customer = stops(1, 1, morning())[0].phone.clone();
    let (mut server, api) = started(
        &dir,
        &["--sim-ring-secs", "1", "1", "--sim-talk-secs", "6", "6", "--sim-answer", &format!("{customer}=1")],
    )
    .await;
    let d = Depot::create(&api, "North", 1, quick_policy()).await;
    let route = api.import_route(&d.integrator, d.courier_id(0), today(), stops(1, 1, morning())).await;
    let stop = route.expect("route imported").stops[0].stop.id;
    let mut feed = Follower::connect(&server.url(), ADMIN, None).await;
    let call = api.request_call(d.courier_token(0), &call_for(stop, None)).await.expect("call requested");
    feed.until("the key press", |e| matches!(e.kind, EventKind::KeyPressed { .. })).await;
    let decided =
        feed.until("the call's outcome", |e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert_eq!(decided.call.as_ref().map(|c| c.status), Some(CallStatus::Finished));

    let api = restarted(&mut server).await;
    let detail = api.call(ADMIN, call.id).await.expect("call detail");
    assert_eq!(detail.call.outcome, Some(Outcome::Confirmed), "the customer's answer stands");
    let attempt = &detail.attempts[0];
    assert_eq!(attempt.result, Some(AttemptResult::Completed), "closed by what was recorded: {attempt:?}");
    assert!(attempt.ended_at.is_some(), "the attempt has an end: {attempt:?}");
    // The customer listened 6 s before pressing (whole seconds, rounded down).
    assert!(attempt.talk_secs.is_some_and(|t| t >= 5), "talk time up to the key press: {attempt:?}");
    let ended: Vec<_> = api
        .all_events(ADMIN)
        .await
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::AttemptEnded { .. }))
        .collect();
    assert_eq!(ended.len(), 1, "one attempt_ended, logged by the recovery");
    assert!(matches!(
        ended[0].kind,
        EventKind::AttemptEnded { attempt: 1, result: AttemptResult::Completed }
    ));
}

#[tokio::test]
async fn a_crash_is_not_blamed_on_the_provider_and_the_customer_hears_back_soon() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two customers let it ring; the server dies while both phones ring.
    let ss = stops(2, 2, morning());
    let (first, last) = (ss[0].phone.clone(), ss[1].phone.clone());
    let (mut server, api) =
        started(&dir, &["--sim-fail-rate", "0", "--sim-no-answer", &first, "--sim-no-answer", &last]).await;
    let mut policy = quick_policy();
    policy.retry_spacing_secs = 900;
    let d = Depot::create(&api, "North", 1, policy).await;
    let route = api.import_route(&d.integrator, d.courier_id(0), today(), ss).await.expect("route");
    let (a, b) = (route.stops[0].stop.id, route.stops[1].stop.id);
    let mut feed = Follower::connect(&server.url(), ADMIN, None).await;
    let retried = api.request_call(d.courier_token(0), &call_for(a, None)).await.expect("call a");
    let one_shot = PolicyOverride { max_attempts: Some(1), ..PolicyOverride::default() };
    let last_try = api.request_call(d.courier_token(0), &call_for(b, Some(one_shot))).await.expect("call b");
    for _ in 0..2 {
        feed.until("both phones ringing", |e| matches!(e.kind, EventKind::Ringing { .. })).await;
    }

    let api = restarted(&mut server).await;
    let a = api.call(ADMIN, retried.id).await.expect("call a");
    assert_eq!(a.attempts[0].result, Some(AttemptResult::Interrupted));
    assert_eq!(a.call.status, CallStatus::Scheduled, "attempt 2 follows");
    let ended_at: DateTime<Utc> = a.attempts[0].ended_at.expect("ended");
    let due = a.call.next_attempt_at.expect("due");
    assert!(
        due - ended_at <= chrono::Duration::seconds(60),
        "retried within a minute, not after the policy's 15: ended {ended_at}, due {due}"
    );
    let b = api.call(ADMIN, last_try.id).await.expect("call b");
    assert_eq!(b.attempts[0].result, Some(AttemptResult::Interrupted));
    assert_eq!(b.call.outcome, Some(Outcome::Interrupted), "not `failed`: the provider did nothing wrong");

    let report = api.daily_report(ADMIN, d.depot.id, today()).await;
    assert_eq!((report.interrupted, report.failed), (1, 0), "{report:?}");
    assert_eq!((report.attempts_interrupted, report.attempts_failed), (2, 0), "{report:?}");
}

#[tokio::test]
async fn an_app_connected_when_the_server_died_is_offline_after_the_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, api) = started(&dir, &[]).await;
    let d = Depot::create(&api, "North", 2, quick_policy()).await;
    let mut feed = Follower::connect(&server.url(), ADMIN, None).await;
    let _app = Follower::connect(&server.url(), d.courier_token(0), None).await;
    let online = feed.until("the app online", |e| matches!(e.kind, EventKind::AppConnection { .. })).await;
    assert!(matches!(online.kind, EventKind::AppConnection { connected: true }));

    let api = restarted(&mut server).await;
    let presence: Vec<bool> = api
        .all_events(ADMIN)
        .await
        .into_iter()
        .filter(|e| e.courier_id == d.courier_id(0))
        .filter_map(|e| match e.kind {
            EventKind::AppConnection { connected } => Some(connected),
            _ => None,
        })
        .collect();
    assert_eq!(presence, vec![true, false], "the log ends with the courier offline");
    let path = callahead_core::wire::paths::fill(
        callahead_core::wire::paths::DEPOT_DASHBOARD,
        &[("depot_id", &d.depot.id.to_string())],
    );
    let dashboard: callahead_core::wire::DepotDashboard =
        api.send(reqwest::Method::GET, Some(&d.supervisor), &path, None::<&()>).await.expect("dashboard");
    assert!(dashboard.couriers.iter().all(|c| !c.app_connected), "the snapshot agrees with the log");
}

#[tokio::test]
async fn a_scaled_clock_continues_from_the_log_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No start time: domain time runs from "now", 100 times as fast.
    let mut server = ServerProcess::new(dir.path(), ADMIN, &["--time-scale", "100"]);
    server.start().await;
    let api = Api::new(server.url());
    let d = Depot::create(&api, "North", 1, quick_policy()).await;
    let from = Utc::now() + chrono::Duration::hours(2);
    api.import_route(&d.integrator, d.courier_id(0), from.date_naive(), stops(3, 2, from))
        .await
        .expect("route");
    let before = api.all_events(ADMIN).await.last().map(|e| e.at).expect("an event");

    let api = restarted(&mut server).await;
    let from = from + chrono::Duration::days(1);
    api.import_route(&d.integrator, d.courier_id(0), from.date_naive(), stops(3, 2, from))
        .await
        .expect("route");
    let after = api.all_events(ADMIN).await.last().map(|e| e.at).expect("an event");
    assert!(after >= before, "domain time went backwards across the restart: {before} -> {after}");
}

#[tokio::test]
async fn a_scaled_clock_from_a_start_time_continues_from_the_log_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A fixed start time: before the fix a restart began again from it.
    let start = morning();
    let start_arg = start.to_rfc3339();
    let mut server =
        ServerProcess::new(dir.path(), ADMIN, &["--clock-start", start_arg.as_str(), "--time-scale", "1000"]);
    server.start().await;
    let api = Api::new(server.url());
    let d = Depot::create(&api, "North", 1, quick_policy()).await;
    // Log until domain time is an hour past the start (3.6 real seconds),
    // far more than a restart takes at this scale.
    let mut before = start;
    let mut day = 0;
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while before < start + chrono::Duration::hours(1) {
            day += 1;
            let from = start + chrono::Duration::days(day);
            api.import_route(&d.integrator, d.courier_id(0), from.date_naive(), stops(4, 1, from))
                .await
                .expect("route");
            before = api.all_events(ADMIN).await.last().map(|e| e.at).expect("an event");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "domain time never reached an hour past the start: {before}");

    let api = restarted(&mut server).await;
    let from = start + chrono::Duration::days(day + 1);
    api.import_route(&d.integrator, d.courier_id(0), from.date_naive(), stops(4, 1, from))
        .await
        .expect("route");
    let after = api.all_events(ADMIN).await.last().map(|e| e.at).expect("an event");
    assert!(
        after >= before,
        "domain time went back to --clock-start across the restart: {before} -> {after}"
    );
}
