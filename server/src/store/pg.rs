//! One PostgreSQL connection as the executor uses it (docs/adr/0009): the
//! statement cache keyed by the common-dialect text, `?N` turned into `$N`
//! once per statement, parameters bound as the types the server asks for,
//! columns read back as SQLite values for the rows' `FromSql` mappers, and
//! SQLSTATEs classified into [`StoreError`].

use super::StoreError;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::cell::RefCell;
use std::collections::HashMap;

/// Distinct statements a connection keeps prepared. The server has a few
/// hundred; past this the cache starts again (text built with values in it
/// would otherwise grow it without end).
const STATEMENT_CACHE: usize = 1024;

/// Blocking, like the SQLite connection: used on the writer thread and in
/// `spawn_blocking`, never on a thread that drives async tasks (the client
/// runs its own small runtime and would refuse to block there).
pub struct PgConn {
    /// `None` only while being dropped.
    inner: Option<RefCell<Inner>>,
}

struct Inner {
    client: Client,
    statements: HashMap<String, Statement>,
    /// A transaction was begun and not ended (or ending it failed).
    in_tx: bool,
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        match e.code() {
            Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::MissingReference(text),
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Duplicate(text),
            Some(c) if *c == SqlState::NOT_NULL_VIOLATION || *c == SqlState::CHECK_VIOLATION => {
                StoreError::Invalid(text)
            }
            _ => StoreError::Backend(text),
        }
    }
}

impl PgConn {
    pub fn connect(url: &str) -> Result<PgConn, StoreError> {
        let connect = || {
            Client::connect(url, NoTls).map_err(|e| {
                // The URL stays out of the message: it may hold a password.
                StoreError::Backend(format!("cannot connect to PostgreSQL: {e}"))
            })
        };
        // Opened from async code (a test, a store opened on the runtime):
        // on a thread of its own, where the client may block.
        let client = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(connect).join()).map_err(|_| StoreError::Closed)??
        } else {
            connect()?
        };
        let inner = Inner { client, statements: HashMap::new(), in_tx: false };
        Ok(PgConn { inner: Some(RefCell::new(inner)) })
    }

    fn inner(&self) -> Result<std::cell::RefMut<'_, Inner>, StoreError> {
        self.inner.as_ref().map(RefCell::borrow_mut).ok_or(StoreError::Closed)
    }

    /// Whether this connection can go back to the pool.
    pub fn reusable(&self) -> bool {
        self.inner().is_ok_and(|inner| !inner.in_tx && !inner.client.is_closed())
    }

    /// Runs statements without parameters (transaction control, DDL).
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.inner()?.client.batch_execute(sql)?)
    }

    /// `BEGIN …`, `COMMIT`, `ROLLBACK`: tracked, so a connection left in a
    /// transaction is not reused.
    pub fn begin(&self, sql: &str) -> Result<(), StoreError> {
        let mut inner = self.inner()?;
        inner.in_tx = true;
        Ok(inner.client.batch_execute(sql)?)
    }

    pub fn end(&self, sql: &str) -> Result<(), StoreError> {
        let mut inner = self.inner()?;
        inner.client.batch_execute(sql)?;
        inner.in_tx = false;
        Ok(())
    }

    pub fn execute(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<usize, StoreError> {
        let mut inner = self.inner()?;
        let stmt = inner.prepared(sql)?;
        let outputs = outputs(args)?;
        let typed = typed_args(&outputs, stmt.params())?;
        let n = inner.client.execute(&stmt, &refs(&typed))?;
        Ok(n as usize)
    }

    pub fn query(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<postgres::Row>, StoreError> {
        let mut inner = self.inner()?;
        let stmt = inner.prepared(sql)?;
        let outputs = outputs(args)?;
        let typed = typed_args(&outputs, stmt.params())?;
        Ok(inner.client.query(&stmt, &refs(&typed))?)
    }
}

impl Drop for PgConn {
    /// Closing blocks on the client's runtime: where that is not allowed
    /// (the last reader pool dropped by an async task), it closes on a
    /// thread of its own.
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ =
                    std::thread::Builder::new().name("callahead-pg-close".into()).spawn(move || drop(inner));
            }
        }
    }
}

impl Inner {
    fn prepared(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(&placeholders(sql))?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// `?N` → `$N` outside quoted text; a bare `?` takes the next number, as
/// SQLite numbers it.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for q in chars.by_ref() {
                    out.push(q);
                    // A doubled quote closes and reopens: same result.
                    if q == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for q in chars.by_ref() {
                    out.push(q);
                    if q == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = if digits.is_empty() { highest + 1 } else { digits.parse().unwrap_or(u32::MAX) };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

fn outputs<'a>(args: &'a [&'a dyn rusqlite::ToSql]) -> Result<Vec<ToSqlOutput<'a>>, StoreError> {
    args.iter().map(|a| a.to_sql().map_err(|e| StoreError::Invalid(e.to_string()))).collect()
}

/// A parameter as the Rust type PostgreSQL expects for it.
enum Typed<'a> {
    I64(Option<i64>),
    I32(Option<i32>),
    I16(Option<i16>),
    Bool(Option<bool>),
    F64(Option<f64>),
    Text(Option<&'a str>),
    Bytes(Option<&'a [u8]>),
}

fn typed_args<'a>(values: &'a [ToSqlOutput<'a>], types: &[Type]) -> Result<Vec<Typed<'a>>, StoreError> {
    if values.len() != types.len() {
        return Err(StoreError::Invalid(format!(
            "the statement takes {} parameters, {} were given",
            types.len(),
            values.len()
        )));
    }
    values
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (v, ty))| {
            let v = match v {
                ToSqlOutput::Borrowed(v) => *v,
                ToSqlOutput::Owned(v) => ValueRef::from(v),
                _ => return Err(StoreError::Invalid(format!("parameter {} is not a plain value", i + 1))),
            };
            typed(v, ty).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "parameter {} is {:?}, the statement wants {ty}",
                    i + 1,
                    v.data_type()
                ))
            })
        })
        .collect()
}

