//! Campaigns, messages, send limits, provider records, webhooks and erasure
//! on every backend (docs/adr/0009): each test runs on SQLite and, when
//! `CALLAHEAD_TEST_PG` is set, on PostgreSQL, through the real writer and
//! read pool, and reads back what it wrote.

use super::testing::{at, read, stores, write, TestStore};
use super::{accounts, campaigns, erasure, limits, messages, providers, webhooks};
use super::{Db, NewEvent, StoreError, WriteTx};
use crate::cascade::ChannelPrice;
use crate::providers::{PlaceCall, Placed, Script};
use crate::webhooks::signature::Secret;
use callahead_core::campaign::{CampaignStep, OrderEventResult, RunState, StepAction};
use callahead_core::channel::Channel;
use callahead_core::policy::AttemptPolicy;
use callahead_core::wire::{EventKind, SendLimits, Stop};
use callahead_core::{CallId, CourierId, DepotId, StopId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 3, d).expect("date")
}

/// A depot (its id) with one courier.
async fn depot_and_courier(t: &TestStore, name: &str) -> (DepotId, CourierId) {
    let name = name.to_owned();
    write(t, move |tx| {
        let d = accounts::insert_depot(tx, &name, "UTC", &AttemptPolicy::default(), at(0))?;
        Ok((d, accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(0))?))
    })
    .await
}

/// A stop on `date` (the database picks its id, as the ADR asks of
/// fixtures that run on PostgreSQL).
fn insert_stop(
    tx: &WriteTx<'_>,
    depot: DepotId,
    courier: CourierId,
    date: NaiveDate,
    external_id: &str,
    phone: &str,
) -> Result<StopId, StoreError> {
    tx.db().one(
        "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name, phone, time_zone,
           address, window_start, window_end, order_numbers, amount_minor, amount_currency, lat, lon)
         VALUES (?1, ?2, ?3, 0, ?4, 'Anna', ?5, 'UTC', 'Lenina 1', ?6, ?7, '[\"A-1\"]', 1500, 'RUB', 55.7, 37.6)
         RETURNING id",
        params![courier.0, depot.0, date.format("%Y-%m-%d").to_string(), external_id, phone, 0i64, 3_600_000i64],
        |r| r.get(0).map(StopId),
    )
}

/// A call of `stop` in `status`, created at `created`.
fn insert_call(
    tx: &WriteTx<'_>,
    depot: DepotId,
    courier: CourierId,
    stop: StopId,
    key: &str,
    status: &str,
    created: DateTime<Utc>,
) -> Result<CallId, StoreError> {
    tx.db().one(
        "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, max_attempts, retry_spacing_secs,
           ring_timeout_secs, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 3, 600, 30, ?6, ?6) RETURNING id",
        params![courier.0, depot.0, stop.0, key, status, super::ms(created)],
        |r| r.get(0).map(CallId),
    )
}

fn ids(stops: &[StopId]) -> Vec<i64> {
    stops.iter().map(|s| s.0).collect()
}

/// The stop as `messages::queue` needs it.
fn wire_stop(id: StopId, depot: DepotId, courier: CourierId, phone: &str) -> Stop {
    Stop {
        id,
        courier_id: courier,
        depot_id: depot,
        route_date: day(1),
        position: 0,
        sequence: 0,
        external_id: "A-1".into(),
        customer_name: "Anna".into(),
        phone: phone.into(),
        time_zone: "UTC".into(),
        address: "Lenina 1".into(),
        window_start: at(0),
        window_end: at(3600),
        order_numbers: vec!["A-1".into()],
        amount: None,
        location: None,
        language: None,
        pickup_point: None,
        out_of_chain: None,
    }
}

