//! A courier app whose access token expires (issue #12, ADR 0007): the
//! client core refreshes by itself, keeps the newest pair across an app
//! restart (a spent refresh token replayed would revoke the sign-in), and
//! its websocket reconnects with the new token.

use callahead_core::client::{Client, ClientConfig, ConnectionState};
use callahead_core::clock::{Clock, ManualClock};
use callahead_core::wire::{paths, CreatedCourier};
use callahead_e2e::server::{morning, today, ADMIN};
use callahead_e2e::{within, Recorder};
use callahead_server::{RunningServer, ServerConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn client(dir: &std::path::Path, base: &str, c: &CreatedCourier, rec: Arc<Recorder>) -> Client {
    let mut config = ClientConfig::new(dir.join("courier.db"), base, c.token.clone());
    config.refresh_token = c.refresh_token.clone();
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(200);
    Client::open(config, rec).expect("client opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refreshes_its_expired_token_by_itself_and_keeps_the_newest_pair_across_a_restart() {
    callahead_e2e::init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let wall = ManualClock::new(morning());
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        callahead_server::store::scratch::database_in(dir.path(), "s.db"),
    );
    config.admin_token = Some(ADMIN.into());
    config.wall_clock = Arc::new(wall.clone());
    let server = RunningServer::start(config).await.expect("server");
    let base = server.base_url();
    let http = reqwest::Client::new();
    let depot: serde_json::Value = http
        .post(format!("{base}{}", paths::DEPOTS))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "N", "time_zone": "Europe/Moscow"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let created: CreatedCourier = http
        .post(format!("{base}/v1/depots/{}/couriers", depot["id"]))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Ivan", "phone": "+79990000001"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(created.refresh_token.is_some());

    let rec = Recorder::new();
    let app = client(dir.path(), &base, &created, rec.clone());
    within("the first sync", app.sync_route(today())).await.expect("sync");

    // Past the access token's hour: the next request is refused as
    // expired, the client refreshes and sends it again.
    wall.advance(chrono::Duration::minutes(61));
    within("a sync after expiry", app.sync_route(today())).await.expect("refreshed by itself");
    let old =
        http.get(format!("{base}{}?date={}", paths::MY_ROUTE, today())).bearer_auth(&created.token).send();
    assert_eq!(old.await.expect("send").status(), 401, "the configured token has expired");
    app.close();

    // The app restarts with the sign-in it was configured with: it uses the
    // stored newer pair, and after another hour refreshes again (replaying
    // the configured refresh token would have revoked everything).
    wall.advance(chrono::Duration::minutes(61));
    let rec = Recorder::new();
    let app = client(dir.path(), &base, &created, rec.clone());
    within("a sync after the restart", app.sync_route(today())).await.expect("still signed in");
    within(
        "the websocket online with the new token",
        rec.wait_until("online", |s| s.connection.last() == Some(&ConnectionState::Online)),
    )
    .await;
    let tokens: serde_json::Value = http
        .get(format!("{base}{}", paths::TOKENS))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let revoked =
        tokens["tokens"].as_array().expect("tokens").iter().filter(|t| t["revoked"] == true).count();
    assert_eq!(revoked, 0, "no reuse was detected: {tokens}");
    assert!(wall.now() > morning());
    app.close();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refreshes_before_a_known_expiry_without_being_refused_first() {
    callahead_e2e::init_tracing();
    let dir = tempfile::tempdir().expect("dir");
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        callahead_server::store::scratch::database_in(dir.path(), "s.db"),
    );
    config.admin_token = Some(ADMIN.into());
    let server = RunningServer::start(config).await.expect("server");
    let base = server.base_url();
    let http = reqwest::Client::new();
    let depot: serde_json::Value = http
        .post(format!("{base}{}", paths::DEPOTS))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "N", "time_zone": "Europe/Moscow"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let created: CreatedCourier = http
        .post(format!("{base}/v1/depots/{}/couriers", depot["id"]))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Ivan", "phone": "+79990000001"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    // The app knows its token expires in half a minute: inside the margin.
    let mut config = ClientConfig::new(dir.path().join("courier.db"), base.clone(), created.token.clone());
    config.refresh_token = created.refresh_token.clone();
    config.token_expires_at = Some(chrono::Utc::now() + chrono::Duration::seconds(30));
    let app = Client::open(config, Recorder::new()).expect("client");
    within("a sync", app.sync_route(today())).await.expect("sync");
    let tokens: serde_json::Value = http
        .get(format!("{base}{}", paths::TOKENS))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let courier: Vec<&serde_json::Value> =
        tokens["tokens"].as_array().expect("tokens").iter().filter(|t| t["role"] == "courier").collect();
    assert_eq!(courier.len(), 4, "one refresh: two pairs of the sign-in ({tokens})");
    let first = courier.iter().find(|t| t["kind"] == "access" && t["last_used_at"].is_null());
    assert!(first.is_some(), "the first access token was never presented: refreshed before: {tokens}");
    app.close();
    server.shutdown().await;
}
