//! The ported aggregates on every backend (docs/adr/0009): each test runs
//! on SQLite and, when `CALLAHEAD_TEST_PG` is set, on PostgreSQL, through
//! the real writer and read pool.

use super::testing::{at, off_runtime, read, stores, write, PgTestDb, TestStore};
use super::tokens::{self, Kind, NewToken};
use super::{accounts, audit, queries, NewEvent, Store, StoreError};
use crate::hub::{Hub, Scope};
use callahead_core::policy::AttemptPolicy;
use callahead_core::template::TemplateSet;
use callahead_core::wire::{Event, EventKind, PickupPoint};
use callahead_core::{CourierId, DepotId, StopId};
use rusqlite::params;
use std::sync::Arc;

async fn depot_and_courier(t: &TestStore) -> (DepotId, CourierId) {
    write(t, |tx| {
        let d = accounts::insert_depot(tx, "North", "Europe/Moscow", &AttemptPolicy::default(), at(0))?;
        Ok((d, accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(0))?))
    })
    .await
}

#[tokio::test]
async fn depots_and_people_round_trip() {
    for t in stores("depots_and_people_round_trip") {
        let b = t.backend;
        let mut policy = AttemptPolicy {
            max_attempts: 4,
            retry_spacing_secs: 700,
            ring_timeout_secs: 25,
            ..Default::default()
        };
        policy.stop_at_window_start = false;
        policy.machine_detection = true;
        policy.min_heard_secs = 7;
        policy.calling_hours.weekends = None;
        let p = policy.clone();
        let (depot, courier, supervisor) = write(&t, move |tx| {
            let d = accounts::insert_depot(tx, "North", "Europe/Moscow", &p, at(0))?;
            let other = accounts::insert_depot(tx, "South", "UTC", &AttemptPolicy::default(), at(0))?;
            assert!(other.0 > d.0, "ids grow");
            Ok((
                d,
                accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(1))?,
                accounts::insert_supervisor(tx, d, "Olga", at(2))?,
            ))
        })
        .await;
        let (stored, c, s_depot, all, one, couriers) = read(&t, move |db| {
            Ok((
                queries::depot(db, depot)?,
                queries::courier(db, courier)?,
                queries::supervisor_depot(db, supervisor)?,
                queries::depots(db, None)?,
                queries::depots(db, Some(depot))?,
                queries::depot_couriers(db, depot)?,
            ))
        })
        .await;
        let stored = stored.unwrap_or_else(|| panic!("{b}: the depot"));
        assert_eq!(stored.name, "North", "{b}");
        assert_eq!(stored.policy, policy, "{b}: every policy field, flags and calling hours included");
        assert_eq!(c.map(|c| (c.depot_id, c.name)), Some((depot, "Ivan".to_owned())), "{b}");
        assert_eq!(s_depot, Some(depot), "{b}");
        assert_eq!(all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["North", "South"], "{b}");
        assert_eq!(one.len(), 1, "{b}");
        assert_eq!(couriers.len(), 1, "{b}");

        let points = vec![PickupPoint {
            id: "p1".into(),
            name: "Locker".into(),
            address: "Lenina 1".into(),
            hours: None,
        }];
        let (pp, missing) = (points.clone(), DepotId(depot.0 + 1000));
        let saved = write(&t, move |tx| {
            Ok((
                accounts::set_templates(tx, depot, &TemplateSet::default())?,
                accounts::set_pickup_points(tx, depot, &pp)?,
                accounts::set_templates(tx, missing, &TemplateSet::default())?,
            ))
        })
        .await;
        assert_eq!(saved, (true, true, false), "{b}: no such depot is `false`");
        let (templates, read_points) =
            read(&t, move |db| Ok((queries::templates(db, depot)?, queries::pickup_points(db, depot)?)))
                .await;
        assert_eq!(templates, Some(TemplateSet::default()), "{b}");
        assert_eq!(read_points, points, "{b}");
    }
}

