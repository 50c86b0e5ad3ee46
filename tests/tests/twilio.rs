//! Twilio-specific contract tests against the Twilio double: forged,
//! replayed, duplicated and out-of-order callbacks; an outage that costs no
//! attempt; 429s; a refusal; an uncertain create; the account's
//! calls-per-second and concurrent-call limits.

use callahead_core::clock::{SharedClock, WarpClock};
use callahead_core::wire::{ErrorBody, ErrorCode, Event, EventKind, Health, LineWait};
use callahead_core::{AttemptResult, Outcome, StopId};
use callahead_e2e::double::{busiest_second, outage_length, Outage};
use callahead_e2e::providers::{events_per_attempt, status_ranks, ten_taps_under_line_limits, Kind, Rig};
use callahead_e2e::server::{morning, phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::twilio_double::{Pace, AUTH_TOKEN};
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
    let synced = phone.client().sync_route(today()).await.expect("sync");
    synced.iter().map(|s| s.stop.id).collect()
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
async fn forged_replayed_duplicated_and_reordered_callbacks_change_nothing() {
    let warp = Arc::new(WarpClock::new(morning(), SPEED));
    let clock: SharedClock = warp.clone();
    let rig = Rig::start_on(Kind::Twilio, clock, Pace::default()).await;
    rig.twilio().duplicate_callbacks(true);
    rig.twilio().shuffle_callbacks(true);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Guard", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 7, 3, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    // Every status callback came twice, ringing and answered after the end.
    rig.twilio()
        .wait_until("the late callbacks", |d| {
            (d.sent().iter().filter(|s| s.url.ends_with("/status")).count() >= 3 * 8).then_some(())
        })
        .await;

    for id in &ids {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!(call.outcome, Some(Outcome::Confirmed));
        let events: Vec<Event> = seen.events.iter().filter(|e| e.stop_id == Some(*id)).cloned().collect();
        for ((attempt, kind), n) in events_per_attempt(&events) {
            assert_eq!(n, 1, "{kind} of attempt {attempt} reached the courier {n} times");
        }
        let statuses = status_ranks(&events);
        assert!(statuses.windows(2).all(|w| w[0] <= w[1]), "a status never moves back: {statuses:?}");
    }

    let sent = rig.twilio().sent();
    let completed = sent
        .iter()
        .find(|s| {
            s.url.ends_with("/status") && s.form.iter().any(|(k, v)| k == "CallStatus" && v == "completed")
        })
        .expect("a completed callback")
        .clone();
    let before = head(&ts).await;

    // A changed field under the original signature; the right fields
    // signed with another token; no signature; another attempt's URL.
    let mut tampered = completed.form.clone();
    for (k, v) in &mut tampered {
        if k == "CallDuration" {
            *v = "999".into();
        }
    }
    let (status, body) = rig.twilio().send_raw(&completed.url, &tampered, "t-1", &completed.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let (status, body) =
        rig.twilio().send_signed(&completed.url, &completed.form, "t-2", "not-the-token").await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let (status, body) = rig.twilio().send_raw(&completed.url, &completed.form, "t-3", "").await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));
    let other =
        sent.iter().find(|s| s.url.ends_with("/status") && s.url != completed.url).expect("another attempt");
    let (status, body) =
        rig.twilio().send_raw(&other.url, &completed.form, "t-4", &completed.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderSignatureInvalid));

    // Twilio's own retry (the same idempotency token): answered, not applied.
    let (status, _) =
        rig.twilio().send_raw(&completed.url, &completed.form, &completed.token, &completed.signature).await;
    assert_eq!(status, 200);
    // A genuine request for a status that would move the call back.
    let mut ringing = completed.form.clone();
    for (k, v) in &mut ringing {
        if k == "CallStatus" {
            *v = "ringing".into();
        }
        if k == "SequenceNumber" {
            *v = "1".into();
        }
    }
    let (status, _) = rig.twilio().send_signed(&completed.url, &ringing, "t-5", AUTH_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(head(&ts).await, before, "nothing was logged");

    // The same signed request eleven minutes later is a replay.
    warp.jump(Days::minutes(11));
    let (status, body) =
        rig.twilio().send_raw(&completed.url, &completed.form, &completed.token, &completed.signature).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderCallbackReplayed));
    let (status, body) = rig.twilio().send_signed(&completed.url, &ringing, "t-6", AUTH_TOKEN).await;
    assert_eq!((status, code(&body)), (403, ErrorCode::ProviderCallbackReplayed));
    let calls = ts.api.calls(&depot.supervisor, None, Some(today())).await.expect("calls").calls;
    assert!(calls.iter().all(|c| c.call.outcome == Some(Outcome::Confirmed) && c.attempts.len() == 1));
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_outage_in_the_morning_costs_nobody_an_attempt() {
    let rig = Rig::start(Kind::Twilio, SPEED).await;
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Outage", 2, quick_policy()).await;
    let a = Phone::new(ts.addr, depot.courier_token(0)).await;
    let b = Phone::new(ts.addr, depot.courier_token(1)).await;
    let first = route(&ts, &depot, 0, 11, 3, &a).await;
    let second = route(&ts, &depot, 1, 12, 3, &b).await;
    a.wait_online().await;
    b.wait_online().await;

    // One courier's calls go through; then Twilio is down while the other
    // courier taps: from the first create it refuses, for 30 domain
    // seconds and until it has refused each of the three calls (so a slow
    // machine that places them late cannot miss it); a 429 burst follows.
    a.client().request_calls(&first).expect("tap");
    a.wait_all_terminal(&first).await;
    rig.twilio().outage(Outage::new(Days::seconds(30), 3));
    rig.twilio().rate_limit_next(2);
    b.client().request_calls(&second).expect("tap");
    let seen = b.wait_all_terminal(&second).await;

    for id in &second {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!(
            (call.outcome, call.attempts_made),
            (Some(Outcome::Confirmed), 1),
            "the outage cost no attempt"
        );
        assert!(
            seen.events.iter().any(|e| e.stop_id == Some(*id)
                && e.kind == EventKind::WaitingForLine { attempt: 1, reason: LineWait::ProviderUnavailable }),
            "the courier saw the call wait for a line"
        );
    }
    let creates = rig.twilio().creates();
    let answers: Vec<_> = creates.iter().map(|c| (c.status, c.domain)).collect();
    let down = outage_length(&answers, 201).expect("an outage, then calls");
    let refused: HashSet<_> =
        creates.iter().filter(|c| c.status == 503).map(|c| c.attempt_key.clone()).collect();
    println!(
        "measured: an outage of {} domain s: {} creates refused with 503, {} with 429, {} placed, attempts per call {:?}",
        down.num_milliseconds() as f64 / 1000.0,
        creates.iter().filter(|c| c.status == 503).count(),
        creates.iter().filter(|c| c.status == 429).count(),
        creates.iter().filter(|c| c.status == 201).count(),
        second.iter().map(|id| seen.stops[id].call.as_ref().map(|c| c.attempts_made)).collect::<Vec<_>>()
    );
    assert!(down >= Days::seconds(30), "Twilio was down for 30 domain seconds, not {down}");
    assert_eq!(refused.len(), 3, "the outage caught every one of the three calls");
    assert_eq!(creates.iter().filter(|c| c.status == 429).count(), 2);
    let placed: Vec<_> = creates.iter().filter(|c| c.status == 201).map(|c| c.attempt_key.clone()).collect();
    assert_eq!(placed.len(), 6, "one call per stop: {placed:?}");
    // Backed off, not hammering: with waits from 1 s doubling, 30 s of
    // outage is at most about six tries per call.
    let tries = creates.iter().filter(|c| c.status == 503).count();
    assert!(tries <= 3 * 8, "{tries} tries in 30 s for three calls");
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_number_fails_the_call_with_twilios_reason() {
    let rig = Rig::start(Kind::Twilio, SPEED).await;
    rig.twilio().invalid_number(&phone(21, 0));
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Refused", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 21, 1, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    let call = seen.stops[&ids[0]].call.as_ref().expect("call");
    assert_eq!(
        (call.outcome, call.attempts_made),
        (Some(Outcome::Failed), 1),
        "not retried: it would be refused again"
    );
    let reason = seen.events.iter().find_map(|e| match &e.kind {
        EventKind::ProviderRejected { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.as_deref().is_some_and(|r| r.contains("21211")), "{reason:?}");
    let detail = ts.api.call(&depot.supervisor, call.id).await.expect("detail");
    assert_eq!(detail.attempts[0].result, Some(AttemptResult::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_create_is_looked_up_not_sent_again() {
    let rig = Rig::start(Kind::Twilio, SPEED).await;
    rig.twilio().fail_after_create_next(1);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Uncertain", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 22, 1, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    let call = seen.stops[&ids[0]].call.as_ref().expect("call");
    assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Confirmed), 1));
    let calls = rig.twilio().calls();
    assert_eq!(calls.len(), 1, "the customer was called once");
    let creates = rig.twilio().creates();
    assert_eq!((creates.len(), creates[0].status), (1, 500), "never re-sent");
    let detail = ts.api.call(&depot.supervisor, call.id).await.expect("detail");
    assert_eq!(
        detail.attempts[0].provider_ref.as_deref(),
        Some(calls[0].sid.as_str()),
        "the lookup found its CallSid"
    );
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_never_sees_more_calls_per_second_or_at_once_than_configured() {
    let pace = Pace {
        ring: Duration::from_millis(30),
        talk: Duration::from_millis(150),
        no_answer: Duration::from_millis(100),
    };
    let clock: SharedClock = Arc::new(callahead_core::clock::ScaledClock::new(morning(), SPEED));
    let rig = Rig::start_on(Kind::Twilio, clock, pace).await;
    ten_taps_under_line_limits(
        &rig,
        LineLimits { calls_per_second: Some(4.0), max_concurrent: Some(3) },
        [31, 32],
    )
    .await;
    let creates = rig.twilio().creates();
    assert_eq!(creates.len(), 10);
    let busiest = busiest_second(&creates.iter().map(|c| c.at).collect::<Vec<_>>());
    println!(
        "measured: 10 calls at 4 CPS / 3 lines: busiest second {busiest} creates, {} at once, first to last create {:?}",
        rig.twilio().max_live(),
        creates[9].at.duration_since(creates[0].at)
    );
    assert!(busiest <= 4, "{busiest} calls within one second");
    assert!(rig.twilio().max_live() <= 3, "at most three at once, saw {}", rig.twilio().max_live());
    // Fair across couriers: the second courier's first call is not behind
    // all of the first courier's.
    let order: Vec<bool> = creates.iter().map(|c| c.to.starts_with(&phone(31, 0)[..8])).collect();
    assert!(order[..4].contains(&false), "both couriers' calls went early: {order:?}");
    assert_eq!(rig.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_machine_detection_is_a_policy_option() {
    let rig = Rig::start(Kind::Twilio, SPEED).await;
    rig.script(&phone(23, 0), callahead_server::providers::simulator::Behaviour::Voicemail);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let policy =
        callahead_core::policy::AttemptPolicy { machine_detection: true, max_attempts: 1, ..quick_policy() };
    let depot = Depot::create(&ts.api, "Machines", 1, policy).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route(&ts, &depot, 0, 23, 2, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    let seen = courier.wait_all_terminal(&ids).await;
    // The machine is hung up on and counts as voicemail; the person (Twilio
    // said "human") answers and confirms.
    let machine = seen.stops[&ids[0]].call.as_ref().expect("call");
    assert_eq!(machine.outcome, Some(Outcome::NoAnswer));
    let detail = ts.api.call(&depot.supervisor, machine.id).await.expect("detail");
    assert_eq!(detail.attempts[0].result, Some(AttemptResult::Voicemail));
    assert_eq!(seen.stops[&ids[1]].call.as_ref().and_then(|c| c.outcome), Some(Outcome::Confirmed));
    assert!(rig.twilio().calls().iter().all(|c| c.machine_detection), "MachineDetection on every call");
    assert!(rig.twilio().calls().iter().any(|c| c.answered_by.as_deref() == Some("machine_end_beep")));
    assert_eq!(rig.violations(), Vec::<String>::new(), "MachineDetection is a documented field");
}
