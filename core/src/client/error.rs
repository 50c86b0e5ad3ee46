//! Two tiers of errors: [`Error`] keeps every detail for logs and for the
//! client's own decisions (retry or not); [`ClientError`] is what an app can
//! act on, and the public API converts at its boundary.

use crate::wire::{ErrorBody, ErrorCode};

/// What went wrong, as the app should react to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached; the request may be retried later.
    /// Taps never fail this way: they wait in the outbox instead.
    #[error("offline: {message}")]
    Offline { message: String },
    /// The server refused the courier's token: sign in again.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The server refused the request for the reason `code`.
    #[error("server refused ({code:?}): {message}")]
    Server { code: ErrorCode, message: String },
    /// The caller passed something this client cannot use (an unknown stop).
    #[error("invalid input: {message}")]
    InvalidInput { message: String },
    /// The local database failed (disk full, corrupt file).
    #[error("local storage failed: {message}")]
    Storage { message: String },
    /// A bug or an unexpected answer; details are in the log.
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// Everything the client can trip over, with its cause.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A non-2xx answer. `body` is `None` when it was not our error shape
    /// (a proxy's error page, say).
    #[error("server answered {status}: {}", describe(.body))]
    Status { status: u16, body: Option<ErrorBody> },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Something stored locally does not parse back: a bug or a hand-edited file.
    #[error("corrupt local data: {0}")]
    Corrupt(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client is closed")]
    Closed,
    /// The server's event log is not the one this phone's cursor came from
    /// (restored or replaced database): resync from the route.
    #[error("the server's event log changed: {0}")]
    HistoryChanged(String),
}

fn describe(body: &Option<ErrorBody>) -> String {
    match body {
        Some(b) => format!("{:?}: {}", b.code, b.message),
        None => "no error body".to_owned(),
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// How a failed request should be treated by whoever retries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// The network or the server is down for now: retry with backoff.
    Transient,
    /// The courier already has the maximum of active calls (on another
    /// device): retry when one of them finishes.
    CapReached,
    /// The token is refused: retrying cannot help until it changes, but the
    /// request itself is still wanted.
    Unauthorized,
    /// This request will never succeed as it is.
    Permanent { code: ErrorCode, message: String },
}

impl Error {
    /// The server's error code for this failure, if it sent one or if its
    /// status implies one.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Status { body: Some(b), .. } => Some(b.code),
            Error::Status { status, body: None } => Some(code_for_status(*status)),
            _ => None,
        }
    }

    pub(crate) fn disposition(&self) -> Disposition {
        match self {
            Error::Http(e) if e.is_decode() => {
                Disposition::Permanent { code: ErrorCode::Internal, message: self.to_string() }
            }
            Error::Http(_) | Error::WebSocket(_) | Error::Timeout(_) | Error::Io(_) => Disposition::Transient,
            Error::Status { status, body } => {
                let code = body.as_ref().map(|b| b.code).unwrap_or_else(|| code_for_status(*status));
                match code {
                    ErrorCode::TooManyActiveCalls => Disposition::CapReached,
                    ErrorCode::MissingToken | ErrorCode::InvalidToken | ErrorCode::TokenExpired => {
                        Disposition::Unauthorized
                    }
                    c if c.is_retryable() || *status >= 500 || *status == 408 => Disposition::Transient,
                    code => Disposition::Permanent {
                        code,
                        message: body.as_ref().map(|b| b.message.clone()).unwrap_or_else(|| self.to_string()),
                    },
                }
            }
            Error::Json(_) => Disposition::Permanent { code: ErrorCode::Internal, message: self.to_string() },
            Error::InvalidInput(m) => {
                Disposition::Permanent { code: ErrorCode::ValidationFailed, message: m.clone() }
            }
            Error::Sqlite(_) | Error::Corrupt(_) | Error::Closed | Error::HistoryChanged(_) => {
                Disposition::Transient
            }
        }
    }
}

/// Best guess at a code when the body was not ours (a proxy answered).
fn code_for_status(status: u16) -> ErrorCode {
    match status {
        401 => ErrorCode::InvalidToken,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        429 | 502..=504 => ErrorCode::Unavailable,
        400..=499 => ErrorCode::ValidationFailed,
        _ => ErrorCode::Internal,
    }
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Sqlite(_) => ClientError::Storage { message },
            Error::Corrupt(_) => ClientError::Storage { message },
            Error::Http(ref h) if h.is_decode() => ClientError::Internal { message },
            Error::Http(_) | Error::WebSocket(_) | Error::Timeout(_) | Error::HistoryChanged(_) => {
                ClientError::Offline { message }
            }
            Error::Status { status, ref body } => match e.disposition() {
                Disposition::Unauthorized => ClientError::Unauthorized { message },
                _ if status >= 502 && body.is_none() => ClientError::Offline { message },
                _ => ClientError::Server {
                    code: e.code().unwrap_or(ErrorCode::Internal),
                    message: body.as_ref().map(|b| b.message.clone()).unwrap_or(message),
                },
            },
            Error::Json(_) | Error::Io(_) | Error::Closed => ClientError::Internal { message },
            Error::InvalidInput(m) => ClientError::InvalidInput { message: m },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: ErrorCode) -> Error {
        Error::Status { status, body: Some(ErrorBody { code, message: "m".into(), field: None }) }
    }

    #[test]
    fn refusals_are_sorted_by_what_a_retry_can_achieve() {
        assert_eq!(status(429, ErrorCode::TooManyActiveCalls).disposition(), Disposition::CapReached);
        assert_eq!(status(503, ErrorCode::Unavailable).disposition(), Disposition::Transient);
        assert_eq!(status(401, ErrorCode::InvalidToken).disposition(), Disposition::Unauthorized);
        assert_eq!(
            status(404, ErrorCode::StopNotFound).disposition(),
            Disposition::Permanent { code: ErrorCode::StopNotFound, message: "m".into() }
        );
        assert_eq!(Error::Status { status: 502, body: None }.disposition(), Disposition::Transient);
    }

    #[test]
    fn public_errors_keep_the_server_code() {
        assert_eq!(
            ClientError::from(status(409, ErrorCode::CallAlreadyFinished)),
            ClientError::Server { code: ErrorCode::CallAlreadyFinished, message: "m".into() }
        );
        assert!(matches!(
            ClientError::from(status(401, ErrorCode::InvalidToken)),
            ClientError::Unauthorized { .. }
        ));
    }
}
