//! What the supervisor's dashboard reads: a depot's overview with its
//! couriers' app connections, a stop's whole timeline, the event log in
//! pages, and the page itself; each scoped to the supervisor's depot.

mod common;

use callahead_core::call::AttemptResult;
use callahead_core::wire::{DepotDashboard, EventKind, EventPage, StopTimeline};
use callahead_core::Outcome;
use callahead_server::providers::simulator::Behaviour;
use common::*;
use reqwest::StatusCode;
use std::collections::HashMap;

async fn dashboard(h: &Harness, token: &str, depot: i64) -> DepotDashboard {
    let (s, v) = h.get(&format!("/v1/depots/{depot}/dashboard?date={}", date()), token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    serde_json::from_value(v).expect("a DepotDashboard")
}

#[tokio::test]
async fn a_supervisor_sees_their_depot_its_calls_and_rates_and_no_other_depot() {
    let key = |c| Behaviour::Answer { key: Some(callahead_core::call::Key::new(c).expect("key")) };
    let overrides =
        HashMap::from([(phone(0), key('1')), (phone(1), Behaviour::NoAnswer), (phone(50), key('1'))]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 2, 0).await;
    let other = h.depot(policy(), 1, 50).await;
    let mut feed = h.ws(&d.supervisor_token, None).await;
    for (i, stop) in d.stop_ids.iter().enumerate() {
        let (s, _) = h.request_call(&d, *stop, &format!("dash-tap-{i}")).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    h.request_call(&other, other.stop_ids[0], "dash-tap-other").await;
    let mut finished = 0;
    feed.until(|e| {
        finished += usize::from(matches!(e.kind, EventKind::CallFinished { .. }));
        finished == 2
    })
    .await;

    let view = dashboard(&h, &d.supervisor_token, d.id).await;
    assert_eq!(view.depot.id.0, d.id);
    assert_eq!(view.couriers.iter().map(|c| c.courier.id.0).collect::<Vec<_>>(), [d.courier_id]);
    // Last activity: the time of the courier's latest event in the log, as
    // of the snapshot's head (an attempt may still end after it).
    let (s, log) = h.get("/v1/events?after=0&limit=1000", &d.supervisor_token).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let latest = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .rfind(|e| e["courier_id"] == d.courier_id && e["seq"].as_u64() <= Some(view.head_seq))
        .map(|e| e["at"].clone());
    let latest: Option<chrono::DateTime<chrono::Utc>> =
        latest.map(|v| serde_json::from_value(v).expect("a time"));
    assert!(latest.is_some());
    assert_eq!(view.couriers[0].last_activity, latest);
    assert_eq!(view.stops.len(), 2);
    assert!(view.calls.iter().all(|c| c.depot_id.0 == d.id) && view.calls.len() == 2);
    assert_eq!((view.totals.finished, view.totals.reached, view.totals.confirmed), (2, 1, 1));
    assert_eq!(view.totals.no_answer, 1);
    assert_eq!(view.hourly.iter().map(|h| h.outcomes.finished).sum::<u32>(), 2);
    assert!(view.head_seq >= view.calls.iter().map(|c| c.last_seq).max().unwrap_or(0));

    // Another depot is not found for this supervisor; an admin sees both.
    let (s, v) = h.get(&format!("/v1/depots/{}/dashboard", other.id), &d.supervisor_token).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("depot_not_found")));
    let admin_view = dashboard(&h, ADMIN, other.id).await;
    assert_eq!(admin_view.couriers[0].courier.id.0, other.courier_id);
    let (s, v) = h.get(&format!("/v1/depots/{}/dashboard", d.id), &d.courier_token).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, v) = h.get(&format!("/v1/depots/{}/dashboard?date=23.11.2026", d.id), ADMIN).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_date")));

    // The depots each may watch.
    let (_, mine) = h.get("/v1/depots", &d.supervisor_token).await;
    assert_eq!(mine["depots"].as_array().map(|a| a.len()), Some(1));
    assert_eq!(mine["depots"][0]["id"].as_i64(), Some(d.id));
    let (_, all) = h.get("/v1/depots", ADMIN).await;
    assert_eq!(all["depots"].as_array().map(|a| a.len()), Some(2));
    let (s, _) = h.get("/v1/depots", &d.courier_token).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_courier_apps_connection_reaches_the_supervisor_live_and_the_overview() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(policy(), 1, 0).await;
    let mut feed = h.ws(&d.supervisor_token, None).await;
    assert!(!dashboard(&h, &d.supervisor_token, d.id).await.couriers[0].app_connected);

    let app = h.ws(&d.courier_token, None).await;
    let seen = feed.until(|e| matches!(e.kind, EventKind::AppConnection { .. })).await;
    let online = seen.last().expect("event");
    assert_eq!(online.kind, EventKind::AppConnection { connected: true });
    assert_eq!((online.courier_id.0, online.depot_id.0), (d.courier_id, d.id));
    assert!(dashboard(&h, &d.supervisor_token, d.id).await.couriers[0].app_connected);

    // A second socket of the same courier changes nothing; closing the last
    // one is "disconnected".
    let second = h.ws(&d.courier_token, None).await;
    drop(app);
    drop(second);
    let seen = feed.until(|e| matches!(e.kind, EventKind::AppConnection { .. })).await;
    assert_eq!(seen.last().map(|e| &e.kind), Some(&EventKind::AppConnection { connected: false }));
    assert!(!dashboard(&h, &d.supervisor_token, d.id).await.couriers[0].app_connected);
    assert!(feed.try_frame(std::time::Duration::from_millis(300)).await.is_none(), "one change each way");

    // In the log for supervisors; the courier's own feed leaves it out.
    let kinds = |v: serde_json::Value| {
        let page: EventPage = serde_json::from_value(v).expect("an EventPage");
        page.events.iter().filter(|e| matches!(e.kind, EventKind::AppConnection { .. })).count()
    };
    assert_eq!(kinds(h.get("/v1/events", &d.supervisor_token).await.1), 2);
    assert_eq!(kinds(h.get("/v1/events", &d.courier_token).await.1), 0);
    let mut replay = h.ws(&d.courier_token, Some(0)).await;
    while let Some(frame) = replay.try_frame(std::time::Duration::from_millis(300)).await {
        if let callahead_core::wire::ServerFrame::Event { event } = frame {
            assert!(!matches!(event.kind, EventKind::AppConnection { .. }), "{event:?}");
        }
    }
}

