//! Personal data kept no longer than needed (GDPR, 152-FZ): a depot's
//! finished routes lose their customers' data `retention_days` after the
//! route's date (default 90), and a customer's request erases their number's
//! data at once (`POST /v1/depots/{id}/erasure`). What is erased and what
//! stays for the reports is in `store::erasure`.

use crate::store::{erasure, StoreError, Writer};
use callahead_core::clock::SharedClock;
use callahead_core::DepotId;
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::Arc;

/// Stops erased per transaction.
const BATCH: usize = 500;
/// How often retention runs.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

fn today(tz: &str, now: DateTime<Utc>) -> NaiveDate {
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    now.with_timezone(&tz).date_naive()
}

/// Erases every stop past its depot's retention at `now`; how many.
pub async fn apply(
    writer: &Writer,
    readers: &Arc<crate::store::Readers>,
    default_days: u32,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let ids = readers
            .read(move |c| erasure::expired(c, default_days, |_: DepotId, tz| today(tz, now), BATCH))
            .await?;
        if ids.is_empty() {
            return Ok(total);
        }
        let n = ids.len();
        writer.write(move |tx| erasure::erase(tx, &ids, now)).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Runs retention every [`EVERY`] until the store closes.
pub async fn run(writer: Writer, readers: Arc<crate::store::Readers>, clock: SharedClock, default_days: u32) {
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        match apply(&writer, &readers, default_days, clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(stops = n, "customer data past its retention erased"),
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "retention failed; retried next hour"),
        }
    }
}
