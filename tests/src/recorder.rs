//! A `ClientListener` that records everything the client core reports, with
//! event-driven waits ("until stop 3 has an outcome") for the tests.

use callahead_core::client::{ClientListener, ConnectionState, StopState};
use callahead_core::wire::Event;
use callahead_core::StopId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

#[derive(Default, Clone)]
pub struct Seen {
    /// Every event the client applied, in order.
    pub events: Vec<Event>,
    /// Latest state per stop.
    pub stops: HashMap<StopId, StopState>,
    /// Every stop notification, in order.
    pub stop_changes: Vec<StopState>,
    pub connection: Vec<ConnectionState>,
    /// Push latency per event: wall ms from the cause to the client applying it.
    pub latencies_ms: Vec<i64>,
}

pub struct Recorder {
    seen: Mutex<Seen>,
    version: watch::Sender<u64>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder { seen: Mutex::new(Seen::default()), version: watch::channel(0).0 })
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Seen {
        self.lock().clone()
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits until `pred` holds over what was recorded (checked on every
    /// change), failing the test after [`crate::WAIT`].
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let mut rx = self.version.subscribe();
        crate::within(what, async {
            loop {
                {
                    let seen = self.lock();
                    if pred(&seen) {
                        return seen.clone();
                    }
                }
                if rx.changed().await.is_err() {
                    panic!("recorder dropped while waiting for {what}");
                }
            }
        })
        .await
    }
}

impl ClientListener for Recorder {
    fn on_stop_changed(&self, stop: StopState) {
        {
            let mut seen = self.lock();
            seen.stops.insert(stop.stop.id, stop.clone());
            seen.stop_changes.push(stop);
        }
        self.bump();
    }

    fn on_connection_changed(&self, state: ConnectionState) {
        self.lock().connection.push(state);
        self.bump();
    }

    fn on_event(&self, event: &Event) {
        {
            let mut seen = self.lock();
            seen.latencies_ms.push(callahead_core::clock::wall_ms() - event.origin_wall_ms);
            seen.events.push(event.clone());
        }
        self.bump();
    }
}
