//! Stops and routes, calls and attempts, offers, the best-hour counters,
//! the daily report's reads and the test fixtures on every backend
//! (docs/adr/0009): each test runs on SQLite and, when `CALLAHEAD_TEST_PG`
//! is set, on PostgreSQL, through the real writer and read pool.

use super::calls::{self, NewCall};
use super::testing::{at, stores, write, TestStore};
use super::{
    accounts, answers, fixtures, offers, queries, reports, routes, Db, NewEvent, StoreError, WriteTx,
};
use crate::reschedule::Slot;
use callahead_core::call::{AttemptResult, CallStatus, Key, Outcome};
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::Language;
use callahead_core::wire::{EventKind, GeoPoint, Money, OutOfChain, PickupPoint, StopInput};
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::NaiveDate;
use rusqlite::params;

fn day() -> NaiveDate {
    at(0).date_naive()
}

async fn read<T: Send + 'static>(
    t: &TestStore,
    f: impl FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
) -> T {
    let backend = t.backend;
    t.store.readers.read(f).await.unwrap_or_else(|e| panic!("{backend}: {e}"))
}

fn input(external: &str, phone: &str, window_secs: (i64, i64)) -> StopInput {
    StopInput {
        external_id: external.to_owned(),
        customer_name: format!("Customer {external}"),
        phone: phone.to_owned(),
        time_zone: "Europe/Moscow".to_owned(),
        address: "Lenina 1".to_owned(),
        window_start: at(window_secs.0),
        window_end: at(window_secs.1),
        order_numbers: vec![format!("{external}-1")],
        amount: None,
        location: None,
        language: None,
    }
}

/// A depot, its courier and `n` stops on `day()` (positions and sequences
/// 0..n, phones +7916000000i).
async fn route_of(t: &TestStore, n: usize) -> (DepotId, CourierId, Vec<StopId>) {
    write(t, move |tx| {
        let d = accounts::insert_depot(tx, "North", "Europe/Moscow", &AttemptPolicy::default(), at(0))?;
        let c = accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(0))?;
        for i in 0..n {
            let s = input(&format!("o{i}"), &format!("+7916000000{i}"), (3600, 7200));
            routes::insert_stop(tx, c, d, day(), i, i as u32, &s)?;
        }
        let ids = queries::route_stops(tx.db(), c, day())?.into_iter().map(|r| r.stop.id).collect();
        Ok((d, c, ids))
    })
    .await
}

fn new_call(
    tx: &WriteTx<'_>,
    d: DepotId,
    c: CourierId,
    s: StopId,
    key: &str,
    secs: i64,
) -> Result<CallId, StoreError> {
    let policy = AttemptPolicy { max_attempts: 4, retry_at_best_hour: true, ..Default::default() };
    calls::insert(
        tx,
        &NewCall { courier: c, depot: d, stop: s, idempotency_key: key, policy: &policy, at: at(secs) },
    )
}

