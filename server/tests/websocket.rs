//! The event log and its websocket: gap-free seqs, resume without gap or
//! duplicate, scoping by courier and depot, and slow consumers.

mod common;

use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{Event, EventKind, ServerFrame};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;

async fn head(h: &Harness) -> u64 {
    let (_, health) = h.send("GET", "/healthz", None, None).await;
    health["head_seq"].as_u64().expect("head_seq")
}

/// Collects events until one with `seq >= upto` arrives.
async fn collect_until(ws: &mut Ws, upto: u64) -> Vec<Event> {
    ws.until(|e| e.seq >= upto).await
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_goes_live_without_duplicates() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 5, 0).await;
    for i in 0..3 {
        let (s, _) = h.request_call(&d, d.stop_ids[i], &format!("resume-tap-{i}")).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let n = 2;
    let mut courier = h.ws(&d.courier_token, Some(n)).await;
    let hello_head = match courier.frame().await {
        ServerFrame::Hello { head_seq, protocol, .. } => {
            assert_eq!(protocol, 1);
            head_seq
        }
        other => panic!("expected hello, got {other:?}"),
    };
    let mut replayed = Vec::new();
    let caught_up = loop {
        match courier.frame().await {
            ServerFrame::Event { event } => replayed.push(event.seq),
            ServerFrame::CaughtUp { seq } => break seq,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(caught_up >= hello_head);

    // The whole log, as the admin sees it: gap-free and monotonic from 1.
    let mut admin = h.ws(ADMIN, Some(0)).await;
    let all = admin.until(|e| e.seq >= caught_up).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=caught_up).collect::<Vec<_>>());
    // The courier got exactly their events after seq 2, in order (their
    // app's connection is for supervisors only).
    let expected: Vec<u64> = all
        .iter()
        .filter(|e| e.seq > n && e.courier_id.0 == d.courier_id)
        .filter(|e| !matches!(e.kind, EventKind::AppConnection { .. }))
        .map(|e| e.seq)
        .collect();
    assert_eq!(replayed, expected);

    // Live from here: strictly after the replay, no duplicate, in order.
    h.request_call(&d, d.stop_ids[3], "resume-tap-3").await;
    let live = courier.until(|e| e.kind == EventKind::CallRequested).await;
    let mut prev = caught_up;
    for e in &live {
        assert!(e.seq > prev, "seq {} after {prev}", e.seq);
        prev = e.seq;
    }
}

#[tokio::test]
async fn a_socket_opened_during_a_burst_of_writes_sees_every_event_once_in_order() {
    let (_manual, clock) = manual_clock();
    let h = std::sync::Arc::new(Harness::start(clock, HashMap::new()).await);
    let d = h.depot(AttemptPolicy::default(), 2, 0).await;
    let writer = {
        let (h, d) = (h.clone(), d.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                h.import(&d, &route_body(2 + i % 2, 0)).await;
            }
        })
    };
    // Connect mid-burst, resuming from the start.
    let mut ws = h.ws(&d.supervisor_token, Some(0)).await;
    writer.await.expect("writer");
    let last = head(&h).await;
    let events = collect_until(&mut ws, last).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "every event once, in order, no gap");
}

