//! Route planning end to end: the courier reorders their stops on the
//! phone (offline too), the order reaches the server, the supervisor and the
//! courier's other device, and survives the integrator re-importing the day.

use callahead_core::wire::{self, paths, ErrorCode, EventKind, RoutePlan};
use callahead_core::{CourierId, StopId};
use callahead_e2e::api::Api;
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::Phone;
use callahead_server::providers::simulator::SimConfig;
use reqwest::{Method, StatusCode};

async fn supervisor_view(api: &Api, token: &str, courier: CourierId) -> Result<wire::Route, StatusCode> {
    let path = paths::fill(
        paths::COURIER_ROUTE,
        &[("courier_id", &courier.to_string()), ("date", &today().to_string())],
    );
    api.send(Method::GET, Some(token), &path, None::<&()>).await.map_err(|f| f.status)
}

fn order(route: &wire::Route) -> Vec<StopId> {
    route.stops.iter().map(|s| s.stop.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_offline_reaches_the_supervisor_and_the_other_phone_and_survives_a_reimport() {
    let ts = TestServer::start(100.0, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Planning", 1, quick_policy()).await;
    let other = Depot::create(&ts.api, "Elsewhere", 0, quick_policy()).await;
    let courier = depot.courier_id(0);
    let mut imported = stops(21, 4, ts.now());
    ts.api.import_route(&depot.integrator, courier, today(), imported.clone()).await.expect("import");

    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let synced = phone.client().sync_route(today()).await.expect("sync");
    let ids: Vec<StopId> = synced.iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;

    // In a dead zone the courier drags the last stop to the top.
    phone.proxy.set_online(false);
    let plan = vec![ids[3], ids[0], ids[1], ids[2]];
    let reordered = phone.client().reorder(&plan).expect("reorder works offline");
    assert_eq!(reordered.iter().map(|s| s.stop.id).collect::<Vec<_>>(), plan);
    let etas = phone.client().planned(ts.now(), None).expect("ETAs offline");
    assert!(etas.iter().all(|p| p.eta.is_some() && p.fit.is_some()));
    assert!(etas.windows(2).all(|w| w[0].eta < w[1].eta), "ETAs follow the planned order");
    let before = supervisor_view(&ts.api, &depot.supervisor, courier).await.expect("supervisor reads");
    assert_eq!(order(&before), ids, "the server has the import order until the phone is back");

    // Back online: the plan goes up and echoes back as an event.
    phone.proxy.set_online(true);
    phone
        .rec
        .wait_until("the plan to reach the server", |s| {
            s.events
                .iter()
                .any(|e| matches!(&e.kind, EventKind::RoutePlanned { stop_ids, .. } if *stop_ids == plan))
        })
        .await;
    let seen = supervisor_view(&ts.api, &depot.supervisor, courier).await.expect("supervisor reads");
    assert_eq!(order(&seen), plan, "the supervisor sees the planned order");
    assert_eq!(seen.stops.iter().map(|s| s.stop.sequence).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(
        supervisor_view(&ts.api, &other.supervisor, courier).await.err(),
        Some(StatusCode::NOT_FOUND),
        "another depot's supervisor does not see this courier"
    );

    // The courier's second phone gets the order with the route.
    let tablet = Phone::new(ts.addr, depot.courier_token(0)).await;
    let on_tablet = tablet.client().sync_route(today()).await.expect("sync");
    assert_eq!(on_tablet.iter().map(|s| s.stop.id).collect::<Vec<_>>(), plan);

    // The integrator re-imports: one stop dropped, one added. The courier's
    // order stays for the stops they planned; the new stop goes last.
    imported.remove(1);
    imported.push(stops(22, 1, ts.now()).remove(0));
    let route = ts.api.import_route(&depot.integrator, courier, today(), imported).await.expect("reimport");
    let new_stop = route.stops.iter().map(|s| s.stop.id).find(|id| !ids.contains(id)).expect("new stop");
    let expected = vec![ids[3], ids[0], ids[2], new_stop];
    assert_eq!(order(&route), expected);
    phone
        .rec
        .wait_until("the phone to refetch the replaced route", |_| {
            phone.client().stops().is_ok_and(|s| s.iter().map(|s| s.stop.id).collect::<Vec<_>>() == expected)
        })
        .await;

    // A plan that does not match the route is refused with its code.
    let stale = RoutePlan { date: today(), stop_ids: plan.clone() };
    let refused = ts
        .api
        .send::<wire::Route>(Method::PUT, Some(depot.courier_token(0)), paths::MY_ROUTE_PLAN, Some(&stale))
        .await
        .expect_err("stale plan refused");
    assert_eq!((refused.status, refused.body.code), (StatusCode::CONFLICT, ErrorCode::PlanMismatch));
    let by_supervisor = ts
        .api
        .send::<wire::Route>(Method::PUT, Some(&depot.supervisor), paths::MY_ROUTE_PLAN, Some(&stale))
        .await
        .expect_err("only couriers plan");
    assert_eq!(by_supervisor.body.code, ErrorCode::Forbidden);
}
