//! Twilio-specific contract tests against the Twilio double: forged,
//! replayed, duplicated and out-of-order callbacks; an outage that costs no
//! attempt; 429s; a refusal; an uncertain create; the account's
//! calls-per-second and concurrent-call limits.

use callahead_core::clock::{SharedClock, WarpClock};
use callahead_core::wire::{ErrorBody, ErrorCode, Event, EventKind, Health, LineWait};
use callahead_core::{AttemptResult, CallStatus, Outcome, StopId};
use callahead_e2e::providers::{Kind, Rig};
use callahead_e2e::server::{morning, phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::twilio_double::{Pace, AUTH_TOKEN};
use callahead_e2e::Phone;
use callahead_server::providers::lines::LineLimits;
use chrono::Duration as Days;
use std::collections::HashMap;
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

/// Per attempt, how often each kind of event reached the courier.
fn counts(events: &[Event]) -> HashMap<(u32, String), usize> {
    let mut out = HashMap::new();
    for e in events {
        let attempt = match &e.kind {
            EventKind::Ringing { attempt }
            | EventKind::Answered { attempt }
            | EventKind::KeyPressed { attempt, .. }
            | EventKind::AttemptEnded { attempt, .. } => *attempt,
            EventKind::CallFinished { .. } => 0,
            _ => continue,
        };
        *out.entry((attempt, e.kind.type_name().to_owned())).or_insert(0) += 1;
    }
    out
}

fn rank(s: CallStatus) -> u8 {
    match s {
        CallStatus::Scheduled => 0,
        CallStatus::Dialing => 1,
        CallStatus::Ringing => 2,
        CallStatus::Answered => 3,
        CallStatus::Finished | CallStatus::Cancelled => 4,
    }
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
        for ((attempt, kind), n) in counts(&events) {
            assert_eq!(n, 1, "{kind} of attempt {attempt} reached the courier {n} times");
        }
        let statuses: Vec<u8> =
            events.iter().filter_map(|e| e.call.as_ref()).map(|c| rank(c.status)).collect();
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

    // One courier's calls go through; then Twilio is down (until it has refused three creates)
    // while the other courier taps, and a 429 burst follows.
    a.client().request_calls(&first).expect("tap");
    a.wait_all_terminal(&first).await;
    // Down until the test says (not for a stretch of scaled time: a slow
    // machine could place the calls after such an outage was over).
    rig.twilio().outage_until(ts.now() + Days::days(1));
    b.client().request_calls(&second).expect("tap");
    let seen = b
        .rec
        .wait_until("waiting for a line", |s| {
            s.events.iter().any(|e| {
                e.kind == EventKind::WaitingForLine { attempt: 1, reason: LineWait::ProviderUnavailable }
            })
        })
        .await;
    assert!(seen.stops.values().all(|s| s.call.as_ref().is_none_or(|c| c.status != CallStatus::Finished)));
    callahead_e2e::within("three creates refused by the outage", async {
        while rig.twilio().creates().iter().filter(|c| c.status == 503).count() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    rig.twilio().rate_limit_next(2);
    rig.twilio().outage_until(ts.now());
    let seen = b.wait_all_terminal(&second).await;

    for id in &second {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!(
            (call.outcome, call.attempts_made),
            (Some(Outcome::Confirmed), 1),
            "the outage cost no attempt"
        );
    }
    let creates = rig.twilio().creates();
    println!(
        "measured: an outage: {} creates refused with 503, {} with 429, {} placed, attempts per call {:?}",
        creates.iter().filter(|c| c.status == 503).count(),
        creates.iter().filter(|c| c.status == 429).count(),
        creates.iter().filter(|c| c.status == 201).count(),
        second.iter().map(|id| seen.stops[id].call.as_ref().map(|c| c.attempts_made)).collect::<Vec<_>>()
    );
    assert!(creates.iter().filter(|c| c.status == 503).count() >= 3, "retried through the outage");
    assert_eq!(creates.iter().filter(|c| c.status == 429).count(), 2);
    let placed: Vec<_> = creates.iter().filter(|c| c.status == 201).map(|c| c.attempt_key.clone()).collect();
    assert_eq!(placed.len(), 6, "one call per stop: {placed:?}");
    // Backed off, not hammering: with waits from 1 s doubling, 30 s of
    // outage is at most about six tries per call.
    let refused = creates.iter().filter(|c| c.status == 503).count();
    assert!(refused <= 3 * 8, "{refused} tries in 30 s for three calls");
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
    let limits = LineLimits { calls_per_second: Some(4.0), max_concurrent: Some(3) };
    let ts = rig.server(limits).await;
    let depot = Depot::create(&ts.api, "Lines", 2, quick_policy()).await;
    let a = Phone::new(ts.addr, depot.courier_token(0)).await;
    let b = Phone::new(ts.addr, depot.courier_token(1)).await;
    let first = route(&ts, &depot, 0, 31, 5, &a).await;
    let second = route(&ts, &depot, 1, 32, 5, &b).await;
    a.wait_online().await;
    b.wait_online().await;
    a.client().request_calls(&first).expect("tap");
    b.client().request_calls(&second).expect("tap");
    let seen_a = a.wait_all_terminal(&first).await;
    let seen_b = b.wait_all_terminal(&second).await;
    for (seen, ids) in [(&seen_a, &first), (&seen_b, &second)] {
        for id in ids {
            let call = seen.stops[id].call.as_ref().expect("call");
            assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::Confirmed), 1));
        }
    }
    assert!(
        seen_a
            .events
            .iter()
            .chain(&seen_b.events)
            .any(|e| matches!(e.kind, EventKind::WaitingForLine { reason: LineWait::LinesBusy, .. })),
        "a courier saw a call wait for a line"
    );
    let creates = rig.twilio().creates();
    assert_eq!(creates.len(), 10);
    for (i, c) in creates.iter().enumerate() {
        let within_a_second =
            creates[i..].iter().filter(|d| d.at.duration_since(c.at) < Duration::from_secs(1)).count();
        assert!(within_a_second <= 4, "{within_a_second} calls within a second of call {i}");
    }
    let busiest = (0..creates.len())
        .map(|i| {
            creates[i..]
                .iter()
                .filter(|d| d.at.duration_since(creates[i].at) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!(
        "measured: 10 calls at 4 CPS / 3 lines: busiest second {busiest} creates, {} at once, first to last create {:?}",
        rig.twilio().max_live(),
        creates[9].at.duration_since(creates[0].at)
    );
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
