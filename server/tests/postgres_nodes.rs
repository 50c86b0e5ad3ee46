//! Nodes on one PostgreSQL database (issue #14). Until due work is claimed
//! under leases, a second node must refuse to start rather than place the
//! same due calls as the first; a node that dies frees the database.

mod common;

use callahead_server::RunningServer;
use common::*;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_database_refuses_and_starts_once_the_first_is_gone() {
    if !callahead_server::store::scratch::suites_on_postgres() {
        eprintln!("skipped on SQLite: one file is one node");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let first =
        RunningServer::start(config(&dir, fast_clock(), HashMap::new())).await.expect("the first node");
    let second = RunningServer::start(config(&dir, fast_clock(), HashMap::new())).await;
    let err = match second {
        Ok(_) => panic!("a second node started on the same database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("another callahead-server node"), "{err}");
    // A crash frees it: PostgreSQL drops a dead connection's lock.
    first.kill();
    let again = RunningServer::start(config(&dir, fast_clock(), HashMap::new())).await;
    assert!(again.is_ok(), "{:?}", again.err().map(|e| e.to_string()));
}
