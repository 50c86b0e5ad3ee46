//! `callahead-server backup`: an online copy of the database while the
//! server runs. `VACUUM INTO` reads one consistent snapshot (a read
//! transaction, which WAL lets run beside the writer) and writes a compact
//! file; the copy is then checked with `PRAGMA integrity_check`.

use rusqlite::{Connection, OpenFlags};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file")]
    Exists(std::path::PathBuf),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Store(#[from] super::StoreError),
    #[error("the copy fails its integrity check: {0}")]
    Corrupt(String),
    #[error("{0} is a PostgreSQL database: back it up with PostgreSQL's own tools (pg_dump, base backups); this command copies SQLite files")]
    Postgres(super::Location),
}

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub bytes: u64,
    pub schema_version: i64,
    pub head_seq: u64,
}

pub fn backup(db: &Path, to: &Path) -> Result<Backup, BackupError> {
    if let location @ super::Location::Postgres(_) = super::Location::of(db) {
        return Err(BackupError::Postgres(location));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let conn =
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to.to_str().ok_or_else(|| BackupError::Corrupt("the target path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    check(to)
}

/// Opens a copy and checks it as a restore would.
pub fn check(path: &Path) -> Result<Backup, BackupError> {
    let copy = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(BackupError::Corrupt(verdict));
    }
    let schema_version = copy.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let head_seq = super::queries::head_seq(&super::Db::sqlite_db(copy))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(Backup { bytes, schema_version, head_seq })
}
