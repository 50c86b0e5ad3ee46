//! Leases on both engines (docs/adr/0011): disjoint claims under a race,
//! takeover with a new epoch, the old owner fenced, lapsed leases swept,
//! and SQLite's sole node writing nothing.

use super::leases::{self, Kind, Lease, LEASE_TTL_MS, STUCK_AFTER_MS};
use super::testing::{off_runtime, stores, TestStore};
use super::{accounts, calls, Db, StoreError, WriteTx};
use callahead_core::clock::{SharedClock, SystemClock};
use callahead_core::policy::AttemptPolicy;
use callahead_core::CallId;
use chrono::{TimeZone, Utc};
use rusqlite::params;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A connection of its own to the test's database, as a node's claims use
/// (in a mutex: the blocking threads the tests run it on borrow it).
fn connect(t: &TestStore) -> Mutex<Db> {
    Mutex::new(open(t))
}

fn open(t: &TestStore) -> Db {
    match t.backend {
        "sqlite" => {
            let conn = rusqlite::Connection::open(&t.db).expect("open");
            super::configure(&conn).expect("configure");
            Db::sqlite_db(conn)
        }
        _ => off_runtime(|| super::testing::PgTestDb::connect(&t.db.to_string_lossy())),
    }
}

fn lease_count(db: &Db) -> i64 {
    db.one("SELECT COUNT(*) FROM leases WHERE owner IS NOT NULL", params![], |r| r.get(0)).expect("count")
}

