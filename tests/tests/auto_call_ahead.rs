//! Automatic call-ahead end to end (issue #15): a courier switches it on and
//! never taps; each stop is called once, when its ETA comes within the lead
//! time, through the outbox (cap of 5), and a restart of the app mid-route
//! calls nobody twice. A stop the courier tapped or cancelled is theirs.

use callahead_core::call::Key;
use callahead_core::calling_hours::{CallingHours, DailyHours};
use callahead_core::client::AutoCallAhead;
use callahead_core::policy::AttemptPolicy;
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

/// What the server logged: calls per stop, the most calls active at once,
/// and when each attempt was placed.
struct Logged {
    per_stop: HashMap<StopId, usize>,
    most_active: usize,
    placed_at: Vec<chrono::DateTime<chrono::Utc>>,
}

async fn server_calls(ts: &TestServer, depot: &Depot) -> (HashMap<StopId, usize>, usize) {
    let l = logged(ts, depot).await;
    (l.per_stop, l.most_active)
}

async fn logged(ts: &TestServer, depot: &Depot) -> Logged {
    let events = ts.api.all_events(&depot.supervisor).await;
    let mut per_stop: HashMap<StopId, usize> = HashMap::new();
    let (mut active, mut most) = (0usize, 0usize);
    let mut placed_at = Vec::new();
    for e in &events {
        match e.kind {
            EventKind::AttemptPlaced { .. } => placed_at.push(e.at),
            EventKind::CallRequested => {
                *per_stop.entry(e.stop_id.expect("a call's stop")).or_default() += 1;
                active += 1;
                most = most.max(active);
            }
            EventKind::CallFinished { .. } | EventKind::CallCancelled => active = active.saturating_sub(1),
            _ => {}
        }
    }
    Logged { per_stop, most_active: most, placed_at }
}

/// Every customer of `tag`'s `n` stops confirms: no answer re-plans the
/// route (a decline would take its stop out of the chain and bring the
/// later ones nearer, docs/adr/0010), so the ETAs stay as planned.
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
    // The morning starts at 10:00 Moscow time; calls may start at 10:05.
    let opens = ts.now().date_naive().and_hms_opt(7, 5, 0).expect("a time").and_utc();
    let hours = DailyHours::new((10, 5), (21, 0)).expect("hours");
    let policy = AttemptPolicy {
        calling_hours: CallingHours { weekdays: Some(hours), weekends: Some(hours) },
        ..quick_policy()
    };
    let depot = Depot::create(&ts.api, "Auto", 1, policy).await;
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

    let Logged { per_stop, most_active: most, placed_at } = logged(&ts, &depot).await;
    for id in &ids {
        assert_eq!(per_stop.get(id), Some(&1), "stop {id} was called exactly once: {per_stop:?}");
    }
    assert!(most <= callahead_core::MAX_ACTIVE_CALLS_PER_COURIER, "at most 5 at once, saw {most}");
    // The first stops came within the hour before 10:05: requested then,
    // rung only once the calling hours opened.
    assert!(placed_at.len() >= ids.len());
    assert!(placed_at.iter().all(|at| *at >= opens), "an attempt before 10:05: {placed_at:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depot_bounds_the_lead_time_the_courier_may_choose() {
    use callahead_core::auto_call::LeadBounds;
    use callahead_core::wire::{paths, CallAheadSettings};
    use reqwest::Method;
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Auto bounds", 1, quick_policy()).await;
    let path = paths::fill(paths::DEPOT_CALL_AHEAD, &[("depot_id", &depot.depot.id.to_string())]);
    let defaults: CallAheadSettings =
        ts.api.send(Method::GET, Some(&depot.supervisor), &path, None::<&()>).await.expect("settings");
    assert_eq!(defaults, CallAheadSettings::default());
    let narrow = CallAheadSettings { auto_lead: LeadBounds { min_minutes: 30, max_minutes: 45 }, ..defaults };
    let refused = ts
        .api
        .send::<CallAheadSettings>(
            Method::PUT,
            Some(&depot.supervisor),
            &path,
            Some(&CallAheadSettings {
                auto_lead: LeadBounds { min_minutes: 50, max_minutes: 40 },
                ..defaults
            }),
        )
        .await
        .expect_err("min over max");
    assert_eq!(refused.body.field.as_deref(), Some("auto_lead"));
    let courier_tries = ts
        .api
        .send::<CallAheadSettings>(Method::PUT, Some(depot.courier_token(0)), &path, Some(&narrow))
        .await;
    assert_eq!(courier_tries.expect_err("a courier").status, 403);
    ts.api
        .send::<CallAheadSettings>(Method::PUT, Some(&depot.supervisor), &path, Some(&narrow))
        .await
        .expect("saved");

    // The courier's app learns the bounds with its route.
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(33, 1, ts.now()))
        .await
        .expect("import");
    let phone = Phone::on_clock(ts.addr, depot.courier_token(0), Some(ts.clock.clone())).await;
    phone.client().sync_route(today()).await.expect("sync");
    assert_eq!(phone.client().auto_call_lead_bounds().expect("bounds"), narrow.auto_lead);
    let err = phone
        .client()
        .set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: 60 })
        .expect_err("60 is over the depot's 45");
    assert!(err.to_string().contains("between 30 and 45"), "{err}");
    phone.client().set_auto_call_ahead(AutoCallAhead { enabled: true, lead_minutes: 40 }).expect("within");
}
