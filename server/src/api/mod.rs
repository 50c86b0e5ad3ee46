//! The HTTP API: one module per resource, each with its own `router()`,
//! merged here with the JSON fallbacks for unknown routes and methods.

pub mod admin;
pub mod audit;
pub mod body;
pub mod call_ahead;
pub mod calls;
pub mod campaigns;
pub mod dashboard;
pub mod direct_calls;
pub mod headers;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod pickup_points;
pub mod privacy;
pub mod providers;
pub mod reports;
pub mod reschedule;
pub mod routes;
pub mod templates;
pub mod tokens;
pub mod webhooks;

use crate::app::AppState;
use crate::error::AppError;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::Router;
use callahead_core::wire::ErrorCode;
use chrono::NaiveDate;
use std::sync::Arc;

pub use body::ApiJson;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

pub fn parse_date(field: &str, s: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        AppError::new(ErrorCode::InvalidDate, format!("{s:?} is not a date; write it as YYYY-MM-DD"))
            .with_field(field)
    })
}

async fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> AppError {
    AppError::new(ErrorCode::MethodNotAllowed, "this endpoint does not accept that method; see /openapi.json")
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize, request_timeout: std::time::Duration) -> Router {
    Router::new()
        .merge(health::router())
        .merge(admin::router())
        .merge(routes::router())
        .merge(calls::router())
        .merge(direct_calls::router())
        .merge(templates::router())
        .merge(pickup_points::router())
        .merge(campaigns::router())
        .merge(reports::router())
        .merge(reschedule::router())
        .merge(webhooks::router())
        .merge(providers::router())
        .merge(dashboard::router())
        .merge(crate::ws::router())
        .merge(crate::dashboard::router())
        .merge(tokens::router())
        .merge(privacy::router())
        .merge(call_ahead::router())
        .merge(audit::router())
        .merge(metrics::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| body::guard_connection(max_body_bytes, req, next)))
        .layer(axum::middleware::from_fn(move |req, next| limits::deadline(request_timeout, req, next)))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}
