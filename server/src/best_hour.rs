//! Retries at the best hour (docs/calling-policy.md): the server's half of
//! `callahead_core::best_hour`. The history comes from the counters the
//! store keeps as attempts end (`store::answers`), the bounds from the call's
//! policy and its stop.

use crate::store::queries::CallRow;
use crate::store::{answers, StoreError, WriteTx};
use callahead_core::best_hour::{self, RetryAt, RetryBounds};
use callahead_core::wire::Stop;
use chrono::{DateTime, Utc};

/// The moment for a retry the spacing makes due at `due`: the start of the
/// hour this customer is likeliest to answer in, when the history says so
/// clearly enough, else `due` itself.
pub(crate) fn retry_at(
    tx: &WriteTx<'_>,
    call: &CallRow,
    stop: &Stop,
    due: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let history = answers::history(tx.db(), call.view.depot_id, &stop.phone)?;
    let bounds = RetryBounds {
        earliest: due,
        // The policy's deadline: no retry once the window starts, or at
        // least none after it ends (then the calling-hours deferral applies).
        deadline: if call.stop_at_window_start { stop.window_start } else { stop.window_end },
        hours: &call.calling_hours,
        tz: stop.time_zone.parse().unwrap_or(chrono_tz::UTC),
    };
    Ok(match best_hour::choose(&history, &bounds) {
        RetryAt::Spacing => due,
        RetryAt::BestHour { at, expected, at_spacing } => {
            tracing::debug!(call_id = %call.view.id, %due, %at, expected, at_spacing, "retry moved to the best hour");
            at
        }
    })
}

#[cfg(test)]
mod tests {
    //! A depot with a week of history, told through the real orchestrator:
    //! every seeded attempt is placed and ended as a provider would end it.

    use crate::hub::Hub;
    use crate::orchestrator::{apply, start_attempt};
    use crate::store::{fixtures, queries, Store, StoreError, WriteTx};
    use callahead_core::call::{EndReason, Key, ProviderEvent};
    use callahead_core::CallId;
    use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
    use std::collections::BTreeMap;

    const ANNA: &str = "+79160000001";
    const BORIS: &str = "+79160000002";
    const CLARA: &str = "+79160000003";

