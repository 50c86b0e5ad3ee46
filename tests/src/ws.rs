//! A raw websocket subscriber: reads what the server itself says a token may
//! see, to compare with what a client core applied.

use callahead_core::wire::{paths, Event, ServerFrame};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Connects as `token` with `after`, reads the replay up to `CaughtUp`, and
/// returns the replayed events. Panics on anything unexpected.
pub async fn replay(base_url: &str, token: &str, after: u64) -> Vec<Event> {
    let url = format!("{}{}?after={after}", base_url.replacen("http", "ws", 1), paths::WS);
    let mut req = url.into_client_request().expect("ws request");
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("ws connects");
    let mut events = Vec::new();
    crate::within("websocket replay to catch up", async {
        while let Some(msg) = ws.next().await {
            let Message::Text(text) = msg.expect("ws frame") else { continue };
            match serde_json::from_str::<ServerFrame>(&text).expect("server frame") {
                ServerFrame::Hello { .. } => {}
                ServerFrame::Event { event } => events.push(event),
                ServerFrame::CaughtUp { .. } => return,
                ServerFrame::Error { code, message } => panic!("ws error {code:?}: {message}"),
            }
        }
        panic!("socket closed before caught_up");
    })
    .await;
    events
}

/// Opens a websocket and returns the HTTP status of a refused upgrade.
pub async fn refused_status(base_url: &str, token: Option<&str>) -> u16 {
    let url = format!("{}{}", base_url.replacen("http", "ws", 1), paths::WS);
    let mut req = url.into_client_request().expect("ws request");
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket kept open: every frame the server sends, in order, with
/// event-driven waits ("until a key_pressed").
pub struct Follower {
    ws: Socket,
    /// Every event received so far.
    pub events: Vec<Event>,
}

impl Follower {
    pub async fn connect(base_url: &str, token: &str, after: Option<u64>) -> Follower {
        let mut url = format!("{}{}", base_url.replacen("http", "ws", 1), paths::WS);
        if let Some(a) = after {
            url.push_str(&format!("?after={a}"));
        }
        let mut req = url.into_client_request().expect("ws request");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (ws, _) = crate::within("the websocket to connect", tokio_tungstenite::connect_async(req))
            .await
            .expect("ws connects");
        Follower { ws, events: Vec::new() }
    }

    /// The next frame the server sends (`None`: the socket closed).
    pub async fn frame(&mut self) -> Option<ServerFrame> {
        crate::within("a websocket frame", async {
            loop {
                match self.ws.next().await? {
                    Ok(Message::Text(text)) => {
                        let frame = serde_json::from_str::<ServerFrame>(&text).expect("server frame");
                        if let ServerFrame::Event { event } = &frame {
                            self.events.push(event.clone());
                        }
                        return Some(frame);
                    }
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Reads until an event matching `pred` arrives, and returns it.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        loop {
            match self.frame().await {
                Some(ServerFrame::Event { event }) if pred(&event) => return event,
                Some(_) => {}
                None => panic!("the websocket closed while waiting for {what}"),
            }
        }
    }
}