#[tokio::test]
async fn stops_and_routes_round_trip() {
    for t in stores("stops_and_routes_round_trip") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 3).await;
        assert_eq!(ids.len(), 3, "{b}");
        let full = StopInput {
            amount: Some(Money { minor: 150_000, currency: "RUB".into() }),
            location: Some(GeoPoint { lat: 55.75, lon: 37.61 }),
            language: Some(Language::En),
            ..input("o1", "+79161111111", (10, 20))
        };
        let point = PickupPoint {
            id: "p1".into(),
            name: "Locker".into(),
            address: "Tverskaya 1".into(),
            hours: None,
        };
        let (s0, s1, s2) = (ids[0], ids[1], ids[2]);
        let (f, p) = (full.clone(), point.clone());
        let planned_before = write(&t, move |tx| {
            let before = queries::route_planned(tx.db(), c, day())?;
            routes::update_stop(tx, s1, 7, 9, &f)?;
            routes::remove_stop(tx, s0)?;
            routes::set_sequence(tx, s2, 1)?;
            routes::set_out_of_chain(tx, s2, Some(OutOfChain::AnotherDay))?;
            routes::set_window(tx, s2, at(100), at(200))?;
            routes::set_pickup_point(tx, s2, &p)?;
            routes::mark_planned(tx, c, day(), at(5))?;
            // Planned again: the conflict updates, it does not fail.
            routes::mark_planned(tx, c, day(), at(6))?;
            Ok(before)
        })
        .await;
        assert!(!planned_before, "{b}: not planned until marked");
        let (one, route_rows, live, planned, other_day, route) = read(&t, move |db| {
            Ok((
                queries::stop(db, s1)?,
                queries::route_stops(db, c, day())?,
                queries::depot_stops(db, d, day())?,
                queries::route_planned(db, c, day())?,
                queries::route_planned(db, c, day().succ_opt().expect("date"))?,
                queries::route(db, c, day())?,
            ))
        })
        .await;
        let one = one.unwrap_or_else(|| panic!("{b}: the stop"));
        assert!(!one.removed, "{b}");
        let s = &one.stop;
        assert_eq!(
            (s.courier_id, s.depot_id, s.route_date, s.position, s.sequence),
            (c, d, day(), 7, 9),
            "{b}"
        );
        assert_eq!(
            (s.external_id.as_str(), s.phone.as_str()),
            ("o1", "+79161111111"),
            "{b}: external id kept, fields new"
        );
        assert_eq!((s.window_start, s.window_end), (at(10), at(20)), "{b}");
        assert_eq!(s.order_numbers, vec!["o1-1".to_owned()], "{b}");
        assert_eq!(s.amount, full.amount, "{b}");
        assert_eq!(s.location, full.location, "{b}: REAL / DOUBLE PRECISION round-trips");
        assert_eq!(s.language, Some(Language::En), "{b}");
        assert_eq!((s.pickup_point.clone(), s.out_of_chain), (None, None), "{b}");
        // Live stops first (removed sorts last), then by sequence.
        let order: Vec<(StopId, bool)> = route_rows.iter().map(|r| (r.stop.id, r.removed)).collect();
        assert_eq!(order, vec![(s2, false), (s1, false), (s0, true)], "{b}");
        let moved = &route_rows[0].stop;
        assert_eq!((moved.window_start, moved.window_end), (at(100), at(200)), "{b}");
        assert_eq!(moved.pickup_point, Some(point), "{b}");
        assert_eq!(moved.out_of_chain, Some(OutOfChain::AnotherDay), "{b}");
        assert_eq!(live.iter().map(|s| s.id).collect::<Vec<_>>(), vec![s2, s1], "{b}: removed left out");
        assert!(planned && !other_day, "{b}");
        assert_eq!(
            route.iter().map(|r| (r.stop.id, r.call.is_some())).collect::<Vec<_>>(),
            vec![(s2, false), (s1, false)],
            "{b}"
        );
        // A removed stop re-imported is live again; back in the chain.
        write(&t, move |tx| {
            routes::update_stop(tx, s0, 0, 0, &input("o0", "+79160000000", (3600, 7200)))?;
            routes::set_out_of_chain(tx, s2, None)
        })
        .await;
        let (again, s2_row, none) = read(&t, move |db| {
            Ok((queries::stop(db, s0)?, queries::stop(db, s2)?, queries::stop(db, StopId(s2.0 + 100))?))
        })
        .await;
        assert_eq!(again.map(|r| r.removed), Some(false), "{b}");
        assert_eq!(s2_row.and_then(|r| r.stop.out_of_chain), None, "{b}");
        assert!(none.is_none(), "{b}: no such stop");
    }
}

