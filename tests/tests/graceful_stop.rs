//! SIGTERM while a courier's app is connected (issue #12): the real server
//! binary closes the websockets as "going away" (1001) and exits 0; the
//! phone's client core, meanwhile holding taps in its outbox, resumes on
//! the restarted server and ends up with every event of its scope exactly
//! once, in order, with nothing of the log skipped.

use callahead_core::client::ConnectionState;
use callahead_core::StopId;
use callahead_e2e::server::{morning, quick_policy, stops, today, Depot, ADMIN};
use callahead_e2e::{within, Api, Phone, ServerProcess};
use chrono::Duration;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// The server's own stop bounds (docs/security.md) and some slack.
const EXIT_BOUND: std::time::Duration = std::time::Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_told_going_away_resumes_gap_free_on_the_restarted_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--clock-start".to_owned(), morning().to_rfc3339(), "--time-scale".into(), "20".into()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::new(dir.path(), ADMIN, &args);
    server.start().await;
    let api = Api::new(server.url());
    let depot = Depot::create(&api, "North", 1, quick_policy()).await;
    api.import_route(
        &depot.integrator,
        depot.courier_id(0),
        today(),
        stops(1, 4, morning() + Duration::hours(2)),
    )
    .await
    .expect("route imported");
    let phone = Phone::new(server.addr(), depot.courier_token(0)).await;
    let ids: Vec<StopId> =
        phone.client().sync_route(today()).await.expect("route synced").iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;
    phone.client().request_calls(&ids[..2]).expect("taps stored");
    phone.rec.wait_until("the first calls' events", |s| s.events.len() >= 2).await;

    // A raw socket beside the phone reads the close code itself (the core
    // does not report it).
    let ws_base = server.url().replacen("http", "ws", 1);
    let (mut raw, _) = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws?access_token={ADMIN}"))
        .await
        .expect("websocket");
    let status = server.terminate(EXIT_BOUND).await;
    assert!(status.success(), "exit status {status:?}; log:\n{}", server.server_log());
    let code = within("the close frame", async {
        while let Some(msg) = raw.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await;
    assert_eq!(code, Some(1001), "going away");
    phone
        .rec
        .wait_until("the phone to notice", |s| s.connection.last() != Some(&ConnectionState::Online))
        .await;

    // Taps while the server is down wait in the phone's outbox.
    phone.client().request_calls(&ids[2..]).expect("taps stored offline");
    let addr = server.start().await;
    phone.proxy.set_target(addr);
    phone.wait_all_terminal(&ids).await;

    let api = Api::new(server.url());
    let log = api.all_events(ADMIN).await;
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the log is gap-free");
    phone.assert_heard_its_scope(&log, depot.courier_id(0), "the courier, across the stop").await;
    assert_eq!(
        api.calls(ADMIN, None, Some(today())).await.expect("calls").calls.len(),
        ids.len(),
        "one call per tap, the offline ones included"
    );
}
