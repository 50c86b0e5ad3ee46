//! Issue #12's findings, each replayed against a real server on loopback:
//! SSRF on webhook URLs, token lifecycle, bounded connections, rate limits,
//! headers on JSON and on the customer page, secrets at rest, /metrics.

mod common;

use callahead_core::clock::Clock;
use callahead_core::wire::paths;
use callahead_server::api::limits::{Rate, RateLimits};
use callahead_server::outbound::StaticResolver;
use callahead_server::secrets::{Keys, SecretKey};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

/// The first token in a `GET /v1/tokens` answer whose `key` is `value`.
fn listed<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t[key] == value)
        .unwrap_or_else(|| panic!("no token with {key} {value}: {list}"))
}

fn hooks(depot: i64) -> String {
    paths::fill(paths::DEPOT_WEBHOOKS, &[("depot_id", &depot.to_string())])
}

async fn start(tweak: impl FnOnce(&mut callahead_server::ServerConfig)) -> Harness {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut cfg = config(&dir, manual_clock().1, HashMap::new());
    tweak(&mut cfg);
    Harness::start_with(dir, cfg).await
}

// ---------------------------------------------------------------- SSRF

#[tokio::test]
async fn webhook_urls_to_internal_addresses_are_refused_at_registration() {
    let names = StaticResolver::new(&[
        ("127.0.0.1.nip.io", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        ("localtest.me", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]),
        ("metadata.google.internal", &["169.254.169.254".parse().expect("ip")]),
        ("crm.example", &["93.184.216.34".parse().expect("ip")]),
    ]);
    let h = start(|c| {
        c.outbound_allow = Vec::new();
        c.resolver = Arc::new(names);
    })
    .await;
    let d = h.depot(policy(), 0, 0).await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5/hook",
        "http://192.168.1.10/hook",
        "http://2130706433/hook",
        "http://127.0.0.1.nip.io:8080/hook",
        "http://localtest.me/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
    ] {
        let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({ "url": url })).await;
        assert_eq!(
            (s, code(&v), v["field"].as_str()),
            (StatusCode::BAD_REQUEST, "validation_failed", Some("url")),
            "{url}: {v}"
        );
        assert!(v["message"].as_str().unwrap_or("").contains("refused by policy"), "{url}: {v}");
    }
    let (s, v) =
        h.post(&hooks(d.id), &d.integrator_token, json!({"url": "https://user:pw@crm.example/hook"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("user name or password"), "{v}");
    // A public address is fine (nothing is delivered in this test).
    let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({"url": "https://crm.example/hook"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// A receiver on loopback that counts what reaches it.
async fn counting_receiver() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn dns_that_changes_to_loopback_after_registration_is_refused_at_delivery() {
    let (receiver, hits) = counting_receiver().await;
    let names = Arc::new(StaticResolver::new(&[("rebind.example", &["93.184.216.34".parse().expect("ip")])]));
    let n = names.clone();
    let h = start(move |c| {
        c.outbound_allow = Vec::new();
        c.resolver = n;
    })
    .await;
    let d = h.depot(policy(), 1, 0).await;
    let url = format!("http://rebind.example:{}/hook", receiver.port());
    let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({ "url": url })).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["webhook"]["id"].as_i64().expect("id");
    // The name now points at this machine, before any event is delivered.
    names.set("rebind.example", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let (s, v) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let failures = paths::fill(paths::WEBHOOK_FAILURES, &[("webhook_id", &id.to_string())]);
    let failure = wait_for(&h, &failures, &d.integrator_token, |v| v["failures"][0].is_object()).await;
    assert_eq!(failure["failures"][0]["error"], "refused by policy", "{failure}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the loopback receiver");
}

#[tokio::test]
async fn a_receiver_redirecting_to_loopback_is_not_followed() {
    // Only the receiver's own address is allowed; it redirects to this
    // machine's loopback, where a second listener counts what reaches it.
    let (inner, hits) = counting_receiver().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("bind 127.0.0.2");
    let outer = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/stolen\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                inner.port()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    let names = StaticResolver::new(&[("crm.example", &["127.0.0.2".parse().expect("ip")])]);
    let h = start(move |c| {
        c.outbound_allow = vec!["127.0.0.2/32".parse().expect("net")];
        c.resolver = Arc::new(names);
    })
    .await;
    let d = h.depot(policy(), 1, 0).await;
    let url = format!("http://crm.example:{}/hook", outer.port());
    let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({ "url": url })).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["webhook"]["id"].as_i64().expect("id");
    let (s, v) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let failures = paths::fill(paths::WEBHOOK_FAILURES, &[("webhook_id", &id.to_string())]);
    let failure = wait_for(&h, &failures, &d.integrator_token, |v| v["failures"][0].is_object()).await;
    assert_eq!(failure["failures"][0]["error"], "HTTP 302", "reported, not followed: {failure}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reached the loopback listener");
}

/// Polls a GET until `done` holds (bounded by `WAIT`; the server has no
/// push for this state).
async fn wait_for(h: &Harness, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, v) = h.get(path, token).await;
        if s == StatusCode::OK && done(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path} never got there: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn a_courier_token_expires_refreshes_with_rotation_and_a_reused_refresh_revokes_the_sign_in() {
    let (wall, shared) = manual_clock();
    let h = start(move |c| c.wall_clock = shared).await;
    let (s, d) = h.post(paths::DEPOTS, ADMIN, json!({"name": "N", "time_zone": "Europe/Moscow"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, created) = h
        .post(
            &format!("/v1/depots/{}/couriers", d["id"]),
            ADMIN,
            json!({"name": "I", "phone": "+79990000001"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let access = created["token"].as_str().expect("token").to_owned();
    let refresh = created["refresh_token"].as_str().expect("refresh").to_owned();
    let route = format!("{}?date={}", paths::MY_ROUTE, date());
    assert_eq!(h.get(&route, &access).await.0, StatusCode::OK);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(created["expires_at"].clone()).expect("expires_at");
    assert_eq!(expires, wall.now() + chrono::Duration::hours(1), "an hour by default");

    // An hour later the access token no longer works.
    wall.advance(chrono::Duration::minutes(61));
    let (s, v) = h.get(&route, &access).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_expired"));
    // A refresh token is not a bearer token.
    assert_eq!(code(&h.get(&route, &refresh).await.1), "invalid_token");

    let (s, pair) =
        h.send("POST", paths::AUTH_REFRESH, None, Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!(s, StatusCode::OK, "{pair}");
    let (access2, refresh2) =
        (pair["token"].as_str().expect("t"), pair["refresh_token"].as_str().expect("r"));
    assert_ne!(refresh2, refresh, "rotated");
    assert_eq!(h.get(&route, access2).await.0, StatusCode::OK);

    // The old refresh token comes back (stolen, or a replay): every token
    // of this sign-in stops working.
    let (s, v) = h.send("POST", paths::AUTH_REFRESH, None, Some(json!({ "refresh_token": refresh }))).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_reused"), "{v}");
    assert_eq!(code(&h.get(&route, access2).await.1), "invalid_token");
    let (s, v) = h.send("POST", paths::AUTH_REFRESH, None, Some(json!({ "refresh_token": refresh2 }))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // The admin signs the courier in again (a new phone).
    let courier = created["courier"]["id"].as_i64().expect("id");
    let (s, fresh) = h.post(&format!("/v1/couriers/{courier}/tokens"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{fresh}");
    assert_eq!(h.get(&route, fresh["token"].as_str().expect("t")).await.0, StatusCode::OK);
    // And sees when tokens were last used.
    let (s, list) = h.get(&format!("{}?depot_id={}", paths::TOKENS, d["id"]), ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let used: Vec<&Value> =
        list["tokens"].as_array().expect("tokens").iter().filter(|t| t["last_used_at"].is_string()).collect();
    assert!(!used.is_empty(), "{list}");
    assert!(!list.to_string().contains(access2), "tokens are never shown again");
}

#[tokio::test]
async fn a_deactivated_courier_loses_their_sockets_at_once_and_cannot_sign_in() {
    let h = start(|_| {}).await;
    let d = h.depot(policy(), 0, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    assert!(matches!(ws.frame().await, callahead_core::wire::ServerFrame::Hello { .. }));
    let (s, v) = h.post(&format!("/v1/couriers/{}/deactivate", d.courier_id), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let closed = ws.close_frame().await.map(|f| u16::from(f.code));
    assert_eq!(closed, Some(1008), "closed as a policy violation");
    assert_eq!(code(&h.get(paths::MY_ROUTE, &d.courier_token).await.1), "invalid_token");
    let (s, v) = h.post(&format!("/v1/couriers/{}/tokens", d.courier_id), ADMIN, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "account_deactivated"));

    // Revoking one token (an integrator key) works the same way.
    let (_, list) = h.get(&format!("{}?depot_id={}", paths::TOKENS, d.id), ADMIN).await;
    let key = listed(&list, "role", "integrator").clone();
    let (s, v) = h.post(&format!("/v1/tokens/{}/revoke", key["id"]), ADMIN, json!({})).await;
    assert_eq!((s, v["revoked"].as_bool()), (StatusCode::OK, Some(true)));
    assert_eq!(code(&h.get(&hooks(d.id), &d.integrator_token).await.1), "invalid_token");
}

#[tokio::test]
async fn supervisor_and_integrator_tokens_expire_and_a_deactivated_supervisor_loses_their_sockets() {
    let (wall, shared) = manual_clock();
    let h = start(move |c| c.wall_clock = shared).await;
    let d = h.depot(policy(), 0, 0).await;
    let dashboard = paths::fill(paths::DEPOT_DASHBOARD, &[("depot_id", &d.id.to_string())]);
    assert_eq!(h.get(&dashboard, &d.supervisor_token).await.0, StatusCode::OK);
    // 30 days for a supervisor, 365 for an integrator key (the defaults).
    wall.advance(chrono::Duration::days(31));
    let (s, v) = h.get(&dashboard, &d.supervisor_token).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_expired"), "{v}");
    assert_eq!(h.get(&hooks(d.id), &d.integrator_token).await.0, StatusCode::OK, "the key still works");
    wall.advance(chrono::Duration::days(335));
    let (s, v) = h.get(&hooks(d.id), &d.integrator_token).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "token_expired"), "{v}");

    // A new supervisor token, a live socket, then the supervisor leaves.
    let (_, list) = h.get(&format!("{}?depot_id={}", paths::TOKENS, d.id), ADMIN).await;
    let supervisor = listed(&list, "role", "supervisor")["subject_id"].clone();
    let (s, fresh) = h.post(&format!("/v1/supervisors/{supervisor}/tokens"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{fresh}");
    let token = fresh["token"].as_str().expect("token").to_owned();
    let mut ws = h.ws(&token, None).await;
    assert!(matches!(ws.frame().await, callahead_core::wire::ServerFrame::Hello { .. }));
    let (s, v) = h.post(&format!("/v1/supervisors/{supervisor}/deactivate"), ADMIN, json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(ws.close_frame().await.map(|f| u16::from(f.code)), Some(1008), "closed at once");
    assert_eq!(code(&h.get(&dashboard, &token).await.1), "invalid_token");
    let (s, v) = h.post(&format!("/v1/supervisors/{supervisor}/tokens"), ADMIN, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "account_deactivated"), "{v}");
}

#[tokio::test]
async fn the_bootstrap_admin_token_follows_the_variable_and_must_be_long() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let first = Harness::start_with(dir.clone(), config(&dir, manual_clock().1, HashMap::new())).await;
    let (s, list) = first.get(paths::TOKENS, ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    // The API cannot revoke it (an admin would lock every admin out): the
    // variable replaces it.
    let bootstrap = listed(&list, "kind", "bootstrap")["id"].clone();
    let (s, v) = first.post(&format!("/v1/tokens/{bootstrap}/revoke"), ADMIN, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "bootstrap_token_not_revocable"), "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("CALLAHEAD_ADMIN_TOKEN"), "{v}");
    assert_eq!(first.get(paths::TOKENS, ADMIN).await.0, StatusCode::OK, "still works");
    drop_server(first).await;

    let next = "a-new-admin-token-after-rotation-0123456789";
    let mut cfg = config(&dir, manual_clock().1, HashMap::new());
    cfg.admin_token = Some(next.into());
    let second = Harness::start_with(dir.clone(), cfg).await;
    assert_eq!(code(&second.get(paths::TOKENS, ADMIN).await.1), "invalid_token", "the old one is revoked");
    assert_eq!(second.get(paths::TOKENS, next).await.0, StatusCode::OK);
    drop_server(second).await;

    let mut cfg = config(&dir, manual_clock().1, HashMap::new());
    cfg.admin_token = None;
    let third = Harness::start_with(dir.clone(), cfg).await;
    assert_eq!(code(&third.get(paths::TOKENS, next).await.1), "invalid_token", "unset: none works");
    drop_server(third).await;

    let mut cfg = config(&dir, manual_clock().1, HashMap::new());
    cfg.admin_token = Some("password".into());
    let refused = callahead_server::RunningServer::start(cfg).await.err().expect("refused");
    assert!(refused.to_string().contains("at least 32 characters"), "{refused}");
}

async fn drop_server(mut h: Harness) {
    if let Some(s) = h.server.take() {
        s.shutdown().await;
    }
}

// ---------------------------------------------------------------- connections

fn tight(c: &mut callahead_server::ServerConfig) {
    c.connections.header_read_timeout = std::time::Duration::from_millis(300);
    c.connections.request_timeout = std::time::Duration::from_millis(500);
}

/// Reads until the server closes; what it sent.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection in time")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slowloris_half_open_and_slow_bodies_are_closed_by_the_timeouts() {
    let h = start(tight).await;
    let addr = h.server().addr();
    // Half-open: connected, says nothing.
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // Slowloris: a head that never ends.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1").await.expect("write");
    // A body that never arrives.
    let mut body = tokio::net::TcpStream::connect(addr).await.expect("connect");
    body.write_all(
        format!("POST /v1/depots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"na").as_bytes(),
    )
    .await
    .expect("write");
    assert_eq!(read_to_close(&mut silent).await, "", "closed without a word");
    let _ = read_to_close(&mut slow).await;
    let answer = read_to_close(&mut body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // The server still serves.
    assert_eq!(h.get("/healthz", ADMIN).await.0, StatusCode::OK);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_websockets_are_capped_per_token() {
    let h = start(|c| {
        c.connections.max_connections = 3;
        c.connections.ws_per_token = 1;
    })
    .await;
    let d = h.depot(policy(), 0, 0).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    assert!(matches!(ws.frame().await, callahead_core::wire::ServerFrame::Hello { .. }));
    // A second socket on the same token: refused with the reason.
    let ws_base = h.base.replacen("http", "ws", 1);
    let second =
        tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws?access_token={}", d.courier_token)).await;
    match second {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("too_many_sockets"), "{body}");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // One websocket open: two more connections fill the cap; the next is refused.
    let _a = tokio::net::TcpStream::connect(h.server().addr()).await.expect("connect");
    let _b = tokio::net::TcpStream::connect(h.server().addr()).await.expect("connect");
    let mut over = tokio::net::TcpStream::connect(h.server().addr()).await.expect("connect");
    let answer = read_to_close(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("unavailable"), "{answer}");
    ws.close().await;
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn guessing_tokens_meets_a_429_with_retry_after_even_for_a_right_guess() {
    let h = start(|c| c.rates = RateLimits { auth_failures: Rate::new(1, 5), ..RateLimits::default() }).await;
    for i in 0..5 {
        let (s, v) = h.get(paths::TOKENS, &format!("cah_adm_guess-{i}")).await;
        assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    }
    let (s, _) = h.get(paths::TOKENS, "cah_adm_guess-6").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the sixth failure spends the last of the allowance");
    let resp =
        h.http.get(format!("{}{}", h.base, paths::TOKENS)).bearer_auth(ADMIN).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "the right token is refused too while blocked");
    assert_retry_after(resp).await;
}

#[tokio::test]
async fn guessing_reschedule_links_and_flooding_writes_meet_429s() {
    let h = start(|c| {
        c.rates = RateLimits {
            reschedule_page: Rate::new(1, 4),
            writes: Rate::new(1, 3),
            campaign_runs: Rate::new(1, 1),
            ..RateLimits::default()
        }
    })
    .await;
    for i in 0..4 {
        let resp = h.http.get(format!("{}/r/guess-{i}", h.base)).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    let resp = h.http.get(format!("{}/r/guess-5", h.base)).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));

    let d = h.depot(policy(), 1, 0).await;
    let (campaigns, runs) = sms_campaign(&h, &d, "remind", 0).await;
    let (s, v) = h.post(&runs, &d.supervisor_token, json!({"stop_ids": d.stop_ids})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let resp = h
        .http
        .post(format!("{}{runs}", h.base))
        .bearer_auth(&d.supervisor_token)
        .json(&json!({"stop_ids": d.stop_ids}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "one enrollment a minute");
    assert_retry_after(resp).await;
    // Writes: the supervisor's third write this minute is refused.
    let resp = h
        .http
        .post(format!("{}{campaigns}", h.base))
        .bearer_auth(&d.supervisor_token)
        .json(&json!({"name": "x", "steps": [{"after_secs": 0, "action": {"type": "sms"}}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_retry_after(resp).await;
}

/// A one-step SMS campaign of `d`'s supervisor; its campaigns' and its
/// runs' paths.
async fn sms_campaign(h: &Harness, d: &Depot, name: &str, after_secs: u32) -> (String, String) {
    let campaigns = paths::fill(paths::DEPOT_CAMPAIGNS, &[("depot_id", &d.id.to_string())]);
    let (s, c) = h
        .post(
            &campaigns,
            &d.supervisor_token,
            json!({"name": name, "steps": [{"after_secs": after_secs, "action": {"type": "sms"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let runs = format!("{campaigns}/{}/runs", c["id"]);
    (campaigns, runs)
}

/// A 429 that says when to come back, and why.
async fn assert_retry_after(resp: reqwest::Response) {
    let wait: u64 = resp.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(code(&v), "rate_limited", "{v}");
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn json_answers_and_the_customer_page_carry_protective_headers() {
    let h = start(|_| {}).await;
    let resp =
        h.http.get(format!("{}{}", h.base, paths::DEPOTS)).bearer_auth(ADMIN).send().await.expect("send");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let resp = h.http.get(format!("{}/v1/nope", h.base)).send().await.expect("send");
    assert_eq!(resp.headers()["cache-control"], "no-store", "errors too");

    let page = h.http.get(format!("{}/r/unknown-link", h.base)).send().await.expect("send");
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    // A foreign page posting the form is refused.
    let forged = h
        .http
        .post(format!("{}/r/unknown-link", h.base))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("slot=0")
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------- secrets

#[tokio::test]
async fn webhook_secrets_are_encrypted_at_rest() {
    let key = SecretKey::generate();
    let k = key.clone();
    let h = start(move |c| c.secret_keys = Keys { current: Some(k), previous: None }).await;
    let d = h.depot(policy(), 0, 0).await;
    let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({"url": "https://crm.example/hook"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let secret = v["secret"].as_str().expect("secret").to_owned();
    let stored: String =
        callahead_server::store::scratch::peek(&db_path(&h.dir), "SELECT secret FROM webhook_endpoints", &[])
            .expect("read")
            .pop()
            .expect("row");
    assert!(stored.starts_with("enc1:") && !stored.contains(&secret), "{stored}");
    let keys = Keys { current: Some(key), previous: None };
    assert_eq!(keys.open(&stored).expect("opens"), secret);
}

// ---------------------------------------------------------------- metrics

#[tokio::test]
async fn metrics_are_scraped_with_the_series_operators_need() {
    let h = start(|_| {}).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut ws = h.ws(&d.supervisor_token, None).await;
    assert!(matches!(ws.frame().await, callahead_core::wire::ServerFrame::Hello { .. }));
    let (s, _) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED);
    // The simulator places the attempt: a provider request.
    let _ = ws.until(|e| e.kind.type_name() == "attempt_placed").await;
    let (s, v) = h.post(&hooks(d.id), &d.integrator_token, json!({"url": "https://crm.example/hook"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    assert_eq!(h.send("GET", paths::METRICS, None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get(paths::METRICS, &d.supervisor_token).await.0, StatusCode::FORBIDDEN);
    let resp =
        h.http.get(format!("{}{}", h.base, paths::METRICS)).bearer_auth(ADMIN).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    for series in [
        "callahead_http_requests_total{",
        "route=\"/v1/calls\"",
        "callahead_http_request_duration_seconds_bucket",
        "callahead_websocket_connections{role=\"supervisor\"}",
        "callahead_event_log_head",
        "callahead_push_lag_seconds_bucket",
        "callahead_writer_batch_size_bucket",
        "callahead_writer_commit_seconds_bucket",
        "callahead_calls_active{status=",
        "callahead_events_total{type=\"call_requested\"}",
        "callahead_queue_depth{queue=\"calls\"}",
        "callahead_webhook_backlog_events{endpoint=",
        "callahead_writer_queue_depth",
        "callahead_leases_stuck 0",
        "callahead_nodes_alive 1",
        "callahead_provider_requests_total{provider=\"simulator\",operation=\"place\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    ws.close().await;
}

// ---------------------------------------------------------------- masking

#[tokio::test]
async fn dashboards_and_integrator_reads_show_masked_numbers_the_courier_the_full_one() {
    let h = start(|_| {}).await;
    let d = h.depot(policy(), 1, 3).await;
    let full = phone(3);
    let masked = callahead_core::privacy::mask_phone(&full);
    assert_ne!(full, masked);
    let imported = h.import(&d, &route_body(1, 3)).await;
    assert_eq!(imported["stops"][0]["stop"]["phone"], masked.as_str(), "the integrator's read");
    let dash = paths::fill(paths::DEPOT_DASHBOARD, &[("depot_id", &d.id.to_string())]);
    let (s, v) = h.get(&format!("{dash}?date={}", date()), &d.supervisor_token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stops"][0]["phone"], masked.as_str(), "the supervisor's dashboard");
    assert!(!v.to_string().contains(&full) && !v.to_string().contains("+79990000001"), "{v}");
    let timeline = paths::fill(paths::STOP_TIMELINE, &[("stop_id", &d.stop_ids[0].to_string())]);
    assert_eq!(h.get(&timeline, ADMIN).await.1["stop"]["phone"], masked.as_str());
    let (_, mine) = h.get(&format!("{}?date={}", paths::MY_ROUTE, date()), &d.courier_token).await;
    assert_eq!(mine["stops"][0]["stop"]["phone"], full.as_str(), "the courier dials it");
}

// ---------------------------------------------------------------- send guard

#[tokio::test]
async fn quotas_and_destination_rules_refuse_sends_with_nothing_sent() {
    let h = start(|_| {}).await;
    let d = h.depot(policy(), 3, 0).await;
    // +882 (international networks) is not the depot's country.
    let mut pumped = route_body(1, 0);
    pumped["stops"][0]["phone"] = json!("+88213000000001");
    let (s, v) =
        h.put(&format!("/v1/couriers/{}/routes/{}", d.courier_id, date()), &d.integrator_token, pumped).await;
    assert_eq!(
        (s, code(&v), v["field"].as_str()),
        (StatusCode::FORBIDDEN, "destination_not_allowed", Some("stops[0].phone")),
        "{v}"
    );

    let limits = paths::fill(paths::DEPOT_SEND_LIMITS, &[("depot_id", &d.id.to_string())]);
    let (s, v) = h.get(&limits, ADMIN).await;
    assert_eq!((s, v["allowed_destinations"].clone()), (StatusCode::OK, json!(["+7"])));
    let (s, v) = h
        .put(&limits, ADMIN, json!({"sms_per_day": 2, "calls_per_day": 1, "allowed_destinations": ["+7"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Three SMS for a quota of two: nothing is enrolled, nothing sent.
    let (_, runs) = sms_campaign(&h, &d, "remind", 0).await;
    let (s, v) = h.post(&runs, &d.supervisor_token, json!({"stop_ids": d.stop_ids})).await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{v}");
    assert_eq!(h.get(&runs, &d.supervisor_token).await.1, json!([]), "no run");
    assert!(h.server().messaging().sent().is_empty());

    // One call a day: the second is refused.
    let (s, _) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = h.request_call(&d, d.stop_ids[1], "key-0002").await;
    assert_eq!((s, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{v}");
}

#[tokio::test]
async fn a_depot_may_reach_only_its_own_country_by_default() {
    let h = start(|_| {}).await;
    let (s, berlin) = h.post(paths::DEPOTS, ADMIN, json!({"name": "B", "time_zone": "Europe/Berlin"})).await;
    assert_eq!(s, StatusCode::CREATED, "{berlin}");
    let (s, utc) = h.post(paths::DEPOTS, ADMIN, json!({"name": "U", "time_zone": "UTC"})).await;
    assert_eq!(s, StatusCode::CREATED, "{utc}");
    let limits = |d: &Value| paths::fill(paths::DEPOT_SEND_LIMITS, &[("depot_id", &d["id"].to_string())]);
    assert_eq!(h.get(&limits(&berlin), ADMIN).await.1["allowed_destinations"], json!(["+49"]));
    assert_eq!(h.get(&limits(&utc), ADMIN).await.1["allowed_destinations"], json!([]), "no country: none");
    // A Berlin depot's courier imports a Moscow number: not its country.
    let (s, c) = h
        .post(
            &format!("/v1/depots/{}/couriers", berlin["id"]),
            ADMIN,
            json!({"name": "K", "phone": "+4915100000001"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let route = format!("/v1/couriers/{}/routes/{}", c["courier"]["id"], date());
    let (s, v) = h.put(&route, ADMIN, route_body(1, 0)).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "destination_not_allowed"), "{v}");
    let mut german = route_body(1, 0);
    german["stops"][0]["phone"] = json!("+4930123456789");
    let (s, v) = h.put(&route, ADMIN, german).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_text_queued_before_the_rules_changed_is_refused_when_due_and_counted_in_the_report() {
    let (clock, shared) = manual_clock();
    let h = start(move |c| c.clock = shared).await;
    let d = h.depot(policy(), 2, 0).await;
    let (_, runs) = sms_campaign(&h, &d, "later", 600).await;
    let (s, v) = h.post(&runs, &d.supervisor_token, json!({"stop_ids": d.stop_ids})).await;
    assert_eq!(s, StatusCode::OK, "enrolled while +7 was allowed: {v}");
    // Then the depot's customers' country is taken off its destinations.
    let limits = paths::fill(paths::DEPOT_SEND_LIMITS, &[("depot_id", &d.id.to_string())]);
    let (s, v) = h
        .put(
            &limits,
            ADMIN,
            json!({"sms_per_day": 100, "calls_per_day": 100, "allowed_destinations": ["+49"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    clock.advance(chrono::Duration::minutes(11));

    let report = paths::fill(paths::DEPOT_DAILY_REPORT, &[("depot_id", &d.id.to_string())]);
    let day = format!("{report}?date={}", date());
    let r = wait_for(&h, &day, &d.supervisor_token, |r| r["messages_refused"] == 2).await;
    assert_eq!(r["messages_refused"], 2, "{r}");
    assert!(h.server().messaging().sent().is_empty(), "nothing went out");
    let resp = h
        .http
        .get(format!("{}{day}&format=csv", h.base))
        .bearer_auth(&d.supervisor_token)
        .send()
        .await
        .expect("send");
    let csv = resp.text().await.expect("csv");
    let mut lines = csv.lines();
    let (header, values) = (lines.next().expect("header"), lines.next().expect("values"));
    let column = header.split(',').position(|c| c == "messages_refused").expect("the report has the column");
    assert_eq!(values.split(',').nth(column), Some("2"), "{csv}");
}

// ---------------------------------------------------------------- contract

#[tokio::test]
async fn a_reference_to_a_missing_depot_is_a_404_not_a_500() {
    let h = start(|_| {}).await;
    let (s, v) = h
        .post(
            "/v1/depots/999999/campaigns",
            ADMIN,
            json!({"name": "orphan", "steps": [{"after_secs": 0, "action": {"type": "sms"}}]}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, v) = h
        .post(
            "/v1/depots/999999/trigger-rules",
            ADMIN,
            json!({"event_type": "x", "campaign_id": 1, "cancel_on": []}),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
}

// ---------------------------------------------------------------- personal data

#[tokio::test]
async fn retention_erases_finished_routes_personal_data_on_the_clock_while_reports_still_count_them() {
    let (clock, shared) = manual_clock();
    let h = start(move |c| {
        c.clock = shared;
        c.simulator = callahead_server::providers::simulator::SimConfig::default();
    })
    .await;
    let d = h.depot(policy(), 2, 0).await;
    let mut ws = h.ws(&d.supervisor_token, None).await;
    let (s, _) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED);
    // Placed before it is cancelled: an attempt with its script and what
    // was placed, for retention to erase.
    let _ = ws.until(|e| e.kind.type_name() == "attempt_placed").await;
    ws.close().await;
    let (s, _) = h.send("POST", &format!("/v1/calls/{}/cancel", 1), Some(ADMIN), None).await;
    assert!(s.is_success(), "{s}");
    let at_rest = at_rest(&h, d.stop_ids[0]);
    assert!(at_rest.contains(&phone(0)) && at_rest.contains("Customer 0"), "{at_rest}");
    let retention = paths::fill(paths::DEPOT_RETENTION, &[("depot_id", &d.id.to_string())]);
    assert_eq!(h.get(&retention, ADMIN).await.1["days"], 90, "the default");
    let (s, _) = h.put(&retention, ADMIN, json!({"days": 2})).await;
    assert_eq!(s, StatusCode::OK);

    let timeline = paths::fill(paths::STOP_TIMELINE, &[("stop_id", &d.stop_ids[0].to_string())]);
    assert_eq!(h.server().apply_retention().await.expect("retention"), 0, "the route is today's");
    assert_ne!(h.get(&timeline, ADMIN).await.1["stop"]["customer_name"], "");
    clock.advance(chrono::Duration::days(3));
    assert_eq!(h.server().apply_retention().await.expect("retention"), 2, "three days later");
    let (_, t) = h.get(&timeline, ADMIN).await;
    assert_eq!(
        (t["stop"]["customer_name"].as_str(), t["stop"]["phone"].as_str(), t["stop"]["address"].as_str()),
        (Some(""), Some(""), Some("")),
        "{t}"
    );
    let attempts = t["calls"][0]["attempts"].as_array().cloned().unwrap_or_default();
    assert!(!attempts.is_empty() && attempts.iter().all(|x| x["script"].is_null()), "{t}");
    assert_nothing_personal_at_rest(&h, d.stop_ids[0], 0);
    assert_eq!(t["calls"][0]["call"]["status"], "cancelled", "outcomes stay");
    let report = paths::fill(paths::DEPOT_DAILY_REPORT, &[("depot_id", &d.id.to_string())]);
    let (s, r) = h.get(&format!("{report}?date={}", date()), ADMIN).await;
    assert_eq!((s, r["calls_requested"].as_u64()), (StatusCode::OK, Some(1)), "the report still counts: {r}");
}

#[tokio::test]
async fn a_customer_asks_to_be_forgotten_and_only_their_data_goes() {
    let h = start(|_| {}).await;
    let d = h.depot(policy(), 2, 5).await;
    let mut ws = h.ws(&d.supervisor_token, None).await;
    let (s, _) = h.request_call(&d, d.stop_ids[0], "key-0001").await;
    assert_eq!(s, StatusCode::CREATED);
    let _ = ws.until(|e| e.kind.type_name() == "attempt_placed").await;
    ws.close().await;
    let before = at_rest(&h, d.stop_ids[0]);
    assert!(before.contains(&phone(5)) && before.contains("Customer 0"), "{before}");
    let erasure = paths::fill(paths::DEPOT_ERASURE, &[("depot_id", &d.id.to_string())]);
    let (s, v) = h.post(&erasure, &d.integrator_token, json!({ "phone": phone(5) })).await;
    assert_eq!((s, v["stops"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let stop = |i: usize| paths::fill(paths::STOP_TIMELINE, &[("stop_id", &d.stop_ids[i].to_string())]);
    assert_eq!(h.get(&stop(0), ADMIN).await.1["stop"]["customer_name"], "");
    assert_eq!(
        h.get(&stop(1), ADMIN).await.1["stop"]["customer_name"],
        "Customer 1",
        "another customer keeps theirs"
    );
    assert_nothing_personal_at_rest(&h, d.stop_ids[0], 5);
    assert!(at_rest(&h, d.stop_ids[1]).contains(&phone(6)), "the other stop's data stays at rest too");
    let (s, v) = h.post(&erasure, &d.courier_token, json!({ "phone": phone(6) })).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = h.post(&erasure, ADMIN, json!({ "phone": "not a phone" })).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_phone"));
}

/// What the database itself holds of one stop's customer: its row, its
/// attempts' scripts and what was placed, its texts' numbers, its direct
/// calls' notes and recordings — read from the server's database (either
/// engine), not through the API, which could hide what is still stored.
fn at_rest(h: &Harness, stop: i64) -> String {
    let db = db_path(&h.dir);
    let read = |sql: &str| -> Vec<String> {
        callahead_server::store::scratch::peek::<Option<String>>(&db, sql, &[&stop])
            .expect("read the database")
            .into_iter()
            .flatten()
            .collect()
    };
    [
        read("SELECT customer_name || ' ' || phone || ' ' || address || ' ' || order_numbers FROM stops WHERE id = ?1"),
        read("SELECT a.script FROM attempts a JOIN calls c ON c.id = a.call_id WHERE c.stop_id = ?1"),
        read("SELECT a.request FROM attempts a JOIN calls c ON c.id = a.call_id WHERE c.stop_id = ?1"),
        read("SELECT phone FROM messages WHERE stop_id = ?1"),
        read("SELECT note FROM direct_calls WHERE stop_id = ?1"),
        read("SELECT recording_ref FROM direct_dials WHERE stop_id = ?1"),
    ]
    .concat()
    .join("\n")
}

/// Neither the customer's number, name or order, nor the courier's number
/// (bridged to from the call) is left in what `at_rest` reads; the call's
/// attempts are still there.
fn assert_nothing_personal_at_rest(h: &Harness, stop: i64, phone_index: usize) {
    let text = at_rest(h, stop);
    for gone in [phone(phone_index).as_str(), "+79990000001", "Customer", "Lenina", "A-0"] {
        assert!(!text.contains(gone), "{gone:?} is still in the database: {text}");
    }
    let attempts: Vec<i64> = callahead_server::store::scratch::peek(
        &db_path(&h.dir),
        "SELECT COUNT(*) FROM attempts a JOIN calls c ON c.id = a.call_id WHERE c.stop_id = ?1",
        &[&stop],
    )
    .expect("count");
    assert!(attempts[0] > 0, "the attempts stay (outcomes for the reports)");
}
