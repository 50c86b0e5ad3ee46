//! The foreign listener: implemented in Kotlin/Swift/Python, called from the
//! core's threads after each change is committed locally.

use crate::types::{CallEvent, ConnectionState, StopState};
use callahead_core::client as core_client;
use callahead_core::wire;
use std::sync::Arc;

#[uniffi::export(foreign)]
pub trait CourierListener: Send + Sync {
    /// A stop's call or outbox state changed.
    fn on_stop_changed(&self, stop: StopState);
    fn on_connection_changed(&self, state: ConnectionState);
    /// A server event was applied and committed locally; the stop it
    /// changed is reported by `on_stop_changed` right after.
    fn on_event(&self, event: CallEvent);
}

/// Adapts a foreign listener to the core's listener trait.
pub(crate) struct Bridge(pub Arc<dyn CourierListener>);

impl core_client::ClientListener for Bridge {
    fn on_stop_changed(&self, stop: core_client::StopState) {
        self.0.on_stop_changed(stop.into());
    }
    fn on_connection_changed(&self, state: core_client::ConnectionState) {
        self.0.on_connection_changed(state.into());
    }
    fn on_event(&self, event: &wire::Event) {
        self.0.on_event(event.into());
    }
}
