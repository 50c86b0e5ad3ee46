//! The courier's position reaches the supervisor's map (issue #15 part 1):
//! the app reports GPS fixes, offline too; the latest goes to the server
//! when it is reachable, a supervisor's feed gets it live, the dashboard's
//! snapshot has it, and the courier's own feed leaves it out.

use callahead_core::wire::{
    paths, Degrees, DepotDashboard, ErrorCode, EventKind, GeoPoint, PositionReceipt, PositionReport,
};
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::ws::Follower;
use callahead_e2e::Phone;
use callahead_server::providers::simulator::SimConfig;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_fix_reaches_the_supervisor_and_not_the_couriers_own_feed() {
    let ts = TestServer::start(60.0, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Map", 1, quick_policy()).await;
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(34, 2, ts.now()))
        .await
        .expect("import");
    let mut supervisor = Follower::connect(&ts.api.base, &depot.supervisor, Some(0)).await;
    let phone = Phone::on_clock(ts.addr, depot.courier_token(0), Some(ts.clock.clone())).await;
    phone.client().sync_route(today()).await.expect("sync");
    phone.wait_online().await;

    // Two fixes while offline: only the later one is sent once back online.
    phone.proxy.set_online(false);
    phone.client().report_position(GeoPoint { lat: 55.70, lon: 37.50 }).expect("first fix");
    phone.client().report_position(GeoPoint { lat: 55.7512, lon: 37.6184 }).expect("second fix");
    assert!(phone.client().report_position(GeoPoint { lat: 95.0, lon: 0.0 }).is_err(), "not a latitude");
    phone.proxy.set_online(true);
    let logged = supervisor
        .until("the courier's position", |e| matches!(e.kind, EventKind::CourierPosition { .. }))
        .await;
    let EventKind::CourierPosition { lat, lon, .. } = logged.kind else { unreachable!("matched above") };
    assert_eq!((lat, lon), (Degrees(55.7512), Degrees(37.6184)), "the latest fix, not the first");
    assert_eq!(logged.courier_id, depot.courier_id(0));

    // The dashboard's snapshot shows it.
    let path = paths::fill(paths::DEPOT_DASHBOARD, &[("depot_id", &depot.depot.id.to_string())]);
    let dash: DepotDashboard =
        ts.api.send(Method::GET, Some(&depot.supervisor), &path, None::<&()>).await.expect("dash");
    let position = dash.couriers[0].position.expect("a position");
    assert_eq!((position.lat, position.lon), (Degrees(55.7512), Degrees(37.6184)));

    // The courier's own feed never carries it (live or replayed).
    let own = callahead_e2e::ws::replay(&ts.api.base, depot.courier_token(0), 0).await;
    assert!(own.iter().all(|e| !matches!(e.kind, EventKind::CourierPosition { .. })), "{own:?}");
    assert!(own.iter().any(|e| e.seq > 0), "the courier's feed has their other events");

    // Bad input gets a clear error.
    let report = PositionReport { lat: Degrees(55.76), lon: Degrees(37.62), at: ts.now() };
    let far = PositionReport { lat: Degrees(0.0), lon: Degrees(181.0), at: ts.now() };
    let err = ts
        .api
        .send::<PositionReceipt>(Method::PUT, Some(depot.courier_token(0)), paths::MY_POSITION, Some(&far))
        .await
        .expect_err("out of range");
    assert_eq!((err.body.code, err.body.field.as_deref()), (ErrorCode::ValidationFailed, Some("lon")));
    let stale = PositionReport { at: ts.now() - chrono::Duration::days(2), ..report };
    let err = ts
        .api
        .send::<PositionReceipt>(Method::PUT, Some(depot.courier_token(0)), paths::MY_POSITION, Some(&stale))
        .await
        .expect_err("stale");
    assert_eq!(err.body.field.as_deref(), Some("at"));
    let by_supervisor = ts
        .api
        .send::<PositionReceipt>(Method::PUT, Some(&depot.supervisor), paths::MY_POSITION, Some(&report))
        .await
        .expect_err("couriers only");
    assert_eq!(by_supervisor.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_sooner_than_15_s_after_the_logged_one_is_acknowledged_and_not_logged() {
    // Real time: the two reports are milliseconds apart.
    let ts = TestServer::start(1.0, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Map throttle", 1, quick_policy()).await;
    let token = depot.courier_token(0);
    let report = PositionReport { lat: Degrees(55.76), lon: Degrees(37.62), at: ts.now() };
    let first: PositionReceipt =
        ts.api.send(Method::PUT, Some(token), paths::MY_POSITION, Some(&report)).await.expect("first");
    let second: PositionReceipt =
        ts.api.send(Method::PUT, Some(token), paths::MY_POSITION, Some(&report)).await.expect("second");
    assert_eq!((first.logged, second.logged), (true, false));
    let logged = ts.api.all_events(&depot.supervisor).await;
    let positions = logged.iter().filter(|e| matches!(e.kind, EventKind::CourierPosition { .. })).count();
    assert_eq!(positions, 1);
}
