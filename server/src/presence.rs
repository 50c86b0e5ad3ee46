//! Which couriers' apps are connected right now. A courier counts as
//! connected while at least one of their websockets is open; the first
//! opening and the last closing are appended to the event log as
//! `AppConnection`, so supervisors see it live and it stays auditable.
//!
//! The counts live in memory; who is connected is also kept durably
//! (`apps_online`, written with each event), because a crash closes every
//! socket without a word: [`close_after_crash`] logs the disconnections the
//! previous process could not, before anything else starts, so a feed that
//! follows the log never shows a courier online whom the snapshot shows
//! offline.

use crate::store::{queries, NewEvent, StoreError, Writer};
use callahead_core::clock::{wall_ms, SharedClock};
use callahead_core::wire::EventKind;
use callahead_core::{CourierId, DepotId};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Connection changes written in one commit at most.
const PRESENCE_BATCH: usize = 2048;

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
            while let Some(first) = rx.recv().await {
                // A connection storm (a depot's morning, every app coming
                // back after a restart) queues thousands of changes: they
                // go in one commit, each still its own event, in order.
                let mut batch = vec![first];
                while batch.len() < PRESENCE_BATCH {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                let at = clock.now();
                let written = writer
                    .write(move |tx| {
                        for c in batch {
                            queries::set_app_online(tx, c.courier, c.depot, c.connected)?;
                            let kind = EventKind::AppConnection { connected: c.connected };
                            tx.append_event(NewEvent::route(at, c.wall, c.depot, c.courier, kind))?;
                        }
                        Ok(())
                    })
                    .await;
                match written {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "cannot record app connection changes"),
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

/// At start-up, before any socket is accepted: every app the log still shows
/// connected lost its socket with the previous process. Logs each one's
/// disconnection (one commit for all); returns how many there were.
pub async fn close_after_crash(writer: &Writer, clock: &SharedClock) -> Result<usize, StoreError> {
    let at = clock.now();
    writer
        .write(move |tx| {
            let ghosts = queries::apps_online(tx.db())?;
            let wall = wall_ms();
            for &(courier, depot) in &ghosts {
                queries::set_app_online(tx, courier, depot, false)?;
                let kind = EventKind::AppConnection { connected: false };
                tx.append_event(NewEvent::route(at, wall, depot, courier, kind))?;
            }
            Ok(ghosts.len())
        })
        .await
}
