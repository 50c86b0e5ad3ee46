//! Couriers' positions for the supervisor's map (issue #15 part 1): the
//! courier's app reports its GPS fix; the server logs at most one per
//! courier every `POSITION_EVERY_SECS` as a `courier_position` event (for
//! supervisors only; a courier's own feed leaves it out, see `hub`) and
//! keeps the last one for the dashboard's snapshot.

use crate::error::AppError;
use crate::store::positions;
use crate::store::writer::{NewEvent, Writer};
use callahead_core::clock::wall_ms;
use callahead_core::wire::{ErrorCode, EventKind, PositionReceipt, PositionReport, POSITION_EVERY_SECS};
use callahead_core::{CourierId, DepotId};
use chrono::{DateTime, Duration, Utc};

/// How far a phone's clock may run ahead of the server's, and how old a fix
/// may be, before the report is refused as not describing now.
const CLOCK_SKEW: Duration = Duration::minutes(5);
const STALE: Duration = Duration::hours(24);

fn check(report: &PositionReport, now: DateTime<Utc>) -> Result<(), AppError> {
    let invalid = |field: &str, message: String| {
        Err(AppError::new(ErrorCode::ValidationFailed, message).with_field(field))
    };
    if !(-90.0..=90.0).contains(&report.lat.0) {
        return invalid("lat", format!("latitude {} is outside -90..90", report.lat.0));
    }
    if !(-180.0..=180.0).contains(&report.lon.0) {
        return invalid("lon", format!("longitude {} is outside -180..180", report.lon.0));
    }
    if report.at > now + CLOCK_SKEW || report.at < now - STALE {
        return invalid(
            "at",
            format!("the fix time {} is not within a day before the server's {now}", report.at),
        );
    }
    Ok(())
}

/// Records `report` for `courier`; logged unless the last logged one is
/// younger than `POSITION_EVERY_SECS`.
pub async fn record(
    writer: &Writer,
    now: DateTime<Utc>,
    courier: CourierId,
    depot: DepotId,
    report: PositionReport,
) -> Result<PositionReceipt, AppError> {
    check(&report, now)?;
    let wall = wall_ms();
    writer
        .write(move |tx| -> Result<PositionReceipt, AppError> {
            let recent = positions::last_logged(tx.db(), courier)?
                .is_some_and(|t| now - t < Duration::seconds(POSITION_EVERY_SECS));
            if recent {
                return Ok(PositionReceipt { logged: false });
            }
            positions::save(tx, courier, depot, &report, now)?;
            let kind =
                EventKind::CourierPosition { lat: report.lat, lon: report.lon, reported_at: report.at };
            tx.append_event(NewEvent::route(now, wall, depot, courier, kind))?;
            Ok(PositionReceipt { logged: true })
        })
        .await
}
