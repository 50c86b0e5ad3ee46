//! What a strict, independent client finds: a resume cursor from another
//! log, one event with two shapes, oversized websocket messages, keep-alive
//! connections left with unread bodies, silently ignored fields, names with
//! control characters, and errors the OpenAPI document does not state.

mod common;

use callahead_core::wire::{ErrorCode, EventKind, ServerFrame};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn head(h: &Harness) -> u64 {
    let (_, health) = h.send("GET", "/healthz", None, None).await;
    health["head_seq"].as_u64().expect("head_seq")
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_cursor_beyond_the_head_is_refused_not_silenced() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 2, 0).await;
    // The admin's sockets log no app connections: the head stays put.
    let head = head(&h).await;
    for after in [head + 1000, u64::MAX] {
        let mut ws = h.ws(ADMIN, Some(after)).await;
        let log_id = match ws.frame().await {
            ServerFrame::Hello { head_seq, log_id, .. } => {
                assert_eq!(head_seq, head);
                log_id
            }
            other => panic!("expected hello, got {other:?}"),
        };
        assert!(log_id.is_some_and(|id| id.len() == 32), "the log names itself");
        match ws.frame().await {
            ServerFrame::Error { code, message } => {
                assert_eq!(code, ErrorCode::CursorAhead);
                assert!(message.contains(&after.to_string()), "{message}");
            }
            other => panic!("cursor {after}: expected an error frame, got {other:?}"),
        }
        assert!(ws.close_frame().await.is_some(), "closed with a close frame");
    }
    // A cursor at the head itself is fine: live from there.
    let mut ws = h.ws(ADMIN, Some(head)).await;
    assert!(matches!(ws.frame().await, ServerFrame::Hello { .. }));
    assert!(matches!(ws.frame().await, ServerFrame::CaughtUp { seq } if seq == head));
    let (s, _) = h.request_call(&d, d.stop_ids[0], "after-the-head-1").await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(matches!(ws.event().await.kind, EventKind::CallRequested));
}

#[tokio::test]
async fn one_seq_is_one_frame_live_replayed_or_paged() {
    // A scaled clock gives every event sub-millisecond digits.
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 3, 0).await;
    let mut live = h.ws(ADMIN, None).await;
    assert!(matches!(live.frame().await, ServerFrame::Hello { .. }));
    assert!(matches!(live.frame().await, ServerFrame::CaughtUp { .. }));
    for (i, stop) in d.stop_ids.iter().enumerate() {
        let (s, _) = h.request_call(&d, *stop, &format!("one-shape-{i}")).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // Until every call has finished: attempts, answers, keys, outcomes.
    let mut pushed: BTreeMap<u64, String> = BTreeMap::new();
    let mut finished = 0;
    while finished < d.stop_ids.len() {
        let text = live.text().await.expect("a live frame");
        let frame: ServerFrame = serde_json::from_str(&text).expect("frame");
        if let ServerFrame::Event { event } = frame {
            if matches!(event.kind, EventKind::CallFinished { .. }) {
                finished += 1;
            }
            pushed.insert(event.seq, text);
        }
    }
    let last = *pushed.keys().last().expect("events");

    let mut replay = h.ws(ADMIN, Some(0)).await;
    let mut replayed: BTreeMap<u64, String> = BTreeMap::new();
    loop {
        let text = replay.text().await.expect("a replayed frame");
        match serde_json::from_str::<ServerFrame>(&text).expect("frame") {
            ServerFrame::Event { event } => {
                replayed.insert(event.seq, text);
            }
            ServerFrame::CaughtUp { .. } if replayed.contains_key(&last) => break,
            _ => {}
        }
    }
    let (s, page) = h.get("/v1/events?after=0&limit=1000", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let paged: BTreeMap<u64, Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["seq"].as_u64().expect("seq"), e.clone()))
        .collect();
    for (seq, text) in &pushed {
        assert_eq!(Some(text), replayed.get(seq), "seq {seq}: live and replay differ");
        let pushed_event = serde_json::from_str::<Value>(text).expect("json")["event"].clone();
        assert_eq!(Some(&pushed_event), paged.get(seq), "seq {seq}: live and /v1/events differ");
    }
}

#[tokio::test]
async fn an_oversized_message_gets_a_1009_close() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    assert!(matches!(ws.frame().await, ServerFrame::Hello { .. }));
    ws.send(Message::text("x".repeat(70 * 1024))).await.expect("sent");
    let close = ws.close_frame().await.expect("a close frame, not a dropped connection (1006)");
    assert_eq!(close.code, CloseCode::Size, "{close:?}");
    assert!(close.reason.contains("65536"), "the limit is stated: {close:?}");
}

/// One raw HTTP/1.1 exchange on `stream`: the status line and headers.
async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> Option<String> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("an answer in time").ok()?;
        if n == 0 {
            return (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned());
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(text);
            }
        }
    }
}

#[tokio::test]
async fn an_early_refusal_of_a_body_says_connection_close() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    // The body follows the headers in a second write, after the server may
    // already have answered: exactly when a silent close bit clients.
    let cases = [
        ("POST /v1/calls", "Authorization: Bearer wrong-token-0000000000\r\n", "401"),
        ("POST /v1/nowhere", "", "404"),
        ("DELETE /v1/calls", "", "405"),
    ];
    for (line, auth, status) in cases {
        let body = "{\"stop_id\": 1, \"idempotency_key\": \"keep-alive-1\"}";
        let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "{line} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len() * 4
        );
        stream.write_all(head.as_bytes()).await.expect("headers");
        let answer = exchange(&mut stream, body).await.expect("an answer");
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{line}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("connection: close"), "{line}: the client is told not to reuse it: {answer}");
    }
    // A request the server reads in full keeps its connection.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    for _ in 0..3 {
        let answer = exchange(&mut stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    }
}

