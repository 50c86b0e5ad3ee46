//! The HTTP listener. `axum::serve` has no timeouts and no connection cap,
//! so a few hundred slowloris or half-open sockets could hold the server
//! (issue #12); this loop serves HTTP/1.1 with hyper directly:
//!
//! * at most `max_connections` open connections (websockets included); one
//!   more is answered `503` with `Connection: close` and dropped;
//! * a header read timeout: the request head must arrive within it, from
//!   the moment the connection opens or the previous answer went out, so a
//!   half-open connection and an idle keep-alive close alike;
//! * the request timeout (body and answer) is a layer, see
//!   [`crate::api::limits`].
//!
//! Each request carries the peer's address (`ConnectInfo`) for the rate
//! limits and a [`Slot`] that a websocket keeps for its whole life.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

/// Bounds on the connections themselves (docs/security.md lists the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open TCP connections, websockets included.
    pub max_connections: usize,
    /// For the request head; also how long an idle keep-alive connection stays.
    pub header_read_timeout: Duration,
    /// For reading the body and answering, from the end of the head.
    pub request_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_header_bytes: usize,
    /// Open websockets per token and per courier (all their tokens).
    pub ws_per_token: usize,
    pub ws_per_courier: usize,
    /// Reverse proxies (a load balancer, nginx) whose `X-Forwarded-For` is
    /// believed: behind one, every client would otherwise share the proxy's
    /// address, and one client's failed logins would block everyone's.
    pub trusted_proxies: Arc<[IpAddr]>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 16_384,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            ws_per_token: 4,
            ws_per_courier: 8,
            trusted_proxies: Arc::from([]),
        }
    }
}

impl ConnectionLimits {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.ws_per_token == 0 || self.ws_per_courier == 0 {
            return Err("connection limits must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err("connection timeouts must be longer than zero".into());
        }
        if self.max_header_bytes < 8192 {
            return Err("max_header_bytes must be at least 8192".into());
        }
        Ok(())
    }
}

/// A connection's place under the global cap; a websocket holds a clone of
/// its request's slot until it closes.
#[derive(Clone)]
pub struct Slot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// What the accept loop answers when every slot is taken.
const FULL: &str = "{\"code\":\"unavailable\",\"message\":\"too many open connections; retry shortly\"}";

/// Connections the kernel queues before the accept loop takes them. tokio's
/// default (1,024) overflowed 31,000 times a run when 10,000 apps connected
/// at once (every one reconnecting after a restart, a depot's morning), and
/// each overflow cost a client a retransmit seconds later. The kernel caps
/// it at `net.core.somaxconn` (4,096 on current Linux; raise that too for
/// bigger storms).
pub const LISTEN_BACKLOG: u32 = 16_384;

/// The listening socket, with the backlog above.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` until `stop` fires, then stops accepting and waits for the
/// open HTTP connections to finish their requests (the caller bounds it).
/// Websockets are not waited on here: the hub closes them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Shutdown: `draining` tells every connection to finish its request and
    // close; each holds a clone of `open`, so `closed` ends when all are gone.
    let (draining, drain) = watch::channel(false);
    let (open, mut closed) = mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Frames are small and latency is the product: never hold one back
        // waiting for an ACK (Nagle's algorithm cost 35-65 ms at the p99).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            crate::metrics::connection_refused();
            tokio::spawn(refuse(stream));
            continue;
        };
        let slot = Slot(Arc::new(permit));
        let app = app.clone();
        let trusted = limits.trusted_proxies.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let client = client_addr(peer.ip(), req.headers(), &trusted);
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, peer.port())));
            req.extensions_mut().insert(slot.clone());
            tower::ServiceExt::oneshot(app.clone(), req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let (mut drain, open) = (drain.clone(), open.clone());
        tokio::spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = async { drain.wait_for(|d| *d).await.map(drop) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = draining.send(true);
    drop(open);
    let _ = closed.recv().await;
}

/// The client's address: the peer's, unless the peer is a trusted proxy,
/// then the last address in `X-Forwarded-For` that is not one (a client can
/// put anything in front of the header; only what the proxies appended counts).
pub fn client_addr(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<Result<IpAddr, _>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>())
        .collect();
    for hop in hops.into_iter().rev() {
        match hop {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // Garbage where an address should be: nothing further left can
            // be believed; the proxy is the client as far as limits go.
            Err(_) => return peer,
        }
    }
    peer
}

async fn refuse(mut stream: TcpStream) {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{FULL}",
        FULL.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::client_addr;
    use axum::http::HeaderMap;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("a header value"));
        }
        h
    }

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxy = ip("10.0.0.5");
        let trusted = [proxy, ip("10.0.0.6")];
        let h = forwarded(&["203.0.113.7"]);
        assert_eq!(client_addr(ip("198.51.100.1"), &h, &trusted), ip("198.51.100.1"), "an untrusted peer");
        assert_eq!(client_addr(proxy, &h, &trusted), ip("203.0.113.7"));
        // The client wrote the first hop itself; the proxies appended the rest.
        let h = forwarded(&["1.2.3.4, 203.0.113.7", "10.0.0.6"]);
        assert_eq!(client_addr(proxy, &h, &trusted), ip("203.0.113.7"));
        assert_eq!(client_addr(proxy, &forwarded(&["nonsense"]), &trusted), proxy);
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy, "no header: the proxy itself");
        assert_eq!(client_addr(proxy, &forwarded(&["10.0.0.6"]), &trusted), proxy, "only proxies");
    }
}
