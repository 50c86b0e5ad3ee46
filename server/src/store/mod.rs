//! Storage, and the only code that speaks SQL (docs/architecture.md §7):
//! one writer thread ([`writer`]), a few read connections, the schema
//! ([`schema`]), the reads both sides share ([`queries`]) and one module of
//! named functions per aggregate. Callers get a [`WriteTx`] or a [`Db`],
//! never a connection, and [`StoreError`] rather than the engine's errors.

pub mod accounts;
pub mod answers;
pub mod audit;
#[cfg(test)]
mod backend_tests;
#[cfg(test)]
mod backend_tests_calls;
#[cfg(test)]
mod backend_tests_leases;
#[cfg(test)]
mod backend_tests_messaging;
pub mod backup;
pub mod call_ahead;
pub mod calls;
pub mod campaigns;
mod checkpoint;
pub mod erasure;
#[cfg(test)]
pub mod fixtures;
mod follow;
pub mod leases;
pub mod limits;
pub mod location;
pub mod messages;
pub mod offers;
mod pg;
pub mod positions;
pub mod providers;
pub mod queries;
pub mod reports;
pub mod routes;
pub mod schema;
mod schema_pg;
pub mod scratch;
mod sql;
#[cfg(test)]
pub mod testing;
pub mod tokens;
pub mod webhooks;
pub mod writer;

use crate::hub::Hub;
use chrono::{DateTime, TimeZone, Utc};
pub use location::Location;
use rusqlite::{Connection, OpenFlags};
pub use sql::{Args, Db, Dialect, Row};
use std::path::Path;
use std::sync::{Arc, Mutex};
pub use writer::{NewEvent, WriteTx, Writer};

/// Every storage failure as the rest of the server sees it: the backend's
/// own errors are classified here, so no caller depends on the engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write named a row that does not exist (a foreign key).
    #[error("missing reference: {0}")]
    MissingReference(String),
    /// A write duplicated a unique key.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// A write broke a check or not-null rule.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// Any other failure of the database engine.
    #[error("database: {0}")]
    Backend(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value does not parse back (a bug or a hand-edited file).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The transaction this job ran in was not committed.
    #[error("write not committed: {0}")]
    Aborted(String),
    /// The writer or the read pool is gone: the server is stopping.
    #[error("storage closed")]
    Closed,
    /// Something only the SQLite engine has (a checkpoint, a file copy)
    /// was asked of a PostgreSQL store.
    #[error("only the SQLite engine does this; on PostgreSQL use its own tools (docs/deploy.md)")]
    Unported,
    /// This node no longer holds the lease the job acts under: another node
    /// took the work over (docs/adr/0011). The job did nothing.
    #[error("lease lost: {0}")]
    LeaseLost(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                match f.extended_code {
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::MissingReference(e.to_string()),
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                        StoreError::Duplicate(e.to_string())
                    }
                    _ => StoreError::Invalid(e.to_string()),
                }
            }
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>, rusqlite::Error> {
    Utc.timestamp_millis_opt(v).single().ok_or(rusqlite::Error::IntegralValueOutOfRange(0, v))
}

/// Reads running at once, each on its own connection (opened on demand and
/// kept for reuse). More would not read faster on a few cores; in a
/// connection storm (10,000 apps resuming at once) they queue here instead
/// of each taking a blocking thread and opening a connection of its own.
const MAX_READERS: usize = 8;

impl Db {
    /// Runs `f` on one consistent snapshot (a read transaction), for reads
    /// that must agree with each other.
    pub fn snapshot<T, E>(&mut self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.begin_read().map_err(E::from)?;
        let out = f(self);
        // A read transaction has nothing to keep; ending it cannot lose data.
        let ended = self.end(out.is_ok());
        match (out, ended) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err(E::from(e)),
            (Err(e), _) => Err(e),
        }
    }
}

pub struct Readers {
    location: Location,
    idle: Mutex<Vec<Db>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    fn new(location: Location) -> Arc<Readers> {
        Arc::new(Readers {
            location,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_READERS),
        })
    }

    /// Runs `f` on a read connection on the blocking pool. `f` gets `&mut`
    /// so it can take a consistent snapshot ([`Db::snapshot`]).
    pub async fn read<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Db) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let permit = self.permits.acquire().await.map_err(|_| E::from(StoreError::Closed))?;
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let taken = this.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match taken {
                Some(c) => c,
                None => open_reader(&this.location).map_err(E::from)?,
            };
            let out = f(&mut conn);
            let mut idle = this.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_READERS && conn.reusable() {
                idle.push(conn);
            }
            out
        })
        .await;
        drop(permit);
        joined.unwrap_or_else(|e| {
            tracing::error!(error = %e, "read task failed");
            Err(E::from(StoreError::Closed))
        })
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL: a write is durable before anything is acknowledged; the group
    // commit amortizes the fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The server runs a few dozen distinct statements; the default cache
    // (16) would evict and re-parse them on every busy batch.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Each write job runs in a savepoint, whose sub-journal would otherwise
    // be a temporary file written for every page a job touches (12% of the
    // writer's time under load, by `perf`).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

