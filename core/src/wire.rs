//! The wire protocol, version [`crate::PROTOCOL_VERSION`]: every HTTP body,
//! every websocket frame, and the error shape. Defined once; the server
//! serves these and the client parses these.

use crate::call::{AttemptResult, CallStatus, Key, Outcome};
use crate::channel::Channel;
use crate::ids::{CallId, CourierId, DepotId, StopId, SupervisorId};
use crate::policy::AttemptPolicy;
use crate::template::Language;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// URL paths, shared so client and server cannot drift apart.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const OPENAPI: &str = "/openapi.json";
    pub const DEPOTS: &str = "/v1/depots";
    /// `POST`: admin creates a courier in depot `{depot_id}`.
    pub const DEPOT_COURIERS: &str = "/v1/depots/{depot_id}/couriers";
    pub const DEPOT_SUPERVISORS: &str = "/v1/depots/{depot_id}/supervisors";
    pub const DEPOT_INTEGRATOR_KEYS: &str = "/v1/depots/{depot_id}/integrator-keys";
    pub const DEPOT_TEMPLATES: &str = "/v1/depots/{depot_id}/templates";
    pub const DEPOT_PICKUP_POINTS: &str = "/v1/depots/{depot_id}/pickup-points";
    pub const DEPOT_CAMPAIGNS: &str = "/v1/depots/{depot_id}/campaigns";
    pub const CAMPAIGN_RUNS: &str = "/v1/depots/{depot_id}/campaigns/{campaign_id}/runs";
    pub const DEPOT_TRIGGER_RULES: &str = "/v1/depots/{depot_id}/trigger-rules";
    pub const DEPOT_OPERATOR_QUEUE: &str = "/v1/depots/{depot_id}/operator-queue";
    pub const DEPOT_ORDER_EVENTS: &str = "/v1/depots/{depot_id}/order-events";
    /// `GET ?date=YYYY-MM-DD[&format=json|csv]`: the depot's day in numbers.
    pub const DEPOT_DAILY_REPORT: &str = "/v1/depots/{depot_id}/reports/daily";
    /// `PUT`: integrator imports or replaces a courier's route for a date.
    pub const COURIER_ROUTE: &str = "/v1/couriers/{courier_id}/routes/{date}";
    /// `GET ?date=`: the courier's own route with each stop's latest call.
    pub const MY_ROUTE: &str = "/v1/me/route";
    pub const MY_ROUTE_PLAN: &str = "/v1/me/route/plan";
    /// The courier's position from the phone's GPS, for the supervisor's map.
    pub const MY_POSITION: &str = "/v1/me/position";
    /// `POST`: request a smart call. `GET ?courier_id=&date=`: list calls.
    pub const CALLS: &str = "/v1/calls";
    pub const DIRECT_CALLS: &str = "/v1/direct-calls";
    pub const DIRECT_DIALS: &str = "/v1/direct-calls/dial";
    pub const DEPOT_RECORDING: &str = "/v1/depots/{depot_id}/recording";
    pub const CALL: &str = "/v1/calls/{call_id}";
    pub const CALL_CANCEL: &str = "/v1/calls/{call_id}/cancel";
    /// Websocket: `GET /v1/ws?after=SEQ`.
    pub const WS: &str = "/v1/ws";
    /// `GET`: the supervisor dashboard (HTML), its script and style sheet.
    pub const DASHBOARD: &str = "/dashboard";
    pub const DASHBOARD_SCRIPT: &str = "/dashboard/app.js";
    pub const DASHBOARD_STYLE: &str = "/dashboard/app.css";
    /// `GET ?date=`: a depot's live overview (couriers, calls, rates).
    pub const DEPOT_DASHBOARD: &str = "/v1/depots/{depot_id}/dashboard";
    /// `GET`: every call, attempt and event of one stop.
    pub const STOP_TIMELINE: &str = "/v1/stops/{stop_id}/timeline";
    /// `GET ?after=&limit=`: the event log, scoped like the websocket.
    pub const EVENTS: &str = "/v1/events";
    /// The customer's reschedule page (the link in the SMS): `GET` shows
    /// the offered slots, `POST` (form) picks one.
    pub const RESCHEDULE: &str = "/r/{token}";
    /// `POST`: register a webhook endpoint for the depot; `GET`: list them.
    pub const DEPOT_WEBHOOKS: &str = "/v1/depots/{depot_id}/webhooks";
    /// `GET`: one endpoint and its delivery state; `DELETE`: remove it.
    pub const WEBHOOK: &str = "/v1/webhooks/{webhook_id}";
    pub const WEBHOOK_ROTATE_SECRET: &str = "/v1/webhooks/{webhook_id}/rotate-secret";
    /// `GET`: failed delivery attempts, newest first.
    pub const WEBHOOK_FAILURES: &str = "/v1/webhooks/{webhook_id}/failures";
    /// `GET`: events given up after the endpoint's attempt limit.
    pub const WEBHOOK_DEAD_LETTERS: &str = "/v1/webhooks/{webhook_id}/dead-letters";
    /// `POST`: deliver every dead letter again.
    pub const WEBHOOK_REPLAY_ALL: &str = "/v1/webhooks/{webhook_id}/dead-letters/replay";
    /// `POST`: deliver one dead letter again.
    pub const WEBHOOK_REPLAY: &str = "/v1/webhooks/{webhook_id}/dead-letters/{seq}/replay";
    /// `POST`: a courier app exchanges its refresh token for a new pair.
    pub const AUTH_REFRESH: &str = "/v1/auth/refresh";
    /// `GET ?depot_id=`: admin lists tokens (never the tokens themselves).
    pub const TOKENS: &str = "/v1/tokens";
    /// `GET`/`PUT`: a depot's quotas and allowed destinations (admin).
    pub const DEPOT_SEND_LIMITS: &str = "/v1/depots/{depot_id}/send-limits";
    /// `GET`/`PUT`: a depot's retention of personal data (admin).
    pub const DEPOT_RETENTION: &str = "/v1/depots/{depot_id}/retention";
    /// The depot's call-ahead settings: what the savings figures assume and
    /// the bounds of the couriers' automatic call-ahead lead time.
    pub const DEPOT_CALL_AHEAD: &str = "/v1/depots/{depot_id}/call-ahead";
    /// `POST`: erase one customer's personal data (GDPR / 152-FZ request).
    pub const DEPOT_ERASURE: &str = "/v1/depots/{depot_id}/erasure";
    /// `POST`: admin revokes a token (and the rest of its sign-in).
    pub const TOKEN_REVOKE: &str = "/v1/tokens/{token_id}/revoke";
    /// `POST`: admin signs a courier in again (a new phone): a new pair.
    pub const COURIER_TOKENS: &str = "/v1/couriers/{courier_id}/tokens";
    pub const COURIER_DEACTIVATE: &str = "/v1/couriers/{courier_id}/deactivate";
    pub const SUPERVISOR_TOKENS: &str = "/v1/supervisors/{supervisor_id}/tokens";
    pub const SUPERVISOR_DEACTIVATE: &str = "/v1/supervisors/{supervisor_id}/deactivate";
    /// `GET`: Prometheus metrics (admin or metrics token).
    pub const METRICS: &str = "/metrics";
    /// `GET ?date=`: the audit chain's head, or its last link of a UTC day.
    pub const AUDIT_DIGEST: &str = "/v1/audit/digest";
    /// `GET ?format=json|csv`: one stop's (order's) every event with its links.
    pub const STOP_AUDIT: &str = "/v1/stops/{stop_id}/audit";

    /// Fills `{name}` placeholders, e.g. `fill(CALL, &[("call_id", "7")])`.
    pub fn fill(template: &str, params: &[(&str, &str)]) -> String {
        params.iter().fold(template.to_owned(), |acc, (k, v)| acc.replace(&format!("{{{k}}}"), v))
    }
}