#[tokio::test]
async fn the_engines_refusals_are_classified_alike() {
    for t in stores("the_engines_refusals_are_classified_alike") {
        let b = t.backend;
        let err = t
            .store
            .writer
            .write(|tx| accounts::insert_courier(tx, DepotId(999), "Nobody", "+79990000009", at(0)))
            .await
            .expect_err("no such depot");
        assert!(matches!(err, StoreError::MissingReference(_)), "{b}: {err}");
        // The failed job rolled back alone: the next one commits.
        let (depot, _) = depot_and_courier(&t).await;
        let token = |hash: &str| NewToken {
            hash: hash.to_owned(),
            role: "admin",
            kind: Kind::Access,
            subject: None,
            depot: None,
            name: "",
            family: None,
            expires_at: None,
        };
        let err = t
            .store
            .writer
            .write(move |tx| {
                tokens::insert(tx, &token("h1"), at(0))?;
                tx.exec(
                    "INSERT INTO tokens (hash, role, name, created_at) VALUES ('h1', 'admin', '', 0)",
                    rusqlite::params![],
                )
            })
            .await
            .expect_err("a duplicate hash");
        assert!(matches!(err, StoreError::Duplicate(_)), "{b}: {err}");
        let none = read(&t, |db| tokens::by_hash(db, "h1")).await;
        assert!(none.is_none(), "{b}: the job rolled back whole");
        assert!(read(&t, move |db| queries::depot(db, depot)).await.is_some(), "{b}");
    }
}

fn new_token<'a>(hash: &str, kind: Kind, family: Option<&'a str>, depot: Option<DepotId>) -> NewToken<'a> {
    NewToken {
        hash: hash.to_owned(),
        role: if kind == Kind::Bootstrap { "admin" } else { "courier" },
        kind,
        subject: (kind != Kind::Bootstrap).then_some(1),
        depot,
        name: "t",
        family,
        expires_at: Some(at(3600)),
    }
}

