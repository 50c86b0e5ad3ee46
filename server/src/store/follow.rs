//! Several nodes append to one log on PostgreSQL (docs/adr/0009, issue #14
//! part 3): each node's hub must carry every node's events, in seq order,
//! each once. [`Feed`] is the only way events reach the hub there: the
//! publisher hands it the group its own writer committed, and the follower
//! thread wakes it when another node announces a commit. LISTEN/NOTIFY is
//! the wake-up and the events table the truth: a notification lost (a
//! dropped listener connection, a node that restarts) costs at most one
//! poll interval, never an event.
//!
//! Why in order: the group commits of every node take the log's head row
//! first (`audit::lock_head`), so they commit in seq order, and a read of
//! `seq > published` always sees a gap-free prefix of the log.

use super::pg::PgConn;
use super::{queries, Db, StoreError};
use crate::hub::{Hub, Scope};
use callahead_core::wire::Event;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The channel every node's writer notifies after a commit with events.
pub const CHANNEL: &str = "callahead_events";
/// The statement the writer runs inside each group that appended events:
/// PostgreSQL delivers it when (and only if) the group commits.
pub const NOTIFY: &str = "NOTIFY callahead_events";
/// How long the follower waits for a notification before it reads anyway.
const POLL: Duration = Duration::from_millis(500);
/// Events read per statement when catching up.
const PAGE: usize = 1000;

pub struct Feed {
    hub: Arc<Hub>,
    state: Mutex<State>,
}

struct State {
    /// Its own connection: catching up must not wait for the read pool.
    db: Db,
    /// The last seq this node's hub has.
    published: u64,
}

impl Feed {
    /// A feed starting at the log's head: the hub only carries what is new
    /// (a socket that resumes from older seqs replays them from the table).
    pub fn open(url: &str, hub: Arc<Hub>) -> Result<Arc<Feed>, StoreError> {
        let db = Db::postgres_db(PgConn::connect(url)?);
        let published = queries::head_seq(&db)?;
        Ok(Arc::new(Feed { hub, state: Mutex::new(State { db, published }) }))
    }

    /// This node's writer committed `events` (one group, consecutive seqs).
    /// Usually they follow what the hub has and go out as they are; when
    /// another node committed in between, or the follower already passed
    /// part of them, the table says what comes next.
    pub fn committed(&self, events: &[Event]) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return };
        let mut state = self.lock();
        if state.published >= last.seq {
            return;
        }
        if state.published + 1 == first.seq {
            self.hub.publish(events);
            state.published = last.seq;
            return;
        }
        if let Err(e) = self.catch_up_locked(&mut state) {
            // The follower reads again at its next wake-up.
            tracing::warn!(error = %e, "cannot read the log to publish a committed group");
        }
    }

    /// Publishes whatever the table holds past what the hub has.
    pub fn catch_up(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.catch_up_locked(&mut state)
    }

    fn catch_up_locked(&self, state: &mut State) -> Result<(), StoreError> {
        loop {
            let page = queries::events_after(&state.db, Scope::All, state.published, PAGE)?;
            let Some(last) = page.last() else { return Ok(()) };
            self.hub.publish(&page);
            state.published = last.seq;
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the follower: it listens on [`CHANNEL`] and catches the feed up
/// on every notification, and every [`POLL`] without one. It stops once
/// the feed is gone (the store closed).
pub fn spawn_follower(url: String, feed: &Arc<Feed>) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let feed = Arc::downgrade(feed);
    std::thread::Builder::new()
        .name("callahead-follow".into())
        .spawn(move || follow(&url, feed))
        .map_err(|e| StoreError::Aborted(format!("cannot start the log follower: {e}")))
}

fn follow(url: &str, feed: Weak<Feed>) {
    let mut listener: Option<postgres::Client> = None;
    loop {
        if listener.is_none() {
            listener = listen(url)
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for other nodes' commits; polling"))
                .ok();
        }
        let lost = match listener.as_mut() {
            Some(client) => {
                let mut notifications = client.notifications();
                let woke = notifications.timeout_iter(POLL).next();
                // Several commits announced meanwhile: one read covers them.
                while let Ok(Some(_)) = notifications.iter().next() {}
                woke.is_err()
            }
            None => {
                std::thread::sleep(POLL);
                false
            }
        };
        if lost {
            tracing::warn!("the listener connection was lost; listening again");
            listener = None;
        }
        let Some(feed) = feed.upgrade() else { return };
        if let Err(e) = feed.catch_up() {
            tracing::warn!(error = %e, "cannot read other nodes' events; trying again");
        }
    }
}

fn listen(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    Ok(client)
}
