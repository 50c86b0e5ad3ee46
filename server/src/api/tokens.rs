//! Tokens over their lifetime (docs/adr/0007): a courier app refreshes its
//! pair; an admin lists and revokes tokens, signs a courier in again on a
//! new phone, issues a supervisor a new token, and deactivates a courier or
//! supervisor who left. Revocations close the tokens' websockets at once.

use super::limits::ClientIp;
use super::{ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{AdminOnly, Role};
use crate::error::AppError;
use crate::store::tokens as store;
use crate::store::StoreError;
use crate::tokens::{self, Refreshed};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use callahead_core::wire::{
    paths, ErrorBody, ErrorCode, IssuedToken, RefreshRequest, TokenInfo, TokenList, TokenPair,
};
use callahead_core::{CourierId, DepotId};
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::AUTH_REFRESH, post(refresh))
        .route(paths::TOKENS, get(list_tokens))
        .route(paths::TOKEN_REVOKE, post(revoke_token))
        .route(paths::COURIER_TOKENS, post(sign_in_courier))
        .route(paths::COURIER_DEACTIVATE, post(deactivate_courier))
        .route(paths::SUPERVISOR_TOKENS, post(issue_supervisor_token))
        .route(paths::SUPERVISOR_DEACTIVATE, post(deactivate_supervisor))
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair, description = "a new pair; the refresh token presented is spent"),
        (status = 401, body = ErrorBody, description = "unknown, expired or reused (the whole sign-in is then revoked)"),
        (status = 429, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<ApiJson<TokenPair>, AppError> {
    state.limiters.check_not_blocked(ip)?;
    let now = state.wall_clock.now();
    let lifetimes = state.token_lifetimes.clone();
    let token = req.refresh_token;
    let outcome = state.writer.write(move |tx| tokens::refresh(tx, &token, now, &lifetimes)).await?;
    match outcome {
        Refreshed::Pair(pair) => Ok(ApiJson(pair)),
        Refreshed::Unknown => {
            state.limiters.auth_failed(ip);
            Err(AppError::new(
                ErrorCode::InvalidToken,
                "this refresh token is unknown or revoked; sign in again",
            ))
        }
        Refreshed::Expired => {
            Err(AppError::new(ErrorCode::TokenExpired, "this refresh token has expired; sign in again"))
        }
        Refreshed::Reused(revoked) => {
            state.sockets.close_tokens(&revoked);
            Err(AppError::new(
                ErrorCode::TokenReused,
                "this refresh token was already used; every token of this sign-in is revoked, sign in again",
            ))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokensQuery {
    /// Only this depot's tokens.
    pub depot_id: Option<i64>,
    /// At most this many, newest first (1–1000, default 200).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/tokens", tag = "admin", params(TokensQuery),
    responses((status = 200, body = TokenList), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiQuery(q): ApiQuery<TokensQuery>,
) -> Result<ApiJson<TokenList>, AppError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(
            AppError::new(ErrorCode::ValidationFailed, "must be between 1 and 1000").with_field("limit")
        );
    }
    let depot = q.depot_id.map(DepotId);
    let rows = state.readers.read(move |c| store::list(c, depot, limit)).await?;
    Ok(ApiJson(TokenList { tokens: rows.iter().map(store::TokenRow::info).collect() }))
}

#[utoipa::path(post, path = "/v1/tokens/{token_id}/revoke", tag = "admin", params(("token_id" = i64, Path)),
    responses((status = 200, body = TokenInfo, description = "revoked with the rest of its sign-in; its websockets closed"),
        (status = 409, body = ErrorBody, description = "`bootstrap_token_not_revocable`: the bootstrap admin token (from `CALLAHEAD_ADMIN_TOKEN`) is replaced by changing the variable and restarting, never revoked here"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<TokenInfo>, AppError> {
    let now = state.wall_clock.now();
    let (row, revoked) = state
        .writer
        .write(move |tx| -> Result<_, AppError> {
            let Some(found) = store::by_id(tx.db(), id)? else {
                return Err(AppError::new(ErrorCode::TokenNotFound, format!("no token {id}")));
            };
            // Revoking it would lock every admin out until a restart, and a
            // restart with the same variable reinstates it anyway.
            if found.kind == store::Kind::Bootstrap {
                return Err(AppError::new(
                    ErrorCode::BootstrapTokenNotRevocable,
                    "the bootstrap admin token cannot be revoked here: set a new CALLAHEAD_ADMIN_TOKEN and restart, which revokes this one",
                ));
            }
            let revoked = store::revoke(tx, id, now)?;
            let row =
                store::by_id(tx.db(), id)?.ok_or_else(|| StoreError::Corrupt("token vanished".into()))?;
            Ok((row, revoked))
        })
        .await?;
    state.sockets.close_tokens(&revoked);
    tracing::info!(token = id, revoked = revoked.len(), "token revoked");
    Ok(ApiJson(row.info()))
}

fn subject_missing(role: &str, id: i64) -> AppError {
    match role {
        "courier" => AppError::new(ErrorCode::CourierNotFound, format!("no courier {id}")),
        _ => AppError::new(ErrorCode::SupervisorNotFound, format!("no supervisor {id}")),
    }
}

/// The subject's depot and name; refused when it is absent or deactivated.
fn active_subject(db: &crate::store::Db, role: &str, id: i64) -> Result<(DepotId, String), AppError> {
    let found = store::subject_depot(db, role, id)?.ok_or_else(|| subject_missing(role, id))?;
    if store::deactivated(db, role, id)?.is_some() {
        return Err(AppError::new(ErrorCode::AccountDeactivated, format!("{role} {id} was deactivated")));
    }
    Ok(found)
}

#[utoipa::path(post, path = "/v1/couriers/{courier_id}/tokens", tag = "admin", params(("courier_id" = i64, Path)),
    responses((status = 201, body = TokenPair, description = "a new sign-in (a new phone); earlier ones keep working until revoked"),
        (status = 409, body = ErrorBody, description = "`account_deactivated`: the courier was deactivated"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn sign_in_courier(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, ApiJson<TokenPair>), AppError> {
    let now = state.wall_clock.now();
    let lifetimes = state.token_lifetimes.clone();
    let pair = state
        .writer
        .write(move |tx| -> Result<TokenPair, AppError> {
            let (depot, name) = active_subject(tx.db(), "courier", id)?;
            Ok(tokens::courier_pair(tx, CourierId(id), depot, &name, now, &lifetimes)?)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(pair)))
}

#[utoipa::path(post, path = "/v1/supervisors/{supervisor_id}/tokens", tag = "admin",
    params(("supervisor_id" = i64, Path)),
    responses((status = 201, body = IssuedToken),
        (status = 409, body = ErrorBody, description = "`account_deactivated`: the supervisor was deactivated"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn issue_supervisor_token(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, ApiJson<IssuedToken>), AppError> {
    let now = state.wall_clock.now();
    let lifetimes = state.token_lifetimes.clone();
    let issued = state
        .writer
        .write(move |tx| -> Result<IssuedToken, AppError> {
            let (depot, name) = active_subject(tx.db(), "supervisor", id)?;
            Ok(tokens::single(tx, Role::Supervisor, Some(id), depot, &name, now, &lifetimes)?)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(issued)))
}

async fn deactivate(state: &AppState, role: &'static str, id: i64) -> Result<StatusCode, AppError> {
    let now = state.wall_clock.now();
    let revoked = state
        .writer
        .write(move |tx| -> Result<Vec<i64>, AppError> {
            if !store::deactivate(tx, role, id, now)? {
                return Err(subject_missing(role, id));
            }
            Ok(store::revoke_subject(tx, role, id, now)?)
        })
        .await?;
    state.sockets.close_tokens(&revoked);
    tracing::info!(role, id, revoked = revoked.len(), "account deactivated");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/couriers/{courier_id}/deactivate", tag = "admin", params(("courier_id" = i64, Path)),
    responses((status = 204, description = "every token revoked, websockets closed; no new sign-in"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deactivate_courier(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    deactivate(&state, "courier", id).await
}

#[utoipa::path(post, path = "/v1/supervisors/{supervisor_id}/deactivate", tag = "admin",
    params(("supervisor_id" = i64, Path)),
    responses((status = 204, description = "every token revoked, websockets closed"), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn deactivate_supervisor(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    deactivate(&state, "supervisor", id).await
}
