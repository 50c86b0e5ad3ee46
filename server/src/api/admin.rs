//! Admin: depots and the accounts that work in them. Every created account
//! comes with its bearer token, shown once.

use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::{self, AdminOnly, Role};
use crate::error::AppError;
use crate::store::{ms, queries, StoreError, WriteTx};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use callahead_core::ids::SupervisorId;
use callahead_core::policy::AttemptPolicy;
use callahead_core::validate;
use callahead_core::wire::{
    paths, Courier, CreateCourier, CreateDepot, CreateIntegratorKey, CreateSupervisor, CreatedCourier,
    CreatedIntegratorKey, CreatedSupervisor, Depot, ErrorCode,
};
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOTS, post(create_depot).get(super::dashboard::list_depots))
        .route(paths::DEPOT_COURIERS, post(create_courier))
        .route(paths::DEPOT_SUPERVISORS, post(create_supervisor))
        .route(paths::DEPOT_INTEGRATOR_KEYS, post(create_integrator_key))
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

/// Stores a token's hash; `INSERT OR IGNORE` makes bootstrapping idempotent.
pub fn insert_token(
    tx: &WriteTx<'_>,
    token: &str,
    role: Role,
    subject: Option<i64>,
    depot: Option<DepotId>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR IGNORE INTO tokens (hash, role, subject_id, depot_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![auth::hash(token), role.as_str(), subject, depot.map(|d| d.0), name, ms(now)],
    )?;
    Ok(())
}

fn depot_exists(tx: &WriteTx<'_>, depot: DepotId) -> Result<(), AppError> {
    match queries::depot(tx.conn(), depot)? {
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
            tx.execute(
                "INSERT INTO depots (name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at,
                   calling_hours, stop_at_window_start, min_heard_secs, machine_detection)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    req.name,
                    req.time_zone,
                    policy.max_attempts,
                    policy.retry_spacing_secs,
                    policy.ring_timeout_secs,
                    ms(now),
                    queries::hours_to_sql(&policy.calling_hours)?,
                    policy.stop_at_window_start,
                    policy.min_heard_secs,
                    policy.machine_detection
                ],
            )?;
            Ok(Depot { id: DepotId(tx.conn().last_insert_rowid()), name: req.name, time_zone: req.time_zone, policy })
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
    let now = state.clock.now();
    let token = auth::new_token(Role::Courier);
    let t = token.clone();
    let courier = state
        .writer
        .write(move |tx| -> Result<Courier, AppError> {
            depot_exists(tx, depot)?;
            tx.execute(
                "INSERT INTO couriers (depot_id, name, phone, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![depot.0, req.name, req.phone, ms(now)],
            )?;
            let id = CourierId(tx.conn().last_insert_rowid());
            insert_token(tx, &t, Role::Courier, Some(id.0), Some(depot), &req.name, now)?;
            Ok(Courier { id, depot_id: depot, name: req.name, phone: req.phone })
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(CreatedCourier { courier, token })))
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
    let now = state.clock.now();
    let token = auth::new_token(Role::Supervisor);
    let t = token.clone();
    let supervisor = state
        .writer
        .write(move |tx| -> Result<callahead_core::wire::Supervisor, AppError> {
            depot_exists(tx, depot)?;
            tx.execute(
                "INSERT INTO supervisors (depot_id, name, created_at) VALUES (?1, ?2, ?3)",
                params![depot.0, req.name, ms(now)],
            )?;
            let id = SupervisorId(tx.conn().last_insert_rowid());
            insert_token(tx, &t, Role::Supervisor, Some(id.0), Some(depot), &req.name, now)?;
            Ok(callahead_core::wire::Supervisor { id, depot_id: depot, name: req.name })
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(CreatedSupervisor { supervisor, token })))
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
    let now = state.clock.now();
    let token = auth::new_token(Role::Integrator);
    let t = token.clone();
    let name = req.name.clone();
    state
        .writer
        .write(move |tx| -> Result<(), AppError> {
            depot_exists(tx, depot)?;
            insert_token(tx, &t, Role::Integrator, None, Some(depot), &name, now)?;
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(CreatedIntegratorKey { depot_id: depot, name: req.name, token })))
}