#[tokio::test]
async fn campaigns_runs_rules_and_order_events_round_trip() {
    for t in stores("campaigns_runs_rules_and_order_events") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let steps = vec![
            CampaignStep { after_secs: 60, action: StepAction::Sms },
            CampaignStep { after_secs: 3600, action: StepAction::Operator },
        ];
        let s = steps.clone();
        let (c1, c2, rule, s1, s2, s3, first, again) = write(&t, move |tx| {
            let c1 = campaigns::insert(tx, depot, "Unpaid", &s, at(1))?;
            let c2 = campaigns::insert(tx, depot, "Second", &[], at(2))?;
            let rule =
                campaigns::insert_rule(tx, depot, "invoice_unpaid", c1, &["invoice_paid".into()], at(3))?;
            let s1 = insert_stop(tx, depot, courier, day(1), "A-1", "+79990000011")?;
            let s2 = insert_stop(tx, depot, courier, day(1), "A-2", "+79990000012")?;
            let s3 = insert_stop(tx, depot, courier, day(1), "A-3", "+79990000013")?;
            let first = campaigns::enroll(tx, c1, s1, at(100), at(10))?;
            let again = campaigns::enroll(tx, c1, s1, at(999), at(11))?;
            Ok((c1, c2, rule, s1, s2, s3, first, again))
        })
        .await;
        assert!(c2 > c1, "{b}: ids grow");
        let run1 = first.unwrap_or_else(|| panic!("{b}: the first enrollment makes a run"));
        assert_eq!(again, None, "{b}: a stop is enrolled once per campaign");

        let (one, all, missing, rules) = read(&t, move |db| {
            Ok((
                campaigns::campaign(db, c1)?,
                campaigns::campaigns(db, depot)?,
                campaigns::campaign(db, c2 + 100)?,
                campaigns::rules(db, depot)?,
            ))
        })
        .await;
        let one = one.unwrap_or_else(|| panic!("{b}: the campaign"));
        assert_eq!(
            (one.depot_id, one.name.as_str(), &one.steps, one.created_at),
            (depot, "Unpaid", &steps, at(1)),
            "{b}"
        );
        assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), [c1, c2], "{b}: in id order");
        assert!(missing.is_none(), "{b}");
        assert_eq!(rules.len(), 1, "{b}");
        assert_eq!(
            (
                rules[0].id,
                rules[0].event_type.as_str(),
                rules[0].campaign_id,
                &rules[0].cancel_on,
                rules[0].created_at
            ),
            (rule, "invoice_unpaid", c1, &vec!["invoice_paid".to_owned()], at(3)),
            "{b}"
        );

        // Three runs due at different times, one moved, one ended.
        let (run2, run3) = write(&t, move |tx| {
            let run2 = campaigns::enroll(tx, c1, s2, at(50), at(12))?.expect("new");
            let run3 = campaigns::enroll(tx, c2, s1, at(50), at(13))?.expect("new");
            campaigns::postpone(tx, run2, at(300), at(20))?;
            campaigns::advance(tx, run1, 1, Some(at(200)), at(21))?;
            Ok((run2, run3))
        })
        .await;
        let (r1, runs, of, none_of, active, next, due, due_one) = read(&t, move |db| {
            Ok((
                campaigns::run(db, run1)?,
                campaigns::runs(db, c1)?,
                campaigns::run_of(db, c1, s2)?,
                campaigns::run_of(db, c1, s3)?,
                campaigns::active_runs_of_stop(db, s1)?,
                campaigns::next_due(db)?,
                campaigns::due_runs(db, at(250), 10)?,
                campaigns::due_runs(db, at(1000), 1)?,
            ))
        })
        .await;
        let r1 = r1.unwrap_or_else(|| panic!("{b}: run 1"));
        assert_eq!(
            (r1.campaign_id, r1.stop_id, r1.state, r1.next_step, r1.next_at, r1.enrolled_at, r1.updated_at),
            (c1, s1, RunState::Active, 1, Some(at(200)), at(10), at(21)),
            "{b}"
        );
        assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run1, run2], "{b}");
        assert_eq!(
            of.map(|r| (r.id, r.next_at, r.next_step)),
            Some((run2, Some(at(300)), 0)),
            "{b}: postponed"
        );
        assert!(none_of.is_none(), "{b}: never enrolled");
        assert_eq!(active.iter().map(|r| r.id).collect::<Vec<_>>(), [run1, run3], "{b}");
        assert_eq!(next, Some(at(50)), "{b}: the earliest step");
        assert_eq!(due, [run3, run1], "{b}: due by then, earliest first");
        assert_eq!(due_one, [run3], "{b}: the limit");

        let (ended, twice, handed) = write(&t, move |tx| {
            let ended = campaigns::end_run(tx, run3, RunState::Reacted, at(30))?;
            let twice = campaigns::end_run(tx, run3, RunState::Completed, at(31))?;
            let handed = campaigns::end_run(tx, run2, RunState::HandedOver, at(40))?;
            campaigns::end_run(tx, run1, RunState::HandedOver, at(35))?;
            campaigns::advance(tx, run1, 2, None, at(35))?;
            Ok((ended, twice, handed))
        })
        .await;
        assert_eq!((ended, twice, handed), (true, false, true), "{b}: an ended run stays ended");
        let (r3, queue, other_queue, active, next) = read(&t, move |db| {
            Ok((
                campaigns::run(db, run3)?,
                campaigns::operator_queue(db, depot)?,
                campaigns::operator_queue(db, DepotId(depot.0 + 100))?,
                campaigns::active_runs_of_stop(db, s1)?,
                campaigns::next_due(db)?,
            ))
        })
        .await;
        let r3 = r3.unwrap_or_else(|| panic!("{b}: run 3"));
        assert_eq!((r3.state, r3.next_at, r3.updated_at), (RunState::Reacted, None, at(30)), "{b}");
        assert_eq!(
            queue.iter().map(|r| r.id).collect::<Vec<_>>(),
            [run1, run2],
            "{b}: oldest hand-over first"
        );
        assert!(other_queue.is_empty(), "{b}");
        assert!(active.is_empty(), "{b}");
        assert_eq!(next, None, "{b}: nothing is due any more");

        // Order events: recorded, answered, found again by key.
        let (event, removed) = write(&t, move |tx| {
            let e = campaigns::insert_order_event(
                tx,
                &campaigns::NewOrderEvent {
                    depot,
                    idempotency_key: "k1",
                    event_type: "invoice_unpaid",
                    stop: s1,
                    occurred_at: at(60),
                    received_at: at(61),
                },
            )?;
            campaigns::set_order_event_result(
                tx,
                &OrderEventResult { id: e, stop_id: s1, enrolled: vec![run1], cancelled: vec![] },
            )?;
            let removed = insert_stop(tx, depot, courier, day(1), "B-1", "+79990000014")?;
            tx.exec("UPDATE stops SET removed = TRUE WHERE id = ?1", params![removed.0])?;
            Ok((e, removed))
        })
        .await;
        let duplicate = t
            .store
            .writer
            .write(move |tx| {
                campaigns::insert_order_event(
                    tx,
                    &campaigns::NewOrderEvent {
                        depot,
                        idempotency_key: "k1",
                        event_type: "invoice_paid",
                        stop: s1,
                        occurred_at: at(70),
                        received_at: at(71),
                    },
                )
            })
            .await
            .expect_err("one key, one event");
        assert!(matches!(duplicate, StoreError::Duplicate(_)), "{b}: {duplicate}");
        let (result, unknown, found, gone, other_day) = read(&t, move |db| {
            Ok((
                campaigns::order_event_result(db, depot, "k1")?,
                campaigns::order_event_result(db, depot, "k2")?,
                campaigns::stop_by_external_id(db, depot, day(1), "A-2")?,
                campaigns::stop_by_external_id(db, depot, day(1), "B-1")?,
                campaigns::stop_by_external_id(db, depot, day(2), "A-2")?,
            ))
        })
        .await;
        assert_eq!(
            result,
            Some(OrderEventResult { id: event, stop_id: s1, enrolled: vec![run1], cancelled: vec![] }),
            "{b}"
        );
        assert_eq!(unknown, None, "{b}");
        assert_eq!(found, Some(s2), "{b}");
        assert_eq!(gone, None, "{b}: stop {removed:?} was removed from the route");
        assert_eq!(other_day, None, "{b}");
    }
}

/// `(state, step, tries, next_at, channel, segments, cost_minor, finished_at, phone)` of a message.
type MessageRow = (String, i64, i64, Option<i64>, Option<String>, Option<i64>, i64, Option<i64>, String);

fn message_row(db: &Db, id: i64) -> Result<MessageRow, StoreError> {
    db.one(
        "SELECT state, step, tries, next_at, channel, segments, cost_minor, finished_at, phone FROM messages
         WHERE id = ?1",
        params![id],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        },
    )
}

/// `(channel, started_at, result, segments, cost_minor, error, ended_at)` of each send, by step.
type SendRow = (i64, String, i64, String, i64, i64, Option<String>, Option<i64>);

fn send_rows(db: &Db, id: i64) -> Result<Vec<SendRow>, StoreError> {
    db.all(
        "SELECT step, channel, started_at, result, segments, cost_minor, error, ended_at FROM message_sends
         WHERE message_id = ?1 ORDER BY step",
        params![id],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        },
    )
}

fn message_id(db: &Db, purpose: &str, ref_id: i64) -> Result<i64, StoreError> {
    db.one("SELECT id FROM messages WHERE purpose = ?1 AND ref_id = ?2", params![purpose, ref_id], |r| {
        r.get(0)
    })
}