#[tokio::test]
async fn tokens_live_revoke_and_rotate() {
    for t in stores("tokens_live_revoke_and_rotate") {
        let b = t.backend;
        let (depot, courier) = depot_and_courier(&t).await;
        let (access, refresh, again, admin) = write(&t, move |tx| {
            let access = tokens::insert(tx, &new_token("a1", Kind::Access, Some("f1"), Some(depot)), at(0))?;
            let refresh =
                tokens::insert(tx, &new_token("r1", Kind::Refresh, Some("f1"), Some(depot)), at(0))?;
            let again = tokens::insert(tx, &new_token("a1", Kind::Access, Some("f1"), Some(depot)), at(5))?;
            let admin = tokens::insert(tx, &new_token("b1", Kind::Bootstrap, None, None), at(0))?;
            Ok((access, refresh, again, admin))
        })
        .await;
        assert_eq!(again, access, "{b}: the same hash is the same token");
        let (row, by_id, listed, in_depot) = read(&t, move |db| {
            Ok((
                tokens::by_hash(db, "a1")?,
                tokens::by_id(db, refresh)?,
                tokens::list(db, None, 10)?,
                tokens::list(db, Some(depot), 1)?,
            ))
        })
        .await;
        let row = row.unwrap_or_else(|| panic!("{b}: stored"));
        assert_eq!(
            (row.id, row.kind, row.family.as_deref(), row.revoked),
            (access, Kind::Access, Some("f1"), false),
            "{b}"
        );
        assert_eq!((row.created_at, row.expires_at, row.rotated_at), (at(0), Some(at(3600)), None), "{b}");
        assert_eq!(by_id.map(|r| r.kind), Some(Kind::Refresh), "{b}");
        assert_eq!(
            listed.iter().map(|r| r.id).collect::<Vec<_>>(),
            [admin, refresh, access],
            "{b}: newest first"
        );
        assert_eq!(in_depot.iter().map(|r| r.id).collect::<Vec<_>>(), [refresh], "{b}: the depot's, limited");
        let auth = read(&t, |db| queries::token(db, "a1")).await.unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            (auth.role.as_str(), auth.subject_id, auth.depot_id, auth.revoked),
            ("courier", Some(1), Some(depot.0), false),
            "{b}"
        );

        let (first, second, touched, expired) = write(&t, move |tx| {
            let first = tokens::mark_rotated(tx, refresh, at(10))?;
            let second = tokens::mark_rotated(tx, refresh, at(11))?;
            tokens::touch(tx, access, at(12))?;
            Ok((first, second, (), tokens::expire(tx, "a1", at(20))?))
        })
        .await;
        assert_eq!(
            (first, second, touched, expired),
            (true, false, (), true),
            "{b}: a refresh token is exchanged once"
        );
        let row = read(&t, |db| tokens::by_hash(db, "a1")).await.unwrap_or_else(|| panic!("{b}"));
        assert_eq!((row.last_used_at, row.expires_at), (Some(at(12)), Some(at(20))), "{b}");

        let (revoked, none_left) = write(&t, move |tx| {
            Ok((tokens::revoke(tx, access, at(30))?, tokens::revoke_family(tx, "f1", at(31))?))
        })
        .await;
        let mut revoked = revoked;
        revoked.sort();
        assert_eq!(revoked, vec![access, refresh], "{b}: the whole family, once");
        assert!(none_left.is_empty(), "{b}");
        let (gone, by_subject) = write(&t, move |tx| {
            let extra = tokens::insert(tx, &new_token("a2", Kind::Access, None, Some(depot)), at(40))?;
            Ok((extra, tokens::revoke_subject(tx, "courier", 1, at(41))?))
        })
        .await;
        assert_eq!(by_subject, vec![gone], "{b}: only the live ones");

        // The bootstrap token: replaced when the variable changes, valid
        // again when it is set back.
        let n = write(&t, |tx| tokens::revoke_bootstrap_except(tx, Some("b2"), at(50))).await;
        assert_eq!(n, 1, "{b}");
        assert!(read(&t, |db| tokens::by_hash(db, "b1")).await.is_some_and(|r| r.revoked), "{b}");
        write(&t, |tx| tokens::reinstate_bootstrap(tx, "b1")).await;
        assert!(read(&t, |db| tokens::by_hash(db, "b1")).await.is_some_and(|r| !r.revoked), "{b}");
        assert_eq!(write(&t, |tx| tokens::revoke_bootstrap_except(tx, Some("b1"), at(51))).await, 0, "{b}");
        assert_eq!(write(&t, |tx| tokens::revoke_bootstrap_except(tx, None, at(52))).await, 1, "{b}");

        // Deactivation.
        let c = courier.0;
        assert_eq!(read(&t, move |db| tokens::deactivated(db, "courier", c)).await, None, "{b}");
        assert!(write(&t, move |tx| tokens::deactivate(tx, "courier", c, at(60))).await, "{b}");
        assert!(
            write(&t, move |tx| tokens::deactivate(tx, "courier", c, at(61))).await,
            "{b}: again, a no-op"
        );
        assert_eq!(
            read(&t, move |db| tokens::deactivated(db, "courier", c)).await,
            Some(at(60)),
            "{b}: the first time stays"
        );
        assert!(!write(&t, |tx| tokens::deactivate(tx, "supervisor", 999, at(60))).await, "{b}");
        assert_eq!(
            read(&t, move |db| tokens::subject_depot(db, "courier", c)).await,
            Some((depot, "Ivan".to_owned())),
            "{b}"
        );
    }
}

#[tokio::test]
async fn apps_online_are_kept_per_courier() {
    for t in stores("apps_online_are_kept_per_courier") {
        let b = t.backend;
        let (d, c) = depot_and_courier(&t).await;
        let other = write(&t, move |tx| accounts::insert_courier(tx, d, "Oleg", "+79990000002", at(0))).await;
        write(&t, move |tx| {
            queries::set_app_online(tx, c, d, true)?;
            queries::set_app_online(tx, c, d, true)?;
            queries::set_app_online(tx, other, d, true)?;
            queries::set_app_online(tx, other, d, false)
        })
        .await;
        assert_eq!(
            read(&t, queries::apps_online).await,
            vec![(c, d)],
            "{b}: once each, the one who left gone"
        );
    }
}

