//! The delivery worker: one task per endpoint, delivering that endpoint's
//! events one at a time in seq order (so per-stop order holds), waking on
//! new events from the hub and sleeping out backoffs on the domain clock.
//! A slow receiver only holds its own task; the writer is used only to
//! record each attempt's result.

use super::signature::{self, Secret};
use super::WebhookConfig;
use crate::hub::{Hub, Scope};
use crate::store::leases::{Claims, Kind};
use crate::store::webhooks::{self as store, Attempt, EndpointRow, Item};
use crate::store::{Db, Readers, StoreError, Writer};
use callahead_core::clock::SharedClock;
use callahead_core::DepotId;
use chrono::{DateTime, Utc};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Wake-ups buffered per endpoint; a burst beyond it resubscribes, which
/// costs nothing since the worker reads what is due from the database.
const WAKE_QUEUE: usize = 64;

/// Delay before try `failures + 1`: `base · 2^(failures-1)`, at most `cap`,
/// with "equal jitter" (half fixed, half random) so endpoints that failed
/// together do not retry in lockstep, yet never sooner than half the step.
pub fn backoff(failures: u32, base: Duration, cap: Duration, rng: &mut impl Rng) -> Duration {
    let step = base.saturating_mul(1u32 << failures.saturating_sub(1).min(30)).min(cap);
    let half = step / 2;
    half + rng.random_range(Duration::ZERO..=step - half)
}

pub struct Deliverer {
    pub writer: Writer,
    pub readers: Arc<Readers>,
    pub clock: SharedClock,
    pub hub: Arc<Hub>,
    pub http: reqwest::Client,
    pub config: WebhookConfig,
    pub guard: crate::outbound::Guard,
    pub keys: crate::secrets::Keys,
    /// One node at a time delivers an endpoint's stream (docs/adr/0011).
    pub claims: Arc<Claims>,
}

/// What one pass sends.
struct Send {
    item: Item,
    failures: u32,
    url: String,
    body: Vec<u8>,
    secrets: Vec<Secret>,
    /// The event's link in the audit chain (docs/audit.md), hex.
    audit_hash: Option<String>,
}

impl Deliverer {
    pub fn new(
        writer: Writer,
        readers: Arc<Readers>,
        clock: SharedClock,
        hub: Arc<Hub>,
        config: WebhookConfig,
        security: super::Security,
    ) -> Result<Arc<Deliverer>, reqwest::Error> {
        let super::Security { guard, keys, claims } = security;
        let http = reqwest::Client::builder()
            // Every connection to a name is checked against the SSRF policy
            // as it is opened (docs/security.md): DNS may have changed since
            // the endpoint was registered.
            .dns_resolver(Arc::new(guard.clone()))
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect is the receiver's misconfiguration: report it, do
            // not follow a signed body elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callahead-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Deliverer { writer, readers, clock, hub, http, config, guard, keys, claims }))
    }

    /// Runs endpoint `id` until `stop` fires or the store closes.
    pub async fn run_endpoint(
        self: Arc<Self>,
        id: i64,
        depot: DepotId,
        wake: Arc<Notify>,
        stop: Arc<Notify>,
    ) {
        let forward = forward_wakeups(self.hub.clone(), depot, wake.clone());
        // In memory only: after a restart the first search starts at the cursor.
        let floor = Arc::new(AtomicU64::new(0));
        let readers = self.readers.clone();
        let next_due = || {
            let (readers, floor) = (readers.clone(), floor.clone());
            async move { readers.read(move |c| next_due(c, id, &floor)).await }
        };
        let what = format!("webhook {id}");
        let work = crate::due_loop::run(&what, &self.clock, &wake, next_due, |now| {
            self.deliver_next(id, now, &floor)
        });
        tokio::select! {
            _ = work => {}
            _ = forward => {}
            _ = stop.notified() => {}
        }
        tracing::debug!(webhook = id, "webhook worker stopped");
    }