/// Runs the fence for `lease` at `now` inside a real write job.
async fn fenced(t: &TestStore, lease: &Lease, now: i64) -> Result<(), StoreError> {
    let lease = lease.clone();
    t.store
        .writer
        .write(move |tx: &mut WriteTx<'_>| {
            if leases::holds_at(tx, &lease, now)? {
                Ok(())
            } else {
                Err(StoreError::LeaseLost(format!("{}", lease.item)))
            }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_claim_disjoint_items() {
    for t in stores("two_nodes_racing_claim_disjoint_items") {
        let b = t.backend;
        let (a, z) = (connect(&t), connect(&t));
        let items: Vec<i64> = (1..=120).collect();
        let (mine_a, mine_z) = off_runtime(|| {
            leases::register(&a.lock().expect("a"), "node-a", 0).expect("a");
            leases::register(&z.lock().expect("z"), "node-z", 0).expect("z");
            // Both claim every item, in batches, at the same time.
            let run = |db: &Mutex<Db>, node: &'static str| {
                let db = db.lock().expect("db");
                let mut got = Vec::new();
                for batch in items.chunks(8) {
                    got.extend(
                        leases::claim(&db, node, Kind::Call, batch, 1_000, LEASE_TTL_MS).expect("claim"),
                    );
                }
                got
            };
            std::thread::scope(|s| {
                let (run, a, z) = (&run, &a, &z);
                let ha = s.spawn(move || run(a, "node-a"));
                let hz = s.spawn(move || run(z, "node-z"));
                (ha.join().expect("a"), hz.join().expect("z"))
            })
        });
        let set_a: HashSet<i64> = mine_a.iter().map(|l| l.item).collect();
        let set_z: HashSet<i64> = mine_z.iter().map(|l| l.item).collect();
        assert!(set_a.is_disjoint(&set_z), "{b}: an item claimed by both nodes");
        assert_eq!(set_a.len() + set_z.len(), items.len(), "{b}: every item claimed once");
        assert!(mine_a.iter().chain(&mine_z).all(|l| l.epoch == 1), "{b}: a first claim is epoch 1");
        // The table agrees with what each was told.
        let owners: Vec<(i64, String)> = off_runtime(|| {
            a.lock().expect("a").all(
                "SELECT item, owner FROM leases WHERE kind = 'call' ORDER BY item",
                params![],
                |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)),
            )
        })
        .expect("owners");
        for (item, owner) in owners {
            let expected = if set_a.contains(&item) { "node-a" } else { "node-z" };
            assert_eq!(owner, expected, "{b}: item {item}");
        }
        // A claim of what the other holds, live, gets nothing.
        let again = off_runtime(|| {
            leases::claim(&z.lock().expect("z"), "node-z", Kind::Call, &items, 2_000, LEASE_TTL_MS)
        })
        .expect("claim");
        assert_eq!(again.iter().map(|l| l.item).collect::<HashSet<_>>(), set_z, "{b}");
        assert!(again.iter().all(|l| l.epoch == 1), "{b}: re-claiming one's own live lease keeps its epoch");
        off_runtime(|| drop((a, z)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_with_a_new_epoch_and_the_old_owner_is_fenced() {
    for t in stores("an_expired_lease_is_taken_over") {
        let b = t.backend;
        let (a, z) = (connect(&t), connect(&t));
        let ttl = LEASE_TTL_MS;
        let first = off_runtime(|| {
            let (a, z) = (a.lock().expect("a"), z.lock().expect("z"));
            leases::register(&a, "node-a", 0)?;
            leases::register(&z, "node-z", 0)?;
            leases::claim(&a, "node-a", Kind::Webhook, &[7], 0, ttl)
        })
        .expect("claim");
        let [first] = <[Lease; 1]>::try_from(first).expect("one lease");
        assert_eq!((first.epoch, first.owner()), (1, Some("node-a")), "{b}");
        fenced(&t, &first, 1_000).await.unwrap_or_else(|e| panic!("{b}: the holder passes the fence: {e}"));

        // Live and renewed: nobody else gets it.
        let (none, renewed, still_none) = off_runtime(|| {
            let (a, z) = (a.lock().expect("a"), z.lock().expect("z"));
            let none = leases::claim(&z, "node-z", Kind::Webhook, &[7], 1_000, ttl)?;
            let renewed = leases::renew(&a, "node-a", ttl - 1, ttl)?;
            let still_none = leases::claim(&z, "node-z", Kind::Webhook, &[7], ttl + 1, ttl)?;
            Ok::<_, StoreError>((none, renewed, still_none))
        })
        .expect("live");
        assert!(none.is_empty() && still_none.is_empty(), "{b}: a live lease is not taken");
        assert_eq!(renewed, vec![("webhook".to_owned(), 7)], "{b}");

        // Node a goes silent; its lease lapses at 2·ttl − 1 and node z takes it.
        let lapsed = 2 * ttl;
        let taken =
            off_runtime(|| leases::claim(&z.lock().expect("z"), "node-z", Kind::Webhook, &[7], lapsed, ttl))
                .expect("take");
        let [taken] = <[Lease; 1]>::try_from(taken).expect("taken over");
        assert_eq!((taken.epoch, taken.owner()), (2, Some("node-z")), "{b}: a takeover bumps the epoch");

        // The old owner's fenced write is refused, even at a time its own
        // lease would still have been live; the new owner's passes.
        let refused = fenced(&t, &first, lapsed).await;
        assert!(matches!(refused, Err(StoreError::LeaseLost(_))), "{b}: {refused:?}");
        let refused_early = fenced(&t, &first, 1_000).await;
        assert!(
            matches!(refused_early, Err(StoreError::LeaseLost(_))),
            "{b}: the epoch fences, not only time"
        );
        fenced(&t, &taken, lapsed + 1).await.unwrap_or_else(|e| panic!("{b}: {e}"));
        // Nor can it renew its way back in, and its next claim gets nothing.
        let (renewed, reclaim) = off_runtime(|| {
            let a = a.lock().expect("a");
            Ok::<_, StoreError>((
                leases::renew(&a, "node-a", lapsed + 1, ttl)?,
                leases::claim(&a, "node-a", Kind::Webhook, &[7], lapsed + 1, ttl)?,
            ))
        })
        .expect("old owner");
        assert!(renewed.is_empty(), "{b}: a lapsed lease is not renewed");
        assert!(reclaim.is_empty(), "{b}");

        // Even unclaimed, a lapsed lease fences its holder.
        let lapsed_own = fenced(&t, &taken, lapsed + ttl).await;
        assert!(matches!(lapsed_own, Err(StoreError::LeaseLost(_))), "{b}: {lapsed_own:?}");
        off_runtime(|| drop((a, z)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapsed_leases_are_stuck_until_swept_and_orphaned_attempts_are_found() {
    for t in stores("lapsed_leases_are_stuck_until_swept") {
        let b = t.backend;
        // A call with attempt 1 open, and one with its attempt ended.
        let (open_call, ended_call) = t
            .store
            .writer
            .write(|tx| -> Result<(CallId, CallId), StoreError> {
                let d = accounts::insert_depot(tx, "North", "UTC", &AttemptPolicy::default(), Utc.timestamp_opt(0, 0).unwrap())?;
                let c = accounts::insert_courier(tx, d, "Ivan", "+79990000001", Utc.timestamp_opt(0, 0).unwrap())?;
                let mut out = Vec::new();
                for k in ["k-open", "k-ended"] {
                    let stop: i64 = tx.db().one(
                        "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name,
                           phone, time_zone, address, window_start, window_end, order_numbers)
                         VALUES (?1, ?2, '2027-01-15', 0, ?3, 'Anna', '+79160000001', 'UTC', 'Lenina 1', 0, 3600000, '[]')
                         RETURNING id",
                        params![c.0, d.0, k],
                        |r| r.get(0),
                    )?;
                    let call: i64 = tx.db().one(
                        "INSERT INTO calls (courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
                           retry_spacing_secs, ring_timeout_secs, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, 'scheduled', 3, 600, 30, 0, 0) RETURNING id",
                        params![c.0, d.0, stop, k],
                        |r| r.get(0),
                    )?;
                    calls::start_attempt(tx, CallId(call), 1, "hello", Utc.timestamp_opt(1, 0).unwrap())?;
                    out.push(CallId(call));
                }
                calls::end_attempt(
                    tx,
                    out[1],
                    1,
                    callahead_core::call::AttemptResult::Completed,
                    None,
                    Utc.timestamp_opt(2, 0).unwrap(),
                )?;
                tx.exec("UPDATE calls SET status = 'finished', outcome = 'confirmed' WHERE id = ?1", params![out[1].0])?;
                Ok((out[0], out[1]))
            })
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        let a = connect(&t);
        let ttl = LEASE_TTL_MS;
        let (orphans_before, orphans_held, stuck_early, stuck_late, swept, orphans_after, stuck_after) =
            off_runtime(|| {
                let a = a.lock().expect("a");
                // Before anyone claims it, the open attempt belongs to nobody.
                let before = leases::orphaned_attempts(&a, 0)?;
                leases::register(&a, "node-a", 0)?;
                leases::claim(&a, "node-a", Kind::Call, &[open_call.0, ended_call.0], 0, ttl)?;
                leases::claim(&a, "node-a", Kind::Message, &[99], 0, ttl)?;
                let held = leases::orphaned_attempts(&a, 1_000)?;
                // Node a dies here.
                let stuck_early = leases::stuck(&a, ttl + 1)?;
                let late = ttl + STUCK_AFTER_MS;
                let stuck_late = leases::stuck(&a, late)?;
                let swept = leases::release_lapsed(&a, late)?;
                let after = leases::orphaned_attempts(&a, late)?;
                let stuck_after = leases::stuck(&a, late)?;
                Ok::<_, StoreError>((before, held, stuck_early, stuck_late, swept, after, stuck_after))
            })
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        assert_eq!(orphans_before, vec![(open_call, 1)], "{b}: an open attempt nobody holds");
        assert!(orphans_held.is_empty(), "{b}: a held call is nobody's to recover");
        assert!(stuck_early.is_empty(), "{b}: just expired is not yet stuck");
        let kinds: Vec<(String, i64)> = stuck_late.iter().map(|s| (s.kind.clone(), s.item)).collect();
        let mut expected = vec![
            ("call".to_owned(), open_call.0),
            ("call".to_owned(), ended_call.0),
            ("message".to_owned(), 99),
        ];
        expected.sort();
        assert_eq!(kinds, expected, "{b}");
        assert_eq!(swept, 2, "{b}: the message and the call without an open attempt are released");
        assert_eq!(orphans_after, vec![(open_call, 1)], "{b}: the open attempt is for a taker to recover");
        assert_eq!(stuck_after.len(), 1, "{b}: only the open attempt's lease waits for its taker");
        // Ending the attempt (on any node) ends its lease.
        t.store
            .writer
            .write(move |tx| leases::finished(tx, Kind::Call, open_call.0))
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        let held = off_runtime(|| lease_count(&a.lock().expect("a")));
        let expected_held = if b == "sqlite" { 1 } else { 0 };
        assert_eq!(
            held, expected_held,
            "{b}: (SQLite's sole node never writes leases, so `finished` skips it)"
        );
        off_runtime(|| drop(a));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_free_and_write_nothing_on_sqlite() {
    for t in stores("claims_are_free_on_sqlite") {
        let b = t.backend;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = &t.store;
        let claims = off_runtime(|| store.claims(clock.clone(), None)).expect("claims");
        assert_eq!(claims.is_shared(), b == "postgres", "{b}");
        let got = claims.claim(Kind::Call, vec![3, 1, 2]).await.expect("claim");
        assert_eq!(got.iter().map(|l| l.item).collect::<HashSet<_>>(), HashSet::from([1, 2, 3]), "{b}");
        assert!(got.iter().all(|l| claims.may_act(l)), "{b}: a fresh claim may act");
        let c = claims.clone();
        let lease = got[0].clone();
        let l2 = lease.clone();
        store.writer.write(move |tx| c.fence(tx, &l2)).await.unwrap_or_else(|e| panic!("{b}: {e}"));
        claims.heartbeat().await.expect("heartbeat");
        let db = connect(&t);
        let (held, nodes) = off_runtime(|| {
            let db = db.lock().expect("db");
            (lease_count(&db), leases::nodes(&db).expect("nodes"))
        });
        if b == "sqlite" {
            assert_eq!((held, nodes.len()), (0, 0), "SQLite's sole node writes no lease and no node");
            assert_eq!(lease.epoch, 0);
        } else {
            assert_eq!((held, nodes.len()), (3, 1), "{b}");
            assert_eq!(claims.health().await.expect("health"), (0, 1), "{b}");
            claims.leave().await.expect("leave");
            let (held, nodes) = off_runtime(|| {
                let db = db.lock().expect("db");
                (lease_count(&db), leases::nodes(&db).expect("nodes"))
            });
            assert_eq!((held, nodes.len()), (0, 0), "{b}: a node that leaves frees its leases at once");
        }
        off_runtime(|| drop((db, claims)));
    }
}
