//! The attempt policy is data, not code paths: how many attempts, how far
//! apart, how long a phone may ring.

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
}

impl Default for AttemptPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, retry_spacing_secs: 15 * 60, ring_timeout_secs: 30 }
    }
}
