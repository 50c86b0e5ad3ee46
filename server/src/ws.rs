//! Websocket push, `GET /v1/ws?after=SEQ` (docs/architecture.md §1, §8).
//!
//! Protocol: `Hello`, then every in-scope event with seq > `after` replayed
//! from the database in pages, then `CaughtUp`, then live events. The live
//! subscription is registered before the replay is read and live events at
//! or below the last sent seq are dropped, so there is no gap and no
//! duplicate between the two.
//!
//! A cursor beyond the log's head (the client's events are not in this log:
//! a restored or replaced database, or a client bug) is refused with an
//! `Error{cursor_ahead}` frame and a close, never accepted: accepting it
//! would hold back every live event at or below the bogus seq, silently.
//!
//! Limits: the client may send nothing but pings, pongs and close; a message
//! or frame over [`MAX_CLIENT_MESSAGE`] bytes closes the socket with 1009
//! (message too big). A socket silent for two heartbeats is closed.
//!
//! Lag policy: a connection whose bounded queue fills is dropped by the hub;
//! the connection notices when its queue runs dry, subscribes again and
//! replays from the database from its last sent seq. Lossless, bounded
//! memory, and the client sees nothing but a burst of older events (no
//! second `CaughtUp`).

use crate::api::limits::ClientIp;
use crate::api::ApiQuery;
use crate::app::AppState;
use crate::auth::{self, Principal};
use crate::connections::Slot;
use crate::error::AppError;
use crate::hub::{event_frame, Scope};
use crate::sockets::SocketGuard;
use crate::store::{queries, StoreError};
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use callahead_core::wire::{paths, ErrorCode, ServerFrame};
use callahead_core::PROTOCOL_VERSION;
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::SinkExt;
use serde::Deserialize;
use std::sync::Arc;

/// Events per replay page: big enough to amortize the query, small enough
/// to keep memory per catching-up socket modest.
const REPLAY_PAGE: usize = 500;
/// The largest message or frame a client may send (it has no reason to send
/// anything but control frames); documented in docs/limits.md.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::WS, get(websocket))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsParams {
    /// Resume after this seq; absent: live events only.
    pub after: Option<u64>,
    /// For browsers, which cannot set headers on a websocket. Never logged.
    pub access_token: Option<String>,
}

#[utoipa::path(get, path = "/v1/ws", tag = "push", params(WsParams),
    responses(
        (status = 101, description = "Switching protocols; the server then sends JSON text frames: hello, the \
            events after `after`, caught_up, then live events. A cursor beyond the head gets an error frame \
            (`cursor_ahead`) and a close. The client may send only control frames, at most 64 KiB (close 1009 \
            beyond); the server pings every heartbeat_secs (25) and closes a socket silent for two heartbeats.",
            body = ServerFrame)),
    security(("bearer" = [])))]
pub async fn websocket(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    slot: Option<Extension<Slot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    ApiQuery(q): ApiQuery<WsParams>,
) -> Result<Response, AppError> {
    let token = auth::bearer(&headers).or(q.access_token.as_deref());
    let authenticated = auth::authenticate(&state, token, ip).await?;
    let principal = authenticated.principal;
    let scope = scope_of(principal)?;
    let upgrade = upgrade.map_err(|e| {
        AppError::new(ErrorCode::ValidationFailed, format!("a websocket upgrade is required: {e}"))
    })?;
    let (courier, role) = match principal {
        Principal::Courier { id, .. } => (Some(id), "courier"),
        Principal::Supervisor { .. } => (None, "supervisor"),
        _ => (None, "admin"),
    };
    let limits = &state.connections;
    // Registered before the upgrade: a revocation from now on reaches it.
    let registration = state.sockets.open(
        authenticated.token_id,
        courier,
        role,
        limits.ws_per_token,
        limits.ws_per_courier,
    )?;
    let after = q.after;
    // Counted as connected from the upgrade until the socket ends.
    let online = match principal {
        Principal::Courier { id, depot } => Some(state.presence.join(id, depot)),
        _ => None,
    };
    Ok(upgrade
        // Small JSON frames: 4 KiB buffers instead of 128 KiB keep an idle
        // socket at a few KB of RSS (docs/architecture.md §8).
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            serve(state, socket, scope, after, &registration).await;
            drop(online);
            // The connection's place under the global cap, held until now.
            drop(slot);
            drop(registration);
        }))
}

