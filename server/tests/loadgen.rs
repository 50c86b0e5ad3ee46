//! The load generator checks what it measures (README, Benchmark): a small
//! burst run by the real `callahead-loadgen` against real server processes
//! ends with every call finished and every courier's socket holding its log
//! once, none lost — on one node, and with `--nodes 2` on one PostgreSQL
//! database (couriers spread over both, issue #14 part 7). Its figures are
//! speeds and are not asserted here.

use callahead_server::store::scratch::{database_in, ScratchDb};
use std::process::{Command, Output};

/// 20 couriers in two depots (so both nodes get a supervisor), 2 calls each,
/// tapped within a second.
const SMALL_BURST: &[&str] = &[
    "--couriers",
    "20",
    "--couriers-per-depot",
    "10",
    "--calls-per-courier",
    "2",
    "--ramp-secs",
    "1",
    "--timeout-secs",
    "300",
];

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callahead-loadgen"))
        .args(args)
        .args(["--server-bin", env!("CARGO_BIN_EXE_callahead-server")])
        .output()
        .expect("callahead-loadgen runs")
}

/// The JSON report, the last line on stdout, of a run that must succeed.
fn report(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "callahead-loadgen failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("report {last:?}: {e}\n{stderr}"))
}

fn assert_nothing_lost(r: &serde_json::Value, nodes: u64) {
    assert_eq!(r["nodes"], nodes, "{r}");
    assert_eq!(r["calls"], 40, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicated"], 0, "{r}");
    assert_eq!(r["unfinished_calls"], 0, "{r}");
    assert!(r["events"].as_u64().unwrap_or(0) > 0, "call-phase events reached the sockets: {r}");
}

#[test]
fn a_small_burst_on_one_node_finishes_every_call_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    // SQLite, or PostgreSQL when the whole suite runs there.
    let db = database_in(dir.path(), "load.db");
    let db = db.to_str().expect("utf-8 path");
    let r = report(&loadgen(&[SMALL_BURST, &["--db", db]].concat()));
    assert_nothing_lost(&r, 1);
}

#[test]
fn a_small_burst_over_two_nodes_on_one_postgres_database_loses_nothing() {
    let Some(pg) = ScratchDb::create("loadgen_two_nodes") else { return };
    let r = report(&loadgen(&[SMALL_BURST, &["--nodes", "2", "--db", pg.url()]].concat()));
    assert_nothing_lost(&r, 2);
}

#[test]
fn several_nodes_need_a_postgres_database() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("load.db");
    for db in [None, file.to_str()] {
        let mut args = vec!["--couriers", "1", "--nodes", "2"];
        if let Some(db) = db {
            args.extend(["--db", db]);
        }
        let out = loadgen(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--nodes 2 on {db:?} was accepted: {stderr}");
        assert!(stderr.contains("--nodes 2 needs --db postgres://"), "{stderr}");
        assert!(!file.exists(), "no server was started on the file");
    }
}
