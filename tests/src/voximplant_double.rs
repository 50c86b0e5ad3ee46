//! A Voximplant double: a real HTTP server on loopback with the management
//! API methods the adapter uses (StartScenarios, GetCallHistory,
//! A2PSendSms, A2PGetSmsHistory), each checked for a valid service-account
//! JWT (RS256, the key's `kid`, `iss` = the account id, at most an hour) and
//! for documented parameters only; and the media-session URL each session
//! gets. It plays scenario.js's side of each call: the reports the scenario
//! sends (the protocol in server/voximplant/protocol.json), numbered,
//! timestamped and signed with the attempt's secret, and the summary it
//! leaves in the call history; on request twice and out of order. It fails
//! on request with 503s, 429s, Voximplant's error 185 and refusals.

use crate::double::{Gate, Outage};
use crate::twilio_double::Pace;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use callahead_core::clock::SharedClock;
use callahead_server::providers::simulator::Behaviour;
use callahead_server::providers::voximplant::jwt::{Claims, ServiceAccountKey};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const RULE_ID: &str = "3300001";
pub const CALLER_ID: &str = "+74950000000";

pub fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/voximplant")
}

/// The test service account (its private key signs the adapter's JWTs).
pub fn service_account() -> ServiceAccountKey {
    let text = std::fs::read_to_string(fixtures().join("test-service-account.json")).expect("key file");
    serde_json::from_str(&text).expect("a service-account key")
}

/// Parameters Voximplant documents for each method the adapter calls.
fn documented(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "StartScenarios" => &[
            "user_id",
            "user_name",
            "application_id",
            "application_name",
            "rule_id",
            "script_custom_data",
            "reference_ip",
            "server_location",
            "with_check_url",
        ],
        "GetCallHistory" => &[
            "from_date",
            "to_date",
            "call_session_history_id",
            "application_id",
            "application_name",
            "user_id",
            "rule_name",
            "remote_number",
            "local_number",
            "call_session_history_custom_data",
            "with_calls",
            "with_records",
            "with_other_resources",
            "child_account_id",
            "children_calls_only",
            "desc_order",
            "with_total_count",
            "count",
            "offset",
        ],
        "A2PSendSms" => &["src_number", "dst_numbers", "text"],
        "A2PGetSmsHistory" => &[
            "message_id",
            "source_number",
            "destination_number",
            "count",
            "offset",
            "from_date",
            "to_date",
            "output",
            "delivery_status",
        ],
        _ => return None,
    })
}

#[derive(Debug, Clone)]
pub struct Start {
    pub at: Instant,
    /// Domain time (the server's clock) when it came.
    pub domain: DateTime<Utc>,
    pub attempt_key: String,
    /// What the double answered: 200, 429, 503, 500; 185 and 400 for a
    /// JSON `error` body (Voximplant's error 185, a refusal).
    pub status: u16,
    pub session: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub data: Value,
    pub started: DateTime<Utc>,
    /// What the scenario left in the custom data at the end.
    pub summary: Option<String>,
    pub duration: Option<u32>,
    pub keys: Vec<String>,
    /// Numbers the scenario dialled, with the caller id shown.
    pub dialled: Vec<(String, String)>,
}