// ---------------------------------------------------------------- errors

/// Stable, machine-readable error codes. Integrators switch on these; the
/// message is for humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON or not the expected shape.
    MalformedJson,
    /// `Content-Type: application/json` is required.
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
    InvalidPhone,
    InvalidTimeZone,
    InvalidDate,
    /// No `Authorization: Bearer` token.
    MissingToken,
    /// The token is unknown or revoked.
    InvalidToken,
    TokenExpired,
    /// Authenticated, but this role may not do this.
    Forbidden,
    /// No such stop, or it is not yours (we do not reveal which).
    StopNotFound,
    CallNotFound,
    DepotNotFound,
    CourierNotFound,
    CampaignNotFound,
    NotFound,
    MethodNotAllowed,
    /// The courier already has the maximum of active smart calls.
    TooManyActiveCalls,
    /// This idempotency key was used for a different stop.
    IdempotencyKeyReused,
    /// The stop was removed from the route.
    StopRemoved,
    /// The call already finished or was cancelled.
    CallAlreadyFinished,
    /// The stop already has an active smart call.
    CallAlreadyActive,
    /// A planned order that is not exactly the route's live stops: the route
    /// changed meanwhile; sync it and plan again.
    PlanMismatch,
    /// No such webhook endpoint, or not in your depot.
    WebhookNotFound,
    /// No dead letter with that seq on this endpoint.
    DeadLetterNotFound,
    /// A provider callback whose signature does not verify (forged, or for
    /// another URL or attempt): nothing was changed.
    ProviderSignatureInvalid,
    /// A correctly signed provider callback outside its freshness window (a
    /// replay): nothing was changed.
    ProviderCallbackReplayed,
    /// No provider of that name is configured on this server.
    ProviderNotConfigured,
    /// Direct calls through the provider need a real telephony provider
    /// (the simulator connects nobody).
    DirectDialUnavailable,
    /// Too many requests of this kind from this address or token: wait for
    /// the `Retry-After` seconds.
    RateLimited,
    /// The body did not arrive, or the answer was not ready, in time.
    RequestTimeout,
    /// This token (or this courier) already has the most websockets allowed.
    TooManySockets,
    /// The depot's daily quota for this kind of send is used up: nothing
    /// was sent; it resets at midnight in the depot's time zone.
    QuotaExceeded,
    /// A customer's number is in a country the depot may not call or text.
    DestinationNotAllowed,
    /// A refresh token that was already exchanged was presented again: the
    /// whole sign-in it belongs to is revoked. Sign in again.
    TokenReused,
    /// The courier or supervisor was deactivated.
    AccountDeactivated,
    /// No such token (by id).
    TokenNotFound,
    /// The bootstrap admin token is not revoked through the API: it is
    /// replaced by changing `CALLAHEAD_ADMIN_TOKEN` and restarting.
    BootstrapTokenNotRevocable,
    /// No such supervisor in your scope.
    SupervisorNotFound,
    /// The request conflicts with stored data (a duplicate, a reference to
    /// something missing).
    Conflict,
    Internal,
    /// The server is shutting down or overloaded; retry later.
    Unavailable,
    /// A websocket resume cursor (`after`) beyond the log's head: the client
    /// holds events this log does not have (the database was restored or
    /// replaced). Drop the cursor, fetch the route again and resume from its
    /// `head_seq`; the client core does so by itself.
    CursorAhead,
}

impl ErrorCode {
    /// Whether retrying the same request later can succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::TooManyActiveCalls
                | ErrorCode::Internal
                | ErrorCode::Unavailable
                | ErrorCode::RateLimited
                | ErrorCode::RequestTimeout
                | ErrorCode::TooManySockets
        )
    }
}

