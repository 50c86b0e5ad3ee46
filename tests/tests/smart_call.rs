//! The smart-call story end to end: real server, real client cores, real
//! SQLite files, real sockets on loopback.

use callahead_core::call::Key;
use callahead_core::client::OutboxState;
use callahead_core::wire::{CallDetail, Event};
use callahead_core::{CallStatus, Outcome, StopId, MAX_ACTIVE_CALLS_PER_COURIER};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::{ws, Phone};
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use std::collections::HashSet;

/// Domain seconds per real second: a 60 s retry spacing takes 0.3 s.
const SPEED: f64 = 200.0;

fn answering(tag: u32, n: usize, key: char) -> SimConfig {
    // Every customer picks up after 5 s and answers after 20 s: each call
    // keeps its slot long enough for the cap to matter.
    let mut sim = SimConfig { ring_secs: (5, 5), talk_secs: (20, 20), ..SimConfig::default() };
    for i in 0..n {
        sim.overrides.insert(phone(tag, i), Behaviour::Answer { key: Key::new(key) });
    }
    sim
}

async fn route_ids(
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
        .expect("route imported");
    let synced = phone.client().sync_route(today()).await.expect("route synced");
    assert_eq!(synced.len(), n);
    synced.iter().map(|s| s.stop.id).collect()
}

async fn all_calls(ts: &TestServer, depot: &Depot) -> Vec<CallDetail> {
    ts.api.calls(&depot.supervisor, None, Some(today())).await.expect("calls listed").calls
}

