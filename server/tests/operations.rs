//! What an operator relies on (issue #12): SIGTERM stops the real binary
//! gracefully under concurrent writers and websocket clients (websockets
//! told "going away", every acknowledged write durable across the restart,
//! exit 0 within a bound), `backup` copies a database the server is writing, and
//! logs written to a file carry no colour codes.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "operations-test-admin-token-0123456789";
const WAIT: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_callahead-server");

struct Child_ {
    child: Child,
    base: String,
}

/// The server binary on a free port; its log goes to `log`.
fn spawn(db: &std::path::Path, log: &std::path::Path, format: &str) -> Child_ {
    let log_file = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(BIN)
        .args(["--log-format", format, "serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("CALLAHEAD_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("spawn the server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("the server prints its address").expect("line");
        if let Some(url) = line.strip_prefix("callahead-server listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Child_ { child, base }
}

fn terminate(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(ok.success());
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = http.post(format!("{base}{path}")).bearer_auth(ADMIN).json(&body).send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Concurrent writers and websocket clients while the SIGTERM lands.
const WRITERS: usize = 4;
const SOCKETS: usize = 3;
/// Acknowledged writes each writer has before the signal: the signal lands
/// mid-stream, not before the load began.
const BEFORE_SIGNAL: usize = 20;
/// The server's own bounds (sockets 5 s, requests 10 s, writer and
/// checkpoints 5 s each) and some slack: it must be gone by then.
const EXIT_BOUND: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_closes_websockets_as_going_away_keeps_every_acknowledged_write_and_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    let db = callahead_server::store::scratch::database_in(dir.path(), "s.db");
    let log = dir.path().join("server.log");
    let server = spawn(&db, &log, "json");
    let http = reqwest::Client::new();
    let ws_base = server.base.replacen("http", "ws", 1);

    // Websocket clients, each reading until the server closes it.
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/v1/ws?access_token={ADMIN}"))
            .await
            .expect("websocket");
        sockets.push(tokio::spawn(async move {
            let mut frames = 0;
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Close(frame)) => return (frame.map(|f| u16::from(f.code)), frames),
                    Ok(_) => frames += 1,
                    Err(_) => break,
                }
            }
            (None, frames)
        }));
    }

    // Writers: depots created as fast as the server takes them, until it
    // stops taking them. Each reports its acknowledged ids and whatever
    // answer stopped it.
    let (progress, mut progressed) = tokio::sync::watch::channel(());
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (http, base, progress, acked) =
            (http.clone(), server.base.clone(), progress.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..100_000 {
                let body = json!({"name": format!("depot {w}-{i}"), "time_zone": "Europe/Moscow"});
                match http.post(format!("{base}/v1/depots")).bearer_auth(ADMIN).json(&body).send().await {
                    Ok(resp) if resp.status() == 201 => {
                        let v: Value = resp.json().await.unwrap_or(Value::Null);
                        acknowledged.push(v["id"].as_i64().expect("an acknowledged depot has an id"));
                        if acknowledged.len() == BEFORE_SIGNAL {
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let _ = progress.send(());
                        }
                    }
                    Ok(resp) => return (acknowledged, Some(resp.status().as_u16())),
                    Err(_) => return (acknowledged, None),
                }
            }
            (acknowledged, None)
        }));
    }
    drop(progress);
    tokio::time::timeout(WAIT, async {
        while acked.load(std::sync::atomic::Ordering::SeqCst) < WRITERS {
            progressed.changed().await.expect("the writers run");
        }
    })
    .await
    .expect("every writer had its first writes acknowledged");
    terminate(&server.child);

    // Every websocket is told the server goes away: close code 1001.
    for socket in sockets {
        let (code, _) = tokio::time::timeout(WAIT, socket).await.expect("closed in time").expect("join");
        assert_eq!(code, Some(1001), "going away");
    }
    let mut child = server.child;
    let status = tokio::time::timeout(EXIT_BOUND, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("the server exits within its bound")
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let mut acknowledged = Vec::new();
    for writer in writers {
        let (ids, stopped_by) = writer.await.expect("writer");
        // A write the server refuses while stopping says so; it is not
        // acknowledged and the client retries elsewhere.
        assert!(stopped_by.is_none() || stopped_by == Some(503), "a writer stopped by HTTP {stopped_by:?}");
        acknowledged.extend(ids);
    }
    assert!(acknowledged.len() >= WRITERS * BEFORE_SIGNAL, "the load ran");
    eprintln!(
        "SIGTERM under load: {} writes acknowledged by {WRITERS} writers, {SOCKETS} sockets",
        acknowledged.len()
    );

    // Every acknowledged write is there after a restart on the same database.
    let restarted = spawn(&db, &dir.path().join("restarted.log"), "json");
    let resp =
        http.get(format!("{}/v1/depots", restarted.base)).bearer_auth(ADMIN).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let listed: Value = resp.json().await.expect("json");
    let stored: std::collections::HashSet<i64> =
        listed["depots"].as_array().expect("depots").iter().filter_map(|d| d["id"].as_i64()).collect();
    let lost: Vec<&i64> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but gone after the restart: {lost:?}");
    terminate(&restarted.child);
    let mut child = restarted.child;
    assert!(tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait").success());

    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().any(|l| l.contains("stopping")), "{text}");
    for line in lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok_and(|v| v["level"].is_string()), "not a JSON log line: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_writes_restores_and_passes_its_integrity_check() {
    if callahead_server::store::scratch::suites_on_postgres() {
        // `backup` copies a SQLite file; PostgreSQL is backed up with its own
        // tools (docs/deploy.md).
        eprintln!("skipped on PostgreSQL: `backup` is the SQLite engine's");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("s.db");
    let log = dir.path().join("server.log");
    let mut server = spawn(&db, &log, "text");
    let http = reqwest::Client::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (http, base, stop) = (http.clone(), server.base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (s, _) =
                    post(&http, &base, "/v1/depots", json!({"name": format!("d{n}"), "time_zone": "UTC"}))
                        .await;
                assert_eq!(s, 201);
                n += 1;
            }
            n
        })
    };
    // At least some writes before and during the backup.
    let (s, _) = post(&http, &server.base, "/v1/depots", json!({"name": "first", "time_zone": "UTC"})).await;
    assert_eq!(s, 201);
    let copy = dir.path().join("copy.db");
    let out = tokio::task::spawn_blocking({
        let (db, copy) = (db.clone(), copy.clone());
        move || Command::new(BIN).args(["backup", "--db"]).arg(&db).arg("--to").arg(&copy).output()
    })
    .await
    .expect("join")
    .expect("backup runs");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.expect("writer");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity ok"));
    assert!(written > 0);

    // Restore: the copy opens as a server database.
    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    let depots: i64 = conn.query_row("SELECT COUNT(*) FROM depots", [], |r| r.get(0)).expect("count");
    assert!(depots >= 1, "the copy holds what was written before it");
    terminate(&server.child);
    assert!(server.child.wait().expect("wait").success());
    let restored = callahead_server::store::Store::open(&copy, callahead_server::hub::Hub::new());
    assert!(restored.is_ok(), "a server starts on the restored copy");
    // A second backup to the same file is refused, never overwrites.
    let again =
        Command::new(BIN).args(["backup", "--db"]).arg(&db).arg("--to").arg(&copy).output().expect("runs");
    assert!(!again.status.success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("INFO") && !text.contains('\u{1b}'),
        "text logs, no colour codes in a file: {text}"
    );
}
