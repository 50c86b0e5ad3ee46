//! What the robot says: a depot saves its own wording in two languages, a
//! bad template is refused when saved, and every attempt keeps the text the
//! customer actually heard, rendered with their name, order, amount, window
//! (in their time zone), courier and company.

mod common;

use callahead_core::call::Key;
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::{Language, MessageTemplate, TemplateSet};
use callahead_core::wire::{CallDetail, EventKind};
use callahead_server::providers::simulator::Behaviour;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

fn our_wording() -> TemplateSet {
    let t = |message: &str| MessageTemplate {
        message: message.into(),
        menu: "1, 2, 3 or 0.".into(),
        no_input: "Sorry?".into(),
        goodbye: "Bye.".into(),
        texts: BTreeMap::new(),
    };
    TemplateSet {
        default_language: Language::Ru,
        templates: BTreeMap::from([
            (
                Language::Ru,
                t("Здравствуйте, {customer_name}! {company_name}: заказ {order_numbers} на {amount}, \
                   {window_start}–{window_end}, курьер {courier_name}."),
            ),
            (
                Language::En,
                t("Hello {customer_name}! {company_name}: order {order_numbers} for {amount}, \
                   {window_start}-{window_end}, courier {courier_name}."),
            ),
        ]),
    }
}

#[tokio::test]
async fn each_customer_hears_the_depots_wording_in_their_language_and_the_attempt_keeps_it() {
    let confirm = Behaviour::Answer { key: Key::new('1') };
    let h =
        Harness::start(fast_clock(), HashMap::from([(phone(0), confirm.clone()), (phone(1), confirm)])).await;
    let mut d = h.depot(AttemptPolicy::default(), 0, 0).await;
    let path = format!("/v1/depots/{}/templates", d.id);

    let (s, builtin) = h.get(&path, &d.supervisor_token).await;
    assert_eq!(s, StatusCode::OK, "{builtin}");
    assert_eq!(serde_json::from_value::<TemplateSet>(builtin).expect("a set"), TemplateSet::default());
    let (s, saved) = h.put(&path, &d.supervisor_token, json!(our_wording())).await;
    assert_eq!(s, StatusCode::OK, "{saved}");

    let (mut ru, mut en) = (stop_json(0, 0), stop_json(1, 1));
    ru["customer_name"] = json!("Виктория");
    ru["order_numbers"] = json!(["16273"]);
    ru["amount"] = json!({"minor": 150_000, "currency": "RUB"});
    en["customer_name"] = json!("Victoria");
    en["language"] = json!("en");
    let route = h.import(&d, &json!({ "stops": [ru, en] })).await;
    d.stop_ids = (0..2).map(|i| route["stops"][i]["stop"]["id"].as_i64().expect("id")).collect();

    let mut ws = h.ws(&d.courier_token, None).await;
    for (stop, key) in [(d.stop_ids[0], "tap-russian"), (d.stop_ids[1], "tap-english")] {
        let (s, body) = h.request_call(&d, stop, key).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let mut finished = 0;
    ws.until(|e| {
        finished += usize::from(matches!(e.kind, EventKind::CallFinished { .. }));
        finished == 2
    })
    .await;

    let (_, calls) = h.get("/v1/calls", &d.supervisor_token).await;
    let calls: Vec<CallDetail> = serde_json::from_value(calls["calls"].clone()).expect("calls");
    let heard = |stop: i64| -> String {
        let call = calls.iter().find(|c| c.call.stop_id.0 == stop).expect("call for the stop");
        call.attempts[0].script.clone().expect("the attempt keeps its script")
    };
    // Stop 0's window is 10:00-11:00 UTC: 13:00-14:00 in Moscow.
    assert_eq!(
        heard(d.stop_ids[0]),
        "Здравствуйте, Виктория! North: заказ 16273 на 1500 RUB, 13:00–14:00, курьер Ivan. 1, 2, 3 or 0."
    );
    let en = heard(d.stop_ids[1]);
    assert!(
        en.starts_with("Hello Victoria! North: order A-1 for 1250.50 RUB, 14:00-15:00, courier Ivan."),
        "{en}"
    );
}

#[tokio::test]
async fn a_bad_template_is_refused_when_saved_with_the_part_at_fault() {
    let h = Harness::start(fast_clock(), HashMap::new()).await;
    let d = h.depot(AttemptPolicy::default(), 0, 0).await;
    let path = format!("/v1/depots/{}/templates", d.id);

    let mut typo = our_wording();
    if let Some(t) = typo.templates.get_mut(&Language::En) {
        t.message = "Hello {customer}!".into();
    }
    let (s, body) = h.put(&path, &d.supervisor_token, json!(typo)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("validation_failed"), Some("templates.en.message"))
    );
    assert!(body["message"].as_str().is_some_and(|m| m.contains("{customer}")), "{body}");

    let untranslated = TemplateSet { default_language: Language::En, templates: BTreeMap::new() };
    let (s, body) = h.put(&path, &d.supervisor_token, json!(untranslated)).await;
    assert_eq!((s, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("default_language")), "{body}");

    // Nothing was saved; a courier may not even try; another depot is unknown.
    let (_, kept) = h.get(&path, &d.supervisor_token).await;
    assert_eq!(serde_json::from_value::<TemplateSet>(kept).expect("a set"), TemplateSet::default());
    let (s, body) = h.put(&path, &d.courier_token, json!("junk")).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let other = h.depot(AttemptPolicy::default(), 0, 0).await;
    let (s, body) = h.get(&path, &other.supervisor_token).await;
    assert_eq!((s, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("depot_not_found")));
}
