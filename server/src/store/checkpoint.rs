//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs
//! inside whichever COMMIT crosses the threshold, so under a burst the
//! writer — and every push waiting for its commit — stalled while a
//! thousand pages were copied and fsynced (the loadgen's bimodal p99). The
//! writer turns it off; this thread checkpoints on its own connection.
//! PASSIVE never blocks the writer or readers: it copies what it can and
//! the next pass does the rest.
//!
//! A pass from this thread never finishes the log while the writer commits
//! every millisecond or two: SQLite starts the WAL over only when, at the
//! writer's next BEGIN, every frame has been copied, and by then the writer
//! has appended more. So once a pass has copied nearly everything, this
//! thread asks the writer to run one more PASSIVE itself between two groups
//! (a catch-up: only the frames of the last pass's few milliseconds are
//! left, so it costs about a millisecond) and the next BEGIN restarts the
//! log. Before this the WAL grew to its cap every second or two under a
//! 1,000-courier burst and each truncation held the writer for 10–50 ms —
//! the whole tail of the push latency.
//!
//! Under overload even that may not catch up (readers replaying to lagging
//! sockets keep old snapshots alive), and the WAL once grew to 3 GB beside
//! a 250 MB database. Past [`WAL_CAP_FRAMES`] the writer, between two
//! groups, checkpoints the whole log and truncates it (`TRUNCATE`), waiting
//! for readers: from another connection such a checkpoint would wait for a
//! gap between the writer's commits that never comes. It holds the writes
//! back, which is the point: the disk is not infinite.

use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often the WAL is folded back into the database file.
const EVERY: Duration = Duration::from_millis(250);
/// Frames (4 KiB pages) in the WAL beyond which a checkpoint insists: 64 MiB.
pub const WAL_CAP_FRAMES: i64 = 16 * 1024;
/// The size the WAL file is cut back to after it was reset.
pub const WAL_SIZE_LIMIT: i64 = WAL_CAP_FRAMES * 4096;
/// A log this long is worth starting over (4 MiB)...
const CATCH_UP_FROM_FRAMES: i64 = 1024;
/// ...when no more than this many frames are left to copy, so the writer's
/// own pass stays short.
const CATCH_UP_LEFT_FRAMES: i64 = 512;

/// What this thread asks of the writer, for its next gap between groups.
#[derive(Debug, Default)]
pub struct WalNeed(AtomicU8);

const NOTHING: u8 = 0;
const CATCH_UP: u8 = 1;
const TRUNCATE: u8 = 2;

impl WalNeed {
    fn ask(&self, need: u8) -> bool {
        self.0.fetch_max(need, Ordering::SeqCst) < need
    }

    /// True while a truncation is asked for and not yet done.
    pub fn over_cap(&self) -> bool {
        self.0.load(Ordering::SeqCst) == TRUNCATE
    }
}

/// Run by the writer between groups: whatever the checkpoint thread asked.
pub fn between_groups(conn: &Connection, need: &WalNeed) {
    match need.0.swap(NOTHING, Ordering::SeqCst) {
        CATCH_UP => {
            let started = std::time::Instant::now();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "the writer's catch-up checkpoint failed");
            }
            crate::metrics::wal_checkpoint("catch_up", started.elapsed());
        }
        TRUNCATE => {
            let started = std::time::Instant::now();
            match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
                Ok(0) => tracing::info!("the WAL was checkpointed whole and truncated"),
                // Busy: a reader outlived the timeout; the flag rises again.
                Ok(_) => tracing::warn!("the WAL is over its cap and could not be truncated yet"),
                Err(e) => tracing::warn!(error = %e, "WAL truncate checkpoint failed"),
            }
            crate::metrics::wal_checkpoint("truncate", started.elapsed());
        }
        _ => {}
    }
}

