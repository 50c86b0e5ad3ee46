//! The smart-call stories that run on the simulator (smart_call.rs,
//! reschedule.rs), against each real provider's double: the server is
//! started with `--telephony`/`--messaging` twilio or voximplant, places
//! calls through the provider's HTTP API and hears back through signed
//! callbacks on `/v1/providers/…`. Every request the adapter sent must be one
//! the provider documents.

use callahead_core::call::Key;
use callahead_core::client::OutboxState;
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::Language;
use callahead_core::wire::{paths, CallDetail, DialDirect, DirectCallRecording, DirectDial, EventKind};
use callahead_core::{AttemptResult, CallStatus, Outcome, StopId, MAX_ACTIVE_CALLS_PER_COURIER};
use callahead_e2e::providers::{Kind, Rig};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer, ADMIN};
use callahead_e2e::twilio_double::Pace;
use callahead_e2e::Phone;
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::Behaviour;
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// Domain seconds per real second: a 60 s retry spacing takes 0.3 s.
const SPEED: f64 = 200.0;
const FORM: &str = "application/x-www-form-urlencoded";

/// Each story once per provider.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        $(
            mod $story {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn twilio() {
                    super::$story(Kind::Twilio).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn voximplant() {
                    super::$story(Kind::Voximplant).await
                }
            }
        )*
    };
}

stories!(
    seven_taps_five_run_two_wait,
    three_attempts_then_no_answer,
    reschedule_sms_and_a_picked_slot,
    key_zero_bridges_to_the_courier,
    a_restart_mid_call_calls_nobody_twice,
    a_direct_call_rings_the_courier_then_the_customer_and_is_recorded,
);

/// Calls long enough for the cap of five to matter.
fn slow() -> Pace {
    Pace {
        ring: Duration::from_millis(30),
        talk: Duration::from_millis(400),
        no_answer: Duration::from_millis(150),
    }
}

async fn rig(kind: Kind, pace: Pace) -> Rig {
    let clock =
        std::sync::Arc::new(callahead_core::clock::ScaledClock::new(callahead_e2e::server::morning(), SPEED));
    Rig::start_on(kind, clock, pace).await
}

async fn route_ids(ts: &TestServer, depot: &Depot, tag: u32, n: usize, phone: &Phone) -> Vec<StopId> {
    let mut route = stops(tag, n, ts.now());
    for s in &mut route {
        s.language = Some(Language::En);
    }
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), route)
        .await
        .expect("route imported");
    let synced = phone.client().sync_route(today()).await.expect("route synced");
    synced.iter().map(|s| s.stop.id).collect()
}

async fn all_calls(ts: &TestServer, depot: &Depot) -> Vec<CallDetail> {
    ts.api.calls(&depot.supervisor, None, Some(today())).await.expect("calls listed").calls
}

fn assert_documented(rig: &Rig) {
    assert_eq!(rig.violations(), Vec::<String>::new(), "every request is one the provider documents");
}

