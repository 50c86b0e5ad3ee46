//! The one writer (docs/architecture.md §1, §8). A dedicated thread owns the write
//! connection; callers submit closures over a channel. The thread takes every
//! job already queued, runs each inside its own SAVEPOINT (a failing job rolls
//! back alone), commits once — one fsync for the whole group — and hands the
//! committed group to the publisher thread, which publishes the events those
//! jobs appended and then answers the callers. So an event reaches a socket,
//! and an HTTP 2xx reaches a client, only once durable; and the writer is
//! already running the next group while the last one is encoded and fanned
//! out to thousands of sockets.

use super::{ms, Db, StoreError};
use crate::hub::Hub;
use callahead_core::wire::{CallView, Event, EventKind};
use callahead_core::{CourierId, DepotId, StopId};
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Enough to amortize one fsync over a burst without starving replies.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 4096;
/// Committed groups waiting for the publisher; beyond this the writer waits
/// (a publisher that cannot keep up must slow the writes, not grow memory).
const PUBLISH_QUEUE: usize = 64;

/// A committed (or failed) group, for the publisher thread.
struct Committed {
    events: Vec<Event>,
    replies: Vec<Reply>,
    outcome: Result<(), StoreError>,
}

/// The open write transaction a job runs in.
pub struct WriteTx<'c> {
    db: &'c Db,
    events: Vec<Event>,
    head_seq: u64,
    /// The audit chain's link at `head_seq` (docs/audit.md).
    head_hash: [u8; 32],
}

/// An event about to be appended; `seq` is assigned by [`WriteTx::append_event`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub origin_wall_ms: i64,
    pub depot_id: DepotId,
    pub courier_id: CourierId,
    pub stop_id: Option<StopId>,
    pub kind: EventKind,
    pub call: Option<CallView>,
}

impl NewEvent {
    /// An event about a courier's whole route (no stop, no call).
    pub fn route(
        at: DateTime<Utc>,
        wall: i64,
        depot: DepotId,
        courier: CourierId,
        kind: EventKind,
    ) -> NewEvent {
        NewEvent {
            at,
            origin_wall_ms: wall,
            depot_id: depot,
            courier_id: courier,
            stop_id: None,
            kind,
            call: None,
        }
    }
}

impl WriteTx<'_> {
    /// Reads inside this transaction go through the same named functions
    /// as reads on the pool.
    pub fn db(&self) -> &Db {
        self.db
    }

    /// Runs a statement of the common dialect on either engine ([`Db::exec`]).
    pub(super) fn exec(&self, sql: &str, args: super::Args<'_>) -> Result<usize, StoreError> {
        self.db.exec(sql, args)
    }

    /// Appends to the log inside this transaction. The seq is the next one
    /// (gap-free: a rolled-back job gives its seqs back). A call snapshot gets
    /// `last_seq` = this seq, on the event and on the call row.
    pub fn append_event(&mut self, new: NewEvent) -> Result<Event, StoreError> {
        let seq = self.head_seq + 1;
        // The log keeps milliseconds; the pushed copy must be the stored one
        // exactly, so one seq is one frame however it is read.
        let at = DateTime::from_timestamp_millis(ms(new.at)).unwrap_or(new.at);
        let mut call = new.call;
        if let Some(c) = call.as_mut() {
            c.last_seq = seq;
            self.exec("UPDATE calls SET last_seq = ?1 WHERE id = ?2", params![seq as i64, c.id.0])?;
        }
        let row = crate::audit::AuditRow {
            seq,
            at_ms: ms(at),
            origin_wall_ms: new.origin_wall_ms,
            depot_id: new.depot_id.0,
            courier_id: new.courier_id.0,
            stop_id: new.stop_id.map(|s| s.0),
            kind: serde_json::to_string(&new.kind)?,
            call: call.as_ref().map(serde_json::to_string).transpose()?,
        };
        let hash = crate::audit::link(&self.head_hash, &row);
        self.exec(
            "INSERT INTO events (seq, at, origin_wall_ms, depot_id, courier_id, stop_id, kind, call, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                seq as i64,
                row.at_ms,
                row.origin_wall_ms,
                row.depot_id,
                row.courier_id,
                row.stop_id,
                row.kind,
                row.call,
                &hash[..]
            ],
        )?;
        self.head_seq = seq;
        self.head_hash = hash;
        let event = Event {
            seq,
            at,
            origin_wall_ms: new.origin_wall_ms,
            depot_id: new.depot_id,
            courier_id: new.courier_id,
            stop_id: new.stop_id,
            kind: new.kind,
            call,
        };
        self.events.push(event.clone());
        Ok(event)
    }

    /// The log's head as seen inside this transaction.
    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }
}

