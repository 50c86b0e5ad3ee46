//! Smart calls run by the orchestrator against scripted simulator customers,
//! on a clock 2000x faster than real time.

mod common;

use callahead_core::call::{AttemptResult, Key};
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{CallDetail, EventKind};
use callahead_core::Outcome;
use callahead_server::providers::simulator::Behaviour;
use common::*;
use reqwest::StatusCode;
use std::collections::HashMap;

async fn detail(h: &Harness, d: &Depot, id: i64) -> CallDetail {
    let (s, v) = h.get(&format!("/v1/calls/{id}"), &d.courier_token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    serde_json::from_value(v).expect("a CallDetail")
}

#[tokio::test]
async fn a_customer_who_never_answers_gets_exactly_max_attempts_spaced_by_the_policy() {
    let overrides = HashMap::from([(phone(0), Behaviour::NoAnswer)]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    let (s, call) = h.request_call(&d, d.stop_ids[0], "tap-no-answer").await;
    assert_eq!(s, StatusCode::CREATED);
    let id = call["id"].as_i64().expect("id");

    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert!(events.iter().any(|e| e.kind == EventKind::CallFinished { outcome: Outcome::NoAnswer }));
    let placed = events.iter().filter(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).count();
    assert_eq!(placed, 3);

    let d2 = detail(&h, &d, id).await;
    assert_eq!(d2.call.outcome, Some(Outcome::NoAnswer));
    assert_eq!(d2.call.attempts_made, 3);
    let numbers: Vec<u32> = d2.attempts.iter().map(|a| a.number).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    for a in &d2.attempts {
        assert_eq!(a.result, Some(AttemptResult::NoAnswer));
    }
    for pair in d2.attempts.windows(2) {
        let ended = pair[0].ended_at.expect("ended");
        let gap = pair[1].placed_at - ended;
        assert!(gap >= chrono::Duration::seconds(600), "next attempt {gap} after the previous ended");
        // Generous upper bound: real-time scheduling jitter times 2000.
        assert!(gap < chrono::Duration::seconds(600 + 600), "next attempt placed late: {gap}");
        assert!(pair[1].placed_at - pair[0].placed_at >= chrono::Duration::seconds(600));
    }
    // Nobody called a fourth time, nobody called twice for one attempt.
    let sim = h.server().simulator();
    assert_eq!(sim.placed(), vec![format!("call-{id}-1"), format!("call-{id}-2"), format!("call-{id}-3")]);
    assert_eq!(sim.duplicate_places(), 0);
}

#[tokio::test]
async fn a_customer_who_presses_one_confirms_on_the_first_attempt() {
    let key = Key::new('1').expect("key");
    let overrides = HashMap::from([(phone(0), Behaviour::Answer { key: Some(key) })]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    let (_, call) = h.request_call(&d, d.stop_ids[0], "tap-confirm").await;
    let id = call["id"].as_i64().expect("id");

    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
    assert!(kinds.contains(&&EventKind::Answered { attempt: 1 }), "{kinds:?}");
    assert!(kinds.contains(&&EventKind::KeyPressed { attempt: 1, key }), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&&EventKind::CallFinished { outcome: Outcome::Confirmed }));
    // Every event carries the call as it is after that event.
    let finished = events.last().expect("event");
    let snapshot = finished.call.as_ref().expect("snapshot");
    assert_eq!(snapshot.last_seq, finished.seq);
    assert_eq!(snapshot.outcome, Some(Outcome::Confirmed));

    // The hang-up after the key press closes the attempt as completed.
    let mut ended = None;
    while ended.is_none() {
        let e = ws.event().await;
        if let EventKind::AttemptEnded { result, .. } = e.kind {
            ended = Some(result);
        }
    }
    assert_eq!(ended, Some(AttemptResult::Completed));
    let d2 = detail(&h, &d, id).await;
    assert_eq!(d2.attempts.len(), 1);
    assert_eq!(d2.attempts[0].key, Some(key));
    assert!(d2.attempts[0].answered_at.is_some());
}

#[tokio::test]
async fn a_busy_then_failing_line_is_told_apart_from_no_answer() {
    let overrides = HashMap::from([(phone(0), Behaviour::Fail), (phone(1), Behaviour::Busy)]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(AttemptPolicy { max_attempts: 2, ..policy() }, 2, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    h.request_call(&d, d.stop_ids[0], "tap-fail-line").await;
    h.request_call(&d, d.stop_ids[1], "tap-busy-line").await;
    let mut outcomes = HashMap::new();
    ws.until(|e| {
        if let EventKind::CallFinished { outcome } = e.kind {
            outcomes.insert(e.stop_id.map(|s| s.0), outcome);
        }
        outcomes.len() == 2
    })
    .await;
    assert_eq!(outcomes.get(&Some(d.stop_ids[0])), Some(&Outcome::Failed));
    assert_eq!(outcomes.get(&Some(d.stop_ids[1])), Some(&Outcome::NoAnswer));
}

#[tokio::test]
async fn a_customer_who_asks_for_the_courier_is_put_through_at_once_and_a_second_finds_them_busy() {
    let courier = Behaviour::Answer { key: Key::new('0') };
    let overrides = HashMap::from([(phone(0), courier.clone()), (phone(1), courier)]);
    // Both customers pick up after 5 s and press 0 after a 60 s message, and
    // a bridge lasts 60 s: the second call is requested well within those
    // 60 s of the first (200x: 300 ms of real time), so its customer always
    // finds the courier on the line. (Random timings made this flaky.)
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut cfg =
        config(&dir, std::sync::Arc::new(callahead_core::clock::ScaledClock::new(t0(), 200.0)), overrides);
    cfg.simulator.ring_secs = (5, 5);
    cfg.simulator.talk_secs = (60, 60);
    let h = Harness::start_with(dir, cfg).await;
    let d = h.depot(policy(), 2, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    h.request_call(&d, d.stop_ids[0], "tap-talk-first").await;
    h.request_call(&d, d.stop_ids[1], "tap-talk-second").await;

    let mut bridged = HashMap::new();
    let events = ws
        .until(|e| {
            if let EventKind::CourierBridged { connected, .. } = e.kind {
                bridged.insert(e.stop_id.map(|s| s.0), connected);
            }
            bridged.len() == 2
        })
        .await;
    let mut results: Vec<bool> = bridged.values().copied().collect();
    results.sort();
    assert_eq!(results, vec![false, true], "one customer talks to the courier, the other hears 'busy'");
    for stop in &d.stop_ids {
        let of_stop: Vec<&EventKind> =
            events.iter().filter(|e| e.stop_id.map(|s| s.0) == Some(*stop)).map(|e| &e.kind).collect();
        // The call is decided (and its slot under the cap free) at the key
        // press; the bridge happens inside that same phone call, no queue.
        let finished =
            of_stop.iter().position(|k| **k == EventKind::CallFinished { outcome: Outcome::WantsCourier });
        let put_through = of_stop.iter().position(|k| matches!(k, EventKind::CourierBridged { .. }));
        assert!(finished.is_some() && finished < put_through, "{of_stop:?}");
        assert!(
            !of_stop.iter().any(|k| matches!(k, EventKind::AttemptEnded { .. })),
            "still on the line: {of_stop:?}"
        );
    }
}

#[tokio::test]
async fn a_request_may_override_the_depots_attempts_and_a_bad_override_is_refused() {
    let overrides = HashMap::from([(phone(0), Behaviour::NoAnswer)]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;

    let (s, body) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            serde_json::json!({"stop_id": d.stop_ids[0], "idempotency_key": "tap-override-bad",
                "policy": {"max_attempts": 0}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("validation_failed"), Some("policy.max_attempts"))
    );

    let (s, call) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            serde_json::json!({"stop_id": d.stop_ids[0], "idempotency_key": "tap-override-once",
                "policy": {"max_attempts": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    assert_eq!(call["max_attempts"], 1);
    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert_eq!(events.iter().filter(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).count(), 1);
}

#[tokio::test]
async fn a_voicemail_is_never_answered_and_is_retried_like_no_answer() {
    let overrides = HashMap::from([(phone(0), Behaviour::Voicemail)]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    let (_, call) = h.request_call(&d, d.stop_ids[0], "tap-voicemail").await;
    let id = call["id"].as_i64().expect("id");
    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert!(
        !events.iter().any(|e| matches!(e.kind, EventKind::Answered { .. })),
        "a machine is not an answer"
    );
    assert_eq!(events.last().map(|e| &e.kind), Some(&EventKind::CallFinished { outcome: Outcome::NoAnswer }));
    let d2 = detail(&h, &d, id).await;
    assert_eq!(d2.attempts.len(), 3);
    assert!(d2
        .attempts
        .iter()
        .all(|a| a.answered_at.is_none() && a.result == Some(AttemptResult::Voicemail)));
}

#[tokio::test]
async fn answered_means_heard_at_least_the_policys_seconds() {
    // Customer 0 hangs up 3 s into the message, customer 1 after 8 s; both
    // without a key. With "heard at least 5 s", only customer 1 answered.
    let overrides = HashMap::from([
        (phone(0), Behaviour::HangsUpAfter { secs: 3 }),
        (phone(1), Behaviour::HangsUpAfter { secs: 8 }),
    ]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(AttemptPolicy { max_attempts: 2, min_heard_secs: 5, ..policy() }, 2, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    let (_, early) = h.request_call(&d, d.stop_ids[0], "tap-hung-up-early").await;
    let (_, heard) = h.request_call(&d, d.stop_ids[1], "tap-heard-it-all").await;
    let mut finished = 0;
    ws.until(|e| {
        finished += usize::from(matches!(e.kind, EventKind::CallFinished { .. }));
        finished == 2
    })
    .await;
    for (call, result, talk) in [(early, AttemptResult::HungUpEarly, 3), (heard, AttemptResult::NoInput, 8)] {
        let d2 = detail(&h, &d, call["id"].as_i64().expect("id")).await;
        assert_eq!(d2.attempts.len(), 2, "both retried: nobody chose");
        for a in &d2.attempts {
            assert_eq!(a.result, Some(result));
            assert_eq!(a.talk_secs, Some(talk), "talk time kept for the audit");
            assert!(a.answered_at.is_some(), "they did pick up");
        }
        assert_eq!(d2.call.outcome, Some(Outcome::NoAnswer));
    }

    // The threshold is per call too: 2 s makes a 3 s hang-up an answer.
    let (s, call) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            serde_json::json!({
                "stop_id": d.stop_ids[0], "idempotency_key": "tap-lower-threshold",
                "policy": {"max_attempts": 1, "min_heard_secs": 2}
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let id = call["id"].as_i64().expect("id");
    ws.until(|e| {
        matches!(e.kind, EventKind::CallFinished { .. }) && e.call.as_ref().is_some_and(|c| c.id.0 == id)
    })
    .await;
    let d3 = detail(&h, &d, id).await;
    assert_eq!(d3.attempts[0].result, Some(AttemptResult::NoInput));

    // And a threshold longer than any message is refused.
    let (s, v) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            serde_json::json!({
                "stop_id": d.stop_ids[1], "idempotency_key": "tap-silly-threshold",
                "policy": {"min_heard_secs": 600}
            }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "policy.min_heard_secs");
}
