//! Throwaway PostgreSQL databases for the test suites (docs/adr/0009): the
//! store's own tests, the server's and the end-to-end suites run on
//! PostgreSQL through these. `CALLAHEAD_TEST_PG` names a server to create
//! them on (`scripts/pg-test-cluster run …` starts a throwaway cluster and
//! sets it); `CALLAHEAD_TEST_DB=postgres` runs whole suites on it instead of
//! SQLite files ([`database_in`]). Nothing here runs unless a test asks.

use super::pg::PgConn;
use super::{Db, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const PG_ENV: &str = "CALLAHEAD_TEST_PG";

/// `postgres`: whole suites run on PostgreSQL ([`database_in`]).
pub const BACKEND_ENV: &str = "CALLAHEAD_TEST_DB";

/// A database of its own on the test server, dropped with this.
pub struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    /// `None` (and a notice) when no test server is configured.
    pub fn create(test: &str) -> Option<ScratchDb> {
        let Ok(admin) = std::env::var(PG_ENV) else {
            eprintln!(
                "skipping the PostgreSQL half of {test}: {PG_ENV} is not set (scripts/pg-test-cluster)"
            );
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let short: String = test
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(36)
            .collect();
        let name = format!("t{}_{}_{short}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        off_runtime(|| {
            let admin_db = Self::connect(&admin);
            admin_db.batch(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("{PG_ENV}: {e}"));
        });
        let url = with_database(&admin, &name);
        Some(ScratchDb { admin, name, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to this database.
    pub fn db(&self) -> Db {
        Self::connect(&self.url)
    }

    pub fn connect(url: &str) -> Db {
        Db::postgres_db(PgConn::connect(url).unwrap_or_else(|e| panic!("{PG_ENV}: {e}")))
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(admin) = PgConn::connect(&self.admin) {
                let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        })
    }
}

/// Runs `f` on a thread that drives no async tasks, where the PostgreSQL
/// client may block (a test's body runs on the runtime).
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The URL with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

/// Whether whole suites run on PostgreSQL (`CALLAHEAD_TEST_DB=postgres`).
/// Asking for it without `CALLAHEAD_TEST_PG` is a mistake in the command
/// line, not a reason to test SQLite instead: it panics saying so.
pub fn suites_on_postgres() -> bool {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("postgres") => {
            assert!(
                std::env::var(PG_ENV).is_ok(),
                "{BACKEND_ENV}=postgres needs {PG_ENV} (run under scripts/pg-test-cluster)"
            );
            true
        }
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_ENV} is sqlite or postgres, not {other:?}"),
    }
}

/// What a suite gives `--db` for the database `file` of the test living in
/// `dir`: that file, or with [`suites_on_postgres`] a PostgreSQL database
/// of its own, the same one for the same `dir` and `file` (a test that
/// restarts its server finds its data again). The database outlives the
/// test: the throwaway cluster is deleted after the run.
pub fn database_in(dir: &Path, file: &str) -> PathBuf {
    if !suites_on_postgres() {
        return dir.join(file);
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (dir, file).hash(&mut h);
    let name = format!("s{}_{:016x}", std::process::id(), h.finish());
    let admin = std::env::var(PG_ENV).unwrap_or_default();
    off_runtime(|| {
        let admin_db = ScratchDb::connect(&admin);
        match admin_db.batch(&format!("CREATE DATABASE {name}")) {
            Ok(()) => {}
            // Asked again for the same test: it is already there.
            Err(StoreError::Backend(e)) if e.contains("already exists") => {}
            Err(e) => panic!("{PG_ENV}: {e}"),
        }
    });
    PathBuf::from(with_database(&admin, &name))
}

/// What a suite's test reads straight from a server's database (`--db`,
/// either engine): each row's first column, for statements both engines
/// accept. Tests that check what is at rest (a secret sealed, a write
/// durable) use it instead of opening a SQLite file themselves.
pub fn peek<T: rusqlite::types::FromSql + Send>(
    db: &Path,
    sql: &str,
    args: &[&(dyn rusqlite::ToSql + Sync)],
) -> Result<Vec<T>, StoreError> {
    off_runtime(|| {
        let args: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| *a as &dyn rusqlite::ToSql).collect();
        let db = match super::location::Location::of(db) {
            super::location::Location::Sqlite(path) => Db::sqlite_db(rusqlite::Connection::open(path)?),
            super::location::Location::Postgres(url) => Db::postgres_db(PgConn::connect(&url)?),
        };
        db.all(sql, &args, |r| r.get::<_, T>(0))
    })
}

/// Copies the database `from` over `to` (same engine), as a restore from a
/// backup would put it back: the SQLite file with its WAL, or a PostgreSQL
/// database cloned with `CREATE DATABASE … TEMPLATE` (no one may be
/// connected to either).
pub fn copy_database(from: &Path, to: &Path) -> Result<(), StoreError> {
    use super::location::Location;
    match (Location::of(from), Location::of(to)) {
        (Location::Sqlite(from), Location::Sqlite(to)) => {
            for suffix in ["", "-wal", "-shm"] {
                let src = PathBuf::from(format!("{}{suffix}", from.display()));
                let dst = PathBuf::from(format!("{}{suffix}", to.display()));
                let _ = std::fs::remove_file(&dst);
                if src.exists() {
                    std::fs::copy(&src, &dst).map_err(|e| StoreError::Backend(format!("copy: {e}")))?;
                }
            }
            Ok(())
        }
        (Location::Postgres(from), Location::Postgres(to)) => {
            let name = |url: &str| {
                url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned()
            };
            let (src, dst) = (name(&from), name(&to));
            let admin =
                std::env::var(PG_ENV).map_err(|_| StoreError::Backend(format!("{PG_ENV} is not set")))?;
            off_runtime(|| {
                let admin = Db::postgres_db(PgConn::connect(&admin)?);
                admin.batch(&format!("DROP DATABASE IF EXISTS {dst} WITH (FORCE)"))?;
                admin.batch(&format!("CREATE DATABASE {dst} TEMPLATE {src}"))
            })
        }
        _ => Err(StoreError::Backend("a copy stays on one engine".into())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_url_keeps_the_server_and_its_options() {
        assert_eq!(
            super::with_database("postgres://u@127.0.0.1:5432/postgres", "t1"),
            "postgres://u@127.0.0.1:5432/t1"
        );
        assert_eq!(super::with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(
            super::with_database("postgresql://u@h/db?sslmode=disable", "t1"),
            "postgresql://u@h/t1?sslmode=disable"
        );
    }
}