type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

trait Job: Send {
    /// Runs the job; `true` if it succeeded (its savepoint is kept).
    fn run(self: Box<Self>, tx: &mut WriteTx<'_>) -> (bool, Reply);
    fn fail(self: Box<Self>, e: StoreError);
    /// When the job was handed to the writer.
    fn queued(&self) -> std::time::Instant;
}

struct TypedJob<F, T, E> {
    f: F,
    reply: oneshot::Sender<Result<T, E>>,
    queued: std::time::Instant,
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &mut WriteTx<'_>) -> (bool, Reply) {
        let TypedJob { f, reply, .. } = *self;
        let result = f(tx);
        let ok = result.is_ok();
        let reply: Reply = Box::new(move |commit| {
            let out = match commit {
                Ok(()) => result,
                Err(e) => Err(E::from(StoreError::Aborted(e.to_string()))),
            };
            // The caller may have gone away (request cancelled); nothing to do.
            let _ = reply.send(out);
        });
        (ok, reply)
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(E::from(e)));
    }

    fn queued(&self) -> std::time::Instant {
        self.queued
    }
}

/// Handle for submitting writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    killed: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on an already migrated connection.
    pub fn spawn(
        conn: Db,
        sink: Sink,
        wal: Arc<super::checkpoint::WalNeed>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let killed = Arc::new(AtomicBool::new(false));
        let k = killed.clone();
        let (committed, to_publish) = std::sync::mpsc::sync_channel::<Committed>(PUBLISH_QUEUE);
        std::thread::Builder::new()
            .name("callahead-publish".into())
            .spawn(move || publish(to_publish, sink))
            .map_err(|e| StoreError::Aborted(format!("cannot start the publisher thread: {e}")))?;
        let handle = std::thread::Builder::new()
            .name("callahead-writer".into())
            .spawn(move || run(conn, rx, committed, k, wal))
            .map_err(|e| StoreError::Aborted(format!("cannot start the writer thread: {e}")))?;
        Ok((Writer { tx, killed }, handle))
    }

    /// Runs `f` in the next group commit; resolves after the commit (and after
    /// the events it appended were published).
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob { f, reply, queued: std::time::Instant::now() });
        self.tx.send(job).await.map_err(|_| E::from(StoreError::Closed))?;
        rx.await.unwrap_or_else(|_| Err(E::from(StoreError::Closed)))
    }

    /// Queues `f` and returns at once with the receiver of its reply: jobs
    /// queued one after another run in that order, without the caller waiting
    /// for each commit.
    pub async fn enqueue<T, E, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T, E>>, StoreError>
    where
        F: FnOnce(&mut WriteTx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob { f, reply, queued: std::time::Instant::now() });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Jobs waiting for the writer thread.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Simulates a crash: the batch in flight is rolled back, nothing more is
    /// committed by this writer.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

/// Where committed events go: straight into this node's hub (SQLite: this
/// writer is the log's only one), or through the feed that merges every
/// node's commits in seq order (PostgreSQL, [`super::follow`]).
pub enum Sink {
    Hub(Arc<Hub>),
    Feed(Arc<super::follow::Feed>),
}

