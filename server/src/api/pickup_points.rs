//! Where a depot's customers may collect an order instead of waiting for
//! the courier: offered on the reschedule page next to the slots.

use super::templates::DepotManager;
use super::ApiJson;
use crate::app::AppState;
use crate::error::AppError;
use crate::store::{accounts, queries};
use axum::extract::State;
use axum::routing::put;
use axum::Router;
use callahead_core::validate;
use callahead_core::wire::{paths, ErrorCode, PickupPoints};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::DEPOT_PICKUP_POINTS, put(save_pickup_points).get(get_pickup_points))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/pickup-points", tag = "admin",
    params(("depot_id" = i64, Path)),
    responses((status = 200, description = "the depot's pickup points (none until saved)", body = PickupPoints)),
    security(("bearer" = [])))]
pub async fn get_pickup_points(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<PickupPoints>, AppError> {
    let pickup_points = state.readers.read(move |c| queries::pickup_points(c, depot)).await?;
    Ok(ApiJson(PickupPoints { pickup_points }))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/pickup-points", tag = "admin", request_body = PickupPoints,
    params(("depot_id" = i64, Path)),
    responses((status = 200, description = "saved; reschedule pages offer them from now on", body = PickupPoints)),
    security(("bearer" = [])))]
pub async fn save_pickup_points(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(body): ApiJson<PickupPoints>,
) -> Result<ApiJson<PickupPoints>, AppError> {
    validate::pickup_points(&body.pickup_points)?;
    let points = body.pickup_points.clone();
    let saved = state.writer.write(move |tx| accounts::set_pickup_points(tx, depot, &points)).await?;
    if !saved {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
    }
    Ok(ApiJson(body))
}
