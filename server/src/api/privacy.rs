//! A depot's retention of personal data (admin) and the erasure of one
//! customer's data on request (whoever manages the depot: the CRM relays the
//! customer's request, or the depot's staff handle it). See
//! `crate::retention` and docs/security.md.

use super::templates::DepotManager;
use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::AdminOnly;
use crate::error::AppError;
use crate::store::{erasure, StoreError};
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use callahead_core::validate;
use callahead_core::wire::{paths, Erased, ErasureRequest, ErrorBody, ErrorCode, Retention};
use callahead_core::DepotId;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOT_RETENTION, get(get_retention).put(save_retention))
        .route(paths::DEPOT_ERASURE, post(erase))
}

fn no_depot(depot: DepotId) -> AppError {
    AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}"))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/retention", tag = "admin", params(("depot_id" = i64, Path)),
    responses((status = 200, body = Retention), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_retention(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
) -> Result<ApiJson<Retention>, AppError> {
    let depot = DepotId(depot_id);
    let days = state.readers.read(move |c| erasure::retention_days(c, depot)).await?;
    let days = days.ok_or_else(|| no_depot(depot))?.unwrap_or(state.retention_days);
    Ok(ApiJson(Retention { days }))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/retention", tag = "admin", request_body = Retention,
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = Retention), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_retention(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(req): ApiJson<Retention>,
) -> Result<ApiJson<Retention>, AppError> {
    if !(1..=3650).contains(&req.days) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "1 to 3650 days").with_field("days"));
    }
    let depot = DepotId(depot_id);
    let saved = state.writer.write(move |tx| erasure::set_retention_days(tx, depot, req.days)).await?;
    if !saved {
        return Err(no_depot(depot));
    }
    Ok(ApiJson(req))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/erasure", tag = "admin", request_body = ErasureRequest,
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = Erased, description = "the customer's data erased on every stop of the depot"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(req): ApiJson<ErasureRequest>,
) -> Result<ApiJson<Erased>, AppError> {
    validate::phone("phone", &req.phone)?;
    let now = state.clock.now();
    let erased = state
        .writer
        .write(move |tx| -> Result<Erased, StoreError> {
            let stops = erasure::stops_of_phone(tx.db(), depot, &req.phone)?;
            let messages = erasure::erase(tx, &stops, now)?;
            Ok(Erased { stops: stops.len() as u32, messages: messages as u32 })
        })
        .await?;
    tracing::info!(depot = %depot, stops = erased.stops, "customer data erased on request");
    Ok(ApiJson(erased))
}