#[tokio::test]
async fn calls_and_attempts_round_trip() {
    for t in stores("calls_and_attempts_round_trip") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 2).await;
        let (s0, s1) = (ids[0], ids[1]);
        let (first, second, third) = write(&t, move |tx| {
            Ok((
                new_call(tx, d, c, s0, "k1", 10)?,
                new_call(tx, d, c, s1, "k2", 5)?,
                new_call(tx, d, c, s0, "k3", 20)?,
            ))
        })
        .await;
        assert!(first.0 < second.0 && second.0 < third.0, "{b}: the database's ids grow");
        let (row, by_key, missing_key, latest, active, count, next, due, due1) = read(&t, move |db| {
            Ok((
                queries::call(db, first)?,
                queries::call_by_key(db, c, "k2")?,
                queries::call_by_key(db, c, "nope")?,
                queries::latest_call_for_stop(db, s0)?,
                queries::active_calls_for_stop(db, s0)?,
                queries::active_call_count(db, c)?,
                queries::next_due(db)?,
                queries::due_calls(db, at(15), 10)?,
                queries::due_calls(db, at(100), 1)?,
            ))
        })
        .await;
        let row = row.unwrap_or_else(|| panic!("{b}: the call"));
        let v = &row.view;
        assert_eq!(
            (v.stop_id, v.courier_id, v.depot_id, v.idempotency_key.as_str()),
            (s0, c, d, "k1"),
            "{b}"
        );
        assert_eq!(
            (v.status, v.outcome, v.attempts_made, v.max_attempts),
            (CallStatus::Scheduled, None, 0, 4),
            "{b}"
        );
        assert_eq!((v.next_attempt_at, v.created_at, v.updated_at), (Some(at(10)), at(10), at(10)), "{b}");
        let p = AttemptPolicy::default();
        assert_eq!(
            (row.retry_spacing_secs, row.ring_timeout_secs, row.stop_at_window_start, row.min_heard_secs),
            (p.retry_spacing_secs, p.ring_timeout_secs, p.stop_at_window_start, p.min_heard_secs),
            "{b}"
        );
        assert_eq!(
            (row.calling_hours, row.machine_detection, row.retry_at_best_hour),
            (p.calling_hours, p.machine_detection, true),
            "{b}: flags"
        );
        assert_eq!(by_key.map(|r| r.view.id), Some(second), "{b}");
        assert!(missing_key.is_none(), "{b}");
        assert_eq!(latest.map(|r| r.view.id), Some(third), "{b}");
        assert_eq!(active.len(), 2, "{b}");
        assert_eq!(count, 3, "{b}");
        assert_eq!(next, Some(at(5)), "{b}");
        assert_eq!(due, vec![second, first], "{b}: by due time");
        assert_eq!(due1, vec![second], "{b}: LIMIT");

        let key = Key::new('2').expect("key");
        write(&t, move |tx| {
            calls::start_attempt(tx, first, 1, "Hello, Anna", at(30))?;
            calls::set_provider_seq(tx, first, 1, 3)?;
            calls::set_ringing(tx, first, 1, at(31))?;
            calls::set_answered(tx, first, 1, at(33))?;
            calls::set_key(tx, first, 1, key)?;
            // A key already recorded is kept over the end's.
            calls::end_attempt(tx, first, 1, AttemptResult::Completed, Key::new('9'), at(40))?;
            calls::set_talk_secs(tx, first, 1, 7)?;
            calls::start_attempt(tx, second, 1, "Hello, Boris", at(31))?;
            calls::set_status(tx, third, CallStatus::Ringing, at(32))?;
            Ok(())
        })
        .await;
        let (attempt, list, open, dialing, none) = read(&t, move |db| {
            Ok((
                queries::attempt(db, first, 1)?,
                queries::attempts(db, first)?,
                queries::unfinished_attempts(db)?,
                queries::call(db, second)?,
                queries::attempt(db, first, 2)?,
            ))
        })
        .await;
        let attempt = attempt.unwrap_or_else(|| panic!("{b}: attempt 1"));
        assert_eq!(attempt.provider_seq, 3, "{b}");
        let a = &attempt.view;
        assert_eq!(
            (a.number, a.placed_at, a.ringing_at, a.answered_at, a.ended_at),
            (1, at(30), Some(at(31)), Some(at(33)), Some(at(40))),
            "{b}"
        );
        assert_eq!(
            (a.key, a.result, a.script.as_deref(), a.talk_secs),
            (Some(key), Some(AttemptResult::Completed), Some("Hello, Anna"), Some(7)),
            "{b}"
        );
        assert_eq!(list.len(), 1, "{b}");
        assert!(none.is_none(), "{b}");
        // The first call's attempt ended, but the call is still `dialing`.
        assert_eq!(
            open,
            vec![(first, 1), (second, 1), (third, 0)],
            "{b}: open attempts and calls in flight, in order"
        );
        let dialing = dialing.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (dialing.view.status, dialing.view.attempts_made, dialing.view.next_attempt_at),
            (CallStatus::Dialing, 1, None),
            "{b}"
        );

        write(&t, move |tx| {
            calls::schedule_retry(tx, first, at(500), at(41))?;
            calls::defer(tx, second, at(900), at(42))?;
            calls::finish(tx, third, Outcome::Confirmed, at(43))?;
            Ok(())
        })
        .await;
        let (r1, r2, r3) = read(&t, move |db| {
            Ok((queries::call(db, first)?, queries::call(db, second)?, queries::call(db, third)?))
        })
        .await;
        let (r1, r2, r3) = (r1.expect("1").view, r2.expect("2").view, r3.expect("3").view);
        assert_eq!(
            (r1.status, r1.next_attempt_at, r1.updated_at),
            (CallStatus::Scheduled, Some(at(500)), at(41)),
            "{b}"
        );
        assert_eq!(
            (r2.status, r2.next_attempt_at),
            (CallStatus::Dialing, Some(at(900))),
            "{b}: defer keeps the status"
        );
        assert_eq!(
            (r3.status, r3.outcome, r3.next_attempt_at),
            (CallStatus::Finished, Some(Outcome::Confirmed), None),
            "{b}"
        );
        write(&t, move |tx| {
            calls::clear_due(tx, second)?;
            calls::cancel(tx, first, at(50))
        })
        .await;
        let (r1, r2, count, next) = read(&t, move |db| {
            Ok((
                queries::call(db, first)?,
                queries::call(db, second)?,
                queries::active_call_count(db, c)?,
                queries::next_due(db)?,
            ))
        })
        .await;
        assert_eq!(
            r1.map(|r| (r.view.status, r.view.next_attempt_at)),
            Some((CallStatus::Cancelled, None)),
            "{b}"
        );
        assert_eq!(r2.map(|r| r.view.next_attempt_at), Some(None), "{b}");
        assert_eq!((count, next), (1, None), "{b}: nothing due");
    }
}