/// Every error response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The offending field, when one is to blame (`stops[3].phone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ---------------------------------------------------------------- admin

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateDepot {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub name: String,
    /// IANA time zone of the depot, e.g. `Europe/Moscow`.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: String,
    /// Defaults to 3 attempts, 15 minutes apart.
    #[serde(default)]
    pub policy: Option<AttemptPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Depot {
    pub id: DepotId,
    pub name: String,
    pub time_zone: String,
    pub policy: AttemptPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateCourier {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub name: String,
    /// The courier's phone, E.164: customers who press 0 are bridged here.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{7,14}$"))]
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Courier {
    pub id: CourierId,
    pub depot_id: DepotId,
    pub name: String,
    pub phone: String,
}

/// A created account and its bearer token. The token is shown once: only
/// its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedCourier {
    pub courier: Courier,
    /// The courier app's access token (a bearer token, short-lived).
    pub token: String,
    /// When `token` stops working; refresh before.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Exchanged once at `POST /v1/auth/refresh` for a new pair.
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// A courier app's sign-in: an access token and the refresh token that
/// replaces both (docs/adr/0007). Each refresh token works once: showing
/// it again revokes the whole sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenPair {
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds `token` lives from now: a phone whose clock is off counts
    /// from its own clock (OAuth's `expires_in`).
    #[serde(default)]
    pub expires_in: Option<u64>,
    pub refresh_token: String,
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RefreshRequest {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub refresh_token: String,
}

/// A depot's guard against SMS pumping and runaway campaigns: daily
/// quotas (midnight to midnight in the depot's time zone) and the number
/// prefixes customers may be called or texted at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SendLimits {
    /// SMS (segments are not counted apart) the depot may send a day.
    #[cfg_attr(feature = "openapi", schema(maximum = 1000000))]
    pub sms_per_day: u32,
    /// Smart calls the depot may request a day.
    #[cfg_attr(feature = "openapi", schema(maximum = 1000000))]
    pub calls_per_day: u32,
    /// E.164 prefixes (`+7`, `+375`): a customer's number must start with one.
    pub allowed_destinations: Vec<String>,
}

/// A point of the audit chain to keep (docs/audit.md): whoever holds it can
/// later prove the log up to `seq` was not rewritten (`callahead-server
/// audit verify --expect SEQ:HASH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditDigest {
    /// 0 while the log is empty.
    pub seq: u64,
    /// When that event happened; absent while the log is empty.
    pub at: Option<DateTime<Utc>>,
    /// The chain's SHA-256 link at `seq`, 64 hex digits.
    pub hash: String,
}

/// One logged event as stored, with the links that chain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditRecord {
    pub seq: u64,
    /// Milliseconds since the epoch, as hashed.
    pub at_ms: i64,
    pub origin_wall_ms: i64,
    pub depot_id: i64,
    pub courier_id: i64,
    pub stop_id: Option<i64>,
    /// The event's type (`kind.type`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's kind, the JSON text exactly as stored and hashed.
    pub kind: String,
    /// The call snapshot, the JSON text exactly as stored and hashed.
    pub call: Option<String>,
    /// The link of the event before (`seq - 1`); zeros for the first.
    pub prev_hash: String,
    pub hash: String,
}

/// One stop's (one order's) whole history with its chain proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditExport {
    pub stop_id: i64,
    /// The order's reference in the company's system.
    pub external_id: String,
    pub order_numbers: Vec<String>,
    pub records: Vec<AuditRecord>,
    /// The chain's head when exported: records link up to it.
    pub head: AuditDigest,
}

/// How long a depot keeps its customers' personal data after a route's date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub days: u32,
}

/// `GET`/`PUT /v1/depots/{depot_id}/call-ahead`. Every field has a default,
/// so a `PUT` names only what it changes from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallAheadSettings {
    /// Minutes a courier would spend phoning one customer by hand: each
    /// robot attempt saves that much (default 2).
    #[serde(default = "default_minutes_per_manual_call")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 60))]
    pub minutes_per_manual_call: u32,
    /// What the telephony provider bills per started minute of an answered
    /// robot call, in minor units of the server's currency (default 0: the
    /// cost figures count messages only).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000))]
    pub call_minute_price_minor: i64,
    /// The lead times a courier may choose for automatic call-ahead.
    #[serde(default)]
    pub auto_lead: crate::auto_call::LeadBounds,
}

fn default_minutes_per_manual_call() -> u32 {
    crate::savings::DEFAULT_MINUTES_PER_MANUAL_CALL
}

impl Default for CallAheadSettings {
    fn default() -> Self {
        Self {
            minutes_per_manual_call: default_minutes_per_manual_call(),
            call_minute_price_minor: 0,
            auto_lead: crate::auto_call::LeadBounds::default(),
        }
    }
}

impl CallAheadSettings {
    /// The first field out of range, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.minutes_per_manual_call > crate::savings::MAX_MINUTES_PER_MANUAL_CALL {
            return Err((
                "minutes_per_manual_call",
                format!("at most {} minutes", crate::savings::MAX_MINUTES_PER_MANUAL_CALL),
            ));
        }
        if !(0..=1_000_000).contains(&self.call_minute_price_minor) {
            return Err(("call_minute_price_minor", "0 to 1000000 minor units".into()));
        }
        self.auto_lead.check().map_err(|m| ("auto_lead", m))
    }
}

/// `POST /v1/depots/{depot_id}/erasure`: a customer asked to be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    /// The customer's number, E.164.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{7,14}$"))]
    pub phone: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Erased {
    /// Stops whose customer data was erased (ids and outcomes stay).
    pub stops: u32,
    /// Texts whose number was erased.
    pub messages: u32,
}

/// A stored token as an admin sees it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenInfo {
    pub id: i64,
    /// `admin`, `supervisor`, `courier` or `integrator`.
    pub role: String,
    /// `access`, `refresh` or `bootstrap` (the `CALLAHEAD_ADMIN_TOKEN` one).
    pub kind: String,
    /// The courier's or supervisor's id.
    pub subject_id: Option<i64>,
    pub depot_id: Option<DepotId>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Accurate to a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// A supervisor's new token (the old ones keep working until revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateSupervisor {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Supervisor {
    pub id: SupervisorId,
    pub depot_id: DepotId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedSupervisor {
    pub supervisor: Supervisor,
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateIntegratorKey {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedIntegratorKey {
    pub depot_id: DepotId,
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------- routes

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Money {
    /// Amount in minor units (kopecks, cents).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub minor: i64,
    /// ISO 4217 code.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
}

/// A point on Earth, WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GeoPoint {
    #[cfg_attr(feature = "openapi", schema(minimum = -90, maximum = 90))]
    pub lat: f64,
    #[cfg_attr(feature = "openapi", schema(minimum = -180, maximum = 180))]
    pub lon: f64,
}

/// One stop as the integrator sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StopInput {
    /// The integrator's id for this delivery; stable across re-imports.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub external_id: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub customer_name: String,
    /// E.164, e.g. `+79161234567`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{7,14}$"))]
    pub phone: String,
    /// The customer's IANA time zone.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 500,
            pattern = r"^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
        )
    )]
    pub address: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    #[serde(default)]
    pub order_numbers: Vec<String>,
    #[serde(default)]
    pub amount: Option<Money>,
    /// Where the stop is; lets the courier's app estimate travel times.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    /// The customer's language for the robot's message; the depot's
    /// default when absent or not translated.
    #[serde(default)]
    pub language: Option<Language>,
}

