//! Mirror types for the bindings, converted from the core's with `From`.
//! Times cross as timestamps (`Instant` in Kotlin, `Date` in Swift).

use crate::error::code_name;
use callahead_core::client as core_client;
use callahead_core::wire;
use chrono::{DateTime, Utc};
use std::time::SystemTime;

fn ts(t: DateTime<Utc>) -> SystemTime {
    t.into()
}

/// Where to find the server and the local database.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientSettings {
    /// Path of the SQLite file (in the app's private storage).
    pub db_path: String,
    /// e.g. `https://callahead.example.com`
    pub server_url: String,
    /// The courier's bearer (access) token.
    pub token: String,
    /// The sign-in's refresh token: the client then refreshes by itself and
    /// keeps the newest pair in its database (docs/adr/0007).
    #[uniffi(default = None)]
    pub refresh_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CallStatus {
    Scheduled,
    Dialing,
    Ringing,
    Answered,
    Finished,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Outcome {
    Confirmed,
    RescheduleRequested,
    Declined,
    WantsCourier,
    NoAnswer,
    Failed,
    /// The delivery window passed before calling hours allowed a call.
    OutsideCallingHours,
    /// The server stopped during the last attempt (not the customer's fault).
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum OutboxState {
    /// Waiting for the network or a free slot (at most 5 calls run at once).
    Queued,
    Sending,
    /// Refused for good; `code` is the server's error code.
    Failed {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    Offline,
    Connecting,
    /// Connected and caught up.
    Online,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stop {
    pub id: i64,
    /// Position as imported.
    pub position: u32,
    /// Position in the courier's planned order.
    pub sequence: u32,
    pub external_id: String,
    pub customer_name: String,
    pub phone: String,
    pub time_zone: String,
    pub address: String,
    pub window_start: SystemTime,
    pub window_end: SystemTime,
    pub order_numbers: Vec<String>,
    /// Amount in minor units, with its ISO 4217 currency.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub location: Option<GeoPoint>,
    /// Where the customer chose to collect the order instead (the parcel
    /// goes there, not to the door).
    pub pickup_point: Option<PickupPoint>,
    /// Set when the customer's answer took the stop out of today's chain:
    /// it stays on the route, gets no ETA and is not called ahead.
    #[uniffi(default = None)]
    pub out_of_chain: Option<OutOfChain>,
}

/// Why a stop left today's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum OutOfChain {
    Declined,
    /// The customer picked a window on another day.
    AnotherDay,
}

/// Why the server re-planned the route (a `route_planned` event with a
/// reason; without one the courier planned it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ReplanReason {
    /// The event's stop was declined: out of today's chain, at the end.
    Declined,
    /// The event's stop moved to another day: out of today's chain.
    AnotherDay,
    /// The event's stop moved to where its new window fits today.
    NewWindowToday,
}

impl From<wire::OutOfChain> for OutOfChain {
    fn from(o: wire::OutOfChain) -> Self {
        match o {
            wire::OutOfChain::Declined => OutOfChain::Declined,
            wire::OutOfChain::AnotherDay => OutOfChain::AnotherDay,
        }
    }
}

impl From<wire::ReplanReason> for ReplanReason {
    fn from(r: wire::ReplanReason) -> Self {
        match r {
            wire::ReplanReason::Declined => ReplanReason::Declined,
            wire::ReplanReason::AnotherDay => ReplanReason::AnotherDay,
            wire::ReplanReason::NewWindowToday => ReplanReason::NewWindowToday,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PickupPoint {
    pub id: String,
    pub name: String,
    pub address: String,
    pub hours: Option<String>,
}

impl From<wire::PickupPoint> for PickupPoint {
    fn from(p: wire::PickupPoint) -> Self {
        PickupPoint { id: p.id, name: p.name, address: p.address, hours: p.hours }
    }
}

/// WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum WindowFit {
    Inside,
    /// Arrives before the window opens (and waits).
    Early,
    /// Arrives after the window closed.
    Late,
}

/// A stop in planned order with its estimated arrival (`None` if visited).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PlannedStop {
    pub state: StopState,
    pub eta: Option<SystemTime>,
    pub window_fit: Option<WindowFit>,
}

/// What ETAs assume.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct PlanSettings {
    /// Minutes at each stop.
    pub service_minutes: u32,
    /// Average speed along the straight line between stops.
    pub speed_kmh: f64,
    /// Minutes for a leg of unknown length.
    pub default_travel_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Call {
    pub id: i64,
    pub status: CallStatus,
    pub outcome: Option<Outcome>,
    pub attempts_made: u32,
    pub max_attempts: u32,
    pub next_attempt_at: Option<SystemTime>,
    pub updated_at: SystemTime,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StopState {
    pub stop: Stop,
    pub call: Option<Call>,
    pub outbox: Option<OutboxState>,
    /// Marked done by the courier; out of the ETA chain.
    pub visited: bool,
    /// Automatic call-ahead started this stop's call at this ETA ("auto:
    /// ETA 10:42"); `None` for a tap or no call.
    pub auto_eta: Option<SystemTime>,
}

/// The lead times a courier's depot allows for automatic call-ahead
/// (within 10–180 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct LeadBounds {
    pub min_minutes: u32,
    pub max_minutes: u32,
}

/// Automatic call-ahead: each stop is called once when its ETA comes within
/// `lead_minutes` (within the depot's bounds, default 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct AutoCallAhead {
    pub enabled: bool,
    pub lead_minutes: u32,
}

impl From<callahead_core::CallStatus> for CallStatus {
    fn from(s: callahead_core::CallStatus) -> Self {
        use callahead_core::CallStatus as C;
        match s {
            C::Scheduled => CallStatus::Scheduled,
            C::Dialing => CallStatus::Dialing,
            C::Ringing => CallStatus::Ringing,
            C::Answered => CallStatus::Answered,
            C::Finished => CallStatus::Finished,
            C::Cancelled => CallStatus::Cancelled,
        }
    }
}

impl From<callahead_core::Outcome> for Outcome {
    fn from(o: callahead_core::Outcome) -> Self {
        use callahead_core::Outcome as O;
        match o {
            O::Confirmed => Outcome::Confirmed,
            O::RescheduleRequested => Outcome::RescheduleRequested,
            O::Declined => Outcome::Declined,
            O::WantsCourier => Outcome::WantsCourier,
            O::NoAnswer => Outcome::NoAnswer,
            O::Failed => Outcome::Failed,
            O::OutsideCallingHours => Outcome::OutsideCallingHours,
            O::Interrupted => Outcome::Interrupted,
        }
    }
}

impl From<core_client::OutboxState> for OutboxState {
    fn from(o: core_client::OutboxState) -> Self {
        match o {
            core_client::OutboxState::Queued => OutboxState::Queued,
            core_client::OutboxState::Sending => OutboxState::Sending,
            core_client::OutboxState::Failed { code, message } => {
                OutboxState::Failed { code: code_name(&code), message }
            }
        }
    }
}

impl From<core_client::ConnectionState> for ConnectionState {
    fn from(c: core_client::ConnectionState) -> Self {
        match c {
            core_client::ConnectionState::Offline => ConnectionState::Offline,
            core_client::ConnectionState::Connecting => ConnectionState::Connecting,
            core_client::ConnectionState::Online => ConnectionState::Online,
        }
    }
}

impl From<wire::Stop> for Stop {
    fn from(s: wire::Stop) -> Self {
        Stop {
            id: s.id.0,
            position: s.position,
            sequence: s.sequence,
            external_id: s.external_id,
            customer_name: s.customer_name,
            phone: s.phone,
            time_zone: s.time_zone,
            address: s.address,
            window_start: ts(s.window_start),
            window_end: ts(s.window_end),
            order_numbers: s.order_numbers,
            amount_minor: s.amount.as_ref().map(|m| m.minor),
            currency: s.amount.map(|m| m.currency),
            location: s.location.map(Into::into),
            pickup_point: s.pickup_point.map(Into::into),
            out_of_chain: s.out_of_chain.map(Into::into),
        }
    }
}

impl From<wire::CallView> for Call {
    fn from(c: wire::CallView) -> Self {
        Call {
            id: c.id.0,
            status: c.status.into(),
            outcome: c.outcome.map(Into::into),
            attempts_made: c.attempts_made,
            max_attempts: c.max_attempts,
            next_attempt_at: c.next_attempt_at.map(ts),
            updated_at: ts(c.updated_at),
        }
    }
}

impl From<core_client::StopState> for StopState {
    fn from(s: core_client::StopState) -> Self {
        StopState {
            stop: s.stop.into(),
            call: s.call.map(Into::into),
            outbox: s.outbox.map(Into::into),
            visited: s.visited,
            auto_eta: s.auto_eta.map(ts),
        }
    }
}

/// One server event, as the courier's core applied it. `kind` is the wire
/// name (`attempt_placed`, `key_pressed`, `call_finished`…); the optional
/// fields are filled where that kind carries them.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CallEvent {
    pub seq: u64,
    pub kind: String,
    pub stop_id: Option<i64>,
    pub attempt: Option<u32>,
    pub key: Option<String>,
    /// How an attempt ended (`completed`, `no_answer`, `busy`…).
    pub attempt_result: Option<String>,
    pub outcome: Option<Outcome>,
    /// For `courier_bridged`: whether the customer was put through (false:
    /// the courier was busy; call them back).
    pub connected: Option<bool>,
    /// For `direct_call_logged`: the courier's note; for
    /// `reschedule_sms_failed`: why; for `pickup_point_chosen`: the point's
    /// name; for `message_delivered`: the channel (`messenger_a`, `sms`…).
    pub note: Option<String>,
    /// For `route_planned`: why the server re-planned the route around the
    /// event's stop; `None` when the courier planned it.
    #[uniffi(default = None)]
    pub replan_reason: Option<ReplanReason>,
    /// Server (domain) time of the change.
    pub at: SystemTime,
    /// Wall-clock ms when its cause happened on the server side (a key
    /// press, a request): the start of the push-latency measurement.
    pub origin_wall_ms: i64,
    pub call: Option<Call>,
}

/// A stop's story for the "why" screen, kept on the phone.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StopTimeline {
    /// Every server event about the stop, oldest first.
    pub events: Vec<CallEvent>,
    /// When the courier tapped, if the request has not reached the server.
    pub requested_at: Option<SystemTime>,
}