#[tokio::test]
async fn a_message_goes_through_its_channels() {
    for t in stores("a_message_goes_through_its_channels") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let (s1, s2) = write(&t, move |tx| {
            let s1 = insert_stop(tx, depot, courier, day(1), "A-1", "+79990000011")?;
            let s2 = insert_stop(tx, depot, courier, day(1), "A-2", "+79990000012")?;
            let (w1, w2) =
                (wire_stop(s1, depot, courier, "+79990000011"), wire_stop(s2, depot, courier, "+7999"));
            messages::queue(tx, "offer", 7, &w1, at(20))?;
            messages::queue(tx, "offer", 7, &w2, at(5))?;
            messages::queue(tx, "eta", 8, &w2, at(10))?;
            Ok((s1, s2))
        })
        .await;
        let (next, due, due_one, m1, m2) = read(&t, move |db| {
            Ok((
                messages::next_at(db)?,
                messages::due(db, at(30), 10)?,
                messages::due(db, at(30), 1)?,
                message_id(db, "offer", 7)?,
                message_id(db, "eta", 8)?,
            ))
        })
        .await;
        assert_eq!(next, Some(at(10)), "{b}: the second (purpose, ref) was ignored");
        assert_eq!(due.iter().map(|m| m.id).collect::<Vec<_>>(), [m2, m1], "{b}: earliest first");
        assert_eq!(due_one.len(), 1, "{b}");
        let d = &due[1];
        assert_eq!(
            (d.purpose.as_str(), d.ref_id, d.phone.as_str(), d.depot, d.courier, d.stop),
            ("offer", 7, "+79990000011", depot, courier, s1),
            "{b}: the first queue's stop and number"
        );
        assert_eq!(
            (d.step, d.state, d.tries, d.plan.is_none()),
            (0, messages::MessageState::Sending, 0, true),
            "{b}"
        );
        assert_eq!(due[0].stop, s2, "{b}");

        let plan = vec![
            ChannelPrice { channel: Channel::MessengerA, cost_minor: 1, timeout_secs: 60 },
            ChannelPrice { channel: Channel::Sms, cost_minor: 5, timeout_secs: 600 },
        ];
        let p = plan.clone();
        let segments = write(&t, move |tx| {
            messages::set_plan(tx, m1, &p, "RUB")?;
            messages::set_plan(tx, m1, &[], "EUR")?;
            messages::start_send(tx, m1, 0, Channel::MessengerA, 1, at(21))?;
            messages::start_send(tx, m1, 0, Channel::Sms, 9, at(22))?;
            messages::end_send(tx, m1, 0, "accepted", 1, None, at(23))?;
            messages::bill(tx, m1, 1, 1)?;
            messages::await_receipt(tx, m1, at(80))?;
            messages::send_delivered(tx, m1, 0)
        })
        .await;
        assert_eq!(segments, 1, "{b}: the segments the kept send billed");
        let (row, sends, due) = read(&t, move |db| {
            Ok((message_row(db, m1)?, send_rows(db, m1)?, messages::due(db, at(100), 10)?))
        })
        .await;
        assert_eq!(
            row,
            ("awaiting".into(), 0, 0, Some(super::ms(at(80))), None, Some(1), 1, None, "+79990000011".into()),
            "{b}"
        );
        assert_eq!(
            sends,
            [(
                0,
                "messenger_a".into(),
                super::ms(at(21)),
                "delivered".into(),
                1,
                1,
                None,
                Some(super::ms(at(23)))
            )],
            "{b}: the first intent kept, then ended and delivered"
        );
        let d1 = due.iter().find(|m| m.id == m1).unwrap_or_else(|| panic!("{b}: m1 due"));
        assert_eq!(d1.state, messages::MessageState::Awaiting, "{b}");
        assert_eq!(d1.plan, Some((plan, "RUB".into())), "{b}: the first plan is fixed");

        // Timed out, retried, moved on, and the next channel delivers.
        let cost = write(&t, move |tx| {
            messages::send_timed_out(tx, m1, 0, at(81))?;
            messages::retry(tx, m1, at(82))?;
            messages::due_again(tx, m1, at(83))?;
            messages::next_channel(tx, m1, at(84))?;
            messages::start_send(tx, m1, 1, Channel::Sms, 2, at(85))?;
            messages::end_send(tx, m1, 1, "failed", 0, Some("HTTP 500"), at(86))?;
            messages::bill(tx, m1, 10, 2)?;
            messages::delivered(tx, m1, Channel::Sms, at(90))
        })
        .await;
        assert_eq!(cost, 11, "{b}: what the message cost in all");
        let (row, sends) = read(&t, move |db| Ok((message_row(db, m1)?, send_rows(db, m1)?))).await;
        assert_eq!(
            row,
            (
                "delivered".into(),
                1,
                0,
                None,
                Some("sms".into()),
                Some(2),
                11,
                Some(super::ms(at(90))),
                "+79990000011".into()
            ),
            "{b}: next_channel reset the tries"
        );
        assert_eq!(sends[0].3, "timeout", "{b}");
        assert_eq!(sends[0].7, Some(super::ms(at(81))), "{b}");
        assert_eq!(
            sends[1],
            (
                1,
                "sms".into(),
                super::ms(at(85)),
                "failed".into(),
                2,
                0,
                Some("HTTP 500".into()),
                Some(super::ms(at(86)))
            ),
            "{b}"
        );

        let (tries, gone) = write(&t, move |tx| {
            messages::retry(tx, m2, at(40))?;
            messages::retry(tx, m2, at(41))?;
            let tries = message_row(tx.db(), m2)?.2;
            messages::undelivered(tx, m2, at(50))?;
            Ok((tries, message_row(tx.db(), m2)?))
        })
        .await;
        assert_eq!(tries, 2, "{b}");
        assert_eq!((gone.0.as_str(), gone.3, gone.7), ("undelivered", None, Some(super::ms(at(50)))), "{b}");
        assert_eq!(read(&t, messages::next_at).await, None, "{b}: nothing due");
        let missing =
            t.store.writer.write(move |tx| messages::delivered(tx, m2 + 100, Channel::Sms, at(1))).await;
        assert!(missing.is_err(), "{b}: no such message");
    }
}