/// A report the double sent, for replay and forgery tests.
#[derive(Debug, Clone)]
pub struct Sent {
    pub url: String,
    pub body: String,
    pub signature: String,
    pub status: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Sms {
    pub id: u64,
    pub to: String,
    pub text: String,
}

#[derive(Default)]
struct Inner {
    behaviours: HashMap<String, Behaviour>,
    sessions: HashMap<String, Session>,
    order: Vec<String>,
    starts: Vec<Start>,
    violations: Vec<String>,
    outage: Option<Outage>,
    rate_limit_next: u32,
    error_185_next: u32,
    refuse_starts: Option<(i64, String)>,
    fail_after_start_next: u32,
    duplicate: bool,
    shuffle: bool,
    live: usize,
    max_live: usize,
    sent: Vec<Sent>,
    sms: Vec<Sms>,
    cancels: HashMap<String, watch::Sender<bool>>,
    next_id: u64,
}

struct Shared {
    clock: SharedClock,
    pace: Pace,
    http: reqwest::Client,
    key: DecodingKey,
    account: ServiceAccountKey,
    base: Mutex<String>,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    ends: Gate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

pub struct VoximplantDouble {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VoximplantDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl VoximplantDouble {
    pub async fn start(clock: SharedClock, pace: Pace) -> VoximplantDouble {
        let public = std::fs::read_to_string(fixtures().join("test-public-key.pem")).expect("public key");
        let shared = Arc::new(Shared {
            clock,
            pace,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client"),
            key: DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
            account: service_account(),
            base: Mutex::new(String::new()),
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
            ends: Gate::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        *shared.base.lock().expect("base") = format!("http://{addr}");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        VoximplantDouble { addr, shared, task }
    }

    /// The management API's base (`--voximplant-api-base`).
    pub fn api_base(&self) -> String {
        format!("http://{}/platform_api", self.addr)
    }

    pub fn script(&self, phone: &str, behaviour: Behaviour) {
        self.shared.lock().behaviours.insert(phone.to_owned(), behaviour);
    }
    /// 503 on every StartScenarios from the next one until `outage` is over.
    pub fn outage(&self, outage: Outage) {
        self.shared.lock().outage = Some(outage);
    }
    /// The next `n` StartScenarios get HTTP 429.
    pub fn rate_limit_next(&self, n: u32) {
        self.shared.lock().rate_limit_next = n;
    }
    /// The next `n` StartScenarios get Voximplant's error 185 (too many
    /// requests) in a JSON `error` body, as its API reports errors.
    pub fn error_185_next(&self, n: u32) {
        self.shared.lock().error_185_next = n;
    }
    /// Every StartScenarios is refused with this error in a JSON `error`
    /// body (as for a rule that is not the account's); no session starts.
    pub fn refuse_starts(&self, code: i64, msg: &str) {
        self.shared.lock().refuse_starts = Some((code, msg.to_owned()));
    }
    /// Reports out of order: ringing and answered held back until after
    /// the session's last report, then sent newest first.
    pub fn shuffle_reports(&self, on: bool) {
        self.shared.lock().shuffle = on;
    }
    /// While on, every session waits just before it ends (the customer's
    /// leg still up, its `ended` report unsent) until turned off.
    pub fn hold_ends(&self, on: bool) {
        self.shared.ends.set_shut(on);
    }
    /// Sessions waiting to end.
    pub fn held(&self) -> usize {
        self.shared.ends.held()
    }
    /// The next `n` StartScenarios start the session but answer 500.
    pub fn fail_after_start_next(&self, n: u32) {
        self.shared.lock().fail_after_start_next = n;
    }
    /// Every report twice.
    pub fn duplicate_reports(&self, on: bool) {
        self.shared.lock().duplicate = on;
    }
    pub fn starts(&self) -> Vec<Start> {
        self.shared.lock().starts.clone()
    }
    pub fn sessions(&self) -> Vec<Session> {
        let s = self.shared.lock();
        s.order.iter().filter_map(|id| s.sessions.get(id).cloned()).collect()
    }
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
    pub fn max_live(&self) -> usize {
        self.shared.lock().max_live
    }
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.lock().sent.clone()
    }
    pub fn sms(&self) -> Vec<Sms> {
        self.shared.lock().sms.clone()
    }

    pub async fn wait_until<T>(&self, what: &str, found: impl Fn(&VoximplantDouble) -> Option<T>) -> T {
        let mut rx = self.shared.changed.subscribe();
        crate::within(what, async {
            loop {
                if let Some(t) = found(self) {
                    return t;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
    }

    /// Posts `body` to `url` with this signature header, as the scenario does.
    pub async fn send_raw(&self, url: &str, body: &str, signature: &str) -> (u16, String) {
        post_report(&self.shared.http, url, body, signature).await
    }
}

pub fn sign(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn post_report(http: &reqwest::Client, url: &str, body: &str, sig: &str) -> (u16, String) {
    let resp = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Callahead-Signature", sig)
        .body(body.to_owned())
        .send()
        .await;
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

fn vox_error(code: i64, msg: &str) -> Response {
    axum::Json(json!({"error": {"code": code, "msg": msg}})).into_response()
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn get<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Checks the service-account JWT as Voximplant does.
fn check_jwt(shared: &Shared, headers: &HeaderMap) -> Result<(), String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no Bearer token")?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}, not RS256", header.alg));
    }
    if header.kid.as_deref() != Some(shared.account.key_id.as_str()) {
        return Err("kid is not the key's id".into());
    }
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[shared.account.account_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &shared.key, &v)
        .map_err(|e| format!("JWT refused: {e}"))?
        .claims;
    if claims.exp - claims.iat > 3600 {
        return Err("exp is more than an hour after iat".into());
    }
    Ok(())
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    if let Some(session) = path.strip_prefix("/media/") {
        return media(&shared, session, &body);
    }
    let Some(method) = path.strip_prefix("/platform_api/") else {
        return (StatusCode::NOT_FOUND, "no such path").into_response();
    };
    let form = pairs(&body);
    let Some(known) = documented(method) else {
        shared.lock().violations.push(format!("{method}: not a method the adapter may use"));
        return vox_error(100, "Unknown method");
    };
    let undocumented: Vec<String> = form
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, _)| format!("{method}: parameter {k} is not documented"))
        .collect();
    if !undocumented.is_empty() {
        shared.lock().violations.extend(undocumented.clone());
        shared.bump();
        return vox_error(100, &undocumented.join("; "));
    }
    if let Err(e) = check_jwt(&shared, &headers) {
        shared.lock().violations.push(format!("{method}: {e}"));
        shared.bump();
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": 401, "msg": e}})))
            .into_response();
    }
    match method {
        "StartScenarios" => start(&shared, &form),
        "GetCallHistory" => history(&shared, &form),
        "A2PSendSms" => send_sms(&shared, &form),
        _ => {
            let s = shared.lock();
            let id = get(&form, "message_id").unwrap_or("");
            let found: Vec<Value> = s
                .sms
                .iter()
                .filter(|m| m.id.to_string() == id)
                .map(|m| json!({"message_id": m.id, "delivery_status": "DELIVERED", "status_id": "1"}))
                .collect();
            axum::Json(json!({"result": found, "total_count": found.len()})).into_response()
        }
    }
}

fn start(shared: &Arc<Shared>, form: &[(String, String)]) -> Response {
    let now = shared.clock.now();
    let data: Value =
        get(form, "script_custom_data").and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null);
    let attempt_key = data["attempt_key"].as_str().unwrap_or("").to_owned();
    let mut s = shared.lock();
    let record = |s: &mut Inner, status: u16, session: Option<String>| {
        s.starts.push(Start {
            at: Instant::now(),
            domain: now,
            attempt_key: attempt_key.clone(),
            status,
            session,
        });
    };
    if get(form, "rule_id") != Some(RULE_ID) {
        s.violations.push(format!("StartScenarios: rule_id {:?}", get(form, "rule_id")));
    }
    if s.outage.as_mut().is_some_and(|o| o.refuses(&attempt_key, now)) {
        record(&mut s, 503, None);
        drop(s);
        shared.bump();
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        record(&mut s, 429, None);
        drop(s);
        shared.bump();
        return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
    }
    if s.error_185_next > 0 {
        s.error_185_next -= 1;
        record(&mut s, 185, None);
        drop(s);
        shared.bump();
        return vox_error(185, "Too many requests");
    }
    if let Some((code, msg)) = s.refuse_starts.clone() {
        record(&mut s, 400, None);
        drop(s);
        shared.bump();
        return vox_error(code, &msg);
    }
    let to = data["to"].as_str().unwrap_or("").to_owned();
    s.next_id += 1;
    let id = (100_000 + s.next_id).to_string();
    let behaviour = s
        .behaviours
        .get(&to)
        .cloned()
        .unwrap_or(Behaviour::Answer { key: callahead_core::call::Key::new('1') });
    s.sessions.insert(
        id.clone(),
        Session {
            id: id.clone(),
            data: data.clone(),
            started: now,
            summary: None,
            duration: None,
            keys: Vec::new(),
            dialled: Vec::new(),
        },
    );
    s.order.push(id.clone());
    s.live += 1;
    s.max_live = s.max_live.max(s.live);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    s.cancels.insert(id.clone(), cancel_tx);
    let lost = s.fail_after_start_next > 0;
    if lost {
        s.fail_after_start_next -= 1;
    }
    record(&mut s, if lost { 500 } else { 200 }, Some(id.clone()));
    drop(s);
    shared.bump();
    tokio::spawn(play(shared.clone(), id.clone(), data, behaviour, cancel_rx));
    if lost {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    let base = shared.base.lock().expect("base").clone();
    axum::Json(json!({
        "result": 1,
        "call_session_history_id": id.parse::<u64>().unwrap_or(0),
        "media_session_access_url": format!("{base}/media/{id}"),
        "media_session_access_secure_url": format!("{base}/media/{id}"),
    }))
    .into_response()
}

fn history(shared: &Arc<Shared>, form: &[(String, String)]) -> Response {
    let s = shared.lock();
    let by_id = get(form, "call_session_history_id");
    let remote = get(form, "remote_number");
    let records: Vec<Value> = s
        .order
        .iter()
        .filter_map(|id| s.sessions.get(id))
        .filter(|x| by_id.is_none_or(|id| id == x.id))
        .filter(|x| remote.is_none_or(|r| x.data["to"].as_str() == Some(r)))
        .map(|x| {
            json!({
                "call_session_history_id": x.id.parse::<u64>().unwrap_or(0),
                "start_date": x.started.format("%Y-%m-%d %H:%M:%S").to_string(),
                "duration": x.duration,
                // Until the scenario sets its summary, the session's custom
                // data is what StartScenarios passed.
                "custom_data": x.summary.clone().unwrap_or_else(|| x.data.to_string()),
            })
        })
        .collect();
    axum::Json(json!({"result": records, "total_count": records.len(), "count": records.len()}))
        .into_response()
}

fn send_sms(shared: &Arc<Shared>, form: &[(String, String)]) -> Response {
    let mut s = shared.lock();
    s.next_id += 1;
    let id = s.next_id;
    let to = format!("+{}", get(form, "dst_numbers").unwrap_or(""));
    s.sms.push(Sms { id, to: to.clone(), text: get(form, "text").unwrap_or("").to_owned() });
    drop(s);
    shared.bump();
    axum::Json(json!({"result": [{"message_id": id, "dst_number": to.trim_start_matches('+')}], "failed": [], "fragments_count": 1}))
        .into_response()
}

/// The media-session URL: the scenario's AppEvents.HttpRequest handler.
fn media(shared: &Arc<Shared>, session: &str, body: &[u8]) -> Response {
    let s = shared.lock();
    let Some(x) = s.sessions.get(session) else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    if x.summary.is_some() {
        // The session terminated: nothing answers there any more.
        return (StatusCode::NOT_FOUND, "session ended").into_response();
    }
    let cmd: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if cmd["action"] == "hangup" {
        if let Some(c) = s.cancels.get(session) {
            let _ = c.send(true);
        }
    }
    axum::Json(json!({"attempt_key": x.data["attempt_key"], "finished": false})).into_response()
}

/// scenario.js's side of one session.
struct Play {
    shared: Arc<Shared>,
    id: String,
    data: Value,
    n: u64,
    cancel: watch::Receiver<bool>,
    /// Reports held back (shuffle mode): body and signature.
    held: Vec<(String, String)>,
}

impl Play {
    async fn report(&mut self, mut body: Value) {
        self.n += 1;
        body["n"] = self.n.into();
        body["ts"] = Utc::now().timestamp_millis().into();
        body["attempt_key"] = self.data["attempt_key"].clone();
        body["session_id"] = self.id.clone().into();
        let text = body.to_string();
        let sig = sign(self.data["secret"].as_str().unwrap_or(""), &text);
        let shuffle = self.shared.lock().shuffle;
        let event = body["event"].as_str().unwrap_or("");
        if shuffle && matches!(event, "ringing" | "answered") {
            self.held.push((text, sig));
            return;
        }
        let last = event == "ended";
        self.deliver(text, sig).await;
        if last {
            // The held-back ones arrive late, newest first.
            while let Some((text, sig)) = self.held.pop() {
                self.deliver(text, sig).await;
            }
        }
    }

    async fn deliver(&self, text: String, sig: String) {
        let url = self.data["callback_url"].as_str().unwrap_or("").to_owned();
        let duplicate = self.shared.lock().duplicate;
        // Like the scenario: up to three tries until a 2xx or a 403.
        for _ in 0..3 {
            let (status, _) = post_report(&self.shared.http, &url, &text, &sig).await;
            self.shared.lock().sent.push(Sent {
                url: url.clone(),
                body: text.clone(),
                signature: sig.clone(),
                status: Some(status),
            });
            self.shared.bump();
            if (200..300).contains(&status) || status == 403 {
                break;
            }
        }
        if duplicate {
            let (status, _) = post_report(&self.shared.http, &url, &text, &sig).await;
            self.shared.lock().sent.push(Sent { url, body: text, signature: sig, status: Some(status) });
            self.shared.bump();
        }
    }

    fn set(&self, f: impl FnOnce(&mut Session)) {
        if let Some(x) = self.shared.lock().sessions.get_mut(&self.id) {
            f(x);
        }
        self.shared.bump();
    }

    async fn pause(&mut self, d: Duration) -> bool {
        if *self.cancel.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.cancel.borrow(),
            _ = self.cancel.changed() => true,
        }
    }
}

async fn play(
    shared: Arc<Shared>,
    id: String,
    data: Value,
    behaviour: Behaviour,
    cancel: watch::Receiver<bool>,
) {
    let pace = shared.pace.clone();
    let to = data["to"].as_str().unwrap_or("").to_owned();
    let caller = data["caller_id"].as_str().unwrap_or("").to_owned();
    let mut p =
        Play { shared: shared.clone(), id: id.clone(), data: data.clone(), n: 0, cancel, held: Vec::new() };
    p.report(json!({"event": "started"})).await;
    if data["mode"] == "direct" {
        // scenario.js's direct mode: the courier first, then the customer.
        let courier = data["courier"].as_str().unwrap_or("").to_owned();
        p.set(|x| x.dialled.push((courier.clone(), caller.clone())));
        p.pause(pace.ring).await;
        p.set(|x| x.dialled.push((to.clone(), caller.clone())));
        p.report(json!({"event": "connected", "connected": true})).await;
        p.pause(pace.talk).await;
        {
            let mut s = shared.lock();
            s.live = s.live.saturating_sub(1);
        }
        if data["record"] == true {
            let url = format!("https://storage.voximplant.example/records/{id}.mp3");
            p.report(json!({"event": "recorded", "recording_ref": url, "duration_secs": 9})).await;
        }
        p.report(json!({"event": "ended", "talk_secs": 9})).await;
        p.set(|x| {
            x.summary = Some(format!("callahead;{};direct;1;;9", data["attempt_key"].as_str().unwrap_or("")));
            x.duration = Some(9);
        });
        shared.lock().cancels.remove(&id);
        shared.bump();
        return;
    }
    p.set(|x| x.dialled.push((to.clone(), caller.clone())));
    let behaviour = match behaviour {
        Behaviour::Random => Behaviour::Answer { key: callahead_core::call::Key::new('1') },
        b => b,
    };
    let mut key: Option<String> = None;
    let (result, answered, talk) = match behaviour {
        Behaviour::Busy => ("busy", false, None),
        Behaviour::Fail => ("failed", false, None),
        Behaviour::NoAnswer => {
            p.report(json!({"event": "ringing"})).await;
            p.pause(pace.no_answer).await;
            ("no_answer", false, None)
        }
        Behaviour::Voicemail | Behaviour::HangsUpAfter { .. } => {
            p.report(json!({"event": "ringing"})).await;
            p.pause(pace.ring).await;
            p.report(json!({"event": "answered"})).await;
            p.pause(pace.talk).await;
            ("hung_up", true, Some(3))
        }
        Behaviour::Answer { key: k } => {
            p.report(json!({"event": "ringing"})).await;
            if p.pause(pace.ring).await {
                ("no_answer", false, None)
            } else {
                p.report(json!({"event": "answered"})).await;
                let cancelled = p.pause(pace.talk).await;
                if let (Some(k), false) = (k, cancelled) {
                    let k = k.to_string();
                    p.set(|x| x.keys.push(k.clone()));
                    p.report(json!({"event": "key", "key": k})).await;
                    key = Some(k.clone());
                    let bridge = data["bridge_to"].as_str().map(str::to_owned);
                    if let (true, Some(courier)) = (k == "0", bridge) {
                        p.set(|x| x.dialled.push((courier.clone(), caller.clone())));
                        p.pause(pace.talk).await;
                        p.report(json!({"event": "bridged", "connected": true})).await;
                    }
                }
                ("hung_up", true, Some(12))
            }
        }
        Behaviour::Random => ("hung_up", true, None),
    };
    shared.ends.pass(&shared.changed).await;
    // The call is over before the scenario reports it.
    {
        let mut s = shared.lock();
        s.live = s.live.saturating_sub(1);
    }
    p.report(
        json!({"event": "ended", "result": result, "answered": answered, "key": key, "talk_secs": talk}),
    )
    .await;
    let summary = format!(
        "callahead;{};{result};{};{};{}",
        data["attempt_key"].as_str().unwrap_or(""),
        if answered { "1" } else { "0" },
        key.clone().unwrap_or_default(),
        talk.map(|t: u32| t.to_string()).unwrap_or_default()
    );
    p.set(|x| {
        x.summary = Some(summary);
        x.duration = Some(talk.unwrap_or(0));
    });
    shared.lock().cancels.remove(&id);
    shared.bump();
}
