//! The customer's side of timing: nobody is called outside their calling
//! hours (in their own time zone, across daylight-saving changes), and
//! retries stop once the delivery window has started. Time is a scaled
//! clock: hours of policy pass in a few real seconds, nothing sleeps.

mod common;

use callahead_core::calling_hours::{CallingHours, DailyHours};
use callahead_core::clock::ScaledClock;
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{Event, EventKind};
use callahead_core::Outcome;
use callahead_server::providers::simulator::Behaviour;
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid time")
}

fn policy(hours: CallingHours) -> AttemptPolicy {
    AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 600,
        ring_timeout_secs: 30,
        calling_hours: hours,
        stop_at_window_start: true,
        ..AttemptPolicy::default()
    }
}

/// One stop for the depot's courier, in `tz`, with the given window.
async fn stop_in(h: &Harness, d: &mut Depot, tz: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let mut stop = stop_json(0, 0);
    stop["time_zone"] = json!(tz);
    stop["window_start"] = json!(from);
    stop["window_end"] = json!(to);
    let route = h.import(d, &json!({ "stops": [stop] })).await;
    route["stops"][0]["stop"]["id"].as_i64().expect("stop id")
}

fn placed_at(events: &[Event]) -> Vec<DateTime<Utc>> {
    events.iter().filter(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).map(|e| e.at).collect()
}

#[tokio::test]
async fn a_request_before_opening_waits_for_the_customers_morning() {
    // 07:00 UTC is 10:00 in Moscow; this depot calls from noon.
    let answers = HashMap::from([(phone(0), Behaviour::Answer { key: None })]);
    let h = Harness::start(fast_clock(), answers).await;
    let hours = CallingHours { weekdays: DailyHours::new((12, 0), (21, 0)), weekends: None };
    let mut d = h.depot(policy(hours), 0, 0).await;
    let stop =
        stop_in(&h, &mut d, "Europe/Moscow", t0() + Duration::hours(4), t0() + Duration::hours(5)).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    let (s, _) = h.request_call(&d, stop, "tap-before-noon").await;
    assert_eq!(s, StatusCode::CREATED);

    let events = ws.until(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).await;
    let noon_moscow = utc(2026, 11, 23, 9, 0);
    let deferred = events.iter().find_map(|e| match e.kind {
        EventKind::CallDeferred { until } => Some((until, e.call.as_ref().and_then(|c| c.next_attempt_at))),
        _ => None,
    });
    assert_eq!(deferred, Some((noon_moscow, Some(noon_moscow))), "the courier sees until when it waits");
    let placed = placed_at(&events);
    assert_eq!(placed.len(), 1);
    assert!(placed[0] >= noon_moscow, "first attempt at {} before calling hours opened", placed[0]);
}

#[tokio::test]
async fn a_window_that_ends_before_the_customers_morning_is_not_called_at_all() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let mut d = h.depot(policy(CallingHours::default()), 0, 0).await;
    // 07:00 UTC is 02:00 in New York: calls may start at 09:00 EST = 14:00
    // UTC, after this delivery window has closed.
    let stop =
        stop_in(&h, &mut d, "America/New_York", t0() + Duration::hours(3), t0() + Duration::hours(4)).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    h.request_call(&d, stop, "tap-new-york-night").await;
    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert_eq!(
        events.last().map(|e| &e.kind),
        Some(&EventKind::CallFinished { outcome: Outcome::OutsideCallingHours })
    );
    assert!(placed_at(&events).is_empty(), "nobody was called at night");
    assert!(h.server().simulator().placed().is_empty());
}

#[tokio::test]
async fn calling_hours_follow_the_customers_clock_across_a_daylight_saving_change() {
    // Sunday 2026-03-29, Berlin has just sprung forward: 05:30 UTC is 07:30
    // CEST, and 09:00 local is 07:00 UTC (it was 08:00 UTC the day before).
    let start = utc(2026, 3, 29, 5, 30);
    let answers = HashMap::from([(phone(0), Behaviour::Answer { key: None })]);
    let h = Harness::start(Arc::new(ScaledClock::new(start, 2000.0)), answers).await;
    let mut d = h.depot(policy(CallingHours::default()), 0, 0).await;
    let stop = stop_in(&h, &mut d, "Europe/Berlin", utc(2026, 3, 29, 10, 0), utc(2026, 3, 29, 12, 0)).await;
    let mut ws = h.ws(&d.courier_token, None).await;
    h.request_call(&d, stop, "tap-dst-morning").await;
    let events = ws.until(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).await;
    let until = events.iter().find_map(|e| match e.kind {
        EventKind::CallDeferred { until } => Some(until),
        _ => None,
    });
    assert_eq!(until, Some(utc(2026, 3, 29, 7, 0)));
    assert!(placed_at(&events)[0] >= utc(2026, 3, 29, 7, 0));
}

