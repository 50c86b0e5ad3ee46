//! Outcomes re-plan the route (docs/adr/0010): when a customer's answer
//! changes where their stop belongs in the courier's day, the server moves
//! that stop with [`callahead_core::planning::replan`] and logs the new order
//! with its reason, in the transaction that recorded the answer.
//!
//! * a call finished `declined` ([`after_outcome`]), or a window picked by
//!   link on another day ([`after_new_window`]): the stop leaves today's
//!   chain and goes to the end of the route;
//! * a window picked for later today: the stop moves to where it fits;
//! * "talk to the courier", and every other outcome: nothing moves.
//!
//! The server does not know which stops the courier already delivered (that
//! stays on the phone, docs/adr/0003), so it counts a stop whose window is
//! over as behind the courier. The courier still owns the order: the next
//! plan they send replaces this one, and a re-plan only ever moves the stop
//! whose customer answered.

use crate::store::{queries, routes, NewEvent, StoreError, WriteTx};
use callahead_core::planning::{self, Answer, Place, PlanSettings, PlanStop, ReplanStop};
use callahead_core::wire::{EventKind, Stop};
use callahead_core::{Outcome, StopId};
use chrono::{DateTime, Utc};

/// After a call about `stop` finished with `outcome`.
pub fn after_outcome(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    outcome: Outcome,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    let answer = match outcome {
        Outcome::Declined => Answer::Declined,
        // A reschedule waits for the customer's pick; "talk to the courier"
        // and the rest leave the stop where it is.
        _ => return Ok(()),
    };
    apply(tx, stop, answer, at, wall)
}

/// After the customer of `stop` picked a new window (already stored).
pub fn after_new_window(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    let Some(row) = queries::stop(tx.db(), stop)? else { return Ok(()) };
    let s = &row.stop;
    let tz = s.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let another_day = planning::on_another_day(s.window_start, s.route_date, tz);
    apply(tx, stop, Answer::NewWindow { another_day }, at, wall)
}

fn apply(
    tx: &mut WriteTx<'_>,
    stop: StopId,
    answer: Answer,
    at: DateTime<Utc>,
    wall: i64,
) -> Result<(), StoreError> {
    let Some(row) = queries::stop(tx.db(), stop)? else { return Ok(()) };
    if row.removed {
        return Ok(());
    }
    let (courier, date) = (row.stop.courier_id, row.stop.route_date);
    let live: Vec<Stop> = queries::route_stops(tx.db(), courier, date)?
        .into_iter()
        .filter(|r| !r.removed)
        .map(|r| r.stop)
        .collect();
    let route: Vec<ReplanStop> = live.iter().map(|s| replan_stop(s, at)).collect();
    // The courier's position is not known here; the legs' defaults are.
    let Some(replanned) = planning::replan(&route, stop, answer, at, None, &PlanSettings::default()) else {
        return Ok(());
    };
    for (sequence, id) in replanned.stop_ids.iter().enumerate() {
        let sequence = sequence as u32;
        if live.iter().any(|s| s.id == *id && s.sequence != sequence) {
            routes::set_sequence(tx, *id, sequence)?;
        }
    }
    routes::set_out_of_chain(tx, stop, replanned.reason.out_of_chain())?;
    // A re-import keeps this order, as it keeps the courier's.
    routes::mark_planned(tx, courier, date, at)?;
    tx.append_event(NewEvent {
        stop_id: Some(stop),
        ..NewEvent::route(
            at,
            wall,
            row.stop.depot_id,
            courier,
            EventKind::RoutePlanned { date, stop_ids: replanned.stop_ids, reason: Some(replanned.reason) },
        )
    })?;
    Ok(())
}

fn replan_stop(s: &Stop, now: DateTime<Utc>) -> ReplanStop {
    let place = match s.out_of_chain {
        Some(out) => Place::Out(out),
        None if s.window_end <= now => Place::Behind,
        None => Place::Ahead,
    };
    let stop =
        PlanStop { id: s.id, window_start: s.window_start, window_end: s.window_end, location: s.location };
    ReplanStop { stop, place }
}
