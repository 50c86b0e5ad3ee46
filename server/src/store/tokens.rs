//! The `tokens` table (docs/adr/0007): bearer tokens by their SHA-256, each
//! with its role, subject, expiry, revocation and last use. A courier's
//! sign-in is a *family*: an access token and a refresh token issued
//! together, replaced together at every refresh. Only hashes are stored.

use super::queries::opt_ms;
use super::{from_ms, ms, Db, Row, StoreError, WriteTx};
use callahead_core::wire::TokenInfo;
use callahead_core::DepotId;
use chrono::{DateTime, Utc};
use rusqlite::params;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Presented as `Authorization: Bearer`.
    Access,
    /// Exchanged once for a new pair at `/v1/auth/refresh`, never a bearer.
    Refresh,
    /// The admin token from `CALLAHEAD_ADMIN_TOKEN`: replaced whenever the
    /// variable changes, revoked when it is unset.
    Bootstrap,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Refresh => "refresh",
            Kind::Bootstrap => "bootstrap",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "access" => Some(Kind::Access),
            "refresh" => Some(Kind::Refresh),
            "bootstrap" => Some(Kind::Bootstrap),
            _ => None,
        }
    }
}

/// One stored token.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub role: String,
    pub kind: Kind,
    pub subject_id: Option<i64>,
    pub depot_id: Option<i64>,
    pub name: String,
    pub family: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// A refresh token already exchanged.
    pub rotated_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id,
            role: self.role.clone(),
            kind: self.kind.as_str().to_owned(),
            subject_id: self.subject_id,
            depot_id: self.depot_id.map(DepotId),
            name: self.name.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked: self.revoked,
        }
    }
}

const COLS: &str = "id, role, kind, subject_id, depot_id, name, family, created_at, expires_at, rotated_at, \
                    revoked, last_used_at";

fn row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    let kind: String = r.get(2)?;
    Ok(TokenRow {
        id: r.get(0)?,
        role: r.get(1)?,
        kind: Kind::parse(&kind).ok_or_else(|| super::queries::corrupt(format!("token kind {kind:?}")))?,
        subject_id: r.get(3)?,
        depot_id: r.get(4)?,
        name: r.get(5)?,
        family: r.get(6)?,
        created_at: from_ms(r.get(7)?)?,
        expires_at: opt_ms(r.get(8)?)?,
        rotated_at: opt_ms(r.get(9)?)?,
        revoked: r.get(10)?,
        last_used_at: opt_ms(r.get(11)?)?,
    })
}

pub fn by_hash(db: &Db, hash: &str) -> Result<Option<TokenRow>, StoreError> {
    db.opt(&format!("SELECT {COLS} FROM tokens WHERE hash = ?1"), params![hash], row)
}

pub fn by_id(db: &Db, id: i64) -> Result<Option<TokenRow>, StoreError> {
    db.opt(&format!("SELECT {COLS} FROM tokens WHERE id = ?1"), params![id], row)
}

/// Tokens, newest first: of one depot, or all.
pub fn list(db: &Db, depot: Option<DepotId>, limit: u32) -> Result<Vec<TokenRow>, StoreError> {
    db.all(
        &format!("SELECT {COLS} FROM tokens WHERE CAST(?1 AS BIGINT) IS NULL OR depot_id = ?1 ORDER BY id DESC LIMIT ?2"),
        params![depot.map(|d| d.0), limit],
        row,
    )
}

/// A token to store.
pub struct NewToken<'a> {
    pub hash: String,
    pub role: &'a str,
    pub kind: Kind,
    pub subject: Option<i64>,
    pub depot: Option<DepotId>,
    pub name: &'a str,
    pub family: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a token; an existing hash is left as it is (bootstrap is idempotent).
pub fn insert(tx: &WriteTx<'_>, t: &NewToken<'_>, now: DateTime<Utc>) -> Result<i64, StoreError> {
    tx.exec(
        "INSERT INTO tokens (hash, role, kind, subject_id, depot_id, name, family, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (hash) DO NOTHING",
        params![
            t.hash,
            t.role,
            t.kind.as_str(),
            t.subject,
            t.depot.map(|d| d.0),
            t.name,
            t.family,
            ms(now),
            t.expires_at.map(ms)
        ],
    )?;
    tx.db().one("SELECT id FROM tokens WHERE hash = ?1", params![t.hash], |r| r.get(0))
}