#[tokio::test]
async fn a_stop_timeline_shows_every_attempt_with_its_script_and_only_to_its_depot() {
    let overrides = HashMap::from([(phone(0), Behaviour::NoAnswer)]);
    let h = Harness::start(fast_clock(), overrides).await;
    let d = h.depot(policy(), 1, 0).await;
    let other = h.depot(policy(), 1, 50).await;
    let mut feed = h.ws(&d.supervisor_token, None).await;
    h.request_call(&d, d.stop_ids[0], "timeline-tap").await;
    feed.until(|e| matches!(e.kind, EventKind::CallFinished { .. })).await;

    let path = format!("/v1/stops/{}/timeline", d.stop_ids[0]);
    let (s, v) = h.get(&path, &d.supervisor_token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let t: StopTimeline = serde_json::from_value(v).expect("a StopTimeline");
    assert_eq!(t.stop.id.0, d.stop_ids[0]);
    assert_eq!(t.calls.len(), 1);
    assert_eq!(t.calls[0].call.outcome, Some(Outcome::NoAnswer));
    assert_eq!(t.calls[0].attempts.len(), 3);
    for a in &t.calls[0].attempts {
        assert_eq!(a.result, Some(AttemptResult::NoAnswer));
        assert!(a.script.as_deref().is_some_and(|s| s.contains("Customer 0")), "{:?}", a.script);
    }
    let placed = t.events.iter().filter(|e| matches!(e.kind, EventKind::AttemptPlaced { .. })).count();
    assert_eq!(placed, 3);
    assert!(t.events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(t.events.iter().all(|e| e.stop_id.map(|s| s.0) == Some(d.stop_ids[0])));

    // The courier may read their own stop; another depot may not, nor an
    // integrator.
    assert_eq!(h.get(&path, &d.courier_token).await.0, StatusCode::OK);
    assert_eq!(h.get(&path, ADMIN).await.0, StatusCode::OK);
    let (s, v) = h.get(&path, &other.supervisor_token).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("stop_not_found")));
    assert_eq!(h.get(&path, &other.courier_token).await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.get(&path, &d.integrator_token).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_event_log_reads_in_pages_in_the_callers_scope() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    let d = h.depot(policy(), 3, 0).await;
    let other = h.depot(policy(), 1, 50).await;
    for i in 0..3 {
        h.request_call(&d, d.stop_ids[i], &format!("log-tap-{i}")).await;
    }
    h.request_call(&other, other.stop_ids[0], "log-tap-other").await;

    let page = |token: String, query: String| {
        let h = &h;
        async move {
            let (s, v) = h.get(&format!("/v1/events{query}"), &token).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            serde_json::from_value::<EventPage>(v).expect("an EventPage")
        }
    };
    // The first attempts keep adding events: compare up to one head.
    let all = page(ADMIN.into(), String::new()).await;
    let upto =
        |p: &EventPage| p.events.iter().map(|e| e.seq).filter(|s| *s <= all.head_seq).collect::<Vec<_>>();
    assert_eq!(all.events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=all.head_seq).collect::<Vec<_>>());
    let mine = page(d.supervisor_token.clone(), String::new()).await;
    let expected: Vec<u64> = all.events.iter().filter(|e| e.depot_id.0 == d.id).map(|e| e.seq).collect();
    assert_eq!(upto(&mine), expected);
    let first = page(d.supervisor_token.clone(), "?limit=2".into()).await;
    let rest = page(d.supervisor_token.clone(), format!("?after={}", first.events[1].seq)).await;
    let paged: Vec<u64> = first.events.iter().chain(&rest.events).map(|e| e.seq).collect();
    assert_eq!(paged.into_iter().filter(|s| *s <= all.head_seq).collect::<Vec<_>>(), expected);
    assert_eq!(first.events.len(), 2);

    let (s, v) = h.get("/v1/events?limit=0", ADMIN).await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    assert_eq!(h.get("/v1/events", &d.integrator_token).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_page_is_served_from_the_binary_with_a_strict_policy() {
    let (_manual, clock) = manual_clock();
    let h = Harness::start(clock, HashMap::new()).await;
    for (path, kind, needle) in [
        ("/dashboard", "text/html", "/dashboard/app.js"),
        ("/dashboard/app.js", "text/javascript", "new WebSocket"),
        ("/dashboard/app.css", "text/css", "#feed"),
    ] {
        let resp = h.http.get(format!("{}{path}", h.base)).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}: {}", header("content-type"));
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert!(resp.text().await.expect("body").contains(needle), "{path}");
    }
}
