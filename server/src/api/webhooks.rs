//! Webhook endpoints: an admin, or the depot's integrator key, registers
//! receivers, rotates their secrets, and sees and replays failures. An
//! integrator key never sees another depot's endpoints (404, as if absent).

use super::{ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::RouteImporter;
use crate::error::AppError;
use crate::store::webhooks::{self as wstore, EndpointRow, NewEndpoint};
use crate::store::{queries, StoreError};
use crate::webhooks::signature::{self, Secret};
use crate::webhooks::MAX_ATTEMPTS;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use callahead_core::wire::{
    paths, CreateWebhook, CreatedWebhook, DeadLetterList, ErrorCode, EventKind, ReplayStarted,
    RotateWebhookSecret, RotatedWebhookSecret, Webhook, WebhookFailureList, WebhookList,
};
use callahead_core::DepotId;
use serde::Deserialize;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOT_WEBHOOKS, post(create_webhook).get(list_webhooks))
        .route(paths::WEBHOOK, get(get_webhook).delete(delete_webhook))
        .route(paths::WEBHOOK_ROTATE_SECRET, post(rotate_secret))
        .route(paths::WEBHOOK_FAILURES, get(list_failures))
        .route(paths::WEBHOOK_DEAD_LETTERS, get(list_dead_letters))
        .route(paths::WEBHOOK_REPLAY_ALL, post(replay_all))
        .route(paths::WEBHOOK_REPLAY, post(replay_one))
}

/// Longest accepted URL.
const MAX_URL: usize = 2000;
/// Default and largest rotation overlap.
const DEFAULT_OVERLAP_SECS: u32 = 24 * 3600;
const MAX_OVERLAP_SECS: u32 = 7 * 24 * 3600;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::ValidationFailed, message).with_field(field)
}

/// The URL's shape, then the SSRF policy on every address it resolves to.
pub async fn check_url(state: &AppState, url: &str) -> Result<(), AppError> {
    if url.len() > MAX_URL {
        return Err(invalid("url", format!("must be at most {MAX_URL} characters")));
    }
    state.webhooks.guard().check(url).await.map(drop).map_err(|e| invalid("url", e.to_string()))
}

/// Known type names, deduplicated, in the caller's order.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        if !EventKind::TYPES.contains(&t.as_str()) {
            return Err(invalid(
                format!("event_types[{i}]"),
                format!("unknown event type {t:?}; known: {}", EventKind::TYPES.join(", ")),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn check_secret(secret: Option<String>) -> Result<Secret, AppError> {
    match secret {
        Some(s) => {
            signature::check_secret(&s).map_err(|m| invalid("secret", m))?;
            Ok(Secret(s))
        }
        None => Ok(signature::new_secret()),
    }
}

fn own_depot(scope: Option<DepotId>, depot: DepotId) -> Result<(), AppError> {
    if scope.is_some_and(|d| d != depot) {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "an integrator key manages its own depot's webhooks",
        ));
    }
    Ok(())
}

/// The endpoint, if it exists and `scope` may see it.
async fn scoped(state: &AppState, id: i64, scope: Option<DepotId>) -> Result<EndpointRow, AppError> {
    let ep = state.readers.read(move |c| wstore::endpoint(c, id)).await?;
    ep.filter(|e| scope.is_none_or(|d| d == e.depot_id))
        .ok_or_else(|| AppError::new(ErrorCode::WebhookNotFound, format!("no webhook {id}")))
}

