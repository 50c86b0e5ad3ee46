//! The server's database is restored from a backup behind a courier's back:
//! the phone's cursor is now beyond the log's head. The server refuses the
//! cursor, and the client core starts over from a fresh route by itself, so
//! the events of the restored log reach it instead of being skipped as
//! "already seen".

use callahead_core::call::Key;
use callahead_core::{CallStatus, StopId};
use callahead_e2e::server::{phone, quick_policy, stops, today, Depot, TestServer};
use callahead_e2e::Phone;
use callahead_server::providers::simulator::{Behaviour, SimConfig};
use std::path::Path;

fn answering(n: usize) -> SimConfig {
    let mut sim = SimConfig { ring_secs: (2, 2), talk_secs: (5, 5), ..SimConfig::default() };
    for i in 0..n {
        sim.overrides.insert(phone(7, i), Behaviour::Answer { key: Key::new('1') });
    }
    sim
}

/// The database file and its WAL, copied while the server is stopped.
fn copy_db(from: &Path, to: &Path) {
    callahead_server::store::scratch::copy_database(from, to).expect("copy the database");
}

async fn call_and_finish(phone: &Phone, stop: StopId) {
    phone.client().request_calls(&[stop]).expect("tap stored");
    phone
        .rec
        .wait_until("the call to finish", |s| {
            s.stops
                .get(&stop)
                .and_then(|st| st.call.as_ref())
                .is_some_and(|c| c.status == CallStatus::Finished)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restore_the_phone_resyncs_and_hears_the_new_log() {
    let mut ts = TestServer::start(200.0, answering(3)).await;
    let depot = Depot::create(&ts.api, "North", 1, quick_policy()).await;
    ts.api
        .import_route(&depot.integrator, depot.courier_id(0), today(), stops(7, 3, ts.now()))
        .await
        .expect("route imported");
    let phone = Phone::new(ts.addr, depot.courier_token(0)).await;
    let ids: Vec<StopId> =
        phone.client().sync_route(today()).await.expect("synced").iter().map(|s| s.stop.id).collect();
    phone.wait_online().await;
    call_and_finish(&phone, ids[0]).await;

    // The backup: the log as it was after the first call.
    ts.shutdown().await;
    let backup = callahead_server::store::scratch::database_in(ts.dir.path(), "backup.db");
    copy_db(&ts.db_path(), &backup);
    ts.restart().await;
    phone.proxy.set_target(ts.addr);
    phone.proxy.cut();
    phone.wait_online().await;
    call_and_finish(&phone, ids[1]).await;

    // Restored: the second call never happened as far as the server knows.
    ts.shutdown().await;
    copy_db(&backup, &ts.db_path());
    ts.restart().await;
    phone.proxy.set_target(ts.addr);
    phone.proxy.cut();
    let resynced = phone
        .rec
        .wait_until("the phone to take the server's word for stop 2", |s| {
            s.stops.get(&ids[1]).is_some_and(|st| st.call.is_none())
        })
        .await;
    assert!(resynced.stops[&ids[0]].call.as_ref().is_some_and(|c| c.status == CallStatus::Finished));
    phone.wait_online().await;

    // The restored log goes on, and the phone hears it.
    call_and_finish(&phone, ids[2]).await;
    call_and_finish(&phone, ids[1]).await;
}
