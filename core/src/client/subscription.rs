//! The one task that owns the websocket: connect with the stored cursor,
//! apply each event and advance the cursor in one transaction, report the
//! connection state, reconnect with backoff and jitter on any drop.

use super::backoff::Backoff;
use super::error::{Error, Result};
use super::{ConnectionState, Shared};
use crate::wire::{paths, ErrorCode, Event, EventKind, ServerFrame};
use crate::PROTOCOL_VERSION;
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Frames are small JSON; tungstenite's 128 KiB default read buffer would
/// cost more memory than everything else the client holds.
const READ_BUFFER: usize = 4 * 1024;
const MAX_MESSAGE: usize = 1024 * 1024;

pub(crate) async fn run(shared: Arc<Shared>) {
    tokio::select! {
        _ = shared.closing() => {}
        _ = connect_loop(&shared) => {}
    }
}

async fn connect_loop(shared: &Arc<Shared>) {
    let mut backoff = Backoff::new(shared.config.reconnect_min, shared.config.reconnect_max);
    // A fresh client has nothing to resume from: its first route fetch is the
    // starting point (the route covers every event up to its `head_seq`), so
    // it connects after that fetch and replays from there.
    loop {
        match shared.db.has_synced() {
            Ok(true) => break,
            Ok(false) => shared.ws_wake.notified().await,
            Err(e) => {
                tracing::error!("websocket: reading the cursor failed: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    backoff.reset();
    loop {
        shared.set_connection(ConnectionState::Connecting);
        let ended = match resync_if_needed(shared).await {
            Ok(()) => session(shared, &mut backoff).await,
            Err(e) => Err(e),
        };
        match ended {
            Ok(()) => tracing::debug!("websocket closed by the server"),
            Err(Error::HistoryChanged(why)) => {
                // Not a network problem: start over from a fresh route at once.
                tracing::warn!("the server's event log changed ({why}); syncing the route again");
                if let Err(e) = shared.db.forget_history() {
                    tracing::error!("websocket: forgetting the old log failed: {e}");
                }
                continue;
            }
            Err(e) => {
                if is_unauthorized(&e) {
                    backoff.jump_to_max();
                }
                tracing::debug!("websocket dropped: {e}");
            }
        }
        shared.set_connection(ConnectionState::Offline);
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.ws_wake.notified() => {}
        }
    }
}

/// After the server's log changed under this phone: fetch the route again
/// (it replaces the cached calls and sets the cursor to its head) before any
/// resume, so no event of the new log is skipped as "already seen".
async fn resync_if_needed(shared: &Arc<Shared>) -> Result<()> {
    if !shared.db.needs_resync()? {
        return Ok(());
    }
    match shared.db.current_route_date()? {
        Some(date) => shared.sync_route(date).await.map(drop),
        // No route to fetch: there is nothing cached to replace either.
        None => shared.db.resume_live(),
    }
}

/// `ws://host/v1/ws?after=N`, from the HTTP base URL. No `after` (cursor 0:
/// the synced route was empty and no event was ever seen) means live only.
pub(crate) fn ws_url(server_url: &str, cursor: u64) -> String {
    let base = server_url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    if cursor > 0 {
        format!("{base}{}?after={cursor}", paths::WS)
    } else {
        format!("{base}{}", paths::WS)
    }
}

/// One connection, from handshake to drop.
async fn session(shared: &Arc<Shared>, backoff: &mut Backoff) -> Result<()> {
    let config = &shared.config;
    let cursor = shared.db.cursor()?;
    let mut request = ws_url(&config.server_url, cursor).into_client_request()?;
    let token = shared.http.fresh_token().await?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::InvalidInput("the token is not a valid header value".into()))?;
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let ws_config =
        WebSocketConfig::default().read_buffer_size(READ_BUFFER).max_message_size(Some(MAX_MESSAGE));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    let connected = tokio::time::timeout(config.heartbeat_timeout, connect)
        .await
        .map_err(|_| Error::Timeout("websocket handshake"))?;
    let ws = match connected {
        Ok((ws, _)) => ws,
        // Refused as expired: refresh, and the next attempt carries the new token.
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status() == 401 => {
            let expired = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<crate::wire::ErrorBody>(b).ok())
                .is_some_and(|b| b.code == crate::wire::ErrorCode::TokenExpired);
            if expired && shared.http.refresh_after_expiry(&token).await? {
                backoff.reset();
            }
            return Err(Error::Status { status: 401, body: None });
        }
        Err(e) => return Err(e.into()),
    };
    pump(shared, ws, cursor == 0, backoff).await
}

/// Reads frames until the connection ends: generic over the stream so tests
/// can feed frames without a network.
async fn pump<S>(shared: &Arc<Shared>, mut ws: S, live_only: bool, backoff: &mut Backoff) -> Result<()>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let heartbeat_timeout = shared.config.heartbeat_timeout;
    loop {
        let message = match tokio::time::timeout(heartbeat_timeout, ws.next()).await {
            Err(_) => return Err(Error::Timeout("no frame within the heartbeat timeout")),
            Ok(None) => return Ok(()),
            Ok(Some(m)) => m?,
        };
        let frame = match message {
            Message::Text(text) => serde_json::from_str::<ServerFrame>(text.as_str())?,
            Message::Close(_) => return Ok(()),
            // Pings are answered by tungstenite; any frame proves liveness.
            _ => continue,
        };
        match frame {
            ServerFrame::Hello { protocol, head_seq, heartbeat_secs, log_id } => {
                if let Some(id) = log_id.as_deref() {
                    if !shared.db.same_log(id)? {
                        return Err(Error::HistoryChanged(format!("the server's log is now {id}")));
                    }
                }
                if protocol != PROTOCOL_VERSION {
                    tracing::warn!(
                        protocol,
                        ours = PROTOCOL_VERSION,
                        "server speaks another protocol version"
                    );
                }
                if Duration::from_secs(u64::from(heartbeat_secs)) >= heartbeat_timeout {
                    tracing::warn!(
                        heartbeat_secs,
                        ?heartbeat_timeout,
                        "the heartbeat timeout is shorter than the server's heartbeat; expect reconnects"
                    );
                }
                tracing::debug!(head_seq, live_only, "websocket open");
                if live_only {
                    // Nothing to replay: everything before is in the route.
                    online(shared, backoff);
                }
            }
            ServerFrame::Event { event } => apply(shared, &event)?,
            ServerFrame::CaughtUp { seq } => {
                // Everything up to `seq` that this courier may see was sent and
                // applied; skipping the rest saves the server a rescan next time.
                shared.db.advance_cursor(seq)?;
                online(shared, backoff);
            }
            ServerFrame::Error { code: ErrorCode::CursorAhead, message } => {
                return Err(Error::HistoryChanged(message));
            }
            ServerFrame::Error { code, message } => {
                tracing::warn!(?code, "server closes the websocket: {message}");
                return Ok(());
            }
        }
    }
}

