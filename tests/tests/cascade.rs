//! The notification cascade and the daily report end to end (issue #5):
//! three customers press 2; the reschedule link reaches each by the
//! cheapest channel that works for them, the courier sees by which and at
//! what cost, and the depot's daily report adds the same costs up, in JSON
//! and CSV alike. Bad report and template inputs get their error codes.

use callahead_core::call::Key;
use callahead_core::channel::Channel;
use callahead_core::savings::{CourierSavings, Savings};
use callahead_core::template::{Language, TemplateSet};
use callahead_core::wire::{paths, CallAheadSettings, DailyReport, ErrorCode, EventKind};
use callahead_core::StopId;
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer, ADMIN};
use callahead_e2e::Phone;
use callahead_server::cascade::CascadeConfig;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use callahead_server::providers::simulator::{Reach, SimMessagingConfig};
use callahead_server::providers::Message;
use reqwest::{Method, StatusCode};
use std::collections::{BTreeMap, HashMap};

const SPEED: f64 = 100.0;
const TAG: u32 = 51;

/// Customer 0 is on messenger A; customer 1 on no messenger; customer 2 on
/// messenger A too, but their phone never confirms delivery. All press 2.
fn customers() -> (SimConfig, SimMessagingConfig) {
    let mut sim = SimConfig::default();
    for i in 0..3 {
        sim.overrides.insert(phone(TAG, i), Behaviour::Answer { key: Key::new('2') });
    }
    let messaging = SimMessagingConfig::default()
        .register(&phone(TAG, 0), Channel::MessengerA, Reach::Delivered)
        .register(&phone(TAG, 2), Channel::MessengerA, Reach::NoReceipt);
    (sim, messaging)
}

fn price(channel: Channel) -> i64 {
    let config = CascadeConfig::default();
    config.channels.iter().find(|c| c.channel == channel).map(|c| c.cost_minor).expect("priced")
}

fn report_path(depot: i64, query: &str) -> String {
    format!("{}?{query}", paths::fill(paths::DEPOT_DAILY_REPORT, &[("depot_id", &depot.to_string())]))
}

