//! `/v1/providers/{provider}/…`: the one route family every provider calls
//! back on (docs/architecture.md §4). The adapter checks the request's signature
//! before anything in it is parsed; what it accepts is applied here in one
//! writer transaction, deduplicated on the provider's own keys, through the
//! same transition as the simulator's reports; the reply (Twilio's TwiML)
//! goes out only after the commit.

use crate::app::AppState;
use crate::error::AppError;
use crate::orchestrator::{self, AfterCommit};
use crate::providers::callbacks::{
    Accepted, CallbackError, DirectUpdate, Inbound, Loaded, ProviderCallbacks, Subject, REPLAY_WINDOW_SECS,
};
use crate::providers::PlaceCall;
use crate::store::providers::{self as stored, Receipt};
use crate::store::{NewEvent, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use callahead_core::clock::wall_ms;
use callahead_core::wire::{ErrorCode, EventKind};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/v1/providers/{provider}/{*rest}", any(callback))
}

fn refuse(e: CallbackError) -> AppError {
    match e {
        CallbackError::Forged(m) => AppError::new(ErrorCode::ProviderSignatureInvalid, m),
        CallbackError::Replayed(m) => AppError::new(ErrorCode::ProviderCallbackReplayed, m),
        CallbackError::Unknown(m) => AppError::new(ErrorCode::NotFound, m),
        CallbackError::Invalid(m) => AppError::new(ErrorCode::ValidationFailed, m),
    }
}

/// The adapter configured under `provider` for this kind of callback.
fn adapter<'a>(state: &'a AppState, provider: &str, kind: &str) -> Option<&'a dyn ProviderCallbacks> {
    if kind == "messages" {
        (state.messaging.name() == provider).then(|| state.messaging.callbacks()).flatten()
    } else {
        let telephony = &state.orchestrator.telephony;
        (telephony.name() == provider).then(|| telephony.callbacks()).flatten()
    }
}

