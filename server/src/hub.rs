//! Fan-out of committed events to websocket connections (docs/architecture.md §8).
//!
//! Subscribers are indexed by courier, by depot and "all" (admin), so an
//! event wakes only the sockets that may see it — never all 10,000. Each
//! subscriber has a bounded queue; a subscriber whose queue is full is
//! dropped on the spot (its receiver then ends after draining what it has),
//! and its connection catches up from the database — see `ws.rs`. Memory per
//! connection is therefore bounded and nothing is lost.
//!
//! The frame JSON is built once per event, not once per socket.

use axum::extract::ws::Utf8Bytes;
use callahead_core::wire::{Event, EventKind, ServerFrame};
use callahead_core::{CourierId, DepotId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Which events a subscriber may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Courier(CourierId),
    Depot(DepotId),
    All,
}

/// The `type`s of the events a courier's own feed leaves out: their app's
/// connection and their position are for supervisors, and the app knows
/// both. The one statement of the rule: the live fan-out filters on it here,
/// and the replay from the log (`store::queries::events_after`) in its query.
pub const NOT_FOR_COURIERS: &[&str] = &["app_connection", "courier_position"];

fn for_couriers(e: &Event) -> bool {
    !NOT_FOR_COURIERS.contains(&e.kind.type_name())
}

impl Scope {
    pub fn contains(self, e: &Event) -> bool {
        match self {
            Scope::Courier(c) => e.courier_id == c && for_couriers(e),
            Scope::Depot(d) => e.depot_id == d,
            Scope::All => true,
        }
    }
}

/// How much longer a depot feed's and an admin feed's queues are than a
/// courier's. The queue allocates only what is in it, so an idle feed costs
/// nothing for the bound.
const DEPOT_QUEUE_FACTOR: usize = 64;
const ALL_QUEUE_FACTOR: usize = 256;

/// One event, ready to send: its seq and its `ServerFrame::Event` JSON.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: u64,
    /// Shared bytes: cloning for each socket copies no JSON.
    pub frame: Utf8Bytes,
    /// When the hub got it from the commit (push lag is measured from here).
    pub published: std::time::Instant,
}

type Subscribers = Vec<(u64, mpsc::Sender<Delivery>)>;

#[derive(Default)]
struct Inner {
    next_id: u64,
    couriers: HashMap<CourierId, Subscribers>,
    depots: HashMap<DepotId, Subscribers>,
    all: Subscribers,
}

#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    closed: AtomicBool,
}

pub struct Subscription {
    pub rx: mpsc::Receiver<Delivery>,
    id: u64,
    scope: Scope,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.scope, self.id);
    }
}

pub fn event_frame(event: &Event) -> Result<String, serde_json::Error> {
    // Serializing `ServerFrame::Event` needs an owned event; the clone is
    // paid once per event, not per socket.
    serde_json::to_string(&ServerFrame::Event { event: event.clone() })
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent; poison is moot.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscriber. Register BEFORE reading the replay from the
    /// database, so no event can fall between the two. `queue` bounds a
    /// courier's socket; a depot's feed carries a hundred couriers and an
    /// admin's everything, so theirs are sized by the scope: at 10,000
    /// couriers a supervisor feed with a courier's bound overflowed at once
    /// and spent the morning replaying from the database.
    pub fn subscribe(self: &Arc<Self>, scope: Scope, queue: usize) -> Subscription {
        let bound = queue.max(1).saturating_mul(match scope {
            Scope::Courier(_) => 1,
            Scope::Depot(_) => DEPOT_QUEUE_FACTOR,
            Scope::All => ALL_QUEUE_FACTOR,
        });
        let (tx, rx) = mpsc::channel(bound);
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        if !self.is_closed() {
            let list = match scope {
                Scope::Courier(c) => inner.couriers.entry(c).or_default(),
                Scope::Depot(d) => inner.depots.entry(d).or_default(),
                Scope::All => &mut inner.all,
            };
            list.push((id, tx));
        }
        Subscription { rx, id, scope, hub: self.clone() }
    }

    fn remove(&self, scope: Scope, id: u64) {
        let mut inner = self.lock();
        match scope {
            Scope::Courier(c) => {
                if let Some(list) = inner.couriers.get_mut(&c) {
                    list.retain(|(i, _)| *i != id);
                    if list.is_empty() {
                        inner.couriers.remove(&c);
                    }
                }
            }
            Scope::Depot(d) => {
                if let Some(list) = inner.depots.get_mut(&d) {
                    list.retain(|(i, _)| *i != id);
                    if list.is_empty() {
                        inner.depots.remove(&d);
                    }
                }
            }
            Scope::All => inner.all.retain(|(i, _)| *i != id),
        }
    }

    /// Delivers committed events, in seq order. Called by the writer only.
    pub fn publish(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let published = std::time::Instant::now();
        for event in events {
            crate::metrics::event_published(event.kind.type_name());
            if let EventKind::CallFinished { outcome } = event.kind {
                crate::metrics::call_finished(outcome.as_str());
            }
            let to_courier = for_couriers(event) && inner.couriers.contains_key(&event.courier_id);
            let interested =
                to_courier || inner.depots.contains_key(&event.depot_id) || !inner.all.is_empty();
            if !interested {
                continue;
            }
            let frame: Utf8Bytes = match event_frame(event) {
                Ok(s) => s.into(),
                Err(e) => {
                    tracing::error!(seq = event.seq, error = %e, "cannot serialize an event");
                    continue;
                }
            };
            let d = Delivery { seq: event.seq, frame, published };
            if let Some(list) = inner.couriers.get_mut(&event.courier_id).filter(|_| to_courier) {
                offer(list, &d);
            }
            if let Some(list) = inner.depots.get_mut(&event.depot_id) {
                offer(list, &d);
            }
            offer(&mut inner.all, &d);
        }
        inner.couriers.retain(|_, l| !l.is_empty());
        inner.depots.retain(|_, l| !l.is_empty());
    }

    /// Ends every subscription; later subscriptions end at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut inner = self.lock();
        inner.couriers.clear();
        inner.depots.clear();
        inner.all.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Subscribers currently registered (for tests and metrics).
    pub fn subscriber_count(&self) -> usize {
        let inner = self.lock();
        inner.couriers.values().map(Vec::len).sum::<usize>()
            + inner.depots.values().map(Vec::len).sum::<usize>()
            + inner.all.len()
    }
}

