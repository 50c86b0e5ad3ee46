//! What the supervisor's dashboard reads: the depots it may watch, a depot's
//! live overview (couriers with their app's connection, the day's calls,
//! outcome rates and outcomes per hour), one stop's whole timeline, and the
//! event log in pages. Supervisors see their depot, admins every depot;
//! another depot is "not found".

use super::templates::DepotManager;
use super::{parse_date, ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::store::{queries, StoreError};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use callahead_core::call::{CallStatus, Outcome};
use callahead_core::wire::{
    paths, CallView, CourierStatus, DepotDashboard, DepotList, ErrorCode, EventPage, HourOutcomes,
    OutcomeCounts, StopTimeline,
};
use callahead_core::StopId;
use chrono::Timelike;
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A depot's calls of one day beyond this need a narrower view.
const DAY_CALL_LIMIT: usize = 20_000;
const EVENT_PAGE_DEFAULT: usize = 500;
const EVENT_PAGE_MAX: usize = 1000;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(paths::DEPOT_DASHBOARD, get(depot_dashboard))
        .route(paths::STOP_TIMELINE, get(stop_timeline))
        .route(paths::EVENTS, get(list_events))
}

/// The depots a token may watch: all for an admin, its own otherwise.
#[utoipa::path(get, path = "/v1/depots", tag = "dashboard",
    responses((status = 200, body = DepotList)),
    security(("bearer" = [])))]
pub async fn list_depots(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<ApiJson<DepotList>, AppError> {
    if matches!(principal, Principal::Courier { .. }) {
        return Err(AppError::forbidden());
    }
    let only = principal.depot();
    let depots = state.readers.read(move |c| queries::depots(c, only)).await?;
    Ok(ApiJson(DepotList { depots }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// `YYYY-MM-DD`; default: today in the depot's time zone.
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/v1/depots/{depot_id}/dashboard", tag = "dashboard",
    params(("depot_id" = i64, Path), DashboardQuery),
    responses((status = 200, body = DepotDashboard)),
    security(("bearer" = [])))]
pub async fn depot_dashboard(
    State(state): State<Arc<AppState>>,
    DepotManager(depot_id): DepotManager,
    ApiQuery(q): ApiQuery<DashboardQuery>,
) -> Result<ApiJson<DepotDashboard>, AppError> {
    let date = q.date.as_deref().map(|d| parse_date("date", d)).transpose()?;
    let now = state.clock.now();
    let mut dashboard = state
        .readers
        .read(move |c| -> Result<DepotDashboard, AppError> {
            // One read transaction: everything is as of `head_seq`.
            c.snapshot(|tx| {
                let depot = queries::depot(tx, depot_id)?
                    .ok_or_else(|| AppError::new(ErrorCode::DepotNotFound, format!("no depot {depot_id}")))?;
                let tz = depot_tz(&depot.time_zone);
                let date = date.unwrap_or_else(|| now.with_timezone(&tz).date_naive());
                let head_seq = queries::head_seq(tx)?;
                let active = queries::last_activity(tx, depot_id)?;
                let positions = crate::store::positions::of_depot(tx, depot_id)?;
                let couriers = queries::depot_couriers(tx, depot_id)?
                    .into_iter()
                    .map(|courier| CourierStatus {
                        last_activity: active.get(&courier.id).copied(),
                        app_connected: false,
                        position: positions.get(&courier.id).copied(),
                        courier,
                    })
                    .collect();
                let stops = queries::depot_stops(tx, depot_id, date)?;
                let filter = queries::CallFilter { depot: Some(depot_id), courier: None, date: Some(date) };
                let calls: Vec<CallView> = queries::filtered_calls(tx, &filter, DAY_CALL_LIMIT)?
                    .into_iter()
                    .map(|c| c.view)
                    .collect();
                let (totals, hourly) = outcomes(&calls, tz);
                Ok(DepotDashboard { depot, date, head_seq, couriers, stops, calls, totals, hourly })
            })
        })
        .await?;
    // Read after the snapshot: a connection change is in memory before its
    // event commits, so this is never older than `head_seq`, and any later
    // change still arrives as an event after `head_seq`.
    let connected = state.presence.connected();
    for c in &mut dashboard.couriers {
        c.app_connected = connected.contains(&c.courier.id);
        c.courier.phone = callahead_core::privacy::mask_phone(&c.courier.phone);
    }
    for s in &mut dashboard.stops {
        s.mask_personal_data();
    }
    Ok(ApiJson(dashboard))
}

fn depot_tz(name: &str) -> Tz {
    // Validated when the depot was created.
    name.parse().unwrap_or(chrono_tz::UTC)
}

fn count(c: &mut OutcomeCounts, outcome: Outcome) {
    c.finished += 1;
    match outcome {
        Outcome::Confirmed => c.confirmed += 1,
        Outcome::RescheduleRequested => c.rescheduled += 1,
        Outcome::Declined => c.declined += 1,
        Outcome::WantsCourier => c.wants_courier += 1,
        Outcome::NoAnswer => c.no_answer += 1,
        Outcome::Failed | Outcome::OutsideCallingHours => c.other += 1,
        Outcome::Interrupted => c.interrupted += 1,
    }
    if matches!(
        outcome,
        Outcome::Confirmed | Outcome::RescheduleRequested | Outcome::Declined | Outcome::WantsCourier
    ) {
        c.reached += 1;
    }
}

/// The day's totals and, per hour of the depot's clock, the outcomes of the
/// calls that finished then.
pub fn outcomes(calls: &[CallView], tz: Tz) -> (OutcomeCounts, Vec<HourOutcomes>) {
    let mut totals = OutcomeCounts::default();
    let mut hours: BTreeMap<u32, OutcomeCounts> = BTreeMap::new();
    for call in calls {
        let (CallStatus::Finished, Some(outcome)) = (call.status, call.outcome) else { continue };
        count(&mut totals, outcome);
        count(hours.entry(call.updated_at.with_timezone(&tz).hour()).or_default(), outcome);
    }
    (totals, hours.into_iter().map(|(hour, outcomes)| HourOutcomes { hour, outcomes }).collect())
}

/// Every call, attempt (with the rendered script) and event of one stop.
#[utoipa::path(get, path = "/v1/stops/{stop_id}/timeline", tag = "dashboard",
    params(("stop_id" = i64, Path)),
    responses((status = 200, body = StopTimeline)),
    security(("bearer" = [])))]
