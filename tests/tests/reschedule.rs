//! Reschedule by link end to end (issue #4): the customer presses 2, gets
//! an SMS with a link, picks a new window on the page, and the courier's
//! app shows it live. The link works once; a forged one never.

use callahead_core::call::Key;
use callahead_core::template::Language;
use callahead_core::wire::{paths, EventKind, PickupPoint};
use callahead_core::{Outcome, StopId};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::{within, Phone};
use callahead_server::providers::simulator::SimMessagingConfig;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};

const SPEED: f64 = 100.0;
const FORM: &str = "application/x-www-form-urlencoded";

fn pressing_2(tag: u32) -> SimConfig {
    let mut sim = SimConfig::default();
    sim.overrides.insert(phone(tag, 0), Behaviour::Answer { key: Key::new('2') });
    sim
}

/// The path of the link in an SMS (`/r/TOKEN`).
fn link_path(text: &str) -> String {
    let at = text.find("/r/").unwrap_or_else(|| panic!("no link in {text:?}"));
    text[at..].to_owned()
}

/// One stop for customer `phone(tag, 0)`, in English; a phone synced and
/// online; the courier taps it. Returns the stop.
async fn tap_one(ts: &TestServer, depot: &Depot, tag: u32, phone: &Phone) -> StopId {
    let mut route = stops(tag, 1, ts.now());
    route[0].language = Some(Language::En);
    ts.api.import_route(&depot.integrator, depot.courier_id(0), today(), route).await.expect("import");
    let synced = phone.client().sync_route(today()).await.expect("sync");
    let id = synced[0].stop.id;
    phone.wait_online().await;
    phone.client().request_calls(&[id]).expect("tap");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_presses_2_picks_a_slot_by_link_and_the_courier_sees_the_new_window() {
    let ts = TestServer::start(SPEED, pressing_2(41)).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let courier_phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let stop = tap_one(&ts, &depot, 41, &courier_phone).await;

    // The call ends as "reschedule"; the courier sees that an SMS went out.
    let seen = courier_phone
        .rec
        .wait_until("the reschedule offer", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::RescheduleOffered { .. }))
        })
        .await;
    assert!(seen
        .events
        .iter()
        .any(|e| e.kind == EventKind::CallFinished { outcome: Outcome::RescheduleRequested }));
    let masked = seen.events.iter().find_map(|e| match &e.kind {
        EventKind::RescheduleOffered { sms_to_masked } => Some(sms_to_masked.clone()),
        _ => None,
    });
    assert_eq!(masked.as_deref(), Some("+7******0000"), "the courier sees whom, not the whole number");

    // The customer's SMS, in their language, with the link.
    let sms = within("the SMS", ts.running().messaging().wait_for(&phone(41, 0))).await;
    assert!(
        sms.text.starts_with("FastBox: pick a new delivery time for order 16000: http://"),
        "{}",
        sms.text
    );
    let link = link_path(&sms.text);

    // The page lists the next three whole hours after the 10:10–11:10 window.
    let (status, page) = ts.api.raw(Method::GET, None, &link, None, FORM).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for slot in ["12:00–13:00", "13:00–14:00", "14:00–15:00"] {
        assert!(page.contains(slot), "{slot} offered in {page}");
    }
    assert!(page.contains("type=\"radio\" name=\"choice\" value=\"slot-2\""));
    assert!(!page.contains("pickup-"), "this depot offers no pickup point");
    assert!(page.contains("<html lang=\"en\">"));

    // Not a slot on offer: the form again, 400.
    let (status, _) = ts.api.raw(Method::POST, None, &link, Some("slot=7".into()), FORM).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 13:00–14:00 Moscow.
    let (status, done) = ts.api.raw(Method::POST, None, &link, Some("slot=1".into()), FORM).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("13:00–14:00"), "{done}");
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).single().expect("time");
    let end = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).single().expect("time");
    let seen = courier_phone
        .rec
        .wait_until("the new window on the courier's phone", |s| {
            s.stops.get(&stop).is_some_and(|st| st.stop.window_start == start && st.stop.window_end == end)
        })
        .await;
    assert!(seen.events.iter().any(|e| e.stop_id == Some(stop)
        && e.kind == EventKind::StopRescheduled { window_start: start, window_end: end }));
    let stored = courier_phone.client().stops().expect("stops");
    assert_eq!(stored[0].stop.window_start, start, "stored on the phone, not only shown");
    let server_route = ts.api.my_route(depot.courier_token(0), today()).await.expect("route");
    assert_eq!(server_route.stops[0].stop.window_start, start, "and on the server");

    // The link works once.
    let (status, again) = ts.api.raw(Method::POST, None, &link, Some("slot=0".into()), FORM).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(again.contains("already used") && again.contains("13:00–14:00"), "{again}");
    let (status, _) = ts.api.raw(Method::GET, None, &link, None, FORM).await;
    assert_eq!(status, StatusCode::GONE);

    // A forged or mangled token is simply not found.
    for path in ["/r/forged-token-0123456789", &format!("{link}x"), &format!("/r/{}", "a".repeat(500))] {
        let (status, page) = ts.api.raw(Method::POST, None, path, Some("slot=0".into()), FORM).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("Link not found"), "{page}");
    }
    assert_eq!(ts.running().messaging().sent().len(), 1, "one SMS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_not_sent_before_a_crash_is_sent_after_the_restart() {
    // The provider is down, so the committed offer's SMS stays unsent.
    let down = SimMessagingConfig { fail_first: u32::MAX, ..Default::default() };
    let mut ts = TestServer::start_with(SPEED, pressing_2(42), down).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let courier_phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    tap_one(&ts, &depot, 42, &courier_phone).await;
    courier_phone
        .rec
        .wait_until("the reschedule offer", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::RescheduleOffered { .. }))
        })
        .await;
    assert!(ts.running().messaging().sent().is_empty());

    ts.kill();
    ts.messaging = SimMessagingConfig::default();
    ts.restart().await;
    let sms = within("the SMS after the restart", ts.running().messaging().wait_for(&phone(42, 0))).await;
    let (status, page) = ts.api.raw(Method::GET, None, &link_path(&sms.text), None, FORM).await;
    assert_eq!(status, StatusCode::OK, "the resent link works: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_may_collect_at_a_pickup_point_instead_of_a_slot() {
    let ts = TestServer::start(SPEED, pressing_2(43)).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let point = PickupPoint {
        id: "tver-7".into(),
        name: "FastBox Tverskaya".into(),
        address: "Tverskaya 7".into(),
        hours: Some("10:00–21:00".into()),
    };
    let path = paths::fill(paths::DEPOT_PICKUP_POINTS, &[("depot_id", &depot.depot.id.to_string())]);
    let body = serde_json::json!({ "pickup_points": [point] }).to_string();
    let json = "application/json";
    // A bad list is refused with the field at fault; the integrator saves a good one.
    let bad = serde_json::json!({ "pickup_points": [{"id": "no spaces", "name": "x", "address": "y"}] });
    let (status, err) =
        ts.api.raw(Method::PUT, Some(&depot.integrator), &path, Some(bad.to_string()), json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err.contains("\"field\":\"pickup_points[0].id\""), "{err}");
    let (status, saved) = ts.api.raw(Method::PUT, Some(&depot.integrator), &path, Some(body), json).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    // A courier may not change them.
    let (status, _) = ts.api.raw(Method::GET, Some(depot.courier_token(0)), &path, None, json).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let courier_phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let stop = tap_one(&ts, &depot, 43, &courier_phone).await;
    let sms = within("the SMS", ts.running().messaging().wait_for(&phone(43, 0))).await;
    let link = link_path(&sms.text);
    let (status, page) = ts.api.raw(Method::GET, None, &link, None, FORM).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("value=\"slot-0\""), "slots still offered: {page}");
    assert!(
        page.contains(
            "value=\"pickup-tver-7\" required> <b>FastBox Tverskaya</b>, Tverskaya 7 (10:00–21:00)"
        ),
        "{page}"
    );

    // Unknown pickup point: the form again.
    let (status, _) = ts.api.raw(Method::POST, None, &link, Some("choice=pickup-nowhere".into()), FORM).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, done) =
        ts.api.raw(Method::POST, None, &link, Some("choice=pickup-tver-7".into()), FORM).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("will wait for you at <b>FastBox Tverskaya</b>"), "{done}");

    let seen = courier_phone
        .rec
        .wait_until("the pickup point on the courier's phone", |s| {
            s.stops.get(&stop).is_some_and(|st| st.stop.pickup_point.as_ref() == Some(&point))
        })
        .await;
    assert!(seen.events.iter().any(|e| e.stop_id == Some(stop)
        && e.kind == EventKind::PickupPointChosen { pickup_point: Box::new(point.clone()) }));
    let server_route = ts.api.my_route(depot.courier_token(0), today()).await.expect("route");
    assert_eq!(server_route.stops[0].stop.pickup_point, Some(point), "on the server's route too");
    let (status, again) = ts.api.raw(Method::GET, None, &link, None, FORM).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(again.contains("You chose to collect it at <b>FastBox Tverskaya</b>"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_refused_for_good_tells_the_courier_to_phone_the_customer() {
    let ts = TestServer::start(SPEED, pressing_2(44)).await;
    ts.running().messaging().set_rejecting(true);
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let courier_phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let stop = tap_one(&ts, &depot, 44, &courier_phone).await;
    let seen = courier_phone
        .rec
        .wait_until("the failed SMS on the courier's phone", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::RescheduleSmsFailed { .. }))
        })
        .await;
    let failed = seen.events.iter().find(|e| matches!(e.kind, EventKind::RescheduleSmsFailed { .. }));
    assert_eq!(failed.and_then(|e| e.stop_id), Some(stop));
    assert!(ts.running().messaging().sent().is_empty());
    // It is on the stop's timeline in the core too, for the app to show why.
    let timeline = courier_phone.client().timeline(stop).expect("timeline");
    assert!(timeline.events.iter().any(|e| matches!(e.kind, EventKind::RescheduleSmsFailed { .. })));
}