#[tokio::test]
async fn call_lists_filters_and_gauges() {
    for t in stores("call_lists_filters_and_gauges") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 2).await;
        let (s0, s1) = (ids[0], ids[1]);
        let (other_d, other_c) = write(&t, |tx| {
            let d = accounts::insert_depot(tx, "South", "UTC", &AttemptPolicy::default(), at(0))?;
            Ok((d, accounts::insert_courier(tx, d, "Olga", "+79990000002", at(0))?))
        })
        .await;
        let (k1, k2, k3) = write(&t, move |tx| {
            let other = routes::insert_stop(
                tx,
                other_c,
                other_d,
                day().succ_opt().expect("date"),
                0,
                0,
                &input("x", "+79161234567", (0, 1)),
            )
            .and_then(|()| {
                Ok(queries::route_stops(tx.db(), other_c, day().succ_opt().expect("date"))?[0].stop.id)
            })?;
            let k1 = new_call(tx, d, c, s0, "a", 10)?;
            let k2 = new_call(tx, d, c, s1, "b", 11)?;
            let k3 = new_call(tx, other_d, other_c, other, "c", 12)?;
            calls::start_attempt(tx, k1, 1, "hi", at(20))?;
            calls::end_attempt(tx, k1, 1, AttemptResult::NoAnswer, None, at(30))?;
            tx.append_event(NewEvent::route(at(40), 0, d, c, EventKind::AppConnection { connected: true }))?;
            Ok((k1, k2, k3))
        })
        .await;
        let ids_of = |v: Vec<queries::CallRow>| v.into_iter().map(|r| r.view.id).collect::<Vec<_>>();
        let f = |depot: Option<DepotId>, courier: Option<CourierId>, date: Option<NaiveDate>| {
            queries::CallFilter { depot, courier, date }
        };
        let (all, by_depot, by_courier, by_date, limited, listed, stop_calls, detail, activity, gauges) =
            read(&t, move |db| {
                Ok((
                    queries::filtered_calls(db, &f(None, None, None), 10)?,
                    queries::filtered_calls(db, &f(Some(other_d), None, None), 10)?,
                    queries::filtered_calls(db, &f(None, Some(c), None), 10)?,
                    queries::filtered_calls(db, &f(None, None, Some(day())), 10)?,
                    queries::filtered_calls(db, &f(None, None, None), 2)?,
                    queries::list_calls(db, &f(Some(d), Some(c), Some(day())), 10)?,
                    queries::stop_calls(db, s0)?,
                    queries::call_detail(db, CallId(k3.0 + 100))?,
                    queries::last_activity(db, d)?,
                    queries::metric_gauges(db)?,
                ))
            })
            .await;
        assert_eq!(ids_of(all), vec![k1, k2, k3], "{b}");
        assert_eq!(ids_of(by_depot), vec![k3], "{b}");
        assert_eq!(ids_of(by_courier), vec![k1, k2], "{b}");
        assert_eq!(ids_of(by_date), vec![k1, k2], "{b}");
        assert_eq!(ids_of(limited), vec![k1, k2], "{b}");
        assert_eq!(
            listed.iter().map(|c| (c.call.id, c.attempts.len())).collect::<Vec<_>>(),
            vec![(k1, 1), (k2, 0)],
            "{b}"
        );
        assert_eq!(stop_calls.len(), 1, "{b}");
        assert_eq!(stop_calls[0].attempts[0].result, Some(AttemptResult::NoAnswer), "{b}");
        assert!(detail.is_none(), "{b}");
        assert_eq!(activity.get(&c), Some(&at(40)), "{b}");
        assert_eq!(activity.len(), 1, "{b}: a courier without events has no activity");
        let gauge = |name: &str, label: &str| {
            gauges
                .iter()
                .find(|(n, l, _)| *n == name && l.first().is_some_and(|(_, v)| v == label))
                .map(|g| g.2)
        };
        assert_eq!(gauge("callahead_calls_active", "scheduled"), Some(2.0), "{b}");
        assert_eq!(gauge("callahead_calls_active", "dialing"), Some(1.0), "{b}");
        assert_eq!(gauge("callahead_calls_active", "ringing"), Some(0.0), "{b}");
        assert_eq!(gauge("callahead_queue_depth", "calls"), Some(2.0), "{b}");
        assert_eq!(gauge("callahead_queue_depth", "messages"), Some(0.0), "{b}");
        let head = gauges.iter().find(|g| g.0 == "callahead_event_log_head").map(|g| g.2);
        assert_eq!(head, Some(1.0), "{b}");
    }
}

