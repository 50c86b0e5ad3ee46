//! The executor every ported store function runs its SQL through
//! (docs/adr/0009): one statement text in the dialect both engines accept,
//! parameters as `rusqlite::ToSql` values (`params![…]`), rows read through
//! [`Row`] with the same `FromSql` mappers on either engine. On SQLite it is
//! what the functions did before (the connection's statement cache, bind,
//! step); on PostgreSQL see [`super::pg`].

use super::pg::PgConn;
use super::StoreError;
use rusqlite::{Connection, ToSql};

/// The parameters of one statement.
pub type Args<'a> = &'a [&'a dyn ToSql];

/// Which engine a connection speaks, for the few statements that cannot be
/// one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub(super) enum Conn {
    Sqlite(Connection),
    /// Boxed: the client is larger than SQLite's handle, and only the
    /// PostgreSQL path pays the indirection.
    Postgres(Box<PgConn>),
}

/// A database connection as the rest of the server sees it: opaque. Only the
/// named functions in `store/` use what is inside (a read connection from
/// [`super::Readers`], or the writer's, reached through
/// [`super::WriteTx::db`]).
pub struct Db {
    pub(super) conn: Conn,
}

/// One row of a result, on either engine.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// A column position (rows are read by position on both engines).
pub trait ColumnIndex: Copy {
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// Column `i` as `T`, converted as SQLite would convert it.
    pub fn get<I: ColumnIndex, T: rusqlite::types::FromSql>(&self, i: I) -> rusqlite::Result<T> {
        match self {
            Row::Sqlite(r) => r.get(i.index()),
            Row::Postgres(r) => super::pg::get(r, i.index()),
        }
    }
}

impl Db {
    pub(super) fn sqlite_db(conn: Connection) -> Db {
        Db { conn: Conn::Sqlite(conn) }
    }

    pub(super) fn postgres_db(conn: PgConn) -> Db {
        Db { conn: Conn::Postgres(Box::new(conn)) }
    }

    pub fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (checkpoints, the
    /// file backup): on PostgreSQL such code fails here, before running
    /// anything. Every statement of the domain goes through the executor.
    pub(super) fn sqlite(&self) -> Result<&Connection, StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c),
            Conn::Postgres(_) => Err(StoreError::Unported),
        }
    }

    /// Runs a statement; the rows it changed.
    pub(super) fn exec(&self, sql: &str, args: Args<'_>) -> Result<usize, StoreError> {
        match &self.conn {
            // Through the statement cache: the hot paths run the same few
            // statements thousands of times, and parsing them again each
            // time was the writer's largest cost after fsync.
            Conn::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(args)?),
            Conn::Postgres(c) => c.execute(sql, args),
        }
    }

    /// The first row, if any, mapped by `f`.
    pub(super) fn opt<T, E>(
        &self,
        sql: &str,
        args: Args<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T, E>,
    ) -> Result<Option<T>, StoreError>
    where
        StoreError: From<E>,
    {
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(args)?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row::Sqlite(r))?)),
                    None => Ok(None),
                }
            }
            Conn::Postgres(c) => match c.query(sql, args)?.first() {
                Some(r) => Ok(Some(f(&Row::Postgres(r))?)),
                None => Ok(None),
            },
        }
    }

    /// The first row, which must exist (an aggregate, `RETURNING`).
    pub(super) fn one<T, E>(
        &self,
        sql: &str,
        args: Args<'_>,
        f: impl FnOnce(&Row<'_>) -> Result<T, E>,
    ) -> Result<T, StoreError>
    where
        StoreError: From<E>,
    {
        self.opt(sql, args, f)?.ok_or_else(|| StoreError::Backend(format!("no row from: {sql}")))
    }

    /// Every row, each mapped by `f`.
    pub(super) fn all<T, E>(
        &self,
        sql: &str,
        args: Args<'_>,
        mut f: impl FnMut(&Row<'_>) -> Result<T, E>,
    ) -> Result<Vec<T>, StoreError>
    where
        StoreError: From<E>,
    {
        let mut out = Vec::new();
        match &self.conn {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(args)?;
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
            }
            Conn::Postgres(c) => {
                for r in &c.query(sql, args)? {
                    out.push(f(&Row::Postgres(r))?);
                }
            }
        }
        Ok(out)
    }

    /// Begins a read snapshot: every read until [`Db::end`] sees one state.
    pub(super) fn begin_read(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch("BEGIN DEFERRED")?),
            Conn::Postgres(c) => c.begin("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at
    /// once; on PostgreSQL the group's order comes from the log's head row
    /// (`audit::lock_head`), in READ COMMITTED so that locked read sees the
    /// head the previous group committed.
    pub(super) fn begin_write(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Conn::Postgres(c) => c.begin("BEGIN ISOLATION LEVEL READ COMMITTED"),
        }
    }

    /// Commits (`true`) or rolls back the open transaction.
    pub(super) fn end(&self, commit: bool) -> Result<(), StoreError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.end(sql),
        }
    }

    /// Statements without parameters or results (savepoints, DDL).
    pub(super) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// One cached statement without parameters or results (the writer's
    /// savepoints, run once per job).
    pub(super) fn cached(&self, sql: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(c) => c.prepare_cached(sql)?.execute([]).map(drop).map_err(StoreError::from),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// Whether this connection can serve another read: not in a
    /// transaction, not broken.
    pub(super) fn reusable(&self) -> bool {
        match &self.conn {
            Conn::Sqlite(c) => c.is_autocommit(),
            Conn::Postgres(c) => c.reusable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{params, Connection};

    /// Why the common dialect keeps `?N` (docs/adr/0009): SQLite reads `$N`
    /// as a *name*, numbered by first appearance, not by its digits.
    #[test]
    fn sqlite_numbers_dollar_parameters_by_first_appearance() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x')")
            .expect("table");
        let n = conn.execute("UPDATE t SET a = $2 WHERE id = $1", params![1, "y"]).expect("update");
        assert_eq!(n, 0, "$2 took the first argument (1) and $1 the second ('y'): no row matched");
        let n = conn.execute("UPDATE t SET a = ?2 WHERE id = ?1", params![1, "y"]).expect("update");
        assert_eq!(n, 1, "?N is bound by its number");
        let v: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0)).expect("version");
        let minor: u32 = v.split('.').nth(1).and_then(|m| m.parse().ok()).expect("minor");
        assert!(minor >= 35, "RETURNING needs SQLite 3.35, bundled is {v}");
    }
}
