//! Harness for the end-to-end tests: the real server in-process on an
//! ephemeral loopback port, real client cores on real SQLite files, and a TCP
//! proxy between them that a test can cut or take offline.

pub mod api;
pub mod courier;
pub mod double;
pub mod nginx;
pub mod process;
pub mod providers;
pub mod proxy;
pub mod recorder;
pub mod server;
pub mod twilio_double;
pub mod voximplant_double;
pub mod webhook_receiver;
pub mod ws;

pub use api::Api;
pub use courier::Phone;
pub use process::ServerProcess;
pub use proxy::Proxy;
pub use recorder::Recorder;
pub use server::TestServer;

use std::future::Future;
use std::time::Duration;

/// Generous upper bound for event-driven waits: a wait that hits it is a
/// failure, not a timing assumption.
pub const WAIT: Duration = Duration::from_secs(30);

/// Awaits `fut` or fails the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