/// An event of courier 1 in depot 1, of `kind`.
fn event(at_secs: i64, depot: DepotId, courier: CourierId, kind: EventKind) -> NewEvent {
    NewEvent::route(at(at_secs), 0, depot, courier, kind)
}

/// Every stored event in order, checked against the audit chain from the
/// genesis link.
async fn the_log(t: &TestStore) -> Vec<Event> {
    let (events, hashes) = read(t, |db| {
        let events = queries::events_after(db, Scope::All, 0, 10_000)?;
        let hashes = events.iter().map(|e| audit::link_of(db, e.seq)).collect::<Result<Vec<_>, _>>()?;
        Ok((events, hashes))
    })
    .await;
    let mut prev = crate::audit::GENESIS;
    for (e, hash) in events.iter().zip(hashes) {
        let row = crate::audit::AuditRow {
            seq: e.seq,
            at_ms: e.at.timestamp_millis(),
            origin_wall_ms: e.origin_wall_ms,
            depot_id: e.depot_id.0,
            courier_id: e.courier_id.0,
            stop_id: e.stop_id.map(|s| s.0),
            kind: serde_json::to_string(&e.kind).expect("kind"),
            call: e.call.as_ref().map(|c| serde_json::to_string(c).expect("call")),
        };
        prev = crate::audit::link(&prev, &row);
        assert_eq!(hash, Some(prev), "{}: the chain at seq {}", t.backend, e.seq);
    }
    events
}

#[tokio::test]
async fn the_log_is_gap_free_and_a_failed_job_gives_its_seqs_back() {
    for t in stores("the_log_is_gap_free") {
        let b = t.backend;
        let (d, c) = depot_and_courier(&t).await;
        assert_eq!(read(&t, queries::head_seq).await, 0, "{b}");
        assert_eq!(read(&t, queries::last_event_at).await, None, "{b}");
        let first = write(&t, move |tx| {
            let e1 = tx.append_event(event(1, d, c, EventKind::AppConnection { connected: true }))?;
            let e2 =
                tx.append_event(event(2, d, c, EventKind::RouteReplaced { date: at(0).date_naive() }))?;
            Ok((e1.seq, e2.seq, tx.head_seq()))
        })
        .await;
        assert_eq!(first, (1, 2, 2), "{b}");
        // Queued together: one group, where the middle job fails.
        let a = t
            .store
            .writer
            .enqueue(move |tx| tx.append_event(event(3, d, c, EventKind::CallRequested)).map(|e| e.seq));
        let a = a.await.expect("queued");
        let failing = t
            .store
            .writer
            .enqueue(move |tx| {
                tx.append_event(event(4, d, c, EventKind::CallCancelled))?;
                Err::<u64, _>(StoreError::Invalid("this job fails after appending".into()))
            })
            .await
            .expect("queued");
        let after = t
            .store
            .writer
            .enqueue(move |tx| tx.append_event(event(5, d, c, EventKind::CallCancelled)).map(|e| e.seq))
            .await
            .expect("queued");
        assert_eq!(a.await.expect("reply").expect("committed"), 3, "{b}");
        assert!(failing.await.expect("reply").is_err(), "{b}");
        assert_eq!(
            after.await.expect("reply").expect("committed"),
            4,
            "{b}: the failed job's seq is given back"
        );

        let log = the_log(&t).await;
        assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4], "{b}");
        assert_eq!(log[3].at, at(5), "{b}: the failed job's event is gone");
        assert_eq!(read(&t, queries::head_seq).await, 4, "{b}");
        assert_eq!(read(&t, queries::last_event_at).await, Some(at(5)), "{b}");
        assert_eq!(read(&t, queries::log_id).await.len(), 32, "{b}");
        let digest = read(&t, |db| audit::digest(db, None)).await.map(|(seq, _, _)| seq);
        assert_eq!(digest, Some(4), "{b}");
        let at_two =
            read(&t, |db| audit::digest(db, Some(at(2).timestamp_millis()))).await.map(|(seq, _, _)| seq);
        assert_eq!(at_two, Some(2), "{b}");

        // Scoped replay: a courier's feed leaves out app presence.
        let mine = read(&t, move |db| queries::events_after(db, Scope::Courier(c), 0, 100)).await;
        assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 4], "{b}");
        let depot = read(&t, move |db| queries::events_after(db, Scope::Depot(d), 2, 1)).await;
        assert_eq!(depot.iter().map(|e| e.seq).collect::<Vec<_>>(), [3], "{b}: after 2, one");
        assert_eq!(
            log[1].kind,
            EventKind::RouteReplaced { date: at(0).date_naive() },
            "{b}: read back as written"
        );
    }
}

