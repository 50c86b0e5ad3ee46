//! Smart calls: a courier requests one per stop (idempotently, at most
//! `MAX_ACTIVE_CALLS_PER_COURIER` at once), anyone entitled reads them.

use super::{parse_date, ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{CourierOnly, Principal};
use crate::error::AppError;
use crate::orchestrator::{self, AfterCommit};
use crate::store::queries;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use callahead_core::clock::wall_ms;
use callahead_core::validate;
use callahead_core::wire::{paths, CallDetail, CallList, CallView, CreateCall, ErrorBody, ErrorCode};
use callahead_core::{CallId, CourierId};
use serde::Deserialize;
use std::sync::Arc;

/// Listing more than this many calls at once needs a narrower filter.
const LIST_LIMIT: usize = 5000;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::CALLS, post(create_call).get(list_calls))
        .route(paths::CALL, get(get_call))
        .route(paths::CALL_CANCEL, post(cancel_call))
}

#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = CreateCall,
    responses(
        (status = 201, description = "call created", body = CallView),
        (status = 200, description = "same idempotency key and stop: the existing call", body = CallView),
        (status = 404, description = "`stop_not_found`: no such stop on your routes", body = ErrorBody),
        (status = 409, description = "`idempotency_key_reused` (the key named another stop), `stop_removed`, \
            `call_already_active` (the stop has a call in progress)", body = ErrorBody),
        (status = 429, description = "`too_many_active_calls`: the courier has 5 active smart calls; \
            retry when one finishes", body = ErrorBody,
            headers(("Retry-After" = u32, description = "seconds; a hint (a call_finished event on /v1/ws says when)")))),
    security(("bearer" = [])))]
pub async fn create_call(
    State(state): State<Arc<AppState>>,
    CourierOnly { id: courier, depot }: CourierOnly,
    ApiJson(req): ApiJson<CreateCall>,
) -> Result<(StatusCode, ApiJson<CallView>), AppError> {
    validate::idempotency_key(&req.idempotency_key)?;
    if let Some(o) = &req.policy {
        // Checked against the defaults first, so a bad override is refused
        // before anything is written.
        crate::api::admin::check_policy(&o.apply(&state.default_policy))?;
    }
    let (at, wall) = (state.clock.now(), wall_ms());
    let (view, created) =
        state.writer.write(move |tx| orchestrator::create(tx, courier, depot, &req, at, wall)).await?;
    if created {
        state.orchestrator.wake();
        Ok((StatusCode::CREATED, ApiJson(view)))
    } else {
        Ok((StatusCode::OK, ApiJson(view)))
    }
}

/// Whether `principal` may see this call; a courier sees only their own.
fn may_see(principal: &Principal, call: &CallView) -> bool {
    match principal {
        Principal::Courier { id, .. } => call.courier_id == *id,
        other => other.manages(call.depot_id),
    }
}

fn call_not_found() -> AppError {
    AppError::new(ErrorCode::CallNotFound, "no such call")
}

#[utoipa::path(get, path = "/v1/calls/{call_id}", tag = "calls", params(("call_id" = i64, Path)),
    responses((status = 200, body = CallDetail)),
    security(("bearer" = [])))]
pub async fn get_call(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(call_id): ApiPath<i64>,
) -> Result<ApiJson<CallDetail>, AppError> {
    let id = CallId(call_id);
    let detail = state.readers.read(move |c| queries::call_detail(c, id)).await?;
    match detail {
        Some(d) if may_see(&principal, &d.call) => Ok(ApiJson(d)),
        _ => Err(call_not_found()),
    }
}

#[utoipa::path(post, path = "/v1/calls/{call_id}/cancel", tag = "calls", params(("call_id" = i64, Path)),
    responses((status = 200, body = CallView),
        (status = 409, description = "`call_already_finished`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_call(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(call_id): ApiPath<i64>,
) -> Result<ApiJson<CallView>, AppError> {
    if matches!(principal, Principal::Integrator { .. }) {
        return Err(AppError::forbidden());
    }
    let id = CallId(call_id);
    let (at, wall) = (state.clock.now(), wall_ms());
    let (view, todo) = state
        .writer
        .write(move |tx| -> Result<(CallView, AfterCommit), AppError> {
            let call = queries::call(tx.db(), id)?
                .filter(|c| may_see(&principal, &c.view))
                .ok_or_else(call_not_found)?;
            if matches!(principal, Principal::Supervisor { .. }) && !principal.manages(call.view.depot_id) {
                return Err(call_not_found());
            }
            orchestrator::cancel(tx, id, at, wall)?.ok_or_else(|| {
                AppError::new(ErrorCode::CallAlreadyFinished, "this call already finished or was cancelled")
            })
        })
        .await?;
    state.orchestrator.after_commit(todo);
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this courier's calls (a courier may only ask for their own).
    pub courier_id: Option<i64>,
    /// `YYYY-MM-DD`: only calls for stops on that route date.
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(ListQuery),
    responses((status = 200, body = CallList)),
    security(("bearer" = [])))]
pub async fn list_calls(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<CallList>, AppError> {
    let date = q.date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let mut filter =
        queries::CallFilter { depot: principal.depot(), courier: q.courier_id.map(CourierId), date };
    if let Principal::Courier { id, .. } = principal {
        if filter.courier.is_some_and(|c| c != id) {
            return Err(AppError::forbidden());
        }
        filter.courier = Some(id);
    }
    let calls =
        state.readers.read(move |c| c.snapshot(|db| queries::list_calls(db, &filter, LIST_LIMIT))).await?;
    Ok(ApiJson(CallList { calls }))
}
