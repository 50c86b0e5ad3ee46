//! Request bodies: strict JSON, the size limit, and the connection a refused
//! body leaves behind.
//!
//! Strict: a field the target type does not know is refused (a misspelt
//! `polcy` must not silently send the call out with the depot's policy), and
//! every shape error names its field (`stops[3].phone`). The types stay
//! lenient for reading (a newer server may add fields a phone ignores); only
//! what a client sends is held to the letter.

use crate::app::AppState;
use crate::error::AppError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use callahead_core::wire::ErrorCode;
use http_body::{Body as _, Frame, SizeHint};
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A JSON body, parsed strictly; refusals in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, AppError> {
        if !is_json(req.headers()) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| match r {
            BytesRejection::FailedToBufferBody(_)
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                too_large(state.max_body_bytes)
            }
            other => AppError::new(ErrorCode::MalformedJson, other.body_text()),
        })?;
        parse(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The 413 every oversized body gets, stating the limit.
pub fn too_large(limit: usize) -> AppError {
    AppError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the request body is larger than this server accepts ({limit} bytes; a route import of about \
             {} stops); split it into several requests",
            limit / BYTES_PER_STOP
        ),
    )
}

/// A typical imported stop as JSON (name, phone, address, window, orders):
/// how the body limit translates into stops for the message above.
const BYTES_PER_STOP: usize = 300;

/// Parses `bytes` as `T`: syntax errors are `malformed_json` with the
/// position, shape errors (wrong type, missing or unknown field) are
/// `malformed_json` naming the field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut unknown: Vec<String> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed = {
        let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
        serde_ignored::deserialize(tracked, |path| unknown.push(ignored_path(&path)))
    };
    let value: T = match parsed {
        Ok(v) => v,
        Err(e) => return Err(shape_error(&e, &track.path())),
    };
    json.end().map_err(|e| shape_error(&e, &serde_path_to_error::Track::new().path()))?;
    if let Some(field) = unknown.into_iter().next() {
        return Err(AppError::new(
            ErrorCode::MalformedJson,
            format!("unknown field {field:?}: check its spelling against /openapi.json"),
        )
        .with_field(field));
    }
    Ok(value)
}

fn shape_error(e: &serde_json::Error, path: &serde_path_to_error::Path) -> AppError {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AppError::new(ErrorCode::MalformedJson, format!("the body is not valid JSON ({at}): {e}"))
        }
        Category::Data => {
            // serde says "missing field `phone`" at the enclosing object;
            // name the field itself.
            let text = e.to_string();
            let detail = text.split(" at line ").next().unwrap_or(&text).to_owned();
            let mut field = field_name(path);
            if let Some(missing) = quoted_after(&detail, "missing field `") {
                field = join(&field, missing);
            } else if let Some(unknown) = quoted_after(&detail, "unknown field `") {
                if field.rsplit('.').next() != Some(unknown) {
                    field = join(&field, unknown);
                }
            }
            let err = AppError::new(ErrorCode::MalformedJson, format!("{detail} ({at})"));
            if field.is_empty() {
                err
            } else {
                err.with_field(field)
            }
        }
    }
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// `stops[3].phone`, as the validation errors name fields.
fn field_name(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join(&out, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => join(&ignored_path(parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

// ---------------------------------------------------------------- connections

/// Refuses a body whose declared length is over `limit` before reading it,
/// and ends the connection whenever a response leaves part of the request
/// body unread (an early 401, 404, 405 or 413): the unread bytes would be
/// taken for the next request, so the server closes, and says so with
/// `Connection: close` so that a pooled client does not send its next
/// request (maybe a POST it will not retry) into a closing socket.
pub async fn guard_connection(limit: usize, req: Request, next: Next) -> Response {
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return close(too_large(limit).into_response());
    }
    let (parts, body) = req.into_parts();
    let done = Arc::new(AtomicBool::new(body.is_end_stream()));
    let body = Body::new(Watched { inner: body, done: done.clone() });
    let response = next.run(Request::from_parts(parts, body)).await;
    if done.load(Ordering::Acquire) {
        response
    } else {
        close(response)
    }
}

fn close(mut response: Response) -> Response {
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that records when it was read to its end.
struct Watched {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callahead_core::wire::CreateCall;

    fn refused<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> AppError {
        parse::<T>(json.as_bytes()).expect_err("refused")
    }

    #[test]
    fn a_misspelt_field_is_refused_by_name() {
        let e = refused::<CreateCall>(r#"{"stop_id": 1, "idempotency_key": "k-123456", "polcy": {}}"#);
        assert_eq!((e.code, e.field.as_deref()), (ErrorCode::MalformedJson, Some("polcy")));
        let e = refused::<CreateCall>(
            r#"{"stop_id": 1, "idempotency_key": "k-123456", "policy": {"max_atempts": 2}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("policy.max_atempts"), "{}", e.message);
    }

    #[test]
    fn type_and_missing_field_errors_name_the_field() {
        let e = refused::<CreateCall>(r#"{"stop_id": "one", "idempotency_key": "k-123456"}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::MalformedJson, Some("stop_id")),
            "{}",
            e.message
        );
        let e = refused::<CreateCall>(r#"{"idempotency_key": "k-123456"}"#);
        assert_eq!(e.field.as_deref(), Some("stop_id"), "{}", e.message);
        assert!(e.message.contains("missing field"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = refused::<CreateCall>(r#"{"stop_id": "#);
        assert_eq!((e.code, e.field), (ErrorCode::MalformedJson, None));
        assert!(e.message.contains("line 1"), "{}", e.message);
        let e = refused::<CreateCall>(r#"{"stop_id": 1, "idempotency_key": "k-123456"} trailing"#);
        assert_eq!(e.code, ErrorCode::MalformedJson);
    }

    #[test]
    fn a_well_formed_body_parses() {
        let c: CreateCall = parse(br#"{"stop_id": 1, "idempotency_key": "k-123456"}"#).expect("parses");
        assert_eq!(c.stop_id.0, 1);
    }

    #[test]
    fn the_413_states_the_limit() {
        let e = too_large(1024 * 1024);
        assert!(e.message.contains("1048576 bytes"), "{}", e.message);
    }
}
