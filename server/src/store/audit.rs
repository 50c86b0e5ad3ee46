//! The audit chain's rows (docs/audit.md): the head link the writer extends,
//! the walk `audit verify` makes, digests and one stop's history.

use super::{Db, Dialect, Row, StoreError};
use crate::audit::{AuditRow, Broken, Verifier, GENESIS};
use rusqlite::{params, Connection, OpenFlags};
use std::path::Path;

const ROW_COLS: &str = "seq, at, origin_wall_ms, depot_id, courier_id, stop_id, kind, call, hash";

fn audit_row(r: &Row<'_>) -> rusqlite::Result<(AuditRow, Option<Vec<u8>>)> {
    Ok((
        AuditRow {
            seq: r.get::<_, i64>(0)? as u64,
            at_ms: r.get(1)?,
            origin_wall_ms: r.get(2)?,
            depot_id: r.get(3)?,
            courier_id: r.get(4)?,
            stop_id: r.get(5)?,
            kind: r.get(6)?,
            call: r.get(7)?,
        },
        r.get(8)?,
    ))
}

fn hash32(bytes: Option<Vec<u8>>, seq: u64) -> Result<[u8; 32], StoreError> {
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("event {seq} has no audit hash")))
}

fn seq_and_hash(r: &Row<'_>) -> rusqlite::Result<(u64, Option<Vec<u8>>)> {
    Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
}

/// The log's head seq and its link (0 and the genesis link when empty), as
/// a new write group starts from it. On SQLite the group already holds the
/// write lock and the head is the last event. On PostgreSQL the head row is
/// locked for the rest of the group, so groups of every node append in turn
/// (docs/adr/0009).
pub(super) fn lock_head(db: &Db) -> Result<(u64, [u8; 32]), StoreError> {
    let sql = match db.dialect() {
        Dialect::Sqlite => "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
        Dialect::Postgres => "SELECT seq, hash FROM event_head WHERE id = 1 FOR UPDATE",
    };
    match db.opt(sql, params![], seq_and_hash)? {
        None if db.dialect() == Dialect::Postgres => {
            Err(StoreError::Corrupt("the event_head row is missing".into()))
        }
        None | Some((0, None)) => Ok((0, GENESIS)),
        Some((seq, hash)) => Ok((seq, hash32(hash, seq)?)),
    }
}

/// Records the head a group moved the log to (`before` → `seq`), in that
/// group's transaction. SQLite's head is its last event: nothing to write.
pub(super) fn store_head(db: &Db, before: u64, seq: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
    if db.dialect() == Dialect::Postgres && seq != before {
        db.exec("UPDATE event_head SET seq = ?1, hash = ?2 WHERE id = 1", params![seq as i64, &hash[..]])?;
    }
    Ok(())
}

/// Links every event of a log written before the chain existed (schema 18).
pub(super) fn backfill(conn: &Connection) -> rusqlite::Result<u64> {
    let mut prev = GENESIS;
    let mut n = 0;
    let mut read = conn.prepare(&format!("SELECT {ROW_COLS} FROM events ORDER BY seq"))?;
    let mut write = conn.prepare("UPDATE events SET hash = ?1 WHERE seq = ?2")?;
    let mut rows = read.query([])?;
    while let Some(r) = rows.next()? {
        let (row, _) = audit_row(&Row::Sqlite(r))?;
        prev = crate::audit::link(&prev, &row);
        write.execute(params![&prev[..], row.seq as i64])?;
        n += 1;
    }
    Ok(n)
}

