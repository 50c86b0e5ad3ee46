//! Errors. Two tiers: [`AppError`] is what an HTTP caller sees —
//! one JSON shape, a stable code, never internal details — and
//! [`ServerError`] is what starting the server can fail with.

use crate::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callahead_core::validate::FieldError;
use callahead_core::wire::{ErrorBody, ErrorCode};

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// Sent as `Retry-After` (seconds): when trying again may succeed.
    pub retry_after_secs: Option<u32>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, retry_after_secs: None }
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn forbidden() -> Self {
        Self::new(ErrorCode::Forbidden, "your token's role may not do this")
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error; retry later")
    }

    pub fn status(&self) -> StatusCode {
        status_for(self.code)
    }
}

pub fn status_for(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        MalformedJson | ValidationFailed | InvalidPhone | InvalidTimeZone | InvalidDate => {
            StatusCode::BAD_REQUEST
        }
        UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        MissingToken | InvalidToken | TokenExpired | TokenReused => StatusCode::UNAUTHORIZED,
        Forbidden | ProviderSignatureInvalid | ProviderCallbackReplayed | DestinationNotAllowed => {
            StatusCode::FORBIDDEN
        }
        StopNotFound
        | CallNotFound
        | DepotNotFound
        | CourierNotFound
        | CampaignNotFound
        | NotFound
        | WebhookNotFound
        | DeadLetterNotFound
        | TokenNotFound
        | SupervisorNotFound
        | ProviderNotConfigured => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        TooManyActiveCalls | RateLimited | TooManySockets | QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        IdempotencyKeyReused
        | StopRemoved
        | CallAlreadyFinished
        | CallAlreadyActive
        | PlanMismatch
        | CursorAhead
        | AccountDeactivated
        | BootstrapTokenNotRevocable
        | Conflict
        | DirectDialUnavailable => StatusCode::CONFLICT,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after_secs;
        let body = ErrorBody { code: self.code, message: self.message, field: self.field };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        Self { code: e.code, message: e.message, field: Some(e.field), retry_after_secs: None }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => {
                Self::new(ErrorCode::Unavailable, "the server is shutting down; retry later")
            }
            // A write the schema refused: the request named something
            // missing or duplicated, never a server fault (the handlers check
            // the common cases first, with a more precise code).
            StoreError::MissingReference(_) => {
                Self::new(ErrorCode::NotFound, "the request refers to something that does not exist")
            }
            StoreError::Duplicate(_) => Self::new(ErrorCode::Conflict, "this already exists"),
            StoreError::Invalid(_) => {
                Self::new(ErrorCode::ValidationFailed, "a value is missing or out of range")
            }
            other => {
                // Logged here, once; the client only learns that it failed.
                tracing::error!(error = %other, "storage error");
                Self::internal()
            }
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts")
            }
            _ => Self::new(ErrorCode::MalformedJson, r.body_text()),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        Self::new(ErrorCode::ValidationFailed, r.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        Self::new(ErrorCode::ValidationFailed, r.body_text())
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    // A URL's password is not printed (`Location`'s Display hides it).
    #[error("database {}: {source}", crate::store::Location::of(.path))]
    Database { path: std::path::PathBuf, source: StoreError },
    #[error("invalid configuration: {0}")]
    Config(String),
}
