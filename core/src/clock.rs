//! Injected time. The orchestrator, the simulator and the client's retry
//! logic never read the system clock directly, so tests can run minutes of
//! call policy in milliseconds and the demo can play a morning in a minute.

use chrono::{DateTime, Duration, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: Send + Sync + 'static {
    /// Domain time ("what time is it for the customer").
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture;
    /// How many domain seconds pass per real second (1 for the system clock).
    fn speed(&self) -> f64;
}

pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock milliseconds since the epoch, for latency measurement only:
/// push latency is real time, whatever speed the domain clock runs at.
pub fn wall_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        Box::pin(sleep_real(deadline - Utc::now()))
    }
    fn speed(&self) -> f64 {
        1.0
    }
}

/// Domain time that starts at `origin` and runs `speed` times faster than
/// real time: the demo plays a morning of calls in about a minute with it.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
    speed: f64,
}

impl ScaledClock {
    pub fn new(origin: DateTime<Utc>, speed: f64) -> Self {
        Self { origin, started: std::time::Instant::now(), speed: speed.max(f64::MIN_POSITIVE) }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64();
        self.origin + Duration::microseconds((real * self.speed * 1e6) as i64)
    }
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let domain = deadline - self.now();
        let real_us = domain.num_microseconds().unwrap_or(i64::MAX) as f64 / self.speed;
        Box::pin(sleep_real(Duration::microseconds(real_us as i64)))
    }
    fn speed(&self) -> f64 {
        self.speed
    }
}

async fn sleep_real(d: Duration) {
    if let Ok(d) = d.to_std() {
        tokio::time::sleep(d).await;
    }
}

/// A [`ScaledClock`] that tests can also jump forward ("the next day"):
/// multi-day rules (campaigns) run in a second, while each day's calls
/// still play out on the scaled timeline. A jump wakes every sleeper so it
/// re-checks its deadline.
#[derive(Clone)]
pub struct WarpClock {
    scaled: ScaledClock,
    /// Microseconds jumped so far; sleepers watch it.
    offset: Arc<tokio::sync::watch::Sender<i64>>,
}

impl WarpClock {
    pub fn new(origin: DateTime<Utc>, speed: f64) -> Self {
        Self { scaled: ScaledClock::new(origin, speed), offset: Arc::new(tokio::sync::watch::channel(0).0) }
    }

    /// Moves time forward by `by` at once.
    pub fn jump(&self, by: Duration) {
        let by = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset.send_modify(|o| *o = o.saturating_add(by));
    }
}

impl Clock for WarpClock {
    fn now(&self) -> DateTime<Utc> {
        self.scaled.now() + Duration::microseconds(*self.offset.borrow())
    }
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let this = self.clone();
        let mut jumps = self.offset.subscribe();
        Box::pin(async move {
            loop {
                let left = deadline - this.now();
                if left <= Duration::zero() {
                    return;
                }
                let real_us = left.num_microseconds().unwrap_or(i64::MAX) as f64 / this.scaled.speed;
                tokio::select! {
                    () = sleep_real(Duration::microseconds(real_us as i64)) => {}
                    changed = jumps.changed() => {
                        if changed.is_err() {
                            // The clock is gone: nobody can move time any more.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        })
    }
    fn speed(&self) -> f64 {
        self.scaled.speed
    }
}

/// A clock that moves only when told to: for tests of time-driven rules.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

struct ManualInner {
    now: DateTime<Utc>,
    waiters: Vec<(DateTime<Utc>, std::task::Waker)>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { inner: Arc::new(Mutex::new(ManualInner { now: start, waiters: Vec::new() })) }
    }

    /// Moves time forward and wakes every sleeper whose deadline passed.
    pub fn advance(&self, by: Duration) {
        let wake = {
            let mut inner = lock(&self.inner);
            inner.now += by;
            let now = inner.now;
            let (due, rest): (Vec<_>, Vec<_>) = inner.waiters.drain(..).partition(|(d, _)| *d <= now);
            inner.waiters = rest;
            due
        };
        for (_, waker) in wake {
            waker.wake();
        }
    }
}

fn lock(m: &Mutex<ManualInner>) -> std::sync::MutexGuard<'_, ManualInner> {
    // A panic while holding this lock cannot leave the time inconsistent
    // (every critical section is a plain assignment), so poison is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        lock(&self.inner).now
    }
    fn sleep_until(&self, deadline: DateTime<Utc>) -> SleepFuture {
        let inner = self.inner.clone();
        Box::pin(std::future::poll_fn(move |cx| {
            let mut guard = lock(&inner);
            if guard.now >= deadline {
                std::task::Poll::Ready(())
            } else {
                guard.waiters.push((deadline, cx.waker().clone()));
                std::task::Poll::Pending
            }
        }))
    }
    fn speed(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_time_passes() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let c2 = clock.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(start + Duration::seconds(60)).await });
        tokio::task::yield_now().await;
        clock.advance(Duration::seconds(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::seconds(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
        assert_eq!(clock.now(), start + Duration::seconds(60));
    }

    #[test]
    fn scaled_clock_runs_faster_than_real_time() {
        let origin = Utc::now();
        let clock = ScaledClock::new(origin, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(clock.now() - origin >= Duration::seconds(19));
    }

    #[tokio::test]
    async fn a_warp_clock_jump_wakes_a_sleeper_a_day_away() {
        // Real time barely moves (speed 1): only the jump can wake it.
        let origin = Utc::now();
        let clock = WarpClock::new(origin, 1.0);
        let c2 = clock.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(origin + Duration::days(1)).await });
        clock.jump(Duration::hours(23));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "an hour still to go");
        clock.jump(Duration::hours(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("no panic");
        assert!(clock.now() >= origin + Duration::days(1));
    }
}