#[tokio::test]
async fn a_stops_history_links_each_event_to_the_one_before() {
    for t in stores("a_stops_history_links") {
        let b = t.backend;
        let (d, c) = depot_and_courier(&t).await;
        let stop = write(&t, move |tx| {
            // A stop's events are found through its courier (queries::OF_STOP).
            let stop: i64 = tx.db().one(
                "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name,
                   phone, time_zone, address, window_start, window_end, order_numbers)
                 VALUES (?1, ?2, '2026-12-01', 0, 'A-7', 'Anna', '+79990000007', 'Europe/Moscow', 'Tverskaya 7',
                   0, 1, '[]') RETURNING id",
                params![c.0, d.0],
                |r| r.get(0),
            )?;
            tx.append_event(event(1, d, c, EventKind::CallRequested))?;
            let mut e = event(2, d, c, EventKind::CallCancelled);
            e.stop_id = Some(StopId(stop));
            tx.append_event(e)?;
            Ok(stop)
        })
        .await;
        let (history, events) =
            read(&t, move |db| Ok((audit::stop_history(db, stop)?, queries::stop_events(db, StopId(stop))?)))
                .await;
        let log = the_log(&t).await;
        assert_eq!(history.len(), 1, "{b}");
        assert_eq!(history[0].row.seq, 2, "{b}");
        let link1 = read(&t, |db| audit::link_of(db, 1)).await;
        assert_eq!(Some(history[0].prev_hash), link1, "{b}");
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2], "{b}");
        assert_eq!(log.len(), 2, "{b}");
    }
}

#[tokio::test]
async fn audit_verify_walks_the_chain_and_names_an_altered_event() {
    for t in stores("audit_verify_walks_the_chain") {
        let b = t.backend;
        let (d, c) = depot_and_courier(&t).await;
        write(&t, move |tx| {
            for i in 0..5 {
                tx.append_event(event(i, d, c, EventKind::CallRequested))?;
            }
            Ok(())
        })
        .await;
        let db = t.db.clone();
        let verified = off_runtime(move || audit::verify(&db, crate::audit::Verifier::default()))
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        let head = read(&t, |db| audit::link_of(db, 5)).await;
        assert_eq!((verified.events, verified.head_seq, Some(verified.head_hash)), (5, 5, head), "{b}");

        write(&t, |tx| {
            tx.exec("UPDATE events SET origin_wall_ms = 99 WHERE seq = 3", rusqlite::params![]).map(drop)
        })
        .await;
        let db = t.db.clone();
        let err = off_runtime(move || audit::verify(&db, crate::audit::Verifier::default()))
            .expect_err("an altered event");
        assert!(err.to_string().contains("seq 3 is altered"), "{b}: {err}");
    }
}

