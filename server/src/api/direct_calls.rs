//! Calls the courier made themselves (a site pass, a gate code): logged on
//! the stop, so its history and the audit show every contact, robot or not.

use super::ApiJson;
use crate::app::AppState;
use crate::auth::CourierOnly;
use crate::error::AppError;
use crate::store::{ms, queries, NewEvent};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use callahead_core::clock::wall_ms;
use callahead_core::validate;
use callahead_core::wire::{paths, DirectCall, ErrorBody, ErrorCode, EventKind, LogDirectCall};
use callahead_core::StopId;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(paths::DIRECT_CALLS, post(log_direct_call))
}

#[utoipa::path(post, path = "/v1/direct-calls", tag = "calls", request_body = LogDirectCall,
    responses(
        (status = 201, description = "logged", body = DirectCall),
        (status = 200, description = "same idempotency key: the call logged before", body = DirectCall),
        (status = 409, description = "`idempotency_key_reused`: the key was used for another stop", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn log_direct_call(
    State(state): State<Arc<AppState>>,
    CourierOnly { id: courier, depot }: CourierOnly,
    ApiJson(req): ApiJson<LogDirectCall>,
) -> Result<(StatusCode, ApiJson<DirectCall>), AppError> {
    validate::idempotency_key(&req.idempotency_key)?;
    validate::non_empty("note", &req.note, 500)?;
    let (now, wall) = (state.clock.now(), wall_ms());
    // Stored to the millisecond: the event and a retried answer must agree.
    let called_at = req.called_at.unwrap_or(now);
    let called_at =
        chrono::DateTime::from_timestamp_millis(called_at.timestamp_millis()).unwrap_or(called_at);
    if called_at > now + chrono::Duration::minutes(5) {
        return Err(AppError::new(ErrorCode::ValidationFailed, "a call cannot be logged in the future")
            .with_field("called_at"));
    }
    let (logged, created) = state
        .writer
        .write(move |tx| -> Result<(DirectCall, bool), AppError> {
            let existing = tx
                .conn()
                .query_row(
                    "SELECT id, stop_id, note, called_at, seq FROM direct_calls
                     WHERE courier_id = ?1 AND idempotency_key = ?2",
                    params![courier.0, req.idempotency_key],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )
                .optional()?;
            if let Some((id, stop, note, at, seq)) = existing {
                if StopId(stop) != req.stop_id {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyKeyReused,
                        "this idempotency key was already used for another stop; generate a new key per log",
                    )
                    .with_field("idempotency_key"));
                }
                let called_at = crate::store::from_ms(at)?;
                return Ok((
                    DirectCall { id, stop_id: StopId(stop), note, called_at, seq: seq as u64 },
                    false,
                ));
            }
            let mine = queries::stop(tx.conn(), req.stop_id)?.filter(|s| s.stop.courier_id == courier);
            if mine.is_none() {
                return Err(AppError::new(ErrorCode::StopNotFound, "no such stop on your routes")
                    .with_field("stop_id"));
            }
            let event = tx.append_event(NewEvent {
                at: now,
                origin_wall_ms: wall,
                depot_id: depot,
                courier_id: courier,
                stop_id: Some(req.stop_id),
                kind: EventKind::DirectCallLogged { note: req.note.clone(), called_at },
                call: None,
            })?;
            tx.execute(
                "INSERT INTO direct_calls (courier_id, stop_id, idempotency_key, note, called_at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    courier.0,
                    req.stop_id.0,
                    req.idempotency_key,
                    req.note,
                    ms(called_at),
                    event.seq as i64
                ],
            )?;
            let id = tx.conn().last_insert_rowid();
            Ok((DirectCall { id, stop_id: req.stop_id, note: req.note, called_at, seq: event.seq }, true))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, ApiJson(logged)))
}