async fn seven_taps_five_run_two_wait(kind: Kind) {
    let rig = rig(kind, slow()).await;
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "North", 1, quick_policy()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 1, 7, &phone).await;
    phone.wait_online().await;

    phone.client().request_calls(&ids).expect("tap is stored");
    let seen = phone
        .rec
        .wait_until("five calls to start", |s| s.stops.values().filter(|st| st.call.is_some()).count() >= 5)
        .await;
    let waiting: Vec<_> = seen.stops.values().filter(|st| st.call.is_none()).collect();
    assert_eq!(waiting.len(), 2, "two stops wait for a free slot");
    assert!(waiting.iter().all(|st| st.outbox == Some(OutboxState::Queued)));

    let seen = phone.wait_all_terminal(&ids).await;
    for id in &ids {
        let call = seen.stops[id].call.as_ref().expect("call");
        assert_eq!((call.status, call.outcome), (CallStatus::Finished, Some(Outcome::Confirmed)));
    }
    let calls = all_calls(&ts, &depot).await;
    assert_eq!(calls.len(), 7);
    let max_overlap = calls
        .iter()
        .map(|c| {
            calls
                .iter()
                .filter(|d| d.call.created_at <= c.call.created_at && d.call.updated_at > c.call.created_at)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert_eq!(max_overlap, MAX_ACTIVE_CALLS_PER_COURIER);
    assert_eq!(rig.placed().len(), 7, "one provider call per stop");
    // The provider's reference is kept on every attempt.
    assert!(calls.iter().all(|c| c.attempts.iter().all(|a| a.provider_ref.is_some())));
    assert_documented(&rig);
}

async fn three_attempts_then_no_answer(kind: Kind) {
    let rig = rig(kind, Pace::default()).await;
    rig.script(&phone(2, 0), Behaviour::NoAnswer);
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let policy = quick_policy();
    let depot = Depot::create(&ts.api, "South", 1, policy.clone()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 2, 1, &phone).await;
    phone.wait_online().await;

    phone.client().request_calls(&ids).expect("tap");
    let seen = phone.wait_all_terminal(&ids).await;
    let call = seen.stops[&ids[0]].call.clone().expect("call");
    assert_eq!((call.outcome, call.attempts_made), (Some(Outcome::NoAnswer), 3));
    let detail = ts.api.call(&depot.supervisor, call.id).await.expect("detail");
    assert_eq!(detail.attempts.len(), 3);
    assert!(detail.attempts.iter().all(|a| a.result == Some(AttemptResult::NoAnswer)));
    for w in detail.attempts.windows(2) {
        let gap = w[1].placed_at - w[0].ended_at.expect("ended");
        assert!(gap.num_seconds() >= i64::from(policy.retry_spacing_secs), "spaced by the policy: {gap}");
    }
    assert_eq!(rig.placed().len(), 3, "three calls at the provider");
    assert_documented(&rig);
}

async fn reschedule_sms_and_a_picked_slot(kind: Kind) {
    let rig = rig(kind, Pace::default()).await;
    rig.script(&phone(41, 0), Behaviour::Answer { key: Key::new('2') });
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 41, 1, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");

    courier
        .rec
        .wait_until("the reschedule offer", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::RescheduleOffered { .. }))
        })
        .await;
    let to = phone(41, 0);
    let text = rig.wait_for_sms(&to).await;
    assert!(text.starts_with("FastBox: pick a new delivery time"), "{text}");
    assert!(text.contains(&rig.public_url()), "the link is on the public URL: {text}");
    let link = &text[text.find("/r/").expect("a link")..];
    let (status, page) = ts.api.raw(Method::GET, None, link, None, FORM).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, done) = ts.api.raw(Method::POST, None, link, Some("slot=1".into()), FORM).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let seen = courier
        .rec
        .wait_until("the new window", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::StopRescheduled { .. }))
        })
        .await;
    assert!(seen
        .events
        .iter()
        .any(|e| e.kind == EventKind::CallFinished { outcome: Outcome::RescheduleRequested }));
    // The provider's delivery receipt reached the cascade.
    courier
        .rec
        .wait_until("the delivery receipt", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::MessageDelivered { .. }))
        })
        .await;
    assert_documented(&rig);
}

async fn key_zero_bridges_to_the_courier(kind: Kind) {
    let rig = rig(kind, Pace::default()).await;
    rig.script(&phone(6, 0), Behaviour::Answer { key: Key::new('0') });
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Bridge", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 6, 1, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");

    let seen = courier
        .rec
        .wait_until("the bridge", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::CourierBridged { .. }))
        })
        .await;
    assert!(seen.events.iter().any(|e| e.kind == EventKind::CourierBridged { attempt: 1, connected: true }));
    assert!(seen.events.iter().any(|e| e.kind == EventKind::CallFinished { outcome: Outcome::WantsCourier }));
    let courier_phone = depot.couriers[0].courier.phone.clone();
    assert_eq!(
        rig.dialled(),
        vec![(courier_phone, rig.caller_id().to_owned())],
        "the courier's phone rang, showing the robot's number"
    );
    assert_documented(&rig);
}