/// Largest number of calls active at the same moment, from the server's own
/// timestamps (created → last update of a finished call).
fn max_overlap(calls: &[CallDetail]) -> usize {
    calls
        .iter()
        .map(|c| {
            let t = c.call.created_at;
            calls.iter().filter(|d| d.call.created_at <= t && d.call.updated_at > t).count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_taps_seven_stops_five_start_two_wait_all_finish() {
    let ts = TestServer::start(SPEED, answering(1, 7, '1')).await;
    let depot = Depot::create(&ts.api, "North", 1, quick_policy()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 0, 1, 7, &phone).await;
    phone.wait_online().await;

    let tapped = phone.client().request_calls(&ids).expect("tap is stored");
    assert_eq!(tapped.len(), 7, "all seven are in the outbox at once");
    assert!(tapped.iter().all(|s| s.outbox.is_some()), "every tapped stop shows as queued");

    // Five start; the other two are still waiting while those five run.
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

    // The server agrees, and never had more than five active at once.
    let calls = all_calls(&ts, &depot).await;
    assert_eq!(calls.len(), 7, "one call per stop");
    assert_eq!(max_overlap(&calls), MAX_ACTIVE_CALLS_PER_COURIER);
    let mut by_start: Vec<_> = calls.iter().collect();
    by_start.sort_by_key(|c| c.call.created_at);
    let first_finish = by_start[..5].iter().map(|c| c.call.updated_at).min().expect("five calls");
    for late in &by_start[5..] {
        assert!(late.call.created_at >= first_finish, "the 6th and 7th start only after a slot frees");
    }
    assert!(phone.client().active_count().expect("count") == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_who_never_answers_gets_exactly_three_attempts() {
    let mut sim = SimConfig::default();
    sim.overrides.insert(phone(2, 0), Behaviour::NoAnswer);
    let ts = TestServer::start(SPEED, sim).await;
    let policy = quick_policy();
    let depot = Depot::create(&ts.api, "South", 1, policy.clone()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 0, 2, 1, &phone).await;
    phone.wait_online().await;

    phone.client().request_calls(&ids).expect("tap");
    let seen = phone.wait_all_terminal(&ids).await;
    let call = seen.stops[&ids[0]].call.clone().expect("call");
    assert_eq!(call.outcome, Some(Outcome::NoAnswer));
    assert_eq!(call.attempts_made, 3);

    let detail = ts.api.call(&depot.supervisor, call.id).await.expect("detail");
    assert_eq!(detail.attempts.len(), 3, "exactly three attempts");
    for (i, a) in detail.attempts.iter().enumerate() {
        assert_eq!(a.number as usize, i + 1);
        assert_eq!(a.result, Some(callahead_core::AttemptResult::NoAnswer));
        let rang = a.ended_at.expect("ended") - a.placed_at;
        assert!(rang.num_seconds() >= policy.ring_timeout_secs as i64, "rang for the whole timeout");
    }
    for w in detail.attempts.windows(2) {
        let gap = w[1].placed_at - w[0].ended_at.expect("ended");
        assert!(
            gap.num_seconds() >= policy.retry_spacing_secs as i64,
            "attempts are spaced by the policy: {gap}"
        );
    }
    // The courier saw every attempt, in order.
    let placed: Vec<u32> = seen
        .events
        .iter()
        .filter_map(|e| match e.kind {
            callahead_core::wire::EventKind::AttemptPlaced { attempt } => Some(attempt),
            _ => None,
        })
        .collect();
    assert_eq!(placed, vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_made_offline_survives_an_app_kill_and_is_placed_once() {
    let ts = TestServer::start(SPEED, answering(3, 3, '1')).await;
    let depot = Depot::create(&ts.api, "East", 1, quick_policy()).await;
    let mut phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 0, 3, 3, &phone).await;
    phone.wait_online().await;

    // Into a dead zone: the tap still works, from the local database.
    phone.proxy.set_online(false);
    let tapped = phone.client().request_calls(&ids[..1]).expect("tap works offline");
    assert_eq!(tapped[0].outbox, Some(OutboxState::Queued));
    let stops = phone.client().stops().expect("stops offline");
    assert_eq!(stops.len(), 3, "the route is readable offline");

    // The OS kills the app, twice, while still offline.
    phone.close();
    phone.open();
    let after_reopen = phone.client().stops().expect("stops");
    let stop = after_reopen.iter().find(|s| s.stop.id == ids[0]).expect("stop");
    assert_eq!(stop.outbox, Some(OutboxState::Queued), "the tap survived the kill");
    phone.close();
    phone.open();
    assert_eq!(ts.api.calls(&depot.supervisor, None, Some(today())).await.expect("calls").calls.len(), 0);

    // Signal returns.
    phone.proxy.set_online(true);
    phone.wait_all_terminal(&ids[..1]).await;
    let calls = all_calls(&ts, &depot).await;
    assert_eq!(calls.len(), 1, "exactly one call on the server");
    assert_eq!(calls[0].call.stop_id, ids[0]);
    assert_eq!(calls[0].attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_websocket_resumes_with_every_event_exactly_once_in_order() {
    let mut sim = answering(4, 5, '1');
    sim.overrides.insert(phone(4, 4), Behaviour::NoAnswer); // more events, over a longer time
    let ts = TestServer::start(SPEED, sim).await;
    let depot = Depot::create(&ts.api, "West", 1, quick_policy()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 0, 4, 5, &phone).await;
    phone.wait_online().await;
    let cursor = phone.client().cursor().expect("cursor");
    let connections_before = phone.proxy.accepted();

    phone.client().request_calls(&ids).expect("tap");
    // Cut every connection (websocket and HTTP alike) mid-stream, three times.
    for n in [3, 8, 14] {
        phone.rec.wait_until(&format!("{n} events"), |s| s.events.len() >= n).await;
        phone.proxy.cut();
    }
    let seen = phone.wait_all_terminal(&ids).await;
    assert!(phone.proxy.accepted() >= connections_before + 3, "the client reconnected after each cut");

    // What the server says this courier should have seen since the sync…
    let truth: Vec<u64> =
        ws::replay(&ts.api.base, depot.courier_token(0), cursor).await.iter().map(|e| e.seq).collect();
    // …is exactly what the client applied: every one, once, in order.
    let applied: Vec<u64> = seen.events.iter().map(|e: &Event| e.seq).collect();
    assert_eq!(applied, truth);
    assert_eq!(applied.iter().collect::<HashSet<_>>().len(), applied.len(), "no duplicates");
    assert_eq!(all_calls(&ts, &depot).await.len(), 5, "cuts during requests never doubled a call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_calls_finishes_every_call_without_calling_anyone_twice() {
    let mut sim = answering(5, 5, '1');
    sim.overrides.insert(phone(5, 3), Behaviour::NoAnswer);
    sim.overrides.insert(phone(5, 4), Behaviour::Busy);
    let mut ts = TestServer::start(SPEED, sim).await;
    let depot = Depot::create(&ts.api, "Crash", 1, quick_policy()).await;
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids = route_ids(&ts, &depot, 0, 5, 5, &phone).await;
    phone.wait_online().await;

    phone.client().request_calls(&ids).expect("tap");
    phone.rec.wait_until("calls under way", |s| s.events.len() >= 8).await;
    let first_sim = ts.running().simulator();
    ts.kill();
    ts.restart().await;
    phone.proxy.set_target(ts.addr);
    phone.proxy.cut();

    let seen = phone.wait_all_terminal(&ids).await;
    assert!(ids
        .iter()
        .all(|id| seen.stops[id].call.as_ref().is_some_and(|c| c.status == CallStatus::Finished)));

    let mut placed = first_sim.placed();
    placed.extend(ts.running().simulator().placed());
    let unique: HashSet<_> = placed.iter().collect();
    assert_eq!(unique.len(), placed.len(), "no attempt was placed twice: {placed:?}");
    let calls = all_calls(&ts, &depot).await;
    assert_eq!(calls.len(), 5);
    for c in &calls {
        let numbers: Vec<u32> = c.attempts.iter().map(|a| a.number).collect();
        assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>(), "attempts numbered 1..n");
        assert!(c.attempts.len() <= c.call.max_attempts as usize);
        assert!(c.attempts.iter().all(|a| a.result.is_some()), "every attempt closed");
    }
}
