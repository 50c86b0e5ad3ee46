//! What the robot says, per depot: its templates per language. Saved only
//! when every part renders (unknown variables, unbalanced braces and a
//! missing default translation are refused here, not at call time).

use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::store::{accounts, queries};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::put;
use axum::Router;
use callahead_core::template::TemplateSet;
use callahead_core::wire::{paths, ErrorCode};
use callahead_core::DepotId;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::DEPOT_TEMPLATES, put(save_templates).get(get_templates))
}

/// Someone who manages the depot in the path (an admin, its supervisors,
/// its integrator), checked before the body is read. Others learn nothing
/// about the depot: it is "not found" to them.
pub struct DepotManager(pub DepotId);

impl FromRequestParts<Arc<AppState>> for DepotManager {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let ApiPath(depot) = ApiPath::<i64>::from_request_parts(parts, state).await?;
        managed(&principal, depot).map(DepotManager)
    }
}

/// The depot `depot` if `principal` manages it (the [`DepotManager`] rule,
/// for paths that carry more than the depot's id).
pub fn managed(principal: &Principal, depot: i64) -> Result<DepotId, AppError> {
    let depot = DepotId(depot);
    if matches!(principal, Principal::Courier { .. }) {
        return Err(AppError::forbidden());
    }
    if !principal.manages(depot) {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot} of yours")));
    }
    Ok(depot)
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/templates", tag = "admin",
    params(("depot_id" = i64, Path)),
    responses((status = 200, description = "the depot's templates (built-in wording until saved)", body = TemplateSet)),
    security(("bearer" = [])))]
pub async fn get_templates(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<TemplateSet>, AppError> {
    let found = state.readers.read(move |c| queries::templates(c, depot)).await?;
    found.map(ApiJson).ok_or_else(|| AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/templates", tag = "admin", request_body = TemplateSet,
    params(("depot_id" = i64, Path)),
    responses((status = 200, description = "saved; calls placed from now on use them", body = TemplateSet)),
    security(("bearer" = [])))]
pub async fn save_templates(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(set): ApiJson<TemplateSet>,
) -> Result<ApiJson<TemplateSet>, AppError> {
    set.check().map_err(|e| AppError::new(ErrorCode::ValidationFailed, e.message).with_field(e.field))?;
    let s = set.clone();
    let saved = state.writer.write(move |tx| accounts::set_templates(tx, depot, &s)).await?;
    if !saved {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
    }
    Ok(ApiJson(set))
}
