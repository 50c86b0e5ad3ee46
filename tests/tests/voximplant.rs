//! Voximplant-specific contract tests against the Voximplant double: forged,
//! replayed and duplicated scenario reports; an outage and 429s that cost
//! no attempt; an uncertain StartScenarios; the account's line limits.

use callahead_core::clock::{ScaledClock, SharedClock};
use callahead_core::wire::{ErrorBody, ErrorCode, EventKind, Health, LineWait};
use callahead_core::{Outcome, StopId};
use callahead_e2e::providers::{Kind, Rig};
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::twilio_double::Pace;
use callahead_e2e::voximplant_double::sign;
use callahead_e2e::Phone;
use callahead_server::providers::lines::LineLimits;
use chrono::Duration as Days;
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
async fn forged_replayed_and_duplicated_reports_change_nothing() {
    let rig = Rig::start(Kind::Voximplant, SPEED).await;
    rig.voximplant().duplicate_reports(true);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Guard", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 51, 2, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    courier.wait_all_terminal(&ids).await;
    let seen = courier
        .rec
        .wait_until("every attempt to end", |s| {
            ids.iter().all(|id| {
                s.events.iter().any(|e| e.stop_id == Some(*id) && e.kind.type_name() == "attempt_ended")
            })
        })
        .await;
    for id in &ids {
        let events: Vec<_> = seen.events.iter().filter(|e| e.stop_id == Some(*id)).collect();
        for kind in ["ringing", "answered", "key_pressed", "attempt_ended", "call_finished"] {
            assert_eq!(
                events.iter().filter(|e| e.kind.type_name() == kind).count(),
                1,
                "{kind} once, reported twice"
            );
        }
    }
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
async fn an_outage_and_429s_cost_no_attempt_and_an_uncertain_start_is_looked_up() {
    let rig = Rig::start(Kind::Voximplant, SPEED).await;
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Outage", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 52, 3, &courier).await;
    courier.wait_online().await;
    // Down until the test says (not for a stretch of scaled time: a slow
    // machine could place the calls after such an outage was over).
    rig.voximplant().outage_until(ts.now() + Days::days(1));
    rig.voximplant().rate_limit_next(0);
    courier.client().request_calls(&ids[..2]).expect("tap");
    courier
        .rec
        .wait_until("waiting for a line", |s| {
            s.events.iter().any(|e| {
                matches!(e.kind, EventKind::WaitingForLine { reason: LineWait::ProviderUnavailable, .. })
            })
        })
        .await;
    callahead_e2e::within("three starts refused by the outage", async {
        while rig.voximplant().starts().iter().filter(|s| s.status == 503).count() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    rig.voximplant().rate_limit_next(2);
    rig.voximplant().outage_until(ts.now());
    courier.wait_all_terminal(&ids[..2]).await;
    // After the outage: a start whose answer is lost.
    rig.voximplant().fail_after_start_next(1);
    courier.client().request_calls(&ids[2..]).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    for id in &ids {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Confirmed), 1), "no attempt lost");
    }
    let starts = rig.voximplant().starts();
    assert!(starts.iter().filter(|s| s.status == 503).count() >= 3);
    assert_eq!(starts.iter().filter(|s| s.status == 429).count(), 2);
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
    let ts = rig.server(LineLimits { calls_per_second: Some(5.0), max_concurrent: Some(2) }).await;
    let depot = Depot::create(&ts.api, "Lines", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 53, 5, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    courier.wait_all_terminal(&ids).await;
    let starts = rig.voximplant().starts();
    assert_eq!(starts.len(), 5);
    for (i, s) in starts.iter().enumerate() {
        let n = starts[i..].iter().filter(|t| t.at.duration_since(s.at) < Duration::from_secs(1)).count();
        assert!(n <= 5, "{n} starts within a second");
    }
    assert!(rig.voximplant().max_live() <= 2, "at most two at once, saw {}", rig.voximplant().max_live());
}