/// `PUT /v1/couriers/{courier_id}/routes/{date}`: the whole route for that
/// date. Stops are matched on `external_id`; stops missing from a new import
/// are marked removed (kept for audit) and their active calls cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RouteImport {
    pub stops: Vec<StopInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Stop {
    pub id: StopId,
    pub courier_id: CourierId,
    pub depot_id: DepotId,
    pub route_date: NaiveDate,
    /// Position in the route as imported, from 0.
    pub position: u32,
    /// Position in the courier's planned order, from 0. Equals `position`
    /// until the courier reorders the route.
    #[serde(default)]
    pub sequence: u32,
    pub external_id: String,
    pub customer_name: String,
    pub phone: String,
    pub time_zone: String,
    pub address: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub order_numbers: Vec<String>,
    pub amount: Option<Money>,
    #[serde(default)]
    pub location: Option<GeoPoint>,
    #[serde(default)]
    pub language: Option<Language>,
    /// Set when the customer chose to collect the order at a pickup point.
    #[serde(default)]
    pub pickup_point: Option<PickupPoint>,
    /// Set when the customer's answer took the stop out of today's chain
    /// (docs/adr/0010): it stays on the route, gets no ETA and is not
    /// called ahead.
    #[serde(default)]
    pub out_of_chain: Option<OutOfChain>,
}

/// Why a stop left the day's chain of deliveries (docs/adr/0010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutOfChain {
    /// The customer declined the delivery.
    Declined,
    /// The customer picked a window on another day.
    AnotherDay,
}

impl OutOfChain {
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfChain::Declined => "declined",
            OutOfChain::AnotherDay => "another_day",
        }
    }
}

/// Why the server re-planned a courier's route (docs/adr/0010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplanReason {
    /// The customer declined: the stop left today's chain (to the end).
    Declined,
    /// The customer picked a window on another day: the stop left today's
    /// chain (to the end).
    AnotherDay,
    /// The customer picked another window today: the stop moved to where
    /// that window fits (and is back in the chain if it had left it).
    NewWindowToday,
}

impl ReplanReason {
    /// Where the event's stop stands after this re-plan.
    pub fn out_of_chain(self) -> Option<OutOfChain> {
        match self {
            ReplanReason::Declined => Some(OutOfChain::Declined),
            ReplanReason::AnotherDay => Some(OutOfChain::AnotherDay),
            ReplanReason::NewWindowToday => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplanReason::Declined => "declined",
            ReplanReason::AnotherDay => "another_day",
            ReplanReason::NewWindowToday => "new_window_today",
        }
    }
}

/// A place where a customer may collect their order (a depot's own shop,
/// a partner's counter, a parcel locker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PickupPoint {
    /// The depot's own code for it, unique within the depot.
    pub id: String,
    pub name: String,
    pub address: String,
    /// Opening hours as shown to customers ("Mon–Sat 10:00–20:00").
    #[serde(default)]
    pub hours: Option<String>,
}

/// A depot's pickup points, as saved and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PickupPoints {
    pub pickup_points: Vec<PickupPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RouteStop {
    pub stop: Stop,
    /// The stop's most recent smart call, if any.
    pub call: Option<CallView>,
}

/// A route as of event `head_seq`: a client that stores it may resume the
/// websocket from `head_seq` without missing anything. Stops come in the
/// courier's planned order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Route {
    pub courier_id: CourierId,
    pub date: NaiveDate,
    pub stops: Vec<RouteStop>,
    pub head_seq: u64,
    /// The lead times the courier's depot allows for automatic call-ahead.
    #[serde(default)]
    pub auto_lead: crate::auto_call::LeadBounds,
}

/// A latitude or longitude in degrees. Never NaN (JSON cannot carry one,
/// and ranges are checked at the boundary), so it is `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(transparent)]
pub struct Degrees(pub f64);

impl Eq for Degrees {}

/// `PUT /v1/me/position`: where the courier's phone was at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PositionReport {
    #[cfg_attr(feature = "openapi", schema(value_type = f64, minimum = -90, maximum = 90))]
    pub lat: Degrees,
    #[cfg_attr(feature = "openapi", schema(value_type = f64, minimum = -180, maximum = 180))]
    pub lon: Degrees,
    /// When the phone took the fix.
    pub at: DateTime<Utc>,
}

/// The answer to a position report. Supervisors' feeds get at most one
/// position per courier every [`POSITION_EVERY_SECS`] (domain time): a
/// report sooner than that is acknowledged and not logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PositionReceipt {
    pub logged: bool,
}

/// The least time between two logged positions of one courier, in seconds.
pub const POSITION_EVERY_SECS: i64 = 15;

/// A courier's last logged position, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CourierPosition {
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub lat: Degrees,
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub lon: Degrees,
    /// When the phone took the fix.
    pub reported_at: DateTime<Utc>,
}

/// `PUT /v1/me/route/plan`: the courier's planned order of a route, every
/// live stop exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoutePlan {
    pub date: NaiveDate,
    pub stop_ids: Vec<StopId>,
}

// ---------------------------------------------------------------- calls

/// `POST /v1/calls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateCall {
    pub stop_id: StopId,
    /// Generated by the client when the courier taps; a retry with the same
    /// key returns the same call instead of placing another.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[!-~]{8,128}$"))]
    pub idempotency_key: String,
    /// This call's deviations from the depot's attempt policy. Calling
    /// hours are the depot's and cannot be overridden per call.
    #[serde(default)]
    pub policy: Option<PolicyOverride>,
}

/// `POST /v1/direct-calls`: the courier phoned the customer themselves (a
/// site pass, a gate code…); logged in the stop's history and the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogDirectCall {
    pub stop_id: StopId,
    /// Client-generated; a retry with the same key logs nothing more.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[!-~]{8,128}$"))]
    pub idempotency_key: String,
    /// What it was about, up to 500 characters.
    pub note: String,
    /// When the courier called; defaults to now.
    #[serde(default)]
    pub called_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectCall {
    pub id: i64,
    pub stop_id: StopId,
    pub note: String,
    pub called_at: DateTime<Utc>,
    /// Seq of the `direct_call_logged` event.
    pub seq: u64,
}

/// `POST /v1/direct-calls/dial`: the courier calls the customer through the
/// provider (click-to-call). The courier's phone rings first, then the
/// customer's; each sees the company's number, never the other's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DialDirect {
    pub stop_id: StopId,
    /// Client-generated; a retry with the same key rings nobody again.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectDial {
    pub id: i64,
    pub stop_id: StopId,
    /// The depot records direct calls: this one is being recorded.
    pub recorded: bool,
    pub created_at: DateTime<Utc>,
}

/// `PUT /v1/depots/{depot_id}/recording`: whether the depot's direct calls
/// through the provider are recorded (the recording stays at the provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectCallRecording {
    pub record_direct_calls: bool,
}