async fn callback(
    State(state): State<Arc<AppState>>,
    Path((provider, rest)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
    let kind = segments.first().map(String::as_str).unwrap_or("");
    let adapter = adapter(&state, &provider, kind).ok_or_else(|| {
        AppError::new(
            ErrorCode::ProviderNotConfigured,
            format!("no {provider} {kind} provider on this server"),
        )
    })?;
    let subject = adapter.subject(&segments).map_err(refuse)?;
    let loaded = match &subject {
        Subject::Attempt(key) => {
            let key = key.clone();
            Loaded::Attempt(state.readers.read(move |c| stored::attempt_by_key(c, &key)).await?.map(Box::new))
        }
        Subject::Message(key) => {
            let key = key.clone();
            Loaded::Message(state.readers.read(move |c| stored::message(c, &key)).await?)
        }
        Subject::Direct(key) => {
            let key = key.clone();
            Loaded::Direct(state.readers.read(move |c| stored::dial_by_key(c, &key)).await?.map(Box::new))
        }
    };
    // What the provider signed: the public URL it was given, as requested.
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
    let url = format!("{}{path_and_query}", state.public_url.trim_end_matches('/'));
    let now = state.clock.now();
    let inbound = Inbound { url: &url, headers: &headers, body: &body, segments: &segments, now };
    let accepted = adapter.handle(&inbound, &loaded).map_err(|e| {
        tracing::warn!(provider = %provider, error = %e, "provider callback refused");
        refuse(e)
    })?;
    if let Loaded::Attempt(Some(a)) = &loaded {
        // Providers stop asking about a call soon after it ends; a signed
        // request long after is a replay.
        if a.ended_at.is_some_and(|t| (state.clock.now() - t).num_seconds() > REPLAY_WINDOW_SECS) {
            return Err(refuse(CallbackError::Replayed("the attempt ended long ago".into())));
        }
    }
    let reply = accepted.reply.clone();
    let applied = apply(&state, subject, accepted, now).await?;
    match applied {
        Applied::Stale => return Err(refuse(CallbackError::Replayed("already applied long ago".into()))),
        Applied::Done(todo) => state.orchestrator.after_commit(todo),
    }
    Ok(([(header::CONTENT_TYPE, reply.content_type)], reply.body).into_response())
}

enum Applied {
    Done(AfterCommit),
    /// A dedupe key first seen outside the replay window.
    Stale,
}

async fn apply(
    state: &AppState,
    subject: Subject,
    accepted: Accepted,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let at = state.clock.now();
    state
        .writer
        .write(move |tx| {
            if let Receipt::Seen { first_at_ms } = stored::record_receipts(tx, &accepted.receipts, now)? {
                // The provider's own retry: answered as before, applied once.
                let fresh = now.timestamp_millis() - first_at_ms <= REPLAY_WINDOW_SECS * 1000;
                return Ok(if fresh { Applied::Done(AfterCommit::default()) } else { Applied::Stale });
            }
            let mut todo = AfterCommit::default();
            match subject {
                Subject::Attempt(key) => {
                    let Some((id, n)) = PlaceCall::parse_attempt_key(&key) else {
                        return Ok(Applied::Done(todo));
                    };
                    if let Some(placed) = &accepted.placed {
                        let known = stored::attempt(tx.db(), id, n)?.and_then(|a| a.placed);
                        if known.is_none() {
                            stored::set_placed(tx, id, n, placed)?;
                        }
                    }
                    for event in &accepted.events {
                        todo.merge(orchestrator::apply(tx, id, n, None, event, at, wall_ms())?);
                    }
                }
                Subject::Direct(key) => {
                    if let Some(dial) = stored::dial_by_key(tx.db(), &key)? {
                        apply_direct(tx, &dial, &accepted.direct, at)?;
                    }
                }
                Subject::Message(key) => {
                    if let Some(m) = &accepted.message {
                        stored::message_status(
                            tx,
                            &key,
                            m.provider_ref.as_deref(),
                            &m.status,
                            m.error.as_deref(),
                            at,
                        )?;
                    }
                }
            }
            Ok(Applied::Done(todo))
        })
        .await
}

/// What a provider said about a courier's direct call: kept on the dial,
/// and on the stop's timeline (the audit) once each.
fn apply_direct(
    tx: &mut crate::store::WriteTx<'_>,
    dial: &stored::StoredDial,
    updates: &[DirectUpdate],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut status = dial.status.clone();
    for update in updates {
        let kind = match update {
            DirectUpdate::Placed(reference) => {
                stored::dial_status(tx, dial.id, &status, Some(reference), None, at)?;
                None
            }
            DirectUpdate::Connected(connected) => {
                status = if *connected { "connected" } else { "not_connected" }.to_owned();
                stored::dial_status(tx, dial.id, &status, None, None, at)?;
                None
            }
            DirectUpdate::Ended { talk_secs } => {
                let connected = status == "connected";
                stored::dial_status(tx, dial.id, "ended", None, *talk_secs, at)?.then_some(
                    EventKind::DirectDialEnded { dial_id: dial.id, connected, talk_secs: *talk_secs },
                )
            }
            DirectUpdate::Recorded { recording_ref, duration_secs } => {
                stored::dial_recorded(tx, dial.id, recording_ref, *duration_secs, at)?.then(|| {
                    EventKind::DirectCallRecorded {
                        dial_id: dial.id,
                        recording_ref: recording_ref.clone(),
                        duration_secs: *duration_secs,
                    }
                })
            }
        };
        if let Some(kind) = kind {
            tx.append_event(NewEvent {
                at,
                origin_wall_ms: wall_ms(),
                depot_id: dial.depot_id,
                courier_id: dial.courier_id,
                stop_id: Some(dial.stop_id),
                kind,
                call: None,
            })?;
        }
    }
    Ok(())
}