fn typed<'a>(v: ValueRef<'a>, ty: &Type) -> Option<Typed<'a>> {
    let int = match v {
        ValueRef::Integer(i) => Some(Some(i)),
        ValueRef::Null => Some(None),
        _ => None,
    };
    Some(match *ty {
        Type::INT8 => Typed::I64(int?),
        Type::INT4 => Typed::I32(int?.map(i32::try_from).transpose().ok()?),
        Type::INT2 => Typed::I16(int?.map(i16::try_from).transpose().ok()?),
        Type::BOOL => Typed::Bool(int?.map(|i| i != 0)),
        Type::FLOAT8 => Typed::F64(match v {
            ValueRef::Real(f) => Some(f),
            ValueRef::Integer(i) => Some(i as f64),
            ValueRef::Null => None,
            _ => return None,
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Typed::Text(match v {
            ValueRef::Text(t) => Some(std::str::from_utf8(t).ok()?),
            ValueRef::Null => None,
            _ => return None,
        }),
        Type::BYTEA => Typed::Bytes(match v {
            ValueRef::Blob(b) => Some(b),
            ValueRef::Null => None,
            _ => return None,
        }),
        _ => return None,
    })
}

fn refs<'a>(typed: &'a [Typed<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    typed
        .iter()
        .map(|t| -> &(dyn ToSql + Sync) {
            match t {
                Typed::I64(v) => v,
                Typed::I32(v) => v,
                Typed::I16(v) => v,
                Typed::Bool(v) => v,
                Typed::F64(v) => v,
                Typed::Text(v) => v,
                Typed::Bytes(v) => v,
            }
        })
        .collect()
}

/// Column `i` of a PostgreSQL row as the `FromSql` type a mapper asks for,
/// by way of the SQLite value it would have been.
pub(super) fn get<T: rusqlite::types::FromSql>(row: &postgres::Row, i: usize) -> rusqlite::Result<T> {
    let Some(column) = row.columns().get(i) else {
        return Err(rusqlite::Error::InvalidColumnIndex(i));
    };
    let failed = |e: postgres::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Null, Box::new(e))
    };
    let value: ValueRef<'_> = match *column.type_() {
        Type::INT8 => {
            row.try_get::<_, Option<i64>>(i).map_err(failed)?.map_or(ValueRef::Null, ValueRef::Integer)
        }
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(failed)?
            .map_or(ValueRef::Null, |v| ValueRef::Integer(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(failed)?
            .map_or(ValueRef::Null, |v| ValueRef::Integer(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(failed)?
            .map_or(ValueRef::Null, |v| ValueRef::Integer(v.into())),
        Type::FLOAT8 => {
            row.try_get::<_, Option<f64>>(i).map_err(failed)?.map_or(ValueRef::Null, ValueRef::Real)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<&str>>(i)
            .map_err(failed)?
            .map_or(ValueRef::Null, |s| ValueRef::Text(s.as_bytes())),
        Type::BYTEA => {
            row.try_get::<_, Option<&[u8]>>(i).map_err(failed)?.map_or(ValueRef::Null, ValueRef::Blob)
        }
        ref other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                i,
                rusqlite::types::Type::Null,
                format!("column {} is of type {other}, which the store does not read", column.name()).into(),
            ))
        }
    };
    T::column_result(value).map_err(|e| match e {
        rusqlite::types::FromSqlError::InvalidType => {
            rusqlite::Error::InvalidColumnType(i, column.name().to_owned(), value.data_type())
        }
        rusqlite::types::FromSqlError::OutOfRange(v) => rusqlite::Error::IntegralValueOutOfRange(i, v),
        other => rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn question_marks_become_dollars_outside_quotes() {
        assert_eq!(placeholders("UPDATE t SET a = ?2 WHERE id = ?1"), "UPDATE t SET a = $2 WHERE id = $1");
        assert_eq!(
            placeholders("SELECT '?1', \"a?\" FROM t WHERE x = ?1"),
            "SELECT '?1', \"a?\" FROM t WHERE x = $1"
        );
        assert_eq!(placeholders("SELECT 'it''s ?' , ?3"), "SELECT 'it''s ?' , $3");
        assert_eq!(placeholders("SELECT ? , ?, ?5, ?"), "SELECT $1 , $2, $5, $6");
        assert_eq!(placeholders("SELECT 1 -- what?\n, ?1"), "SELECT 1 -- what?\n, $1");
        assert_eq!(placeholders("?10 + ?1"), "$10 + $1");
    }
}