/// Per-call changes to the depot's attempt policy; absent fields keep it.
/// Unknown fields are refused (it is also read from inside a campaign step,
/// where the server's strict extractor cannot see them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub retry_spacing_secs: Option<u32>,
    #[serde(default)]
    pub ring_timeout_secs: Option<u32>,
    #[serde(default)]
    pub stop_at_window_start: Option<bool>,
    #[serde(default)]
    pub min_heard_secs: Option<u32>,
    #[serde(default)]
    pub machine_detection: Option<bool>,
    #[serde(default)]
    pub retry_at_best_hour: Option<bool>,
}

impl PolicyOverride {
    /// `base` with this override applied.
    pub fn apply(&self, base: &AttemptPolicy) -> AttemptPolicy {
        AttemptPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            retry_spacing_secs: self.retry_spacing_secs.unwrap_or(base.retry_spacing_secs),
            ring_timeout_secs: self.ring_timeout_secs.unwrap_or(base.ring_timeout_secs),
            calling_hours: base.calling_hours,
            stop_at_window_start: self.stop_at_window_start.unwrap_or(base.stop_at_window_start),
            min_heard_secs: self.min_heard_secs.unwrap_or(base.min_heard_secs),
            machine_detection: self.machine_detection.unwrap_or(base.machine_detection),
            retry_at_best_hour: self.retry_at_best_hour.unwrap_or(base.retry_at_best_hour),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallView {
    pub id: CallId,
    pub stop_id: StopId,
    pub courier_id: CourierId,
    pub depot_id: DepotId,
    pub idempotency_key: String,
    pub status: CallStatus,
    pub outcome: Option<Outcome>,
    /// Attempts started so far.
    pub attempts_made: u32,
    pub max_attempts: u32,
    /// When the next attempt is due (status `scheduled`).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Seq of the last event that changed this call: apply a snapshot only
    /// if it is newer than what you have.
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AttemptView {
    pub number: u32,
    pub placed_at: DateTime<Utc>,
    pub ringing_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub key: Option<Key>,
    pub ended_at: Option<DateTime<Utc>>,
    pub result: Option<AttemptResult>,
    /// What the robot said, as rendered for this customer (audit).
    #[serde(default)]
    pub script: Option<String>,
    /// Seconds from the answer to the end of the attempt: "answered" means
    /// at least the policy's `min_heard_secs`.
    #[serde(default)]
    pub talk_secs: Option<u32>,
    /// The provider's own reference for this attempt (Twilio's CallSid,
    /// Voximplant's call session id): where to look it up in the
    /// provider's console.
    #[serde(default)]
    pub provider_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallDetail {
    pub call: CallView,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CallList {
    pub calls: Vec<CallDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    pub status: String,
    pub protocol: u32,
    pub head_seq: u64,
}

// ---------------------------------------------------------------- events

/// One entry of the server's event log. `seq` is global, gap-free and
/// monotonic; a subscriber sees the subset it may see, in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    pub seq: u64,
    /// Domain time of the change.
    pub at: DateTime<Utc>,
    /// Wall-clock ms when what caused it happened (a key press, a request):
    /// lets clients measure push latency whatever the domain clock's speed.
    pub origin_wall_ms: i64,
    pub depot_id: DepotId,
    pub courier_id: CourierId,
    pub stop_id: Option<StopId>,
    pub kind: EventKind,
    /// The call after this change, for call events.
    pub call: Option<CallView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    CallRequested,
    AttemptPlaced {
        attempt: u32,
    },
    Ringing {
        attempt: u32,
    },
    Answered {
        attempt: u32,
    },
    KeyPressed {
        attempt: u32,
        key: Key,
    },
    AttemptEnded {
        attempt: u32,
        result: AttemptResult,
    },
    CallFinished {
        outcome: Outcome,
    },
    CallCancelled,
    /// The customer asked for the courier: put through (`connected`), or
    /// the courier was busy and should call back.
    CourierBridged {
        attempt: u32,
        connected: bool,
    },
    /// The courier phoned the customer directly (logged by the courier).
    DirectCallLogged {
        note: String,
        called_at: DateTime<Utc>,
    },
    /// The next attempt waits for the customer's calling hours to open.
    CallDeferred {
        until: DateTime<Utc>,
    },
    /// The courier's route for `date` was imported or replaced: refetch it.
    RouteReplaced {
        date: NaiveDate,
    },
    /// The order of the courier's route for `date` changed: the courier
    /// planned it, or (with `reason`) the server re-planned it after the
    /// answer of the event's stop (docs/adr/0010).
    RoutePlanned {
        date: NaiveDate,
        stop_ids: Vec<StopId>,
        /// Absent when the courier planned the order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ReplanReason>,
    },
    /// The customer asked for another time: an SMS with a link to pick a
    /// new window is on its way to them (the number, masked).
    RescheduleOffered {
        sms_to_masked: String,
    },
    /// The customer picked a new delivery window for the event's stop.
    StopRescheduled {
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
    },
    /// The customer will collect the order at a pickup point instead: the
    /// courier takes the parcel there, not to the door.
    PickupPointChosen {
        /// Boxed: keeps every other event small.
        pickup_point: Box<PickupPoint>,
    },
    /// A campaign took a step for the event's stop (`action`: sms, call or
    /// operator).
    CampaignStepTaken {
        campaign_id: i64,
        run_id: i64,
        step: u32,
        action: String,
    },
    /// The stop left a campaign: reacted, completed, handed_over (an
    /// operator takes over) or cancelled.
    CampaignLeft {
        campaign_id: i64,
        run_id: i64,
        state: crate::campaign::RunState,
    },
    /// The customer confirmed the current delivery window by the SMS link.
    DeliveryConfirmed {
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
    },
    /// The reschedule SMS could not be delivered for good (number refused,
    /// provider down for too long): the courier should phone the customer.
    RescheduleSmsFailed {
        reason: String,
    },
    /// A text message to the stop's customer went out by `channel`, the
    /// cheapest that reached them; `cost` counts every channel tried that
    /// billed for it.
    MessageDelivered {
        channel: Channel,
        segments: u32,
        cost: Money,
    },
    /// The attempt is placed but waits for a line (the provider account's
    /// lines are all busy or its calls-per-second budget is spent, or the
    /// provider is unavailable): not a failure, and it costs the customer
    /// no attempt. The next event of the attempt ends the wait.
    WaitingForLine {
        attempt: u32,
        reason: LineWait,
    },
    /// The provider refused the call for good (invalid number, no
    /// permission to call that country): the call ends as failed.
    ProviderRejected {
        attempt: u32,
        reason: String,
    },
    /// The courier's direct call through the provider is ringing their
    /// phone (then the customer's).
    DirectDialPlaced {
        dial_id: i64,
        recorded: bool,
    },
    /// The direct call ended: whether the customer was reached, and for how
    /// long they talked.
    DirectDialEnded {
        dial_id: i64,
        connected: bool,
        talk_secs: Option<u32>,
    },
    /// The direct call's recording, kept at the provider: its reference
    /// there and its length.
    DirectCallRecorded {
        dial_id: i64,
        recording_ref: String,
        duration_secs: u32,
    },
    /// The courier's app opened its first live connection (`true`) or
    /// closed its last one (`false`). For supervisors: a courier's own feed
    /// leaves it out.
    AppConnection {
        connected: bool,
    },
    /// Where the courier's phone was (its GPS fix at `reported_at`), for the
    /// supervisor's map. For supervisors: a courier's own feed leaves it out.
    CourierPosition {
        #[cfg_attr(feature = "openapi", schema(value_type = f64))]
        lat: Degrees,
        #[cfg_attr(feature = "openapi", schema(value_type = f64))]
        lon: Degrees,
        reported_at: DateTime<Utc>,
    },
}

/// Why an attempt waits for a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LineWait {
    /// Every line of the account is carrying a call, or other calls are
    /// ahead within the calls-per-second budget.
    LinesBusy,
    /// The provider said "too many requests" (HTTP 429).
    RateLimited,
    /// The provider is down or did not answer; retried with backoff.
    ProviderUnavailable,
}

impl LineWait {
    pub fn as_str(self) -> &'static str {
        match self {
            LineWait::LinesBusy => "lines_busy",
            LineWait::RateLimited => "rate_limited",
            LineWait::ProviderUnavailable => "provider_unavailable",
        }
    }
}

// ---------------------------------------------------------------- reports

/// `GET /v1/depots/{depot_id}/reports/daily`: one depot's local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DailyReport {
    pub depot_id: DepotId,
    /// The depot's local date; the day runs midnight to midnight in `time_zone`.
    pub date: NaiveDate,
    pub time_zone: String,
    /// Smart calls requested that day.
    pub calls_requested: u32,
    /// Calls whose customer pressed a key (any choice).
    pub reached: u32,
    pub confirmed: u32,
    pub rescheduled: u32,
    pub declined: u32,
    pub talk_to_courier: u32,
    pub no_answer: u32,
    /// Failed on the provider's side.
    pub failed: u32,
    pub outside_calling_hours: u32,
    /// Calls whose last attempt was cut by a server stop (crash, restart):
    /// Callahead's fault, counted apart from the provider's `failed`.
    #[serde(default)]
    pub interrupted: u32,
    /// Calls not finished yet (or cancelled).
    pub unfinished: u32,
    /// Robot call attempts placed for those calls.
    pub attempts: u32,
    /// Of those attempts, the ones the provider failed to carry.
    #[serde(default)]
    pub attempts_failed: u32,
    /// Of those attempts, the ones a server stop cut (each counts as an
    /// attempt: nobody is called twice for it).
    #[serde(default)]
    pub attempts_interrupted: u32,
    /// `reached / calls_requested`, 0 when nothing was requested.
    pub reach_rate: f64,
    /// `confirmed / reached`, 0 when nobody was reached.
    pub confirmation_rate: f64,
    /// Courier trips not wasted: stops the customer declined or moved to
    /// another window before the courier drove there.
    pub saved_trips: u32,
    /// What call-ahead saved that day (docs/messaging.md, "What it saved"):
    /// the stricter count of avoided visits (answers learned before the
    /// window opened), early confirmations, courier minutes, cost per
    /// confirmed delivery.
    #[serde(default)]
    pub savings: crate::savings::Savings,
    /// The same per courier with a call or a message that day, by id.
    #[serde(default)]
    pub savings_by_courier: Vec<crate::savings::CourierSavings>,
    /// The depot's minutes per manual call the minutes figures assume.
    #[serde(default)]
    pub minutes_per_manual_call: u32,
    /// Text messages created that day, per channel (every channel listed).
    pub channels: Vec<ChannelReport>,
    /// Messages that reached nobody (every channel refused or failed).
    pub messages_undelivered: u32,
    /// Messages the depot's send limits refused (quota used up, or a
    /// destination outside its countries): nothing was sent.
    #[serde(default)]
    pub messages_refused: u32,
    /// The sum of `channels[].cost_minor`.
    pub cost_total: Money,
    /// The day's attempts by the hour they were placed, on the customer's
    /// own clock (the hour the best-hour retries learn from): only the ones
    /// that tell whether the customer answers (not failed, cancelled or
    /// interrupted ones), only hours with at least one, in hour order.
    #[serde(default)]
    pub answers_by_hour: Vec<HourAnswers>,
}

/// One local hour of a day's attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HourAnswers {
    /// 0–23, the customer's local time.
    pub hour: u8,
    pub attempts: u32,
    /// Heard the message (the policy's "answered").
    pub answered: u32,
    /// `answered / attempts`, to 4 decimals.
    pub answer_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChannelReport {
    pub channel: Channel,
    /// Messages that went out by this channel in the end.
    pub delivered: u32,
    /// Sends on this channel that billed: the delivered ones and those that
    /// were accepted but not confirmed in time (the cascade went on).
    pub billed: u32,
    /// SMS segments billed (1 per messenger message).
    pub segments: u32,
    /// Cost in minor units of `cost_total.currency`.
    pub cost_minor: i64,
}

impl EventKind {
    /// Kinds a webhook gets only when it lists them: operational signals
    /// (an app going online or offline), not changes to an order or a call.
    pub const OPT_IN: &'static [&'static str] = &["app_connection", "courier_position"];

