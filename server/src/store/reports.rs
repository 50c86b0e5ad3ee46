//! The daily report's numbers (issue #5, `crate::report`): one depot's
//! local day, from the durable tables (calls, attempts, messages).

use super::{ms, queries, Db, Row, StoreError};
use crate::report::{day_start, rate};
use callahead_core::channel::Channel;
use callahead_core::savings::{self, CallFacts};
use callahead_core::wire::{ChannelReport, DailyReport, Money};
use callahead_core::{CourierId, DepotId, Outcome};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rusqlite::params;
use rusqlite::types::FromSql;

/// `None` when the depot does not exist. Costs count messages priced in
/// `currency` (the server's; messages priced before a currency change are
/// left out of the sums).
pub fn daily(
    db: &mut Db,
    depot: DepotId,
    date: NaiveDate,
    currency: &str,
) -> Result<Option<DailyReport>, StoreError> {
    // One read transaction: every number is of the same moment.
    db.snapshot(|db| day(db, depot, date, currency))
}

fn day(db: &Db, depot: DepotId, date: NaiveDate, currency: &str) -> Result<Option<DailyReport>, StoreError> {
    let Some(d) = queries::depot(db, depot)? else { return Ok(None) };
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
        savings: Default::default(),
        savings_by_courier: Vec::new(),
        minutes_per_manual_call: 0,
        channels: Vec::new(),
        messages_undelivered: 0,
        messages_refused: 0,
        cost_total: Money { minor: 0, currency: currency.to_owned() },
        answers_by_hour: Vec::new(),
    };
    let outcomes: Vec<(Option<String>, u32)> = db.all(
        "SELECT outcome, COUNT(*) FROM calls WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3
         GROUP BY outcome",
        params![depot.0, from, to],
        pair,
    )?;
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
    // PostgreSQL sums no booleans: a CASE counts on both engines.
    (r.attempts, r.attempts_failed, r.attempts_interrupted) = db.one(
        "SELECT COUNT(*),
           CAST(COALESCE(SUM(CASE WHEN a.result = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT),
           CAST(COALESCE(SUM(CASE WHEN a.result = 'interrupted' THEN 1 ELSE 0 END), 0) AS BIGINT)
         FROM attempts a JOIN calls c ON c.id = a.call_id
         WHERE c.depot_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3",
        params![depot.0, from, to],
        |row| Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    r.reach_rate = rate(r.reached, r.calls_requested);
    r.confirmation_rate = rate(r.confirmed, r.reached);
    r.saved_trips = r.declined + r.rescheduled;

    r.channels = Channel::ALL
        .into_iter()
        .map(|channel| ChannelReport { channel, delivered: 0, billed: 0, segments: 0, cost_minor: 0 })
        .collect();
    let delivered: Vec<(String, u32)> = db.all(
        "SELECT channel, COUNT(*) FROM messages
         WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state = 'delivered'
         GROUP BY channel",
        params![depot.0, from, to],
        pair,
    )?;
    for (channel, n) in delivered {
        if let Some(c) = r.channels.iter_mut().find(|c| c.channel.as_str() == channel) {
            c.delivered = n;
        }
    }
    let billed: Vec<(String, u32, u32, i64)> = db.all(
        "SELECT s.channel, COUNT(*), CAST(SUM(s.segments) AS BIGINT), CAST(SUM(s.cost_minor) AS BIGINT)
         FROM message_sends s JOIN messages m ON m.id = s.message_id
         WHERE m.depot_id = ?1 AND m.created_at >= ?2 AND m.created_at < ?3 AND m.currency = ?4
           AND s.result IN ('delivered', 'accepted', 'timeout')
         GROUP BY s.channel",
        params![depot.0, from, to, currency],
        |row| Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )?;
    for (channel, n, segments, cost) in billed {
        if let Some(c) = r.channels.iter_mut().find(|c| c.channel.as_str() == channel) {
            (c.billed, c.segments, c.cost_minor) = (n, segments, cost);
        }
    }
    r.cost_total.minor = r.channels.iter().map(|c| c.cost_minor).sum();
    r.messages_undelivered = db.one(
        "SELECT COUNT(*) FROM messages
         WHERE depot_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND state = 'undelivered'",
        params![depot.0, from, to],
        |row| row.get(0),
    )?;
    r.messages_refused = crate::store::limits::refused_messages(db, depot, from, to)?;
    let settings = super::call_ahead::of_depot(db, depot)?.unwrap_or_default();
    r.minutes_per_manual_call = settings.minutes_per_manual_call;
    let calls = call_facts(db, depot, from, to)?;
    let spent = spent_by_courier(db, depot, from, to, currency, settings.call_minute_price_minor)?;
    (r.savings, r.savings_by_courier) = savings::tally(&calls, &spent, settings.minutes_per_manual_call);
    r.answers_by_hour = crate::report::answers_by_hour(&super::answers::by_hour(db, depot, from, to)?);
    Ok(Some(r))
}

/// A two-column row.
fn pair<A: FromSql, B: FromSql>(row: &Row<'_>) -> rusqlite::Result<(A, B)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// The day's calls as the savings figures see them.
pub(super) fn call_facts(db: &Db, depot: DepotId, from: i64, to: i64) -> Result<Vec<CallFacts>, StoreError> {
    db.all(
        "SELECT c.courier_id, c.outcome, c.updated_at, s.window_start,
                (SELECT COUNT(*) FROM attempts a WHERE a.call_id = c.id)
         FROM calls c JOIN stops s ON s.id = c.stop_id
         WHERE c.depot_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3",
        params![depot.0, from, to],
        |row| {
            let outcome: Option<String> = row.get(1)?;
            Ok::<_, rusqlite::Error>(CallFacts {
                courier_id: CourierId(row.get(0)?),
                outcome: outcome.and_then(|o| Outcome::ALL.into_iter().find(|x| x.as_str() == o)),
                learned_at: super::from_ms(row.get(2)?)?,
                window_start: super::from_ms(row.get(3)?)?,
                attempts: row.get(4)?,
            })
        },
    )
}

/// What each courier's day cost in `currency`: billed message sends, and
/// every started minute of their answered robot calls at `minute_price`.
pub(super) fn spent_by_courier(
    db: &Db,
    depot: DepotId,
    from: i64,
    to: i64,
    currency: &str,
    minute_price: i64,
) -> Result<Vec<(CourierId, i64)>, StoreError> {
    let mut out: Vec<(CourierId, i64)> = db.all(
        "SELECT m.courier_id, CAST(SUM(s.cost_minor) AS BIGINT)
         FROM message_sends s JOIN messages m ON m.id = s.message_id
         WHERE m.depot_id = ?1 AND m.created_at >= ?2 AND m.created_at < ?3 AND m.currency = ?4
           AND s.result IN ('delivered', 'accepted', 'timeout')
         GROUP BY m.courier_id",
        params![depot.0, from, to, currency],
        |row| Ok::<_, rusqlite::Error>((CourierId(row.get(0)?), row.get(1)?)),
    )?;
    if minute_price > 0 {
        let talks: Vec<(i64, u32)> = db.all(
            "SELECT c.courier_id, a.talk_secs FROM attempts a JOIN calls c ON c.id = a.call_id
             WHERE c.depot_id = ?1 AND c.created_at >= ?2 AND c.created_at < ?3 AND a.talk_secs > 0",
            params![depot.0, from, to],
            pair,
        )?;
        for (courier, secs) in talks {
            out.push((CourierId(courier), i64::from(savings::billed_minutes(secs)) * minute_price));
        }
    }
    Ok(out)
}
