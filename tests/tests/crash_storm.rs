//! A crash storm: the real server binary is killed with SIGKILL every 1–5 s
//! for a minute while twenty couriers' phones keep tapping, then it is left
//! to finish. Afterwards every attempt is closed, every call is final, no
//! attempt was ever placed twice at the (simulated) provider, attempts the
//! crashes cut are counted apart from provider failures, the log is
//! gap-free, and every phone holds every event of its scope exactly once,
//! in order.

use callahead_core::call::AttemptResult;
use callahead_core::wire::CallDetail;
use callahead_core::{Outcome, StopId};
use callahead_e2e::server::{morning, stops, today, Depot, ADMIN};
use callahead_e2e::{Api, Phone, ServerProcess};
use chrono::Duration;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

const COURIERS: usize = 20;
const STOPS: usize = 15;
const STORM: std::time::Duration = std::time::Duration::from_secs(60);
/// Upper bound for the calls to settle once the storm is over.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_every_few_seconds_for_a_minute_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cdr = dir.path().join("cdr.jsonl");
    let args = [
        "--clock-start".to_owned(),
        morning().to_rfc3339(),
        "--time-scale".into(),
        "20".into(),
        "--sim-fail-rate".into(),
        "0".into(),
        "--sim-seed".into(),
        "7".into(),
        "--sim-cdr".into(),
        cdr.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::new(dir.path(), ADMIN, &args);
    server.start().await;
    let api = Api::new(server.url());
    let policy = callahead_core::policy::AttemptPolicy {
        max_attempts: 3,
        retry_spacing_secs: 60,
        ring_timeout_secs: 30,
        // 300 calls are history enough to move retries by hours; this test
        // is about crashes, at the fixed rhythm.
        retry_at_best_hour: false,
        ..Default::default()
    };
    let depot = Depot::create(&api, "Storm", COURIERS, policy).await;
    let mut phones = Vec::new();
    let mut routes: Vec<Vec<StopId>> = Vec::new();
    for c in 0..COURIERS {
        let tag = 100 + c as u32;
        api.import_route(
            &depot.integrator,
            depot.courier_id(c),
            today(),
            stops(tag, STOPS, morning() + Duration::hours(2)),
        )
        .await
        .expect("route imported");
        let phone = Phone::new(server.addr(), depot.courier_token(c)).await;
        let synced = phone.client().sync_route(today()).await.expect("route synced");
        routes.push(synced.iter().map(|s| s.stop.id).collect());
        phones.push(phone);
    }

    // Taps keep coming during the whole storm: one every 200 ms.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut next_tap = [0usize; COURIERS];
    let mut tap_timer = tokio::time::interval(std::time::Duration::from_millis(200));
    let storm_end = tokio::time::Instant::now() + STORM;
    let mut next_kill =
        tokio::time::Instant::now() + std::time::Duration::from_millis(rng.random_range(1000..=5000));
    let mut kills = 0;
    while tokio::time::Instant::now() < storm_end {
        tokio::select! {
            _ = tap_timer.tick() => {
                let c = rng.random_range(0..COURIERS);
                if let Some(&stop) = routes[c].get(next_tap[c]) {
                    phones[c].client().request_calls(&[stop]).expect("tap stored");
                    next_tap[c] += 1;
                }
            }
            _ = tokio::time::sleep_until(next_kill) => {
                server.kill().await;
                kills += 1;
                let addr = server.start().await;
                for p in &phones {
                    p.proxy.set_target(addr);
                }
                next_kill = tokio::time::Instant::now() + std::time::Duration::from_millis(rng.random_range(1000..=5000));
            }
        }
    }
    assert!(kills >= 12, "a minute of kills every 1-5 s: {kills}");
    // The rest of the taps, then let the morning finish.
    for (c, phone) in phones.iter().enumerate() {
        let rest = &routes[c][next_tap[c]..];
        if !rest.is_empty() {
            phone.client().request_calls(rest).expect("tap stored");
        }
    }
    let api = Api::new(server.url());
    let settled = tokio::time::timeout(SETTLE, async {
        loop {
            // Counted before reading the calls, so no event falls between.
            let versions: Vec<_> = phones.iter().map(|p| p.rec.snapshot().events.len()).collect();
            let calls = api.calls(ADMIN, None, Some(today())).await.expect("calls").calls;
            // Final calls, and every attempt ended (a goodbye may still play).
            let done = calls.len() == COURIERS * STOPS
                && calls
                    .iter()
                    .all(|c| c.call.status.is_terminal() && c.attempts.iter().all(|a| a.ended_at.is_some()));
            if done {
                return calls;
            }
            // Event-driven: wait for the next thing any phone hears.
            let mut waits: Vec<_> = phones
                .iter()
                .zip(versions)
                .map(|(p, n)| Box::pin(p.rec.wait_until("more events", move |s| s.events.len() > n)))
                .collect();
            let _ = futures_util::future::select_all(waits.drain(..)).await;
        }
    })
    .await;
    let calls = settled
        .unwrap_or_else(|_| panic!("calls still open after the storm; server log:\n{}", server.server_log()));

    let attempts: usize = calls.iter().map(|c| c.attempts.len()).sum();
    let cut = calls
        .iter()
        .flat_map(|c| &c.attempts)
        .filter(|a| a.result == Some(AttemptResult::Interrupted))
        .count();
    eprintln!("crash storm: {kills} kills, {} calls, {attempts} attempts, {cut} cut by a crash", calls.len());
    check_attempts(&calls);
    check_provider_saw_each_attempt_once(&calls, &std::fs::read_to_string(&cdr).expect("CDRs"));
    check_counted_apart(&api, &depot, &calls).await;
    let log = api.all_events(ADMIN).await;
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the log is gap-free");
    for (c, phone) in phones.iter().enumerate() {
        phone.assert_heard_its_scope(&log, depot.courier_id(c), &format!("courier {c}")).await;
    }
}