    /// The `type` tag of every kind, as webhook filters name them.
    pub const TYPES: &'static [&'static str] = &[
        "call_requested",
        "attempt_placed",
        "ringing",
        "answered",
        "key_pressed",
        "attempt_ended",
        "call_finished",
        "call_cancelled",
        "courier_bridged",
        "direct_call_logged",
        "call_deferred",
        "route_replaced",
        "route_planned",
        "reschedule_offered",
        "stop_rescheduled",
        "pickup_point_chosen",
        "reschedule_sms_failed",
        "campaign_step_taken",
        "campaign_left",
        "delivery_confirmed",
        "message_delivered",
        "app_connection",
        "waiting_for_line",
        "provider_rejected",
        "direct_dial_placed",
        "direct_dial_ended",
        "direct_call_recorded",
        "courier_position",
    ];

    /// This kind's `type` tag (what it serializes as).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::CallRequested => "call_requested",
            EventKind::AttemptPlaced { .. } => "attempt_placed",
            EventKind::Ringing { .. } => "ringing",
            EventKind::Answered { .. } => "answered",
            EventKind::KeyPressed { .. } => "key_pressed",
            EventKind::AttemptEnded { .. } => "attempt_ended",
            EventKind::CallFinished { .. } => "call_finished",
            EventKind::CallCancelled => "call_cancelled",
            EventKind::CourierBridged { .. } => "courier_bridged",
            EventKind::DirectCallLogged { .. } => "direct_call_logged",
            EventKind::CallDeferred { .. } => "call_deferred",
            EventKind::RouteReplaced { .. } => "route_replaced",
            EventKind::RoutePlanned { .. } => "route_planned",
            EventKind::RescheduleOffered { .. } => "reschedule_offered",
            EventKind::StopRescheduled { .. } => "stop_rescheduled",
            EventKind::PickupPointChosen { .. } => "pickup_point_chosen",
            EventKind::RescheduleSmsFailed { .. } => "reschedule_sms_failed",
            EventKind::CampaignStepTaken { .. } => "campaign_step_taken",
            EventKind::CampaignLeft { .. } => "campaign_left",
            EventKind::DeliveryConfirmed { .. } => "delivery_confirmed",
            EventKind::MessageDelivered { .. } => "message_delivered",
            EventKind::AppConnection { .. } => "app_connection",
            EventKind::WaitingForLine { .. } => "waiting_for_line",
            EventKind::ProviderRejected { .. } => "provider_rejected",
            EventKind::DirectDialPlaced { .. } => "direct_dial_placed",
            EventKind::DirectDialEnded { .. } => "direct_dial_ended",
            EventKind::DirectCallRecorded { .. } => "direct_call_recorded",
            EventKind::CourierPosition { .. } => "courier_position",
        }
    }
}

