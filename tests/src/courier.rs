//! A courier's phone: a real client core on its own SQLite file, connected to
//! the server through a [`Proxy`] the test controls.

use crate::{Proxy, Recorder};
use callahead_core::client::{Client, ClientConfig, ConnectionState, StopState};
use callahead_core::wire::{Event, EventKind};
use callahead_core::{CourierId, StopId};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Phone {
    pub dir: tempfile::TempDir,
    pub proxy: Proxy,
    pub token: String,
    pub rec: Arc<Recorder>,
    pub client: Option<Client>,
    /// The phone's clock (the system's unless a test shares the server's).
    pub clock: Option<callahead_core::clock::SharedClock>,
}

impl Phone {
    /// A phone talking to `server` through a fresh proxy.
    pub async fn new(server: std::net::SocketAddr, token: &str) -> Phone {
        Self::on_clock(server, token, None).await
    }

    /// A phone whose core tells time by `clock` (the server's scaled clock,
    /// so ETAs and the server's calls agree).
    pub async fn on_clock(
        server: std::net::SocketAddr,
        token: &str,
        clock: Option<callahead_core::clock::SharedClock>,
    ) -> Phone {
        let proxy = Proxy::start(server).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut phone =
            Phone { dir, proxy, token: token.to_string(), rec: Recorder::new(), client: None, clock };
        phone.open();
        phone
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("courier.db")
    }

    /// Opens the client core (again) on the same file, with a fresh recorder.
    pub fn open(&mut self) {
        assert!(self.client.is_none(), "close first");
        let mut config = ClientConfig::new(self.db_path(), self.proxy.url(), self.token.clone());
        // Reconnect quickly: the tests cut connections on purpose.
        config.reconnect_min = Duration::from_millis(20);
        config.reconnect_max = Duration::from_millis(200);
        config.position_every = Duration::from_millis(200);
        if let Some(clock) = &self.clock {
            config.clock = clock.clone();
        }
        self.rec = Recorder::new();
        self.client = Some(Client::open(config, self.rec.clone()).expect("client opens"));
    }

    /// Closes the app (as the OS would kill it).
    pub fn close(&mut self) {
        if let Some(c) = self.client.take() {
            c.close();
        }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("client is open")
    }

    pub async fn wait_online(&self) {
        self.rec.wait_until("client online", |s| s.connection.last() == Some(&ConnectionState::Online)).await;
    }

    /// Waits until every stop in `ids` shows a terminal call.
    pub async fn wait_all_terminal(&self, ids: &[StopId]) -> crate::recorder::Seen {
        self.rec
            .wait_until("every requested call to finish", |s| {
                ids.iter().all(|id| s.stops.get(id).is_some_and(is_terminal))
            })
            .await
    }
}

impl Phone {
    /// Waits until the phone has heard the last event of `courier`'s scope
    /// in the server's `log`, then checks it heard each of them (from its
    /// first) exactly once, in order: nothing skipped, nothing twice.
    pub async fn assert_heard_its_scope(&self, log: &[Event], courier: CourierId, who: &str) {
        let expected: Vec<u64> = log
            .iter()
            .filter(|e| e.courier_id == courier && !matches!(e.kind, EventKind::AppConnection { .. }))
            .map(|e| e.seq)
            .collect();
        let last = *expected.last().expect("events");
        let seen = self
            .rec
            .wait_until("the phone to hear its last event", |s| {
                s.events.last().is_some_and(|e| e.seq >= last)
            })
            .await;
        let heard: Vec<u64> = seen.events.iter().map(|e| e.seq).collect();
        let first = heard[0];
        let expected: Vec<u64> = expected.into_iter().filter(|&s| s >= first).collect();
        assert_eq!(heard, expected, "{who}: every event of their scope exactly once, in order");
    }
}

pub fn is_terminal(s: &StopState) -> bool {
    s.call.as_ref().is_some_and(|c| c.status.is_terminal()) && s.outbox.is_none()
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.close();
    }
}
