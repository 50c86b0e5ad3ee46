//! Lines are a shared resource (docs/architecture.md §4): a provider account takes
//! so many new calls per second (Twilio: 1 by default) and carries so many
//! at once. Every attempt asks [`Lines`] for a line before it is placed and
//! gives it back when it ends; attempts beyond the limits wait their turn,
//! in order within each courier's calls, and across couriers the one served
//! least recently goes first, so one courier's five taps never starve
//! another's first.
//!
//! Time here is real (tokio's clock, paused in unit tests), not the domain
//! clock: the provider counts calls per second of its own wall time.

use callahead_core::CourierId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Per provider account. `None`: no limit (the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LineLimits {
    /// New calls per second, counted over any one-second window.
    pub calls_per_second: Option<f64>,
    /// Calls carried at once (placed and not ended).
    pub max_concurrent: Option<u32>,
}

impl LineLimits {
    pub const UNLIMITED: LineLimits = LineLimits { calls_per_second: None, max_concurrent: None };

    pub fn check(&self) -> Result<(), String> {
        if let Some(cps) = self.calls_per_second {
            if !(cps.is_finite() && cps > 0.0) {
                return Err(format!("calls per second must be a positive number, got {cps}"));
            }
        }
        if self.max_concurrent == Some(0) {
            return Err("concurrent calls must be at least 1".into());
        }
        Ok(())
    }
}

/// Network jitter can bring two requests closer together than they left:
/// the window is this much longer than a second, so the provider never
/// counts one call too many.
const WINDOW_MARGIN: Duration = Duration::from_millis(100);

pub struct Lines {
    limits: LineLimits,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    /// Waiting attempts (ticket, courier), in arrival order.
    waiting: Vec<(u64, CourierId)>,
    /// Grants so far, and the grant number each courier was last served at.
    grants: u64,
    last_served: HashMap<CourierId, u64>,
    /// Attempt keys holding a line.
    held: HashSet<String>,
    /// When recent calls started, oldest first (within the last window).
    starts: VecDeque<Instant>,
}

/// Why a caller is still waiting (the courier sees "waiting for a line").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every line carries a call.
    AllLinesBusy,
    /// The account's calls-per-second budget is spent for now.
    RateLimit,
    /// Other couriers' calls are ahead in the queue.
    Queued,
}

impl Lines {
    pub fn new(limits: LineLimits) -> Arc<Lines> {
        Arc::new(Lines { limits, state: Mutex::new(State::default()), changed: Notify::new() })
    }

    pub fn limits(&self) -> LineLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lines in use now.
    pub fn in_use(&self) -> usize {
        self.lock().held.len()
    }

    /// Counts a call the provider already carries (found live after a
    /// restart) without waiting.
    pub fn adopt(&self, attempt_key: &str) {
        self.lock().held.insert(attempt_key.to_owned());
    }

    /// Gives the line back (the attempt ended, or was never placed).
    pub fn release(&self, attempt_key: &str) {
        if self.lock().held.remove(attempt_key) {
            self.changed.notify_waiters();
        }
    }

    /// Waits for a line for `attempt_key`. `on_wait` is called once, with
    /// the first reason, if the line is not free at once. Cancel-safe: a
    /// dropped waiter leaves the queue.
    pub async fn acquire(&self, courier: CourierId, attempt_key: &str, mut on_wait: impl FnMut(Busy)) {
        if self.limits == LineLimits::UNLIMITED {
            self.lock().held.insert(attempt_key.to_owned());
            return;
        }
        let ticket = self.enqueue(courier);
        let _leave = Leave { lines: self, ticket };
        let mut told = false;
        loop {
            // Register for wake-ups before checking, so a release between
            // the check and the wait is not missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_take(ticket, attempt_key) {
                Ok(()) => return,
                Err((busy, retry_at)) => {
                    if !told {
                        told = true;
                        on_wait(busy);
                    }
                    match retry_at {
                        Some(at) => {
                            tokio::select! {
                                _ = tokio::time::sleep_until(at) => {}
                                _ = &mut notified => {}
                            }
                        }
                        None => notified.await,
                    }
                }
            }
        }
    }

    /// Waits for the calls-per-second budget only: a retry of an attempt
    /// that already holds its line is still a new request to the provider.
    pub async fn pace(&self) {
        loop {
            let at = {
                let mut s = self.lock();
                match self.take_start(&mut s) {
                    Ok(()) => return,
                    Err(at) => at,
                }
            };
            tokio::time::sleep_until(at).await;
        }
    }

    fn enqueue(&self, courier: CourierId) -> u64 {
        let mut s = self.lock();
        let ticket = s.next_ticket;
        s.next_ticket += 1;
        s.waiting.push((ticket, courier));
        ticket
    }

    /// The ticket whose turn it is: the first waiting call of the courier
    /// served least recently (never served first), earliest arrival on ties.
    fn turn(s: &State) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None; // (last served, ticket)
        let mut seen = HashSet::new();
        for (ticket, courier) in &s.waiting {
            if !seen.insert(*courier) {
                continue;
            }
            let rank = (s.last_served.get(courier).copied().unwrap_or(0), *ticket);
            if best.is_none_or(|b| rank < b) {
                best = Some(rank);
            }
        }
        best.map(|(_, t)| t)
    }

    fn try_take(&self, ticket: u64, attempt_key: &str) -> Result<(), (Busy, Option<Instant>)> {
        let mut s = self.lock();
        if Self::turn(&s) != Some(ticket) {
            return Err((Busy::Queued, None));
        }
        if let Some(max) = self.limits.max_concurrent {
            if s.held.len() >= max as usize {
                return Err((Busy::AllLinesBusy, None));
            }
        }
        if let Err(at) = self.take_start(&mut s) {
            return Err((Busy::RateLimit, Some(at)));
        }
        s.held.insert(attempt_key.to_owned());
        s.grants += 1;
        let grant = s.grants;
        if let Some(pos) = s.waiting.iter().position(|(t, _)| *t == ticket) {
            let (_, courier) = s.waiting.remove(pos);
            s.last_served.insert(courier, grant);
        }
        drop(s);
        // The next in line may be able to go now.
        self.changed.notify_waiters();
        Ok(())
    }

    /// Counts one start if the budget allows it; else when it will.
    fn take_start(&self, s: &mut State) -> Result<(), Instant> {
        let Some(cps) = self.limits.calls_per_second else { return Ok(()) };
        let now = Instant::now();
        // At most `cps` starts in any window; below one a second, one start
        // per 1/cps seconds.
        let (per_window, window) = if cps >= 1.0 {
            (cps.floor() as usize, Duration::from_secs(1) + WINDOW_MARGIN)
        } else {
            (1, Duration::from_secs_f64(1.0 / cps) + WINDOW_MARGIN)
        };
        while s.starts.front().is_some_and(|t| now.duration_since(*t) >= window) {
            s.starts.pop_front();
        }
        if s.starts.len() >= per_window {
            return Err(s.starts.front().copied().unwrap_or(now) + window);
        }
        s.starts.push_back(now);
        Ok(())
    }
}

