//! The HTTP API as couriers, integrators and admins use it.

mod common;

use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::paths;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test]
async fn courier_taps_seven_stops_five_start_the_rest_wait() {
    // A frozen clock: placed calls stay "dialing", i.e. active.
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 7, 0).await;

    // The courier's route for "today" in the depot's time zone.
    let (s, route) = h.get(paths::MY_ROUTE, &d.courier_token).await;
    assert_eq!(s, StatusCode::OK, "{route}");
    assert_eq!(route["date"], json!(date().to_string()));
    assert_eq!(route["stops"].as_array().map(Vec::len), Some(7));
    assert!(route["head_seq"].as_u64().is_some_and(|h| h >= 1), "the import was logged");

    let (s, first) = h.request_call(&d, d.stop_ids[0], "tap-0000-a").await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "scheduled");
    assert_eq!(first["attempts_made"], 0);

    // The same tap retried (app killed, network lost): the same call.
    let (s, again) = h.request_call(&d, d.stop_ids[0], "tap-0000-a").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    // The same key for another stop is a client bug.
    let (s, body) = h.request_call(&d, d.stop_ids[1], "tap-0000-a").await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "idempotency_key_reused"));
    // A second call for a stop that has one running.
    let (s, body) = h.request_call(&d, d.stop_ids[0], "tap-0000-b").await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "call_already_active"));

    for i in 1..5 {
        let (s, body) = h.request_call(&d, d.stop_ids[i], &format!("tap-000{i}-a")).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = h.request_call(&d, d.stop_ids[5], "tap-0005-a").await;
    assert_eq!((s, code(&body)), (StatusCode::TOO_MANY_REQUESTS, "too_many_active_calls"));

    // The courier reads one call; the supervisor lists the depot's calls.
    let call_id = first["id"].as_i64().expect("id");
    let (s, detail) = h.get(&format!("/v1/calls/{call_id}"), &d.courier_token).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    assert_eq!(detail["call"]["id"], first["id"]);
    let (s, list) =
        h.get(&format!("/v1/calls?courier_id={}&date={}", d.courier_id, date()), &d.supervisor_token).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["calls"].as_array().map(Vec::len), Some(5));

    // Cancelling one frees a slot for the waiting stop.
    let (s, cancelled) = h.post(&format!("/v1/calls/{call_id}/cancel"), &d.courier_token, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (s, body) = h.post(&format!("/v1/calls/{call_id}/cancel"), &d.courier_token, json!({})).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "call_already_finished"));
    let (s, body) = h.request_call(&d, d.stop_ids[5], "tap-0005-a").await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // The route now shows each stop's latest call.
    let (_, route) = h.get(&format!("{}?date={}", paths::MY_ROUTE, date()), &d.courier_token).await;
    let with_calls =
        route["stops"].as_array().expect("stops").iter().filter(|s| !s["call"].is_null()).count();
    assert_eq!(with_calls, 6);
}

#[tokio::test]
async fn twenty_racing_taps_never_exceed_five_active_calls() {
    let (_manual, clock) = manual_clock();
    let h = std::sync::Arc::new(Harness::start(clock, HashMap::new()).await);
    let d = h.depot(AttemptPolicy::default(), 20, 0).await;
    let mut tasks = Vec::new();
    for (i, stop) in d.stop_ids.iter().copied().enumerate() {
        let (h, d) = (h.clone(), d.clone());
        tasks.push(tokio::spawn(async move { h.request_call(&d, stop, &format!("device-{i}-tap")).await.0 }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, refused), (5, 15));
    let (_, list) = h.get(&format!("/v1/calls?courier_id={}", d.courier_id), ADMIN).await;
    let active = list["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| !matches!(c["call"]["status"].as_str(), Some("finished" | "cancelled")))
        .count();
    assert_eq!(active, 5);
}

#[tokio::test]
async fn re_importing_a_route_keeps_ids_removes_missing_stops_and_cancels_their_calls() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 3, 0).await;
    let (s, call) = h.request_call(&d, d.stop_ids[2], "tap-for-stop-2").await;
    assert_eq!(s, StatusCode::CREATED);

    // ord-2 is gone, ord-0 and ord-1 swap places, ord-9 is new.
    let body = json!({"stops": [stop_json(1, 1), stop_json(0, 0), stop_json(9, 9)]});
    let route = h.import(&d, &body).await;
    let stops = route["stops"].as_array().expect("stops");
    assert_eq!(stops.len(), 3);
    assert_eq!(stops[0]["stop"]["id"].as_i64(), Some(d.stop_ids[1]));
    assert_eq!(stops[0]["stop"]["position"], 0);
    assert_eq!(stops[1]["stop"]["id"].as_i64(), Some(d.stop_ids[0]));
    assert!(!d.stop_ids.contains(&stops[2]["stop"]["id"].as_i64().expect("id")));

    let (_, detail) = h.get(&format!("/v1/calls/{}", call["id"]), &d.courier_token).await;
    assert_eq!(detail["call"]["status"], "cancelled");
    let (s, body) = h.request_call(&d, d.stop_ids[2], "tap-for-stop-2-again").await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, "stop_removed"));
}

