//! Stops and routes: what a route import and a courier's plan write. The
//! reads (`route`, `route_stops`, …) are in [`super::queries`].

use super::queries::date_str;
use super::{ms, StoreError, WriteTx};
use callahead_core::wire::{OutOfChain, StopInput};
use callahead_core::{CourierId, DepotId, StopId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

/// A stop's imported fields as stored.
struct Fields {
    orders: String,
    minor: Option<i64>,
    currency: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    language: Option<&'static str>,
}

fn fields(s: &StopInput) -> Result<Fields, StoreError> {
    let (minor, currency) = match &s.amount {
        Some(m) => (Some(m.minor), Some(m.currency.clone())),
        None => (None, None),
    };
    Ok(Fields {
        orders: serde_json::to_string(&s.order_numbers)?,
        minor,
        currency,
        lat: s.location.map(|p| p.lat),
        lon: s.location.map(|p| p.lon),
        language: s.language.map(|l| l.code()),
    })
}

/// A re-imported stop keeps its id and gets the new fields (and is live
/// again if it had been removed).
pub fn update_stop(
    tx: &WriteTx<'_>,
    id: StopId,
    position: usize,
    sequence: u32,
    s: &StopInput,
) -> Result<(), StoreError> {
    let f = fields(s)?;
    tx.exec(
        "UPDATE stops SET position = ?1, customer_name = ?2, phone = ?3, time_zone = ?4, address = ?5,
           window_start = ?6, window_end = ?7, order_numbers = ?8, amount_minor = ?9,
           amount_currency = ?10, removed = FALSE, sequence = ?12, lat = ?13, lon = ?14, language = ?15
         WHERE id = ?11",
        params![
            position as i64,
            s.customer_name,
            s.phone,
            s.time_zone,
            s.address,
            ms(s.window_start),
            ms(s.window_end),
            f.orders,
            f.minor,
            f.currency,
            id.0,
            i64::from(sequence),
            f.lat,
            f.lon,
            f.language
        ],
    )?;
    Ok(())
}

/// A stop new to the route.
#[allow(clippy::too_many_arguments)]
pub fn insert_stop(
    tx: &WriteTx<'_>,
    courier: CourierId,
    depot: DepotId,
    date: NaiveDate,
    position: usize,
    sequence: u32,
    s: &StopInput,
) -> Result<(), StoreError> {
    let f = fields(s)?;
    tx.exec(
        "INSERT INTO stops (courier_id, depot_id, route_date, position, external_id, customer_name, phone,
           time_zone, address, window_start, window_end, order_numbers, amount_minor, amount_currency,
           sequence, lat, lon, language)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            courier.0,
            depot.0,
            date_str(date),
            position as i64,
            s.external_id,
            s.customer_name,
            s.phone,
            s.time_zone,
            s.address,
            ms(s.window_start),
            ms(s.window_end),
            f.orders,
            f.minor,
            f.currency,
            i64::from(sequence),
            f.lat,
            f.lon,
            f.language
        ],
    )?;
    Ok(())
}

/// The stop left the route; kept for the audit.
pub fn remove_stop(tx: &WriteTx<'_>, id: StopId) -> Result<(), StoreError> {
    tx.exec("UPDATE stops SET removed = TRUE WHERE id = ?1", params![id.0])?;
    Ok(())
}

/// The courier's planned position of a stop.
pub fn set_sequence(tx: &WriteTx<'_>, id: StopId, sequence: u32) -> Result<(), StoreError> {
    tx.exec("UPDATE stops SET sequence = ?1 WHERE id = ?2", params![i64::from(sequence), id.0])?;
    Ok(())
}

/// The stop left today's chain (`Some`), or is in it (`None`): docs/adr/0010.
pub fn set_out_of_chain(tx: &WriteTx<'_>, id: StopId, out: Option<OutOfChain>) -> Result<(), StoreError> {
    tx.exec("UPDATE stops SET out_of_chain = ?1 WHERE id = ?2", params![out.map(OutOfChain::as_str), id.0])?;
    Ok(())
}

/// The route was planned, by the courier or by a re-plan (its order survives re-imports).
pub fn mark_planned(
    tx: &WriteTx<'_>,
    courier: CourierId,
    date: NaiveDate,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO route_plans (courier_id, route_date, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (courier_id, route_date) DO UPDATE SET updated_at = excluded.updated_at",
        params![courier.0, date_str(date), ms(at)],
    )?;
    Ok(())
}

/// The stop's delivery window moved (the customer chose another).
pub fn set_window(
    tx: &WriteTx<'_>,
    id: StopId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE stops SET window_start = ?1, window_end = ?2 WHERE id = ?3",
        params![ms(start), ms(end), id.0],
    )?;
    Ok(())
}

/// The customer collects the order at `point` instead.
pub fn set_pickup_point(
    tx: &WriteTx<'_>,
    id: StopId,
    point: &callahead_core::wire::PickupPoint,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE stops SET pickup_point = ?1 WHERE id = ?2",
        params![serde_json::to_string(point)?, id.0],
    )?;
    Ok(())
}