#[tokio::test]
async fn send_limits_and_what_they_count() {
    for t in stores("send_limits_and_what_they_count") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let (other, _) = depot_and_courier(&t, "South").await;
        let limits =
            SendLimits { sms_per_day: 100, calls_per_day: 50, allowed_destinations: vec!["+7".into()] };
        let l = limits.clone();
        let (saved, not_saved, m1, m2) = write(&t, move |tx| {
            let saved = limits::save(tx, depot, &l)?;
            let not_saved = limits::save(tx, DepotId(depot.0 + 100), &l)?;
            let s = insert_stop(tx, depot, courier, day(1), "A-1", "+79990000011")?;
            insert_call(tx, depot, courier, s, "c1", "finished", at(10))?;
            insert_call(tx, depot, courier, s, "c2", "dialing", at(20))?;
            insert_call(tx, depot, courier, s, "c0", "finished", at(-10))?;
            let w = wire_stop(s, depot, courier, "+79990000011");
            messages::queue(tx, "offer", 1, &w, at(10))?;
            messages::queue(tx, "offer", 2, &w, at(11))?;
            let (m1, m2) = (message_id(tx.db(), "offer", 1)?, message_id(tx.db(), "offer", 2)?);
            messages::start_send(tx, m1, 0, Channel::Sms, 1, at(12))?;
            messages::start_send(tx, m1, 1, Channel::MessengerA, 1, at(13))?;
            messages::start_send(tx, m2, 0, Channel::Sms, 3, at(-5))?;
            messages::end_send(tx, m2, 0, "accepted", 7, None, at(-4))?;
            Ok((saved, not_saved, m1, m2))
        })
        .await;
        assert_eq!((saved, not_saved), (true, false), "{b}");
        let (mine, defaults, missing, calls, sms, none) = read(&t, move |db| {
            Ok((
                limits::depot_limits(db, depot)?,
                limits::depot_limits(db, other)?,
                limits::depot_limits(db, DepotId(depot.0 + 100))?,
                limits::calls_since(db, depot, at(0))?,
                limits::sms_since(db, depot, at(0))?,
                limits::calls_since(db, other, at(0))?,
            ))
        })
        .await;
        assert_eq!(mine, Some(Some(limits)), "{b}");
        assert_eq!(defaults, Some(None), "{b}: the server's defaults");
        assert_eq!(missing, None, "{b}: no such depot");
        assert_eq!((calls, sms, none), (2, 1, 0), "{b}: since the start, SMS only");

        // A refusal replaces the step's earlier send whole.
        write(&t, move |tx| limits::refuse_message(tx, m2, 0, "over the daily SMS limit", at(30))).await;
        let (row, sends, sms, refused, before) = read(&t, move |db| {
            Ok((
                message_row(db, m2)?,
                send_rows(db, m2)?,
                limits::sms_since(db, depot, at(-100))?,
                limits::refused_messages(db, depot, super::ms(at(0)), super::ms(at(100)))?,
                limits::refused_messages(db, depot, super::ms(at(12)), super::ms(at(100)))?,
            ))
        })
        .await;
        assert_eq!((row.0.as_str(), row.3, row.7), ("refused", None, Some(super::ms(at(30)))), "{b}");
        assert_eq!(
            sends,
            [(
                0,
                "sms".into(),
                super::ms(at(30)),
                "refused".into(),
                0,
                0,
                Some("over the daily SMS limit".into()),
                Some(super::ms(at(30)))
            )],
            "{b}"
        );
        assert_eq!(sms, 1, "{b}: a refused send is not counted");
        assert_eq!((refused, before), (1, 0), "{b}: by the message's creation time");
        assert_eq!(read(&t, move |db| message_row(db, m1)).await.0, "sending", "{b}");
    }
}

fn place_call(call: CallId, attempt: u32) -> PlaceCall {
    PlaceCall {
        attempt_key: PlaceCall::attempt_key(call, attempt),
        call_id: call,
        attempt,
        courier_id: CourierId(1),
        to: "+79990000011".into(),
        script: Script {
            text: "Your parcel arrives at 10:30.".into(),
            no_input: "We did not hear you.".into(),
            goodbye: "Goodbye!".into(),
            language: "en".into(),
            keys: Vec::new(),
        },
        bridge_to: None,
        ring_timeout_secs: 30,
        machine_detection: true,
        callback_secret: "s3cret".into(),
    }
}