async fn a_restart_mid_call_calls_nobody_twice(kind: Kind) {
    let rig = rig(kind, slow()).await;
    rig.script(&phone(5, 3), Behaviour::NoAnswer);
    rig.script(&phone(5, 4), Behaviour::Busy);
    // Every call stops at the provider just short of its end, so all five
    // are live there when the server dies, and end while it is down.
    rig.hold_ends(true);
    let mut ts = rig.server(LineLimits::UNLIMITED).await;
    // One attempt each: any second dial of a number could only be a
    // duplicate made by the restart.
    let policy = AttemptPolicy { max_attempts: 1, ..quick_policy() };
    let depot = Depot::create(&ts.api, "Crash", 1, policy).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 5, 5, &courier).await;
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    // Held, the three who answer have pressed 1 (the server answered that
    // report, so it committed it); the others rang or got a busy line.
    rig.wait_until("all five calls live at the provider", |r| r.held() == 5).await;

    ts.kill();
    // The calls end at the provider while nobody listens: their last
    // reports go nowhere. The restart waits until every one has ended.
    rig.hold_ends(false);
    rig.wait_until("every call to end at the provider", |r| r.over() == 5).await;
    assert_eq!(
        rig.end_reports_accepted(),
        0,
        "no end reached the server: only the provider's record can tell"
    );
    ts.restart().await;
    rig.reattach(&ts);
    courier.proxy.set_target(ts.addr);
    courier.proxy.cut();

    let seen = courier.wait_all_terminal(&ids).await;
    assert!(ids
        .iter()
        .all(|id| seen.stops[id].call.as_ref().is_some_and(|c| c.status == CallStatus::Finished)));
    let calls = all_calls(&ts, &depot).await;
    assert_eq!(calls.len(), 5);
    // Each attempt closed with what the provider recorded: the result and
    // the talk time (Twilio's CallDuration; the scenario's summary), the
    // key already known from before the crash.
    let mut expected: Vec<(String, AttemptResult, Option<u32>, Outcome)> =
        (0..3).map(|i| (phone(5, i), AttemptResult::Completed, Some(12), Outcome::Confirmed)).collect();
    expected.push((phone(5, 3), AttemptResult::NoAnswer, None, Outcome::NoAnswer));
    expected.push((phone(5, 4), AttemptResult::Busy, None, Outcome::NoAnswer));
    let stop_phones: std::collections::HashMap<StopId, String> =
        seen.stops.iter().map(|(id, st)| (*id, st.stop.phone.clone())).collect();
    for (number, result, talk, outcome) in &expected {
        let c = calls
            .iter()
            .find(|c| stop_phones.get(&c.call.stop_id) == Some(number))
            .unwrap_or_else(|| panic!("the call to {number}: {calls:?}"));
        assert_eq!(c.attempts.len(), 1, "{number}: {c:?}");
        let a = &c.attempts[0];
        assert_eq!(
            (a.result, a.talk_secs),
            (Some(*result), *talk),
            "{number}: closed from the provider's record"
        );
        assert_eq!(c.call.outcome, Some(*outcome), "{number}");
    }
    let audit = callahead_e2e::ws::replay(&ts.api.base, &depot.supervisor, 0).await;
    for id in &ids {
        let ended = audit
            .iter()
            .filter(|e| e.stop_id == Some(*id) && matches!(e.kind, EventKind::AttemptEnded { .. }))
            .count();
        assert_eq!(ended, 1, "one attempt_ended per call");
    }
    // The provider dialled each customer exactly once.
    let dials = rig.dials_per_number();
    for i in 0..5 {
        assert_eq!(dials.get(&phone(5, i)), Some(&1), "{} dialled once: {dials:?}", phone(5, i));
    }
    assert_eq!(dials.len(), 5, "{dials:?}");
    assert_documented(&rig);
}

