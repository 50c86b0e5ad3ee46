//! Webhook endpoints over HTTP: who may manage them, what is refused and
//! with which code, that the OpenAPI document covers every route, and that
//! a receiver that never answers holds back neither calls nor other endpoints.

mod common;

use callahead_core::call::Key;
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{paths, Event, EventKind, WebhookFailureList};
use callahead_core::Outcome;
use callahead_server::providers::simulator::Behaviour;
use common::{fast_clock, manual_clock, phone, Harness, ADMIN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

fn depot_hooks(depot: i64) -> String {
    paths::fill(paths::DEPOT_WEBHOOKS, &[("depot_id", &depot.to_string())])
}

fn hook(template: &str, id: i64) -> String {
    paths::fill(template, &[("webhook_id", &id.to_string())])
}

const URL: &str = "http://127.0.0.1:9/hooks";

#[tokio::test]
async fn bad_inputs_get_their_codes_and_fields() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 1, 0).await;
    let path = depot_hooks(d.id);
    let cases = [
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": "http://"}), "url"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2000))}), "url"),
        (json!({"url": URL, "event_types": ["call_finished", "call_exploded"]}), "event_types[1]"),
        (json!({"url": URL, "max_attempts": 0}), "max_attempts"),
        (json!({"url": URL, "max_attempts": 51}), "max_attempts"),
        (json!({"url": URL, "secret": "too-short"}), "secret"),
        (json!({"url": URL, "secret": "has spaces in it, 0123456789"}), "secret"),
        (json!({"url": URL, "after_seq": 1_000_000}), "after_seq"),
    ];
    for (body, field) in cases {
        let (s, v) = h.post(&path, &d.integrator_token, body.clone()).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (s, v) = h.post(&path, &d.integrator_token, json!({"event_types": []})).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"), "url is required: {v}");
    let (s, v) = h.post(&depot_hooks(999), ADMIN, json!({"url": URL})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "depot_not_found"));

    let (s, v) = h.post(&path, &d.integrator_token, json!({"url": URL})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["webhook"]["id"].as_i64().expect("id");
    let rotate = hook(paths::WEBHOOK_ROTATE_SECRET, id);
    let (s, v) = h.post(&rotate, &d.integrator_token, json!({"overlap_secs": 604_801})).await;
    assert_eq!(
        (s, code(&v), v["field"].as_str()),
        (StatusCode::BAD_REQUEST, "validation_failed", Some("overlap_secs"))
    );
    let (s, v) = h.post(&rotate, &d.integrator_token, json!({"secret": "x"})).await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("secret")));
    let (s, v) = h.get(&format!("{}?limit=0", hook(paths::WEBHOOK_FAILURES, id)), &d.integrator_token).await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    let replay = paths::fill(paths::WEBHOOK_REPLAY, &[("webhook_id", &id.to_string()), ("seq", "77")]);
    let (s, v) = h.post(&replay, &d.integrator_token, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "dead_letter_not_found"));
    let (s, v) = h.get("/v1/webhooks/not-a-number", &d.integrator_token).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_failed"));
}

#[tokio::test]
async fn an_integrator_manages_only_its_depots_endpoints() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let a = h.depot(AttemptPolicy::default(), 1, 0).await;
    let b = h.depot(AttemptPolicy::default(), 1, 100).await;

    // The secret is generated, shown once, and never shown again.
    let (s, created) = h
        .post(
            &depot_hooks(a.id),
            &a.integrator_token,
            json!({"url": URL, "event_types": ["call_finished", "call_finished"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    assert_eq!(created["webhook"]["event_types"], json!(["call_finished"]), "deduplicated");
    assert_eq!(created["webhook"]["max_attempts"], 20);
    let id = created["webhook"]["id"].as_i64().expect("id");
    let (s, got) = h.get(&hook(paths::WEBHOOK, id), &a.integrator_token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!got.to_string().contains(secret), "the secret is not shown again");

    // A caller-chosen secret is accepted; the admin may act for any depot.
    let (s, v) = h
        .post(
            &depot_hooks(b.id),
            ADMIN,
            json!({"url": "https://crm.example/hooks", "secret": "my-own-secret-0123456789abc"}),
        )
        .await;
    assert_eq!((s, v["secret"].as_str()), (StatusCode::CREATED, Some("my-own-secret-0123456789abc")));
    let b_id = v["webhook"]["id"].as_i64().expect("id");

    // Another depot's integrator neither sees nor touches it.
    let (s, v) = h.post(&depot_hooks(a.id), &b.integrator_token, json!({"url": URL})).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, v) = h.get(&depot_hooks(a.id), &b.integrator_token).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    for path in
        [hook(paths::WEBHOOK, id), hook(paths::WEBHOOK_FAILURES, id), hook(paths::WEBHOOK_DEAD_LETTERS, id)]
    {
        let (s, v) = h.get(&path, &b.integrator_token).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "webhook_not_found"), "{path}");
    }
    for path in [hook(paths::WEBHOOK_ROTATE_SECRET, id), hook(paths::WEBHOOK_REPLAY_ALL, id)] {
        let (s, v) = h.post(&path, &b.integrator_token, json!({})).await;
        assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "webhook_not_found"), "{path}");
    }
    let (s, v) = h.send("DELETE", &hook(paths::WEBHOOK, id), Some(&b.integrator_token), None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "webhook_not_found"));

    // Couriers and supervisors do not manage webhooks.
    for token in [&a.courier_token, &a.supervisor_token] {
        let (s, v) = h.post(&depot_hooks(a.id), token, json!({"url": URL})).await;
        assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
        let (s, _) = h.get(&hook(paths::WEBHOOK, id), token).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    // Lists are per depot.
    let (_, list) = h.get(&depot_hooks(a.id), &a.integrator_token).await;
    let ids: Vec<i64> =
        list["webhooks"].as_array().expect("list").iter().filter_map(|w| w["id"].as_i64()).collect();
    assert_eq!(ids, vec![id]);

    // Rotation: a new secret, the old one still signs for the overlap.
    let (s, rotated) = h.post(&hook(paths::WEBHOOK_ROTATE_SECRET, id), &a.integrator_token, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["secret"].as_str(), Some(secret));
    assert_eq!(rotated["webhook"]["previous_secret_valid_until"], "2026-11-24T07:00:00Z", "a day by default");

    // Delete: gone for everyone.
    let (s, _) = h.send("DELETE", &hook(paths::WEBHOOK, id), Some(&a.integrator_token), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = h.get(&hook(paths::WEBHOOK, id), ADMIN).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "webhook_not_found"));
    let (s, _) = h.get(&hook(paths::WEBHOOK, b_id), ADMIN).await;
    assert_eq!(s, StatusCode::OK, "the other depot's endpoint is untouched");
}