#[tokio::test]
async fn provider_records_round_trip() {
    for t in stores("provider_records_round_trip") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let (stop, call) = write(&t, move |tx| {
            let stop = insert_stop(tx, depot, courier, day(1), "A-1", "+79990000011")?;
            let call = insert_call(tx, depot, courier, stop, "c1", "dialing", at(0))?;
            for (n, placed, ended) in [(1, 10, Some(20)), (2, 30, None), (3, 40, None)] {
                tx.exec(
                    "INSERT INTO attempts (call_id, number, placed_at, ended_at) VALUES (?1, ?2, ?3, ?4)",
                    params![call.0, n, super::ms(at(placed)), ended.map(|e| super::ms(at(e)))],
                )?;
            }
            providers::save_request(tx, &place_call(call, 1))?;
            providers::save_request(tx, &place_call(call, 2))?;
            providers::set_placed(
                tx,
                call,
                2,
                &Placed { reference: "CA1".into(), control_url: Some("https://c".into()) },
            )?;
            Ok((stop, call))
        })
        .await;
        let (a1, a2, a3, by_key, bad_key, open) = read(&t, move |db| {
            Ok((
                providers::attempt(db, call, 1)?,
                providers::attempt(db, call, 2)?,
                providers::attempt(db, call, 3)?,
                providers::attempt_by_key(db, &PlaceCall::attempt_key(call, 2))?,
                providers::attempt_by_key(db, "nonsense")?,
                providers::open_attempts(db)?,
            ))
        })
        .await;
        let a1 = a1.unwrap_or_else(|| panic!("{b}: attempt 1"));
        assert_eq!(
            (&a1.request, &a1.placed, a1.placed_at, a1.ended_at),
            (&place_call(call, 1), &None, at(10), Some(at(20))),
            "{b}"
        );
        let a2 = a2.unwrap_or_else(|| panic!("{b}: attempt 2"));
        assert_eq!(
            a2.placed,
            Some(Placed { reference: "CA1".into(), control_url: Some("https://c".into()) }),
            "{b}"
        );
        assert_eq!(a3, None, "{b}: no request kept, nothing a callback could be about");
        assert_eq!(by_key, Some(a2.clone()), "{b}");
        assert_eq!(bad_key, None, "{b}");
        assert_eq!(open, [a2], "{b}: not ended, with a request");

        // Callback dedupe keys: all or none.
        let (first, again, partly) = write(&t, move |tx| {
            Ok((
                providers::record_receipts(tx, &["k1".into(), "k2".into()], at(50))?,
                providers::record_receipts(tx, &["k2".into()], at(60))?,
                providers::record_receipts(tx, &["k3".into(), "k1".into()], at(70))?,
            ))
        })
        .await;
        assert_eq!(first, providers::Receipt::New, "{b}");
        assert_eq!(again, providers::Receipt::Seen { first_at_ms: super::ms(at(50)) }, "{b}");
        assert_eq!(partly, providers::Receipt::Seen { first_at_ms: super::ms(at(50)) }, "{b}");
        let k3 = write(&t, move |tx| providers::record_receipts(tx, &["k3".into()], at(80))).await;
        assert_eq!(k3, providers::Receipt::New, "{b}: a seen callback records none of its keys");

        // Provider messages: a final status is never moved back.
        write(&t, move |tx| {
            providers::message_sending(tx, "m1", "twilio", at(1))?;
            providers::message_sending(tx, "m1", "other", at(2))?;
            providers::message_status(tx, "m1", Some("SM1"), "queued", None, at(3))?;
            providers::message_status(tx, "m1", None, "delivered", None, at(4))?;
            providers::message_status(tx, "m1", None, "sent", Some("late"), at(5))
        })
        .await;
        let (m, none) =
            read(&t, |db| Ok((providers::message(db, "m1")?, providers::message(db, "m2")?))).await;
        assert_eq!(
            m,
            Some(providers::ProviderMessage {
                idempotency_key: "m1".into(),
                provider_ref: Some("SM1".into()),
                status: "delivered".into(),
                error: Some("late".into()),
                created_at: at(1),
            }),
            "{b}"
        );
        assert_eq!(none, None, "{b}");
        let provider: String = read(&t, |db| {
            db.one("SELECT provider FROM provider_messages WHERE idempotency_key = 'm1'", params![], |r| {
                r.get(0)
            })
        })
        .await;
        assert_eq!(provider, "twilio", "{b}: the first note is kept");

        // Direct dials.
        let (dial, placed, connected, ended, after_end, recorded, twice) = write(&t, move |tx| {
            let new = |key: &'static str, record| providers::NewDial {
                stop_id: stop,
                courier_id: courier,
                depot_id: depot,
                idempotency_key: key,
                record,
                callback_secret: "cb",
                now: at(100),
            };
            let dial = providers::create_dial(tx, &new("d1", true))?;
            providers::create_dial(tx, &new("d2", false))?;
            Ok((
                dial,
                providers::dial_status(tx, dial, "placed", Some("CA9"), None, at(101))?,
                providers::dial_status(tx, dial, "connected", Some("CA-other"), Some(5), at(102))?,
                providers::dial_status(tx, dial, "ended", None, None, at(103))?,
                providers::dial_status(tx, dial, "connected", None, Some(99), at(104))?,
                providers::dial_recorded(tx, dial, "RE1", 42, at(105))?,
                providers::dial_recorded(tx, dial, "RE2", 43, at(106))?,
            ))
        })
        .await;
        assert_eq!(
            (placed, connected, ended, after_end),
            (true, true, true, false),
            "{b}: an ended dial stays ended"
        );
        assert_eq!((recorded, twice), (true, false), "{b}: the first recording is kept");
        let duplicate = t
            .store
            .writer
            .write(move |tx| {
                providers::create_dial(
                    tx,
                    &providers::NewDial {
                        stop_id: stop,
                        courier_id: courier,
                        depot_id: depot,
                        idempotency_key: "d1",
                        record: false,
                        callback_secret: "cb",
                        now: at(100),
                    },
                )
            })
            .await
            .expect_err("one key, one dial");
        assert!(matches!(duplicate, StoreError::Duplicate(_)), "{b}: {duplicate}");
        let (d, by_key, by_idem, other_courier, none, extra) = read(&t, move |db| {
            Ok((
                providers::dial(db, dial)?,
                providers::dial_by_key(db, &crate::providers::DirectDialRequest::key(dial))?,
                providers::dial_by_idempotency(db, courier, "d2")?,
                providers::dial_by_idempotency(db, CourierId(courier.0 + 100), "d1")?,
                providers::dial(db, dial + 100)?,
                db.one(
                    "SELECT talk_secs, recording_secs FROM direct_dials WHERE id = ?1",
                    params![dial],
                    |r| Ok::<_, rusqlite::Error>((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
                )?,
            ))
        })
        .await;
        assert_eq!(
            d,
            Some(providers::StoredDial {
                id: dial,
                stop_id: stop,
                courier_id: courier,
                depot_id: depot,
                customer_phone: "+79990000011".into(),
                record: true,
                status: "ended".into(),
                provider_ref: Some("CA9".into()),
                callback_secret: "cb".into(),
                recording_ref: Some("RE1".into()),
                created_at: at(100),
            }),
            "{b}: the first reference kept"
        );
        assert_eq!(by_key, d, "{b}");
        assert_eq!(
            by_idem.map(|d| (d.id > dial, d.record, d.status)),
            Some((true, false, "placing".into())),
            "{b}"
        );
        assert_eq!((other_courier, none), (None, None), "{b}");
        assert_eq!(extra, (Some(5), Some(42)), "{b}");

        // Recording direct calls, per depot.
        let (set, set_missing) = write(&t, move |tx| {
            Ok((
                providers::set_record_direct_calls(tx, depot, true)?,
                providers::set_record_direct_calls(tx, DepotId(depot.0 + 100), true)?,
            ))
        })
        .await;
        assert_eq!((set, set_missing), (true, false), "{b}");
        let (on, missing) = read(&t, move |db| {
            Ok((
                providers::record_direct_calls(db, depot)?,
                providers::record_direct_calls(db, DepotId(depot.0 + 100))?,
            ))
        })
        .await;
        assert_eq!((on, missing), (true, false), "{b}");
        write(&t, move |tx| providers::set_record_direct_calls(tx, depot, false)).await;
        assert!(!read(&t, move |db| providers::record_direct_calls(db, depot)).await, "{b}");

        // Calls the courier logged from their own phone.
        let (l1, l2) = write(&t, move |tx| {
            Ok((
                providers::log_call(tx, courier, stop, "lc1", "no answer", at(200), 17)?,
                providers::log_call(tx, courier, stop, "lc2", "", at(201), 18)?,
            ))
        })
        .await;
        assert!(l2 > l1, "{b}");
        let (logged, unknown) = read(&t, move |db| {
            Ok((providers::logged_call(db, courier, "lc1")?, providers::logged_call(db, courier, "lc3")?))
        })
        .await;
        let logged = logged.unwrap_or_else(|| panic!("{b}: logged call"));
        assert_eq!(
            (logged.id, logged.stop_id, logged.note.as_str(), logged.called_at, logged.seq),
            (l1, stop, "no answer", at(200), 17),
            "{b}"
        );
        assert!(unknown.is_none(), "{b}");
    }
}

fn event(secs: i64, depot: DepotId, courier: CourierId, kind: EventKind) -> NewEvent {
    NewEvent::route(at(secs), 0, depot, courier, kind)
}

