//! A Twilio double: a real HTTP server on loopback that implements the part
//! of Twilio's REST API the adapter uses (Create/Fetch/Update/List Call,
//! Create/Fetch/List Message) and plays Twilio's side of each call: status
//! callbacks signed as Twilio signs them (optionally twice and out of
//! order), the TwiML fetch on answer, key presses into `<Gather>`, the
//! `<Dial>` to the courier, SMS receipts. It fails on request with 503
//! bursts and 429s, and checks every request against Twilio's own OpenAPI
//! document: anything Twilio does not document is a violation the test sees.
//!
//! Customers are scripted by phone number with the simulator's
//! [`Behaviour`]; an unscripted customer answers and presses 1.

pub mod openapi;

use crate::double::{Gate, Outage};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use callahead_core::clock::SharedClock;
use callahead_server::providers::simulator::Behaviour;
use callahead_server::providers::twilio::signature;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "twilio-double-auth-token-0123456789";
pub const API_KEY_SID: &str = "SK00000000000000000000000000000001";
pub const API_KEY_SECRET: &str = "twilio-double-api-key-secret-987654";
pub const FROM_NUMBER: &str = "+15005550006";

/// Real-time pacing of a simulated call.
#[derive(Debug, Clone)]
pub struct Pace {
    pub ring: Duration,
    pub talk: Duration,
    /// How long a customer who never answers lets it ring.
    pub no_answer: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            ring: Duration::from_millis(20),
            talk: Duration::from_millis(40),
            no_answer: Duration::from_millis(60),
        }
    }
}

/// One Create Call the double received.
#[derive(Debug, Clone)]
pub struct Create {
    pub at: Instant,
    /// Domain time (the server's clock) when it came.
    pub domain: DateTime<Utc>,
    pub attempt_key: String,
    pub to: String,
    /// What the double answered: 201, 429, 503, 500…
    pub status: u16,
    pub sid: Option<String>,
}

/// One call the double carried.
#[derive(Debug, Clone)]
pub struct CallRec {
    pub sid: String,
    pub attempt_key: String,
    pub to: String,
    pub from: String,
    pub status: String,
    pub answered_by: Option<String>,
    pub duration: Option<u32>,
    pub created: DateTime<Utc>,
    pub keys: Vec<String>,
    /// `<Dial>`: the number and the caller id it showed.
    pub dialled: Vec<(String, String)>,
    pub machine_detection: bool,
    /// Twilio's side of the call is over: its last status callback went out.
    pub over: bool,
}

/// A callback the double sent, kept so tests can replay or forge it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub url: String,
    pub form: Vec<(String, String)>,
    pub token: String,
    pub signature: String,
    pub status: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Sms {
    pub sid: String,
    pub to: String,
    pub body: String,
    pub status: String,
}

#[derive(Default)]
struct Inner {
    behaviours: HashMap<String, Behaviour>,
    invalid_numbers: Vec<String>,
    calls: HashMap<String, CallRec>,
    order: Vec<String>,
    creates: Vec<Create>,
    violations: Vec<String>,
    outage: Option<Outage>,
    rate_limit_next: u32,
    fail_after_create_next: u32,
    duplicate: bool,
    shuffle: bool,
    live: usize,
    max_live: usize,
    sent: Vec<Sent>,
    sms: Vec<Sms>,
    cancels: HashMap<String, watch::Sender<bool>>,
    next_sid: u64,
    recordings: Vec<String>,
}

