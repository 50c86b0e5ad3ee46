//! The daily report (issue #5): one depot's local day in the numbers the
//! deployments quote, computed from the durable tables (calls, attempts,
//! messages), never from the live feed. See docs/messaging.md for the fields.
//!
//! A call belongs to the day it was requested on; a message to the day it
//! was queued on; both in the depot's time zone.

use crate::store::{ms, queries, StoreError};
use callahead_core::channel::Channel;
use callahead_core::wire::{ChannelReport, DailyReport, Money};
use callahead_core::{DepotId, Outcome};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::{params, Connection};
use std::fmt::Write;

/// The UTC instant a local day starts (the first instant of it, across a
/// DST gap at midnight too).
pub(crate) fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    (0..24)
        .filter_map(|h| date.and_hms_opt(h, 0, 0))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map_or_else(|| date.and_time(chrono::NaiveTime::MIN).and_utc(), |t| t.with_timezone(&Utc))
}

/// `None` when the depot does not exist. Costs count messages priced in
/// `currency` (the server's; messages priced before a currency change are
/// left out of the sums).
pub fn daily(
    conn: &mut Connection,
    depot: DepotId,
    date: NaiveDate,
    currency: &str,
) -> Result<Option<DailyReport>, StoreError> {
    let tx = conn.transaction()?;
    let Some(d) = queries::depot(&tx, depot)? else { return Ok(None) };
    let tz: Tz = d.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let from = ms(day_start(tz, date));
    let to = ms(day_start(tz, date.succ_opt().unwrap_or(date)));

    let mut r = DailyReport {
        depot_id: depot,
        date,
        time_zone: d.time_zone.clone(),
        calls_requested: 0,
        reached: 0,
        confirmed: 0,
        rescheduled: 0,
        declined: 0,
        talk_to_courier: 0,
        no_answer: 0,
        failed: 0,
        outside_calling_hours: 0,
        interrupted: 0,
        unfinished: 0,
        attempts: 0,
        attempts_failed: 0,
        attempts_interrupted: 0,
        reach_rate: 0.0,
        confirmation_rate: 0.0,
        saved_trips: 0,
        channels: Vec::new(),
        messages_undelivered: 0,
        messages_refused: 0,
        cost_total: Money { minor: 0, currency: currency.to_owned() },
    };
    let outcomes: Vec<(Option<String>, u32)> = tx
        .prepare_cached(
            "SELECT outcome, COUNT(*) FROM calls WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3
             GROUP BY outcome",
        )?
        .query_map(params![depot.0, from, to], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (outcome, n) in outcomes {
        r.calls_requested += n;
        let outcome = outcome.and_then(|o| Outcome::ALL.into_iter().find(|x| x.as_str() == o));
        let Some(outcome) = outcome else {
            r.unfinished += n;
            continue;
        };
        if outcome.is_reached() {
            r.reached += n;
        }
        let slot = match outcome {
            Outcome::Confirmed => &mut r.confirmed,
            Outcome::RescheduleRequested => &mut r.rescheduled,
            Outcome::Declined => &mut r.declined,
            Outcome::WantsCourier => &mut r.talk_to_courier,
            Outcome::NoAnswer => &mut r.no_answer,
            Outcome::Failed => &mut r.failed,
            Outcome::OutsideCallingHours => &mut r.outside_calling_hours,
            Outcome::Interrupted => &mut r.interrupted,
        };
        *slot += n;
    }
    (r.attempts, r.attempts_failed, r.attempts_interrupted) = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(a.result = 'failed'), 0), COALESCE(SUM(a.result = 'interrupted'), 0)
             FROM attempts a JOIN calls c ON c.id = a.call_id
             WHERE c.depot_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3",
        )?
        .query_row(params![depot.0, from, to], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    r.reach_rate = rate(r.reached, r.calls_requested);
    r.confirmation_rate = rate(r.confirmed, r.reached);
    r.saved_trips = r.declined + r.rescheduled;

    r.channels = Channel::ALL
        .into_iter()
        .map(|channel| ChannelReport { channel, delivered: 0, billed: 0, segments: 0, cost_minor: 0 })
        .collect();
    let delivered: Vec<(String, u32)> = tx
        .prepare_cached(
            "SELECT channel, COUNT(*) FROM messages
             WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state = 'delivered'
             GROUP BY channel",
        )?
        .query_map(params![depot.0, from, to], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (channel, n) in delivered {
        if let Some(c) = r.channels.iter_mut().find(|c| c.channel.as_str() == channel) {
            c.delivered = n;
        }
    }
    let billed: Vec<(String, u32, u32, i64)> = tx
        .prepare_cached(
            "SELECT s.channel, COUNT(*), SUM(s.segments), SUM(s.cost_minor)
             FROM message_sends s JOIN messages m ON m.id = s.message_id
             WHERE m.depot_id = ?1 AND m.created_at >= ?2 AND m.created_at < ?3 AND m.currency = ?4
               AND s.result IN ('delivered', 'accepted', 'timeout')
             GROUP BY s.channel",
        )?
        .query_map(params![depot.0, from, to, currency], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (channel, n, segments, cost) in billed {
        if let Some(c) = r.channels.iter_mut().find(|c| c.channel.as_str() == channel) {
            (c.billed, c.segments, c.cost_minor) = (n, segments, cost);
        }
    }
    r.cost_total.minor = r.channels.iter().map(|c| c.cost_minor).sum();
    r.messages_undelivered = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM messages
             WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state = 'undelivered'",
        )?
        .query_row(params![depot.0, from, to], |row| row.get(0))?;
    r.messages_refused = crate::store::limits::refused_messages(&tx, depot, from, to)?;
    Ok(Some(r))
}

/// `part / whole` to 4 decimals (so JSON and CSV print the same number).
fn rate(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (f64::from(part) / f64::from(whole) * 10_000.0).round() / 10_000.0
}

/// The report as CSV: a header line and one data line. Per channel the
/// columns are `{channel}_delivered`, `_billed`, `_segments`, `_cost_minor`.
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
