//! The one error the bindings throw: a kind the app switches on, the
//! server's machine-readable code where there is one, and a message.

use callahead_core::client::ClientError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallaheadError {
    /// The server could not be reached; retry later (taps never fail so).
    #[error("offline: {message}")]
    Offline { message: String },
    /// The token was refused: sign in again.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The server refused the request; `code` is the stable wire code
    /// (e.g. `too_many_active_calls`).
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
    #[error("local storage failed: {message}")]
    Storage { message: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// The wire name of an error code, as in the server's JSON.
pub(crate) fn code_name(code: &callahead_core::wire::ErrorCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl From<ClientError> for CallaheadError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Offline { message } => CallaheadError::Offline { message },
            ClientError::Unauthorized { message } => CallaheadError::Unauthorized { message },
            ClientError::Server { code, message } => {
                CallaheadError::Server { code: code_name(&code), message }
            }
            ClientError::InvalidInput { message } => CallaheadError::InvalidInput { message },
            ClientError::Storage { message } => CallaheadError::Storage { message },
            ClientError::Internal { message } => CallaheadError::Internal { message },
        }
    }
}
