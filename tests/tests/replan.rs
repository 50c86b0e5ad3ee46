//! Outcomes re-plan the route end to end (issue #15 part 2, docs/adr/0010):
//! a customer who declines and one who moves to another day leave today's
//! chain, one who picks a later window today moves to where it fits, and
//! the courier's phone follows; then the courier reorders and their order
//! wins, the next re-plan starts from it, and a reorder made offline wins
//! over a re-plan made meanwhile.

use callahead_core::call::Key;
use callahead_core::client::PlannedStop;
use callahead_core::wire::{self, paths, CreateCall, Event, EventKind, OutOfChain, ReplanReason};
use callahead_core::StopId;
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::{within, Phone};
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use reqwest::{Method, StatusCode};

/// Domain seconds per real second: the whole story fits well inside the
/// slack its windows leave (the insertion below holds until 12:20 Moscow).
const SPEED: f64 = 30.0;
const TAG: u32 = 51;
const FORM: &str = "application/x-www-form-urlencoded";

/// Moscow keeps UTC+3 all year.
fn msk() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).expect("offset")
}

fn moscow(h: u32, m: u32) -> DateTime<Utc> {
    msk()
        .from_local_datetime(&today().and_hms_opt(h, m, 0).expect("time"))
        .single()
        .expect("instant")
        .to_utc()
}

/// The stops in import order: each one's window (Moscow, from and to) and
/// the key its customer presses when called.
type Window = ((u32, u32), (u32, u32));
const ROUTE: [(&str, Window, Option<char>); 6] = [
    ("declines", ((12, 0), (13, 0)), Some('3')),
    ("later today", ((12, 0), (13, 0)), Some('2')),
    ("another day", ((20, 0), (21, 0)), Some('2')),
    ("a", ((12, 30), (13, 30)), Some('3')),
    ("b", ((13, 0), (14, 0)), Some('3')),
    ("c", ((15, 0), (16, 0)), None),
];

fn customers() -> SimConfig {
    let mut sim = SimConfig::default();
    for (i, (_, _, key)) in ROUTE.iter().enumerate() {
        if let Some(k) = key {
            sim.overrides.insert(phone(TAG, i), Behaviour::Answer { key: Key::new(*k) });
        }
    }
    sim
}

fn link_path(text: &str) -> String {
    let at = text.find("/r/").unwrap_or_else(|| panic!("no link in {text:?}"));
    text[at..].to_owned()
}

fn order(plan: &[PlannedStop]) -> Vec<StopId> {
    plan.iter().map(|p| p.state.stop.id).collect()
}

fn replanned(e: &Event, stop: StopId, why: ReplanReason) -> Option<Vec<StopId>> {
    match &e.kind {
        EventKind::RoutePlanned { stop_ids, reason: Some(r), .. } if *r == why && e.stop_id == Some(stop) => {
            Some(stop_ids.clone())
        }
        _ => None,
    }
}

async fn supervisor_order(ts: &TestServer, depot: &Depot) -> Vec<StopId> {
    let path = paths::fill(
        paths::COURIER_ROUTE,
        &[("courier_id", &depot.courier_id(0).to_string()), ("date", &today().to_string())],
    );
    let route: wire::Route = ts
        .api
        .send(Method::GET, Some(&depot.supervisor), &path, None::<&()>)
        .await
        .expect("supervisor reads");
    route.stops.iter().map(|s| s.stop.id).collect()
}

/// Waits until the phone's planned order is `want`.
async fn phone_order(phone: &Phone, ts: &TestServer, want: &[StopId], what: &str) -> Vec<PlannedStop> {
    phone
        .rec
        .wait_until(what, |_| phone.client().planned(ts.now(), None).is_ok_and(|p| order(&p) == want))
        .await;
    phone.client().planned(ts.now(), None).expect("plan")
}