fn endpoint(depot: DepotId, types: &[&str], max_attempts: u32, cursor: u64) -> webhooks::NewEndpoint {
    webhooks::NewEndpoint {
        depot_id: depot,
        url: "https://example.test/hook".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        max_attempts,
        secret: Secret("whsec_one".into()),
        cursor,
        at: at(0),
    }
}

#[tokio::test]
async fn webhooks_deliver_retry_dead_letter_and_replay() {
    for t in stores("webhooks_deliver_retry_dead_letter") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let (other, other_courier) = depot_and_courier(&t, "South").await;
        let (all, filtered, elsewhere) = write(&t, move |tx| {
            // seq 1: route_replaced; 2: the other depot; 3: app_connection (opt-in);
            // 4: direct_call_logged.
            tx.append_event(event(1, depot, courier, EventKind::RouteReplaced { date: day(1) }))?;
            tx.append_event(event(2, other, other_courier, EventKind::RouteReplaced { date: day(1) }))?;
            tx.append_event(event(3, depot, courier, EventKind::AppConnection { connected: true }))?;
            tx.append_event(event(
                4,
                depot,
                courier,
                EventKind::DirectCallLogged { note: "hi".into(), called_at: at(4) },
            ))?;
            Ok((
                webhooks::insert(tx, &endpoint(depot, &[], 2, 0))?,
                webhooks::insert(tx, &endpoint(depot, &["direct_call_logged", "app_connection"], 3, 0))?,
                webhooks::insert(tx, &endpoint(other, &[], 5, 2))?,
            ))
        })
        .await;
        let (ep_all, eps, eps_depot, eps_none, missing) = read(&t, move |db| {
            Ok((
                webhooks::endpoint(db, all)?,
                webhooks::endpoints(db, None)?,
                webhooks::endpoints(db, Some(depot))?,
                webhooks::endpoints(db, Some(DepotId(depot.0 + 100)))?,
                webhooks::endpoint(db, all + 100)?,
            ))
        })
        .await;
        let ep_all = ep_all.unwrap_or_else(|| panic!("{b}: endpoint"));
        assert_eq!(
            (ep_all.depot_id, ep_all.url.as_str(), ep_all.max_attempts, ep_all.cursor, ep_all.created_at),
            (depot, "https://example.test/hook", 2, 0, at(0)),
            "{b}"
        );
        assert_eq!(
            (ep_all.pending_seq, ep_all.pending_attempts, ep_all.previous_secret.is_none()),
            (None, 0, true),
            "{b}"
        );
        assert_eq!(eps.iter().map(|e| e.id).collect::<Vec<_>>(), [all, filtered, elsewhere], "{b}");
        assert_eq!(eps_depot.iter().map(|e| e.id).collect::<Vec<_>>(), [all, filtered], "{b}");
        assert!(eps_none.is_empty() && missing.is_none(), "{b}");
        let ep_filtered = eps_depot[1].clone();
        assert_eq!(ep_filtered.event_types, ["direct_call_logged", "app_connection"], "{b}");

        let (a0, a_floor, f0, f_past, o0) = {
            let (ea, ef, eo) = (ep_all.clone(), ep_filtered.clone(), eps[2].clone());
            read(&t, move |db| {
                Ok((
                    webhooks::next_item(db, &ea, 0)?,
                    webhooks::next_item(db, &ea, 1)?,
                    webhooks::next_item(db, &ef, 0)?,
                    webhooks::next_item(db, &ef, 4)?,
                    webhooks::next_item(db, &eo, 0)?,
                ))
            })
            .await
        };
        let item = |seq| Some(webhooks::Item { seq, replay: false });
        assert_eq!(a0, webhooks::Scan { item: item(1), nothing_up_to: 0 }, "{b}: no filter: the first event");
        assert_eq!(
            a_floor,
            webhooks::Scan { item: item(4), nothing_up_to: 3 },
            "{b}: past the floor, opt-in skipped"
        );
        assert_eq!(f0, webhooks::Scan { item: item(3), nothing_up_to: 2 }, "{b}: only the wanted types");
        assert_eq!(
            f_past,
            webhooks::Scan { item: None, nothing_up_to: 4 },
            "{b}: nothing more, up to the head"
        );
        assert_eq!(
            o0,
            webhooks::Scan { item: None, nothing_up_to: 2 },
            "{b}: the other depot's one event is behind its cursor"
        );
        let event_back = read(&t, move |db| webhooks::event(db, depot, 4)).await;
        assert!(
            matches!(event_back.map(|e| (e.seq, e.kind)), Some((4, EventKind::DirectCallLogged { .. }))),
            "{b}: the event to deliver"
        );
        assert!(read(&t, move |db| webhooks::event(db, depot, 2)).await.is_none(), "{b}: not this depot's");

        // Delivered: the cursor moves; a failure waits; the limit dead-letters.
        let one = webhooks::Item { seq: 1, replay: false };
        let four = webhooks::Item { seq: 4, replay: false };
        let failed = |status| webhooks::Attempt::Failed { status, error: "HTTP 500".into() };
        let (d1, f1) = write(&t, move |tx| {
            Ok((
                webhooks::record(
                    tx,
                    all,
                    one,
                    &webhooks::Attempt::Delivered,
                    at(10),
                    chrono::Duration::seconds(30),
                )?,
                webhooks::record(tx, all, four, &failed(Some(500)), at(11), chrono::Duration::seconds(30))?,
            ))
        })
        .await;
        assert_eq!((d1, f1), (false, false), "{b}");
        let ep = read(&t, move |db| webhooks::endpoint(db, all)).await.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (ep.cursor, ep.pending_seq, ep.pending_attempts, ep.next_attempt_at),
            (1, Some(4), 1, Some(at(41))),
            "{b}"
        );
        assert_eq!(webhooks::due_at(&ep, four), at(41), "{b}");
        let dead = write(&t, move |tx| {
            webhooks::record(tx, all, four, &failed(None), at(50), chrono::Duration::seconds(30))
        })
        .await;
        assert!(dead, "{b}: the second failure of two allowed dead-letters it");
        let (ep, letters, count, failures, newest) = read(&t, move |db| {
            Ok((
                webhooks::endpoint(db, all)?,
                webhooks::dead_letters(db, all)?,
                webhooks::dead_letter_count(db, all)?,
                webhooks::failures(db, all, 10)?,
                webhooks::failures(db, all, 1)?,
            ))
        })
        .await;
        let ep = ep.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (ep.cursor, ep.pending_seq, ep.pending_attempts, ep.next_attempt_at),
            (4, None, 0, None),
            "{b}: past it"
        );
        assert_eq!(
            letters,
            [callahead_core::wire::DeadLetter {
                seq: 4,
                dead_at: at(50),
                attempts: 2,
                last_error: "HTTP 500".into(),
                replaying: false
            }],
            "{b}"
        );
        assert_eq!(count, 1, "{b}");
        assert_eq!(
            failures.iter().map(|f| (f.seq, f.attempt, f.at, f.status)).collect::<Vec<_>>(),
            [(4, 2, at(50), None), (4, 1, at(11), Some(500))],
            "{b}: newest first"
        );
        assert_eq!(newest.len(), 1, "{b}");
        assert_eq!(webhooks::due_at(&ep, four), DateTime::<Utc>::MIN_UTC, "{b}");

        // The same event dead again (a replay that failed) replaces its letter.
        let (queued, again, none) = write(&t, move |tx| {
            let queued = webhooks::replay(tx, all, None)?;
            let again = webhooks::replay(tx, all, None)?;
            let none = webhooks::replay(tx, all, Some(99))?;
            Ok((queued, again, none))
        })
        .await;
        assert_eq!((queued, again, none), (1, 0, 0), "{b}: each not-yet-queued letter once");
        let ep = read(&t, move |db| webhooks::endpoint(db, all)).await.unwrap_or_else(|| panic!("{b}"));
        let scan = {
            let ep = ep.clone();
            read(&t, move |db| webhooks::next_item(db, &ep, 4)).await
        };
        let replayed = webhooks::Item { seq: 4, replay: true };
        assert_eq!(
            scan,
            webhooks::Scan { item: Some(replayed), nothing_up_to: 4 },
            "{b}: replays come first"
        );
        let dead_again = write(&t, move |tx| {
            webhooks::record(tx, all, replayed, &failed(Some(502)), at(60), chrono::Duration::seconds(30))?;
            webhooks::record(tx, all, replayed, &failed(Some(503)), at(61), chrono::Duration::seconds(30))
        })
        .await;
        assert!(dead_again, "{b}");
        let (letters, ep) =
            read(&t, move |db| Ok((webhooks::dead_letters(db, all)?, webhooks::endpoint(db, all)?))).await;
        assert_eq!(
            letters.iter().map(|l| (l.seq, l.dead_at, l.attempts, l.replaying)).collect::<Vec<_>>(),
            [(4, at(61), 2, false)],
            "{b}: one letter, replaced"
        );
        assert_eq!(ep.map(|e| e.cursor), Some(4), "{b}: a replay leaves the cursor");
        let (queued_one, delivered) = write(&t, move |tx| {
            let n = webhooks::replay(tx, all, Some(4))?;
            webhooks::record(
                tx,
                all,
                replayed,
                &webhooks::Attempt::Delivered,
                at(70),
                chrono::Duration::seconds(30),
            )?;
            Ok((n, webhooks::dead_letter_count(tx.db(), all)?))
        })
        .await;
        assert_eq!((queued_one, delivered), (1, 0), "{b}: a delivered replay settles its letter");

        // Secrets: rotated with an overlap, resealed under a key, deleted.
        let keys =
            crate::secrets::Keys { current: Some(crate::secrets::SecretKey::generate()), previous: None };
        let k = keys.clone();
        let (resealed, twice) = write(&t, move |tx| {
            webhooks::rotate(tx, all, &Secret("whsec_two".into()), at(500))?;
            Ok((webhooks::reseal(tx, &k)?, webhooks::reseal(tx, &k)?))
        })
        .await;
        assert_eq!((resealed, twice), (3, 0), "{b}: every endpoint once");
        let ep = read(&t, move |db| webhooks::endpoint(db, all)).await.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(keys.open(&ep.secret.0).ok().as_deref(), Some("whsec_two"), "{b}");
        assert_eq!(ep.previous_secret.map(|p| keys.open(&p.0).ok()), Some(Some("whsec_one".into())), "{b}");
        assert_eq!(ep.previous_secret_until, Some(at(500)), "{b}");
        let (deleted, twice) = write(&t, move |tx| {
            webhooks::record(tx, filtered, four, &failed(Some(500)), at(80), chrono::Duration::seconds(1))?;
            Ok((webhooks::delete(tx, filtered)?, webhooks::delete(tx, filtered)?))
        })
        .await;
        assert_eq!((deleted, twice), (true, false), "{b}: its failures go with it");
        let gone = write(&t, move |tx| {
            webhooks::record(
                tx,
                filtered,
                four,
                &webhooks::Attempt::Delivered,
                at(81),
                chrono::Duration::seconds(1),
            )
        })
        .await;
        assert!(!gone, "{b}: deleted while in flight: nothing recorded");
    }
}

