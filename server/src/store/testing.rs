//! The backends the store's tests run on (docs/adr/0009): a SQLite file
//! always, and a fresh PostgreSQL database ([`super::scratch`]) when
//! `CALLAHEAD_TEST_PG` names a server; each test's database is dropped
//! afterwards. Unset, the PostgreSQL half is skipped with a notice on stderr.

pub use super::scratch::{off_runtime, ScratchDb as PgTestDb};
use super::Store;
use crate::hub::Hub;

/// A store on one backend, and what it lives in (removed after it).
pub struct TestStore {
    pub store: Store,
    pub backend: &'static str,
    /// What `--db` would say: the file, or the URL.
    pub db: std::path::PathBuf,
    _place: Place,
}

enum Place {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgTestDb),
    /// Kept by the test itself.
    Elsewhere,
}

impl TestStore {
    /// A store whose database the test keeps alive itself.
    pub fn on(store: Store, backend: &'static str, db: std::path::PathBuf) -> TestStore {
        TestStore { store, backend, db, _place: Place::Elsewhere }
    }
}

/// A migrated store on SQLite, and one on PostgreSQL when configured.
pub fn stores(test: &str) -> Vec<TestStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.db");
    let sqlite = Store::open(&path, Hub::new()).expect("open SQLite");
    let mut out = vec![TestStore { store: sqlite, backend: "sqlite", db: path, _place: Place::Dir(dir) }];
    if let Some(pg) = PgTestDb::create(test) {
        let db = std::path::PathBuf::from(pg.url());
        let store = off_runtime(|| Store::open(&db, Hub::new())).expect("open PostgreSQL");
        out.push(TestStore { store, backend: "postgres", db, _place: Place::Pg(pg) });
    }
    out
}

/// SQLite's schema as the parity test compares it with PostgreSQL's:
/// `table.column: kind null|not null` and `index name (columns) partial=…`.
pub fn sqlite_describe_for_parity() -> (Vec<String>, Vec<String>) {
    let mut conn = rusqlite::Connection::open_in_memory().expect("open");
    super::schema::migrate(&mut conn).expect("migrate");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    let mut columns = Vec::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({t})")).expect("table_info");
        let cols = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(5)?))
            })
            .expect("columns")
            .collect::<Result<Vec<_>, _>>()
            .expect("columns");
        for (name, ty, notnull, pk) in cols {
            // A key column is never null (SQLite would allow it in a TEXT
            // key; nothing here ever stores one).
            let null = if notnull == 1 || pk > 0 { "not null" } else { "null" };
            columns.push(format!("{t}.{name}: {} {null}", ty.to_ascii_lowercase()));
        }
    }
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .expect("prepare")
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("indexes")
        .collect::<Result<Vec<_>, _>>()
        .expect("indexes")
        .into_iter()
        .map(|(name, sql)| {
            let cols =
                sql.split_once('(').and_then(|(_, rest)| rest.split_once(')')).map(|(c, _)| c.to_owned());
            format!("index {name} ({}) partial={}", cols.unwrap_or_default(), sql.contains(" WHERE "))
        })
        .collect();
    columns.sort();
    indexes.sort();
    (columns, indexes)
}

/// A fixed instant `secs` after the store tests' epoch.
pub fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.timestamp_opt(1_800_000_000 + secs, 0).single().expect("time")
}

/// Runs `f` on the store's read pool; a failure names the backend.
pub async fn read<T: Send + 'static>(
    t: &TestStore,
    f: impl FnOnce(&super::Db) -> Result<T, super::StoreError> + Send + 'static,
) -> T {
    let backend = t.backend;
    t.store.readers.read(move |db| f(db)).await.unwrap_or_else(|e| panic!("{backend}: {e}"))
}

/// Runs `f` in the store's next group commit; a failure names the backend.
pub async fn write<T: Send + 'static>(
    t: &TestStore,
    f: impl FnOnce(&mut super::WriteTx<'_>) -> Result<T, super::StoreError> + Send + 'static,
) -> T {
    let backend = t.backend;
    t.store.writer.write(f).await.unwrap_or_else(|e| panic!("{backend}: {e}"))
}