/// The CSV's header and its one data line, as a map.
fn parse_csv(text: &str) -> HashMap<String, String> {
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let values = lines.next().expect("values");
    assert_eq!(lines.next(), None, "one data line");
    header.split(',').map(str::to_owned).zip(values.split(',').map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_customer_gets_the_cheapest_channel_that_reaches_them_and_the_report_adds_it_up() {
    let (sim, messaging) = customers();
    let ts = TestServer::start_with(SPEED, sim, messaging).await;
    let depot = Depot::create(&ts.api, "FastBox", 1, quick_policy()).await;
    let templates_path = paths::fill(paths::DEPOT_TEMPLATES, &[("depot_id", &depot.depot.id.0.to_string())]);

    // The depot words the messenger text its own way; an SMS text over the
    // SMS limit is refused when saved, naming the part.
    let mut set = TemplateSet::default();
    let ru = set.templates.get_mut(&Language::Ru).expect("ru");
    ru.texts.insert(Channel::Sms, format!("{} {{link}}", "Выберите новое время доставки. ".repeat(7)));
    let err =
        ts.api.send::<TemplateSet>(Method::PUT, Some(&depot.supervisor), &templates_path, Some(&set)).await;
    let err = err.expect_err("over the SMS limit");
    assert_eq!((err.status, err.body.code), (StatusCode::BAD_REQUEST, ErrorCode::ValidationFailed));
    assert_eq!(err.body.field.as_deref(), Some("templates.ru.texts.sms"));
    assert!(err.body.message.contains("SMS segments"), "{}", err.body.message);
    let mut set = TemplateSet::default();
    let en = set.templates.get_mut(&Language::En).expect("en");
    en.texts
        .insert(Channel::MessengerA, "{company_name}, {customer_name}: pick a new time here {link}".into());
    ts.api
        .send::<TemplateSet>(Method::PUT, Some(&depot.supervisor), &templates_path, Some(&set))
        .await
        .expect("saved");

    // A courier of this depot spends 3 minutes phoning a customer by hand.
    let settings_path = paths::fill(paths::DEPOT_CALL_AHEAD, &[("depot_id", &depot.depot.id.0.to_string())]);
    let settings = CallAheadSettings { minutes_per_manual_call: 3, ..CallAheadSettings::default() };
    ts.api
        .send::<CallAheadSettings>(Method::PUT, Some(&depot.supervisor), &settings_path, Some(&settings))
        .await
        .expect("settings saved");

    // Three stops, in English; the courier taps all three.
    let mut route = stops(TAG, 3, ts.now());
    for s in &mut route {
        s.language = Some(Language::En);
    }
    ts.api.import_route(&depot.integrator, depot.courier_id(0), today(), route).await.expect("import");
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    let synced = courier.client().sync_route(today()).await.expect("sync");
    let ids: Vec<StopId> = synced.iter().map(|s| s.stop.id).collect();
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");

    // The courier's app learns, per stop, by which channel the link went.
    let seen = courier
        .rec
        .wait_until("a delivered message per stop", |s| {
            ids.iter().all(|id| {
                s.events
                    .iter()
                    .any(|e| e.stop_id == Some(*id) && matches!(e.kind, EventKind::MessageDelivered { .. }))
            })
        })
        .await;
    let delivered: HashMap<StopId, (Channel, i64)> = seen
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MessageDelivered { channel, cost, .. } => Some((e.stop_id?, (*channel, cost.minor))),
            _ => None,
        })
        .collect();

    // What each customer's phone received.
    let sim = ts.running().messaging();
    let sent = sim.sent();
    let to = |i: usize| -> Vec<Message> { sent.iter().filter(|m| m.to == phone(TAG, i)).cloned().collect() };
    let channels = |i: usize| -> Vec<Channel> { to(i).iter().map(|m| m.channel).collect() };
    assert_eq!(channels(0), vec![Channel::MessengerA], "on messenger A: only that");
    assert!(
        to(0)[0].text.starts_with("FastBox, Customer 51-0: pick a new time here http://"),
        "{}",
        to(0)[0].text
    );
    assert_eq!(channels(1), vec![Channel::Sms], "on no messenger: SMS");
    assert!(to(1)[0].text.starts_with("FastBox: pick a new delivery time for order 16001: http://"));
    assert_eq!(channels(2), vec![Channel::MessengerA, Channel::Sms], "no receipt in time: on to SMS");

    // Costs: per message billed, SMS per segment.
    let sms_cost = |m: &Message| price(Channel::Sms) * i64::from(Channel::Sms.segments(&m.text));
    let a = price(Channel::MessengerA);
    let costs = [a, sms_cost(&to(1)[0]), a + sms_cost(&to(2)[1])];
    for (i, id) in ids.iter().enumerate() {
        let want = (channels(i).last().copied().expect("a channel"), costs[i]);
        assert_eq!(delivered.get(id), Some(&want), "customer {i}");
    }
    let total: i64 = sent.iter().map(|m| if m.channel == Channel::Sms { sms_cost(m) } else { a }).sum();
    assert_eq!(total, costs.iter().sum::<i64>());

    // The supervisor's daily report: the same costs, by channel.
    let json_path = report_path(depot.depot.id.0, &format!("date={}", today()));
    let r: DailyReport =
        ts.api.send(Method::GET, Some(&depot.supervisor), &json_path, None::<&()>).await.expect("report");
    assert_eq!((r.calls_requested, r.reached, r.rescheduled, r.confirmed), (3, 3, 3, 0));
    assert_eq!((r.reach_rate, r.confirmation_rate, r.saved_trips, r.attempts), (1.0, 0.0, 3, 3));
    let by: BTreeMap<Channel, (u32, u32, i64)> =
        r.channels.iter().map(|c| (c.channel, (c.delivered, c.billed, c.cost_minor))).collect();
    assert_eq!(by[&Channel::MessengerA], (1, 2, 2 * a), "one delivered, two billed");
    assert_eq!(by[&Channel::MessengerB], (0, 0, 0));
    assert_eq!(by[&Channel::Sms], (2, 2, sms_cost(&to(1)[0]) + sms_cost(&to(2)[1])));
    assert_eq!((r.cost_total.minor, r.cost_total.currency.as_str()), (total, "RUB"));
    assert_eq!(r.messages_undelivered, 0);
    // What it saved: three reschedules learned 10+ minutes before their
    // windows opened, three robot attempts of 3 courier minutes each, and
    // nobody confirmed, so no cost per confirmation.
    let want = Savings {
        failed_visits_avoided: 3,
        confirmed_before_arrival: 0,
        confirmed: 0,
        attempts: 3,
        courier_minutes_saved: 9,
        cost_minor: total,
        cost_per_confirmed_minor: None,
    };
    assert_eq!((r.savings, r.minutes_per_manual_call), (want, 3));
    assert_eq!(r.savings_by_courier, vec![CourierSavings { courier_id: depot.courier_id(0), savings: want }]);

    // CSV, by parameter and by Accept header: the same numbers.
    let (status, by_param) =
        ts.api.raw(Method::GET, Some(&depot.supervisor), &format!("{json_path}&format=csv"), None, "").await;
    assert_eq!(status, StatusCode::OK, "{by_param}");
    let accepted = reqwest::Client::new()
        .get(format!("{}{json_path}", ts.api.base))
        .bearer_auth(&depot.supervisor)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("csv by accept");
    assert!(accepted.headers()["content-type"].to_str().expect("ascii").starts_with("text/csv"));
    let by_accept = accepted.text().await.expect("body");
    assert_eq!(by_param, by_accept);
    let csv = parse_csv(&by_param);
    let json: serde_json::Value = serde_json::to_value(&r).expect("json");
    for key in [
        "calls_requested",
        "reached",
        "rescheduled",
        "saved_trips",
        "attempts",
        "reach_rate",
        "confirmation_rate",
    ] {
        assert_eq!(csv[key], json[key].to_string(), "{key}");
    }
    for c in &r.channels {
        assert_eq!(csv[&format!("{}_delivered", c.channel)], c.delivered.to_string());
        assert_eq!(csv[&format!("{}_cost_minor", c.channel)], c.cost_minor.to_string());
    }
    assert_eq!(csv["cost_total_minor"], total.to_string());
    assert_eq!(
        ["failed_visits_avoided", "courier_minutes_saved", "savings_cost_minor", "cost_per_confirmed_minor"]
            .map(|k| csv[k].as_str()),
        ["3", "9", total.to_string().as_str(), ""]
    );
    assert_eq!(csv["date"], today().to_string());

    // The admin sees the same; a day without activity is all zeros.
    let admin: DailyReport =
        ts.api.send(Method::GET, Some(ADMIN), &json_path, None::<&()>).await.expect("admin");
    assert_eq!(admin, r);
    let quiet = report_path(depot.depot.id.0, &format!("date={}", today().pred_opt().expect("yesterday")));
    let quiet: DailyReport = ts.api.send(Method::GET, Some(ADMIN), &quiet, None::<&()>).await.expect("quiet");
    assert_eq!((quiet.calls_requested, quiet.cost_total.minor), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_refuses_bad_input_and_foreign_readers() {
    let ts = TestServer::start(SPEED, SimConfig::default()).await;
    let a = Depot::create(&ts.api, "A", 1, quick_policy()).await;
    let b = Depot::create(&ts.api, "B", 1, quick_policy()).await;
    let id = a.depot.id.0;
    let get = |token: String, query: String| {
        let api = ts.api.clone();
        async move {
            api.send::<DailyReport>(Method::GET, Some(&token), &report_path(id, &query), None::<&()>).await
        }
    };
    let refused = |status, code| {
        move |e: callahead_e2e::api::Failure| assert_eq!((e.status, e.body.code), (status, code))
    };

    for bad in ["date=2026-13-01", "date=23.11.2026", "format=json"] {
        let e = get(a.supervisor.clone(), bad.into()).await.expect_err(bad);
        refused(StatusCode::BAD_REQUEST, ErrorCode::InvalidDate)(e);
    }
    let e = get(a.supervisor.clone(), format!("date={}&format=xml", today())).await.expect_err("xml");
    assert_eq!(e.body.field.as_deref(), Some("format"));
    refused(StatusCode::BAD_REQUEST, ErrorCode::ValidationFailed)(e);

    let day = format!("date={}", today());
    let e = get(b.supervisor.clone(), day.clone()).await.expect_err("another depot's supervisor");
    refused(StatusCode::NOT_FOUND, ErrorCode::DepotNotFound)(e);
    for token in [a.courier_token(0).to_owned(), a.integrator.clone()] {
        let e = get(token, day.clone()).await.expect_err("not a manager's report");
        refused(StatusCode::FORBIDDEN, ErrorCode::Forbidden)(e);
    }
    let e = ts
        .api
        .send::<DailyReport>(Method::GET, Some(ADMIN), &report_path(9999, &day), None::<&()>)
        .await
        .expect_err("no such depot");
    refused(StatusCode::NOT_FOUND, ErrorCode::DepotNotFound)(e);
    let (status, _) = ts.api.raw(Method::GET, None, &report_path(id, &day), None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    get(a.supervisor.clone(), day).await.expect("the own depot's supervisor may");
}
