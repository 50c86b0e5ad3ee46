//! The audit chain for partners (docs/audit.md): a digest to keep, and one
//! order's whole history with its links. Admins see every depot; a depot's
//! supervisors and integrator keys see their own (another depot's stop is
//! "not found"); couriers are refused.

use super::reports::{format, Format};
use super::{parse_date, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::audit::hex;
use crate::auth::Principal;
use crate::error::AppError;
use crate::store::{audit, queries, StoreError};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use callahead_core::wire::{paths, AuditDigest, AuditExport, AuditRecord, ErrorCode};
use callahead_core::StopId;
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::AUDIT_DIGEST, get(digest)).route(paths::STOP_AUDIT, get(stop_audit))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DigestQuery {
    /// A UTC date, `YYYY-MM-DD`: the chain's last link of that day. Without
    /// it, the head.
    pub date: Option<String>,
}

fn digest_of(found: Option<(u64, i64, [u8; 32])>) -> AuditDigest {
    match found {
        None => AuditDigest { seq: 0, at: None, hash: hex(&crate::audit::GENESIS) },
        Some((seq, at, hash)) => {
            AuditDigest { seq, at: chrono::DateTime::from_timestamp_millis(at), hash: hex(&hash) }
        }
    }
}

#[utoipa::path(get, path = "/v1/audit/digest", tag = "audit", params(DigestQuery),
    responses((status = 200, body = AuditDigest, description = "the link to keep: the log up to `seq` can be proven unaltered against it")),
    security(("bearer" = [])))]
pub async fn digest(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<DigestQuery>,
) -> Result<Json<AuditDigest>, AppError> {
    if matches!(principal, Principal::Courier { .. }) {
        return Err(AppError::forbidden());
    }
    let until = match query.date.as_deref() {
        None => None,
        Some(d) => {
            let date = parse_date("date", d)?;
            let end = date.succ_opt().and_then(|n| n.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
            let end = end.ok_or_else(|| {
                AppError::new(ErrorCode::InvalidDate, "that date has no end").with_field("date")
            })?;
            Some(end.timestamp_millis() - 1)
        }
    };
    let found = state.readers.read(move |c| audit::digest(c, until)).await?;
    Ok(Json(digest_of(found)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/v1/stops/{stop_id}/audit", tag = "audit",
    params(("stop_id" = i64, Path), ExportQuery),
    responses((status = 200, description = "every event of the stop (attempts, keys, texts, bridges) as stored, each with its chain links",
        content((AuditExport = "application/json"), (String = "text/csv")))),
    security(("bearer" = [])))]
pub async fn stop_audit(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(stop_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<ExportQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if matches!(principal, Principal::Courier { .. }) {
        return Err(AppError::forbidden());
    }
    let format = format(query.format.as_deref(), &headers)?;
    let not_found = || AppError::new(ErrorCode::StopNotFound, format!("no stop {stop_id} of yours"));
    let found = state
        .readers
        .read(move |c| {
            // One snapshot: the history and the head it links to agree.
            c.snapshot(|db| -> Result<_, StoreError> {
                let Some(stop) = queries::stop(db, StopId(stop_id))? else { return Ok(None) };
                let history = audit::stop_history(db, stop_id)?;
                let head = audit::digest(db, None)?;
                Ok(Some((stop, history, head)))
            })
        })
        .await?;
    let (stop, history, head) = found.ok_or_else(not_found)?;
    if !principal.manages(stop.stop.depot_id) {
        return Err(not_found());
    }
    let records = history
        .into_iter()
        .map(|l| AuditRecord {
            seq: l.row.seq,
            at_ms: l.row.at_ms,
            origin_wall_ms: l.row.origin_wall_ms,
            depot_id: l.row.depot_id,
            courier_id: l.row.courier_id,
            stop_id: l.row.stop_id,
            event_type: event_type(&l.row.kind),
            kind: l.row.kind,
            call: l.row.call,
            prev_hash: hex(&l.prev_hash),
            hash: hex(&l.hash),
        })
        .collect();
    let export = AuditExport {
        stop_id,
        external_id: stop.stop.external_id,
        order_numbers: stop.stop.order_numbers,
        records,
        head: digest_of(head),
    };
    Ok(match format {
        Format::Json => Json(export).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"stop-{stop_id}-audit.csv\"")),
            ],
            csv(&export),
        )
            .into_response(),
    })
}

fn event_type(kind: &str) -> String {
    serde_json::from_str::<serde_json::Value>(kind)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// RFC 4180: every field quoted, quotes doubled (the JSON columns are full
/// of both commas and quotes).
fn csv(export: &AuditExport) -> String {
    fn field(out: &mut String, v: &str) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
    let mut out = String::from(
        "seq,at_ms,origin_wall_ms,depot_id,courier_id,stop_id,type,kind,call,prev_hash,hash\r\n",
    );
    for r in &export.records {
        let cols = [
            r.seq.to_string(),
            r.at_ms.to_string(),
            r.origin_wall_ms.to_string(),
            r.depot_id.to_string(),
            r.courier_id.to_string(),
            r.stop_id.map(|s| s.to_string()).unwrap_or_default(),
            r.event_type.clone(),
            r.kind.clone(),
            r.call.clone().unwrap_or_default(),
            r.prev_hash.clone(),
            r.hash.clone(),
        ];
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, c);
        }
        out.push_str("\r\n");
    }
    out
}