/// Picks offered slot `slot` by the link texted to customer `i`.
async fn pick(ts: &TestServer, i: usize, slot: usize) {
    let sms = within("the reschedule SMS", ts.running().messaging().wait_for(&phone(TAG, i))).await;
    let (status, page) =
        ts.api.raw(Method::POST, None, &link_path(&sms.text), Some(format!("slot={slot}")), FORM).await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_and_a_later_window_re_plan_the_route_and_the_couriers_order_wins() {
    let ts = TestServer::start(SPEED, customers()).await;
    let depot = Depot::create(&ts.api, "Replan", 1, quick_policy()).await;
    let mut imported = stops(TAG, ROUTE.len(), ts.now());
    for (s, (_, (from, to), _)) in imported.iter_mut().zip(ROUTE) {
        (s.window_start, s.window_end) = (moscow(from.0, from.1), moscow(to.0, to.1));
    }
    ts.api.import_route(&depot.integrator, depot.courier_id(0), today(), imported).await.expect("import");
    let mut phone = Phone::on_clock(ts.addr, depot.courier_token(0), Some(ts.clock.clone())).await;
    let synced = phone.client().sync_route(today()).await.expect("sync");
    let ids: Vec<StopId> = synced.iter().map(|s| s.stop.id).collect();
    let [declines, later, another_day, a, b, c] = ids[..] else { panic!("six stops") };
    phone.wait_online().await;

    // The courier calls the first three. The first customer declines: the
    // stop leaves today's chain for the end of the route.
    phone.client().request_calls(&[declines, later, another_day]).expect("tap");
    phone
        .rec
        .wait_until("the decline to re-plan the route", |s| {
            s.events.iter().any(|e| replanned(e, declines, ReplanReason::Declined).is_some())
        })
        .await;
    let plan =
        phone_order(&phone, &ts, &[later, another_day, a, b, c, declines], "the declined stop last").await;
    let out = plan.last().expect("stop");
    assert_eq!(out.state.stop.out_of_chain, Some(OutOfChain::Declined));
    assert_eq!((out.eta, out.fit), (None, None), "out of the chain: no ETA");

    // The third customer picks tomorrow 09:00 (calling hours end at 21:00):
    // out of today's chain too.
    pick(&ts, 2, 0).await;
    let plan =
        phone_order(&phone, &ts, &[later, a, b, c, declines, another_day], "the other day's stop last").await;
    let moved = plan.last().expect("stop");
    assert_eq!(moved.state.stop.out_of_chain, Some(OutOfChain::AnotherDay));
    let tomorrow = today().succ_opt().expect("tomorrow");
    assert_eq!(moved.state.stop.window_start.with_timezone(&msk()).date_naive(), tomorrow);
    assert!(moved.eta.is_none());

    // The second picks 14:00–15:00 today. Before "a" (12:30–13:30) or
    // between "a" and "b" (13:00–14:00) a window would be missed; after "c"
    // (15:00–16:00) its own. It goes between "b" and "c".
    pick(&ts, 1, 1).await;
    let replan = [a, b, later, c, declines, another_day];
    let plan = phone_order(&phone, &ts, &replan, "the later window where it fits").await;
    let seen = phone.rec.snapshot();
    assert!(seen
        .events
        .iter()
        .any(|e| replanned(e, later, ReplanReason::NewWindowToday) == Some(replan.to_vec())));
    let fits: Vec<_> = plan.iter().filter_map(|p| p.fit).collect();
    assert_eq!(fits.len(), 4, "four stops in the chain");
    assert!(fits.iter().all(|f| *f != callahead_core::client::WindowFit::Late), "{plan:?}");
    assert_eq!(supervisor_order(&ts, &depot).await, replan, "the supervisor sees the same order");

    // The courier would rather go to the moved customer first: their order
    // wins, on the phone and on the server, whatever it costs the windows.
    let mine = [later, a, b, c, declines, another_day];
    phone.client().reorder(&mine).expect("reorder");
    phone
        .rec
        .wait_until("the courier's plan to reach the server", |s| {
            s.events.iter().any(|e| {
                matches!(&e.kind, EventKind::RoutePlanned { stop_ids, reason: None, .. } if *stop_ids == mine)
            })
        })
        .await;
    assert_eq!(supervisor_order(&ts, &depot).await, mine);
    let plan = phone.client().planned(ts.now(), None).expect("plan");
    assert_eq!(order(&plan), mine);
    assert!(plan[4].eta.is_none() && plan[5].eta.is_none(), "still out of the chain");

    // The next re-plan starts from the courier's order and moves only the
    // stop whose customer answered: "b" declines.
    phone.client().request_calls(&[b]).expect("tap");
    let mine = [later, a, c, declines, another_day, b];
    phone_order(&phone, &ts, &mine, "b out of the chain, the courier's order kept").await;
    assert_eq!(supervisor_order(&ts, &depot).await, mine);

    // Offline, the courier puts "c" first. Meanwhile "a" is called from
    // their other device and declines: the server re-plans without them.
    phone.proxy.set_online(false);
    let offline = [c, later, a, declines, another_day, b];
    phone.client().reorder(&offline).expect("reorder offline");
    let key = format!("other-device-{a}");
    ts.api
        .request_call(depot.courier_token(0), &CreateCall { stop_id: a, idempotency_key: key, policy: None })
        .await
        .expect("called from the other device");
    let server_replan = [later, c, declines, another_day, b, a];
    within("the server's re-plan while the phone is offline", async {
        while supervisor_order(&ts, &depot).await != server_replan {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;

    // Back online: the courier's reorder, made before they knew, wins; the
    // decline still takes "a" out of the chain.
    phone.proxy.set_online(true);
    phone
        .rec
        .wait_until("the re-plan and the courier's plan to arrive", |s| {
            s.events.iter().any(|e| replanned(e, a, ReplanReason::Declined).is_some())
                && s.events.iter().any(|e| {
                    matches!(&e.kind, EventKind::RoutePlanned { stop_ids, reason: None, .. } if *stop_ids == offline)
                })
        })
        .await;
    let plan = phone_order(&phone, &ts, &offline, "the courier's offline order").await;
    assert_eq!(supervisor_order(&ts, &depot).await, offline, "and on the server");
    let by_id = |id: StopId| plan.iter().find(|p| p.state.stop.id == id).expect("stop");
    assert_eq!(by_id(a).state.stop.out_of_chain, Some(OutOfChain::Declined));
    let chained: Vec<StopId> = plan.iter().filter(|p| p.eta.is_some()).map(|p| p.state.stop.id).collect();
    assert_eq!(chained, vec![c, later], "only the stops still in today's chain have ETAs");
    phone.close();
}
