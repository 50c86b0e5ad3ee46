//! Who sees what, and what bad input gets: every refusal is a 4xx with a
//! stable machine-readable code.

use callahead_core::wire::{self, paths, CreateCall, ErrorCode, EventKind};
use callahead_core::StopId;
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer, ADMIN};
use callahead_e2e::{ws, Phone};
use callahead_server::providers::simulator::SimConfig;
use reqwest::{Method, StatusCode};

const SPEED: f64 = 200.0;

fn new_key() -> String {
    format!("key-{}", rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::SeqCst) * 7919 + std::process::id() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn couriers_see_only_their_stops_and_supervisors_only_their_depot() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let a = Depot::create(&ts.api, "A", 2, quick_policy()).await;
    let b = Depot::create(&ts.api, "B", 1, quick_policy()).await;
    let route_a0 = ts
        .api
        .import_route(&a.integrator, a.courier_id(0), today(), stops(10, 2, ts.now()))
        .await
        .expect("a0");
    let route_a1 = ts
        .api
        .import_route(&a.integrator, a.courier_id(1), today(), stops(11, 2, ts.now()))
        .await
        .expect("a1");
    let route_b0 = ts
        .api
        .import_route(&b.integrator, b.courier_id(0), today(), stops(12, 2, ts.now()))
        .await
        .expect("b0");
    let stop = |r: &wire::Route, i: usize| r.stops[i].stop.id;

    // An integrator key serves its own depot only.
    let refused = ts.api.import_route(&a.integrator, b.courier_id(0), today(), stops(13, 1, ts.now())).await;
    let refused = refused.expect_err("integrator A cannot write depot B's routes");
    assert!(matches!(refused.body.code, ErrorCode::CourierNotFound | ErrorCode::Forbidden), "{refused:?}");

    // Each courier places a call on their own stop.
    for (token, route) in
        [(a.courier_token(0), &route_a0), (a.courier_token(1), &route_a1), (b.courier_token(0), &route_b0)]
    {
        let body = CreateCall { stop_id: stop(route, 0), idempotency_key: new_key(), policy: None };
        ts.api.request_call(token, &body).await.expect("own stop");
    }

    // Courier A0's phone: only A0's stops, and A1's stop cannot be called.
    let phone = Phone::new(ts.addr, a.courier_token(0)).await;
    let synced = phone.client().sync_route(today()).await.expect("sync");
    let mine: Vec<StopId> = synced.iter().map(|s| s.stop.id).collect();
    assert_eq!(mine, vec![stop(&route_a0, 0), stop(&route_a0, 1)]);
    let foreign = CreateCall { stop_id: stop(&route_a1, 1), idempotency_key: new_key(), policy: None };
    let err = ts.api.request_call(a.courier_token(0), &foreign).await.expect_err("foreign stop");
    assert_eq!((err.status, err.body.code), (StatusCode::NOT_FOUND, ErrorCode::StopNotFound));

    // A courier's event stream carries only their own courier id.
    let a0_events = ws::replay(&ts.api.base, a.courier_token(0), 0).await;
    assert!(!a0_events.is_empty());
    assert!(a0_events.iter().all(|e| e.courier_id == a.courier_id(0)), "A0 sees only A0's events");
    // Another courier's call is not found, not forbidden: no existence leak.
    let b_call = ts.api.calls(&b.supervisor, None, Some(today())).await.expect("b calls").calls[0].call.id;
    let err = ts.api.call(a.courier_token(0), b_call).await.expect_err("foreign call");
    assert_eq!((err.status, err.body.code), (StatusCode::NOT_FOUND, ErrorCode::CallNotFound));

    // Supervisor A: depot A's couriers, both of them, never depot B.
    let sup_events = ws::replay(&ts.api.base, &a.supervisor, 0).await;
    assert!(sup_events.iter().all(|e| e.depot_id == a.depot.id));
    let couriers: std::collections::HashSet<_> = sup_events.iter().map(|e| e.courier_id).collect();
    assert!(couriers.contains(&a.courier_id(0)) && couriers.contains(&a.courier_id(1)));
    let listed = ts.api.calls(&a.supervisor, None, Some(today())).await.expect("a calls").calls;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.call.depot_id == a.depot.id));
    let err = ts.api.call(&a.supervisor, b_call).await.expect_err("other depot's call");
    assert_eq!(err.body.code, ErrorCode::CallNotFound);
    // The admin sees every depot.
    let admin_events = ws::replay(&ts.api.base, ADMIN, 0).await;
    assert!(admin_events.iter().any(|e| e.depot_id == b.depot.id));
    assert!(admin_events.iter().any(|e| matches!(e.kind, EventKind::RouteReplaced { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_code() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let a = Depot::create(&ts.api, "A", 2, quick_policy()).await;
    let route = ts
        .api
        .import_route(&a.integrator, a.courier_id(1), today(), stops(20, 1, ts.now()))
        .await
        .expect("route");
    let courier = a.courier_token(0);
    let expect = |got: (StatusCode, String), status: StatusCode, code: ErrorCode| {
        let body: wire::ErrorBody =
            serde_json::from_str(&got.1).unwrap_or_else(|e| panic!("no error body in {:?}: {e}", got.1));
        assert_eq!((got.0, body.code), (status, code), "{}", body.message);
        assert!(!body.message.is_empty());
    };

    // Malformed JSON, wrong shape, wrong content type.
    let got = ts
        .api
        .raw(Method::POST, Some(courier), paths::CALLS, Some("{\"stop_id\": ".into()), "application/json")
        .await;
    expect(got, StatusCode::BAD_REQUEST, ErrorCode::MalformedJson);
    let got = ts
        .api
        .raw(Method::POST, Some(courier), paths::CALLS, Some("{\"stop\": 1}".into()), "application/json")
        .await;
    expect(got, StatusCode::BAD_REQUEST, ErrorCode::MalformedJson);
    let got =
        ts.api.raw(Method::POST, Some(courier), paths::CALLS, Some("stop=1".into()), "text/plain").await;
    expect(got, StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType);

    // Unknown stop, and a stop of another courier: the same answer.
    let unknown = CreateCall { stop_id: StopId(999_999), idempotency_key: new_key(), policy: None };
    let err = ts.api.request_call(courier, &unknown).await.expect_err("unknown stop");
    assert_eq!((err.status, err.body.code), (StatusCode::NOT_FOUND, ErrorCode::StopNotFound));
    let foreign = CreateCall { stop_id: route.stops[0].stop.id, idempotency_key: new_key(), policy: None };
    let err = ts.api.request_call(courier, &foreign).await.expect_err("foreign stop");
    assert_eq!((err.status, err.body.code), (StatusCode::NOT_FOUND, ErrorCode::StopNotFound));

    // A bad phone number in an import names the field; nothing is written.
    let mut bad = stops(21, 3, ts.now());
    bad[2].phone = "8 916 123-45-67".into();
    let err = ts.api.import_route(&a.integrator, a.courier_id(0), today(), bad).await.expect_err("bad phone");
    assert_eq!((err.status.is_client_error(), err.body.code), (true, ErrorCode::InvalidPhone));
    assert_eq!(err.body.field.as_deref(), Some("stops[2].phone"));
    assert!(ts.api.my_route(courier, today()).await.expect("route").stops.is_empty(), "nothing half-written");
    let mut bad_tz = stops(22, 1, ts.now());
    bad_tz[0].time_zone = "Moscow".into();
    let err = ts.api.import_route(&a.integrator, a.courier_id(0), today(), bad_tz).await.expect_err("bad tz");
    assert_eq!(err.body.code, ErrorCode::InvalidTimeZone);
    let (status, body) = ts
        .api
        .raw(Method::GET, Some(courier), &format!("{}?date=23.11.2026", paths::MY_ROUTE), None, "")
        .await;
    expect((status, body), StatusCode::BAD_REQUEST, ErrorCode::InvalidDate);

    // Tokens: missing, unknown, expired, wrong role.
    let got = ts.api.raw(Method::GET, None, paths::MY_ROUTE, None, "").await;
    expect(got, StatusCode::UNAUTHORIZED, ErrorCode::MissingToken);
    let got = ts.api.raw(Method::GET, Some("not-a-token"), paths::MY_ROUTE, None, "").await;
    expect(got, StatusCode::UNAUTHORIZED, ErrorCode::InvalidToken);
    let expiring = a.courier_token(1).to_string();
    callahead_e2e::server::expire_token(&ts, &expiring).await;
    let got = ts.api.raw(Method::GET, Some(&expiring), paths::MY_ROUTE, None, "").await;
    expect(got, StatusCode::UNAUTHORIZED, ErrorCode::TokenExpired);
    let got =
        ts.api.raw(Method::POST, Some(courier), paths::DEPOTS, Some("{}".into()), "application/json").await;
    expect(got, StatusCode::FORBIDDEN, ErrorCode::Forbidden);
    assert_eq!(ws::refused_status(&ts.api.base, None).await, 401);
    assert_eq!(ws::refused_status(&ts.api.base, Some(&a.integrator)).await, 403);

    // Oversized body: just over the 1 MiB limit. (Far over it, the server's
    // early 413 can race the client still writing, which then sees a reset
    // instead of the answer: true of any server that refuses to read it.)
    let huge = format!("{{\"stops\": [], \"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 16 * 1024));
    let path = paths::fill(
        paths::COURIER_ROUTE,
        &[("courier_id", &a.courier_id(0).to_string()), ("date", &today().to_string())],
    );
    let got = ts.api.raw(Method::PUT, Some(&a.integrator), &path, Some(huge), "application/json").await;
    expect(got, StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge);

    // Unknown paths and methods answer in the same shape.
    let got = ts.api.raw(Method::GET, Some(courier), "/v1/nope", None, "").await;
    expect(got, StatusCode::NOT_FOUND, ErrorCode::NotFound);
    let got = ts.api.raw(Method::DELETE, Some(courier), paths::MY_ROUTE, None, "").await;
    expect(got, StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed);

    // Idempotency: the same key twice is one call; on another stop, refused.
    let mine = ts
        .api
        .import_route(&a.integrator, a.courier_id(0), today(), stops(23, 2, ts.now()))
        .await
        .expect("route");
    let req = CreateCall { stop_id: mine.stops[0].stop.id, idempotency_key: new_key(), policy: None };
    let first = ts.api.request_call(courier, &req).await.expect("first");
    let again = ts.api.request_call(courier, &req).await.expect("replay");
    assert_eq!(first.id, again.id);
    let reused = CreateCall {
        stop_id: mine.stops[1].stop.id,
        idempotency_key: req.idempotency_key.clone(),
        policy: None,
    };
    let err = ts.api.request_call(courier, &reused).await.expect_err("key reuse");
    assert_eq!((err.status, err.body.code), (StatusCode::CONFLICT, ErrorCode::IdempotencyKeyReused));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_endpoint() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let (status, body) = ts.api.raw(Method::GET, None, paths::OPENAPI, None, "").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "OpenAPI 3");
    for path in [
        paths::HEALTHZ,
        paths::DEPOTS,
        paths::DEPOT_COURIERS,
        paths::DEPOT_SUPERVISORS,
        paths::DEPOT_INTEGRATOR_KEYS,
        paths::COURIER_ROUTE,
        paths::MY_ROUTE,
        paths::CALLS,
        paths::CALL,
        paths::CALL_CANCEL,
        paths::WS,
        paths::RESCHEDULE,
        paths::MY_ROUTE_PLAN,
        paths::DEPOT_TEMPLATES,
        paths::DIRECT_CALLS,
        paths::DEPOT_DAILY_REPORT,
        paths::DEPOT_DASHBOARD,
        paths::STOP_TIMELINE,
        paths::EVENTS,
        paths::DASHBOARD,
        paths::DASHBOARD_SCRIPT,
        paths::DASHBOARD_STYLE,
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    let report = &doc["paths"][paths::DEPOT_DAILY_REPORT]["get"]["responses"]["200"]["content"];
    assert!(report.get("application/json").is_some() && report.get("text/csv").is_some(), "{report}");
    assert!(doc["components"]["schemas"].get("DailyReport").is_some());
    let (status, _) = ts.api.raw(Method::GET, None, paths::HEALTHZ, None, "").await;
    assert_eq!(status, StatusCode::OK);
}
