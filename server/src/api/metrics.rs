//! `GET /metrics`: Prometheus text format, for an admin token or the
//! metrics token (`CALLAHEAD_METRICS_TOKEN`). Gauges of stored state are
//! read now, in one read transaction, so a scrape is never stale.

use crate::app::AppState;
use crate::auth;
use crate::error::AppError;
use crate::metrics::set_gauge;
use crate::store::queries;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use callahead_core::wire::paths;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::METRICS, get(metrics))
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format (docs/operations.md lists the series)",
        content_type = "text/plain", body = String),
        (status = "4XX", body = callahead_core::wire::ErrorBody)),
    security(("bearer" = [])))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    crate::api::limits::ClientIp(ip): crate::api::limits::ClientIp,
) -> Result<Response, AppError> {
    let presented = auth::bearer(&headers);
    let by_metrics_token = match (presented, state.metrics_token.as_deref()) {
        (Some(p), Some(m)) => constant_time_eq(p.as_bytes(), m.as_bytes()),
        _ => false,
    };
    if !by_metrics_token {
        auth::authenticate(&state, presented, ip).await?.principal.require_admin()?;
    }
    let gauges = state.readers.read(queries::metric_gauges).await?;
    for (name, labels, value) in gauges {
        set_gauge(name, &labels, value);
    }
    // Work no live node renews or took over (docs/adr/0011).
    let now = state.wall_clock.now().timestamp_millis();
    let (stuck, alive) = state.readers.read(move |c| crate::store::leases::health(c, now)).await?;
    set_gauge("callahead_leases_stuck", &[], stuck as f64);
    set_gauge("callahead_nodes_alive", &[], alive as f64);
    set_gauge("callahead_hub_subscribers", &[], state.hub.subscriber_count() as f64);
    set_gauge("callahead_writer_queue_depth", &[], state.writer.queue_depth() as f64);
    let text = crate::metrics::handle().map(|h| h.render()).unwrap_or_default();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
