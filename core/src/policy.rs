//! The attempt policy is data, not code paths: how many attempts, how far
//! apart, how long a phone may ring, when calls may start, and when retrying
//! stops making sense.

use crate::calling_hours::CallingHours;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptPolicy {
    /// Attempts per smart call, including the first (reference case: 3).
    pub max_attempts: u32,
    /// Seconds between the end of one attempt and the start of the next.
    pub retry_spacing_secs: u32,
    /// Seconds a phone rings before the attempt counts as "no answer".
    pub ring_timeout_secs: u32,
    /// When calls may start, in the customer's time zone (default 09:00–21:00
    /// every day).
    #[serde(default)]
    pub calling_hours: CallingHours,
    /// No retry once the delivery window has started: by then the courier is
    /// at the door or the call is pointless (default true).
    #[serde(default = "yes")]
    pub stop_at_window_start: bool,
    /// What counts as "answered": picked up and heard at least this many
    /// seconds of the message. A customer who hangs up sooner has not heard
    /// who called, so the attempt counts as not answered and is retried
    /// (default 5).
    #[serde(default = "default_min_heard_secs")]
    pub min_heard_secs: u32,
    /// Ask the telephony provider to tell answering machines from people
    /// (Twilio's answering-machine detection): a machine is hung up on and
    /// the attempt counts as voicemail; "unknown" counts as a person, and a
    /// key press proves one. Billed per call by the provider (default off).
    #[serde(default)]
    pub machine_detection: bool,
    /// Place a retry at the hour this customer (and the depot's customers)
    /// answer best, within the spacing, calling hours and deadline, instead
    /// of right at the spacing (`crate::best_hour`; docs/calling-policy.md).
    /// A depot without enough history keeps the spacing anyway (default on).
    #[serde(default = "yes")]
    pub retry_at_best_hour: bool,
}

pub const DEFAULT_MIN_HEARD_SECS: u32 = 5;

fn yes() -> bool {
    true
}

fn default_min_heard_secs() -> u32 {
    DEFAULT_MIN_HEARD_SECS
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_spacing_secs: 15 * 60,
            ring_timeout_secs: 30,
            calling_hours: CallingHours::default(),
            stop_at_window_start: true,
            min_heard_secs: DEFAULT_MIN_HEARD_SECS,
            machine_detection: false,
            retry_at_best_hour: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_from_before_calling_hours_reads_with_the_defaults() {
        let old = r#"{"max_attempts":2,"retry_spacing_secs":60,"ring_timeout_secs":20}"#;
        let p: AttemptPolicy = serde_json::from_str(old).expect("parses");
        assert_eq!(p.calling_hours, CallingHours::default());
        assert!(p.stop_at_window_start);
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.min_heard_secs, DEFAULT_MIN_HEARD_SECS);
        assert!(p.retry_at_best_hour, "on unless switched off");
    }
}