#[tokio::test]
async fn retries_stop_once_the_delivery_window_starts() {
    let silent = HashMap::from([(phone(0), Behaviour::NoAnswer), (phone(1), Behaviour::NoAnswer)]);
    let h = Harness::start(fast_clock(), silent).await;
    // Two hours between attempts; the window opens three hours from now.
    let spaced = AttemptPolicy { retry_spacing_secs: 2 * 3600, ..policy(CallingHours::default()) };
    let d = h.depot(spaced.clone(), 0, 0).await;
    let mut stop = stop_json(0, 0);
    stop["window_start"] = json!(t0() + Duration::hours(3));
    let route = h.import(&d, &json!({ "stops": [stop] })).await;
    let stop_id = route["stops"][0]["stop"]["id"].as_i64().expect("stop id");
    let mut ws = h.ws(&d.courier_token, None).await;
    h.request_call(&d, stop_id, "tap-retry-cut").await;
    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert_eq!(placed_at(&events).len(), 2, "a third attempt would fall inside the window");
    assert_eq!(events.last().map(|e| &e.kind), Some(&EventKind::CallFinished { outcome: Outcome::NoAnswer }));

    // The same customer on a depot that keeps retrying gets all three.
    let keep = h.depot(AttemptPolicy { stop_at_window_start: false, ..spaced }, 0, 0).await;
    let mut stop = stop_json(0, 1);
    stop["window_start"] = json!(t0() + Duration::hours(3));
    let route = h.import(&keep, &json!({ "stops": [stop] })).await;
    let stop_id = route["stops"][0]["stop"]["id"].as_i64().expect("stop id");
    let mut ws = h.ws(&keep.courier_token, None).await;
    h.request_call(&keep, stop_id, "tap-retry-all").await;
    let events = ws.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;
    assert_eq!(placed_at(&events).len(), 3);
}

#[tokio::test]
async fn unusable_calling_hours_are_refused_when_the_depot_is_saved() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let (s, body) = h
        .post(
            "/v1/depots",
            ADMIN,
            json!({"name": "Nights", "time_zone": "Europe/Moscow", "policy": {
                "max_attempts": 3, "retry_spacing_secs": 900, "ring_timeout_secs": 30,
                "calling_hours": {"weekdays": null, "weekends": null}}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["field"], "policy.calling_hours");
    let (s, body) = h
        .post(
            "/v1/depots",
            ADMIN,
            json!({"name": "Typo", "time_zone": "Europe/Moscow", "policy": {
                "max_attempts": 3, "retry_spacing_secs": 900, "ring_timeout_secs": 30,
                "calling_hours": {"weekdays": {"from": "9am", "to": "21:00"}, "weekends": null}}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("HH:MM")), "{body}");
}

#[tokio::test]
async fn retries_at_the_best_hour_are_on_unless_the_depot_or_the_call_says_off() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let (s, on) = h.post("/v1/depots", ADMIN, json!({"name": "Default", "time_zone": "Europe/Moscow"})).await;
    assert_eq!(s, StatusCode::CREATED, "{on}");
    assert_eq!(on["policy"]["retry_at_best_hour"], true);
    let off = AttemptPolicy { retry_at_best_hour: false, ..policy(CallingHours::default()) };
    let d = h.depot(off, 1, 0).await;
    let (s, listed) = h.get("/v1/depots", ADMIN).await;
    assert_eq!(s, StatusCode::OK);
    let saved = listed["depots"].as_array().and_then(|l| l.iter().find(|x| x["id"] == d.id)).cloned();
    assert_eq!(saved.map(|x| x["policy"]["retry_at_best_hour"].clone()), Some(json!(false)));
    // A call may switch it either way for itself; a misspelt switch is refused by name.
    let (s, body) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            json!({"stop_id": d.stop_ids[0], "idempotency_key": "tap-best-hour", "policy": {"retry_at_best_hour": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = h
        .post(
            "/v1/calls",
            &d.courier_token,
            json!({"stop_id": d.stop_ids[0], "idempotency_key": "tap-best-hour-2", "policy": {"retry_at_best_hr": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "policy.retry_at_best_hr", "{body}");
}
