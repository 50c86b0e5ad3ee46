//! The two-step campaign of issue #5 end to end: the CRM posts order
//! events, a trigger rule enrolls each order's stop; day 1 an SMS with a
//! link, day 2 a robot call (3 attempts, 15 minutes apart) only for those who
//! did not react, then a hand-over to the operator queue. Days pass by
//! jumping a `WarpClock`; each day's calls play out on its scaled timeline.

use callahead_core::campaign::{Campaign, CampaignRun, OrderEventResult, RunState, TriggerRule};
use callahead_core::clock::{Clock, WarpClock};
use callahead_core::wire::{paths, CallDetail, EventKind};
use callahead_core::StopId;
use callahead_e2e::server::{phone, quick_policy, stops, Depot, TestServer};
use callahead_e2e::{within, Phone};
use callahead_server::providers::simulator::SimMessagingConfig;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;

const FORM: &str = "application/x-www-form-urlencoded";
const TAG: u32 = 51;

fn link_path(text: &str) -> String {
    let at = text.find("/r/").unwrap_or_else(|| panic!("no link in {text:?}"));
    text[at..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_who_react_to_the_sms_are_never_called_the_others_are_called_on_day_2() {
    // Customer 0 confirms by link, customer 1 never picks up, customer 2's
    // order is cancelled in the CRM after the SMS.
    let mut sim = SimConfig::default();
    for i in 0..3 {
        sim.overrides.insert(phone(TAG, i), Behaviour::NoAnswer);
    }
    let clock = WarpClock::new(callahead_e2e::server::morning(), 1000.0);
    let ts = TestServer::start_on(Arc::new(clock.clone()), sim, SimMessagingConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let d = depot.depot.id.to_string();
    let token = depot.integrator.as_str();

    // The orders are delivered on day 3, 13:00–14:00 Moscow and after.
    let day3 = ts.now() + Duration::days(2);
    let date = day3.date_naive();
    let route = stops(TAG, 3, day3 + Duration::hours(2));
    let imported =
        ts.api.import_route(token, depot.courier_id(0), date, route).await.expect("route imported");
    let stop_ids: Vec<StopId> = imported.stops.iter().map(|s| s.stop.id).collect();

    let campaign: Campaign = ts
        .api
        .send(
            Method::POST,
            Some(token),
            &paths::fill(paths::DEPOT_CAMPAIGNS, &[("depot_id", &d)]),
            Some(&json!({"name": "SMS, then a call, then a human", "steps": [
                {"after_secs": 0, "action": {"type": "sms"}},
                {"after_secs": 86_400, "action": {"type": "call",
                    "policy": {"max_attempts": 3, "retry_spacing_secs": 900}}},
                {"after_secs": 3_600, "action": {"type": "operator"}}
            ]})),
        )
        .await
        .expect("campaign created");
    let rule: TriggerRule = ts
        .api
        .send(
            Method::POST,
            Some(token),
            &paths::fill(paths::DEPOT_TRIGGER_RULES, &[("depot_id", &d)]),
            Some(&json!({"event_type": "shipped", "campaign_id": campaign.id, "cancel_on": ["order_cancelled"]})),
        )
        .await
        .expect("rule created");
    assert_eq!(rule.campaign_id, campaign.id);

    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    courier.client().sync_route(date).await.expect("sync");
    courier.wait_online().await;

    let events_path = paths::fill(paths::DEPOT_ORDER_EVENTS, &[("depot_id", &d)]);
    let post_event = |key: String, event_type: &'static str, order: usize| {
        let body = json!({"idempotency_key": key, "event_type": event_type,
            "external_id": format!("ORD-{TAG}-{order}"), "date": date});
        let (api, path) = (&ts.api, events_path.clone());
        async move { api.send::<OrderEventResult>(Method::POST, Some(token), &path, Some(&body)).await }
    };
    let mut runs = Vec::new();
    for (i, stop) in stop_ids.iter().enumerate() {
        let r = post_event(format!("shipped-order-{i}"), "shipped", i).await.expect("order event");
        assert_eq!((r.stop_id, r.enrolled.len()), (*stop, 1));
        runs.push(r.enrolled[0]);
    }
    // A retried POST changes nothing and gets the first answer.
    let again = post_event("shipped-order-0".into(), "shipped", 0).await.expect("retry");
    assert_eq!(again.enrolled, vec![runs[0]]);
    let unknown = post_event("shipped-order-x".into(), "shipped", 9).await.expect_err("no such order");
    assert_eq!((unknown.status, unknown.body.field.as_deref()), (StatusCode::NOT_FOUND, Some("external_id")));

    // Day 1: everyone gets the SMS with a link.
    let mut links = Vec::new();
    for i in 0..3 {
        let sms = within("the campaign SMS", ts.running().messaging().wait_for(&phone(TAG, i))).await;
        assert!(sms.text.contains("Confirm or change") || sms.text.contains("Подтвердите"), "{}", sms.text);
        links.push(link_path(&sms.text));
    }
    // Customer 0 confirms on the page; customer 2's order is cancelled.
    let (status, page) = ts.api.raw(Method::GET, None, &links[0], None, FORM).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("value=\"confirm\""), "{page}");
    let (status, done) = ts.api.raw(Method::POST, None, &links[0], Some("choice=confirm".into()), FORM).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let cancelled = post_event("cancel-order-2".into(), "order_cancelled", 2).await.expect("cancel");
    assert_eq!(cancelled.cancelled, vec![runs[2]]);

    let runs_path =
        paths::fill(paths::CAMPAIGN_RUNS, &[("depot_id", &d), ("campaign_id", &campaign.id.to_string())]);
    let states = || async {
        let runs: Vec<CampaignRun> =
            ts.api.send(Method::GET, Some(token), &runs_path, None::<&()>).await.expect("runs");
        runs.iter().map(|r| (r.stop_id, r.state)).collect::<Vec<_>>()
    };
    assert_eq!(
        states().await,
        vec![
            (stop_ids[0], RunState::Reacted),
            (stop_ids[1], RunState::Active),
            (stop_ids[2], RunState::Cancelled)
        ]
    );

    // Day 2: only customer 1 is called, then handed over to an operator.
    let day2 = ts.now() + Duration::days(1);
    clock.jump(Duration::days(1));
    let seen = courier
        .rec
        .wait_until("customer 1 handed over to an operator", |s| {
            s.events.iter().any(|e| {
                e.stop_id == Some(stop_ids[1])
                    && matches!(e.kind, EventKind::CampaignLeft { state: RunState::HandedOver, .. })
            })
        })
        .await;
    let called: Vec<StopId> = seen
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CallRequested))
        .filter_map(|e| e.stop_id)
        .collect();
    assert_eq!(called, vec![stop_ids[1]], "only the customer who did not react is called");
    let call_id = seen
        .events
        .iter()
        .find(|e| matches!(e.kind, EventKind::CallRequested))
        .and_then(|e| e.call.as_ref())
        .map(|c| c.id)
        .expect("the call");
    let detail: CallDetail = ts.api.call(depot.courier_token(0), call_id).await.expect("call detail");
    assert_eq!(detail.attempts.len(), 3, "3 attempts");
    assert!(detail.attempts[0].placed_at >= day2, "not before day 2");
    for pair in detail.attempts.windows(2) {
        let gap = pair[1].placed_at - pair[0].ended_at.expect("ended");
        assert!(gap >= Duration::seconds(900), "15 minutes apart, got {gap}");
        assert!(gap < Duration::seconds(900 + 600), "placed late: {gap}");
    }
    let steps: Vec<(StopId, String)> = seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CampaignStepTaken { action, .. } => Some((e.stop_id?, action.clone())),
            _ => None,
        })
        .collect();
    let of = |i: usize| {
        steps.iter().filter(|(s, _)| *s == stop_ids[i]).map(|(_, a)| a.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(of(0), vec!["sms"]);
    assert_eq!(of(1), vec!["sms", "call", "operator"]);
    assert_eq!(of(2), vec!["sms"]);

    let queue: Vec<CampaignRun> = ts
        .api
        .send(
            Method::GET,
            Some(token),
            &paths::fill(paths::DEPOT_OPERATOR_QUEUE, &[("depot_id", &d)]),
            None::<&()>,
        )
        .await
        .expect("queue");
    assert_eq!(queue.iter().map(|r| r.stop_id).collect::<Vec<_>>(), vec![stop_ids[1]]);
    assert_eq!(states().await[1], (stop_ids[1], RunState::HandedOver));
    assert!(clock.now() >= day2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_campaign_inputs_get_their_error_codes() {
    let ts = TestServer::start(100.0, SimConfig::default()).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let other = Depot::create(&ts.api, "Other", 1, quick_policy()).await;
    let d = depot.depot.id.to_string();
    let token = depot.integrator.as_str();
    let post = |path: String, body: serde_json::Value| {
        let api = &ts.api;
        async move { api.send::<serde_json::Value>(Method::POST, Some(token), &path, Some(&body)).await }
    };
    let campaigns = paths::fill(paths::DEPOT_CAMPAIGNS, &[("depot_id", &d)]);
    let cases = [
        (json!({"name": "x", "steps": []}), "steps"),
        (
            json!({"name": "x", "steps": [{"after_secs": 0, "action": {"type": "operator"}},
            {"after_secs": 0, "action": {"type": "sms"}}]}),
            "steps[0].action",
        ),
        (
            json!({"name": "x", "steps": [{"after_secs": 0, "action": {"type": "call",
            "policy": {"max_attempts": 99}}}]}),
            "steps[0].action.policy",
        ),
    ];
    for (body, field) in cases {
        let e = post(campaigns.clone(), body).await.expect_err("refused");
        assert_eq!((e.status, e.body.field.as_deref()), (StatusCode::BAD_REQUEST, Some(field)));
    }
    let e = post(
        campaigns.clone(),
        json!({"name": "x", "steps": [{"after_secs": 0, "action": {"type": "fax"}}]}),
    )
    .await
    .expect_err("unknown action");
    assert_eq!(e.status, StatusCode::BAD_REQUEST);

    let rules = paths::fill(paths::DEPOT_TRIGGER_RULES, &[("depot_id", &d)]);
    let e =
        post(rules.clone(), json!({"event_type": "Shipped!", "campaign_id": 1})).await.expect_err("bad type");
    assert_eq!(e.body.field.as_deref(), Some("event_type"));
    let e = post(rules, json!({"event_type": "shipped", "campaign_id": 999})).await.expect_err("no campaign");
    assert_eq!(
        (e.status, e.body.code),
        (StatusCode::NOT_FOUND, callahead_core::wire::ErrorCode::CampaignNotFound)
    );

    // Another depot's integrator learns nothing about this depot.
    let e = ts
        .api
        .send::<serde_json::Value>(Method::GET, Some(&other.integrator), &campaigns, None::<&()>)
        .await
        .expect_err("not theirs");
    assert_eq!(e.status, StatusCode::NOT_FOUND);
    // A courier may not set campaigns up.
    let e = ts
        .api
        .send::<serde_json::Value>(Method::GET, Some(depot.courier_token(0)), &campaigns, None::<&()>)
        .await
        .expect_err("courier");
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let events = paths::fill(paths::DEPOT_ORDER_EVENTS, &[("depot_id", &d)]);
    let e = post(
        events,
        json!({"idempotency_key": "short", "event_type": "shipped", "external_id": "A",
        "date": "2026-11-23"}),
    )
    .await
    .expect_err("short key");
    assert_eq!(e.body.field.as_deref(), Some("idempotency_key"));
}
