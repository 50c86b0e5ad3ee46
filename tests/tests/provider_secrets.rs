//! Secrets never reach the logs: a morning on each real provider with
//! every Callahead log line captured at trace level (this test binary owns
//! the global subscriber), then the capture is searched for each secret the
//! server held: Twilio's auth token and API key secret, the Voximplant
//! private key, the JWTs made from it and every attempt's callback secret.

use callahead_core::call::Key;
use callahead_e2e::providers::{Kind, Rig};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot};
use callahead_e2e::twilio_double::{API_KEY_SECRET, AUTH_TOKEN};
use callahead_e2e::voximplant_double::service_account;
use callahead_e2e::Phone;
use callahead_server::providers::lines::LineLimits;
use callahead_server::providers::simulator::Behaviour;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

async fn a_morning(kind: Kind) -> Vec<String> {
    let rig = Rig::start(kind, 200.0).await;
    rig.script(&phone(61, 0), Behaviour::Answer { key: Key::new('2') });
    rig.script(&phone(61, 1), Behaviour::NoAnswer);
    let ts = rig.server(LineLimits { calls_per_second: Some(20.0), max_concurrent: Some(2) }).await;
    tracing::info!(config = ?ts.configure.as_ref().map(|_| "set"), "a morning");
    let depot = Depot::create(&ts.api, "Secrets", 1, quick_policy()).await;
    let courier = Phone::new(ts.addr, depot.courier_token(0)).await;
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(61, 3, ts.now()))
        .await
        .expect("route");
    let ids: Vec<_> =
        courier.client().sync_route(today()).await.expect("sync").iter().map(|s| s.stop.id).collect();
    courier.wait_online().await;
    courier.client().request_calls(&ids).expect("tap");
    courier.wait_all_terminal(&ids).await;
    rig.wait_for_sms(&phone(61, 0)).await;
    match kind {
        Kind::Twilio => Vec::new(),
        Kind::Voximplant => rig
            .voximplant()
            .sessions()
            .iter()
            .filter_map(|s| s.data["secret"].as_str().map(str::to_owned))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_ever_logged() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("callahead_server=trace,tower_http=trace,info"))
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();
    let mut secrets = vec![AUTH_TOKEN.to_owned(), API_KEY_SECRET.to_owned()];
    secrets.extend(a_morning(Kind::Twilio).await);
    secrets.extend(a_morning(Kind::Voximplant).await);
    let key = service_account();
    // A line from the middle of the PEM body stands for the whole key.
    secrets.push(key.private_key.lines().nth(5).expect("a PEM line").to_owned());
    assert!(secrets.len() > 4, "the Voximplant attempts had secrets");

    let logged = String::from_utf8_lossy(&capture.0.lock().expect("capture")).into_owned();
    assert!(logged.contains("provider"), "the capture has the providers' logs: {} bytes", logged.len());
    for secret in &secrets {
        assert!(!logged.contains(secret.as_str()), "a secret reached the logs: {secret}");
    }
    // A JWT (header.payload.signature, base64url JSON) never appears either.
    assert!(!logged.contains("eyJ"), "a JWT reached the logs");
    assert!(!logged.contains("/r/"), "nor a reschedule link");
}
