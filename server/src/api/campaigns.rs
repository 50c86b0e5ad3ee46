//! Campaigns, trigger rules, order events and the operator queue: the CRM's
//! side of issue #5. Everything is per depot and open to whoever manages it
//! (admin, its supervisors, its integrator key).

use super::templates::{managed, DepotManager};
use super::{ApiJson, ApiPath};
use crate::app::AppState;
use crate::auth::{Authenticated, Principal};
use crate::campaigns;
use crate::error::AppError;
use crate::store::campaigns::{self as stored, NewOrderEvent};
use crate::store::{Db, StoreError, WriteTx};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use callahead_core::campaign::{
    Campaign, CampaignRun, CreateCampaign, CreateTriggerRule, Enroll, OrderEventInput, OrderEventResult,
    StepAction, TriggerRule,
};
use callahead_core::clock::wall_ms;
use callahead_core::wire::{paths, ErrorCode};
use callahead_core::{DepotId, StopId};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOT_CAMPAIGNS, post(create_campaign).get(list_campaigns))
        .route(paths::CAMPAIGN_RUNS, post(enroll).get(list_runs))
        .route(paths::DEPOT_TRIGGER_RULES, post(create_rule).get(list_rules))
        .route(paths::DEPOT_ORDER_EVENTS, post(order_event))
        .route(paths::DEPOT_OPERATOR_QUEUE, get(operator_queue))
}

fn campaign_not_found(id: i64) -> AppError {
    AppError::new(ErrorCode::CampaignNotFound, format!("no campaign {id} in this depot"))
        .with_field("campaign_id")
}

/// The depot's campaign `id`, or a 404 naming it.
fn depot_campaign(db: &Db, depot: DepotId, id: i64) -> Result<Campaign, AppError> {
    stored::campaign(db, id)?.filter(|c| c.depot_id == depot).ok_or_else(|| campaign_not_found(id))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/campaigns", tag = "campaigns", request_body = CreateCampaign,
    params(("depot_id" = i64, Path)),
    responses((status = 201, body = Campaign)),
    security(("bearer" = [])))]
pub async fn create_campaign(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(req): ApiJson<CreateCampaign>,
) -> Result<(StatusCode, ApiJson<Campaign>), AppError> {
    req.check()?;
    for (i, s) in req.steps.iter().enumerate() {
        if let StepAction::Call { policy: Some(p) } = s.action {
            crate::api::admin::check_policy(&p.apply(&state.default_policy))
                .map_err(|e| e.with_field(format!("steps[{i}].action.policy")))?;
        }
    }
    let now = state.clock.now();
    let campaign = state
        .writer
        .write(move |tx| -> Result<Campaign, StoreError> {
            let id = stored::insert(tx, depot, &req.name, &req.steps, now)?;
            Ok(Campaign { id, depot_id: depot, name: req.name, steps: req.steps, created_at: now })
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(campaign)))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/campaigns", tag = "campaigns",
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = Vec<Campaign>)),
    security(("bearer" = [])))]
pub async fn list_campaigns(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<Vec<Campaign>>, AppError> {
    Ok(ApiJson(state.readers.read(move |c| stored::campaigns(c, depot)).await?))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/campaigns/{campaign_id}/runs", tag = "campaigns",
    params(("depot_id" = i64, Path), ("campaign_id" = i64, Path)),
    responses((status = 200, description = "every enrolled stop and where it is", body = Vec<CampaignRun>)),
    security(("bearer" = [])))]
pub async fn list_runs(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath((depot, campaign)): ApiPath<(i64, i64)>,
) -> Result<ApiJson<Vec<CampaignRun>>, AppError> {
    let depot = managed(&principal, depot)?;
    let runs = state
        .readers
        .read(move |c| -> Result<Vec<CampaignRun>, AppError> {
            depot_campaign(c, depot, campaign)?;
            Ok(stored::runs(c, campaign)?)
        })
        .await?;
    Ok(ApiJson(runs))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/campaigns/{campaign_id}/runs", tag = "campaigns",
    request_body = Enroll, params(("depot_id" = i64, Path), ("campaign_id" = i64, Path)),
    responses((status = 200, description = "the stops' runs (an already enrolled stop keeps its run)",
        body = Vec<CampaignRun>)),
    security(("bearer" = [])))]
pub async fn enroll(
    State(state): State<Arc<AppState>>,
    auth: Authenticated,
    ApiPath((depot, campaign)): ApiPath<(i64, i64)>,
    ApiJson(req): ApiJson<Enroll>,
) -> Result<ApiJson<Vec<CampaignRun>>, AppError> {
    let depot = managed(&auth.principal, depot)?;
    // Each enrollment may text or call a thousand customers.
    if auth.principal != Principal::Admin {
        state.limiters.campaign_run(auth.token_id)?;
    }
    if req.stop_ids.is_empty() || req.stop_ids.len() > 1000 {
        return Err(
            AppError::new(ErrorCode::ValidationFailed, "1 to 1000 stops per request").with_field("stop_ids")
        );
    }
    let now = state.clock.now();
    let runs = state
        .writer
        .write(move |tx| -> Result<Vec<CampaignRun>, AppError> {
            let c = depot_campaign(tx.db(), depot, campaign)?;
            // Every SMS this enrollment will send counts against today's quota
            // up front: over it, nothing is enrolled.
            let texts = c.steps.iter().filter(|s| matches!(s.action, StepAction::Sms)).count();
            let more = u32::try_from(texts * req.stop_ids.len()).unwrap_or(u32::MAX);
            if more > 0 {
                crate::guard::check_sms(tx.db(), depot, more, now)?;
            }
            let mut out = Vec::new();
            for (i, stop) in req.stop_ids.iter().enumerate() {
                depot_stop(tx.db(), depot, *stop).map_err(|e| e.with_field(format!("stop_ids[{i}]")))?;
                campaigns::enroll(tx, &c, *stop, now)?;
                out.extend(stored::run_of(tx.db(), campaign, *stop)?);
            }
            Ok(out)
        })
        .await?;
    state.campaigns.notify_one();
    Ok(ApiJson(runs))
}

