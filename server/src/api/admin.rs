//! Admin: depots and the accounts that work in them. Every created account
//! comes with its bearer token, shown once.

use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::{AdminOnly, Role};
use crate::error::AppError;
use crate::store::{accounts, queries, WriteTx};
use crate::tokens;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use callahead_core::policy::AttemptPolicy;
use callahead_core::validate;
use callahead_core::wire::{
    paths, Courier, CreateCourier, CreateDepot, CreateIntegratorKey, CreateSupervisor, CreatedCourier,
    CreatedIntegratorKey, CreatedSupervisor, Depot, ErrorBody, ErrorCode, IssuedToken, SendLimits, TokenPair,
};
use callahead_core::DepotId;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOTS, post(create_depot).get(super::dashboard::list_depots))
        .route(paths::DEPOT_COURIERS, post(create_courier))
        .route(paths::DEPOT_SUPERVISORS, post(create_supervisor))
        .route(paths::DEPOT_INTEGRATOR_KEYS, post(create_integrator_key))
        .route(paths::DEPOT_SEND_LIMITS, axum::routing::get(get_send_limits).put(save_send_limits))
}

/// A policy the orchestrator can run: at least one attempt, not absurd.
pub fn check_policy(p: &AttemptPolicy) -> Result<(), AppError> {
    let bad = |field: &str, msg: &str| {
        Err(AppError::new(ErrorCode::ValidationFailed, msg.to_owned()).with_field(format!("policy.{field}")))
    };
    if !(1..=10).contains(&p.max_attempts) {
        return bad("max_attempts", "must be between 1 and 10");
    }
    if p.retry_spacing_secs > 7 * 24 * 3600 {
        return bad("retry_spacing_secs", "must be at most a week");
    }
    if !(5..=300).contains(&p.ring_timeout_secs) {
        return bad("ring_timeout_secs", "must be between 5 and 300 seconds");
    }
    if p.min_heard_secs > 120 {
        return bad("min_heard_secs", "must be at most 120 seconds (the message is shorter than that)");
    }
    if let Err(e) = p.calling_hours.check() {
        return bad("calling_hours", &e.0);
    }
    Ok(())
}

fn depot_exists(tx: &WriteTx<'_>, depot: DepotId) -> Result<(), AppError> {
    match queries::depot(tx.db(), depot)? {
        Some(_) => Ok(()),
        None => Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}"))),
    }
}

#[utoipa::path(post, path = "/v1/depots", tag = "admin", request_body = CreateDepot,
    responses((status = 201, body = Depot)),
    security(("bearer" = [])))]
pub async fn create_depot(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiJson(req): ApiJson<CreateDepot>,
) -> Result<(StatusCode, ApiJson<Depot>), AppError> {
    validate::non_empty("name", &req.name, 200)?;
    validate::time_zone("time_zone", &req.time_zone)?;
    let policy = req.policy.unwrap_or_else(|| state.default_policy.clone());
    check_policy(&policy)?;
    let now = state.clock.now();
    let depot = state
        .writer
        .write(move |tx| -> Result<Depot, AppError> {
            let id = accounts::insert_depot(tx, &req.name, &req.time_zone, &policy, now)?;
            Ok(Depot { id, name: req.name, time_zone: req.time_zone, policy })
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(depot)))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/couriers", tag = "admin", request_body = CreateCourier,
    params(("depot_id" = i64, Path)),
    responses((status = 201, body = CreatedCourier)),
    security(("bearer" = [])))]
pub async fn create_courier(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateCourier>,
) -> Result<(StatusCode, ApiJson<CreatedCourier>), AppError> {
    validate::non_empty("name", &req.name, 200)?;
    validate::phone("phone", &req.phone)?;
    let depot = DepotId(depot_id);
    let (now, wall) = (state.clock.now(), state.wall_clock.now());
    let lifetimes = state.token_lifetimes.clone();
    let (courier, pair) = state
        .writer
        .write(move |tx| -> Result<(Courier, TokenPair), AppError> {
            depot_exists(tx, depot)?;
            let id = accounts::insert_courier(tx, depot, &req.name, &req.phone, now)?;
            let pair = tokens::courier_pair(tx, id, depot, &req.name, wall, &lifetimes)?;
            Ok((Courier { id, depot_id: depot, name: req.name, phone: req.phone }, pair))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedCourier {
            courier,
            token: pair.token,
            expires_at: pair.expires_at,
            refresh_token: Some(pair.refresh_token),
            refresh_expires_at: pair.refresh_expires_at,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/supervisors", tag = "admin", request_body = CreateSupervisor,
    params(("depot_id" = i64, Path)),
    responses((status = 201, body = CreatedSupervisor)),
    security(("bearer" = [])))]
pub async fn create_supervisor(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateSupervisor>,
) -> Result<(StatusCode, ApiJson<CreatedSupervisor>), AppError> {
    validate::non_empty("name", &req.name, 200)?;
    let depot = DepotId(depot_id);
    let (now, wall) = (state.clock.now(), state.wall_clock.now());
    let lifetimes = state.token_lifetimes.clone();
    let (supervisor, issued) = state
        .writer
        .write(move |tx| -> Result<(callahead_core::wire::Supervisor, IssuedToken), AppError> {
            depot_exists(tx, depot)?;
            let id = accounts::insert_supervisor(tx, depot, &req.name, now)?;
            let issued =
                tokens::single(tx, Role::Supervisor, Some(id.0), depot, &req.name, wall, &lifetimes)?;
            Ok((callahead_core::wire::Supervisor { id, depot_id: depot, name: req.name }, issued))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedSupervisor { supervisor, token: issued.token, expires_at: issued.expires_at }),
    ))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/integrator-keys", tag = "admin",
    request_body = CreateIntegratorKey, params(("depot_id" = i64, Path)),
    responses((status = 201, body = CreatedIntegratorKey)),
    security(("bearer" = [])))]
pub async fn create_integrator_key(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateIntegratorKey>,
) -> Result<(StatusCode, ApiJson<CreatedIntegratorKey>), AppError> {
    validate::non_empty("name", &req.name, 200)?;
    let depot = DepotId(depot_id);
    let wall = state.wall_clock.now();
    let lifetimes = state.token_lifetimes.clone();
    let name = req.name.clone();
    let issued = state
        .writer
        .write(move |tx| -> Result<IssuedToken, AppError> {
            depot_exists(tx, depot)?;
            Ok(tokens::single(tx, Role::Integrator, None, depot, &name, wall, &lifetimes)?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedIntegratorKey {
            depot_id: depot,
            name: req.name,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/send-limits", tag = "admin", params(("depot_id" = i64, Path)),
    responses((status = 200, body = SendLimits), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_send_limits(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
) -> Result<ApiJson<SendLimits>, AppError> {
    let depot = DepotId(depot_id);
    let found = state.readers.read(move |c| crate::guard::limits_of(c, depot)).await?;
    found.map(ApiJson).ok_or_else(|| AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/send-limits", tag = "admin", request_body = SendLimits,
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = SendLimits), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_send_limits(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(limits): ApiJson<SendLimits>,
) -> Result<ApiJson<SendLimits>, AppError> {
    crate::guard::check_limits(&limits)?;
    let depot = DepotId(depot_id);
    let l = limits.clone();
    let saved = state.writer.write(move |tx| crate::store::limits::save(tx, depot, &l)).await?;
    if !saved {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
    }
    Ok(ApiJson(limits))
}
