//! Rate limits (governor's GCRA, keyed): per client address on failed
//! authentications and on reschedule-page requests, per token on writes and
//! on campaign enrollments. Over a limit the answer is `429 rate_limited`
//! with `Retry-After`. The request deadline lives here too.
//!
//! Failed authentications work in two steps: every failure spends from the
//! address's allowance; once it is spent the address is *blocked* until the
//! allowance refills, and a blocked address is refused before its token is
//! even looked up, so a guess that happens to be right is refused as well.

use crate::error::AppError;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use callahead_core::wire::ErrorCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `per_minute` requests a minute on average, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_minute: u32, burst: u32) -> Rate {
        Rate { per_minute, burst }
    }

    fn quota(self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::per_minute(per_minute).allow_burst(burst))
    }
}

/// The limits and their defaults (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed authentications per client address.
    pub auth_failures: Rate,
    /// Reschedule-page requests (`/r/…`) per client address.
    pub reschedule_page: Rate,
    /// Writes (POST, PUT, PATCH, DELETE) per token; admin tokens are exempt.
    pub writes: Rate,
    /// Campaign enrollments (each may text or call many customers) per token.
    pub campaign_runs: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            auth_failures: Rate::new(10, 20),
            reschedule_page: Rate::new(30, 30),
            writes: Rate::new(1200, 600),
            campaign_runs: Rate::new(10, 10),
        }
    }
}

impl RateLimits {
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, r) in [
            ("auth_failures", self.auth_failures),
            ("reschedule_page", self.reschedule_page),
            ("writes", self.writes),
            ("campaign_runs", self.campaign_runs),
        ] {
            if r.quota().is_none() {
                return Err(format!("rate limit {name}: per_minute and burst must be at least 1"));
            }
        }
        Ok(())
    }
}

struct Keyed<K: Hash + Eq + Clone> {
    name: &'static str,
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(name: &'static str, rate: Rate) -> Keyed<K> {
        // `check` refused a zero rate already; one a minute is the floor.
        let quota = rate.quota().unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN));
        Keyed { name, limiter: RateLimiter::keyed(quota) }
    }

    /// Spends one; how long to wait when nothing is left.
    fn spend(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Every limiter of one server.
pub struct Limiters {
    auth_failures: Keyed<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    reschedule_page: Keyed<IpAddr>,
    writes: Keyed<i64>,
    campaign_runs: Keyed<i64>,
}

/// A refusal: 429 with the wait in `Retry-After` (whole seconds, at least 1).
pub fn too_many(limit: &'static str, wait: Duration) -> AppError {
    crate::metrics::rate_limited(limit);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    AppError::new(ErrorCode::RateLimited, format!("too many requests ({limit}); retry in {} s", secs.max(1)))
        .retry_after(u32::try_from(secs.max(1)).unwrap_or(u32::MAX))
}

impl Limiters {
    pub fn new(rates: &RateLimits) -> Limiters {
        Limiters {
            auth_failures: Keyed::new("auth_failures", rates.auth_failures),
            blocked: Mutex::new(HashMap::new()),
            reschedule_page: Keyed::new("reschedule_page", rates.reschedule_page),
            writes: Keyed::new("writes", rates.writes),
            campaign_runs: Keyed::new("campaign_runs", rates.campaign_runs),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses an address that failed to authenticate too often.
    pub fn check_not_blocked(&self, ip: IpAddr) -> Result<(), AppError> {
        let now = Instant::now();
        let mut blocked = self.blocked();
        match blocked.get(&ip).copied() {
            Some(until) if until > now => Err(too_many(self.auth_failures.name, until - now)),
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) {
        if let Err(wait) = self.auth_failures.spend(&ip) {
            let mut blocked = self.blocked();
            // Stale entries would pile up under a distributed attack.
            if blocked.len() > 100_000 {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(ip, Instant::now() + wait);
        }
    }

    pub fn reschedule_page(&self, ip: IpAddr) -> Result<(), AppError> {
        self.reschedule_page.spend(&ip).map_err(|w| too_many(self.reschedule_page.name, w))
    }

    pub fn write(&self, token_id: i64) -> Result<(), AppError> {
        self.writes.spend(&token_id).map_err(|w| too_many(self.writes.name, w))
    }

    pub fn campaign_run(&self, token_id: i64) -> Result<(), AppError> {
        self.campaign_runs.spend(&token_id).map_err(|w| too_many(self.campaign_runs.name, w))
    }

    /// Forgets keys whose allowance is full again (run now and then).
    pub fn forget_idle(&self) {
        self.auth_failures.limiter.retain_recent();
        self.reschedule_page.limiter.retain_recent();
        self.writes.limiter.retain_recent();
        self.campaign_runs.limiter.retain_recent();
        let now = Instant::now();
        self.blocked().retain(|_, until| *until > now);
    }
}

/// The peer's address as the connection loop recorded it.
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The client's address as an extractor.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&parts.extensions)))
    }
}

/// Middleware: the body must arrive and the answer be ready within
/// `timeout`; otherwise `408` and the connection closes (a slow body holds
/// nothing for longer than that).
pub async fn deadline(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let mut resp = AppError::new(
                ErrorCode::RequestTimeout,
                "the request took too long to arrive or to answer; send it again",
            )
            .into_response();
            resp.headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_once_its_failures_are_spent() {
        let l = Limiters::new(&RateLimits { auth_failures: Rate::new(1, 3), ..RateLimits::default() });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        for _ in 0..3 {
            assert!(l.check_not_blocked(a).is_ok());
            l.auth_failed(a);
        }
        assert!(l.check_not_blocked(a).is_ok(), "three failures are the burst");
        l.auth_failed(a);
        let refused = l.check_not_blocked(a).expect_err("blocked");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        let wait = refused.retry_after_secs.expect("retry after");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check_not_blocked(b).is_ok(), "another address is not");
    }

    #[test]
    fn writes_are_limited_per_token() {
        let l = Limiters::new(&RateLimits { writes: Rate::new(60, 2), ..RateLimits::default() });
        assert!(l.write(1).is_ok() && l.write(1).is_ok());
        assert_eq!(l.write(1).expect_err("third").code, ErrorCode::RateLimited);
        assert!(l.write(2).is_ok());
    }
}