fn online(shared: &Arc<Shared>, backoff: &mut Backoff) {
    backoff.reset();
    shared.set_connection(ConnectionState::Online);
    // Taps that waited for the network go now, not at the end of their backoff.
    shared.dispatch_wake.notify_one();
}

/// Applies one event (once), then tells the app and whoever waits on it.
fn apply(shared: &Arc<Shared>, event: &Event) -> Result<()> {
    let Some(applied) = shared.db.apply_event(event)? else {
        return Ok(());
    };
    shared.listener.on_event(event);
    shared.notify_stop(applied.stop);
    // A new order, window or chain changes every ETA after it: automatic
    // call-ahead looks again now rather than at its next check.
    let replanned = applied.reordered.is_some()
        || matches!(event.kind, EventKind::RoutePlanned { .. } | EventKind::StopRescheduled { .. });
    for state in applied.reordered.into_iter().flatten() {
        shared.listener.on_stop_changed(state);
    }
    if replanned {
        shared.auto_wake.notify_one();
    }
    if applied.call_ended {
        shared.dispatch_wake.notify_one();
    }
    shared.cancel_withdrawn(applied.withdrawn_call.into_iter().collect());
    if let Some(date) = applied.refetch_route {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = shared.sync_route(date).await {
                tracing::warn!(%date, "refetching the replaced route failed: {e}");
            }
        });
    }
    Ok(())
}

