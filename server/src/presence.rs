//! Which couriers' apps are connected right now. A courier counts as
//! connected while at least one of their websockets is open; the first
//! opening and the last closing are appended to the event log as
//! `AppConnection`, so supervisors see it live and it stays auditable.
//!
//! The counts live in memory only: after a restart no socket is open, so
//! "nobody connected" is the truth until apps reconnect.

use crate::store::{NewEvent, StoreError, Writer};
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::wire::EventKind;
use callahead_core::{CourierId, DepotId};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

struct Change {
    courier: CourierId,
    depot: DepotId,
    connected: bool,
    wall: i64,
}

pub struct Presence {
    counts: Mutex<HashMap<CourierId, usize>>,
    // Unbounded: at most one entry per socket opened or closed, and the
    // order of transitions must be kept, so nothing may be dropped.
    changes: mpsc::UnboundedSender<Change>,
}

/// Held for the lifetime of one courier websocket.
pub struct Online {
    presence: Arc<Presence>,
    courier: CourierId,
    depot: DepotId,
}

impl Drop for Online {
    fn drop(&mut self) {
        self.presence.leave(self.courier, self.depot);
    }
}

impl Presence {
    /// The registry and the task that records transitions in the log.
    pub fn new(
        writer: Writer,
        clock: SharedClock,
    ) -> (Arc<Presence>, impl Future<Output = ()> + Send + 'static) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
        let presence = Arc::new(Presence { counts: Mutex::default(), changes: tx });
        let record = async move {
            while let Some(c) = rx.recv().await {
                let at = clock.now();
                let event = NewEvent::route(
                    at,
                    c.wall,
                    c.depot,
                    c.courier,
                    EventKind::AppConnection { connected: c.connected },
                );
                let written = writer.write(move |tx| tx.append_event(event).map(|_| ())).await;
                match written {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot record an app connection change"),
                }
            }
        };
        (presence, record)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CourierId, usize>> {
        // Every critical section leaves the map consistent; poison is moot.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn join(self: &Arc<Self>, courier: CourierId, depot: DepotId) -> Online {
        let mut counts = self.lock();
        let n = counts.entry(courier).or_default();
        *n += 1;
        if *n == 1 {
            // Sent under the lock, so transitions reach the log in order.
            let _ = self.changes.send(Change { courier, depot, connected: true, wall: wall_ms() });
        }
        Online { presence: self.clone(), courier, depot }
    }

    fn leave(&self, courier: CourierId, depot: DepotId) {
        let mut counts = self.lock();
        let Some(n) = counts.get_mut(&courier) else { return };
        *n -= 1;
        if *n == 0 {
            counts.remove(&courier);
            let _ = self.changes.send(Change { courier, depot, connected: false, wall: wall_ms() });
        }
    }

    pub fn connected(&self) -> HashSet<CourierId> {
        self.lock().keys().copied().collect()
    }
}