/// Sends to each subscriber; drops the ones that lag (queue full) or left.
fn offer(list: &mut Subscribers, d: &Delivery) {
    list.retain(|(_, tx)| tx.try_send(d.clone()).is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ev(seq: u64, depot: i64, courier: i64) -> Event {
        Event {
            seq,
            at: Utc::now(),
            origin_wall_ms: 0,
            depot_id: DepotId(depot),
            courier_id: CourierId(courier),
            stop_id: None,
            kind: EventKind::CallRequested,
            call: None,
        }
    }

    #[tokio::test]
    async fn events_reach_only_their_scope() {
        let hub = Hub::new();
        let mut c1 = hub.subscribe(Scope::Courier(CourierId(1)), 8);
        let mut c2 = hub.subscribe(Scope::Courier(CourierId(2)), 8);
        let mut d1 = hub.subscribe(Scope::Depot(DepotId(1)), 8);
        let mut all = hub.subscribe(Scope::All, 8);
        hub.publish(&[ev(1, 1, 1), ev(2, 2, 2)]);
        assert_eq!(c1.rx.recv().await.map(|d| d.seq), Some(1));
        assert_eq!(c2.rx.recv().await.map(|d| d.seq), Some(2));
        assert_eq!(d1.rx.recv().await.map(|d| d.seq), Some(1));
        assert_eq!(all.rx.recv().await.map(|d| d.seq), Some(1));
        assert_eq!(all.rx.recv().await.map(|d| d.seq), Some(2));
        assert!(c1.rx.try_recv().is_err());
        assert!(d1.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_couriers_app_connection_goes_to_supervisors_not_to_the_courier() {
        let hub = Hub::new();
        let mut courier = hub.subscribe(Scope::Courier(CourierId(1)), 8);
        let mut depot = hub.subscribe(Scope::Depot(DepotId(1)), 8);
        let online = Event { kind: EventKind::AppConnection { connected: true }, ..ev(1, 1, 1) };
        hub.publish(&[online, ev(2, 1, 1)]);
        assert_eq!(courier.rx.recv().await.map(|d| d.seq), Some(2));
        assert_eq!(depot.rx.recv().await.map(|d| d.seq), Some(1));
        assert_eq!(depot.rx.recv().await.map(|d| d.seq), Some(2));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_dropped_after_what_it_has() {
        let hub = Hub::new();
        let mut slow = hub.subscribe(Scope::Courier(CourierId(1)), 2);
        hub.publish(&[ev(1, 1, 1), ev(2, 1, 1), ev(3, 1, 1)]);
        assert_eq!(slow.rx.recv().await.map(|d| d.seq), Some(1));
        assert_eq!(slow.rx.recv().await.map(|d| d.seq), Some(2));
        assert!(slow.rx.recv().await.is_none(), "dropped: the connection resumes from the database");
        assert_eq!(hub.subscriber_count(), 0);
    }

    #[tokio::test]
    async fn a_depot_feed_holds_far_more_than_a_courier_socket_before_it_lags() {
        let hub = Hub::new();
        let mut courier = hub.subscribe(Scope::Courier(CourierId(1)), 4);
        let mut depot = hub.subscribe(Scope::Depot(DepotId(1)), 4);
        let burst: Vec<Event> = (1..=100).map(|s| ev(s, 1, 1)).collect();
        hub.publish(&burst);
        let drain = |rx: &mut mpsc::Receiver<Delivery>| std::iter::from_fn(|| rx.try_recv().ok()).count();
        assert_eq!(drain(&mut courier.rx), 4, "the courier's socket lagged and must replay");
        assert_eq!(drain(&mut depot.rx), 100, "the supervisor's feed kept up");
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new();
        let s = hub.subscribe(Scope::Depot(DepotId(3)), 2);
        assert_eq!(hub.subscriber_count(), 1);
        drop(s);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
