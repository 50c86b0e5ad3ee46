//! A courier who phoned a customer themselves (a site pass, a gate code)
//! logs it: the stop's history on the phone and the server's audit both show
//! it, once, however often the log is retried.

use callahead_core::wire::{self, paths, ErrorCode, EventKind, LogDirectCall};
use callahead_core::StopId;
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::Phone;
use callahead_server::providers::simulator::SimConfig;
use reqwest::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_lands_in_the_stops_timeline_once() {
    let ts = TestServer::start(100.0, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "Direct", 2, quick_policy()).await;
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(31, 2, ts.now()))
        .await
        .expect("route");
    let theirs = ts
        .api
        .import_route(&depot.integrator, depot.courier_id(1), today(), stops(32, 1, ts.now()))
        .await
        .expect("route");
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids: Vec<StopId> =
        phone.client().sync_route(today()).await.expect("sync").iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;

    let token = depot.courier_token(0);
    let log = LogDirectCall {
        stop_id: ids[1],
        idempotency_key: "direct-call-0001".into(),
        note: "gate code 4512, entrance from the yard".into(),
        called_at: None,
    };
    let send = |body: &LogDirectCall| {
        let body = body.clone();
        let api = ts.api.clone();
        let token = token.to_owned();
        async move {
            api.send::<wire::DirectCall>(Method::POST, Some(&token), paths::DIRECT_CALLS, Some(&body)).await
        }
    };
    let first = send(&log).await.expect("logged");
    let again = send(&log).await.expect("a retry is harmless");
    assert_eq!(first, again, "the retry returns the same log");

    let seen = phone
        .rec
        .wait_until("the log to reach the phone", |s| {
            s.events.iter().any(|e| matches!(&e.kind, EventKind::DirectCallLogged { .. }))
        })
        .await;
    let logged: Vec<_> =
        seen.events.iter().filter(|e| matches!(e.kind, EventKind::DirectCallLogged { .. })).collect();
    assert_eq!(logged.len(), 1);
    assert_eq!((logged[0].seq, logged[0].stop_id), (first.seq, Some(ids[1])));
    let timeline = phone.client().timeline(ids[1]).expect("timeline");
    assert!(
        timeline
            .events
            .iter()
            .any(|e| e.kind
                == EventKind::DirectCallLogged { note: log.note.clone(), called_at: first.called_at }),
        "the stop's history shows it: {:?}",
        timeline.events
    );

    // The app's own path: the core logs it (a fresh key each time).
    let via_core =
        phone.client().log_direct_call(ids[0], "site pass ordered".into()).await.expect("logged by the core");
    assert!(via_core.seq > first.seq);
    phone
        .rec
        .wait_until("the core's log to come back live", |s| s.events.iter().any(|e| e.seq == via_core.seq))
        .await;

    // Bad input: another courier's stop, an empty note, a reused key.
    let foreign = LogDirectCall {
        stop_id: theirs.stops[0].stop.id,
        idempotency_key: "direct-call-0002".into(),
        ..log.clone()
    };
    let e = send(&foreign).await.expect_err("not yours");
    assert_eq!((e.status, e.body.code), (StatusCode::NOT_FOUND, ErrorCode::StopNotFound));
    let empty =
        LogDirectCall { note: "  ".into(), idempotency_key: "direct-call-0003".into(), ..log.clone() };
    let e = send(&empty).await.expect_err("empty note");
    assert_eq!(
        (e.status, e.body.code, e.body.field.as_deref()),
        (StatusCode::BAD_REQUEST, ErrorCode::ValidationFailed, Some("note"))
    );
    // Through the company line: the simulator connects nobody.
    let dial = wire::DialDirect { stop_id: ids[0], idempotency_key: "dial-0001".into() };
    let e = ts
        .api
        .send::<wire::DirectDial>(Method::POST, Some(token), paths::DIRECT_DIALS, Some(&dial))
        .await
        .expect_err("no provider");
    assert_eq!((e.status, e.body.code), (StatusCode::CONFLICT, ErrorCode::DirectDialUnavailable));
    let reused = LogDirectCall { stop_id: ids[0], ..log.clone() };
    let e = send(&reused).await.expect_err("key reused for another stop");
    assert_eq!((e.status, e.body.code), (StatusCode::CONFLICT, ErrorCode::IdempotencyKeyReused));
}
