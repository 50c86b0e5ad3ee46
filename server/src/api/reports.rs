//! Reports for a depot's management: an admin for any depot, a supervisor
//! for their own. Couriers and integrator keys are refused; a supervisor
//! asking about another depot learns nothing about it ("not found").

use super::{parse_date, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::report;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use callahead_core::wire::{paths, DailyReport, ErrorCode};
use callahead_core::DepotId;
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::DEPOT_DAILY_REPORT, get(daily_report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// The depot's local date, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Csv,
}

pub(super) fn format(query: Option<&str>, headers: &HeaderMap) -> Result<Format, AppError> {
    match query {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("unknown format {other:?}; use json or csv"),
        )
        .with_field("format")),
        None => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            Ok(if accept.contains("text/csv") { Format::Csv } else { Format::Json })
        }
    }
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/reports/daily", tag = "reports",
    params(("depot_id" = i64, Path), DailyQuery),
    responses(
        (status = 200, description = "the depot's day: calls, outcomes, rates, messages and their cost by \
            channel, saved courier trips",
            content((DailyReport = "application/json"), (String = "text/csv")))),
    security(("bearer" = [])))]
pub async fn daily_report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(depot): ApiPath<i64>,
    ApiQuery(query): ApiQuery<DailyQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let depot = DepotId(depot);
    match principal {
        Principal::Admin => {}
        Principal::Supervisor { depot: own, .. } if own == depot => {}
        Principal::Supervisor { .. } => {
            return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot} of yours")));
        }
        Principal::Courier { .. } | Principal::Integrator { .. } => return Err(AppError::forbidden()),
    }
    let Some(date) = query.date.as_deref() else {
        return Err(
            AppError::new(ErrorCode::InvalidDate, "date is required, as YYYY-MM-DD").with_field("date")
        );
    };
    let date = parse_date("date", date)?;
    let format = format(query.format.as_deref(), &headers)?;
    let currency = state.currency.clone();
    let found: Option<DailyReport> =
        state.readers.read(move |c| report::daily(c, depot, date, &currency)).await?;
    let r = found.ok_or_else(|| AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")))?;
    Ok(match format {
        Format::Json => Json(r).into_response(),
        Format::Csv => {
            let name = format!("attachment; filename=\"depot-{}-{}.csv\"", depot.0, date);
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                report::csv(&r),
            )
                .into_response()
        }
    })
}
