//! Where a depot's customers may collect an order instead of waiting for
//! the courier: offered on the reschedule page next to the slots.

use super::templates::DepotManager;
use super::ApiJson;
use crate::app::AppState;
use crate::error::AppError;
use crate::store::{queries, StoreError};
use axum::extract::State;
use axum::routing::put;
use axum::Router;
use callahead_core::validate;
use callahead_core::wire::{paths, ErrorCode, PickupPoints};
use rusqlite::params;
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
    let pickup_points =
        state.readers.read(move |c| queries::pickup_points(c, depot).map_err(StoreError::from)).await?;
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
    let json = (!body.pickup_points.is_empty())
        .then(|| serde_json::to_string(&body.pickup_points))
        .transpose()
        .map_err(StoreError::from)?;
    let saved = state
        .writer
        .write(move |tx| -> Result<usize, StoreError> {
            Ok(tx
                .conn()
                .execute("UPDATE depots SET pickup_points = ?1 WHERE id = ?2", params![json, depot.0])?)
        })
        .await?;
    if saved == 0 {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
    }
    Ok(ApiJson(body))
}