    /// Delivers the endpoint's next due item if this node holds the
    /// endpoint's lease (claimed, or renewed, here); `false` when another
    /// node delivers this endpoint.
    async fn deliver_next(
        &self,
        id: i64,
        now: DateTime<Utc>,
        floor: &Arc<AtomicU64>,
    ) -> Result<bool, StoreError> {
        let Some(lease) = self.claims.claim_one(Kind::Webhook, id).await? else { return Ok(false) };
        let (f, keys) = (floor.clone(), self.keys.clone());
        let send = self.readers.read(move |c| prepare(c, id, now, &f, &keys)).await?;
        let Some(send) = send else { return Ok(true) };
        if !self.claims.may_act(&lease) {
            return Ok(false);
        }
        let attempt = self.post(id, &send).await;
        crate::metrics::webhook_attempt(attempt == Attempt::Delivered);
        if let Attempt::Failed { error, .. } = &attempt {
            tracing::warn!(webhook = id, seq = send.item.seq, error = %error, "webhook delivery failed");
        }
        let retry_in =
            backoff(send.failures + 1, self.config.backoff_base, self.config.backoff_cap, &mut rand::rng());
        let retry_in = chrono::Duration::from_std(retry_in).unwrap_or(chrono::Duration::hours(1));
        let at = self.clock.now();
        let (item, claims) = (send.item, self.claims.clone());
        let recorded = self
            .writer
            .write(move |tx| {
                claims.fence(tx, &lease)?;
                store::record(tx, id, item, &attempt, at, retry_in)
            })
            .await;
        match recorded {
            Ok(true) => tracing::error!(webhook = id, seq = item.seq, "webhook event dead-lettered"),
            Ok(false) => {}
            // Another node delivers this endpoint now, from the durable
            // cursor: it sends this item again (at least once, same seq).
            Err(StoreError::LeaseLost(why)) => {
                tracing::info!(webhook = id, %why, "webhook endpoint taken over by another node");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        Ok(true)
    }

    async fn post(&self, id: i64, send: &Send) -> Attempt {
        // An address literal never reaches the resolver: check it here.
        if let Err(e) = self.guard.parse(&send.url) {
            tracing::warn!(webhook = id, reason = %e, "webhook delivery refused by policy");
            return Attempt::Failed { status: None, error: POLICY.into() };
        }
        // Wall time, not domain time: the receiver compares it with its own clock.
        let t = Utc::now().timestamp();
        let secrets: Vec<&Secret> = send.secrets.iter().collect();
        let request = self
            .http
            .post(&send.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature::header(&secrets, t, &send.body))
            .header(signature::SEQ_HEADER, send.item.seq)
            .header(signature::ENDPOINT_HEADER, id);
        // A CRM that keeps the last link it got holds a digest of everything
        // before it: `audit verify --expect SEQ:HASH` (docs/audit.md).
        let request = match &send.audit_hash {
            Some(h) => request.header(signature::AUDIT_HEADER, h),
            None => request,
        }
        .body(send.body.clone());
        match request.send().await {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered,
            Ok(resp) => Attempt::Failed {
                status: Some(resp.status().as_u16()),
                error: format!("HTTP {}", resp.status().as_u16()),
            },
            Err(e) => Attempt::Failed { status: None, error: describe(&e) },
        }
    }
}

/// What the failure log says of a target refused by the SSRF guard.
const POLICY: &str = "refused by policy";

/// The reason, coarse on purpose: neither the URL (it may carry secrets)
/// nor the network's answer ("connection refused" against "no route"),
/// which would turn the failure log into a port scanner.
fn describe(e: &reqwest::Error) -> String {
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<crate::outbound::Refused>().is_some() {
            return POLICY.into();
        }
        cause = c.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

/// The next item of endpoint `id`, raising `floor` past what holds nothing.
fn scan(conn: &Db, id: i64, floor: &AtomicU64) -> Result<Option<(EndpointRow, Item)>, StoreError> {
    let Some(ep) = store::endpoint(conn, id)? else { return Ok(None) };
    let found = store::next_item(conn, &ep, floor.load(Ordering::Relaxed))?;
    floor.fetch_max(found.nothing_up_to, Ordering::Relaxed);
    Ok(found.item.map(|item| (ep, item)))
}

fn next_due(conn: &mut Db, id: i64, floor: &AtomicU64) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(scan(conn, id, floor)?.map(|(ep, item)| store::due_at(&ep, item)))
}

/// What to send now, if anything is due.
fn prepare(
    conn: &mut Db,
    id: i64,
    now: DateTime<Utc>,
    floor: &AtomicU64,
    keys: &crate::secrets::Keys,
) -> Result<Option<Send>, StoreError> {
    let Some((ep, item)) = scan(conn, id, floor)? else { return Ok(None) };
    if store::due_at(&ep, item) > now {
        return Ok(None);
    }
    let event = store::event(conn, ep.depot_id, item.seq)?.ok_or_else(|| {
        StoreError::Corrupt(format!("webhook {id}: event {} is not in its depot", item.seq))
    })?;
    // The body is the wire `Event`, exactly as the websocket carries it.
    let body = serde_json::to_vec(&event)?;
    let audit_hash = crate::store::audit::link_of(conn, item.seq)?.map(|h| crate::audit::hex(&h));
    Ok(Some(Send {
        audit_hash,
        item,
        failures: ep.failures_of(item.seq),
        url: ep.url.clone(),
        body,
        secrets: ep
            .signing_secrets(now)
            .into_iter()
            .map(|s| {
                keys.open(&s.0).map(Secret).map_err(|e| StoreError::Corrupt(format!("webhook {id}: {e}")))
            })
            .collect::<Result<_, _>>()?,
    }))
}

/// Turns the depot's committed events into wake-ups. Ends when the hub closes.
async fn forward_wakeups(hub: Arc<Hub>, depot: DepotId, wake: Arc<Notify>) {
    loop {
        let mut sub = hub.subscribe(Scope::Depot(depot), WAKE_QUEUE);
        // Something may have been committed before this subscription.
        wake.notify_one();
        while sub.rx.recv().await.is_some() {
            wake.notify_one();
        }
        if hub.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (base, cap) = (Duration::from_secs(5), Duration::from_secs(3600));
        for failures in 1..=40u32 {
            let step = (base * 2u32.pow(failures.min(31) - 1)).min(cap);
            for _ in 0..50 {
                let d = backoff(failures, base, cap, &mut rng);
                assert!(
                    d >= step / 2 && d <= step,
                    "try {failures}: {d:?} outside [{:?}, {step:?}]",
                    step / 2
                );
            }
        }
        assert!(backoff(1, base, cap, &mut rng) <= Duration::from_secs(5));
        assert!(backoff(1000, base, cap, &mut rng) <= cap, "no overflow on absurd counts");
        // The jitter really varies.
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(8, base, cap, &mut rng)).collect();
        assert!(samples.len() > 10);
    }
}