impl From<core_client::Timeline> for StopTimeline {
    fn from(t: core_client::Timeline) -> Self {
        StopTimeline {
            events: t.events.iter().map(Into::into).collect(),
            requested_at: t.requested_at.map(ts),
        }
    }
}

fn wire_name<T: serde::Serialize>(v: &T) -> Option<String> {
    match serde_json::to_value(v).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(m) => m.get("type").and_then(|t| t.as_str()).map(str::to_owned),
        _ => None,
    }
}

impl From<&wire::Event> for CallEvent {
    fn from(e: &wire::Event) -> Self {
        use wire::EventKind as K;
        let (mut attempt, mut key, mut attempt_result, mut outcome) = (None, None, None, None);
        let connected = match e.kind {
            K::CourierBridged { connected, .. } => Some(connected),
            _ => None,
        };
        let note = match &e.kind {
            K::DirectCallLogged { note, .. } => Some(note.clone()),
            K::RescheduleSmsFailed { reason } => Some(reason.clone()),
            K::PickupPointChosen { pickup_point } => Some(pickup_point.name.clone()),
            K::MessageDelivered { channel, .. } => Some(channel.as_str().to_owned()),
            K::WaitingForLine { reason, .. } => Some(reason.as_str().to_owned()),
            K::ProviderRejected { reason, .. } => Some(reason.clone()),
            K::DirectCallRecorded { recording_ref, .. } => Some(recording_ref.clone()),
            _ => None,
        };
        match &e.kind {
            K::AttemptPlaced { attempt: a }
            | K::Ringing { attempt: a }
            | K::Answered { attempt: a }
            | K::CourierBridged { attempt: a, .. }
            | K::WaitingForLine { attempt: a, .. }
            | K::ProviderRejected { attempt: a, .. } => attempt = Some(*a),
            K::KeyPressed { attempt: a, key: k } => {
                attempt = Some(*a);
                key = Some(k.to_string());
            }
            K::AttemptEnded { attempt: a, result } => {
                attempt = Some(*a);
                attempt_result = wire_name(result);
            }
            K::CallFinished { outcome: o } => outcome = Some((*o).into()),
            K::CallRequested
            | K::CallCancelled
            | K::CallDeferred { .. }
            | K::DirectCallLogged { .. }
            | K::RouteReplaced { .. }
            | K::RoutePlanned { .. }
            | K::RescheduleOffered { .. }
            | K::StopRescheduled { .. }
            | K::PickupPointChosen { .. }
            | K::DeliveryConfirmed { .. }
            | K::CampaignStepTaken { .. }
            | K::CampaignLeft { .. }
            | K::RescheduleSmsFailed { .. }
            | K::MessageDelivered { .. }
            | K::AppConnection { .. }
            | K::CourierPosition { .. }
            | K::DirectDialPlaced { .. }
            | K::DirectDialEnded { .. }
            | K::DirectCallRecorded { .. } => {}
        }
        let replan_reason = match e.kind {
            K::RoutePlanned { reason, .. } => reason.map(Into::into),
            _ => None,
        };
        CallEvent {
            seq: e.seq,
            kind: wire_name(&e.kind).unwrap_or_default(),
            stop_id: e.stop_id.map(|s| s.0),
            attempt,
            key,
            attempt_result,
            outcome,
            connected,
            note,
            replan_reason,
            at: ts(e.at),
            origin_wall_ms: e.origin_wall_ms,
            call: e.call.clone().map(Into::into),
        }
    }
}

