//! What the app sees: the state of each stop, the connection, and the
//! listener that is told about every change after it is committed locally.

use crate::planning::WindowFit;
use crate::wire::{CallView, ErrorCode, Event, Stop};
use chrono::{DateTime, Utc};

/// One stop as the courier app shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StopState {
    pub stop: Stop,
    /// The latest known server state of the stop's most recent smart call.
    pub call: Option<CallView>,
    /// A tap for this stop that has not reached the server (or was refused).
    pub outbox: Option<OutboxState>,
    /// The courier marked the stop done; it leaves the ETA chain.
    pub visited: bool,
    /// Automatic call-ahead requested this stop's call when its ETA was
    /// this ("auto: ETA 10:42"); `None` for a tap or no call.
    pub auto_eta: Option<DateTime<Utc>>,
}

/// A stop's story as this phone knows it: why it shows what it shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Every server event about the stop, in order (requested, each
    /// attempt ringing / answered / key pressed / ended, outcome…).
    pub events: Vec<Event>,
    /// When the courier tapped, if the request has not reached the server.
    pub requested_at: Option<DateTime<Utc>>,
}

/// A stop in the courier's planned order with its estimated arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStop {
    pub state: StopState,
    /// `None` for a visited stop and one out of today's chain
    /// (`stop.out_of_chain`: the customer declined or moved to another day).
    pub eta: Option<DateTime<Utc>>,
    /// How the ETA relates to the delivery window; `None` without an ETA.
    pub fit: Option<WindowFit>,
}

/// A local request that the server has not accepted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxState {
    /// Waiting for the network or for a free slot under the active-call cap.
    Queued,
    /// On its way to the server.
    Sending,
    /// The server refused it for good; tapping again makes a new request.
    Failed { code: ErrorCode, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Offline,
    Connecting,
    /// Connected and caught up with the server's event log.
    Online,
}

/// Receives changes. Called from the client's own threads, after the change
/// is committed to the local database; implementations should return quickly.
pub trait ClientListener: Send + Sync + 'static {
    /// Any change of a stop's call or outbox state.
    fn on_stop_changed(&self, stop: StopState);
    fn on_connection_changed(&self, state: ConnectionState);
    /// A server event was applied and committed.
    fn on_event(&self, event: &Event) {
        let _ = event;
    }
}
