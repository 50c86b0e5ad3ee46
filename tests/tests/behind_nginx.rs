//! The product behind the reverse proxy docs/deploy.md tells operators to
//! use: nginx running docs/deploy/nginx.conf itself, in front of a real
//! server. A courier's app syncs, taps and follows its calls live through
//! it (the websocket upgrade passes, pushes are not buffered), and with
//! `--trusted-proxy` one client's failed logins block that client only, not
//! everyone behind the proxy.

use callahead_core::CallStatus;
use callahead_e2e::nginx::{self, Nginx};
use callahead_e2e::server::{quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::Phone;
use callahead_server::providers::simulator::SimConfig;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_courier_works_through_nginx_and_limits_are_per_client() {
    let Some(bin) = nginx::bin() else {
        // scripts/test installs nginx; a developer machine may lack it.
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let configure: callahead_e2e::server::Configure = Arc::new(|c| {
        c.connections.trusted_proxies = Arc::from(["127.0.0.1".parse().expect("ip")]);
    });
    let ts = TestServer::start_configured(
        Arc::new(callahead_core::clock::ScaledClock::new(callahead_e2e::server::morning(), 60.0)),
        SimConfig::default(),
        Default::default(),
        Some(configure),
    )
    .await;
    let proxy = Nginx::start(&bin, &[ts.addr]).await;
    let depot = Depot::create(&ts.api, "Behind nginx", 1, quick_policy()).await;
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(35, 3, ts.now()))
        .await
        .expect("import");

    // The courier's app talks to nginx only.
    let phone = Phone::new(proxy.addr, depot.courier_token(0)).await;
    let route = phone.client().sync_route(today()).await.expect("sync through nginx");
    let ids: Vec<_> = route.iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;
    phone.client().request_calls(&ids).expect("tap");
    let seen = phone.wait_all_terminal(&ids).await;
    assert!(ids
        .iter()
        .all(|id| seen.stops[id].call.as_ref().is_some_and(|c| c.status == CallStatus::Finished)));
    let pushed = seen.events.iter().filter(|e| e.seq > 0).count();
    assert!(pushed >= ids.len() * 4, "every status came over the proxied websocket: {pushed} events");

    // One client guesses tokens through the proxy until it is blocked; a
    // courier behind the same proxy is not.
    let http = reqwest::Client::new();
    let me = format!("http://{}{}?date={}", proxy.addr, callahead_core::wire::paths::MY_ROUTE, today());
    let mut blocked = false;
    for _ in 0..40 {
        let r = http
            .get(&me)
            .bearer_auth("guess")
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .expect("req");
        if r.status() == 429 {
            blocked = true;
            break;
        }
        assert_eq!(r.status(), 401);
    }
    assert!(blocked, "the guessing client is rate limited");
    let courier = http.get(&me).bearer_auth(depot.courier_token(0)).send().await.expect("req");
    assert_eq!(courier.status(), 200, "another client behind the same proxy still gets in");
}