impl From<wire::GeoPoint> for GeoPoint {
    fn from(p: wire::GeoPoint) -> Self {
        GeoPoint { lat: p.lat, lon: p.lon }
    }
}

impl From<GeoPoint> for wire::GeoPoint {
    fn from(p: GeoPoint) -> Self {
        wire::GeoPoint { lat: p.lat, lon: p.lon }
    }
}

impl From<core_client::WindowFit> for WindowFit {
    fn from(f: core_client::WindowFit) -> Self {
        match f {
            core_client::WindowFit::Inside => WindowFit::Inside,
            core_client::WindowFit::Early => WindowFit::Early,
            core_client::WindowFit::Late => WindowFit::Late,
        }
    }
}

impl From<core_client::PlannedStop> for PlannedStop {
    fn from(p: core_client::PlannedStop) -> Self {
        PlannedStop { state: p.state.into(), eta: p.eta.map(ts), window_fit: p.fit.map(Into::into) }
    }
}

impl From<core_client::PlanSettings> for PlanSettings {
    fn from(s: core_client::PlanSettings) -> Self {
        PlanSettings {
            service_minutes: s.service_minutes,
            speed_kmh: s.speed_kmh,
            default_travel_minutes: s.default_travel_minutes,
        }
    }
}

impl From<core_client::AutoCallAhead> for AutoCallAhead {
    fn from(s: core_client::AutoCallAhead) -> Self {
        AutoCallAhead { enabled: s.enabled, lead_minutes: s.lead_minutes }
    }
}

impl From<AutoCallAhead> for core_client::AutoCallAhead {
    fn from(s: AutoCallAhead) -> Self {
        core_client::AutoCallAhead { enabled: s.enabled, lead_minutes: s.lead_minutes }
    }
}

impl From<PlanSettings> for core_client::PlanSettings {
    fn from(s: PlanSettings) -> Self {
        core_client::PlanSettings {
            service_minutes: s.service_minutes,
            speed_kmh: s.speed_kmh,
            default_travel_minutes: s.default_travel_minutes,
        }
    }
}
