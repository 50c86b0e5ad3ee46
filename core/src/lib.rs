//! Callahead core: the domain rules and wire protocol shared by server and
//! client, and (feature `client`, on by default) the offline-first courier
//! client used by the mobile apps through `callahead-ffi`.
//!
//! A rule is written once here and used by both sides: which call status may
//! follow which, what a key press means, how a phone number or time zone is
//! validated, and the serde shape of every HTTP body and websocket frame.

pub mod auto_call;
pub mod best_hour;
pub mod call;
pub mod calling_hours;
pub mod campaign;
pub mod channel;
pub mod clock;
pub mod ids;
pub mod planning;
pub mod policy;
pub mod privacy;
pub mod savings;
pub mod template;
pub mod validate;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;

pub use call::{AttemptResult, CallStatus, Key, Outcome};
pub use ids::{CallId, CourierId, DepotId, StopId};

/// Version of the HTTP and websocket protocol; also the `/v1` path prefix.
pub const PROTOCOL_VERSION: u32 = 1;

/// The one limit the whole product is built around: at most this many smart
/// calls are active per courier, so a customer who asks for the courier is
/// never stuck behind a long robot queue. Enforced by client and server.
pub const MAX_ACTIVE_CALLS_PER_COURIER: usize = 5;
