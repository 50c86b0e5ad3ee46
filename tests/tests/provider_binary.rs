//! The real `callahead-server serve` binary on a real provider: started as
//! a child process the way docs/providers.md tells an operator to
//! (`--telephony`/`--messaging twilio|voximplant`, `--public-url`, the
//! credentials in the environment under the platform's names), with only
//! the API base pointed at the provider's double on loopback. A confirmed
//! call and a reschedule with its SMS go through the double, and every
//! callback the double sends reaches the server.

use callahead_core::call::Key;
use callahead_core::clock::ScaledClock;
use callahead_core::template::Language;
use callahead_core::wire::EventKind;
use callahead_core::Outcome;
use callahead_e2e::providers::{Kind, Rig};
use callahead_e2e::server::{morning, phone, quick_policy, stops, today, Depot, ADMIN};
use callahead_e2e::twilio_double::{self, Pace};
use callahead_e2e::voximplant_double;
use callahead_e2e::{Api, Phone, ServerProcess};
use callahead_server::providers::simulator::Behaviour;
use std::sync::Arc;

/// Domain seconds per real second, as in the in-process stories; the
/// provider settings are exactly an operator's.
const SPEED: f64 = 200.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_telephony_twilio_places_calls_through_the_double() {
    serve_places_calls(Kind::Twilio).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_telephony_voximplant_places_calls_through_the_double() {
    serve_places_calls(Kind::Voximplant).await
}

async fn serve_places_calls(kind: Kind) {
    let rig = Rig::start_on(kind, Arc::new(ScaledClock::new(morning(), SPEED)), Pace::default()).await;
    rig.script(&phone(71, 1), Behaviour::Answer { key: Key::new('2') });
    let dir = tempfile::tempdir().expect("temp dir");
    let (flags, env) = rig.serve_flags_and_env();
    let mut args =
        vec!["--clock-start".to_owned(), morning().to_rfc3339(), "--time-scale".into(), SPEED.to_string()];
    args.extend(flags);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::new(dir.path(), ADMIN, &args);
    server.env = env;
    let addr = server.start().await;
    rig.public.set_target(addr);

    let api = Api::new(server.url());
    let depot = Depot::create(&api, "Binary", 1, quick_policy()).await;
    let courier = Phone::new(addr, depot.courier_token(0)).await;
    let mut route = stops(71, 2, morning());
    for s in &mut route {
        s.language = Some(Language::En);
    }
    api.import_route(&depot.integrator, depot.courier_id(0), today(), route).await.expect("route imported");
    let ids: Vec<_> =
        courier.client().sync_route(today()).await.expect("route synced").iter().map(|s| s.stop.id).collect();
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");

    let seen = courier.wait_all_terminal(&ids).await;
    let outcomes: Vec<_> =
        ids.iter().map(|id| seen.stops[id].call.as_ref().map(|c| (c.outcome, c.attempts_made))).collect();
    assert_eq!(
        outcomes,
        vec![Some((Some(Outcome::Confirmed), 1)), Some((Some(Outcome::RescheduleRequested), 1))],
        "the log of the server:\n{}",
        server.server_log()
    );
    // The reschedule text went out through the provider's messaging API,
    // with its link on the public URL, and its receipt came back.
    let text = rig.wait_for_sms(&phone(71, 1)).await;
    assert!(text.contains(&format!("{}/r/", rig.public_url())), "{text}");
    courier
        .rec
        .wait_until("the delivery receipt", |s| {
            s.events.iter().any(|e| matches!(e.kind, EventKind::MessageDelivered { .. }))
        })
        .await;

    // One provider call per stop, each known to the server by the
    // provider's own reference.
    let references: Vec<String> = match kind {
        Kind::Twilio => rig.twilio().calls().into_iter().map(|c| c.sid).collect(),
        Kind::Voximplant => rig.voximplant().sessions().into_iter().map(|s| s.id).collect(),
    };
    assert_eq!(references.len(), 2, "one call per stop at the provider");
    let calls = api.calls(&depot.supervisor, None, Some(today())).await.expect("calls").calls;
    for c in &calls {
        let reference = c.attempts[0].provider_ref.clone().expect("the provider's reference");
        assert!(references.contains(&reference), "{reference} is the provider's: {references:?}");
    }
    assert!(rig.callbacks_sent() > 0, "the double called the server back");
    assert_eq!(
        rig.callbacks_not_accepted(),
        Vec::<String>::new(),
        "every callback the double sent reached the server"
    );
    assert_eq!(rig.violations(), Vec::<String>::new(), "every request is one the provider documents");

    // What the operator's environment held never reaches the log.
    let log = server.server_log();
    let secrets = match kind {
        Kind::Twilio => vec![twilio_double::AUTH_TOKEN.to_owned(), twilio_double::API_KEY_SECRET.to_owned()],
        Kind::Voximplant => {
            vec![voximplant_double::service_account()
                .private_key
                .lines()
                .nth(5)
                .expect("a PEM line")
                .to_owned()]
        }
    };
    for secret in secrets {
        assert!(!log.contains(&secret), "a secret is in the server's log");
    }
    server.kill().await;
}