pub async fn stop_timeline(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiPath(stop_id): ApiPath<i64>,
) -> Result<ApiJson<StopTimeline>, AppError> {
    if matches!(principal, Principal::Integrator { .. }) {
        return Err(AppError::forbidden());
    }
    let id = StopId(stop_id);
    let timeline = state
        .readers
        .read(move |c| -> Result<Option<StopTimeline>, AppError> {
            c.snapshot(|tx| {
                let Some(row) = queries::stop(tx, id)? else { return Ok(None) };
                let visible = match principal {
                    Principal::Courier { id, .. } => row.stop.courier_id == id,
                    other => other.manages(row.stop.depot_id),
                };
                if !visible {
                    return Ok(None);
                }
                let calls = queries::stop_calls(tx, id)?;
                let events = queries::stop_events(tx, id)?;
                let mut stop = row.stop;
                if !matches!(principal, Principal::Courier { .. }) {
                    stop.mask_personal_data();
                }
                Ok(Some(StopTimeline { stop, removed: row.removed, calls, events }))
            })
        })
        .await?;
    timeline.map(ApiJson).ok_or_else(|| AppError::new(ErrorCode::StopNotFound, "no such stop"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events with a seq above this one; default 0 (from the start).
    pub after: Option<u64>,
    /// At most this many, 1 to 1000; default 500.
    pub limit: Option<usize>,
}

/// The event log as the websocket would replay it to this token.
#[utoipa::path(get, path = "/v1/events", tag = "push", params(EventsQuery),
    responses((status = 200, body = EventPage)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<ApiJson<EventPage>, AppError> {
    let scope = crate::ws::scope_of(principal)?;
    let limit = q.limit.unwrap_or(EVENT_PAGE_DEFAULT);
    if !(1..=EVENT_PAGE_MAX).contains(&limit) {
        return Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("limit must be 1 to {EVENT_PAGE_MAX}"),
        )
        .with_field("limit"));
    }
    let after = q.after.unwrap_or(0);
    let page = state
        .readers
        .read(move |c| -> Result<EventPage, StoreError> {
            c.snapshot(|tx| {
                let head_seq = queries::head_seq(tx)?;
                let events = queries::events_after(tx, scope, after, limit)?;
                Ok(EventPage { events, head_seq })
            })
        })
        .await?;
    Ok(ApiJson(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callahead_core::{CallId, CourierId, DepotId};
    use chrono::{TimeZone, Utc};

    fn call(id: i64, status: CallStatus, outcome: Option<Outcome>, hour_utc: u32) -> CallView {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, hour_utc, 10, 0).single().expect("time");
        CallView {
            id: CallId(id),
            stop_id: StopId(id),
            courier_id: CourierId(1),
            depot_id: DepotId(1),
            idempotency_key: format!("k{id}"),
            status,
            outcome,
            attempts_made: 1,
            max_attempts: 3,
            next_attempt_at: None,
            created_at: at,
            updated_at: at,
            last_seq: id as u64,
        }
    }

    #[test]
    fn finished_calls_count_by_outcome_and_by_hour_of_the_depot_clock() {
        let calls = [
            call(1, CallStatus::Finished, Some(Outcome::Confirmed), 7),
            call(2, CallStatus::Finished, Some(Outcome::NoAnswer), 7),
            call(3, CallStatus::Finished, Some(Outcome::RescheduleRequested), 8),
            call(4, CallStatus::Finished, Some(Outcome::Failed), 8),
            call(5, CallStatus::Ringing, None, 8),
            call(6, CallStatus::Cancelled, None, 8),
            call(7, CallStatus::Finished, Some(Outcome::Interrupted), 8),
        ];
        let (totals, hourly) = outcomes(&calls, chrono_tz::Europe::Moscow);
        assert_eq!(
            totals,
            OutcomeCounts {
                finished: 5,
                reached: 2,
                confirmed: 1,
                rescheduled: 1,
                no_answer: 1,
                other: 1,
                // A crash is not the provider's failure (issue #10).
                interrupted: 1,
                ..OutcomeCounts::default()
            }
        );
        // Moscow is UTC+3: 07:10 UTC is the 10 o'clock hour there.
        assert_eq!(
            hourly.iter().map(|h| (h.hour, h.outcomes.finished)).collect::<Vec<_>>(),
            [(10, 2), (11, 3)]
        );
        assert_eq!(hourly[0].outcomes.confirmed, 1);
    }
}
