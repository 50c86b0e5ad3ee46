//! A depot's call-ahead settings: whoever manages the depot reads and
//! changes them (an admin, its supervisors, its integrator). They feed the
//! daily report's savings and bound the couriers' automatic call-ahead lead
//! time, which each courier's app picks up with its route.

use super::templates::DepotManager;
use super::ApiJson;
use crate::app::AppState;
use crate::error::AppError;
use crate::store::call_ahead;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use callahead_core::wire::{paths, CallAheadSettings, ErrorBody, ErrorCode};
use callahead_core::DepotId;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::DEPOT_CALL_AHEAD, get(get_settings).put(save_settings))
}

fn no_depot(depot: DepotId) -> AppError {
    AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}"))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/call-ahead", tag = "admin", params(("depot_id" = i64, Path)),
    responses((status = 200, body = CallAheadSettings, description = "the defaults until saved"),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<CallAheadSettings>, AppError> {
    let settings = state.readers.read(move |c| call_ahead::of_depot(c, depot)).await?;
    Ok(ApiJson(settings.ok_or_else(|| no_depot(depot))?))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/call-ahead", tag = "admin", request_body = CallAheadSettings,
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = CallAheadSettings), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn save_settings(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(req): ApiJson<CallAheadSettings>,
) -> Result<ApiJson<CallAheadSettings>, AppError> {
    if let Err((field, message)) = req.check() {
        return Err(AppError::new(ErrorCode::ValidationFailed, message).with_field(field));
    }
    let saved = state.writer.write(move |tx| call_ahead::save(tx, depot, &req)).await?;
    if !saved {
        return Err(no_depot(depot));
    }
    Ok(ApiJson(req))
}