/// A live stop of the depot, or a 404.
fn depot_stop(db: &Db, depot: DepotId, stop: StopId) -> Result<(), AppError> {
    let row = crate::store::queries::stop(db, stop)?;
    match row {
        Some(s) if s.stop.depot_id == depot && !s.removed => Ok(()),
        _ => Err(AppError::new(ErrorCode::StopNotFound, format!("no stop {stop} in this depot"))),
    }
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/trigger-rules", tag = "campaigns",
    request_body = CreateTriggerRule, params(("depot_id" = i64, Path)),
    responses((status = 201, body = TriggerRule)),
    security(("bearer" = [])))]
pub async fn create_rule(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(req): ApiJson<CreateTriggerRule>,
) -> Result<(StatusCode, ApiJson<TriggerRule>), AppError> {
    req.check()?;
    let now = state.clock.now();
    let rule = state
        .writer
        .write(move |tx| -> Result<TriggerRule, AppError> {
            depot_campaign(tx.db(), depot, req.campaign_id)?;
            let id = stored::insert_rule(tx, depot, &req.event_type, req.campaign_id, &req.cancel_on, now)?;
            Ok(TriggerRule {
                id,
                depot_id: depot,
                event_type: req.event_type,
                campaign_id: req.campaign_id,
                cancel_on: req.cancel_on,
                created_at: now,
            })
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(rule)))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/trigger-rules", tag = "campaigns",
    params(("depot_id" = i64, Path)),
    responses((status = 200, body = Vec<TriggerRule>)),
    security(("bearer" = [])))]
pub async fn list_rules(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<Vec<TriggerRule>>, AppError> {
    Ok(ApiJson(state.readers.read(move |c| stored::rules(c, depot)).await?))
}

#[utoipa::path(post, path = "/v1/depots/{depot_id}/order-events", tag = "campaigns",
    request_body = OrderEventInput, params(("depot_id" = i64, Path)),
    responses(
        (status = 201, description = "recorded; rules applied", body = OrderEventResult),
        (status = 200, description = "same idempotency key: the first answer", body = OrderEventResult)),
    security(("bearer" = [])))]
pub async fn order_event(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
    ApiJson(req): ApiJson<OrderEventInput>,
) -> Result<(StatusCode, ApiJson<OrderEventResult>), AppError> {
    req.check()?;
    let (now, wall) = (state.clock.now(), wall_ms());
    let (result, created) =
        state.writer.write(move |tx| record_order_event(tx, depot, &req, now, wall)).await?;
    if created {
        state.campaigns.notify_one();
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, ApiJson(result)))
}

/// Records the event and applies the depot's rules, in one transaction: a
/// retry with the same key changes nothing and gets the same answer.
fn record_order_event(
    tx: &mut WriteTx<'_>,
    depot: DepotId,
    req: &OrderEventInput,
    now: DateTime<Utc>,
    wall: i64,
) -> Result<(OrderEventResult, bool), AppError> {
    if let Some(seen) = stored::order_event_result(tx.db(), depot, &req.idempotency_key)? {
        return Ok((seen, false));
    }
    let stop = stored::stop_by_external_id(tx.db(), depot, req.date, &req.external_id)?;
    let Some(stop) = stop else {
        return Err(AppError::new(
            ErrorCode::StopNotFound,
            format!(
                "no order {:?} on the depot's routes of {}; import the route first",
                req.external_id, req.date
            ),
        )
        .with_field("external_id"));
    };
    let occurred = req.occurred_at.unwrap_or(now);
    let (mut enrolled, mut cancelled) = (Vec::new(), Vec::new());
    for rule in stored::rules(tx.db(), depot)? {
        if rule.cancel_on.contains(&req.event_type) {
            cancelled.extend(campaigns::cancel(tx, rule.campaign_id, stop, now, wall)?);
        }
        if rule.event_type == req.event_type {
            let c = depot_campaign(tx.db(), depot, rule.campaign_id)?;
            // Delays count from when it happened in the CRM.
            enrolled.extend(campaigns::enroll(tx, &c, stop, occurred)?);
        }
    }
    let id = stored::insert_order_event(
        tx,
        &NewOrderEvent {
            depot,
            idempotency_key: &req.idempotency_key,
            event_type: &req.event_type,
            stop,
            occurred_at: occurred,
            received_at: now,
        },
    )?;
    let result = OrderEventResult { id, stop_id: stop, enrolled, cancelled };
    stored::set_order_event_result(tx, &result)?;
    Ok((result, true))
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/operator-queue", tag = "campaigns",
    params(("depot_id" = i64, Path)),
    responses((status = 200, description = "customers handed over to a human, oldest first",
        body = Vec<CampaignRun>)),
    security(("bearer" = [])))]
pub async fn operator_queue(
    State(state): State<Arc<AppState>>,
    DepotManager(depot): DepotManager,
) -> Result<ApiJson<Vec<CampaignRun>>, AppError> {
    let queue = state.readers.read(move |c| stored::operator_queue(c, depot)).await?;
    Ok(ApiJson(queue))
}