/// What `audit verify` found.
#[derive(Debug)]
pub struct Verified {
    pub events: u64,
    pub head_seq: u64,
    pub head_hash: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Broken(#[from] Broken),
    #[error("cannot read the database: {0}")]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for VerifyError {
    fn from(e: rusqlite::Error) -> Self {
        VerifyError::Store(StoreError::from(e))
    }
}

/// Events read per page of the walk (one snapshot for the whole walk).
const VERIFY_PAGE: i64 = 10_000;

/// Recomputes the whole chain of the database at `db` (a SQLite file,
/// opened read-only, or a PostgreSQL URL; a running server can be checked
/// too), stopping at the first break.
pub fn verify(db: &Path, mut verifier: Verifier) -> Result<Verified, VerifyError> {
    let (mut db, version) = match super::Location::of(db) {
        super::Location::Sqlite(path) => {
            if !path.exists() {
                return Err(StoreError::Corrupt(format!("no database at {}", path.display())).into());
            }
            let db = Db::sqlite_db(Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?);
            let version: i64 = db.one("PRAGMA user_version", params![], |r| r.get(0))?;
            (db, version)
        }
        super::Location::Postgres(url) => {
            let db = Db::postgres_db(super::pg::PgConn::connect(&url)?);
            let version = super::schema_pg::version(&db)?;
            (db, version)
        }
    };
    if version < 18 {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, before the audit chain (18): start the server on it once to upgrade and link its log"
        ))
        .into());
    }
    let events = db.snapshot(|db| {
        let (mut events, mut after) = (0, 0u64);
        loop {
            let page = db.all(
                &format!("SELECT {ROW_COLS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after as i64, VERIFY_PAGE],
                audit_row,
            )?;
            let Some((last, _)) = page.last() else { break };
            after = last.seq;
            for (row, hash) in &page {
                verifier.check(row, hash.as_deref())?;
                events += 1;
            }
        }
        Ok::<_, VerifyError>(events)
    })?;
    let (head_seq, head_hash) = verifier.finish()?;
    Ok(Verified { events, head_seq, head_hash })
}

fn seq_at_hash(r: &Row<'_>) -> rusqlite::Result<(i64, i64, Option<Vec<u8>>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// The last event at or before `until_ms` (the head when `None`): a digest.
pub fn digest(db: &Db, until_ms: Option<i64>) -> Result<Option<(u64, i64, [u8; 32])>, StoreError> {
    let found = match until_ms {
        None => {
            db.opt("SELECT seq, at, hash FROM events ORDER BY seq DESC LIMIT 1", params![], seq_at_hash)?
        }
        // Events are appended in time order, so the seq at a time is found
        // by time; `at` is not indexed, but this runs once a day per partner.
        Some(until) => db.opt(
            "SELECT seq, at, hash FROM events WHERE at <= ?1 ORDER BY seq DESC LIMIT 1",
            params![until],
            seq_at_hash,
        )?,
    };
    found.map(|(seq, at, hash)| Ok((seq as u64, at, hash32(hash, seq as u64)?))).transpose()
}

/// The chain's link at `seq`, if that event exists.
pub fn link_of(db: &Db, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    let hash = db.opt("SELECT hash FROM events WHERE seq = ?1", params![seq as i64], |r| {
        r.get::<_, Option<Vec<u8>>>(0)
    })?;
    hash.map(|h| hash32(h, seq)).transpose()
}

/// One stored event of a stop with its link to the one before it.
#[derive(Debug)]
pub struct Linked {
    pub row: AuditRow,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Every event about `stop` in seq order, each with the hash before it.
pub fn stop_history(db: &Db, stop: i64) -> Result<Vec<Linked>, StoreError> {
    let rows = db.all(
        &format!(
            "SELECT {ROW_COLS}, (SELECT p.hash FROM events p WHERE p.seq = e.seq - 1)
             FROM events e WHERE {} ORDER BY seq",
            super::queries::OF_STOP
        ),
        params![stop],
        |r| {
            let (row, hash) = audit_row(r)?;
            Ok::<_, rusqlite::Error>((row, hash, r.get::<_, Option<Vec<u8>>>(9)?))
        },
    )?;
    rows.into_iter()
        .map(|(row, hash, prev)| {
            let seq = row.seq;
            let prev_hash = if seq == 1 { GENESIS } else { hash32(prev, seq - 1)? };
            Ok(Linked { hash: hash32(hash, seq)?, prev_hash, row })
        })
        .collect()
}