/// Which events a token may read from the log: a courier their own, a
/// supervisor their depot's, an admin all. Integrators have webhooks.
pub fn scope_of(principal: Principal) -> Result<Scope, AppError> {
    match principal {
        Principal::Courier { id, .. } => Ok(Scope::Courier(id)),
        Principal::Supervisor { depot, .. } => Ok(Scope::Depot(depot)),
        Principal::Admin => Ok(Scope::All),
        Principal::Integrator { .. } => Err(AppError::forbidden()),
    }
}

type Sink = SplitSink<WebSocket, Message>;

/// The socket ended: the peer left, the server stops, or a send failed.
struct Closed;

impl From<axum::Error> for Closed {
    fn from(_: axum::Error) -> Self {
        Closed
    }
}

impl From<StoreError> for Closed {
    fn from(e: StoreError) -> Self {
        if !matches!(e, StoreError::Closed) {
            tracing::warn!(error = %e, "websocket replay failed");
        }
        Closed
    }
}

/// One task per socket: it owns both halves, so there is no second task
/// (or lock) to hand a close reason to, and every wake-up that finds
/// deliveries queued writes them all with one flush.
async fn serve(
    state: Arc<AppState>,
    socket: WebSocket,
    scope: Scope,
    after: Option<u64>,
    registration: &SocketGuard,
) {
    let (mut sink, mut stream) = socket.split();
    if let Ok(Some(frame)) = session(&state, &mut sink, &mut stream, scope, after, registration).await {
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
}

type Stream = futures_util::stream::SplitStream<WebSocket>;

/// The socket's life: hello, replay, caught up, then live events, pings and
/// the client's frames until one side ends it. Returns the close frame to
/// send, if the end deserves one.
async fn session(
    state: &Arc<AppState>,
    sink: &mut Sink,
    stream: &mut Stream,
    scope: Scope,
    after: Option<u64>,
    registration: &SocketGuard,
) -> Result<Option<CloseFrame>, Closed> {
    // Subscribe before reading anything from the database: whatever commits
    // after this point reaches the subscription.
    let mut sub = state.hub.subscribe(scope, state.ws_queue);
    let (head, log_id) = state
        .readers
        .read(|c| -> Result<_, StoreError> { Ok((queries::head_seq(c)?, queries::log_id(c)?)) })
        .await?;
    let heartbeat_secs = u32::try_from(state.heartbeat.as_secs().max(1)).unwrap_or(u32::MAX);
    let hello = ServerFrame::Hello {
        protocol: PROTOCOL_VERSION,
        head_seq: head,
        heartbeat_secs,
        log_id: Some(log_id),
    };
    send_frame(sink, &hello).await?;
    if let Some(cursor) = after.filter(|&a| a > head) {
        let refuse = ServerFrame::Error {
            code: ErrorCode::CursorAhead,
            message: format!(
                "your cursor {cursor} is beyond this log's head {head}: the server's database was restored or \
                 replaced; drop the cursor, fetch your route again and resume from its head_seq"
            ),
        };
        send_frame(sink, &refuse).await?;
        return Ok(Some(CloseFrame { code: close_code::NORMAL, reason: "cursor_ahead".into() }));
    }
    let mut last = after.unwrap_or(head);
    if after.is_some() {
        last = replay(state, sink, scope, last).await?;
    }
    send_frame(sink, &ServerFrame::CaughtUp { seq: last }).await?;
    let period = state.heartbeat;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The client sends nothing but pongs and close; anything counts as a
    // sign of life. Silence for two heartbeats means the phone is gone.
    let silence = state.heartbeat * 2;
    let quiet = tokio::time::sleep(silence);
    tokio::pin!(quiet);
    let revoked = registration.revoked();
    tokio::pin!(revoked);
    loop {
        tokio::select! {
            delivery = sub.rx.recv() => match delivery {
                Some(first) => {
                    // Everything already queued goes out with this one.
                    let mut wrote = false;
                    let mut next = Some(first);
                    while let Some(d) = next {
                        if d.seq > last {
                            sink.feed(Message::Text(d.frame)).await?;
                            crate::metrics::push_lag(d.published.elapsed());
                            last = d.seq;
                            wrote = true;
                        }
                        next = sub.rx.try_recv().ok();
                    }
                    if wrote {
                        sink.flush().await?;
                    }
                }
                None if state.hub.is_closed() => {
                    let bye = ServerFrame::Error {
                        code: ErrorCode::Unavailable,
                        message: "the server is stopping; reconnect and resume from your last seq".into(),
                    };
                    let _ = send_frame(sink, &bye).await;
                    // 1001: the server goes away; the app resumes elsewhere or later.
                    return Ok(Some(CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() }));
                }
                None => {
                    // We lagged and the hub dropped us: subscribe again
                    // first, then catch up from the database.
                    tracing::debug!(last, "websocket lagged; catching up from the database");
                    sub = state.hub.subscribe(scope, state.ws_queue);
                    last = replay(state, sink, scope, last).await?;
                }
            },
            received = stream.next() => match received {
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                // A message over the limit, a protocol violation: say which.
                Some(Err(e)) => return Ok(close_for(&e)),
                Some(Ok(_)) => quiet.as_mut().reset(tokio::time::Instant::now() + silence),
            },
            _ = &mut quiet => {
                tracing::debug!("websocket silent for two heartbeats; closing");
                return Ok(None);
            }
            _ = ping.tick() => sink.send(Message::Ping(Bytes::new())).await?,
            _ = &mut revoked => {
                // The token was revoked or its account deactivated: a policy
                // violation; the app must sign in again.
                return Ok(Some(CloseFrame { code: close_code::POLICY, reason: "token revoked".into() }));
            }
        }
    }
}