const STATEMENT_CACHE: usize = 256;

fn open_reader(location: &Location) -> Result<Db, StoreError> {
    match location {
        Location::Sqlite(path) => {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            configure(&conn)?;
            Ok(Db::sqlite_db(conn))
        }
        Location::Postgres(url) => Ok(Db::postgres_db(pg::PgConn::connect(url)?)),
    }
}

/// The storage as the rest of the server sees it.
pub struct Store {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Dropping it ends the checkpoint thread (after a last checkpoint);
    /// SQLite only.
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `db` (a
    /// SQLite path or a PostgreSQL URL, see [`Location`]), then starts the
    /// writer.
    pub fn open(db: &Path, hub: Arc<Hub>) -> Result<Store, StoreError> {
        match Location::of(db) {
            Location::Sqlite(path) => Store::open_sqlite(&path, hub),
            location @ Location::Postgres(_) => Store::open_postgres(location, hub),
        }
    }

    fn open_sqlite(path: &Path, hub: Arc<Hub>) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!("cannot switch the database to WAL (got {mode})")));
        }
        schema::migrate(&mut conn)?;
        // Checkpoints happen on their own thread (see `checkpoint`), which
        // also keeps the WAL under its cap.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", checkpoint::WAL_SIZE_LIMIT)?;
        let (checkpoints, stop) = std::sync::mpsc::channel();
        let wal = Arc::new(checkpoint::WalNeed::default());
        let checkpoint_thread = checkpoint::spawn(path, stop, wal.clone(), checkpoint::WAL_CAP_FRAMES)
            .map_err(|e| StoreError::Aborted(format!("cannot start the checkpoint thread: {e}")))?;
        let (writer, thread) = Writer::spawn(Db::sqlite_db(conn), writer::Sink::Hub(hub), wal)?;
        Ok(Store {
            writer,
            readers: Readers::new(Location::Sqlite(path.to_owned())),
            thread: Mutex::new(Some(thread)),
            _checkpoints: Some(checkpoints),
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
        })
    }

    /// PostgreSQL (docs/adr/0009): the same writer and readers, each on
    /// its own connection; no checkpoints (the server does its own).
    fn open_postgres(location: Location, hub: Arc<Hub>) -> Result<Store, StoreError> {
        let Location::Postgres(url) = &location else {
            return Err(StoreError::Corrupt(format!("{location} is not a PostgreSQL URL")));
        };
        let db = Db::postgres_db(pg::PgConn::connect(url)?);
        schema_pg::migrate(&db)?;
        // Every node's commits reach this node's hub through the feed.
        let feed = follow::Feed::open(url, hub)?;
        follow::spawn_follower(url.clone(), &feed)?;
        let (writer, thread) =
            Writer::spawn(db, writer::Sink::Feed(feed), Arc::new(checkpoint::WalNeed::default()))?;
        Ok(Store {
            writer,
            readers: Readers::new(location),
            thread: Mutex::new(Some(thread)),
            _checkpoints: None,
            checkpoint_thread: Mutex::new(None),
        })
    }

    /// How this node claims shared work (docs/adr/0011): alone on SQLite
    /// (nothing written), or as a registered node on PostgreSQL, on a
    /// connection of its own. Blocks: call it where blocking is allowed.
    /// `node_id` names this node among the others (`--node-id`); a node
    /// restarted under its id takes its own work back at once.
    pub fn claims(
        &self,
        clock: callahead_core::clock::SharedClock,
        node_id: Option<String>,
    ) -> Result<Arc<leases::Claims>, StoreError> {
        match &self.readers.location {
            Location::Sqlite(_) => Ok(leases::Claims::sole(clock)),
            Location::Postgres(url) => {
                leases::Claims::shared(Db::postgres_db(pg::PgConn::connect(url)?), clock, node_id)
            }
        }
    }

    /// Takes the writer thread's handle, to join it once every sender is gone.
    pub fn take_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Takes the checkpoint thread's handle: it ends (after a last
    /// checkpoint) once this store is dropped. A clean stop waits for it, so
    /// the files on disk are quiet when the process says it stopped.
    pub fn take_checkpoint_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        self.checkpoint_thread.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
