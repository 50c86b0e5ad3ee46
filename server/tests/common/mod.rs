//! Shared test harness: an in-process server on a temp database, an HTTP
//! helper that returns status + JSON, a depot with a courier, and a websocket
//! client that waits for events (no sleeps).
#![allow(dead_code)]

use callahead_core::clock::{ManualClock, ScaledClock, SharedClock};
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{Event, ServerFrame};
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use callahead_server::{RunningServer, ServerConfig};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN: &str = "test-admin-token-0123456789-abcdefghij";
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 7, 0, 0).single().expect("valid time")
}

pub fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date")
}

pub fn manual_clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(t0());
    (c.clone(), Arc::new(c))
}

/// Domain time 2000x real time: a 60 s retry spacing takes 30 ms.
pub fn fast_clock() -> SharedClock {
    Arc::new(ScaledClock::new(t0(), 2000.0))
}

/// 3 attempts 10 minutes apart, 30 s of ringing.
pub fn policy() -> AttemptPolicy {
    AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 600,
        ring_timeout_secs: 30,
        ..AttemptPolicy::default()
    }
}

pub fn phone(i: usize) -> String {
    format!("+7916{i:07}")
}

pub struct Harness {
    pub server: Option<RunningServer>,
    pub dir: Arc<tempfile::TempDir>,
    pub http: reqwest::Client,
    pub base: String,
}

pub fn config(
    dir: &tempfile::TempDir,
    clock: SharedClock,
    overrides: HashMap<String, Behaviour>,
) -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().expect("addr"), db_path(dir));
    c.admin_token = Some(ADMIN.into());
    c.clock = clock;
    // The tests' webhook receivers listen on loopback.
    c.outbound_allow = callahead_server::outbound::loopback();
    // No DNS here: every webhook host is this machine.
    c.resolver = std::sync::Arc::new(callahead_server::outbound::StaticResolver::everything_to(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    c.simulator = SimConfig { overrides, ..SimConfig::default() };
    c
}

/// The server's `--db`: a file in `dir`, or a PostgreSQL database of its own
/// when the suite runs on PostgreSQL (`store::scratch`).
pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    callahead_server::store::scratch::database_in(dir.path(), "callahead.db")
}

impl Harness {
    pub async fn start(clock: SharedClock, overrides: HashMap<String, Behaviour>) -> Harness {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let cfg = config(&dir, clock, overrides);
        Self::start_with(dir, cfg).await
    }