#[tokio::test]
async fn a_pooled_client_never_meets_a_closed_connection_after_refusals() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 1, 0).await;
    let body = json!({"stop_id": d.stop_ids[0], "idempotency_key": "pooled-0001", "note": "x".repeat(2000)});
    // One pooled client: refused POSTs with bodies between good requests.
    let mut failures = Vec::new();
    for i in 0..200 {
        let r = match i % 4 {
            0 => {
                h.http
                    .post(format!("{}/v1/calls", h.base))
                    .bearer_auth("bad-token-000000000")
                    .json(&body)
                    .send()
                    .await
            }
            1 => h.http.post(format!("{}/v1/unknown", h.base)).json(&body).send().await,
            2 => h.http.put(format!("{}/v1/calls", h.base)).json(&body).send().await,
            _ => h.http.get(format!("{}/healthz", h.base)).send().await,
        };
        if let Err(e) = r {
            failures.push(format!("request {i}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn unknown_fields_are_refused_by_name_and_shape_errors_name_their_field() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 1, 0).await;
    let stop = d.stop_ids[0];
    let cases = [
        (json!({"stop_id": stop, "idempotency_key": "strict-001", "polcy": {"max_attempts": 1}}), "polcy"),
        (
            json!({"stop_id": stop, "idempotency_key": "strict-002", "policy": {"max_atempts": 1}}),
            "policy.max_atempts",
        ),
        (json!({"stop_id": "one", "idempotency_key": "strict-003"}), "stop_id"),
        (json!({"idempotency_key": "strict-004"}), "stop_id"),
    ];
    for (body, field) in cases {
        let (s, v) = h.post("/v1/calls", &d.courier_token, body.clone()).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "malformed_json"), "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (_, calls) = h.get("/v1/calls", ADMIN).await;
    assert_eq!(calls["calls"].as_array().map(Vec::len), Some(0), "nothing went out");

    let mut route = route_body(2, 0);
    route["stops"][1]["phone_number"] = json!("+79160000009");
    let (s, v) =
        h.put(&format!("/v1/couriers/{}/routes/{}", d.courier_id, date()), &d.integrator_token, route).await;
    assert_eq!(
        (s, code(&v), v["field"].as_str()),
        (StatusCode::BAD_REQUEST, "malformed_json", Some("stops[1].phone_number"))
    );
}

#[tokio::test]
async fn names_with_nul_or_text_direction_controls_never_reach_the_robot() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(policy(), 0, 0).await;
    for name in ["Ivan\u{0}", "\u{202E}navI", "Iv\u{2067}an", "Ivan\u{1b}[2J"] {
        let (s, v) = h
            .post(
                &format!("/v1/depots/{}/couriers", d.id),
                ADMIN,
                json!({"name": name, "phone": "+79990000002"}),
            )
            .await;
        assert_eq!(
            (s, code(&v), v["field"].as_str()),
            (StatusCode::BAD_REQUEST, "validation_failed", Some("name")),
            "{name:?}"
        );
        let mut route = route_body(1, 0);
        route["stops"][0]["customer_name"] = json!(name);
        let (s, v) = h
            .put(&format!("/v1/couriers/{}/routes/{}", d.courier_id, date()), &d.integrator_token, route)
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("stops[0].customer_name")),
            "{name:?}: {v}"
        );
    }
}

#[tokio::test]
async fn the_cap_says_when_to_retry_and_the_413_says_the_limit() {
    let h = Harness::start(manual_clock().1, HashMap::new()).await;
    let d = h.depot(policy(), 6, 0).await;
    for (i, stop) in d.stop_ids.iter().take(5).enumerate() {
        let (s, _) = h.request_call(&d, *stop, &format!("cap-retry-{i}")).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let r = h
        .http
        .post(format!("{}/v1/calls", h.base))
        .bearer_auth(&d.courier_token)
        .json(&json!({"stop_id": d.stop_ids[5], "idempotency_key": "cap-retry-5"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after =
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u32>().ok());
    assert!(retry_after.is_some_and(|s| s > 0), "Retry-After: {retry_after:?}");
    assert_eq!(code(&r.json::<Value>().await.expect("json")), "too_many_active_calls");

    let r = h
        .http
        .put(format!("{}/v1/couriers/{}/routes/{}", h.base, d.courier_id, date()))
        .bearer_auth(&d.integrator_token)
        .header("content-type", "application/json")
        .body(vec![b' '; 1024 * 1024 + 1])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.expect("json");
    assert_eq!(code(&v), "payload_too_large");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("1048576 bytes")), "{v}");
}

#[tokio::test]
async fn the_openapi_document_states_each_error_status() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let (s, doc) = h.send("GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = doc.to_string();
    assert!(!text.contains("\"4XX\""), "no generic 4XX is left");
    let create = &doc["paths"]["/v1/calls"]["post"]["responses"];
    for status in ["400", "401", "403", "409", "413", "415", "429", "500", "503"] {
        assert!(create[status]["content"]["application/json"].is_object(), "POST /v1/calls lacks {status}");
    }
    assert!(create["429"]["headers"]["Retry-After"].is_object(), "the 429 names Retry-After");
    assert!(doc["paths"]["/v1/me/route/plan"]["put"]["responses"]["409"].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path} takes a body but lacks 413");
            }
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
        }
    }
}