#[tokio::test]
async fn openapi_documents_the_webhook_routes() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let (s, doc) = h.send("GET", paths::OPENAPI, None, None).await;
    assert_eq!(s, StatusCode::OK);
    for (p, method) in [
        (paths::DEPOT_WEBHOOKS, "post"),
        (paths::DEPOT_WEBHOOKS, "get"),
        (paths::WEBHOOK, "get"),
        (paths::WEBHOOK, "delete"),
        (paths::WEBHOOK_ROTATE_SECRET, "post"),
        (paths::WEBHOOK_FAILURES, "get"),
        (paths::WEBHOOK_DEAD_LETTERS, "get"),
        (paths::WEBHOOK_REPLAY_ALL, "post"),
        (paths::WEBHOOK_REPLAY, "post"),
    ] {
        assert!(doc["paths"][p][method].is_object(), "{method} {p} is documented");
    }
    for schema in [
        "CreateWebhook",
        "CreatedWebhook",
        "Webhook",
        "WebhookFailureList",
        "DeadLetterList",
        "ReplayStarted",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_back_neither_calls_nor_other_endpoints() {
    // One "receiver" accepts connections and never answers...
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hanging_url = format!("http://{}/hooks", hanging.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = hanging.accept().await {
            held.push(conn);
        }
    });
    // ...another acknowledges every event.
    let (seen, mut got) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let healthy = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let healthy_url = format!("http://{}/hooks", healthy.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let event: Event = serde_json::from_slice(&body).expect("an event");
                let _ = seen.send(event.seq);
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(healthy, app).await.expect("serves") });

    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let answers = HashMap::from([(phone(0), Behaviour::Answer { key: Key::new('1') })]);
    let mut cfg = common::config(&dir, fast_clock(), answers);
    cfg.webhooks.timeout = std::time::Duration::from_millis(200);
    let h = Harness::start_with(dir, cfg).await;
    let d = h.depot(AttemptPolicy::default(), 1, 0).await;
    let mut ids = Vec::new();
    for url in [&hanging_url, &healthy_url] {
        let (s, v) = h.post(&depot_hooks(d.id), &d.integrator_token, json!({"url": url})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["webhook"]["id"].as_i64().expect("id"));
    }

    // The call runs its course while one receiver hangs.
    let mut ws = h.ws(&d.courier_token, None).await;
    let (s, _) = h.request_call(&d, d.stop_ids[0], "tap-while-a-receiver-hangs").await;
    assert_eq!(s, StatusCode::CREATED);
    let events = ws.until(|e| e.kind == EventKind::CallFinished { outcome: Outcome::Confirmed }).await;
    let last = events.last().expect("events").seq;

    // The healthy endpoint gets all of it; the hanging one records timeouts.
    tokio::time::timeout(common::WAIT, async { while got.recv().await.expect("receiver alive") < last {} })
        .await
        .expect("the healthy endpoint is not held back");
    let timed_out = tokio::time::timeout(common::WAIT, async {
        loop {
            let (_, v) = h.get(&hook(paths::WEBHOOK_FAILURES, ids[0]), &d.integrator_token).await;
            let failures: WebhookFailureList = serde_json::from_value(v).expect("failures");
            if let Some(f) = failures.failures.first() {
                return f.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a failure recorded");
    assert_eq!((timed_out.status, timed_out.error.as_str()), (None, "timed out"));
}
