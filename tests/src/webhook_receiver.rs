//! The integrator's webhook receiver for the end-to-end tests: a real axum
//! server on loopback that verifies every delivery's signature the way
//! docs/webhooks.md tells integrators to, records what it acknowledged, and
//! can fail on purpose or go away and come back on the same port.

use crate::within;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use callahead_core::wire::Event;
use callahead_server::webhooks::signature;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, watch};

/// One delivery the receiver acknowledged.
#[derive(Debug, Clone)]
pub struct Got {
    pub event: Event,
    pub header_seq: u64,
    /// The event's link in the audit chain (`Callahead-Audit-Hash`).
    pub audit_hash: String,
    pub verified: bool,
    pub signature: String,
    pub body: Bytes,
}

#[derive(Default)]
pub struct Inbox {
    pub secret: String,
    /// Answer 500 to this many more deliveries.
    pub fail_next: u32,
    /// Answer 500 to everything.
    pub failing: bool,
    pub refused: u32,
    pub acked: Vec<Got>,
}

impl Inbox {
    pub fn acked_seqs(&self) -> BTreeSet<u64> {
        self.acked.iter().map(|g| g.event.seq).collect()
    }
}

struct Shared {
    inbox: Mutex<Inbox>,
    changed: watch::Sender<u64>,
}

/// The integrator's receiver: an axum server that verifies every signature
/// and can fail on purpose, be shut down (connection refused) and come
/// back on the same port.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let event: Event = serde_json::from_slice(&body).expect("the body is a wire Event");
    let header_seq: u64 = header(signature::SEQ_HEADER).parse().expect("the seq header");
    let status = {
        let mut inbox = shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if inbox.failing || inbox.fail_next > 0 {
            inbox.fail_next = inbox.fail_next.saturating_sub(1);
            inbox.refused += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            let signature = header(signature::HEADER);
            let verified = verifies(&signature, &body, &inbox.secret);
            let audit_hash = header(signature::AUDIT_HEADER);
            inbox.acked.push(Got { event, header_seq, audit_hash, verified, signature, body });
            StatusCode::NO_CONTENT
        }
    };
    shared.changed.send_modify(|n| *n += 1);
    status
}

/// Whether `header` signs `body` with `secret`, now (docs/webhooks.md).
pub fn verifies(header: &str, body: &[u8], secret: &str) -> bool {
    let now = chrono::Utc::now().timestamp();
    signature::verify(header, secret, body, now, signature::TOLERANCE_SECS).is_ok()
}

impl Receiver {
    pub async fn start(secret: &str) -> Receiver {
        let inbox = Inbox { secret: secret.into(), ..Inbox::default() };
        let shared = Arc::new(Shared { inbox: Mutex::new(inbox), changed: watch::channel(0).0 });
        let mut r = Receiver { shared, addr: "127.0.0.1:0".parse().expect("addr"), running: None };
        r.up().await;
        r
    }

    /// Listens (again) on the same port.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("receiver binds");
        self.addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/hooks", post(receive)).with_state(self.shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            serve.await.expect("receiver serves");
        });
        self.running = Some((stop, task));
    }

    /// Stops listening: further deliveries get "connection refused".
    pub async fn down(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        let _ = stop.send(());
        within("the receiver to close its connections", task).await.expect("receiver task");
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn wait_until(&self, what: &str, pred: impl Fn(&Inbox) -> bool) {
        let mut changed = self.shared.changed.subscribe();
        within(what, async {
            while !pred(&self.inbox()) {
                changed.changed().await.expect("receiver alive");
            }
        })
        .await
    }
}