fn slots() -> Vec<Slot> {
    vec![Slot { start: at(3600), end: at(7200) }, Slot { start: at(7200), end: at(10800) }]
}

#[tokio::test]
async fn offers_one_per_call_or_run_and_what_was_chosen() {
    for t in stores("offers_one_per_call_or_run") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 2).await;
        let (s0, s1) = (ids[0], ids[1]);
        let (call, run) = write(&t, move |tx| {
            let call = new_call(tx, d, c, s0, "k", 0)?;
            let campaign: i64 = tx.db().one(
                "INSERT INTO campaigns (depot_id, name, steps, created_at) VALUES (?1, 'c', '[]', 0) RETURNING id",
                params![d.0],
                |r| r.get(0),
            )?;
            let run: i64 = tx.db().one(
                "INSERT INTO campaign_runs (campaign_id, stop_id, state, enrolled_at, updated_at)
                 VALUES (?1, ?2, 'running', 0, 0) RETURNING id",
                params![campaign, s1.0],
                |r| r.get(0),
            )?;
            Ok((call, run))
        })
        .await;
        let (a, again, same_token, r, r_again) = write(&t, move |tx| {
            use offers::OfferFor;
            Ok((
                offers::insert(tx, OfferFor::Call(call), s0, "h1", "t1", &slots(), at(1))?,
                offers::insert(tx, OfferFor::Call(call), s0, "h9", "t9", &slots(), at(2))?,
                offers::insert(tx, OfferFor::CampaignRun(run), s1, "h1", "t1", &slots(), at(2))?,
                offers::insert(tx, OfferFor::CampaignRun(run), s1, "h2", "t2", &slots(), at(3))?,
                offers::insert(tx, OfferFor::CampaignRun(run), s1, "h3", "t3", &slots(), at(4))?,
            ))
        })
        .await;
        let (a, r) = (
            a.unwrap_or_else(|| panic!("{b}: the call's offer")),
            r.unwrap_or_else(|| panic!("{b}: the run's")),
        );
        assert!(r > a, "{b}");
        assert_eq!(
            (again, same_token, r_again),
            (None, None, None),
            "{b}: one per call, run and token; no failure"
        );
        let (by_token, pending_a, pending_r, missing) = read(&t, move |db| {
            Ok((
                offers::by_token(db, "h1")?,
                offers::pending(db, a)?,
                offers::pending(db, r)?,
                offers::by_token(db, "nope")?,
            ))
        })
        .await;
        let o = by_token.unwrap_or_else(|| panic!("{b}: by token"));
        assert_eq!(
            (o.id, o.stop_id, o.slots.clone(), o.expires_at, o.used),
            (a, s0, slots(), None, false),
            "{b}"
        );
        assert_eq!(
            (o.chosen, o.chosen_pickup.clone(), o.confirmable, o.confirmed),
            (None, None, false, false),
            "{b}"
        );
        assert!(missing.is_none(), "{b}");
        let pending_a = pending_a.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (pending_a.stop_id, pending_a.token.as_deref(), pending_a.confirmable),
            (s0, Some("t1"), false),
            "{b}"
        );
        assert_eq!(pending_r.map(|p| p.confirmable), Some(true), "{b}: a run's offer may confirm");

        let point = PickupPoint { id: "p".into(), name: "Locker".into(), address: "A 1".into(), hours: None };
        let p = point.clone();
        let stop = write(&t, move |tx| {
            offers::sent(tx, a, at(10), at(1000))?;
            offers::choose_slot(tx, a, slots()[1], at(20))?;
            offers::confirm(tx, r, at(21))?;
            offers::choose_pickup(tx, r, &p, at(22))?;
            offers::undeliverable(tx, r, "no channel")
        })
        .await;
        assert_eq!(stop, s1, "{b}: the undeliverable offer's stop");
        let (oa, or, pa, pr) = read(&t, move |db| {
            Ok((
                offers::by_token(db, "h1")?,
                offers::by_token(db, "h2")?,
                offers::pending(db, a)?,
                offers::pending(db, r)?,
            ))
        })
        .await;
        let (oa, or) = (oa.expect("a"), or.expect("r"));
        assert_eq!(
            (oa.expires_at, oa.used, oa.chosen, oa.confirmed),
            (Some(at(1000)), true, Some(slots()[1]), false),
            "{b}"
        );
        assert_eq!((or.used, or.confirmed, or.chosen_pickup), (true, true, Some(point)), "{b}");
        assert_eq!(
            (pa.and_then(|p| p.token), pr.and_then(|p| p.token)),
            (None, None),
            "{b}: the plain tokens are dropped"
        );
        let err = t
            .store
            .writer
            .write(move |tx| offers::undeliverable(tx, r + 100, "x"))
            .await
            .expect_err("no such offer");
        assert!(matches!(err, StoreError::Backend(_)), "{b}: {err}");
    }
}

