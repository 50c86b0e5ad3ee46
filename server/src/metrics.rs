//! Prometheus metrics (docs/operations.md lists every series). Counters and
//! histograms are recorded where things happen through the `metrics`
//! facade; gauges of stored state (calls by status, queues, webhook
//! backlog) are read from the database when `/metrics` is scraped, so they
//! are never stale and cost nothing between scrapes.
//!
//! The recorder is process-wide (the `metrics` facade has one): every
//! server in a process (the tests start many) shares it.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Seconds buckets from 1 ms to 10 s.
const SECONDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the recorder once; `None` if another recorder was installed
/// first (an embedding program's own), in which case `/metrics` says so.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH));
            match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    let labels = [("route", route.to_owned()), ("method", method.to_owned()), ("status", status.to_string())];
    metrics::counter!("callahead_http_requests_total", &labels).increment(1);
    metrics::histogram!("callahead_http_request_duration_seconds", "route" => route.to_owned())
        .record(took.as_secs_f64());
}

pub fn websocket_opened(role: &'static str) {
    metrics::gauge!("callahead_websocket_connections", "role" => role).increment(1.0);
    metrics::counter!("callahead_websocket_opened_total", "role" => role).increment(1);
}

pub fn websocket_closed(role: &'static str) {
    metrics::gauge!("callahead_websocket_connections", "role" => role).decrement(1.0);
}

pub fn websocket_refused(why: &'static str) {
    metrics::counter!("callahead_websocket_refused_total", "reason" => why).increment(1);
}

/// From the commit that published an event to its frame handed to a socket.
pub fn push_lag(lag: Duration) {
    metrics::histogram!("callahead_push_lag_seconds").record(lag.as_secs_f64());
}

/// From an event's cause (its `origin_wall_ms`) to its commit: the queue in
/// front of the writer plus the commit itself; with `push_lag`, the server's
/// whole share of the push latency a client measures.
pub fn durable_lag(origin_wall_ms: i64) {
    let lag_ms = (callahead_core::clock::wall_ms() - origin_wall_ms).max(0);
    metrics::histogram!("callahead_event_durable_lag_seconds").record(lag_ms as f64 / 1000.0);
}

/// A checkpoint the writer ran between two groups (it holds the writes).
pub fn wal_checkpoint(kind: &'static str, took: Duration) {
    metrics::histogram!("callahead_wal_checkpoint_seconds", "kind" => kind).record(took.as_secs_f64());
}

/// From a write job's submission to the writer starting it.
pub fn writer_queue_wait(wait: Duration) {
    metrics::histogram!("callahead_writer_queue_wait_seconds").record(wait.as_secs_f64());
}

pub fn writer_batch(jobs: usize, commit: Duration, head_seq: u64) {
    metrics::histogram!("callahead_writer_batch_size").record(jobs as f64);
    metrics::histogram!("callahead_writer_commit_seconds").record(commit.as_secs_f64());
    metrics::gauge!("callahead_event_log_head").set(head_seq as f64);
}

pub fn event_published(kind: &'static str) {
    metrics::counter!("callahead_events_total", "type" => kind).increment(1);
}

pub fn call_finished(outcome: &'static str) {
    metrics::counter!("callahead_calls_finished_total", "outcome" => outcome).increment(1);
}

pub fn provider_request(provider: &'static str, operation: &'static str, ok: bool) {
    metrics::counter!("callahead_provider_requests_total", "provider" => provider, "operation" => operation)
        .increment(1);
    if !ok {
        metrics::counter!("callahead_provider_errors_total", "provider" => provider, "operation" => operation)
            .increment(1);
    }
}

pub fn webhook_attempt(delivered: bool) {
    let result = if delivered { "delivered" } else { "failed" };
    metrics::counter!("callahead_webhook_attempts_total", "result" => result).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    metrics::counter!("callahead_rate_limited_total", "limit" => limit).increment(1);
}

pub fn connection_refused() {
    metrics::counter!("callahead_connections_refused_total").increment(1);
}

pub fn send_refused(channel: &'static str, reason: &'static str) {
    metrics::counter!("callahead_sends_refused_total", "channel" => channel, "reason" => reason).increment(1);
}

/// A gauge read at scrape time.
pub fn set_gauge(name: &'static str, labels: &[(&'static str, String)], value: f64) {
    let labels: Vec<(&'static str, String)> = labels.to_vec();
    metrics::gauge!(name, &labels).set(value);
}