/// Revokes the listed tokens; returns the ids that were live.
fn revoke_where(
    tx: &WriteTx<'_>,
    filter: &str,
    arg: rusqlite::types::Value,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = tx.db().all(
        &format!("SELECT id FROM tokens WHERE revoked = FALSE AND {filter}"),
        params![arg],
        |r| r.get(0),
    )?;
    tx.exec(
        &format!(
            "UPDATE tokens SET revoked = TRUE, revoked_at = ?1 WHERE revoked = FALSE AND {}",
            filter.replace("?1", "?2")
        ),
        params![ms(now), arg],
    )?;
    Ok(ids)
}

/// Revokes one token, and the rest of its family (a courier's sign-in).
pub fn revoke(tx: &WriteTx<'_>, id: i64, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    let Some(t) = by_id(tx.db(), id)? else { return Ok(Vec::new()) };
    match t.family {
        Some(f) => revoke_family(tx, &f, now),
        None => revoke_where(tx, "id = ?1", id.into(), now),
    }
}

pub fn revoke_family(tx: &WriteTx<'_>, family: &str, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
    revoke_where(tx, "family = ?1", family.to_owned().into(), now)
}

/// Every token of a courier or supervisor.
pub fn revoke_subject(
    tx: &WriteTx<'_>,
    role: &str,
    subject: i64,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let filter = match role {
        "courier" => "role = 'courier' AND subject_id = ?1",
        "supervisor" => "role = 'supervisor' AND subject_id = ?1",
        other => return Err(StoreError::Corrupt(format!("no subjects of role {other:?}"))),
    };
    revoke_where(tx, filter, subject.into(), now)
}

/// Revokes every bootstrap admin token but `keep` (its hash, if any).
pub fn revoke_bootstrap_except(
    tx: &WriteTx<'_>,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let n = tx.exec(
        "UPDATE tokens SET revoked = TRUE, revoked_at = ?1
         WHERE kind = 'bootstrap' AND revoked = FALSE AND (CAST(?2 AS TEXT) IS NULL OR hash <> ?2)",
        params![ms(now), keep],
    )?;
    Ok(n)
}

/// The bootstrap token with this hash is valid again (the operator set it
/// back to an earlier value).
pub fn reinstate_bootstrap(tx: &WriteTx<'_>, hash: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE tokens SET revoked = FALSE, revoked_at = NULL WHERE hash = ?1 AND kind = 'bootstrap'",
        params![hash],
    )?;
    Ok(())
}

/// Makes the token with this hash expire at `at`; whether there is one.
pub fn expire(tx: &WriteTx<'_>, hash: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = tx.exec("UPDATE tokens SET expires_at = ?1 WHERE hash = ?2", params![ms(at), hash])?;
    Ok(n > 0)
}

/// Marks a refresh token exchanged; false if it already was (a reuse).
pub fn mark_rotated(tx: &WriteTx<'_>, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let n = tx.exec(
        "UPDATE tokens SET rotated_at = ?1 WHERE id = ?2 AND rotated_at IS NULL",
        params![ms(now), id],
    )?;
    Ok(n == 1)
}

/// Records that a token was used at `at`.
pub fn touch(tx: &WriteTx<'_>, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
    tx.exec("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2", params![ms(at), id])?;
    Ok(())
}

/// When a courier or supervisor was deactivated (`None`: active or absent).
pub fn deactivated(db: &Db, role: &str, subject: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sql = match role {
        "courier" => "SELECT deactivated_at FROM couriers WHERE id = ?1",
        "supervisor" => "SELECT deactivated_at FROM supervisors WHERE id = ?1",
        _ => return Ok(None),
    };
    let at: Option<Option<i64>> = db.opt(sql, params![subject], |r| r.get(0))?;
    Ok(opt_ms(at.flatten())?)
}

/// Deactivates a courier or supervisor; false if there is none.
pub fn deactivate(
    tx: &WriteTx<'_>,
    role: &str,
    subject: i64,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = match role {
        "courier" => "UPDATE couriers SET deactivated_at = COALESCE(deactivated_at, ?1) WHERE id = ?2",
        "supervisor" => "UPDATE supervisors SET deactivated_at = COALESCE(deactivated_at, ?1) WHERE id = ?2",
        other => return Err(StoreError::Corrupt(format!("no subjects of role {other:?}"))),
    };
    Ok(tx.exec(sql, params![ms(now), subject])? == 1)
}

/// The depot of a courier or supervisor.
pub fn subject_depot(db: &Db, role: &str, subject: i64) -> Result<Option<(DepotId, String)>, StoreError> {
    let sql = match role {
        "courier" => "SELECT depot_id, name FROM couriers WHERE id = ?1",
        "supervisor" => "SELECT depot_id, name FROM supervisors WHERE id = ?1",
        _ => return Ok(None),
    };
    db.opt(sql, params![subject], |r| Ok::<_, rusqlite::Error>((DepotId(r.get(0)?), r.get(1)?)))
}
