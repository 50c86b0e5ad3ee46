//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs
//! inside whichever COMMIT crosses the threshold, so under a burst the
//! writer — and every push waiting for its commit — stalled while a
//! thousand pages were copied and fsynced (the loadgen's bimodal p99). The
//! writer turns it off; this thread checkpoints on its own connection.
//! PASSIVE never blocks the writer or readers: it copies what it can and
//! the next pass does the rest.
//!
//! Under overload PASSIVE never catches up (readers replaying to lagging
//! sockets keep old snapshots alive, and the writer never pauses), and the
//! WAL once grew to 3 GB beside a 250 MB database. Past [`WAL_CAP_FRAMES`]
//! this thread raises a flag, and the writer itself, between two groups,
//! checkpoints the whole log and truncates it (`TRUNCATE`): from another
//! connection such a checkpoint would wait for a gap between the writer's
//! commits that never comes. It briefly holds the writes back, which is the
//! point: the disk is not infinite.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often the WAL is folded back into the database file.
const EVERY: Duration = Duration::from_millis(250);
/// Frames (4 KiB pages) in the WAL beyond which a checkpoint insists: 64 MiB.
pub const WAL_CAP_FRAMES: i64 = 16 * 1024;
/// The size the WAL file is cut back to after it was reset.
pub const WAL_SIZE_LIMIT: i64 = WAL_CAP_FRAMES * 4096;

/// Run by the writer between groups when the flag is up: the whole log into
/// the database, the file truncated. Readers get the busy timeout to finish.
pub fn truncate_if_over_cap(conn: &Connection, over_cap: &AtomicBool) {
    if !over_cap.swap(false, Ordering::SeqCst) {
        return;
    }
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => tracing::info!("the WAL was checkpointed whole and truncated"),
        // Busy: a reader outlived the timeout; the flag rises again.
        Ok(_) => tracing::warn!("the WAL is over its cap and could not be truncated yet"),
        Err(e) => tracing::warn!(error = %e, "WAL truncate checkpoint failed"),
    }
}

/// Keeps checkpointing until `stop`'s sender is dropped, then does a last
/// one so a clean shutdown leaves a short WAL.
pub fn spawn(
    path: &Path,
    stop: mpsc::Receiver<()>,
    over_cap: Arc<AtomicBool>,
    cap_frames: i64,
) -> std::io::Result<std::thread::JoinHandle<()>> {
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
            match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                Ok(frames) if frames > cap_frames => {
                    if !over_cap.swap(true, Ordering::SeqCst) {
                        tracing::info!(
                            frames,
                            "the WAL is over its cap; the writer will checkpoint it whole"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
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

    #[test]
    fn a_wal_over_its_cap_is_truncated_though_readers_always_hold_a_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let conn = Connection::open(&path).expect("open");
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).expect("wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0).expect("no auto checkpoint");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        conn.execute_batch("CREATE TABLE t (x BLOB)").expect("table");
        // Two readers whose snapshots overlap, so there is never a moment
        // without one: a PASSIVE checkpoint alone never resets this WAL.
        let running = Arc::new(AtomicBool::new(true));
        let readers = {
            let (path, running) = (path.clone(), running.clone());
            std::thread::spawn(move || {
                let a = Connection::open(&path).expect("reader a");
                let b = Connection::open(&path).expect("reader b");
                a.execute_batch("BEGIN; SELECT COUNT(*) FROM t;").expect("snapshot");
                while running.load(Ordering::SeqCst) {
                    for (hold, next) in [(&a, &b), (&b, &a)] {
                        next.execute_batch("BEGIN; SELECT COUNT(*) FROM t;").expect("snapshot");
                        hold.execute_batch("COMMIT").expect("release");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                let _ = a.execute_batch("COMMIT");
                let _ = b.execute_batch("COMMIT");
            })
        };
        const CAP: i64 = 256;
        let (tx, rx) = mpsc::channel();
        let over_cap = Arc::new(AtomicBool::new(false));
        let handle = spawn(&path, rx, over_cap.clone(), CAP).expect("thread");
        let write = |pages: i64| {
            conn.execute_batch("BEGIN").expect("begin");
            for _ in 0..pages {
                conn.execute("INSERT INTO t VALUES (zeroblob(4000))", []).expect("insert");
            }
            conn.execute_batch("COMMIT").expect("commit");
        };
        write(2 * CAP);
        // The checkpoint thread notices and raises the flag (bounded wait).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !over_cap.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the flag never rose");
            std::thread::sleep(Duration::from_millis(10));
        }
        let wal = dir.path().join("db-wal");
        assert!(std::fs::metadata(&wal).expect("wal").len() > (CAP * 4096) as u64);
        // What the writer does between two groups: the log is emptied.
        truncate_if_over_cap(&conn, &over_cap);
        assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0, "truncated, readers or not");
        assert!(!over_cap.load(Ordering::SeqCst), "the flag is down until the next time");
        write(1);
        running.store(false, Ordering::SeqCst);
        readers.join().expect("readers");
        drop(tx);
        handle.join().expect("joined");
    }

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
        let handle = spawn(&path, rx, Arc::new(AtomicBool::new(false)), WAL_CAP_FRAMES).expect("thread");
        drop(tx); // the last pass runs and the thread ends
        handle.join().expect("joined");
        // Everything was copied back: a new writer starts the log over.
        conn.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        assert!(wal_frames(&conn) < 10, "the WAL was reset after the checkpoint");
    }
}
