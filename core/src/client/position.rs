//! Sends the courier's last position to the server for the supervisor's map
//! (`PUT /v1/me/position`): the latest fix only, at most once per
//! `ClientConfig::position_every`, whenever the server is reachable. A fix
//! taken offline waits in the local database; an older one is never sent
//! after a newer one.

use super::error::Disposition;
use super::Shared;
use std::sync::Arc;

pub(crate) async fn run(shared: Arc<Shared>) {
    tokio::select! {
        _ = shared.closing() => {}
        _ = send_loop(&shared) => {}
    }
}

async fn send_loop(shared: &Arc<Shared>) {
    let config = &shared.config;
    let mut backoff = super::backoff::Backoff::new(config.reconnect_min, config.reconnect_max);
    loop {
        let pending = match shared.db.unsent_position() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("position: reading the last fix failed: {e}");
                None
            }
        };
        let Some(report) = pending else {
            shared.position_wake.notified().await;
            continue;
        };
        match shared.http.report_position(&report).await {
            Ok(_) => {}
            Err(e) => match e.disposition() {
                Disposition::Transient | Disposition::Unauthorized | Disposition::CapReached => {
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                // Refused for good (a fix the server finds out of range):
                // sending it again cannot help; the next fix may pass.
                Disposition::Permanent { .. } => tracing::warn!("position: the server refused a fix: {e}"),
            },
        }
        backoff.reset();
        if let Err(e) = shared.db.position_sent(report.at) {
            tracing::error!("position: storing what was sent failed: {e}");
        }
        tokio::time::sleep(config.position_every).await;
    }
}
