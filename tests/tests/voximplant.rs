//! Voximplant-specific contract tests against the Voximplant double: forged,
//! replayed and duplicated scenario reports; an outage and 429s that cost
//! no attempt; an uncertain StartScenarios; the account's line limits.

use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_core::wire::{ErrorBody, ErrorCode, Event, EventKind, Health, LineWait};
use callahead_core::{AttemptResult, Outcome, StopId};
use callahead_e2e::double::{busiest_second, outage_length, Outage};
use callahead_e2e::providers::{events_per_attempt, status_ranks, ten_taps_under_line_limits, Kind, Rig};
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::twilio_double::Pace;
use callahead_e2e::voximplant_double::sign;
use callahead_e2e::Phone;
use callahead_server::providers::lines::LineLimits;
use chrono::Duration as Days;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const SPEED: f64 = 200.0;

async fn route(
    ts: &TestServer,
    depot: &Depot,
    courier: usize,
    tag: u32,
    n: usize,
    phone: &Phone,
) -> Vec<StopId> {
    ts.api
        .import_route(&depot.integrator, depot.courier_id(courier), today(), stops(tag, n, ts.now()))
        .await
        .expect("route");
    phone.client().sync_route(today()).await.expect("sync").iter().map(|s| s.stop.id).collect()
}

async fn head(ts: &TestServer) -> u64 {
    let h: Health =
        reqwest::get(format!("{}/healthz", ts.api.base)).await.expect("healthz").json().await.expect("json");
    h.head_seq
}