async fn a_direct_call_rings_the_courier_then_the_customer_and_is_recorded(kind: Kind) {
    let rig = rig(kind, Pace::default()).await;
    let ts = rig.server(LineLimits::UNLIMITED).await;
    let depot = Depot::create(&ts.api, "Direct", 1, quick_policy()).await;
    let recording = |on: bool| {
        let api = ts.api.clone();
        let path = paths::DEPOT_RECORDING.replace("{depot_id}", &depot.depot.id.to_string());
        async move {
            let body = DirectCallRecording { record_direct_calls: on };
            api.send::<DirectCallRecording>(Method::PUT, Some(ADMIN), &path, Some(&body))
                .await
                .expect("recording set")
        }
    };
    recording(true).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 62, 2, &courier).await;
    courier.wait_online().await;
    let token = depot.courier_token(0).to_owned();
    let dial = |stop: StopId, key: &str| {
        let (api, token) = (ts.api.clone(), token.clone());
        let body = DialDirect { stop_id: stop, idempotency_key: key.to_owned() };
        async move { api.send::<DirectDial>(Method::POST, Some(&token), paths::DIRECT_DIALS, Some(&body)).await }
    };
    let first = dial(ids[0], "dial-0001").await.expect("dialled");
    assert!(first.recorded, "the depot records direct calls");
    assert_eq!(dial(ids[0], "dial-0001").await.expect("a retry").id, first.id, "a retry rings nobody again");

    let seen = courier
        .rec
        .wait_until("the recording", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::DirectCallRecorded { .. }))
        })
        .await;
    let seen = if seen.events.iter().any(|e| matches!(e.kind, EventKind::DirectDialEnded { .. })) {
        seen
    } else {
        courier
            .rec
            .wait_until("the end", |s| {
                s.events.iter().any(|e| matches!(e.kind, EventKind::DirectDialEnded { .. }))
            })
            .await
    };
    let mine: Vec<&EventKind> =
        seen.events.iter().filter(|e| e.stop_id == Some(ids[0])).map(|e| &e.kind).collect();
    assert!(mine.contains(&&EventKind::DirectDialPlaced { dial_id: first.id, recorded: true }));
    assert!(mine
        .iter()
        .any(|k| matches!(k, EventKind::DirectDialEnded { connected: true, talk_secs: Some(_), .. })));
    let recorded = mine.iter().find_map(|k| match k {
        EventKind::DirectCallRecorded { recording_ref, duration_secs, .. } => {
            Some((recording_ref.clone(), *duration_secs))
        }
        _ => None,
    });
    let (recording_ref, secs) = recorded.expect("recorded");
    assert!(!recording_ref.is_empty() && secs > 0, "{recording_ref} {secs}");
    // Courier first, then the customer, each shown the company's number.
    let courier_phone = depot.couriers[0].courier.phone.clone();
    assert_eq!(
        rig.all_dialled(),
        vec![(courier_phone.clone(), rig.caller_id().to_owned()), (phone(62, 0), rig.caller_id().to_owned())]
    );
    // On the stop's timeline in the app, and in the depot's audit.
    let timeline = courier.client().timeline(ids[0]).expect("timeline");
    assert!(timeline.events.iter().any(|e| matches!(e.kind, EventKind::DirectCallRecorded { .. })));
    let audit = callahead_e2e::ws::replay(&ts.api.base, &depot.supervisor, 0).await;
    assert_eq!(
        audit.iter().filter(|e| matches!(e.kind, EventKind::DirectCallRecorded { .. })).count(),
        1,
        "once"
    );

    // A depot that does not record: connected, not recorded.
    recording(false).await;
    let second = dial(ids[1], "dial-0002").await.expect("dialled");
    assert!(!second.recorded);
    courier
        .rec
        .wait_until("the second call's end", |s| {
            s.events
                .iter()
                .any(|e| e.stop_id == Some(ids[1]) && matches!(e.kind, EventKind::DirectDialEnded { .. }))
        })
        .await;
    let audit = callahead_e2e::ws::replay(&ts.api.base, &depot.supervisor, 0).await;
    assert!(!audit
        .iter()
        .any(|e| e.stop_id == Some(ids[1]) && matches!(e.kind, EventKind::DirectCallRecorded { .. })));
    assert_documented(&rig);
}