fn is_unauthorized(e: &Error) -> bool {
    matches!(e, Error::WebSocket(ws) if matches!(&**ws, WsError::Http(r) if r.status().as_u16() == 401))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::db::tests::{call, event, route, stop};
    use crate::client::{ClientConfig, ClientListener, StopState};
    use crate::wire::EventKind;
    use crate::{CallStatus, Outcome, StopId};
    use futures_util::stream;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen {
        events: Mutex<Vec<u64>>,
        stops: Mutex<Vec<StopState>>,
        connection: Mutex<Vec<ConnectionState>>,
    }

    impl ClientListener for Seen {
        fn on_stop_changed(&self, stop: StopState) {
            self.stops.lock().unwrap_or_else(|e| e.into_inner()).push(stop);
        }
        fn on_connection_changed(&self, state: ConnectionState) {
            self.connection.lock().unwrap_or_else(|e| e.into_inner()).push(state);
        }
        fn on_event(&self, event: &Event) {
            self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event.seq);
        }
    }

    fn frame(f: ServerFrame) -> Result<Message, WsError> {
        Ok(Message::text(serde_json::to_string(&f).expect("serializes")))
    }

    fn shared(dir: &tempfile::TempDir, seen: Arc<Seen>) -> Arc<Shared> {
        let mut config = ClientConfig::new(dir.path().join("client.db"), "http://127.0.0.1:9", "token");
        config.heartbeat_timeout = Duration::from_secs(60);
        let shared = Shared::open(config, seen).expect("opens");
        shared.db.store_route(&route(vec![stop(1, 9)], 0)).expect("route");
        shared
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_stream_applies_each_event_once_then_goes_online_and_dies_when_silent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Seen::default());
        let shared = shared(&dir, seen.clone());
        let placed = event(1, EventKind::CallRequested, Some(call(10, 1, "key-1", CallStatus::Scheduled, 1)));
        let done = event(
            2,
            EventKind::CallFinished { outcome: Outcome::Confirmed },
            Some(call(10, 1, "key-1", CallStatus::Finished, 2)),
        );
        let frames = stream::iter(vec![
            frame(ServerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                head_seq: 7,
                heartbeat_secs: 25,
                log_id: None,
            }),
            frame(ServerFrame::Event { event: placed.clone() }),
            frame(ServerFrame::Event { event: placed }),
            Ok(Message::Ping(Vec::new().into())),
            frame(ServerFrame::Event { event: done }),
            frame(ServerFrame::CaughtUp { seq: 5 }),
        ])
        .chain(stream::pending());
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        // Paused time runs the heartbeat timeout out as soon as the stream idles.
        let ended = pump(&shared, frames, false, &mut backoff).await;
        assert!(matches!(ended, Err(Error::Timeout(_))), "{ended:?}");

        assert_eq!(*seen.events.lock().expect("lock"), vec![1, 2], "the duplicate is applied once");
        assert_eq!(shared.db.cursor().expect("cursor"), 5, "caught up past events of other couriers");
        assert_eq!(*seen.connection.lock().expect("lock"), vec![ConnectionState::Online]);
        let stops = seen.stops.lock().expect("lock");
        assert_eq!(stops.len(), 2);
        assert!(stops.iter().all(|s| s.stop.id == StopId(1)));
        assert_eq!(stops[1].call.as_ref().map(|c| c.status), Some(CallStatus::Finished));
        assert_eq!(shared.db.active_count().expect("count"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_client_is_online_at_hello_and_a_close_frame_ends_the_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Seen::default());
        let shared = shared(&dir, seen.clone());
        let frames = stream::iter(vec![
            frame(ServerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                head_seq: 7,
                heartbeat_secs: 25,
                log_id: None,
            }),
            Ok(Message::Close(None)),
        ]);
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        assert!(pump(&shared, frames, true, &mut backoff).await.is_ok());
        assert_eq!(*seen.connection.lock().expect("lock"), vec![ConnectionState::Online]);
    }

    #[tokio::test(start_paused = true)]
    async fn another_log_or_a_cursor_beyond_the_head_makes_the_phone_start_over_from_the_route() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Seen::default());
        let shared = shared(&dir, seen.clone());
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let hello = |log: &str| {
            frame(ServerFrame::Hello {
                protocol: PROTOCOL_VERSION,
                head_seq: 7,
                heartbeat_secs: 25,
                log_id: Some(log.into()),
            })
        };
        // The first log this phone meets is remembered.
        let first = stream::iter(vec![hello("log-a"), frame(ServerFrame::CaughtUp { seq: 40 })]);
        assert!(pump(&shared, first, false, &mut backoff).await.is_ok());
        assert_eq!(shared.db.cursor().expect("cursor"), 40);
        // A server with another database: not a network blip.
        let swapped = stream::iter(vec![hello("log-b")]);
        let ended = pump(&shared, swapped, false, &mut backoff).await;
        assert!(matches!(ended, Err(Error::HistoryChanged(_))), "{ended:?}");
        // A restored one refuses the cursor the same way.
        let restored = stream::iter(vec![
            hello("log-a"),
            frame(ServerFrame::Error { code: ErrorCode::CursorAhead, message: "beyond the head".into() }),
        ]);
        let ended = pump(&shared, restored, false, &mut backoff).await;
        assert!(matches!(ended, Err(Error::HistoryChanged(_))), "{ended:?}");

        shared.db.forget_history().expect("forget");
        assert!(shared.db.needs_resync().expect("flag"));
        // The route fetched afterwards is the new starting point, even below
        // the old cursor.
        shared.db.store_route(&route(vec![stop(1, 9)], 12)).expect("route");
        assert_eq!(shared.db.cursor().expect("cursor"), 12);
        assert!(!shared.db.needs_resync().expect("flag"));
    }

    #[test]
    fn websocket_url_follows_the_http_url_and_the_cursor() {
        assert_eq!(ws_url("http://127.0.0.1:8080/", 0), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(ws_url("https://api.example.com", 42), "wss://api.example.com/v1/ws?after=42");
    }
}