/// Several nodes on one PostgreSQL database: each runs its own writer, and
/// the head row makes their groups take turns, so the log stays one
/// gap-free chain in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_three_nodes_keep_one_gap_free_chain() {
    let Some(pg) = PgTestDb::create("writers_of_three_nodes") else { return };
    let nodes: Vec<Store> = (0..3)
        .map(|_| off_runtime(|| Store::open(std::path::Path::new(pg.url()), Hub::new())).expect("a node"))
        .collect();
    let (d, c) = nodes[0]
        .writer
        .write(|tx| {
            let d = accounts::insert_depot(tx, "North", "UTC", &AttemptPolicy::default(), at(0))?;
            Ok::<_, StoreError>((d, accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(0))?))
        })
        .await
        .expect("depot");
    let mut replies = Vec::new();
    for round in 0..40 {
        for (n, node) in nodes.iter().enumerate() {
            let wall = (round * 10 + n) as i64;
            replies.push(
                node.writer
                    .enqueue(move |tx| {
                        let mut e = event(wall, d, c, EventKind::CallRequested);
                        e.origin_wall_ms = wall;
                        tx.append_event(e.clone())?;
                        tx.append_event(e).map(|e| e.seq)
                    })
                    .await
                    .expect("queued"),
            );
        }
    }
    let mut seqs = Vec::new();
    for r in replies {
        seqs.push(r.await.expect("reply").expect("committed"));
    }
    let t = TestStore::on(nodes.into_iter().next().expect("node"), "postgres", pg.url().into());
    let log = the_log(&t).await;
    assert_eq!(log.len(), 240);
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=240).collect::<Vec<u64>>(), "gap-free");
    // Each job's two events are adjacent: a group is never interleaved
    // with another node's.
    for pair in log.chunks(2) {
        assert_eq!(pair[0].origin_wall_ms, pair[1].origin_wall_ms, "seq {}", pair[0].seq);
    }
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 120, "every job got its own seqs");
    let head = read(&t, |db| {
        db.one("SELECT seq, hash FROM event_head WHERE id = 1", rusqlite::params![], |r| {
            Ok::<_, rusqlite::Error>((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
    })
    .await;
    let last = read(&t, |db| audit::link_of(db, 240)).await.expect("link");
    assert_eq!(head, (240, last.to_vec()), "the head row is the log's head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_hub_carries_every_nodes_events_in_seq_order_once() {
    let Some(pg) = PgTestDb::create("every_nodes_hub") else { return };
    let hubs: Vec<Arc<Hub>> = (0..3).map(|_| Hub::new()).collect();
    let nodes: Vec<Store> = hubs
        .iter()
        .map(|h| {
            let h = h.clone();
            off_runtime(|| Store::open(std::path::Path::new(pg.url()), h)).expect("a node")
        })
        .collect();
    let mut feeds: Vec<_> = hubs.iter().map(|h| h.subscribe(Scope::All, 4096)).collect();
    let (d, c) = nodes[0]
        .writer
        .write(|tx| {
            let d = accounts::insert_depot(tx, "North", "UTC", &AttemptPolicy::default(), at(0))?;
            Ok::<_, StoreError>((d, accounts::insert_courier(tx, d, "Ivan", "+79990000001", at(0))?))
        })
        .await
        .expect("depot");
    let mut replies = Vec::new();
    for round in 0..50 {
        for node in &nodes {
            replies.push(
                node.writer
                    .enqueue(move |tx| {
                        tx.append_event(event(round, d, c, EventKind::CallRequested)).map(|e| e.seq)
                    })
                    .await
                    .expect("queued"),
            );
        }
    }
    for r in replies {
        r.await.expect("reply").expect("committed");
    }
    // Each hub gets its own node's events at commit and the others' on a
    // notification (or the follower's poll): all 150, in seq order, once.
    for (n, feed) in feeds.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        while seqs.len() < 150 {
            let d = tokio::time::timeout(std::time::Duration::from_secs(30), feed.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("node {n}: only {} events reached its hub", seqs.len()))
                .expect("hub open");
            seqs.push(d.seq);
        }
        assert_eq!(seqs, (1..=150).collect::<Vec<u64>>(), "node {n}");
        assert!(feed.rx.try_recv().is_err(), "node {n}: nothing twice");
    }
}
