//! Automatic call-ahead end to end (issue #15): a courier switches it on and
//! never taps; each stop is called once, when its ETA comes within the lead
//! time, through the outbox (cap of 5), and a restart of the app mid-route
//! calls nobody twice. A stop the courier tapped or cancelled is theirs.

use callahead_core::call::Key;
use callahead_core::client::AutoCallAhead;
use callahead_core::wire::EventKind;
use callahead_core::{CallStatus, StopId};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::Phone;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use chrono::Duration;
use std::collections::HashMap;

/// Domain minutes per real second: 60.
const SPEED: f64 = 60.0;
const LEAD: u32 = 60;

/// Calls the server logged per stop, and the most calls active at once.
async fn server_calls(ts: &TestServer, depot: &Depot) -> (HashMap<StopId, usize>, usize) {
    let events = ts.api.all_events(&depot.supervisor).await;
    let mut per_stop: HashMap<StopId, usize> = HashMap::new();
    let (mut active, mut most) = (0usize, 0usize);
    for e in &events {
        match e.kind {
            EventKind::CallRequested => {
                *per_stop.entry(e.stop_id.expect("a call's stop")).or_default() += 1;
                active += 1;
                most = most.max(active);
            }
            EventKind::CallFinished { .. } | EventKind::CallCancelled => active = active.saturating_sub(1),
            _ => {}
        }
    }
    (per_stop, most)
}

/// Every customer of `tag`'s `n` stops confirms: no answer re-plans the
/// route (a decline would take its stop out of the chain and bring the
/// later ones nearer, docs/adr/0009), so the ETAs stay as planned.
fn confirming(tag: u32, n: usize) -> SimConfig {
    let mut sim = SimConfig::default();
    for i in 0..n {
        sim.overrides.insert(phone(tag, i), Behaviour::Answer { key: Key::new('1') });
    }
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_are_called_once_each_as_the_courier_comes_within_the_hour_across_a_restart() {
    let ts = TestServer::start(SPEED, confirming(31, 8)).await;
    let depot = Depot::create(&ts.api, "Auto", 1, quick_policy()).await;
    let courier = depot.courier_id(0);
    // 8 stops without coordinates: 10 minutes a leg, 5 at each stop, so
    // ETAs run now+10, +25, +40, +55, +70, … while the courier waits.
    let imported = stops(31, 8, ts.now());
    ts.api.import_route(&depot.integrator, courier, today(), imported).await.expect("import");
    let mut phone = Phone::on_clock(ts.addr, depot.courier_token(0), Some(ts.clock.clone())).await;
    let route = phone.client().sync_route(today()).await.expect("sync");
    let ids: Vec<StopId> = route.iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;

    // The courier tapped the second stop before switching auto on, and
    // cancelled nothing yet: that stop stays theirs.
    phone.client().request_calls(&[ids[1]]).expect("tap");
    phone.wait_all_terminal(&[ids[1]]).await;
    assert_eq!(phone.client().auto_call_ahead().expect("settings"), AutoCallAhead::default());
    assert!(
        phone.client().set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: 5 }).is_err(),
        "a lead under 10 minutes is refused"
    );
    phone.client().set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: LEAD }).expect("on");

    // Within the hour now: stops 0, 2 and 3 (1 was tapped). Not 4 (+70).
    phone.wait_all_terminal(&[ids[0], ids[2], ids[3]]).await;
    let states = phone.client().stops().expect("stops");
    let by_id: HashMap<StopId, _> = states.iter().map(|s| (s.stop.id, s.clone())).collect();
    assert!(by_id[&ids[1]].auto_eta.is_none(), "the tapped stop was not called automatically");
    for id in &ids[4..] {
        assert!(by_id[id].call.is_none() && by_id[id].outbox.is_none(), "stop {id} is over an hour away");
    }
    for id in [ids[0], ids[2], ids[3]] {
        let s = &by_id[&id];
        let (eta, call) = (s.auto_eta.expect("auto says why"), s.call.as_ref().expect("a call"));
        assert!(
            eta - call.created_at <= Duration::minutes(i64::from(LEAD)) + Duration::minutes(2),
            "stop {id}: called at {} for ETA {eta}",
            call.created_at
        );
    }

    // The courier delivers the first two stops: the chain moves up and the
    // next stops come within the hour. The app is killed and reopened in
    // the middle; nobody is called twice.
    phone.client().set_visited(ids[0], true).expect("visited");
    phone.client().set_visited(ids[1], true).expect("visited");
    phone.close();
    phone.open();
    phone.wait_online().await;
    phone.wait_all_terminal(&[ids[4], ids[5]]).await;
    phone.client().set_visited(ids[2], true).expect("visited");
    phone.client().set_visited(ids[3], true).expect("visited");
    phone.wait_all_terminal(&[ids[6], ids[7]]).await;

    let (per_stop, most) = server_calls(&ts, &depot).await;
    for id in &ids {
        assert_eq!(per_stop.get(id), Some(&1), "stop {id} was called exactly once: {per_stop:?}");
    }
    assert!(most <= callahead_core::MAX_ACTIVE_CALLS_PER_COURIER, "at most 5 at once, saw {most}");
    let states = phone.client().stops().expect("stops");
    assert_eq!(states.iter().filter(|s| s.auto_eta.is_some()).count(), 7, "all but the tapped one");
    assert!(states.iter().all(|s| s.call.as_ref().is_some_and(|c| c.status == CallStatus::Finished)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_courier_cancelled_is_not_placed_again_automatically() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Auto cancel", 1, quick_policy()).await;
    let courier = depot.courier_id(0);
    ts.api.import_route(&depot.integrator, courier, today(), stops(32, 2, ts.now())).await.expect("import");
    let phone = Phone::on_clock(ts.addr, depot.courier_token(0), Some(ts.clock.clone())).await;
    let route = phone.client().sync_route(today()).await.expect("sync");
    let ids: Vec<StopId> = route.iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;
    // Offline, the courier taps and withdraws the first stop's call.
    phone.proxy.set_online(false);
    phone.client().request_calls(&[ids[0]]).expect("tap");
    phone.client().cancel(ids[0]).await.expect("withdrawn before sending");
    phone.proxy.set_online(true);
    phone.wait_online().await;
    phone.client().set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: LEAD }).expect("on");
    phone.wait_all_terminal(&[ids[1]]).await;
    let (per_stop, _) = server_calls(&ts, &depot).await;
    // The tap may have reached the server before the proxy cut it (then the
    // cancel cancelled that call); either way nothing calls the stop again.
    assert!(per_stop.get(&ids[0]).copied().unwrap_or(0) <= 1, "the courier's decision stands: {per_stop:?}");
    let first =
        phone.client().stops().expect("stops").into_iter().find(|s| s.stop.id == ids[0]).expect("stop");
    assert!(first.auto_eta.is_none(), "not called automatically: {first:?}");
    assert!(first.call.as_ref().is_none_or(|c| c.status == CallStatus::Cancelled), "{first:?}");
    assert_eq!(per_stop.get(&ids[1]), Some(&1));
}
