//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs
//! inside whichever COMMIT crosses the threshold, so under a burst the
//! writer — and every push waiting for its commit — stalled while a
//! thousand pages were copied and fsynced (the loadgen's bimodal p99). The
//! writer turns it off; this thread checkpoints on its own connection.
//! PASSIVE never blocks the writer or readers: it copies what it can and
//! the next pass does the rest.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// How often the WAL is folded back into the database file.
const EVERY: Duration = Duration::from_millis(250);

/// Keeps checkpointing until `stop`'s sender is dropped, then does a last
/// one so a clean shutdown leaves a short WAL.
pub fn spawn(path: &Path, stop: mpsc::Receiver<()>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = path.to_owned();
    std::thread::Builder::new().name("callahead-checkpoint".into()).spawn(move || {
        let conn =
            match Connection::open(&path).and_then(|c| c.busy_timeout(Duration::from_secs(5)).map(|()| c)) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "checkpointer cannot open the database; the WAL will grow");
                    return;
                }
            };
        loop {
            let last = matches!(stop.recv_timeout(EVERY), Err(mpsc::RecvTimeoutError::Disconnected) | Ok(()));
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
            }
            if last {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(conn: &Connection) -> i64 {
        // (busy, frames in the WAL, frames checkpointed); PASSIVE with
        // nothing to do reports the current log size.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).expect("checkpoint")
    }

    #[test]
    fn the_writer_never_checkpoints_and_this_thread_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let conn = Connection::open(&path).expect("open");
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).expect("wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0).expect("no auto checkpoint");
        conn.execute_batch("CREATE TABLE t (x BLOB)").expect("table");
        conn.execute_batch("BEGIN").expect("begin");
        for _ in 0..300 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", []).expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
        let wal = dir.path().join("db-wal");
        assert!(std::fs::metadata(&wal).expect("a WAL").len() > 1_000_000, "300 pages are in the WAL");
        let (tx, rx) = mpsc::channel();
        let handle = spawn(&path, rx).expect("thread");
        drop(tx); // the last pass runs and the thread ends
        handle.join().expect("joined");
        // Everything was copied back: a new writer starts the log over.
        conn.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        assert!(wal_frames(&conn) < 10, "the WAL was reset after the checkpoint");
    }
}