/// Publishes each committed group in commit order, then answers its callers.
fn publish(groups: std::sync::mpsc::Receiver<Committed>, sink: Sink) {
    for group in groups {
        if group.outcome.is_ok() {
            for e in &group.events {
                crate::metrics::durable_lag(e.origin_wall_ms);
            }
            match &sink {
                Sink::Hub(hub) => hub.publish(&group.events),
                Sink::Feed(feed) => feed.committed(&group.events),
            }
        }
        let outcome = group.outcome.as_ref().map(|_| ());
        for reply in group.replies {
            reply(outcome);
        }
    }
}

fn run(
    conn: Db,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    publisher: std::sync::mpsc::SyncSender<Committed>,
    killed: Arc<AtomicBool>,
    wal: Arc<super::checkpoint::WalNeed>,
) {
    while let Some(first) = rx.blocking_recv() {
        if killed.load(Ordering::SeqCst) {
            break;
        }
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if !run_batch(&conn, jobs, &publisher, &killed) {
            break;
        }
        if let Ok(sqlite) = conn.sqlite() {
            super::checkpoint::between_groups(sqlite, &wal);
        }
    }
    tracing::debug!("writer stopped");
}

/// The log's head after a batch.
fn tx_head(events: &[Event], head_before: u64) -> u64 {
    events.last().map_or(head_before, |e| e.seq)
}

/// On PostgreSQL, tells the other nodes (delivered at commit, not before).
fn announce(db: &Db, events: &[Event]) -> Result<(), StoreError> {
    if events.is_empty() || db.dialect() == super::Dialect::Sqlite {
        return Ok(());
    }
    db.batch(super::follow::NOTIFY)
}

/// Returns false when the writer must stop (killed).
fn run_batch(
    db: &Db,
    jobs: Vec<Box<dyn Job>>,
    publisher: &std::sync::mpsc::SyncSender<Committed>,
    killed: &AtomicBool,
) -> bool {
    let head: Result<(u64, [u8; 32]), StoreError> =
        db.begin_write().and_then(|()| super::audit::lock_head(db));
    let (head, head_hash) = match head {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            let _ = db.end(false);
            for job in jobs {
                job.fail(StoreError::Aborted(e.to_string()));
            }
            return true;
        }
    };
    let mut tx = WriteTx { db, events: Vec::new(), head_seq: head, head_hash };
    let mut replies = Vec::with_capacity(jobs.len());
    let mut broken: Option<String> = None;
    for job in jobs {
        if let Some(why) = &broken {
            job.fail(StoreError::Aborted(why.clone()));
            continue;
        }
        if let Err(e) = db.cached("SAVEPOINT job") {
            broken = Some(e.to_string());
            job.fail(e);
            continue;
        }
        crate::metrics::writer_queue_wait(job.queued().elapsed());
        let (events_before, head_before, hash_before) = (tx.events.len(), tx.head_seq, tx.head_hash);
        let ok = match std::panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut tx))) {
            Ok((ok, reply)) => {
                replies.push(reply);
                ok
            }
            Err(_) => {
                // The job's reply channel was dropped with it: its caller
                // sees an internal error. The batch goes on without it.
                tracing::error!("a write job panicked; rolled back");
                false
            }
        };
        let ended = if ok {
            db.cached("RELEASE job")
        } else {
            tx.events.truncate(events_before);
            tx.head_seq = head_before;
            tx.head_hash = hash_before;
            db.batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = ended {
            broken = Some(e.to_string());
        }
    }
    let events = std::mem::take(&mut tx.events);
    if killed.load(Ordering::SeqCst) {
        let _ = db.end(false);
        return false;
    }
    let committing = std::time::Instant::now();
    let commit = match broken {
        Some(why) => Err(StoreError::Aborted(why)),
        None => super::audit::store_head(db, head, tx.head_seq, &tx.head_hash)
            .and_then(|()| announce(db, &events))
            .and_then(|()| db.end(true)),
    };
    match &commit {
        Ok(()) => crate::metrics::writer_batch(replies.len(), committing.elapsed(), tx_head(&events, head)),
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; every job in it is rolled back");
            let _ = db.end(false);
        }
    }
    // The publisher is gone only if its thread died; then nobody hears back.
    publisher.send(Committed { events, replies, outcome: commit }).is_ok()
}
