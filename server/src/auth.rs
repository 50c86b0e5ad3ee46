//! Bearer tokens. A token is a readable prefix (its role) plus 32 random
//! bytes, base64url; only its sha256 is stored, so a leaked database does not
//! leak working tokens.

use crate::app::AppState;
use crate::error::AppError;
use crate::store::tokens::{self, Kind};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::Engine;
use callahead_core::ids::SupervisorId;
use callahead_core::wire::ErrorCode;
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Supervisor { id: SupervisorId, depot: DepotId },
    Courier { id: CourierId, depot: DepotId },
    Integrator { depot: DepotId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Supervisor,
    Courier,
    Integrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Courier => "courier",
            Role::Integrator => "integrator",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Role::Admin => "cah_adm_",
            Role::Supervisor => "cah_sup_",
            Role::Courier => "cah_cou_",
            Role::Integrator => "cah_int_",
        }
    }
}

impl Principal {
    /// The depot this principal is confined to; `None` for admins (all).
    pub fn depot(&self) -> Option<DepotId> {
        match *self {
            Principal::Admin => None,
            Principal::Supervisor { depot, .. }
            | Principal::Courier { depot, .. }
            | Principal::Integrator { depot } => Some(depot),
        }
    }

    /// Whether this principal may see or manage `depot` as a whole.
    pub fn manages(&self, depot: DepotId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Supervisor { depot: d, .. } | Principal::Integrator { depot: d } => *d == depot,
            Principal::Courier { .. } => false,
        }
    }

    pub fn require_admin(&self) -> Result<(), AppError> {
        match self {
            Principal::Admin => Ok(()),
            _ => Err(AppError::forbidden()),
        }
    }

    pub fn require_courier(&self) -> Result<(CourierId, DepotId), AppError> {
        match *self {
            Principal::Courier { id, depot } => Ok((id, depot)),
            _ => Err(AppError::new(ErrorCode::Forbidden, "only a courier token may do this")),
        }
    }
}

/// A new random token for `role`.
pub fn new_token(role: Role) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}{}", role.prefix(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A courier app's refresh token: never a bearer, exchanged once.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("cah_ref_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token from `Authorization: Bearer …`, if the header is present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// A principal and the token it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub token_id: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

/// How stale `last_used_at` may get before a use writes it again: one
/// write per token a minute at most, however busy.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

fn unknown() -> AppError {
    AppError::new(ErrorCode::InvalidToken, "this token is unknown or revoked")
}

/// Resolves a presented bearer token to its principal. An address that
/// failed too often is refused before its token is looked up; an unknown
/// token counts as a failure of its address (api/limits.rs).
pub async fn authenticate(
    state: &AppState,
    token: Option<&str>,
    ip: IpAddr,
) -> Result<Authenticated, AppError> {
    state.limiters.check_not_blocked(ip)?;
    let token = token
        .ok_or_else(|| AppError::new(ErrorCode::MissingToken, "send `Authorization: Bearer <token>`"))?;
    if token.len() > MAX_TOKEN_LEN {
        state.limiters.auth_failed(ip);
        return Err(unknown());
    }
    let h = hash(token);
    let now = state.wall_clock.now();
    let row = state.readers.read(move |c| tokens::by_hash(c, &h)).await?;
    let row = match row {
        // A refresh token is exchanged, never presented as a bearer.
        Some(r) if !r.revoked && r.kind != Kind::Refresh => r,
        _ => {
            state.limiters.auth_failed(ip);
            return Err(unknown());
        }
    };
    if row.expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::new(
            ErrorCode::TokenExpired,
            "this token has expired; refresh it or ask for a new one",
        ));
    }
    let subject = row.subject_id.unwrap_or_default();
    let depot = DepotId(row.depot_id.unwrap_or_default());
    let principal = match row.role.as_str() {
        "admin" => Principal::Admin,
        "supervisor" => Principal::Supervisor { id: SupervisorId(subject), depot },
        "courier" => Principal::Courier { id: CourierId(subject), depot },
        "integrator" => Principal::Integrator { depot },
        other => {
            tracing::error!(role = other, "token with an unknown role");
            return Err(unknown());
        }
    };
    if row.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY) {
        // Not awaited: a request does not wait for its bookkeeping.
        let id = row.id;
        let _ = state.writer.enqueue(move |tx| tokens::touch(tx, id, now)).await;
    }
    Ok(Authenticated { principal, token_id: row.id, expires_at: row.expires_at })
}

/// Longer than any token issued: refused without a database read.
const MAX_TOKEN_LEN: usize = 256;

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let ip = crate::api::limits::client_ip(&parts.extensions);
        let auth = authenticate(state, bearer(&parts.headers), ip).await?;
        // Admins are trusted operators (and bulk setup runs as one).
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            && auth.principal != Principal::Admin
        {
            state.limiters.write(auth.token_id)?;
        }
        Ok(auth)
    }
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Ok(Authenticated::from_request_parts(parts, state).await?.principal)
    }
}

/// An authenticated admin. As an extractor it refuses everyone else before
/// the body is read, so a courier posting junk to an admin endpoint learns
/// "forbidden", not "malformed JSON".
pub struct AdminOnly;

impl FromRequestParts<Arc<AppState>> for AdminOnly {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Principal::from_request_parts(parts, state).await?.require_admin()?;
        Ok(AdminOnly)
    }
}

/// An authenticated courier, refused before the body is read otherwise.
pub struct CourierOnly {
    pub id: CourierId,
    pub depot: DepotId,
}

impl FromRequestParts<Arc<AppState>> for CourierOnly {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (id, depot) = Principal::from_request_parts(parts, state).await?.require_courier()?;
        Ok(CourierOnly { id, depot })
    }
}

/// Who may import routes and manage webhook endpoints: an admin (any depot)
/// or an integrator key (its depot). `scope` is `None` for admins.
pub struct RouteImporter {
    pub scope: Option<DepotId>,
}

impl FromRequestParts<Arc<AppState>> for RouteImporter {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Admin => Ok(RouteImporter { scope: None }),
            Principal::Integrator { depot } => Ok(RouteImporter { scope: Some(depot) }),
            _ => Err(AppError::forbidden()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token(Role::Courier);
        let b = new_token(Role::Courier);
        assert_ne!(a, b);
        assert!(a.starts_with("cah_cou_"));
        assert_eq!(a.len(), "cah_cou_".len() + 43);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }
}
