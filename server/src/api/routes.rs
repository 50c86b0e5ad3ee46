//! Routes: the integrator imports a courier's day, the courier reads it.

use super::{parse_date, ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{CourierOnly, Principal, RouteImporter};
use crate::error::AppError;
use crate::orchestrator::{self, AfterCommit};
use crate::store::{queries, routes, Db, NewEvent, StoreError, WriteTx};
use axum::extract::State;
use axum::routing::{get, put};
use axum::Router;
use callahead_core::clock::wall_ms;
use callahead_core::validate;
use callahead_core::wire::{
    paths, ErrorBody, ErrorCode, EventKind, PositionReceipt, PositionReport, Route, RouteImport, RoutePlan,
    StopInput,
};
use callahead_core::{CourierId, StopId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::COURIER_ROUTE, put(import_route).get(courier_route))
        .route(paths::MY_ROUTE, get(my_route))
        .route(paths::MY_ROUTE_PLAN, put(plan_route))
        .route(paths::MY_POSITION, put(report_position))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateQuery {
    /// `YYYY-MM-DD`; defaults to today in the depot's time zone.
    pub date: Option<String>,
}

#[utoipa::path(put, path = "/v1/couriers/{courier_id}/routes/{date}", tag = "routes", request_body = RouteImport,
    params(("courier_id" = i64, Path), ("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = Route)),
    security(("bearer" = [])))]
pub async fn import_route(
    State(state): State<Arc<AppState>>,
    RouteImporter { scope }: RouteImporter,
    ApiPath((courier_id, date)): ApiPath<(i64, String)>,
    ApiJson(req): ApiJson<RouteImport>,
) -> Result<ApiJson<Route>, AppError> {
    let date = parse_date("date", &date)?;
    validate::route(&req.stops)?;
    let courier = CourierId(courier_id);
    let (at, wall) = (state.clock.now(), wall_ms());
    let (route, todo) = state
        .writer
        .write(move |tx| -> Result<(Route, AfterCommit), AppError> {
            let found = queries::courier(tx.db(), courier)?.filter(|c| scope.is_none_or(|d| d == c.depot_id));
            let Some(c) = found else {
                return Err(AppError::new(
                    ErrorCode::CourierNotFound,
                    format!("no courier {courier} in your depot"),
                ));
            };
            crate::guard::check_route(tx.db(), c.depot_id, req.stops.iter().map(|s| s.phone.as_str()))?;
            let todo = replace_route(tx, c.id, c.depot_id, date, &req.stops, at, wall)?;
            Ok((full_route(tx.db(), courier, date, tx.head_seq())?, todo))
        })
        .await?;
    state.orchestrator.after_commit(todo);
    let mut route = route;
    // The integrator sent the numbers; reading them back needs no more than this.
    route.mask_personal_data();
    Ok(ApiJson(route))
}

/// Replace semantics: stops are matched on `external_id` (they keep their
/// ids), new ones inserted, missing ones marked removed (kept for audit) and
/// their active calls cancelled.
fn replace_route(
    tx: &mut WriteTx<'_>,
    courier: CourierId,
    depot: callahead_core::DepotId,
    date: NaiveDate,
    stops: &[StopInput],
    at: DateTime<Utc>,
    wall: i64,
) -> Result<AfterCommit, StoreError> {
    let previous = queries::route_stops(tx.db(), courier, date)?;
    let existing: HashMap<String, i64> =
        previous.iter().map(|r| (r.stop.external_id.clone(), r.stop.id.0)).collect();
    let sequences = merged_sequence(&previous, stops, queries::route_planned(tx.db(), courier, date)?);
    for (position, s) in stops.iter().enumerate() {
        let sequence = sequences[position];
        match existing.get(&s.external_id) {
            Some(id) => routes::update_stop(tx, StopId(*id), position, sequence, s)?,
            None => routes::insert_stop(tx, courier, depot, date, position, sequence, s)?,
        }
    }
    let kept: HashSet<&str> = stops.iter().map(|s| s.external_id.as_str()).collect();
    let mut todo = AfterCommit::default();
    for (external_id, id) in &existing {
        if kept.contains(external_id.as_str()) {
            continue;
        }
        routes::remove_stop(tx, StopId(*id))?;
        for call in queries::active_calls_for_stop(tx.db(), callahead_core::StopId(*id))? {
            if let Some((_, more)) = orchestrator::cancel(tx, call.view.id, at, wall)? {
                todo.merge(more);
            }
        }
    }
    tx.append_event(NewEvent::route(at, wall, depot, courier, EventKind::RouteReplaced { date }))?;
    Ok(todo)
}

/// Each imported stop's planned position. Unplanned routes follow the
/// import order. A courier's plan survives a re-import: stops they already
/// ordered keep that order, new stops go to the end in import order.
fn merged_sequence(previous: &[queries::StopRow], stops: &[StopInput], planned: bool) -> Vec<u32> {
    let old: HashMap<&str, u32> = previous
        .iter()
        .filter(|r| !r.removed)
        .map(|r| (r.stop.external_id.as_str(), r.stop.sequence))
        .collect();
    let mut order: Vec<(usize, (u8, u32, usize))> = stops
        .iter()
        .enumerate()
        .map(|(position, s)| {
            let key = match old.get(s.external_id.as_str()) {
                Some(&seq) if planned => (0, seq, position),
                _ if planned => (1, 0, position),
                _ => (0, 0, position),
            };
            (position, key)
        })
        .collect();
    order.sort_by_key(|(_, key)| *key);
    let mut sequence = vec![0; stops.len()];
    for (rank, (position, _)) in order.into_iter().enumerate() {
        sequence[position] = rank as u32;
    }
    sequence
}

/// The route and `head_seq` from one read transaction: one snapshot, so a
/// client resuming the websocket from `head_seq` misses nothing.
fn snapshot(db: &Db, courier: CourierId, date: NaiveDate) -> Result<Route, AppError> {
    full_route(db, courier, date, queries::head_seq(db)?)
}

/// The courier's route as of `head_seq`, with what their depot allows.
fn full_route(db: &Db, courier: CourierId, date: NaiveDate, head_seq: u64) -> Result<Route, AppError> {
    let stops = queries::route(db, courier, date)?;
    let auto_lead = crate::store::call_ahead::of_courier(db, courier)?.auto_lead;
    Ok(Route { courier_id: courier, date, stops, head_seq, auto_lead })
}

#[utoipa::path(get, path = "/v1/me/route", tag = "routes", params(DateQuery),
    responses((status = 200, body = Route)),
    security(("bearer" = [])))]