/// Keeps checkpointing until `stop`'s sender is dropped, then does a last
/// one so a clean shutdown leaves a short WAL.
pub fn spawn(
    path: &Path,
    stop: mpsc::Receiver<()>,
    need: Arc<WalNeed>,
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
            // (busy, frames in the log, frames copied so far)
            let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
            match pass {
                Ok((frames, _)) if frames > cap_frames => {
                    if need.ask(TRUNCATE) {
                        tracing::info!(
                            frames,
                            "the WAL is over its cap; the writer will checkpoint it whole"
                        );
                    }
                }
                Ok((frames, copied))
                    if frames >= CATCH_UP_FROM_FRAMES && frames - copied <= CATCH_UP_LEFT_FRAMES =>
                {
                    need.ask(CATCH_UP);
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
    use std::sync::atomic::AtomicBool;

    /// A database set up as the writer's: WAL, no automatic checkpoints.
    fn writer_db() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let conn = Connection::open(&path).expect("open");
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).expect("wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0).expect("no auto checkpoint");
        conn.execute_batch("CREATE TABLE t (x BLOB)").expect("table");
        (dir, path, conn)
    }

    #[test]
    fn a_wal_over_its_cap_is_truncated_though_readers_always_hold_a_snapshot() {
        let (dir, path, conn) = writer_db();
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
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
        let need = Arc::new(WalNeed::default());
        let handle = spawn(&path, rx, need.clone(), CAP).expect("thread");
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
        while !need.over_cap() {
            assert!(std::time::Instant::now() < deadline, "the flag never rose");
            std::thread::sleep(Duration::from_millis(10));
        }
        let wal = dir.path().join("db-wal");
        assert!(std::fs::metadata(&wal).expect("wal").len() > (CAP * 4096) as u64);
        // What the writer does between two groups: the log is emptied.
        between_groups(&conn, &need);
        assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0, "truncated, readers or not");
        assert!(!need.over_cap(), "the flag is down until the next time");
        write(1);
        running.store(false, Ordering::SeqCst);
        readers.join().expect("readers");
        drop(tx);
        handle.join().expect("joined");
    }

    #[test]
    fn a_writer_that_never_pauses_still_starts_the_log_over() {
        let (dir, path, conn) = writer_db();
        // Short reads all along, as sockets replaying their history.
        let running = Arc::new(AtomicBool::new(true));
        let reader = {
            let (path, running) = (path.clone(), running.clone());
            std::thread::spawn(move || {
                let r = Connection::open(&path).expect("reader");
                while running.load(Ordering::SeqCst) {
                    r.execute_batch("BEGIN; SELECT length(x) FROM t WHERE rowid = 1; COMMIT;").expect("read");
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let (tx, rx) = mpsc::channel();
        let need = Arc::new(WalNeed::default());
        let handle = spawn(&path, rx, need.clone(), WAL_CAP_FRAMES).expect("thread");
        // Commits back to back, as the writer under a burst: the thread's
        // own passes never see a moment with nothing left to copy. The
        // writing goes on until the writer has started the log over three
        // times at the thread's request, however slowly a loaded machine
        // schedules the thread (bounded), and past the first cap's worth.
        const PAGES_PER_COMMIT: u64 = 8;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let (mut commits, mut catch_ups) = (0u64, 0);
        let cap_pages = WAL_CAP_FRAMES as u64;
        let mut over_cap = false;
        while catch_ups < 3 || commits * PAGES_PER_COMMIT < cap_pages {
            assert!(
                std::time::Instant::now() < deadline,
                "bounded: {catch_ups} catch-ups in {commits} commits"
            );
            conn.execute_batch("BEGIN").expect("begin");
            for _ in 0..PAGES_PER_COMMIT {
                conn.execute("INSERT INTO t VALUES (zeroblob(4000))", []).expect("insert");
            }
            conn.execute_batch("COMMIT").expect("commit");
            commits += 1;
            let asked = need.0.load(Ordering::SeqCst);
            over_cap |= asked == TRUNCATE;
            between_groups(&conn, &need);
            catch_ups += usize::from(asked == CATCH_UP);
        }
        running.store(false, Ordering::SeqCst);
        reader.join().expect("reader");
        drop(tx);
        handle.join().expect("joined");
        // More than the cap was written, yet the log never reached it: it
        // started over (the WAL file keeps its high-water mark).
        let written = commits * PAGES_PER_COMMIT * 4096;
        let wal = std::fs::metadata(dir.path().join("db-wal")).expect("wal").len();
        assert!(!over_cap, "the writer never had to truncate");
        assert!(
            wal * 2 < cap_pages * 4096 && written >= cap_pages * 4096,
            "the log started over: the WAL is {wal} bytes after {commits} commits ({written} bytes written)"
        );
    }

    fn wal_frames(conn: &Connection) -> i64 {
        // (busy, frames in the WAL, frames checkpointed); PASSIVE with
        // nothing to do reports the current log size.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).expect("checkpoint")
    }

    #[test]
    fn the_writer_never_checkpoints_and_this_thread_does() {
        let (dir, path, conn) = writer_db();
        conn.execute_batch("BEGIN").expect("begin");
        for _ in 0..300 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", []).expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
        let wal = dir.path().join("db-wal");
        assert!(std::fs::metadata(&wal).expect("a WAL").len() > 1_000_000, "300 pages are in the WAL");
        let (tx, rx) = mpsc::channel();
        let handle = spawn(&path, rx, Arc::new(WalNeed::default()), WAL_CAP_FRAMES).expect("thread");
        drop(tx); // the last pass runs and the thread ends
        handle.join().expect("joined");
        // Everything was copied back: a new writer starts the log over.
        conn.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        assert!(wal_frames(&conn) < 10, "the WAL was reset after the checkpoint");
    }
}