/// Attempt 1 of a new call to `phone` at `secs`, ended with `result`.
fn attempt_to(
    tx: &WriteTx<'_>,
    d: DepotId,
    c: CourierId,
    stop: StopId,
    key: &str,
    secs: i64,
    result: AttemptResult,
) -> Result<CallId, StoreError> {
    let call = new_call(tx, d, c, stop, key, secs)?;
    calls::start_attempt(tx, call, 1, "hi", at(secs))?;
    calls::end_attempt(tx, call, 1, result, None, at(secs + 30))?;
    answers::record(tx, call, 1, result)?;
    Ok(call)
}

#[tokio::test]
async fn answer_counters_learn_by_hour_and_forget_an_erased_stop() {
    for t in stores("answer_counters_learn_by_hour") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 2).await;
        let (s0, s1) = (ids[0], ids[1]);
        // at(0) is 2027-01-15 08:00 UTC, a Friday: 11:00 in Moscow.
        write(&t, move |tx| {
            attempt_to(tx, d, c, s0, "a", 0, AttemptResult::Completed)?;
            attempt_to(tx, d, c, s0, "b", 60, AttemptResult::NoAnswer)?;
            attempt_to(tx, d, c, s1, "c", 3600, AttemptResult::NoInput)?;
            // Says nothing of answering: not counted.
            attempt_to(tx, d, c, s1, "d", 3700, AttemptResult::Failed)?;
            Ok(())
        })
        .await;
        let (h, other, by_hour, rows) = read(&t, move |db| {
            Ok((
                answers::history(db, d, "+79160000000")?,
                answers::history(db, d, "")?,
                answers::by_hour(db, d, crate::store::ms(at(-1)), crate::store::ms(at(86_400)))?,
                fixtures::number_stats_rows(db)?,
            ))
        })
        .await;
        let friday = 4;
        assert_eq!((h.depot[friday][11].attempts, h.depot[friday][11].answered), (2, 1), "{b}");
        assert_eq!((h.depot[friday][12].attempts, h.depot[friday][12].answered), (1, 1), "{b}");
        assert_eq!(
            h.depot.iter().flatten().map(|t| t.attempts).sum::<u32>(),
            3,
            "{b}: the failed attempt is not counted"
        );
        assert_eq!(
            (h.customer[11].attempts, h.customer[11].answered),
            (2, 1),
            "{b}: the first customer's own hours"
        );
        assert_eq!(h.customer[12].attempts, 0, "{b}: another customer's attempt");
        assert_eq!(
            other.customer.iter().map(|t| t.attempts).sum::<u32>(),
            0,
            "{b}: an erased number learns nothing"
        );
        assert_eq!(other.depot, h.depot, "{b}");
        assert_eq!((by_hour[11].attempts, by_hour[11].answered, by_hour[12].attempts), (2, 1, 1), "{b}");
        assert_eq!(rows.len(), 2, "{b}: one row per stop and hour");
        assert!(
            rows[0].starts_with(&format!("{} 11 {} ", s0.0, d.0)) && rows[0].ends_with(" 2 1"),
            "{b}: {rows:?}"
        );
        assert!(rows.iter().all(|r| !r.contains("9160000000")), "{b}: no number in the clear: {rows:?}");
        write(&t, move |tx| answers::erase_stop(tx, s0.0)).await;
        let (h, rows) = read(&t, move |db| {
            Ok((answers::history(db, d, "+79160000000")?, fixtures::number_stats_rows(db)?))
        })
        .await;
        assert_eq!(h.customer[11].attempts, 0, "{b}: forgotten");
        assert_eq!(h.depot[friday][11].attempts, 2, "{b}: the depot keeps its counters");
        assert_eq!(rows.len(), 1, "{b}");
    }
}