pub async fn my_route(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<DateQuery>,
) -> Result<ApiJson<Route>, AppError> {
    let (courier, depot) = principal.require_courier()?;
    let date = q.date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let now = state.clock.now();
    let route = state
        .readers
        .read(move |conn| -> Result<Route, AppError> {
            // One read transaction: the stops and `head_seq` are one snapshot,
            // so resuming the websocket from `head_seq` misses nothing.
            conn.snapshot(|tx| {
                let date = match date {
                    Some(d) => d,
                    None => {
                        let tz = queries::depot(tx, depot)?
                            .and_then(|d| d.time_zone.parse::<chrono_tz::Tz>().ok())
                            .unwrap_or(chrono_tz::UTC);
                        now.with_timezone(&tz).date_naive()
                    }
                };
                snapshot(tx, courier, date)
            })
        })
        .await?;
    let mut route = route;
    if !matches!(principal, Principal::Courier { .. }) {
        route.mask_personal_data();
    }
    Ok(ApiJson(route))
}

#[utoipa::path(get, path = "/v1/couriers/{courier_id}/routes/{date}", tag = "routes",
    params(("courier_id" = i64, Path), ("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, description = "the route in the courier's planned order", body = Route)),
    security(("bearer" = [])))]
/// A courier's route as their supervisor (or the depot's integrator, or an
/// admin) sees it: stops in the courier's planned order, each with its
/// latest call.
pub async fn courier_route(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath((courier_id, date)): ApiPath<(i64, String)>,
) -> Result<ApiJson<Route>, AppError> {
    let date = parse_date("date", &date)?;
    let courier = CourierId(courier_id);
    let route = state
        .readers
        .read(move |conn| -> Result<Route, AppError> {
            conn.snapshot(|tx| {
                let visible = queries::courier(tx, courier)?.is_some_and(|c| match principal {
                    Principal::Courier { id, .. } => id == courier,
                    ref p => p.manages(c.depot_id),
                });
                if !visible {
                    return Err(AppError::new(
                        ErrorCode::CourierNotFound,
                        format!("no courier {courier} in your depot"),
                    ));
                }
                snapshot(tx, courier, date)
            })
        })
        .await?;
    let mut route = route;
    if !matches!(principal, Principal::Courier { .. }) {
        route.mask_personal_data();
    }
    Ok(ApiJson(route))
}

#[utoipa::path(put, path = "/v1/me/route/plan", tag = "routes", request_body = RoutePlan,
    responses((status = 200, description = "the route in its new order", body = Route),
        (status = 409, description = "`plan_mismatch`: not exactly the route's live stops; sync and plan again",
            body = ErrorBody)),
    security(("bearer" = [])))]
/// The courier's planned order for a route: every live stop exactly once.
/// It is kept across re-imports and shown to the supervisor, and replaces
/// any order the server re-planned (docs/adr/0010): the courier owns it.
pub async fn plan_route(
    State(state): State<Arc<AppState>>,
    CourierOnly { id: courier, depot }: CourierOnly,
    ApiJson(req): ApiJson<RoutePlan>,
) -> Result<ApiJson<Route>, AppError> {
    let (at, wall) = (state.clock.now(), wall_ms());
    let route = state
        .writer
        .write(move |tx| -> Result<Route, AppError> {
            let live: Vec<StopId> =
                queries::route(tx.db(), courier, req.date)?.into_iter().map(|r| r.stop.id).collect();
            validate::plan(&req.stop_ids, &live)?;
            for (sequence, id) in req.stop_ids.iter().enumerate() {
                routes::set_sequence(tx, *id, sequence as u32)?;
            }
            routes::mark_planned(tx, courier, req.date, at)?;
            let kind =
                EventKind::RoutePlanned { date: req.date, stop_ids: req.stop_ids.clone(), reason: None };
            tx.append_event(NewEvent::route(at, wall, depot, courier, kind))?;
            full_route(tx.db(), courier, req.date, tx.head_seq())
        })
        .await?;
    Ok(ApiJson(route))
}

#[utoipa::path(put, path = "/v1/me/position", tag = "routes", request_body = PositionReport,
    responses((status = 200, description = "`logged`: false when the last logged position is younger than 15 s",
        body = PositionReceipt), (status = 400, description = "`validation_failed`: coordinates out of range or a fix \
        time not within the last day", body = ErrorBody)),
    security(("bearer" = [])))]
/// The courier's GPS position, for the supervisor's map of progress.
pub async fn report_position(
    State(state): State<Arc<AppState>>,
    CourierOnly { id: courier, depot }: CourierOnly,
    ApiJson(req): ApiJson<PositionReport>,
) -> Result<ApiJson<PositionReceipt>, AppError> {
    let receipt = crate::positions::record(&state.writer, state.clock.now(), courier, depot, req).await?;
    Ok(ApiJson(receipt))
}