fn check_attempts(calls: &[CallDetail]) {
    let mut per_stop: HashMap<StopId, usize> = HashMap::new();
    for c in calls {
        *per_stop.entry(c.call.stop_id).or_default() += 1;
        assert!(c.call.status.is_terminal(), "call {} is final", c.call.id);
        assert!(
            c.attempts.len() as u32 <= c.call.max_attempts,
            "call {}: {} attempts",
            c.call.id,
            c.attempts.len()
        );
        for a in &c.attempts {
            assert!(
                a.ended_at.is_some() && a.result.is_some(),
                "call {} attempt {} left open: {a:?}",
                c.call.id,
                a.number
            );
        }
    }
    assert!(per_stop.values().all(|&n| n == 1), "one call per tapped stop, whatever the crashes");
}

fn check_provider_saw_each_attempt_once(calls: &[CallDetail], cdr: &str) {
    let mut placed: BTreeMap<String, usize> = BTreeMap::new();
    for line in cdr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a CDR line");
        if v["record"] == "placed" {
            *placed.entry(v["attempt_key"].as_str().expect("key").to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = placed.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "attempts placed twice at the provider: {twice:?}");
    let known: std::collections::HashSet<String> = calls
        .iter()
        .flat_map(|c| c.attempts.iter().map(move |a| format!("call-{}-{}", c.call.id, a.number)))
        .collect();
    for key in placed.keys() {
        assert!(known.contains(key), "the provider placed {key}, which Callahead has no attempt for");
    }
}

async fn check_counted_apart(api: &Api, depot: &Depot, calls: &[CallDetail]) {
    let attempts = calls.iter().flat_map(|c| &c.attempts);
    let interrupted =
        attempts.clone().filter(|a| a.result == Some(AttemptResult::Interrupted)).count() as u32;
    let failed = attempts.filter(|a| a.result == Some(AttemptResult::Failed)).count() as u32;
    assert!(interrupted > 0, "a minute of kills cut some attempts");
    let report = api.daily_report(ADMIN, depot.depot.id, today()).await;
    assert_eq!((report.attempts_interrupted, report.attempts_failed), (interrupted, failed), "{report:?}");
    assert_eq!(failed, 0, "the provider never failed: no crash is blamed on it");
    let cut = calls.iter().filter(|c| c.call.outcome == Some(Outcome::Interrupted)).count() as u32;
    assert_eq!((report.interrupted, report.failed), (cut, 0), "{report:?}");
}
