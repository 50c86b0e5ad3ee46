//! Headers every answer carries (docs/security.md): `nosniff`, no
//! referrer, no framing; and `Cache-Control: no-store` on everything that
//! did not choose its own caching, which is every JSON answer (they carry
//! personal data). Also where each request is counted for `/metrics`.

use axum::extract::{MatchedPath, Request};
use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub async fn security_headers(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    crate::metrics::http_request(&route, &method, resp.status().as_u16(), started.elapsed());
    let h = resp.headers_mut();
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    h.entry(X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    h.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}