#[tokio::test]
async fn a_slow_consumer_falls_back_to_the_database_and_loses_nothing() {
    let (_manual, clock) = manual_clock();
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut cfg = config(&dir, clock, HashMap::new());
    cfg.ws_queue = 2;
    let h = Harness::start_with(dir, cfg).await;
    let d = h.depot(AttemptPolicy::default(), 2, 0).await;
    let mut ws = h.ws(ADMIN, None).await;
    let start = match ws.frame().await {
        ServerFrame::Hello { head_seq, .. } => head_seq,
        other => panic!("expected hello, got {other:?}"),
    };
    assert_eq!(ws.frame().await, ServerFrame::CaughtUp { seq: start });
    // 40 events while the client reads nothing: the queue of 2 overflows.
    for _ in 0..40 {
        h.import(&d, &route_body(2, 0)).await;
    }
    let last = head(&h).await;
    let seqs: Vec<u64> = collect_until(&mut ws, last).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (start + 1..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn couriers_see_only_their_events_and_supervisors_only_their_depot() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let a = h.depot(AttemptPolicy::default(), 2, 0).await;
    let other_depot = h.depot(AttemptPolicy::default(), 2, 50).await;
    // A second courier in depot A.
    let (_, b) = h
        .post(
            &format!("/v1/depots/{}/couriers", a.id),
            ADMIN,
            json!({"name": "Boris", "phone": "+79990000002"}),
        )
        .await;
    let b_token = b["token"].as_str().expect("token").to_owned();
    let b_id = b["courier"]["id"].as_i64().expect("id");
    let (s, _) = h
        .put(&format!("/v1/couriers/{b_id}/routes/{}", date()), &a.integrator_token, route_body(1, 20))
        .await;
    assert_eq!(s, StatusCode::OK);

    let mut courier_a = h.ws(&a.courier_token, Some(0)).await;
    let mut courier_b = h.ws(&b_token, Some(0)).await;
    let mut sup_a = h.ws(&a.supervisor_token, Some(0)).await;
    let mut sup_other = h.ws(&other_depot.supervisor_token, Some(0)).await;

    h.request_call(&a, a.stop_ids[0], "scope-tap-a").await;
    h.request_call(&other_depot, other_depot.stop_ids[0], "scope-tap-o").await;

    let mut seen = HashMap::new();
    for (name, ws) in
        [("a", &mut courier_a), ("b", &mut courier_b), ("sup_a", &mut sup_a), ("sup_o", &mut sup_other)]
    {
        let mut events = Vec::new();
        // Read until the socket is idle: everything in scope up to `last`.
        while let Some(frame) = ws.try_frame(std::time::Duration::from_millis(300)).await {
            if let ServerFrame::Event { event } = frame {
                events.push(event);
            }
        }
        seen.insert(name, events);
    }
    assert!(!seen["a"].is_empty() && seen["a"].iter().all(|e| e.courier_id.0 == a.courier_id));
    assert!(!seen["b"].is_empty() && seen["b"].iter().all(|e| e.courier_id.0 == b_id));
    assert!(seen["sup_a"].iter().all(|e| e.depot_id.0 == a.id));
    assert!(
        seen["sup_a"].iter().any(|e| e.courier_id.0 == b_id)
            && seen["sup_a"].iter().any(|e| e.courier_id.0 == a.courier_id)
    );
    assert!(!seen["sup_o"].is_empty() && seen["sup_o"].iter().all(|e| e.depot_id.0 == other_depot.id));
}

#[tokio::test]
async fn integrators_and_strangers_cannot_open_the_feed() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 0, 0).await;
    let ws_base = h.base.replacen("http", "ws", 1);
    for (token, status) in [(d.integrator_token.as_str(), 403), ("nope", 401)] {
        let err = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws?access_token={token}"))
            .await
            .expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), status),
            other => panic!("expected an HTTP refusal, got {other}"),
        }
    }
}

#[tokio::test]
async fn pings_keep_a_live_client_and_silence_closes_a_dead_one() {
    let (_manual, clock) = manual_clock();
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut cfg = config(&dir, clock, HashMap::new());
    let beat = std::time::Duration::from_millis(100);
    cfg.heartbeat = beat;
    let h = Harness::start_with(dir, cfg).await;

    // A client that answers pings stays connected across many heartbeats.
    let mut live = h.ws(ADMIN, None).await;
    assert!(live.stay_for(beat * 6).await, "a live client was disconnected");
    assert!(live.pings >= 3, "only {} pings in 6 heartbeats", live.pings);

    // A client that never answers (a phone that lost its radio) is closed
    // after two silent heartbeats: the server ends the TCP connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(h.server().addr()).await.expect("connect");
    let handshake = format!(
        "GET /v1/ws?access_token={ADMIN} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        h.server().addr()
    );
    tcp.write_all(handshake.as_bytes()).await.expect("handshake");
    let opened = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut received = Vec::new();
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 101"));
    assert!(opened.elapsed() >= beat * 2, "closed after {:?}", opened.elapsed());
}

#[tokio::test]
async fn a_graceful_shutdown_tells_sockets_and_a_restart_keeps_the_log() {
    let (_manual, clock) = manual_clock();
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let h = Harness::start_with(dir.clone(), config(&dir, clock.clone(), HashMap::new())).await;
    let d = h.depot(AttemptPolicy::default(), 2, 0).await;
    let before = head(&h).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    assert!(matches!(ws.frame().await, ServerFrame::Hello { .. }));
    assert!(matches!(ws.frame().await, ServerFrame::CaughtUp { .. }));

    let Harness { server, .. } = h;
    server.expect("running").shutdown().await;
    match ws.try_frame(WAIT).await {
        Some(ServerFrame::Error { code, .. }) => {
            assert_eq!(code, callahead_core::wire::ErrorCode::Unavailable)
        }
        other => panic!("expected an error frame, got {other:?}"),
    }

    let h2 = Harness::start_with(dir.clone(), config(&dir, clock, HashMap::new())).await;
    // The log is kept; since `before` only the app's connection came and
    // (if recorded before the stop) went.
    assert!(head(&h2).await >= before);
    let (_, since) = h2.get(&format!("/v1/events?after={before}"), ADMIN).await;
    let since: Vec<Event> = serde_json::from_value(since["events"].clone()).expect("events");
    assert!(since.iter().all(|e| matches!(e.kind, EventKind::AppConnection { .. })), "{since:?}");
    assert!(!since.is_empty() && since.len() <= 2);
    let (s, _) = h2.get("/v1/me/route", &d.courier_token).await;
    assert_eq!(s, StatusCode::OK, "tokens survive the restart");
}