async fn view(state: &AppState, ep: EndpointRow) -> Result<Webhook, AppError> {
    let id = ep.id;
    let dead = state.readers.read(move |c| wstore::dead_letter_count(c, id)).await?;
    Ok(ep.view(dead, state.clock.now()))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/webhooks", tag = "webhooks", request_body = CreateWebhook,
    params(("depot_id" = i64, Path)),
    responses((status = 201, body = CreatedWebhook, description = "The secret is shown only here")),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(depot_id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, ApiJson<CreatedWebhook>), AppError> {
    let depot = DepotId(depot_id);
    own_depot(scope, depot)?;
    check_url(&state, &req.url).await?;
    let event_types = check_event_types(&req.event_types)?;
    let max_attempts = req.max_attempts.unwrap_or(state.webhooks.config.default_max_attempts);
    if !MAX_ATTEMPTS.contains(&max_attempts) {
        return Err(invalid(
            "max_attempts",
            format!("must be between {} and {}", MAX_ATTEMPTS.start(), MAX_ATTEMPTS.end()),
        ));
    }
    let secret = check_secret(req.secret)?;
    let now = state.clock.now();
    let (url, s, after) = (req.url, state.webhooks.seal(&secret), req.after_seq);
    let id = state
        .writer
        .write(move |tx| -> Result<i64, AppError> {
            if queries::depot(tx.db(), depot)?.is_none() {
                return Err(AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot}")));
            }
            let head = tx.head_seq();
            if after.is_some_and(|a| a > head) {
                return Err(invalid("after_seq", format!("the event log ends at {head}")));
            }
            let new = NewEndpoint {
                depot_id: depot,
                url,
                event_types,
                max_attempts,
                secret: s,
                cursor: after.unwrap_or(head),
                at: now,
            };
            Ok(wstore::insert(tx, &new)?)
        })
        .await?;
    state.webhooks.start(id, depot);
    let ep = scoped(&state, id, None).await?;
    tracing::info!(webhook = id, depot = %depot, "webhook endpoint registered");
    let webhook = view(&state, ep).await?;
    Ok((StatusCode::CREATED, ApiJson(CreatedWebhook { webhook, secret: secret.0 })))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/webhooks", tag = "webhooks",
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = WebhookList)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(depot_id): ApiPath<i64>,
) -> Result<ApiJson<WebhookList>, AppError> {
    let depot = DepotId(depot_id);
    own_depot(scope, depot)?;
    let now = state.clock.now();
    let webhooks = state
        .readers
        .read(move |c| -> Result<Vec<Webhook>, StoreError> {
            let mut out = Vec::new();
            for ep in wstore::endpoints(c, Some(depot))? {
                let dead = wstore::dead_letter_count(c, ep.id)?;
                out.push(ep.view(dead, now));
            }
            Ok(out)
        })
        .await?;
    Ok(ApiJson(WebhookList { webhooks }))
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = i64, Path)),
    responses((status = 200, body = Webhook)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Webhook>, AppError> {
    let ep = scoped(&state, id, scope).await?;
    Ok(ApiJson(view(&state, ep).await?))
}

#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = i64, Path)),
    responses((status = 204, description = "Deleted with its failures and dead letters")),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, AppError> {
    scoped(&state, id, scope).await?;
    state.writer.write(move |tx| wstore::delete(tx, id)).await?;
    state.webhooks.stop(id);
    tracing::info!(webhook = id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    request_body = RotateWebhookSecret, params(("webhook_id" = i64, Path)),
    responses((status = 200, body = RotatedWebhookSecret,
        description = "The new secret, shown only here; the old one keeps signing until `previous_secret_valid_until`")),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RotateWebhookSecret>,
) -> Result<ApiJson<RotatedWebhookSecret>, AppError> {
    let overlap = req.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(invalid("overlap_secs", format!("must be at most {MAX_OVERLAP_SECS} (a week)")));
    }
    let secret = check_secret(req.secret)?;
    scoped(&state, id, scope).await?;
    let until = state.clock.now() + chrono::Duration::seconds(overlap.into());
    let s = state.webhooks.seal(&secret);
    state.writer.write(move |tx| wstore::rotate(tx, id, &s, until)).await?;
    tracing::info!(webhook = id, overlap_secs = overlap, "webhook secret rotated");
    let webhook = view(&state, scoped(&state, id, scope).await?).await?;
    Ok(ApiJson(RotatedWebhookSecret { webhook, secret: secret.0 }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailureQuery {
    /// At most this many, newest first (1–1000, default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/failures", tag = "webhooks",
    params(("webhook_id" = i64, Path), FailureQuery),
    responses((status = 200, body = WebhookFailureList)),
    security(("bearer" = [])))]
pub async fn list_failures(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<FailureQuery>,
) -> Result<ApiJson<WebhookFailureList>, AppError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 1000"));
    }
    scoped(&state, id, scope).await?;
    let failures = state.readers.read(move |c| wstore::failures(c, id, limit)).await?;
    Ok(ApiJson(WebhookFailureList { failures }))
}

#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/dead-letters", tag = "webhooks",
    params(("webhook_id" = i64, Path)),
    responses((status = 200, body = DeadLetterList)),
    security(("bearer" = [])))]
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<DeadLetterList>, AppError> {
    scoped(&state, id, scope).await?;
    let dead_letters = state.readers.read(move |c| wstore::dead_letters(c, id)).await?;
    Ok(ApiJson(DeadLetterList { dead_letters }))
}

async fn replay(state: &AppState, id: i64, seq: Option<u64>) -> Result<ReplayStarted, AppError> {
    let replaying = state.writer.write(move |tx| wstore::replay(tx, id, seq)).await?;
    if let Some(seq) = seq.filter(|_| replaying == 0) {
        return Err(AppError::new(
            ErrorCode::DeadLetterNotFound,
            format!("event {seq} is not a dead letter here"),
        ));
    }
    state.webhooks.poke(id);
    tracing::info!(webhook = id, replaying, "webhook dead letters queued for replay");
    Ok(ReplayStarted { replaying })
}

#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/dead-letters/replay", tag = "webhooks",
    params(("webhook_id" = i64, Path)),
    responses((status = 202, body = ReplayStarted, description = "Delivered again before newer events")),
    security(("bearer" = [])))]
pub async fn replay_all(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, ApiJson<ReplayStarted>), AppError> {
    scoped(&state, id, scope).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(replay(&state, id, None).await?)))
}

#[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/dead-letters/{seq}/replay", tag = "webhooks",
    params(("webhook_id" = i64, Path), ("seq" = u64, Path)),
    responses((status = 202, body = ReplayStarted)),
    security(("bearer" = [])))]
pub async fn replay_one(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath((id, seq)): ApiPath<(i64, u64)>,
) -> Result<(StatusCode, ApiJson<ReplayStarted>), AppError> {
    scoped(&state, id, scope).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(replay(&state, id, Some(seq)).await?)))
}
