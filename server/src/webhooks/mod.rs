//! Outbound webhooks (issue #5, docs/webhooks.md, docs/adr/0004): every
//! event of a depot that an integrator's endpoint subscribes to is POSTed
//! to it, signed ([`signature`]), at least once, in seq order, retried with
//! backoff and dead-lettered after the endpoint's attempt limit
//! ([`delivery`]). State lives in the database (`crate::store::webhooks`), so a restart resumes
//! every endpoint from its cursor.

pub mod delivery;
pub mod signature;

use crate::hub::Hub;
use crate::store::webhooks as store;
use crate::store::{Readers, StoreError, Writer};
use crate::tasks::Tasks;
use callahead_core::clock::SharedClock;
use callahead_core::DepotId;
use delivery::Deliverer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Delivery settings shared by every endpoint. Backoff is domain time.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Per request, connecting included.
    pub timeout: Duration,
    /// Wait after the first failure; doubles per failure.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// For endpoints registered without `max_attempts`.
    pub default_max_attempts: u32,
}

/// Bounds on an endpoint's `max_attempts`.
pub const MAX_ATTEMPTS: std::ops::RangeInclusive<u32> = 1..=50;

impl Default for WebhookConfig {
    fn default() -> Self {
        // 20 tries: 5 s doubling to an hour, about 6 to 11 hours in all.
        WebhookConfig {
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(3600),
            default_max_attempts: 20,
        }
    }
}

impl WebhookConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.timeout.is_zero() || self.backoff_base.is_zero() {
            return Err("webhook timeout and backoff base must be longer than zero".into());
        }
        if self.backoff_cap < self.backoff_base {
            return Err("the webhook backoff cap must be at least its base".into());
        }
        if !MAX_ATTEMPTS.contains(&self.default_max_attempts) {
            return Err(format!("webhook default_max_attempts must be within {MAX_ATTEMPTS:?}"));
        }
        Ok(())
    }
}

/// Where deliveries may go, how their secrets are kept, and which node may
/// deliver an endpoint's stream at all (docs/adr/0011).
pub struct Security {
    pub guard: crate::outbound::Guard,
    pub keys: crate::secrets::Keys,
    pub claims: Arc<crate::store::leases::Claims>,
}

struct Handle {
    wake: Arc<Notify>,
    stop: Arc<Notify>,
}

/// The running endpoint workers, by endpoint id.
pub struct Webhooks {
    deliverer: Arc<Deliverer>,
    tasks: Arc<Tasks>,
    running: Mutex<HashMap<i64, Handle>>,
    pub config: WebhookConfig,
}

impl Webhooks {
    /// The SSRF policy endpoints are registered and delivered under.
    pub fn guard(&self) -> &crate::outbound::Guard {
        &self.deliverer.guard
    }

    /// The stored form of a signing secret (encrypted when a key is set).
    pub fn seal(&self, secret: &signature::Secret) -> signature::Secret {
        signature::Secret(self.deliverer.keys.seal(&secret.0))
    }

    /// Encrypts the secrets stored in clear (or under the previous key)
    /// under the current key. Returns how many were sealed again.
    pub async fn reseal_all(&self) -> Result<usize, StoreError> {
        let keys = self.deliverer.keys.clone();
        if keys.current.is_none() {
            return Ok(0);
        }
        self.deliverer.writer.write(move |tx| store::reseal(tx, &keys)).await
    }

    pub fn new(
        writer: Writer,
        readers: Arc<Readers>,
        clock: SharedClock,
        hub: Arc<Hub>,
        tasks: Arc<Tasks>,
        config: WebhookConfig,
        security: Security,
    ) -> Result<Arc<Webhooks>, String> {
        let deliverer = Deliverer::new(writer, readers, clock, hub, config.clone(), security)
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Arc::new(Webhooks { deliverer, tasks, running: Mutex::new(HashMap::new()), config }))
    }

    /// Starts a worker for every registered endpoint (server start).
    pub async fn start_all(&self) -> Result<(), StoreError> {
        let all = self.deliverer.readers.read(|c| store::endpoints(c, None)).await?;
        for ep in all {
            self.start(ep.id, ep.depot_id);
        }
        Ok(())
    }

    /// Starts endpoint `id`'s worker (once).
    pub fn start(&self, id: i64, depot: DepotId) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(&id) {
            return;
        }
        let handle = Handle { wake: Arc::new(Notify::new()), stop: Arc::new(Notify::new()) };
        let (wake, stop) = (handle.wake.clone(), handle.stop.clone());
        running.insert(id, handle);
        self.tasks.spawn(self.deliverer.clone().run_endpoint(id, depot, wake, stop));
    }

    /// Ends endpoint `id`'s worker (after it was deleted).
    pub fn stop(&self, id: i64) {
        if let Some(h) = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            h.stop.notify_one();
        }
    }

    /// Makes endpoint `id` look at its work again (a replay was queued).
    pub fn poke(&self, id: i64) {
        if let Some(h) = self.running.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            h.wake.notify_one();
        }
    }
}
