//! Liveness and the API description.

use super::ApiJson;
use crate::app::AppState;
use crate::error::AppError;
use crate::store::queries;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use callahead_core::wire::{paths, Health};
use callahead_core::PROTOCOL_VERSION;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::HEALTHZ, get(healthz)).route(paths::OPENAPI, get(openapi_json))
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = callahead_core::wire::ErrorBody)))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Result<ApiJson<Health>, AppError> {
    let head_seq = state.readers.read(|c| queries::head_seq(c)).await?;
    Ok(ApiJson(Health { status: "ok".into(), protocol: PROTOCOL_VERSION, head_seq }))
}

#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(crate::openapi::document())
}