    /// Starts on `dir`'s database; restart tests pass the same `dir` again.
    pub async fn start_with(dir: Arc<tempfile::TempDir>, cfg: ServerConfig) -> Harness {
        let server = RunningServer::start(cfg).await.expect("server starts");
        let base = server.base_url();
        Harness { server: Some(server), dir, http: reqwest::Client::new(), base }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send("POST", path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send("PUT", path, Some(token), Some(body)).await
    }

    /// Admin creates a depot with `policy`, a courier, an integrator key and
    /// a supervisor; the integrator imports `stops` stops for the courier.
    pub async fn depot(&self, policy: AttemptPolicy, stops: usize, first_phone: usize) -> Depot {
        let (s, depot) = self
            .post(
                "/v1/depots",
                ADMIN,
                json!({"name": "North", "time_zone": "Europe/Moscow", "policy": policy}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{depot}");
        let depot_id = depot["id"].as_i64().expect("depot id");
        let (s, courier) = self
            .post(
                &format!("/v1/depots/{depot_id}/couriers"),
                ADMIN,
                json!({"name": "Ivan", "phone": "+79990000001"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{courier}");
        let (s, key) =
            self.post(&format!("/v1/depots/{depot_id}/integrator-keys"), ADMIN, json!({"name": "crm"})).await;
        assert_eq!(s, StatusCode::CREATED, "{key}");
        let (s, sup) =
            self.post(&format!("/v1/depots/{depot_id}/supervisors"), ADMIN, json!({"name": "Olga"})).await;
        assert_eq!(s, StatusCode::CREATED, "{sup}");
        let mut d = Depot {
            id: depot_id,
            courier_id: courier["courier"]["id"].as_i64().expect("courier id"),
            courier_token: courier["token"].as_str().expect("token").to_owned(),
            integrator_token: key["token"].as_str().expect("token").to_owned(),
            supervisor_token: sup["token"].as_str().expect("token").to_owned(),
            stop_ids: Vec::new(),
        };
        if stops > 0 {
            let route = self.import(&d, &route_body(stops, first_phone)).await;
            d.stop_ids = route["stops"]
                .as_array()
                .expect("stops")
                .iter()
                .map(|s| s["stop"]["id"].as_i64().expect("stop id"))
                .collect();
        }
        d
    }

    pub async fn import(&self, d: &Depot, body: &Value) -> Value {
        let (s, route) = self
            .put(
                &format!("/v1/couriers/{}/routes/{}", d.courier_id, date()),
                &d.integrator_token,
                body.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{route}");
        route
    }

    pub async fn request_call(&self, d: &Depot, stop: i64, key: &str) -> (StatusCode, Value) {
        self.post("/v1/calls", &d.courier_token, json!({"stop_id": stop, "idempotency_key": key})).await
    }

    pub async fn ws(&self, token: &str, after: Option<u64>) -> Ws {
        let ws_base = self.base.replacen("http", "ws", 1);
        let url = match after {
            Some(a) => format!("{ws_base}/v1/ws?after={a}&access_token={token}"),
            None => format!("{ws_base}/v1/ws?access_token={token}"),
        };
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Ws { stream, pings: 0 }
    }
}

pub fn stop_json(i: usize, phone_index: usize) -> Value {
    let start = t0() + Duration::hours(3 + i as i64);
    json!({
        "external_id": format!("ord-{i}"),
        "customer_name": format!("Customer {i}"),
        "phone": phone(phone_index),
        "time_zone": "Europe/Moscow",
        "address": format!("Lenina {i}"),
        "window_start": start,
        "window_end": start + Duration::hours(1),
        "order_numbers": [format!("A-{i}")],
        "amount": {"minor": 125050, "currency": "RUB"}
    })
}

pub fn route_body(stops: usize, first_phone: usize) -> Value {
    json!({"stops": (0..stops).map(|i| stop_json(i, first_phone + i)).collect::<Vec<_>>()})
}

#[derive(Debug, Clone)]
pub struct Depot {
    pub id: i64,
    pub courier_id: i64,
    pub courier_token: String,
    pub integrator_token: String,
    pub supervisor_token: String,
    pub stop_ids: Vec<i64>,
}

pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Pings received (and answered) so far.
    pub pings: usize,
}

impl Ws {
    /// The next server frame (pings are answered and skipped).
    pub async fn frame(&mut self) -> ServerFrame {
        self.try_frame(WAIT).await.expect("a frame arrives in time")
    }

    pub async fn try_frame(&mut self, wait: std::time::Duration) -> Option<ServerFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??;
            match msg.expect("websocket message") {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("a ServerFrame")),
                Message::Ping(p) => {
                    self.pings += 1;
                    let _ = self.stream.send(Message::Pong(p)).await;
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Keeps reading (and answering pings) for `wait`; false if the server
    /// closed the socket meanwhile.
    pub async fn stay_for(&mut self, wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return true,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return false,
                Ok(Some(Ok(Message::Ping(p)))) => {
                    self.pings += 1;
                    let _ = self.stream.send(Message::Pong(p)).await;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next text frame exactly as the server sent it (pings answered).
    pub async fn text(&mut self) -> Option<String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.ok()??;
            match msg.ok()? {
                Message::Text(t) => return Some(t.to_string()),
                Message::Ping(p) => {
                    let _ = self.stream.send(Message::Pong(p)).await;
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, message: Message) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(message).await
    }

    /// Reads until the server closes: its close frame, or `None` if the
    /// connection just dropped (what a client sees as 1006).
    pub async fn close_frame(&mut self) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next()).await.expect("the server closes in time") {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(&mut self) {
        let _ = self.stream.close(None).await;
    }

    pub async fn event(&mut self) -> Event {
        match self.frame().await {
            ServerFrame::Event { event } => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Reads events until `pred` matches; returns all events read.
    pub async fn until(&mut self, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            match self.frame().await {
                ServerFrame::Event { event } => {
                    let done = pred(&event);
                    seen.push(event);
                    if done {
                        return seen;
                    }
                }
                ServerFrame::Error { code, message } => panic!("server error frame {code:?}: {message}"),
                _ => {}
            }
        }
    }
}
