//! The one error the bindings throw: a kind the app switches on, the
//! server's machine-readable code where there is one, and a `detail` (not
//! `message`, which Kotlin exceptions already have: uniffi-rs #1434).

use callahead_core::client::ClientError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallaheadError {
    /// The server could not be reached; retry later (taps never fail so).
    #[error("offline: {detail}")]
    Offline { detail: String },
    /// The token was refused: sign in again.
    #[error("unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The server refused the request; `code` is the stable wire code
    /// (e.g. `too_many_active_calls`).
    #[error("{code}: {detail}")]
    Server { code: String, detail: String },
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    #[error("local storage failed: {detail}")]
    Storage { detail: String },
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

/// The wire name of an error code, as in the server's JSON.
pub(crate) fn code_name(code: &callahead_core::wire::ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl From<ClientError> for CallaheadError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Offline { message } => CallaheadError::Offline { detail: message },
            ClientError::Unauthorized { message } => CallaheadError::Unauthorized { detail: message },
            ClientError::Server { code, message } => {
                CallaheadError::Server { code: code_name(&code), detail: message }
            }
            ClientError::InvalidInput { message } => CallaheadError::InvalidInput { detail: message },
            ClientError::Storage { message } => CallaheadError::Storage { detail: message },
            ClientError::Internal { message } => CallaheadError::Internal { detail: message },
        }
    }
}
