//! The exported client object. Async methods already run on the core's own
//! tokio runtime (the core spawns onto it), so they work from Kotlin
//! coroutines and Swift tasks, which have no tokio reactor.

use crate::error::CallaheadError;
use crate::listener::{Bridge, CourierListener};
use crate::types::{
    AutoCallAhead, ClientSettings, ConnectionState, GeoPoint, LeadBounds, PlanSettings, PlannedStop,
    StopState, StopTimeline,
};
use callahead_core::client::{Client, ClientConfig};
use callahead_core::StopId;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

#[derive(uniffi::Object)]
pub struct CourierClient {
    /// `None` once closed; every call after `close()` is an error, not a crash.
    inner: RwLock<Option<Arc<Client>>>,
}

type Result<T> = std::result::Result<T, CallaheadError>;

fn states(v: Vec<callahead_core::client::StopState>) -> Vec<StopState> {
    v.into_iter().map(Into::into).collect()
}

impl CourierClient {
    fn client(&self) -> Result<Arc<Client>> {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        guard.clone().ok_or_else(|| CallaheadError::InvalidInput { detail: "the client is closed".into() })
    }
}

#[uniffi::export]
impl CourierClient {
    /// Opens (or creates) the local database and starts syncing in the
    /// background: queued taps from a previous run are sent when online.
    #[uniffi::constructor]
    pub fn open(settings: ClientSettings, listener: Arc<dyn CourierListener>) -> Result<Arc<Self>> {
        let mut config = ClientConfig::new(settings.db_path, settings.server_url, settings.token);
        config.refresh_token = settings.refresh_token;
        let client = Client::open(config, Arc::new(Bridge(listener)))?;
        Ok(Arc::new(CourierClient { inner: RwLock::new(Some(Arc::new(client))) }))
    }

    /// Downloads the route for `date` (`YYYY-MM-DD`) and stores it locally.
    pub async fn sync_route(&self, date: String) -> Result<Vec<StopState>> {
        let date = date.parse().map_err(|_| CallaheadError::InvalidInput {
            detail: format!("{date:?} is not a date; use YYYY-MM-DD"),
        })?;
        Ok(states(self.client()?.sync_route(date).await?))
    }

    /// The current route from the local database (works offline).
    pub fn stops(&self) -> Result<Vec<StopState>> {
        Ok(states(self.client()?.stops()?))
    }

    /// What "call the next hour" calls: stops reached within `minutes` of
    /// `now` by the planned order's ETAs, window not over, not visited, with
    /// no call yet and nothing queued.
    pub fn stops_due_within(&self, now: SystemTime, minutes: u32) -> Result<Vec<StopState>> {
        Ok(states(self.client()?.stops_due_within(now.into(), minutes)?))
    }

    /// The route in planned order with ETAs and window fit, leaving `origin`
    /// (the courier's GPS position, when known) at `now`. Works offline.
    pub fn plan(&self, now: SystemTime, origin: Option<GeoPoint>) -> Result<Vec<PlannedStop>> {
        let planned = self.client()?.planned(now.into(), origin.map(Into::into))?;
        Ok(planned.into_iter().map(Into::into).collect())
    }

    /// The courier's own order: every stop of the route exactly once. Saved
    /// at once (offline too) and synced to the server in the background.
    pub fn reorder_stops(&self, stop_ids: Vec<i64>) -> Result<Vec<StopState>> {
        let ids: Vec<StopId> = stop_ids.into_iter().map(StopId).collect();
        Ok(states(self.client()?.reorder(&ids)?))
    }

    /// Marks a stop done (or not); visited stops leave the ETA chain.
    pub fn set_visited(&self, stop_id: i64, visited: bool) -> Result<StopState> {
        Ok(self.client()?.set_visited(StopId(stop_id), visited)?.into())
    }

    /// Everything the phone knows happened to a stop (works offline and
    /// after a restart): the events, oldest first, and a tap not yet sent.
    pub fn timeline(&self, stop_id: i64) -> Result<StopTimeline> {
        Ok(self.client()?.timeline(StopId(stop_id))?.into())
    }

    /// Logs a call the courier made themselves on the stop's history (needs
    /// the network). Returns the seq of the logged event.
    pub async fn log_direct_call(&self, stop_id: i64, note: String) -> Result<u64> {
        Ok(self.client()?.log_direct_call(StopId(stop_id), note).await?.seq)
    }

    pub fn plan_settings(&self) -> Result<PlanSettings> {
        Ok(self.client()?.plan_settings()?.into())
    }

    pub fn set_plan_settings(&self, settings: PlanSettings) -> Result<()> {
        Ok(self.client()?.set_plan_settings(settings.into())?)
    }

    pub fn auto_call_ahead(&self) -> Result<AutoCallAhead> {
        Ok(self.client()?.auto_call_ahead()?.into())
    }

    /// The lead times the courier's depot allows: the setting's range.
    pub fn auto_call_lead_bounds(&self) -> Result<LeadBounds> {
        let b = self.client()?.auto_call_lead_bounds()?;
        Ok(LeadBounds { min_minutes: b.min_minutes, max_minutes: b.max_minutes })
    }

    /// "Call ahead automatically": on, each stop is called once when its ETA
    /// comes within the lead time, through the same queue as a tap.
    pub fn set_auto_call_ahead(&self, settings: AutoCallAhead) -> Result<()> {
        Ok(self.client()?.set_auto_call_ahead(settings.into())?)
    }

    /// The phone's GPS position: where the ETAs of automatic call-ahead start.
    pub fn report_position(&self, position: GeoPoint) -> Result<()> {
        Ok(self.client()?.report_position(position.into())?)
    }

    /// The tap: queues a smart call per stop, durably, without the network.
    pub fn request_calls(&self, stop_ids: Vec<i64>) -> Result<Vec<StopState>> {
        let ids: Vec<StopId> = stop_ids.into_iter().map(StopId).collect();
        Ok(states(self.client()?.request_calls(&ids)?))
    }

    pub async fn cancel(&self, stop_id: i64) -> Result<StopState> {
        Ok(self.client()?.cancel(StopId(stop_id)).await?.into())
    }

    /// Smart calls running now (at most 5).
    pub fn active_count(&self) -> Result<u32> {
        Ok(self.client()?.active_count()? as u32)
    }

    pub fn connection_state(&self) -> Result<ConnectionState> {
        Ok(self.client()?.connection_state().into())
    }

    /// Stops the background work; the local database keeps everything.
    /// (Not `close`: Kotlin's generated object already has `close()`, which
    /// frees the native handle.)
    pub fn shutdown(&self) {
        let taken = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(client) = taken.and_then(Arc::into_inner) {
            client.close();
        }
    }
}