/// The close frame a read error deserves: 1009 for a message over the limit,
/// 1002 for a protocol violation; none when the connection itself is gone.
fn close_for(e: &axum::Error) -> Option<CloseFrame> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match source {
        Some(WsError::Capacity(_)) => Some(CloseFrame {
            code: close_code::SIZE,
            reason: format!("message too big: a client may send at most {MAX_CLIENT_MESSAGE} bytes").into(),
        }),
        Some(WsError::Protocol(p)) => {
            Some(CloseFrame { code: close_code::PROTOCOL, reason: format!("protocol error: {p}").into() })
        }
        _ => None,
    }
}

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> Result<(), Closed> {
    let text = serde_json::to_string(frame).map_err(|_| Closed)?;
    sink.send(Message::Text(text.into())).await?;
    Ok(())
}

/// Sends every in-scope event after `last` from the database; returns the
/// new last sent seq.
async fn replay(state: &Arc<AppState>, sink: &mut Sink, scope: Scope, mut last: u64) -> Result<u64, Closed> {
    loop {
        let after = last;
        let page = state.readers.read(move |c| queries::events_after(c, scope, after, REPLAY_PAGE)).await?;
        let full = page.len() == REPLAY_PAGE;
        for event in &page {
            let text = event_frame(event).map_err(|_| Closed)?;
            sink.feed(Message::Text(text.into())).await?;
            last = event.seq;
        }
        sink.flush().await?;
        if !full {
            return Ok(last);
        }
    }
}
