//! The daily report (issue #5): one depot's local day in the numbers the
//! deployments quote, computed from the durable tables (calls, attempts,
//! messages), never from the live feed. See docs/messaging.md for the fields.
//!
//! A call belongs to the day it was requested on; a message to the day it
//! was queued on; both in the depot's time zone.

use callahead_core::best_hour::Tally;
use callahead_core::wire::{DailyReport, HourAnswers};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt::Write;

/// The UTC instant a local day starts (the first instant of it, across a
/// DST gap at midnight too).
pub(crate) fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    (0..24)
        .filter_map(|h| date.and_hms_opt(h, 0, 0))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map_or_else(|| date.and_time(chrono::NaiveTime::MIN).and_utc(), |t| t.with_timezone(&Utc))
}

pub use crate::store::reports::daily;

/// `part / whole` to 4 decimals (so JSON and CSV print the same number).
pub(crate) fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (f64::from(part) / f64::from(whole) * 10_000.0).round() / 10_000.0
}

/// The hours that had attempts, in order, with their rates.
pub(crate) fn answers_by_hour(hours: &[Tally; 24]) -> Vec<HourAnswers> {
    (0u8..24)
        .zip(hours)
        .filter(|(_, t)| t.attempts > 0)
        .map(|(hour, t)| HourAnswers {
            hour,
            attempts: t.attempts,
            answered: t.answered,
            answer_rate: rate(t.answered, t.attempts),
        })
        .collect()
}

/// The report as CSV: a header line and one data line. Per channel the
/// columns are `{channel}_delivered`, `_billed`, `_segments`, `_cost_minor`;
/// per local hour (all 24, so every day has the same columns)
/// `attempts_hHH` and `answered_hHH`.
/// No field needs quoting: numbers, an ISO date, an IANA zone name.
pub fn csv(r: &DailyReport) -> String {
    let mut cols: Vec<(String, String)> = vec![
        ("depot_id".into(), r.depot_id.0.to_string()),
        ("date".into(), r.date.to_string()),
        ("time_zone".into(), r.time_zone.clone()),
    ];
    let counts = [
        ("calls_requested", r.calls_requested),
        ("reached", r.reached),
        ("confirmed", r.confirmed),
        ("rescheduled", r.rescheduled),
        ("declined", r.declined),
        ("talk_to_courier", r.talk_to_courier),
        ("no_answer", r.no_answer),
        ("failed", r.failed),
        ("outside_calling_hours", r.outside_calling_hours),
        ("interrupted", r.interrupted),
        ("unfinished", r.unfinished),
        ("attempts", r.attempts),
        ("attempts_failed", r.attempts_failed),
        ("attempts_interrupted", r.attempts_interrupted),
    ];
    cols.extend(counts.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    // Formatted as JSON formats them, so the two agree character for character.
    cols.push(("reach_rate".into(), serde_json::Value::from(r.reach_rate).to_string()));
    cols.push(("confirmation_rate".into(), serde_json::Value::from(r.confirmation_rate).to_string()));
    cols.push(("saved_trips".into(), r.saved_trips.to_string()));
    let v = &r.savings;
    for (k, n) in [
        ("failed_visits_avoided", v.failed_visits_avoided),
        ("confirmed_before_arrival", v.confirmed_before_arrival),
        ("courier_minutes_saved", v.courier_minutes_saved),
        ("minutes_per_manual_call", r.minutes_per_manual_call),
    ] {
        cols.push((k.into(), n.to_string()));
    }
    cols.push(("savings_cost_minor".into(), v.cost_minor.to_string()));
    cols.push((
        "cost_per_confirmed_minor".into(),
        v.cost_per_confirmed_minor.map(|c| c.to_string()).unwrap_or_default(),
    ));
    for c in &r.channels {
        cols.push((format!("{}_delivered", c.channel), c.delivered.to_string()));
        cols.push((format!("{}_billed", c.channel), c.billed.to_string()));
        cols.push((format!("{}_segments", c.channel), c.segments.to_string()));
        cols.push((format!("{}_cost_minor", c.channel), c.cost_minor.to_string()));
    }
    cols.push(("messages_undelivered".into(), r.messages_undelivered.to_string()));
    cols.push(("messages_refused".into(), r.messages_refused.to_string()));
    cols.push(("cost_total_minor".into(), r.cost_total.minor.to_string()));
    cols.push(("currency".into(), r.cost_total.currency.clone()));
    for hour in 0u8..24 {
        let h = r.answers_by_hour.iter().find(|h| h.hour == hour);
        cols.push((format!("attempts_h{hour:02}"), h.map_or(0, |h| h.attempts).to_string()));
        cols.push((format!("answered_h{hour:02}"), h.map_or(0, |h| h.answered).to_string()));
    }
    let mut out = String::new();
    let header: Vec<&str> = cols.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<&str> = cols.iter().map(|(_, v)| v.as_str()).collect();
    // Writing to a String cannot fail.
    let _ = write!(out, "{}\r\n{}\r\n", header.join(","), values.join(","));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_runs_from_local_midnight_to_local_midnight() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
        let moscow = day_start(chrono_tz::Europe::Moscow, date);
        assert_eq!(moscow.to_rfc3339(), "2026-11-22T21:00:00+00:00");
        // Santiago skips midnight when DST starts: the day starts at 01:00.
        let gap = NaiveDate::from_ymd_opt(2026, 9, 6).expect("date");
        let santiago = day_start(chrono_tz::America::Santiago, gap);
        assert_eq!(santiago.to_rfc3339(), "2026-09-06T04:00:00+00:00");
    }

    #[test]
    fn rates_are_rounded_and_safe_on_zero() {
        assert_eq!(rate(2, 3), 0.6667);
        assert_eq!(rate(0, 0), 0.0);
        assert_eq!(rate(5, 5), 1.0);
    }
}
