//! Typed ids. Each is the server's row id; the wire carries it as a plain number.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A depot: the unit a supervisor watches and an integrator key serves.
    DepotId
);
id_type!(
    /// A courier, who belongs to one depot.
    CourierId
);
id_type!(
    /// One stop (customer delivery) of a courier's route.
    StopId
);
id_type!(
    /// One smart call: up to `max_attempts` robot calls to one stop's customer.
    CallId
);
id_type!(
    /// A supervisor account.
    SupervisorId
);