// ---------------------------------------------------------------- webhooks

/// `POST /v1/depots/{depot_id}/webhooks`: an integrator's receiver. Every
/// event of the depot whose type is listed is POSTed to `url`, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateWebhook {
    /// `http://` or `https://`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 8, max_length = 2000, pattern = r"^https?://[^\s@/]+(/[^\s]*)?$")
    )]
    pub url: String,
    /// Event `type` names (see `EventKind`); empty or absent: every type but
    /// the opt-in ones (`app_connection`).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Tries per event before it becomes a dead letter, 1–50 (default 20,
    /// about half a day of retries).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
    pub max_attempts: Option<u32>,
    /// The signing secret, 24–200 printable characters; generated when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[!-~]{24,200}$"))]
    pub secret: Option<String>,
    /// Deliver events after this seq (0: the depot's whole history);
    /// default: only events from now on.
    #[serde(default)]
    pub after_seq: Option<u64>,
}

/// The event an endpoint is retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PendingDelivery {
    pub seq: u64,
    /// Failed tries so far.
    pub failed_attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Webhook {
    pub id: i64,
    pub depot_id: DepotId,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub max_attempts: u32,
    /// Every matching event up to this seq was delivered or dead-lettered.
    pub cursor: u64,
    pub pending: Option<PendingDelivery>,
    pub dead_letters: u32,
    /// While set, deliveries also carry a signature with the previous secret.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A created endpoint and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// `POST /v1/webhooks/{webhook_id}/rotate-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotateWebhookSecret {
    /// The new secret; generated when absent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[!-~]{24,200}$"))]
    pub secret: Option<String>,
    /// How long the old secret keeps signing too, 0–604800 s (default a day).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 604800))]
    pub overlap_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RotatedWebhookSecret {
    pub webhook: Webhook,
    /// The new secret, shown once.
    pub secret: String,
}

/// One failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookFailure {
    pub seq: u64,
    /// 1 for the first try of this event.
    pub attempt: u32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// What went wrong (`connection refused`, `timed out`, `HTTP 500`).
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WebhookFailureList {
    pub failures: Vec<WebhookFailure>,
}

/// An event given up after the endpoint's attempt limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeadLetter {
    pub seq: u64,
    pub dead_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: String,
    /// A replay was asked for and is in progress.
    pub replaying: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReplayStarted {
    /// Dead letters queued for delivery again.
    pub replaying: u32,
}

// ---------------------------------------------------------------- dashboard

/// A courier as the supervisor's dashboard shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CourierStatus {
    pub courier: Courier,
    /// Whether the courier's app has a live connection to the server now.
    pub app_connected: bool,
    /// Domain time of the courier's latest event, if any.
    pub last_activity: Option<DateTime<Utc>>,
    /// The courier's last logged position, if their app ever sent one.
    #[serde(default)]
    pub position: Option<CourierPosition>,
}

/// Finished calls by outcome. `reached` counts the calls where the customer
/// pressed a key that chose something (confirm, reschedule, decline, courier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OutcomeCounts {
    pub finished: u32,
    pub reached: u32,
    pub confirmed: u32,
    pub rescheduled: u32,
    pub declined: u32,
    pub wants_courier: u32,
    pub no_answer: u32,
    /// Failed on the provider's side, or outside calling hours.
    pub other: u32,
    /// Ended because the server was interrupted (a crash or a dead node),
    /// not the provider's fault: counted apart from `other`.
    #[serde(default)]
    pub interrupted: u32,
}

/// Outcomes of the calls that finished during one hour (depot time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HourOutcomes {
    /// 0..=23, in the depot's time zone.
    pub hour: u32,
    pub outcomes: OutcomeCounts,
}

/// `GET /v1/depots/{depot_id}/dashboard`: a consistent snapshot as of
/// `head_seq`; follow the websocket from `head_seq` to keep it live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DepotDashboard {
    pub depot: Depot,
    pub date: NaiveDate,
    pub head_seq: u64,
    pub couriers: Vec<CourierStatus>,
    /// The live stops of every route of `date`.
    pub stops: Vec<Stop>,
    /// Every smart call for a stop of `date`.
    pub calls: Vec<CallView>,
    pub totals: OutcomeCounts,
    /// Hours with at least one finished call, in order.
    pub hourly: Vec<HourOutcomes>,
}

/// `GET /v1/stops/{stop_id}/timeline`: everything that happened to a stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StopTimeline {
    pub stop: Stop,
    /// Removed from its route by a later import (kept for audit).
    pub removed: bool,
    /// Every smart call of the stop with every attempt and its script.
    pub calls: Vec<CallDetail>,
    /// The stop's events, in seq order: attempts, keys, SMS, reschedules,
    /// direct calls.
    pub events: Vec<Event>,
}

/// `GET /v1/depots`: the depots this token may watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DepotList {
    pub depots: Vec<Depot>,
}

