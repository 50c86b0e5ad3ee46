//! Calls the courier made themselves (a site pass, a gate code): logged on
//! the stop, so its history and the audit show every contact, robot or not.

use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::{AdminOnly, CourierOnly};
use crate::error::AppError;
use crate::providers::DirectDialRequest;
use crate::store::providers as stored;
use crate::store::StoreError;
use crate::store::{queries, NewEvent};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::Router;
use callahead_core::clock::wall_ms;
use callahead_core::validate;
use callahead_core::wire::{
    paths, DialDirect, DirectCall, DirectCallRecording, DirectDial, ErrorBody, ErrorCode, EventKind,
    LogDirectCall,
};
use callahead_core::DepotId;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DIRECT_CALLS, post(log_direct_call))
        .route(paths::DIRECT_DIALS, post(dial_direct))
        .route(paths::DEPOT_RECORDING, put(set_recording))
}

#[utoipa::path(post, path = "/v1/direct-calls/dial", tag = "calls", request_body = DialDirect,
    responses(
        (status = 201, description = "the courier's phone is ringing, then the customer's", body = DirectDial),
        (status = 200, description = "same idempotency key: the dial placed before", body = DirectDial),
        (status = 404, description = "`stop_not_found`: no such stop on your routes", body = ErrorBody),
        (status = 409, description = "`direct_dial_unavailable` (the server has no real telephony provider), \
            `idempotency_key_reused`", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dial_direct(
    State(state): State<Arc<AppState>>,
    CourierOnly { id: courier, depot }: CourierOnly,
    ApiJson(req): ApiJson<DialDirect>,
) -> Result<(StatusCode, ApiJson<DirectDial>), AppError> {
    validate::idempotency_key(&req.idempotency_key)?;
    let telephony = state.orchestrator.telephony.clone();
    if !telephony.supports_direct_dial() {
        return Err(AppError::new(
            ErrorCode::DirectDialUnavailable,
            "direct calls through the company line need a real telephony provider (serve --telephony twilio|voximplant)",
        ));
    }
    let (now, wall) = (state.clock.now(), wall_ms());
    let secret = crate::placing::callback_secret();
    let (dial, placing) = state
        .writer
        .write(move |tx| -> Result<(DirectDial, Option<DirectDialRequest>), AppError> {
            if let Some(d) = stored::dial_by_idempotency(tx.db(), courier, &req.idempotency_key)? {
                if d.stop_id != req.stop_id {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyKeyReused,
                        "this idempotency key was already used for another stop; generate a new key per call",
                    )
                    .with_field("idempotency_key"));
                }
                let view =
                    DirectDial { id: d.id, stop_id: d.stop_id, recorded: d.record, created_at: d.created_at };
                return Ok((view, None));
            }
            let stop = queries::stop(tx.db(), req.stop_id)?
                .filter(|s| s.stop.courier_id == courier)
                .ok_or_else(|| {
                    AppError::new(ErrorCode::StopNotFound, "no such stop on your routes")
                        .with_field("stop_id")
                })?;
            let courier_phone = queries::courier(tx.db(), courier)?
                .map(|c| c.phone)
                .ok_or_else(|| AppError::new(ErrorCode::CourierNotFound, "no such courier"))?;
            let record = stored::record_direct_calls(tx.db(), depot)?;
            let new = stored::NewDial {
                stop_id: req.stop_id,
                courier_id: courier,
                depot_id: depot,
                idempotency_key: &req.idempotency_key,
                record,
                callback_secret: &secret,
                now,
            };
            let id = stored::create_dial(tx, &new)?;
            tx.append_event(NewEvent {
                at: now,
                origin_wall_ms: wall,
                depot_id: depot,
                courier_id: courier,
                stop_id: Some(req.stop_id),
                kind: EventKind::DirectDialPlaced { dial_id: id, recorded: record },
                call: None,
            })?;
            let placing = DirectDialRequest {
                key: DirectDialRequest::key(id),
                courier_phone,
                customer_phone: stop.stop.phone.clone(),
                record,
                callback_secret: secret.clone(),
            };
            Ok((DirectDial { id, stop_id: req.stop_id, recorded: record, created_at: now }, Some(placing)))
        })
        .await?;
    let status = if placing.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    if let Some(placing) = placing {
        // After the commit, like a smart call's attempt: the dial is on
        // record before anybody's phone rings.
        let (writer, clock, id) = (state.writer.clone(), state.clock.clone(), dial.id);
        tokio::spawn(async move {
            let result = telephony.dial_direct(placing).await;
            let now = clock.now();
            let outcome = writer
                .write(move |tx| -> Result<(), StoreError> {
                    match &result {
                        Ok(placed) => {
                            stored::dial_status(tx, id, "placed", Some(&placed.reference), None, now)?;
                        }
                        Err(e) => {
                            tracing::warn!(dial_id = id, error = %e, "the provider did not place the direct call");
                            if stored::dial_status(tx, id, "failed", None, None, now)? {
                                if let Some(d) = stored::dial(tx.db(), id)? {
                                    tx.append_event(NewEvent {
                                        at: now,
                                        origin_wall_ms: wall_ms(),
                                        depot_id: d.depot_id,
                                        courier_id: d.courier_id,
                                        stop_id: Some(d.stop_id),
                                        kind: EventKind::DirectDialEnded { dial_id: id, connected: false, talk_secs: None },
                                        call: None,
                                    })?;
                                }
                            }
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = outcome {
                tracing::error!(dial_id = id, error = %e, "cannot record the direct call");
            }
        });
    }
    Ok((status, ApiJson(dial)))
}

#[utoipa::path(put, path = "/v1/depots/{depot_id}/recording", tag = "admin", request_body = DirectCallRecording,
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = DirectCallRecording), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_recording(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    ApiPath(depot): ApiPath<i64>,
    ApiJson(req): ApiJson<DirectCallRecording>,
) -> Result<ApiJson<DirectCallRecording>, AppError> {
    let depot = DepotId(depot);
    let found = state
        .writer
        .write(move |tx| stored::set_record_direct_calls(tx, depot, req.record_direct_calls))
        .await?;
    if !found {
        return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
    }
    Ok(ApiJson(req))
}

#[utoipa::path(post, path = "/v1/direct-calls", tag = "calls", request_body = LogDirectCall,
    responses(
        (status = 201, description = "logged", body = DirectCall),
        (status = 200, description = "same idempotency key: the call logged before", body = DirectCall),
        (status = 404, description = "`stop_not_found`: no such stop on your routes", body = ErrorBody),
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
            let existing = stored::logged_call(tx.db(), courier, &req.idempotency_key)?;
            if let Some(logged) = existing {
                if logged.stop_id != req.stop_id {
                    return Err(AppError::new(
                        ErrorCode::IdempotencyKeyReused,
                        "this idempotency key was already used for another stop; generate a new key per log",
                    )
                    .with_field("idempotency_key"));
                }
                return Ok((logged, false));
            }
            let mine = queries::stop(tx.db(), req.stop_id)?.filter(|s| s.stop.courier_id == courier);
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
            let id = stored::log_call(
                tx,
                courier,
                req.stop_id,
                &req.idempotency_key,
                &req.note,
                called_at,
                event.seq,
            )?;
            Ok((DirectCall { id, stop_id: req.stop_id, note: req.note, called_at, seq: event.seq }, true))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, ApiJson(logged)))
}