    /// `h:m` in Moscow (UTC+3) on 2026-11-`day` (the 16th and 23rd are Mondays).
    fn moscow(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, h - 3, m, 0).single().expect("valid")
    }

    fn ended(answered: bool) -> ProviderEvent {
        if answered {
            ProviderEvent::Ended {
                result: EndReason::HungUp,
                answered: true,
                key: Key::new('1'),
                talk_secs: Some(20),
            }
        } else {
            ProviderEvent::Ended { result: EndReason::NoAnswer, answered: false, key: None, talk_secs: None }
        }
    }

    /// A seeded attempt that tells something: its local hour, answered?
    type Counted = (u8, bool);

    /// Places attempt 1 of call `n` at `at` and ends it a minute later.
    fn one_attempt(
        tx: &mut WriteTx<'_>,
        n: i64,
        at: DateTime<Utc>,
        end: &ProviderEvent,
    ) -> Result<(), StoreError> {
        let placed = start_attempt(tx, CallId(n), at)?;
        assert!(placed.is_some(), "call {n} was due at {at}");
        apply(tx, CallId(n), 1, None, end, at + Duration::minutes(1), 0)?;
        Ok(())
    }

    /// Last Monday, 10:00–17:59: 15 one-attempt calls an hour to other
    /// customers, answered 3 of 15 at 10:00, 13 of 15 at 16:00 and 5 of 15
    /// at the other hours; Boris answered four times at 12:00 and missed
    /// three calls at 16:00; one attempt the provider failed. Returns the
    /// counted attempts as (local hour, answered) and Boris's stops.
    fn seed_history(tx: &mut WriteTx<'_>) -> Result<(Vec<Counted>, Vec<i64>), StoreError> {
        fixtures::depot(tx)?;
        let window = (moscow(16, 20, 0), moscow(16, 21, 0));
        let mut counted = Vec::new();
        let mut n = 0;
        for hour in 10..18u32 {
            let answered = match hour {
                10 => 3,
                16 => 13,
                _ => 5,
            };
            for i in 0..15 {
                n += 1;
                let at = moscow(16, hour, 2 * i);
                fixtures::stop_and_call(tx, n, &format!("+7926{n:07}"), window, at, 1, true)?;
                one_attempt(tx, n, at, &ended(i < answered))?;
                counted.push((hour as u8, i < answered));
            }
        }
        let mut boris = Vec::new();
        for (hour, answered, times) in [(12, true, 4), (16, false, 3)] {
            for i in 0..times {
                n += 1;
                let at = moscow(16, hour, 40 + i);
                fixtures::stop_and_call(tx, n, BORIS, window, at, 1, true)?;
                one_attempt(tx, n, at, &ended(answered))?;
                counted.push((hour as u8, answered));
                boris.push(n);
            }
        }
        n += 1;
        let failed =
            ProviderEvent::Ended { result: EndReason::Failed, answered: false, key: None, talk_secs: None };
        fixtures::stop_and_call(tx, n, "+79269999999", window, moscow(16, 11, 59), 1, true)?;
        one_attempt(tx, n, moscow(16, 11, 59), &failed)?;
        Ok((counted, boris))
    }

    /// Today (Monday) at 10:05 the first attempt to the customer of call `n`
    /// goes unanswered; when is the second one due?
    fn first_attempt_missed(
        tx: &mut WriteTx<'_>,
        n: i64,
        phone: &str,
        best_hour: bool,
    ) -> Result<(), StoreError> {
        fixtures::stop_and_call(
            tx,
            n,
            phone,
            (moscow(23, 19, 0), moscow(23, 20, 0)),
            moscow(23, 10, 5),
            3,
            best_hour,
        )?;
        one_attempt(tx, n, moscow(23, 10, 5), &ended(false))
    }

    async fn next_attempt_at(store: &Store, n: i64) -> Option<DateTime<Utc>> {
        let call = store.readers.read(move |c| queries::call(c, CallId(n))).await.expect("read");
        call.and_then(|c| c.view.next_attempt_at)
    }

    #[tokio::test]
    async fn retries_move_to_the_hour_customers_answer_in_and_the_report_shows_the_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db"), Hub::new()).expect("open");
        let (counted, boris_stops) = store.writer.write(seed_history).await.expect("history");

        // Anna, new to the depot: 16:00 is when its customers answer, not
        // 10:21 (the end of the attempt plus 15 minutes).
        store.writer.write(|tx| first_attempt_missed(tx, 1001, ANNA, true)).await.expect("anna");
        assert_eq!(next_attempt_at(&store, 1001).await, Some(moscow(23, 16, 0)));
        // Boris's own history outweighs the depot's: he answers at noon.
        store.writer.write(|tx| first_attempt_missed(tx, 1002, BORIS, true)).await.expect("boris");
        assert_eq!(next_attempt_at(&store, 1002).await, Some(moscow(23, 12, 0)));
        // With the switch off, the fixed spacing.
        store.writer.write(|tx| first_attempt_missed(tx, 1003, CLARA, false)).await.expect("clara");
        assert_eq!(next_attempt_at(&store, 1003).await, Some(moscow(23, 10, 21)));
        // At 16:00 the scheduler places Anna's second attempt.
        let placed =
            store.writer.write(|tx| start_attempt(tx, CallId(1001), moscow(23, 16, 0))).await.expect("due");
        assert_eq!(placed.map(|p| p.attempt), Some(2));

        // The report for last Monday: attempts and answers per local hour,
        // exactly the seeded history (the failed attempt counts as an
        // attempt but tells nothing about answering).
        let date = NaiveDate::from_ymd_opt(2026, 11, 16).expect("date");
        let report = store
            .readers
            .read(move |c| crate::report::daily(c, callahead_core::DepotId(1), date, "RUB"))
            .await
            .expect("report")
            .expect("depot");
        let mut expected: BTreeMap<u8, (u32, u32)> = BTreeMap::new();
        for (hour, answered) in &counted {
            let e = expected.entry(*hour).or_default();
            e.0 += 1;
            e.1 += u32::from(*answered);
        }
        let shown: BTreeMap<u8, (u32, u32)> =
            report.answers_by_hour.iter().map(|h| (h.hour, (h.attempts, h.answered))).collect();
        assert_eq!(shown, expected);
        assert_eq!(shown.get(&16), Some(&(18, 13)));
        let sixteen = report.answers_by_hour.iter().find(|h| h.hour == 16).expect("16:00");
        assert_eq!(sixteen.answer_rate, 0.7222);
        assert_eq!(report.attempts as usize, counted.len() + 1, "the failed attempt is an attempt");
        let csv = crate::report::csv(&report);
        let (header, values) = csv.split_once("\r\n").expect("two lines");
        let col = |name: &str| {
            let i = header.split(',').position(|h| h == name).expect(name);
            values.trim_end().split(',').nth(i).expect("value").to_owned()
        };
        assert_eq!((col("attempts_h16"), col("answered_h16")), ("18".into(), "13".into()));
        assert_eq!((col("attempts_h09"), col("answered_h09")), ("0".into(), "0".into()));

        // Erasing Boris's old stops forgets what was learned of him (not
        // the depot's hours): his next retry goes where anyone's would.
        let rows = store.readers.read(|c| fixtures::number_stats_rows(c)).await.expect("rows");
        assert!(!rows.is_empty() && rows.iter().all(|r| !r.contains(&BORIS[1..])), "{rows:?}");
        let erase = boris_stops.clone();
        store
            .writer
            .write(move |tx| crate::store::erasure::erase(tx, &erase, moscow(23, 11, 0)))
            .await
            .expect("erase");
        let rows = store.readers.read(|c| fixtures::number_stats_rows(c)).await.expect("rows");
        for stop in &boris_stops {
            assert!(rows.iter().all(|r| !r.starts_with(&format!("{stop} "))), "stop {stop} left {rows:?}");
        }
        store.writer.write(|tx| first_attempt_missed(tx, 1004, BORIS, true)).await.expect("boris again");
        assert_eq!(next_attempt_at(&store, 1004).await, Some(moscow(23, 16, 0)));
    }
}