#[tokio::test]
async fn errors_have_one_shape_and_stable_codes() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 1, 0).await;
    let other = h.depot(AttemptPolicy::default(), 1, 100).await;
    let url = |p: &str| format!("{}{}", h.base, p);

    // Malformed JSON, wrong content type, oversized body.
    let r = h
        .http
        .post(url("/v1/calls"))
        .bearer_auth(&d.courier_token)
        .header("content-type", "application/json")
        .body("{\"stop_id\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&r.json::<Value>().await.expect("json")), "malformed_json");
    let r = h
        .http
        .post(url("/v1/calls"))
        .bearer_auth(&d.courier_token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&r.json::<Value>().await.expect("json")), "unsupported_media_type");
    let huge = json!({"stops": [], "padding": "x".repeat(2 * 1024 * 1024)});
    let (s, body) =
        h.put(&format!("/v1/couriers/{}/routes/{}", d.courier_id, date()), &d.integrator_token, huge).await;
    assert_eq!((s, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    // Unknown stop and another courier's stop look the same.
    let (s, body) = h.request_call(&d, 999_999, "tap-unknown-stop").await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "stop_not_found"));
    let (s, body) = h.request_call(&d, other.stop_ids[0], "tap-foreign-stop").await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "stop_not_found"));
    let (s, body) = h.request_call(&d, d.stop_ids[0], "short").await;
    assert_eq!(
        (s, code(&body), body["field"].as_str()),
        (StatusCode::BAD_REQUEST, "validation_failed", Some("idempotency_key"))
    );

    // A bad phone names the offending field.
    let mut bad = route_body(2, 0);
    bad["stops"][1]["phone"] = json!("8 916 123");
    let (s, body) =
        h.put(&format!("/v1/couriers/{}/routes/{}", d.courier_id, date()), &d.integrator_token, bad).await;
    assert_eq!(
        (s, code(&body), body["field"].as_str()),
        (StatusCode::BAD_REQUEST, "invalid_phone", Some("stops[1].phone"))
    );
    let (s, body) = h
        .put(
            &format!("/v1/couriers/{}/routes/2026-13-40", d.courier_id),
            &d.integrator_token,
            route_body(1, 0),
        )
        .await;
    assert_eq!((s, code(&body)), (StatusCode::BAD_REQUEST, "invalid_date"));
    // An integrator key only serves its own depot.
    let (s, body) = h
        .put(
            &format!("/v1/couriers/{}/routes/{}", other.courier_id, date()),
            &d.integrator_token,
            route_body(1, 0),
        )
        .await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "courier_not_found"));

    // Tokens: missing, unknown, expired, wrong role.
    let (s, body) = h.send("GET", paths::MY_ROUTE, None, None).await;
    assert_eq!((s, code(&body)), (StatusCode::UNAUTHORIZED, "missing_token"));
    let (s, body) = h.get(paths::MY_ROUTE, "cah_cou_not-a-real-token").await;
    assert_eq!((s, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    let expired = d.courier_token.clone();
    assert!(h.server().expire_token(&expired).await.expect("expire"));
    let (s, body) = h.get(paths::MY_ROUTE, &expired).await;
    assert_eq!((s, code(&body)), (StatusCode::UNAUTHORIZED, "token_expired"));
    let (s, body) =
        h.post(paths::DEPOTS, &other.courier_token, json!({"name": "x", "time_zone": "UTC"})).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    // Unknown routes and methods answer in the same shape.
    let (s, body) = h.get("/v1/nope", ADMIN).await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, body) = h.send("DELETE", paths::CALLS, Some(ADMIN), None).await;
    assert_eq!((s, code(&body)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (s, body) = h.get("/v1/calls/123456", &other.courier_token).await;
    assert_eq!((s, code(&body)), (StatusCode::NOT_FOUND, "call_not_found"));
    let (s, body) = h.post(paths::DEPOTS, ADMIN, json!({"name": "x", "time_zone": "Mars/Olympus"})).await;
    assert_eq!((s, code(&body)), (StatusCode::BAD_REQUEST, "invalid_time_zone"));
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let (s, doc) = h.send("GET", paths::OPENAPI, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for p in [
        paths::HEALTHZ,
        paths::OPENAPI,
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
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
    assert!(doc["paths"][paths::CALLS]["post"].is_object() && doc["paths"][paths::CALLS]["get"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let (s, health) = h.send("GET", paths::HEALTHZ, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(health["status"], "ok");
}
