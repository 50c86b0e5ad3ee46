//! Issuing, refreshing and revoking tokens (docs/adr/0007).
//!
//! * Every role's tokens expire after a configurable lifetime (admin tokens
//!   from `CALLAHEAD_ADMIN_TOKEN` excepted: they are replaced when it
//!   changes).
//! * A courier app signs in with a *pair*: a short-lived access token and a
//!   refresh token. Refreshing exchanges the refresh token for a new pair
//!   and marks it used; presenting a used refresh token again means one of
//!   the two holders is not the app (RFC 9700 §4.14.2), so the whole
//!   sign-in is revoked and its sockets closed.
//! * Revoking a token, or deactivating a courier or supervisor, closes
//!   their websockets at once ([`crate::sockets`]).

use crate::auth::{self, Role};
use crate::store::tokens::{self as store, Kind, NewToken};
use crate::store::{StoreError, WriteTx};
use callahead_core::wire::{IssuedToken, TokenPair};
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How long each role's tokens live (docs/security.md has the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub courier_access: Duration,
    pub courier_refresh: Duration,
    /// `None`: until revoked.
    pub supervisor: Option<Duration>,
    pub integrator: Option<Duration>,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        TokenLifetimes {
            courier_access: Duration::from_secs(3600),
            courier_refresh: Duration::from_secs(30 * DAY),
            supervisor: Some(Duration::from_secs(30 * DAY)),
            integrator: Some(Duration::from_secs(365 * DAY)),
        }
    }
}

impl TokenLifetimes {
    pub(crate) fn check(&self) -> Result<(), String> {
        let all = [Some(self.courier_access), Some(self.courier_refresh), self.supervisor, self.integrator];
        if all.iter().flatten().any(|d| d.as_secs() < 60 || d.as_secs() > 10 * 365 * 24 * 3600) {
            return Err("token lifetimes must be between a minute and ten years".into());
        }
        if self.courier_refresh < self.courier_access {
            return Err("the courier refresh token must outlive the access token".into());
        }
        Ok(())
    }
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(3650))
}

/// The bootstrap admin token must be at least this long (`password` is not).
pub const MIN_ADMIN_TOKEN: usize = 32;

/// Makes `token` the one bootstrap admin token (any other is revoked), or
/// revokes them all when the variable is unset.
pub fn bootstrap_admin(
    tx: &WriteTx<'_>,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let hash = token.map(auth::hash);
    let revoked = store::revoke_bootstrap_except(tx, hash.as_deref(), now)?;
    if let Some(hash) = hash {
        let new = NewToken {
            hash: hash.clone(),
            role: Role::Admin.as_str(),
            kind: Kind::Bootstrap,
            subject: None,
            depot: None,
            name: "admin (CALLAHEAD_ADMIN_TOKEN)",
            family: None,
            expires_at: None,
        };
        store::insert(tx, &new, now)?;
        // Set back to an earlier value: it is the operator's choice again.
        store::reinstate_bootstrap(tx, &hash)?;
    }
    Ok(revoked)
}

/// A new sign-in for courier `courier`: an access and a refresh token.
pub fn courier_pair(
    tx: &WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    name: &str,
    now: DateTime<Utc>,
    lifetimes: &TokenLifetimes,
) -> Result<TokenPair, StoreError> {
    let family = uuid::Uuid::new_v4().to_string();
    pair_in_family(tx, courier, depot, name, &family, now, lifetimes)
}

fn pair_in_family(
    tx: &WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    name: &str,
    family: &str,
    now: DateTime<Utc>,
    lifetimes: &TokenLifetimes,
) -> Result<TokenPair, StoreError> {
    let (access, refresh) = (auth::new_token(Role::Courier), auth::new_refresh_token());
    let (expires_at, refresh_expires_at) =
        (after(now, lifetimes.courier_access), after(now, lifetimes.courier_refresh));
    for (token, kind, expires) in
        [(&access, Kind::Access, expires_at), (&refresh, Kind::Refresh, refresh_expires_at)]
    {
        let new = NewToken {
            hash: auth::hash(token),
            role: Role::Courier.as_str(),
            kind,
            subject: Some(courier.0),
            depot: Some(depot),
            name,
            family: Some(family),
            expires_at: Some(expires),
        };
        store::insert(tx, &new, now)?;
    }
    Ok(TokenPair {
        token: access,
        expires_at: Some(expires_at),
        expires_in: Some(lifetimes.courier_access.as_secs()),
        refresh_token: refresh,
        refresh_expires_at: Some(refresh_expires_at),
    })
}

/// A supervisor's or integrator's token.
pub fn single(
    tx: &WriteTx<'_>,
    role: Role,
    subject: Option<i64>,
    depot: DepotId,
    name: &str,
    now: DateTime<Utc>,
    lifetimes: &TokenLifetimes,
) -> Result<IssuedToken, StoreError> {
    let ttl = match role {
        Role::Supervisor => lifetimes.supervisor,
        Role::Integrator => lifetimes.integrator,
        other => return Err(StoreError::Corrupt(format!("no single tokens for {}", other.as_str()))),
    };
    let token = auth::new_token(role);
    let expires_at = ttl.map(|d| after(now, d));
    let new = NewToken {
        hash: auth::hash(&token),
        role: role.as_str(),
        kind: Kind::Access,
        subject,
        depot: Some(depot),
        name,
        family: None,
        expires_at,
    };
    store::insert(tx, &new, now)?;
    Ok(IssuedToken { token, expires_at })
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Refreshed {
    Pair(TokenPair),
    /// Unknown, revoked, or not a refresh token.
    Unknown,
    Expired,
    /// Already exchanged once: the sign-in's tokens (these ids) are revoked.
    Reused(Vec<i64>),
}

/// Exchanges `refresh_token` for a new pair, in one transaction. A reuse
/// commits the revocation; the caller refuses the request.
pub fn refresh(
    tx: &WriteTx<'_>,
    refresh_token: &str,
    now: DateTime<Utc>,
    lifetimes: &TokenLifetimes,
) -> Result<Refreshed, StoreError> {
    let Some(row) = store::by_hash(tx.db(), &auth::hash(refresh_token))? else {
        return Ok(Refreshed::Unknown);
    };
    let (Kind::Refresh, Some(family), Some(courier), Some(depot)) =
        (row.kind, &row.family, row.subject_id, row.depot_id)
    else {
        return Ok(Refreshed::Unknown);
    };
    if row.rotated_at.is_some() {
        let revoked = store::revoke_family(tx, family, now)?;
        tracing::warn!(
            token = row.id,
            courier,
            "a used refresh token was presented again; the sign-in is revoked"
        );
        return Ok(Refreshed::Reused(revoked));
    }
    if row.revoked {
        return Ok(Refreshed::Unknown);
    }
    if row.expires_at.is_some_and(|at| at <= now) {
        return Ok(Refreshed::Expired);
    }
    if !store::mark_rotated(tx, row.id, now)? {
        return Ok(Refreshed::Reused(store::revoke_family(tx, family, now)?));
    }
    let pair = pair_in_family(tx, CourierId(courier), DepotId(depot), &row.name, family, now, lifetimes)?;
    Ok(Refreshed::Pair(pair))
}