/// Takes a waiter's ticket out of the queue when it stops waiting (served,
/// or its task was aborted).
struct Leave<'a> {
    lines: &'a Lines,
    ticket: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut s = self.lines.lock();
        let was_turn = Lines::turn(&s) == Some(self.ticket);
        s.waiting.retain(|(t, _)| *t != self.ticket);
        drop(s);
        if was_turn {
            self.lines.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limits(cps: Option<f64>, max: Option<u32>) -> Arc<Lines> {
        Lines::new(LineLimits { calls_per_second: cps, max_concurrent: max })
    }

    /// Starts `n` acquirers for `courier`, in order; each records its grant.
    fn spawn_calls(
        lines: &Arc<Lines>,
        courier: i64,
        n: usize,
        log: &Arc<Mutex<Vec<(String, Instant)>>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|i| {
                let (lines, log) = (lines.clone(), log.clone());
                let key = format!("c{courier}-{i}");
                tokio::spawn(async move {
                    lines.acquire(CourierId(courier), &key, |_| {}).await;
                    log.lock().expect("log").push((key, Instant::now()));
                })
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_starts_per_second_than_configured() {
        let lines = limits(Some(3.0), None);
        let log = Arc::new(Mutex::new(Vec::new()));
        let tasks = spawn_calls(&lines, 1, 10, &log);
        for t in tasks {
            t.await.expect("joined");
        }
        let times: Vec<Instant> = log.lock().expect("log").iter().map(|(_, t)| *t).collect();
        assert_eq!(times.len(), 10);
        for (i, t) in times.iter().enumerate() {
            let in_window =
                times[i..].iter().filter(|u| u.duration_since(*t) < Duration::from_secs(1)).count();
            assert!(in_window <= 3, "{in_window} starts within a second of start {i}");
        }
        let span = times[9].duration_since(times[0]);
        assert!(span >= Duration::from_secs(3), "ten calls at 3/s take three windows: {span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_waits_for_a_release_and_turns_alternate_between_couriers() {
        let lines = limits(None, Some(2));
        let log = Arc::new(Mutex::new(Vec::new()));
        // Courier 1 taps four, then courier 2 taps two.
        let mut tasks = spawn_calls(&lines, 1, 4, &log);
        tokio::task::yield_now().await;
        tasks.extend(spawn_calls(&lines, 2, 2, &log));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(lines.in_use(), 2, "two lines, two calls");
        let order = |log: &Arc<Mutex<Vec<(String, Instant)>>>| -> Vec<String> {
            log.lock().expect("log").iter().map(|(k, _)| k.clone()).collect()
        };
        assert_eq!(order(&log), vec!["c1-0", "c1-1"]);
        for key in ["c1-0", "c1-1", "c2-0", "c1-2", "c2-1"] {
            lines.release(key);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        for t in tasks {
            t.await.expect("joined");
        }
        assert_eq!(
            order(&log),
            vec!["c1-0", "c1-1", "c2-0", "c1-2", "c2-1", "c1-3"],
            "courier 2's first call goes before courier 1's third"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_hears_why_once_and_an_aborted_waiter_leaves_the_queue() {
        let lines = limits(None, Some(1));
        lines.acquire(CourierId(1), "a", |_| panic!("free at once")).await;
        let heard = Arc::new(AtomicUsize::new(0));
        let blocked = {
            let (lines, heard) = (lines.clone(), heard.clone());
            tokio::spawn(async move {
                lines
                    .acquire(CourierId(1), "b", |busy| {
                        assert_eq!(busy, Busy::AllLinesBusy);
                        heard.fetch_add(1, Ordering::SeqCst);
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let next = {
            let lines = lines.clone();
            tokio::spawn(async move { lines.acquire(CourierId(2), "c", |_| {}).await })
        };
        tokio::task::yield_now().await;
        blocked.abort();
        let _ = blocked.await;
        assert_eq!(heard.load(Ordering::SeqCst), 1);
        lines.release("a");
        tokio::time::timeout(Duration::from_secs(1), next).await.expect("c got the line").expect("joined");
        assert_eq!(lines.in_use(), 1);
    }

    #[tokio::test]
    async fn unlimited_lines_never_wait() {
        let lines = Lines::new(LineLimits::UNLIMITED);
        for i in 0..100 {
            lines.acquire(CourierId(1), &format!("k{i}"), |_| panic!("no wait")).await;
        }
        assert_eq!(lines.in_use(), 100);
    }
}
