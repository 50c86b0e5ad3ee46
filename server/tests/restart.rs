//! Kill the server mid-calls, start it again on the same database: every
//! call finishes, and no attempt is ever placed twice.

mod common;

use callahead_core::call::Key;
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{CallList, EventKind, ServerFrame};
use callahead_core::CallStatus;
use callahead_server::providers::simulator::Behaviour;
use common::*;
use reqwest::StatusCode;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const CALLS: usize = 5;

fn customers() -> HashMap<String, Behaviour> {
    let one = Key::new('1').expect("key");
    (0..CALLS)
        .map(|i| {
            let b = if i % 2 == 0 { Behaviour::NoAnswer } else { Behaviour::Answer { key: Some(one) } };
            (phone(i), b)
        })
        .collect()
}

fn policy() -> AttemptPolicy {
    AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 120,
        ring_timeout_secs: 30,
        ..AttemptPolicy::default()
    }
}

/// Starts a second server on `dir`'s database and waits until every call is
/// terminal; returns the calls and the keys the new simulator placed.
async fn restart_and_finish(dir: Arc<tempfile::TempDir>) -> (Harness, CallList, Vec<String>) {
    let h = Harness::start_with(dir.clone(), config(&dir, fast_clock(), customers())).await;
    let mut admin = h.ws(ADMIN, Some(0)).await;
    loop {
        let (s, list) = h.get("/v1/calls", ADMIN).await;
        assert_eq!(s, StatusCode::OK);
        let list: CallList = serde_json::from_value(list).expect("a CallList");
        if list.calls.len() == CALLS && list.calls.iter().all(|c| c.call.status.is_terminal()) {
            let placed = h.server().simulator().placed();
            return (h, list, placed);
        }
        // Wait for the next event instead of polling on a timer.
        match admin.try_frame(WAIT).await {
            Some(ServerFrame::Event { .. } | ServerFrame::CaughtUp { .. } | ServerFrame::Hello { .. }) => {}
            other => panic!("the server went quiet with calls unfinished: {other:?}"),
        }
    }
}

fn assert_never_placed_twice(first: &[String], second: &[String], list: &CallList) {
    let mut all = HashSet::new();
    for key in first.iter().chain(second) {
        assert!(all.insert(key.clone()), "{key} was placed twice across the restart");
    }
    for c in &list.calls {
        let numbers: Vec<u32> = c.attempts.iter().map(|a| a.number).collect();
        assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>());
        assert!(numbers.len() as u32 <= c.call.max_attempts);
        assert!(matches!(c.call.status, CallStatus::Finished | CallStatus::Cancelled));
        for a in &c.attempts {
            assert!(a.ended_at.is_some() || c.call.status.is_terminal(), "attempt {} left open", a.number);
        }
    }
}

#[tokio::test]
async fn a_crash_with_every_attempt_ringing_finishes_every_call_after_restart() {
    // First life: a frozen clock, so every call is mid-attempt when it dies.
    let (_manual, clock) = manual_clock();
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let h1 = Harness::start_with(dir.clone(), config(&dir, clock, customers())).await;
    let d = h1.depot(policy(), CALLS, 0).await;
    let mut ws = h1.ws(&d.courier_token, None).await;
    for i in 0..CALLS {
        let (s, body) = h1.request_call(&d, d.stop_ids[i], &format!("crash-tap-{i}")).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    // Every phone rings (so every attempt reached the provider), and the
    // frozen clock keeps them ringing.
    let mut rung = 0;
    ws.until(|e| {
        rung += usize::from(matches!(e.kind, EventKind::Ringing { .. }));
        rung == CALLS
    })
    .await;
    let sim = h1.server().simulator();
    let Harness { server, .. } = h1;
    server.expect("running").kill();
    let first = sim.placed();
    assert_eq!(first.len(), CALLS);

    let (h2, list, second) = restart_and_finish(dir).await;
    assert_never_placed_twice(&first, &second, &list);
    for c in &list.calls {
        assert_eq!(c.attempts[0].result, Some(callahead_core::AttemptResult::Interrupted));
    }
    // The admin token bootstrap is idempotent: the restarted server accepts it.
    let (s, _) = h2.get("/v1/calls", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_busy_morning_loses_and_repeats_nothing() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let h1 = Harness::start_with(dir.clone(), config(&dir, fast_clock(), customers())).await;
    let d = h1.depot(policy(), CALLS, 0).await;
    let mut ws = h1.ws(&d.courier_token, None).await;
    for i in 0..CALLS {
        let (s, _) = h1.request_call(&d, d.stop_ids[i], &format!("busy-tap-{i}")).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // Die as soon as the customers' phones start ringing.
    let mut rung = 0;
    ws.until(|e| {
        rung += usize::from(matches!(e.kind, EventKind::Ringing { .. }));
        rung == 3
    })
    .await;
    let Harness { server, .. } = h1;
    let server = server.expect("running");
    let sim = server.simulator();
    server.kill();
    let first = sim.placed();

    let (_h2, list, second) = restart_and_finish(dir).await;
    assert_never_placed_twice(&first, &second, &list);
}