/// `GET /v1/events`: a page of the log in the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventPage {
    pub events: Vec<Event>,
    /// The log's head when the page was read: more may follow if
    /// `events` is full.
    pub head_seq: u64,
}

/// Websocket query: resume after this seq (0 or absent: only live events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct WsQuery {
    #[serde(default)]
    pub after: Option<u64>,
}

/// Frames the server sends on the websocket (JSON text frames). The client
/// sends nothing but websocket pings/pongs and close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame. `head_seq` is the log's head when the socket opened.
    Hello {
        protocol: u32,
        head_seq: u64,
        heartbeat_secs: u32,
        /// The log's identity, made with the server's database: a client
        /// whose cursor came from another log (a server swapped for another
        /// database) must not resume from it. Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_id: Option<String>,
    },
    Event {
        event: Event,
    },
    /// Replay is done: everything up to `seq` was sent; live from here.
    CaughtUp {
        seq: u64,
    },
    /// Sent before the server closes the socket on purpose.
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_json() {
        let f = ServerFrame::CaughtUp { seq: 42 };
        let s = serde_json::to_string(&f).expect("serializes");
        assert_eq!(s, r#"{"type":"caught_up","seq":42}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&s).expect("parses"), f);
    }

    #[test]
    fn event_kinds_carry_their_data() {
        let k = EventKind::KeyPressed { attempt: 2, key: Key::new('1').expect("key") };
        let s = serde_json::to_string(&k).expect("serializes");
        assert_eq!(s, r#"{"type":"key_pressed","attempt":2,"key":"1"}"#);
    }

    #[test]
    fn a_courier_plan_reads_as_before_and_a_replan_names_its_reason() {
        let d = NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
        // Stored events and older apps know the courier's plan without a
        // reason: its encoding (and so its audit link) is unchanged.
        let planned = EventKind::RoutePlanned { date: d, stop_ids: vec![StopId(2), StopId(1)], reason: None };
        let s = serde_json::to_string(&planned).expect("serializes");
        assert_eq!(s, r#"{"type":"route_planned","date":"2027-01-01","stop_ids":[2,1]}"#);
        assert_eq!(serde_json::from_str::<EventKind>(&s).expect("parses"), planned);
        let replanned = EventKind::RoutePlanned {
            date: d,
            stop_ids: vec![StopId(1), StopId(2)],
            reason: Some(ReplanReason::Declined),
        };
        let s = serde_json::to_string(&replanned).expect("serializes");
        assert!(s.ends_with(r#""reason":"declined"}"#), "{s}");
        assert_eq!(serde_json::from_str::<EventKind>(&s).expect("parses"), replanned);
        assert_eq!(ReplanReason::NewWindowToday.out_of_chain(), None);
        assert_eq!(ReplanReason::AnotherDay.out_of_chain(), Some(OutOfChain::AnotherDay));
        for o in [OutOfChain::Declined, OutOfChain::AnotherDay] {
            assert_eq!(serde_json::to_value(o).expect("serializes"), o.as_str());
        }
        for r in [ReplanReason::Declined, ReplanReason::AnotherDay, ReplanReason::NewWindowToday] {
            assert_eq!(serde_json::to_value(r).expect("serializes"), r.as_str());
        }
    }
    #[test]
    fn every_event_kind_is_listed_under_its_serialized_tag() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().expect("time");
        let d = NaiveDate::from_ymd_opt(2027, 1, 1).expect("date");
        let kinds = [
            EventKind::CallRequested,
            EventKind::AttemptPlaced { attempt: 1 },
            EventKind::Ringing { attempt: 1 },
            EventKind::Answered { attempt: 1 },
            EventKind::KeyPressed { attempt: 1, key: Key::new('1').expect("key") },
            EventKind::AttemptEnded { attempt: 1, result: AttemptResult::NoAnswer },
            EventKind::CallFinished { outcome: Outcome::Confirmed },
            EventKind::CallCancelled,
            EventKind::CourierBridged { attempt: 1, connected: true },
            EventKind::DirectCallLogged { note: "n".into(), called_at: t },
            EventKind::CallDeferred { until: t },
            EventKind::RouteReplaced { date: d },
            EventKind::RoutePlanned { date: d, stop_ids: vec![], reason: None },
            EventKind::RescheduleOffered { sms_to_masked: "+7***".into() },
            EventKind::StopRescheduled { window_start: t, window_end: t },
            EventKind::PickupPointChosen {
                pickup_point: Box::new(PickupPoint {
                    id: "p1".into(),
                    name: "Shop".into(),
                    address: "Lenina 1".into(),
                    hours: None,
                }),
            },
            EventKind::RescheduleSmsFailed { reason: "refused".into() },
            EventKind::CampaignStepTaken { campaign_id: 1, run_id: 1, step: 0, action: "sms".into() },
            EventKind::CampaignLeft { campaign_id: 1, run_id: 1, state: crate::campaign::RunState::Reacted },
            EventKind::DeliveryConfirmed { window_start: t, window_end: t },
            EventKind::MessageDelivered {
                channel: crate::channel::Channel::Sms,
                segments: 1,
                cost: Money { minor: 250, currency: "RUB".into() },
            },
            EventKind::AppConnection { connected: true },
            EventKind::WaitingForLine { attempt: 1, reason: LineWait::ProviderUnavailable },
            EventKind::ProviderRejected { attempt: 1, reason: "invalid number".into() },
            EventKind::DirectDialPlaced { dial_id: 1, recorded: true },
            EventKind::DirectDialEnded { dial_id: 1, connected: true, talk_secs: Some(40) },
            EventKind::DirectCallRecorded { dial_id: 1, recording_ref: "RE1".into(), duration_secs: 40 },
            EventKind::CourierPosition { lat: Degrees(55.75), lon: Degrees(37.61), reported_at: t },
        ];
        assert_eq!(kinds.len(), EventKind::TYPES.len());
        for (k, name) in kinds.iter().zip(EventKind::TYPES) {
            let json = serde_json::to_value(k).expect("serializes");
            assert_eq!(json["type"], *name);
            assert_eq!(k.type_name(), *name);
        }
    }

    #[test]
    fn error_codes_are_snake_case() {
        let s = serde_json::to_string(&ErrorCode::TooManyActiveCalls).expect("serializes");
        assert_eq!(s, "\"too_many_active_calls\"");
    }

    #[test]
    fn paths_fill() {
        assert_eq!(paths::fill(paths::CALL_CANCEL, &[("call_id", "7")]), "/v1/calls/7/cancel");
    }
}