fn code(body: &str) -> ErrorCode {
    serde_json::from_str::<ErrorBody>(body).map(|b| b.code).unwrap_or(ErrorCode::Internal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_duplicated_and_reordered_reports_change_nothing() {
    let rig = Rig::start(Kind::Voximplant, SPEED).await;
    rig.voximplant().duplicate_reports(true);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Guard", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 51, 3, &courier).await;
    courier.wait_online().await;
    let ended_everywhere = |ids: &[StopId], s: &callahead_e2e::recorder::Seen| {
        ids.iter().all(|id| {
            s.events.iter().any(|e| e.stop_id == Some(*id) && e.kind.type_name() == "attempt_ended")
        })
    };
    // Every report twice.
    courier.client().request_calls(&ids[..2]).expect("tap");
    courier.wait_all_terminal(&ids[..2]).await;
    let seen = courier.rec.wait_until("every attempt to end", |s| ended_everywhere(&ids[..2], s)).await;
    for id in &ids[..2] {
        let events: Vec<_> = seen.events.iter().filter(|e| e.stop_id == Some(*id)).collect();
        for kind in ["ringing", "answered", "key_pressed", "attempt_ended", "call_finished"] {
            assert_eq!(
                events.iter().filter(|e| e.kind.type_name() == kind).count(),
                1,
                "{kind} once, reported twice"
            );
        }
    }
    // Twice and out of order: ringing and answered after the end.
    rig.voximplant().shuffle_reports(true);
    courier.client().request_calls(&ids[2..]).expect("tap");
    let session = rig
        .voximplant()
        .wait_until("the third session to end", |d| {
            d.sessions().into_iter().nth(2).filter(|s| s.summary.is_some())
        })
        .await;
    let seen = courier.rec.wait_until("the third attempt to end", |s| ended_everywhere(&ids, s)).await;
    let reports: Vec<String> = rig
        .voximplant()
        .sent()
        .into_iter()
        .filter(|s| s.body.contains(&format!("\"session_id\":\"{}\"", session.id)))
        .filter_map(|s| serde_json::from_str::<serde_json::Value>(&s.body).ok())
        .filter_map(|b| b["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        reports,
        ["started", "started", "key", "key", "ended", "ended", "answered", "answered", "ringing", "ringing"],
        "the double sent them twice and out of order"
    );
    let events: Vec<Event> = seen.events.iter().filter(|e| e.stop_id == Some(ids[2])).cloned().collect();
    let counts = events_per_attempt(&events);
    for ((attempt, kind), n) in &counts {
        assert_eq!(*n, 1, "{kind} of attempt {attempt} reached the courier {n} times");
    }
    for kind in ["key_pressed", "attempt_ended", "call_finished"] {
        assert!(counts.keys().any(|(_, k)| k == kind), "{kind} reached the courier: {counts:?}");
    }
    let ranks = status_ranks(&events);
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "a status never moves back: {ranks:?}");
    assert_eq!(seen.stops[&ids[2]].call.as_ref().and_then(|c| c.outcome), Some(Outcome::Confirmed));

    let sent = rig.voximplant().sent();
    let ended =
        sent.iter().find(|s| s.body.contains("\"event\":\"ended\"")).expect("an ended report").clone();
    let before = head(&ts).await;

    // The same bytes again: a duplicate, answered and not applied.
    let (status, _) = rig.voximplant().send_raw(&ended.url, &ended.body, &ended.signature).await;
    assert_eq!(status, 200);
    // A changed body under the old signature; signed with another secret;
    // no signature; another attempt's report sent to this attempt.
    let changed = ended.body.replace("\"hung_up\"", "\"busy\"");
    let (status, body) = rig.voximplant().send_raw(&ended.url, &changed, &ended.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let (status, body) = rig.voximplant().send_raw(&ended.url, &changed, &sign("guessed", &changed)).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let (status, body) = rig.voximplant().send_raw(&ended.url, &ended.body, "").await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let other = sent.iter().find(|s| s.url != ended.url).expect("the other attempt");
    let (status, body) = rig.voximplant().send_raw(&other.url, &ended.body, &ended.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let unknown = ended.url.replace("/calls/call-", "/calls/call-9");
    let (status, body) = rig.voximplant().send_raw(&unknown, &ended.body, &ended.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));

    // Correctly signed with the attempt's secret (as if leaked from a log),
    // but eleven minutes old: a replay.
    let session = &rig.voximplant().sessions()[0];
    let secret = session.data["secret"].as_str().expect("secret");
    let mut old: serde_json::Value = serde_json::from_str(&ended.body).expect("json");
    old["n"] = 99.into();
    old["ts"] = (chrono::Utc::now() - Days::minutes(11)).timestamp_millis().into();
    old["attempt_key"] = session.data["attempt_key"].clone();
    let old = old.to_string();
    let url = session.data["callback_url"].as_str().expect("url");
    let (status, body) = rig.voximplant().send_raw(url, &old, &sign(secret, &old)).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderCallbackReplayed));
    assert_eq!(head(&ts).await, before, "nothing was logged");
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_outage_and_rate_limits_cost_no_attempt_and_an_uncertain_start_is_looked_up() {
    let rig = Rig::start(Kind::Voximplant, SPEED).await;
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Outage", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 52, 3, &courier).await;
    courier.wait_online().await;
    // From the first start it refuses, Voximplant is down for 30 domain
    // seconds and until it has refused both calls (a slow machine that
    // starts them late cannot miss it); then one HTTP 429 and one error 185.
    rig.voximplant().outage(Outage::new(Days::seconds(30), 2));
    rig.voximplant().rate_limit_next(1);
    rig.voximplant().error_185_next(1);
    courier.client().request_calls(&ids[..2]).expect("tap");
    courier.wait_all_terminal(&ids[..2]).await;
    // After the outage: a start whose answer is lost.
    rig.voximplant().fail_after_start_next(1);
    courier.client().request_calls(&ids[2..]).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    for id in &ids {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Confirmed), 1), "no attempt lost");
    }
    let waited = |id: &StopId, why: LineWait| {
        seen.events.iter().any(|e| {
            e.stop_id == Some(*id) && e.kind == EventKind::WaitingForLine { attempt: 1, reason: why }
        })
    };
    assert!(ids[..2].iter().all(|id| waited(id, LineWait::ProviderUnavailable)), "the courier saw each wait");
    assert!(ids[..2].iter().any(|id| waited(id, LineWait::RateLimited)), "429 and 185 are rate limits");
    let starts = rig.voximplant().starts();
    let answers: Vec<_> = starts.iter().map(|s| (s.status, s.domain)).collect();
    let down = outage_length(&answers, 200).expect("an outage, then calls");
    assert!(down >= Days::seconds(30), "Voximplant was down for 30 domain seconds, not {down}");
    let refused: HashSet<_> =
        starts.iter().filter(|s| s.status == 503).map(|s| s.attempt_key.clone()).collect();
    assert_eq!(refused.len(), 2, "the outage caught both calls");
    assert_eq!(starts.iter().filter(|s| s.status == 429).count(), 1);
    assert_eq!(starts.iter().filter(|s| s.status == 185).count(), 1);
    assert_eq!(rig.voximplant().sessions().len(), 3, "one session per stop: the lost start was not re-sent");
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_never_carries_more_calls_than_configured() {
    let pace = Pace {
        ring: Duration::from_millis(30),
        talk: Duration::from_millis(150),
        no_answer: Duration::from_millis(100),
    };
    let clock: SharedClock = Arc::new(ScaledClock::new(morning(), SPEED));
    let rig = Rig::start_on(Kind::Voximplant, clock, pace).await;
    // Ten calls at once, more than three a second can take.
    ten_taps_under_line_limits(
        &rig,
        LineLimits { calls_per_second: Some(3.0), max_concurrent: Some(2) },
        [53, 54],
    )
    .await;
    let starts = rig.voximplant().starts();
    assert_eq!(starts.len(), 10);
    assert!(starts.iter().all(|s| s.status == 200));
    let busiest = busiest_second(&starts.iter().map(|s| s.at).collect::<Vec<_>>());
    println!(
        "measured: 10 calls at 3 CPS / 2 lines: busiest second {busiest} starts, {} at once, first to last start {:?}",
        rig.voximplant().max_live(),
        starts[9].at.duration_since(starts[0].at)
    );
    // The limit bound (the calls queued behind it) and held.
    assert_eq!(busiest, 3, "at most, and at the limit, three starts in any one second");
    assert!(rig.voximplant().max_live() <= 2, "at most two at once, saw {}", rig.voximplant().max_live());
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_start_fails_the_call_with_voximplants_reason() {
    let rig = Rig::start(Kind::Voximplant, SPEED).await;
    // Any error code but "too many requests" (185) and "internal" (500)
    // is a refusal: the same request would be refused again.
    rig.voximplant().refuse_starts(126, "Rule not found");
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Refused", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 55, 1, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    let call = seen.stops[&ids[0]].call.as_ref().expect("call");
    assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Failed), 1), "not retried");
    let reason = seen.events.iter().find_map(|e| match &e.kind {
        EventKind::ProviderRejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("Voximplant error 126: Rule not found"), "the provider's reason");
    let detail = ts.api.call(&depot.supervisor, call.id).await.expect("detail");
    assert_eq!(detail.attempts[0].result, Some(AttemptResult::Failed));
    assert!(
        !seen.events.iter().any(|e| matches!(e.kind, EventKind::WaitingForLine { .. })),
        "a refusal is not an outage"
    );
    let starts = rig.voximplant().starts();
    assert_eq!(starts.iter().map(|s| s.status).collect::<Vec<_>>(), vec![400], "asked once, never again");
    assert!(rig.voximplant().sessions().is_empty());
    assert_eq!(rig.violations(), Vec::<String>::new());
}