/// A message of the depot's courier about `stop`, with one billed send.
fn message(
    tx: &WriteTx<'_>,
    d: DepotId,
    c: CourierId,
    stop: StopId,
    state: &str,
    ref_id: i64,
    cost: i64,
) -> Result<i64, StoreError> {
    let id: i64 = tx.db().one(
        "INSERT INTO messages (depot_id, courier_id, stop_id, purpose, ref_id, phone, currency, state, channel,
           segments, cost_minor, created_at)
         VALUES (?1, ?2, ?3, 'test', ?4, '+79160000000', 'RUB', ?5, 'sms', 2, ?6, ?7) RETURNING id",
        params![d.0, c.0, stop.0, ref_id, state, cost, crate::store::ms(at(ref_id))],
        |r| r.get(0),
    )?;
    tx.exec(
        "INSERT INTO message_sends (message_id, step, channel, started_at, result, segments, cost_minor)
         VALUES (?1, 0, 'sms', ?2, ?3, 2, ?4)",
        params![
            id,
            crate::store::ms(at(ref_id)),
            if state == "delivered" { "delivered" } else { "failed" },
            cost
        ],
    )?;
    Ok(id)
}

#[tokio::test]
async fn the_daily_reports_reads() {
    for t in stores("the_daily_reports_reads") {
        let b = t.backend;
        let (d, c, ids) = route_of(&t, 2).await;
        let (s0, s1) = (ids[0], ids[1]);
        write(&t, move |tx| {
            let done = attempt_to(tx, d, c, s0, "a", 0, AttemptResult::Completed)?;
            calls::set_talk_secs(tx, done, 1, 61)?;
            calls::finish(tx, done, Outcome::Declined, at(100))?;
            let failed = attempt_to(tx, d, c, s1, "b", 10, AttemptResult::Failed)?;
            calls::finish(tx, failed, Outcome::Failed, at(101))?;
            new_call(tx, d, c, s1, "c", 20)?;
            message(tx, d, c, s0, "delivered", 1, 30)?;
            message(tx, d, c, s1, "delivered", 2, 45)?;
            message(tx, d, c, s1, "undelivered", 3, 0)?;
            Ok(())
        })
        .await;
        let (from, to) = (crate::store::ms(at(-3600)), crate::store::ms(at(3600)));
        let (facts, spent) = read(&t, move |db| {
            Ok((
                reports::call_facts(db, d, from, to)?,
                reports::spent_by_courier(db, d, from, to, "RUB", 100)?,
            ))
        })
        .await;
        let mut outcomes: Vec<_> = facts.iter().map(|f| (f.outcome, f.attempts)).collect();
        outcomes.sort_by_key(|o| o.1);
        assert_eq!(facts.len(), 3, "{b}");
        assert!(facts.iter().all(|f| f.courier_id == c && f.window_start == at(3600)), "{b}");
        assert!(
            outcomes.contains(&(Some(Outcome::Declined), 1)) && outcomes.contains(&(None, 0)),
            "{b}: {outcomes:?}"
        );
        assert_eq!(
            spent.iter().map(|s| s.1).sum::<i64>(),
            75 + 2 * 100,
            "{b}: 75 in sends, two started minutes at 100"
        );
        let date = day();
        let report = t.store.readers.read(move |db| reports::daily(db, d, date, "RUB")).await;
        let report = match report {
            Ok(r) => r.unwrap_or_else(|| panic!("{b}: the depot")),
            // Until store/limits is on PostgreSQL (ported on another branch):
            // the report's own statements ran (they come before it).
            Err(StoreError::Unported) if b == "postgres" => {
                let limits =
                    read(&t, move |db| Ok(crate::store::limits::refused_messages(db, d, from, to).is_err()))
                        .await;
                assert!(limits, "{b}: only limits is unported");
                continue;
            }
            Err(e) => panic!("{b}: {e}"),
        };
        assert_eq!(
            (report.calls_requested, report.reached, report.declined, report.failed, report.unfinished),
            (3, 1, 1, 1, 1),
            "{b}"
        );
        assert_eq!((report.attempts, report.attempts_failed, report.attempts_interrupted), (2, 1, 0), "{b}");
        assert_eq!((report.messages_undelivered, report.messages_refused), (1, 0), "{b}");
        let sms = report.channels.iter().find(|c| c.channel.as_str() == "sms").expect("sms");
        assert_eq!((sms.delivered, sms.billed, sms.segments, sms.cost_minor), (2, 2, 4, 75), "{b}");
        assert_eq!(report.cost_total.minor, 75, "{b}");
        let hour11 = report.answers_by_hour.iter().find(|h| h.hour == 11).map(|h| (h.attempts, h.answered));
        assert_eq!(hour11, Some((1, 1)), "{b}");
    }
}

