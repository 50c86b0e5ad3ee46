//! The audit chain's rows (docs/audit.md): the head link the writer extends,
//! the walk `audit verify` makes, digests and one stop's history.

use super::StoreError;
use crate::audit::{AuditRow, Broken, Verifier, GENESIS};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::Path;

const ROW_COLS: &str = "seq, at, origin_wall_ms, depot_id, courier_id, stop_id, kind, call, hash";

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AuditRow, Option<Vec<u8>>)> {
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

/// The log's head seq and its link (0 and the genesis link when empty).
pub fn head_link(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let head = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<Vec<u8>>>(1)?)))
        .optional()?;
    match head {
        None => Ok((0, GENESIS)),
        Some((seq, hash)) => Ok((seq, hash32(hash, seq)?)),
    }
}

/// Links every event of a log written before the chain existed (schema 18).
pub(super) fn backfill(conn: &Connection) -> rusqlite::Result<u64> {
    let mut prev = GENESIS;
    let mut n = 0;
    let mut read = conn.prepare(&format!("SELECT {ROW_COLS} FROM events ORDER BY seq"))?;
    let mut write = conn.prepare("UPDATE events SET hash = ?1 WHERE seq = ?2")?;
    let mut rows = read.query([])?;
    while let Some(r) = rows.next()? {
        let (row, _) = audit_row(r)?;
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

/// Recomputes the whole chain of the database at `path` (opened read-only,
/// so a running server can be checked too), stopping at the first break.
pub fn verify(path: &Path, mut verifier: Verifier) -> Result<Verified, VerifyError> {
    if !path.exists() {
        return Err(StoreError::Corrupt(format!("no database at {}", path.display())).into());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 18 {
        return Err(StoreError::Corrupt(format!(
            "the database is at schema version {version}, before the audit chain (18): start the server on it once to upgrade and link its log"
        ))
        .into());
    }
    // One snapshot for the whole walk.
    conn.execute_batch("BEGIN")?;
    let mut stmt = conn.prepare(&format!("SELECT {ROW_COLS} FROM events ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut events = 0;
    while let Some(r) = rows.next()? {
        let (row, hash) = audit_row(r)?;
        verifier.check(&row, hash.as_deref())?;
        events += 1;
    }
    let (head_seq, head_hash) = verifier.finish()?;
    Ok(Verified { events, head_seq, head_hash })
}

/// The last event at or before `until_ms` (the head when `None`): a digest.
pub fn digest(db: &super::Db, until_ms: Option<i64>) -> Result<Option<(u64, i64, [u8; 32])>, StoreError> {
    let conn = &db.conn;
    let found = match until_ms {
        None => conn
            .prepare_cached("SELECT seq, at, hash FROM events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
            })
            .optional()?,
        // Events are appended in time order, so the seq at a time is found
        // by time; `at` is not indexed, but this runs once a day per partner.
        Some(until) => conn
            .prepare_cached("SELECT seq, at, hash FROM events WHERE at <= ?1 ORDER BY seq DESC LIMIT 1")?
            .query_row([until], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
            })
            .optional()?,
    };
    found.map(|(seq, at, hash)| Ok((seq as u64, at, hash32(hash, seq as u64)?))).transpose()
}

/// The chain's link at `seq`, if that event exists.
pub fn link_of(db: &super::Db, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
    let hash = db
        .conn
        .prepare_cached("SELECT hash FROM events WHERE seq = ?1")?
        .query_row([seq as i64], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?;
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
pub fn stop_history(db: &super::Db, stop: i64) -> Result<Vec<Linked>, StoreError> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {ROW_COLS}, (SELECT p.hash FROM events p WHERE p.seq = e.seq - 1)
         FROM events e WHERE {} ORDER BY seq",
        super::queries::OF_STOP
    ))?;
    let rows = stmt
        .query_map([stop], |r| {
            let (row, hash) = audit_row(r)?;
            Ok((row, hash, r.get::<_, Option<Vec<u8>>>(9)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(row, hash, prev)| {
            let seq = row.seq;
            let prev_hash = if seq == 1 { GENESIS } else { hash32(prev, seq - 1)? };
            Ok(Linked { hash: hash32(hash, seq)?, prev_hash, row })
        })
        .collect()
}