#[tokio::test]
async fn erasure_finds_and_clears_a_customers_data() {
    for t in stores("erasure_finds_and_clears") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t, "North").await;
        let (other, other_courier) = depot_and_courier(&t, "South").await;
        let (old, busy, recent, far, elsewhere) = write(&t, move |tx| {
            let old = insert_stop(tx, depot, courier, day(1), "A-1", "+79990000011")?;
            let busy = insert_stop(tx, depot, courier, day(1), "A-2", "+79990000011")?;
            let recent = insert_stop(tx, depot, courier, day(20), "A-3", "+79990000011")?;
            let far = insert_stop(tx, other, other_courier, day(1), "B-1", "+79990000011")?;
            let elsewhere = insert_stop(tx, other, other_courier, day(10), "B-2", "+79990000022")?;
            let call = insert_call(tx, depot, courier, old, "c1", "finished", at(0))?;
            insert_call(tx, depot, courier, busy, "c2", "dialing", at(0))?;
            // What was placed (numbers, the personalised script) and a
            // direct call's recording: erased with the stop.
            tx.exec(
                "INSERT INTO attempts (call_id, number, placed_at, ended_at) VALUES (?1, 1, ?2, ?2)",
                params![call.0, super::ms(at(0))],
            )?;
            providers::save_request(
                tx,
                &PlaceCall { bridge_to: Some("+79990000001".into()), ..place_call(call, 1) },
            )?;
            let dial = providers::create_dial(
                tx,
                &providers::NewDial {
                    stop_id: old,
                    courier_id: courier,
                    depot_id: depot,
                    idempotency_key: "erase-d1",
                    record: true,
                    callback_secret: "cb",
                    now: at(0),
                },
            )?;
            providers::dial_recorded(tx, dial, "RE-erase", 42, at(0))?;
            Ok((old, busy, recent, far, elsewhere))
        })
        .await;
        let (set, set_missing) = write(&t, move |tx| {
            Ok((
                erasure::set_retention_days(tx, other, 30)?,
                erasure::set_retention_days(tx, DepotId(other.0 + 100), 1)?,
            ))
        })
        .await;
        assert_eq!((set, set_missing), (true, false), "{b}");
        // Today is March 21st everywhere: 14 days of retention by default
        // (depot one), 30 for depot two.
        let today = |_: DepotId, _: &str| day(21);
        let (expired, limited, days, default_days, missing, of_phone, of_other) = read(&t, move |db| {
            Ok((
                erasure::expired(db, 14, today, 10)?,
                erasure::expired(db, 1, today, 1)?,
                erasure::retention_days(db, other)?,
                erasure::retention_days(db, depot)?,
                erasure::retention_days(db, DepotId(other.0 + 100))?,
                erasure::stops_of_phone(db, depot, "+79990000011")?,
                erasure::stops_of_phone(db, other, "+79990000022")?,
            ))
        })
        .await;
        assert_eq!(expired, ids(&[old]), "{b}: older than 14 days and not being called; depot two keeps 30");
        assert_eq!(limited, ids(&[old]), "{b}: the limit");
        assert_eq!((days, default_days, missing), (Some(Some(30)), Some(None), None), "{b}");
        assert_eq!(of_phone, ids(&[old, busy, recent]), "{b}");
        assert_eq!(of_other, ids(&[elsewhere]), "{b}");
        let late = |_: DepotId, _: &str| NaiveDate::from_ymd_opt(2027, 4, 15).expect("date");
        let everything = read(&t, move |db| erasure::expired(db, 0, late, 10)).await;
        assert_eq!(everything, ids(&[old, recent, far, elsewhere]), "{b}: by depot, then stop");

        // What the erasure clears, and what it keeps.
        let (note_seq, other_seq) = write(&t, move |tx| {
            let w = wire_stop(old, depot, courier, "+79990000011");
            messages::queue(tx, "offer", 1, &w, at(1))?;
            messages::queue(tx, "eta", 1, &w, at(2))?;
            providers::log_call(tx, courier, old, "lc1", "ring the bell twice", at(3), 1)?;
            let logged = NewEvent {
                stop_id: Some(old),
                ..event(
                    3,
                    depot,
                    courier,
                    EventKind::DirectCallLogged { note: "ring the bell twice".into(), called_at: at(3) },
                )
            };
            let note = tx.append_event(logged)?.seq;
            let other = NewEvent {
                stop_id: Some(old),
                ..event(4, depot, courier, EventKind::RouteReplaced { date: day(1) })
            };
            Ok((note, tx.append_event(other)?.seq))
        })
        .await;
        let erased = write(&t, move |tx| erasure::erase(tx, &[old.0, recent.0], at(100))).await;
        assert_eq!(erased, 2, "{b}: the two texts' numbers");
        let (request, recording, attempt, late_recording) = write(&t, move |tx| {
            let request: String = tx.db().one(
                "SELECT a.request FROM attempts a JOIN calls c ON c.id = a.call_id WHERE c.stop_id = ?1",
                params![old.0],
                |r| r.get(0),
            )?;
            let dial: i64 =
                tx.db()
                    .one("SELECT id FROM direct_dials WHERE stop_id = ?1", params![old.0], |r| r.get(0))?;
            let late_recording = providers::dial_recorded(tx, dial, "RE-late", 1, at(101))?;
            let recording: Option<String> = tx.db().one(
                "SELECT recording_ref FROM direct_dials WHERE stop_id = ?1",
                params![old.0],
                |r| r.get(0),
            )?;
            let call =
                CallId(tx.db().one("SELECT id FROM calls WHERE stop_id = ?1", params![old.0], |r| r.get(0))?);
            Ok((request, recording, providers::attempt(tx.db(), call, 1)?, late_recording))
        })
        .await;
        for gone in ["+79990000011", "+79990000001", "10:30", "did not hear", "Goodbye"] {
            assert!(!request.contains(gone), "{b}: {gone:?} left what was placed: {request}");
        }
        let attempt = attempt.expect("the attempt is still there");
        assert_eq!(
            (attempt.request.attempt_key.as_str(), attempt.request.callback_secret.as_str()),
            (PlaceCall::attempt_key(attempt.call_id, 1).as_str(), "s3cret"),
            "{b}: a late provider callback still verifies"
        );
        assert_eq!(
            (recording.as_deref(), late_recording),
            (Some(""), false),
            "{b}: the recording's reference, for good"
        );
        let again = write(&t, move |tx| erasure::erase(tx, &[old.0], at(200))).await;
        assert_eq!(again, 0, "{b}: erased once");
        type StopRow = (String, String, String, String, Option<i64>, Option<f64>, Option<i64>, String);
        let (stop, texts, note, kinds, of_phone, expired) = read(&t, move |db| {
            Ok((
                db.one(
                    "SELECT customer_name, phone, address, order_numbers, amount_minor, lat, erased_at, external_id
                     FROM stops WHERE id = ?1",
                    params![old.0],
                    |r| {
                        Ok::<StopRow, rusqlite::Error>((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    },
                )?,
                db.all("SELECT phone FROM messages WHERE stop_id = ?1 ORDER BY id", params![old.0], |r| {
                    r.get::<_, String>(0)
                })?,
                db.one("SELECT note FROM direct_calls WHERE stop_id = ?1", params![old.0], |r| r.get::<_, String>(0))?,
                db.all("SELECT seq, kind FROM events WHERE stop_id = ?1 ORDER BY seq", params![old.0], |r| {
                    Ok::<_, rusqlite::Error>((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?,
                erasure::stops_of_phone(db, depot, "+79990000011")?,
                erasure::expired(db, 0, late, 10)?,
            ))
        })
        .await;
        assert_eq!(
            stop,
            (
                "".into(),
                "".into(),
                "".into(),
                "[]".into(),
                None,
                None,
                Some(super::ms(at(100))),
                "A-1".into()
            ),
            "{b}: the ids and dates stay"
        );
        assert_eq!(texts, ["", ""], "{b}");
        assert_eq!(note, "", "{b}");
        assert_eq!(kinds.len(), 2, "{b}");
        assert_eq!(kinds[0].0, note_seq as i64, "{b}");
        assert!(!kinds[0].1.contains("ring the bell"), "{b}: the note left the log: {}", kinds[0].1);
        assert!(kinds[0].1.contains("note_sha256"), "{b}: its digest stays: {}", kinds[0].1);
        assert_eq!(kinds[1].0, other_seq as i64, "{b}");
        assert!(kinds[1].1.contains("route_replaced"), "{b}: other events are left as they were");
        assert_eq!(of_phone, ids(&[busy]), "{b}");
        assert_eq!(expired, ids(&[far, elsewhere]), "{b}: erased stops are not found again");
    }
}