#[tokio::test]
async fn the_fixtures_let_the_database_choose_ids() {
    for t in stores("the_fixtures_let_the_database_choose_ids") {
        let b = t.backend;
        let call = write(&t, |tx| fixtures::one_due_call(tx, at(0))).await;
        assert_eq!(call, CallId(1), "{b}: a fresh database's first call");
        let (row, due) =
            read(&t, move |db| Ok((queries::call(db, call)?, queries::due_calls(db, at(0), 10)?))).await;
        assert_eq!(row.map(|r| r.view.idempotency_key), Some("key-12345".to_owned()), "{b}");
        assert_eq!(due, vec![call], "{b}");
        // An id the database chose after the fixture's rows does not collide.
        let (stop, next_call) =
            write(&t, |tx| fixtures::stop_and_call(tx, 7, "+79160000007", (at(0), at(60)), at(5), 2, true))
                .await;
        let (d2, c2) = write(&t, |tx| {
            Ok((accounts::insert_depot(tx, "Other", "UTC", &AttemptPolicy::default(), at(0))?, ()))
        })
        .await;
        assert!(d2.0 > 1, "{b}: {d2:?} {c2:?}");
        let row = read(&t, move |db| queries::call(db, next_call)).await.unwrap_or_else(|| panic!("{b}"));
        assert_eq!((row.view.stop_id, row.view.max_attempts, row.retry_at_best_hour), (stop, 2, true), "{b}");
        assert_eq!(row.view.idempotency_key, "key-7", "{b}");
        if b == "sqlite" {
            assert_eq!((stop, next_call), (StopId(7), CallId(7)), "{b}: ids as the callers name them");
        }
        let kinds = read(&t, |db| fixtures::event_kinds(db)).await;
        assert!(kinds.is_empty(), "{b}");
    }
    for t in stores("the_fixtures_reschedule_requested") {
        let b = t.backend;
        let call = write(&t, |tx| {
            let call = fixtures::reschedule_requested(tx, at(0), at(3600))?;
            let stop = queries::call(tx.db(), call)?.expect("call").view.stop_id;
            message(tx, DepotId(1), CourierId(1), stop, "delivered", 1, 30)?;
            tx.append_event(NewEvent::route(at(1), 0, DepotId(1), CourierId(1), EventKind::CallRequested))?;
            Ok(call)
        })
        .await;
        let (row, msg, kinds) = read(&t, move |db| {
            Ok((queries::call(db, call)?, fixtures::the_message(db)?, fixtures::event_kinds(db)?))
        })
        .await;
        let row = row.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (row.view.status, row.view.outcome),
            (CallStatus::Finished, Some(Outcome::RescheduleRequested)),
            "{b}"
        );
        let stop = read(&t, move |db| queries::stop(db, row.view.stop_id)).await.expect("stop").stop;
        assert_eq!(
            (stop.language, stop.order_numbers, stop.window_end),
            (Some(Language::En), vec!["1001".to_owned()], at(3600)),
            "{b}"
        );
        assert_eq!(
            msg,
            (
                ("delivered".to_owned(), Some("sms".to_owned()), 30),
                vec![("sms".to_owned(), "delivered".to_owned(), 30)]
            ),
            "{b}"
        );
        assert_eq!(kinds, vec![r#"{"type":"call_requested"}"#.to_owned()], "{b}");
    }
}