struct Shared {
    spec: openapi::Spec,
    clock: SharedClock,
    pace: Pace,
    http: reqwest::Client,
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

pub struct TwilioDouble {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TwilioDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TwilioDouble {
    /// Starts on an ephemeral loopback port. `clock` is the server's: an
    /// outage lasts domain time.
    pub async fn start(clock: SharedClock, pace: Pace) -> TwilioDouble {
        let shared = Arc::new(Shared {
            spec: openapi::Spec::load(),
            clock,
            pace,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client"),
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
            ends: Gate::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TwilioDouble { addr, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, phone: &str, behaviour: Behaviour) {
        self.shared.lock().behaviours.insert(phone.to_owned(), behaviour);
    }

    /// Twilio refuses this number for good (error 21211).
    pub fn invalid_number(&self, phone: &str) {
        self.shared.lock().invalid_numbers.push(phone.to_owned());
    }

    /// 503 on every Create Call from the next one until `outage` is over.
    pub fn outage(&self, outage: Outage) {
        self.shared.lock().outage = Some(outage);
    }

    /// While on, every call waits just before it ends (its final status
    /// not yet set nor reported) until turned off.
    pub fn hold_ends(&self, on: bool) {
        self.shared.ends.set_shut(on);
    }

    /// Calls waiting to end.
    pub fn held(&self) -> usize {
        self.shared.ends.held()
    }

    /// The next `n` Create Calls get 429 (Twilio error 20429).
    pub fn rate_limit_next(&self, n: u32) {
        self.shared.lock().rate_limit_next = n;
    }

    /// The next `n` Create Calls create the call but answer 500: the
    /// adapter cannot know the call exists.
    pub fn fail_after_create_next(&self, n: u32) {
        self.shared.lock().fail_after_create_next = n;
    }

    /// Every status callback twice (with the same idempotency token).
    pub fn duplicate_callbacks(&self, on: bool) {
        self.shared.lock().duplicate = on;
    }

    /// Status callbacks out of order: ringing and answered after completed.
    pub fn shuffle_callbacks(&self, on: bool) {
        self.shared.lock().shuffle = on;
    }

    pub fn creates(&self) -> Vec<Create> {
        self.shared.lock().creates.clone()
    }

    /// Calls placed, in creation order.
    pub fn calls(&self) -> Vec<CallRec> {
        let s = self.shared.lock();
        s.order.iter().filter_map(|sid| s.calls.get(sid).cloned()).collect()
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

    /// Recordings made (RecordingSid), in order.
    pub fn recordings(&self) -> Vec<String> {
        self.shared.lock().recordings.clone()
    }

    /// Waits until `found` finds something in the double's state.
    pub async fn wait_until<T>(&self, what: &str, found: impl Fn(&TwilioDouble) -> Option<T>) -> T {
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

    /// Sends a request as Twilio would: form-encoded and signed with
    /// `token` (the auth token, or a wrong one to forge it).
    pub async fn send_signed(
        &self,
        url: &str,
        form: &[(String, String)],
        idempotency: &str,
        token: &str,
    ) -> (u16, String) {
        let sig = signature::compute(token, url, form);
        send(&self.shared.http, url, form, idempotency, &sig).await
    }

    /// Sends exactly these bytes (a replay or a tampered copy).
    pub async fn send_raw(
        &self,
        url: &str,
        form: &[(String, String)],
        idempotency: &str,
        sig: &str,
    ) -> (u16, String) {
        send(&self.shared.http, url, form, idempotency, sig).await
    }
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    form: &[(String, String)],
    token: &str,
    sig: &str,
) -> (u16, String) {
    let resp = http
        .post(url)
        .header("X-Twilio-Signature", sig)
        .header("I-Twilio-Idempotency-Token", token)
        .form(form)
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

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, axum::Json(json!({"code": code, "message": message, "status": status.as_u16(), "more_info": format!("https://www.twilio.com/docs/errors/{code}")})))
        .into_response()
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn get<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn authorized(headers: &HeaderMap) -> bool {
    let Some(basic) =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic) else { return false };
    let text = String::from_utf8_lossy(&decoded);
    text == format!("{API_KEY_SID}:{API_KEY_SECRET}") || text == format!("{ACCOUNT_SID}:{AUTH_TOKEN}")
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn call_json(c: &CallRec) -> serde_json::Value {
    json!({
        "sid": c.sid, "account_sid": ACCOUNT_SID, "to": c.to, "from": c.from, "status": c.status,
        "duration": c.duration.map(|d| d.to_string()), "answered_by": c.answered_by,
        "date_created": rfc2822(c.created), "direction": "outbound-api", "api_version": "2010-04-01",
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().map(|q| pairs(q.as_bytes())).unwrap_or_default();
    let form = if method == Method::POST { pairs(&body) } else { Vec::new() };
    let violations = shared.spec.check(method.as_str(), &path, &query, &form);
    if !violations.is_empty() {
        shared.lock().violations.extend(violations.clone());
        shared.bump();
        return twilio_error(StatusCode::BAD_REQUEST, 21000, &violations.join("; "));
    }
    if !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let prefix = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found");
    };
    match (method.as_str(), rest) {
        ("POST", "Calls.json") => create_call(&shared, &form),
        ("GET", "Calls.json") => {
            let s = shared.lock();
            let to = get(&query, "To");
            let calls: Vec<_> = s
                .order
                .iter()
                .filter_map(|sid| s.calls.get(sid))
                .filter(|c| to.is_none_or(|t| t == c.to))
                .rev()
                .map(call_json)
                .collect();
            axum::Json(json!({"calls": calls, "page": 0, "page_size": 50})).into_response()
        }
        ("POST", "Messages.json") => create_message(&shared, &form),
        ("GET", "Messages.json") => {
            let s = shared.lock();
            let to = get(&query, "To");
            let msgs: Vec<_> = s
                .sms
                .iter()
                .filter(|m| to.is_none_or(|t| t == m.to))
                .map(|m| json!({"sid": m.sid, "status": m.status, "body": m.body, "to": m.to}))
                .collect();
            axum::Json(json!({"messages": msgs})).into_response()
        }
        (m, r) if r.starts_with("Calls/") && r.ends_with(".json") => {
            let sid = &r["Calls/".len()..r.len() - ".json".len()];
            let s = shared.lock();
            let Some(call) = s.calls.get(sid).cloned() else {
                return twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found");
            };
            if m == "POST" {
                if let Some(cancel) = s.cancels.get(sid) {
                    let _ = cancel.send(true);
                }
            }
            axum::Json(call_json(&call)).into_response()
        }
        ("GET", r) if r.starts_with("Messages/") => {
            let sid = r.trim_start_matches("Messages/").trim_end_matches(".json");
            let s = shared.lock();
            match s.sms.iter().find(|m| m.sid == sid) {
                Some(m) => {
                    axum::Json(json!({"sid": m.sid, "status": m.status, "body": m.body})).into_response()
                }
                None => twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found"),
            }
        }
        _ => twilio_error(StatusCode::NOT_FOUND, 20404, "The requested resource was not found"),
    }
}

fn new_sid(s: &mut Inner, prefix: &str) -> String {
    s.next_sid += 1;
    format!("{prefix}{:032x}", s.next_sid)
}

fn create_call(shared: &Arc<Shared>, form: &[(String, String)]) -> Response {
    let to = get(form, "To").unwrap_or("").to_owned();
    let url = get(form, "Url").unwrap_or("").to_owned();
    let attempt_key = url
        .split("/calls/")
        .nth(1)
        .or_else(|| url.split("/direct/").nth(1))
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
        .to_owned();
    let now = shared.clock.now();
    let mut s = shared.lock();
    let record = |s: &mut Inner, status: u16, sid: Option<String>| {
        s.creates.push(Create {
            at: Instant::now(),
            domain: now,
            attempt_key: attempt_key.clone(),
            to: to.clone(),
            status,
            sid,
        });
    };
    if s.outage.as_mut().is_some_and(|o| o.refuses(&attempt_key, now)) {
        record(&mut s, 503, None);
        drop(s);
        shared.bump();
        return twilio_error(StatusCode::SERVICE_UNAVAILABLE, 20503, "Service Unavailable");
    }
    if s.rate_limit_next > 0 {
        s.rate_limit_next -= 1;
        record(&mut s, 429, None);
        drop(s);
        shared.bump();
        return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
    }
    if s.invalid_numbers.contains(&to) {
        record(&mut s, 400, None);
        drop(s);
        shared.bump();
        return twilio_error(StatusCode::BAD_REQUEST, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    let sid = new_sid(&mut s, "CA");
    let call = CallRec {
        sid: sid.clone(),
        attempt_key: attempt_key.clone(),
        to: to.clone(),
        from: get(form, "From").unwrap_or("").to_owned(),
        status: "queued".into(),
        answered_by: None,
        duration: None,
        created: now,
        keys: Vec::new(),
        dialled: Vec::new(),
        machine_detection: get(form, "MachineDetection").is_some(),
        over: false,
    };
    let json = call_json(&call);
    s.calls.insert(sid.clone(), call);
    s.order.push(sid.clone());
    s.live += 1;
    s.max_live = s.max_live.max(s.live);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    s.cancels.insert(sid.clone(), cancel_tx);
    let lost = s.fail_after_create_next > 0;
    if lost {
        s.fail_after_create_next -= 1;
    }
    record(&mut s, if lost { 500 } else { 201 }, Some(sid.clone()));
    let behaviour = s
        .behaviours
        .get(&to)
        .cloned()
        .unwrap_or(Behaviour::Answer { key: callahead_core::call::Key::new('1') });
    drop(s);
    shared.bump();
    let status_url = get(form, "StatusCallback").unwrap_or("").to_owned();
    tokio::spawn(play(shared.clone(), sid, url, status_url, behaviour, cancel_rx));
    if lost {
        return twilio_error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
    }
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

fn create_message(shared: &Arc<Shared>, form: &[(String, String)]) -> Response {
    let mut s = shared.lock();
    let sid = new_sid(&mut s, "SM");
    let sms = Sms {
        sid: sid.clone(),
        to: get(form, "To").unwrap_or("").to_owned(),
        body: get(form, "Body").unwrap_or("").to_owned(),
        status: "queued".into(),
    };
    let json = json!({"sid": sid, "status": "queued", "to": sms.to, "body": sms.body});
    let (to, callback) = (sms.to.clone(), get(form, "StatusCallback").map(str::to_owned));
    s.sms.push(sms);
    drop(s);
    shared.bump();
    let shared = shared.clone();
    tokio::spawn(async move {
        for status in ["sent", "delivered"] {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(m) = shared.lock().sms.iter_mut().find(|m| m.sid == sid) {
                m.status = status.into();
            }
            if let Some(url) = &callback {
                let form = vec![
                    ("AccountSid".to_owned(), ACCOUNT_SID.to_owned()),
                    ("MessageSid".to_owned(), sid.clone()),
                    ("MessageStatus".to_owned(), status.to_owned()),
                    ("SmsStatus".to_owned(), status.to_owned()),
                    ("To".to_owned(), to.clone()),
                    ("From".to_owned(), FROM_NUMBER.to_owned()),
                ];
                callback_once(&shared, url, form, None).await;
            }
            shared.bump();
        }
    });
    (StatusCode::CREATED, axum::Json(json)).into_response()
}

/// One signed request to the server; kept in `sent`.
async fn callback_once(
    shared: &Arc<Shared>,
    url: &str,
    form: Vec<(String, String)>,
    token: Option<String>,
) -> Option<String> {
    let token = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let sig = signature::compute(AUTH_TOKEN, url, &form);
    let resp = shared
        .http
        .post(url)
        .header("X-Twilio-Signature", &sig)
        .header("I-Twilio-Idempotency-Token", &token)
        .form(&form)
        .send()
        .await;
    let (status, body) = match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            (Some(status), r.text().await.ok().filter(|_| (200..300).contains(&status)))
        }
        Err(_) => (None, None),
    };
    shared.lock().sent.push(Sent { url: url.to_owned(), form, token, signature: sig, status });
    shared.bump();
    body
}

/// Twilio's side of one call.
struct Play {
    shared: Arc<Shared>,
    sid: String,
    status_url: String,
    seq: u32,
    /// Status callbacks held back (shuffle mode).
    held: Vec<Vec<(String, String)>>,
    cancel: watch::Receiver<bool>,
}

impl Play {
    fn base_form(&self, status: &str) -> Vec<(String, String)> {
        let s = self.shared.lock();
        let c = &s.calls[&self.sid];
        let mut form = vec![
            ("AccountSid".to_owned(), ACCOUNT_SID.to_owned()),
            ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
            ("CallSid".to_owned(), self.sid.clone()),
            ("CallStatus".to_owned(), status.to_owned()),
            ("Direction".to_owned(), "outbound-api".to_owned()),
            ("From".to_owned(), c.from.clone()),
            ("To".to_owned(), c.to.clone()),
        ];
        if let Some(a) = &c.answered_by {
            form.push(("AnsweredBy".to_owned(), a.clone()));
        }
        form
    }

    fn set(&self, f: impl FnOnce(&mut CallRec)) {
        if let Some(c) = self.shared.lock().calls.get_mut(&self.sid) {
            f(c);
        }
        self.shared.bump();
    }

    async fn status(&mut self, status: &str, duration: Option<u32>) {
        self.set(|c| {
            c.status = status.to_owned();
            if duration.is_some() {
                c.duration = duration;
            }
        });
        let mut form = self.base_form(status);
        form.push(("SequenceNumber".to_owned(), self.seq.to_string()));
        form.push(("CallbackSource".to_owned(), "call-progress-events".to_owned()));
        form.push(("Timestamp".to_owned(), rfc2822(Utc::now())));
        if let Some(d) = duration {
            form.push(("CallDuration".to_owned(), d.to_string()));
        }
        self.seq += 1;
        let (shuffle, duplicate) = {
            let s = self.shared.lock();
            (s.shuffle, s.duplicate)
        };
        if shuffle && matches!(status, "ringing" | "in-progress") {
            self.held.push(form);
            return;
        }
        self.deliver(form.clone(), duplicate).await;
        if status == "completed"
            || status == "canceled"
            || status == "busy"
            || status == "no-answer"
            || status == "failed"
        {
            // The held-back ones arrive late, newest first.
            while let Some(late) = self.held.pop() {
                self.deliver(late, duplicate).await;
            }
        }
    }

    async fn deliver(&self, form: Vec<(String, String)>, duplicate: bool) {
        let token = uuid::Uuid::new_v4().to_string();
        callback_once(&self.shared, &self.status_url, form.clone(), Some(token.clone())).await;
        if duplicate {
            callback_once(&self.shared, &self.status_url, form, Some(token)).await;
        }
    }

    /// A TwiML request (answer, gather, dial); `None` if the server did not
    /// answer with TwiML (then Twilio says "an application error" and hangs up).
    async fn fetch(&self, url: &str, extra: &[(&str, String)]) -> Option<String> {
        let mut form = self.base_form("in-progress");
        form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        callback_once(&self.shared, url, form, None).await
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    async fn pause(&mut self, d: Duration) -> bool {
        if self.cancelled() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.cancelled(),
            _ = self.cancel.changed() => true,
        }
    }

    /// Follows TwiML like Twilio: `<Gather>` takes the customer's key (if
    /// they press one), `<Dial>` rings the courier (who answers), `<Hangup>`
    /// ends. Returns whether the call went on to a `<Dial>`.
    async fn run_twiml(&mut self, xml: String, mut key: Option<char>, depth: u32) {
        if depth > 6 {
            return;
        }
        let Ok(doc) = roxmltree::Document::parse(&xml) else { return };
        let verbs: Vec<(String, HashMap<String, String>, String)> = doc
            .root_element()
            .children()
            .filter(|n| n.is_element())
            .map(|n| {
                let attrs = n.attributes().map(|a| (a.name().to_owned(), a.value().to_owned())).collect();
                let text =
                    n.descendants().filter(|d| d.is_text()).filter_map(|d| d.text()).collect::<String>();
                (n.tag_name().name().to_owned(), attrs, text)
            })
            .collect();
        for (verb, attrs, text) in verbs {
            match verb.as_str() {
                "Gather" => {
                    let Some(k) = key.take() else { continue };
                    self.set(|c| c.keys.push(k.to_string()));
                    let action = attrs.get("action").cloned().unwrap_or_default();
                    if let Some(next) = self.fetch(&action, &[("Digits", k.to_string())]).await {
                        Box::pin(self.run_twiml(next, None, depth + 1)).await;
                    }
                    return;
                }
                "Dial" => {
                    let caller_id = attrs.get("callerId").cloned().unwrap_or_default();
                    self.set(|c| c.dialled.push((text.clone(), caller_id)));
                    self.pause(self.shared.pace.talk).await;
                    if let (Some("record-from-answer-dual"), Some(url)) =
                        (attrs.get("record").map(String::as_str), attrs.get("recordingStatusCallback"))
                    {
                        let rec = {
                            let mut s = self.shared.lock();
                            let rec = new_sid(&mut s, "RE");
                            s.recordings.push(rec.clone());
                            rec
                        };
                        let form = vec![
                            ("AccountSid".to_owned(), ACCOUNT_SID.to_owned()),
                            ("CallSid".to_owned(), self.sid.clone()),
                            ("RecordingSid".to_owned(), rec.clone()),
                            ("RecordingStatus".to_owned(), "completed".to_owned()),
                            ("RecordingDuration".to_owned(), "4".to_owned()),
                            ("RecordingChannels".to_owned(), "2".to_owned()),
                            ("RecordingUrl".to_owned(), format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rec}")),
                        ];
                        callback_once(&self.shared, url, form, None).await;
                    }
                    let action = attrs.get("action").cloned().unwrap_or_default();
                    let extra =
                        [("DialCallStatus", "completed".to_owned()), ("DialCallDuration", "4".to_owned())];
                    if let Some(next) = self.fetch(&action, &extra).await {
                        Box::pin(self.run_twiml(next, None, depth + 1)).await;
                    }
                    return;
                }
                "Hangup" => return,
                _ => {}
            }
        }
    }
}

async fn play(
    shared: Arc<Shared>,
    sid: String,
    answer_url: String,
    status_url: String,
    behaviour: Behaviour,
    cancel: watch::Receiver<bool>,
) {
    let behaviour = match behaviour {
        Behaviour::Random => Behaviour::Answer { key: callahead_core::call::Key::new('1') },
        b => b,
    };
    let pace = shared.pace.clone();
    let amd = shared.lock().calls.get(&sid).is_some_and(|c| c.machine_detection);
    let mut p =
        Play { shared: shared.clone(), sid: sid.clone(), status_url, seq: 0, held: Vec::new(), cancel };
    p.status("initiated", None).await;
    let end = match behaviour {
        Behaviour::Busy => ("busy", None),
        Behaviour::Fail => ("failed", None),
        Behaviour::NoAnswer => {
            p.status("ringing", None).await;
            if p.pause(pace.no_answer).await {
                ("canceled", None)
            } else {
                ("no-answer", None)
            }
        }
        Behaviour::Voicemail => {
            p.status("ringing", None).await;
            p.pause(pace.ring).await;
            if amd {
                p.set(|c| c.answered_by = Some("machine_end_beep".into()));
            }
            p.status("in-progress", None).await;
            if let Some(xml) = p.fetch(&answer_url, &[]).await {
                p.run_twiml(xml, None, 0).await;
            }
            ("completed", Some(3))
        }
        Behaviour::Answer { key } => {
            p.status("ringing", None).await;
            if p.pause(pace.ring).await {
                ("canceled", None)
            } else {
                if amd {
                    p.set(|c| c.answered_by = Some("human".into()));
                }
                p.status("in-progress", None).await;
                let extra: Vec<(&str, String)> = Vec::new();
                if let Some(xml) = p.fetch(&answer_url, &extra).await {
                    p.pause(pace.talk).await;
                    p.run_twiml(xml, key.map(|k| k.as_char()), 0).await;
                }
                ("completed", Some(12))
            }
        }
        Behaviour::HangsUpAfter { secs } => {
            p.status("ringing", None).await;
            p.pause(pace.ring).await;
            p.status("in-progress", None).await;
            p.fetch(&answer_url, &[]).await;
            p.pause(pace.talk).await;
            ("completed", Some(secs))
        }
        Behaviour::Random => ("completed", None),
    };
    shared.ends.pass(&shared.changed).await;
    // The call is over before Twilio reports it.
    {
        let mut s = shared.lock();
        s.live = s.live.saturating_sub(1);
    }
    p.status(end.0, end.1).await;
    p.set(|c| c.over = true);
    shared.lock().cancels.remove(&sid);
    shared.bump();
}
