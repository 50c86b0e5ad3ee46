//! Open websockets by token and by courier: the per-token and per-courier
//! caps, closing a revoked token's sockets at once, and waiting for every
//! socket to finish closing at shutdown.

use crate::error::AppError;
use callahead_core::wire::ErrorCode;
use callahead_core::CourierId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_token: HashMap<i64, Vec<(u64, Arc<Notify>)>>,
    by_courier: HashMap<CourierId, usize>,
}

pub struct Sockets {
    inner: Mutex<Inner>,
    /// How many are open; shutdown waits for zero.
    open: watch::Sender<usize>,
}

/// One open websocket's registration; dropping it unregisters.
pub struct SocketGuard {
    sockets: Arc<Sockets>,
    id: u64,
    token: i64,
    courier: Option<CourierId>,
    role: &'static str,
    revoked: Arc<Notify>,
}

impl SocketGuard {
    /// Resolves once the socket's token was revoked (or its courier or
    /// supervisor deactivated).
    pub async fn revoked(&self) {
        self.revoked.notified().await
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.sockets.remove(self);
        crate::metrics::websocket_closed(self.role);
    }
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets { inner: Mutex::default(), open: watch::channel(0).0 }
    }
}

impl Sockets {
    pub fn new() -> Arc<Sockets> {
        Arc::new(Sockets::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent; poison is moot.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket of `token` (of `courier`, for a courier), or
    /// refuses it over a cap.
    pub fn open(
        self: &Arc<Self>,
        token: i64,
        courier: Option<CourierId>,
        role: &'static str,
        per_token: usize,
        per_courier: usize,
    ) -> Result<SocketGuard, AppError> {
        let mut inner = self.lock();
        if inner.by_token.get(&token).map_or(0, Vec::len) >= per_token {
            crate::metrics::websocket_refused("per_token");
            return Err(AppError::new(
                ErrorCode::TooManySockets,
                format!("this token already has {per_token} websockets open; close one first"),
            )
            .retry_after(5));
        }
        if let Some(c) = courier {
            if inner.by_courier.get(&c).copied().unwrap_or(0) >= per_courier {
                crate::metrics::websocket_refused("per_courier");
                return Err(AppError::new(
                    ErrorCode::TooManySockets,
                    format!("this courier already has {per_courier} websockets open; close one first"),
                )
                .retry_after(5));
            }
            *inner.by_courier.entry(c).or_default() += 1;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let revoked = Arc::new(Notify::new());
        inner.by_token.entry(token).or_default().push((id, revoked.clone()));
        drop(inner);
        self.open.send_modify(|n| *n += 1);
        crate::metrics::websocket_opened(role);
        Ok(SocketGuard { sockets: self.clone(), id, token, courier, role, revoked })
    }

    fn remove(&self, g: &SocketGuard) {
        let mut inner = self.lock();
        if let Some(list) = inner.by_token.get_mut(&g.token) {
            list.retain(|(id, _)| *id != g.id);
            if list.is_empty() {
                inner.by_token.remove(&g.token);
            }
        }
        if let Some(c) = g.courier {
            if let Some(n) = inner.by_courier.get_mut(&c) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.by_courier.remove(&c);
                }
            }
        }
        drop(inner);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Tells every socket of these tokens to close now.
    pub fn close_tokens(&self, tokens: &[i64]) {
        let inner = self.lock();
        for t in tokens {
            for (_, revoked) in inner.by_token.get(t).into_iter().flatten() {
                // A stored permit: the socket sees it even if it is not
                // waiting yet.
                revoked.notify_one();
            }
        }
    }

    pub fn open_count(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until no socket is open, at most `bound`; whether they all closed.
    pub async fn all_closed(&self, bound: Duration) -> bool {
        let mut rx = self.open.subscribe();
        let closed = tokio::time::timeout(bound, async { rx.wait_for(|n| *n == 0).await.map(drop) }).await;
        closed.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_per_token_and_per_courier_and_closing_by_token() {
        let s = Sockets::new();
        let c = Some(CourierId(1));
        let a = s.open(10, c, "courier", 2, 3).expect("first");
        let _b = s.open(10, c, "courier", 2, 3).expect("second");
        let over = s.open(10, c, "courier", 2, 3).err().expect("third on one token");
        assert_eq!(over.code, ErrorCode::TooManySockets);
        let _d = s.open(11, c, "courier", 2, 3).expect("another token of the courier");
        assert!(s.open(12, c, "courier", 2, 3).is_err(), "the courier's cap");
        assert_eq!(s.open_count(), 3);
        s.close_tokens(&[10]);
        tokio::time::timeout(Duration::from_secs(5), a.revoked()).await.expect("told to close");
        drop(a);
        assert!(s.open(12, c, "courier", 2, 3).is_ok(), "a slot came free");
    }
}
