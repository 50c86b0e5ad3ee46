//! Erasing customers' personal data (see `crate::retention`): a stop keeps
//! its ids, dates, window and every call's outcome (the reports and the
//! audit count them), and loses the name, number, address, orders, amount,
//! location, the robot's rendered scripts and what was placed with each
//! attempt (the customer's and the courier's numbers, the personalised
//! script), the courier's notes, the references of direct calls'
//! recordings, the numbers texts went to and what the best-hour retries
//! learned of the customer's answering (`super::answers`).

use super::{ms, Db, Dialect, StoreError, WriteTx};
use callahead_core::DepotId;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

/// Stops whose route is older than their depot's retention allows on
/// `today_of`'s date (depots' local dates), not erased yet, not being called.
pub fn expired(
    db: &Db,
    default_days: u32,
    today_of: impl Fn(DepotId, &str) -> NaiveDate,
    limit: usize,
) -> Result<Vec<i64>, StoreError> {
    let depots: Vec<(i64, String, Option<u32>)> =
        db.all("SELECT id, time_zone, retention_days FROM depots ORDER BY id", params![], |r| {
            Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let mut out = Vec::new();
    for (id, tz, days) in depots {
        let today = today_of(DepotId(id), &tz);
        let cutoff = today - chrono::Duration::days(i64::from(days.unwrap_or(default_days)));
        let ids: Vec<i64> = db.all(
            "SELECT s.id FROM stops s WHERE s.depot_id = ?1 AND s.erased_at IS NULL AND s.route_date < ?2
               AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.stop_id = s.id AND c.status NOT IN ('finished', 'cancelled'))
             ORDER BY s.id LIMIT ?3",
            params![id, cutoff.format("%Y-%m-%d").to_string(), limit as i64],
            |r| r.get(0),
        )?;
        out.extend(ids);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The depot's stops for customer `phone`, not erased yet.
pub fn stops_of_phone(db: &Db, depot: DepotId, phone: &str) -> Result<Vec<i64>, StoreError> {
    db.all(
        "SELECT id FROM stops WHERE depot_id = ?1 AND phone = ?2 AND erased_at IS NULL ORDER BY id",
        params![depot.0, phone],
        |r| r.get(0),
    )
}

/// Erases `stops`; returns how many texts' numbers went with them.
pub fn erase(tx: &WriteTx<'_>, stops: &[i64], at: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut messages = 0;
    for &id in stops {
        let n = tx.exec(
            "UPDATE stops SET customer_name = '', phone = '', address = '', order_numbers = '[]', amount_minor = NULL,
               amount_currency = NULL, lat = NULL, lon = NULL, pickup_point = NULL, erased_at = ?1
             WHERE id = ?2 AND erased_at IS NULL",
            params![ms(at), id],
        )?;
        if n == 0 {
            continue;
        }
        super::answers::erase_stop(tx, id)?;
        tx.exec(
            "UPDATE attempts SET script = NULL WHERE call_id IN (SELECT id FROM calls WHERE stop_id = ?1)",
            params![id],
        )?;
        let placed: Vec<(i64, String)> = tx.db().all(
            "SELECT id, request FROM attempts
              WHERE request IS NOT NULL AND call_id IN (SELECT id FROM calls WHERE stop_id = ?1)",
            params![id],
            |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)),
        )?;
        for (attempt, request) in placed {
            tx.exec(
                "UPDATE attempts SET request = ?1 WHERE id = ?2",
                params![scrub_request(&request), attempt],
            )?;
        }
        // '' rather than NULL: a late recording callback finds one kept and
        // stores nothing (`providers::dial_recorded`).
        tx.exec("UPDATE direct_dials SET recording_ref = '' WHERE stop_id = ?1", params![id])?;
        messages += tx.exec("UPDATE messages SET phone = '' WHERE stop_id = ?1", params![id])?;
        tx.exec("UPDATE direct_calls SET note = '' WHERE stop_id = ?1", params![id])?;
        tx.exec(
            "UPDATE reschedule_offers SET pending_token = NULL, chosen_pickup = NULL WHERE stop_id = ?1",
            params![id],
        )?;
        // The notes leave the log too; the audit chain keeps their digests
        // (docs/audit.md), so it still verifies.
        let kind_type = match tx.db().dialect() {
            Dialect::Sqlite => "json_extract(kind, '$.type')",
            Dialect::Postgres => "kind::jsonb ->> 'type'",
        };
        let notes: Vec<(i64, String)> = tx.db().all(
            &format!(
                "SELECT seq, kind FROM events WHERE {} AND {kind_type} = 'direct_call_logged' ORDER BY seq",
                super::queries::OF_STOP
            ),
            params![id],
            |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)),
        )?;
        for (seq, kind) in notes {
            if let Some(erased) = crate::audit::erase_kind(&kind) {
                tx.exec("UPDATE events SET kind = ?1 WHERE seq = ?2", params![erased, seq])?;
            }
        }
    }
    Ok(messages)
}

/// What was placed with an attempt (`providers::PlaceCall` as JSON) less
/// the numbers and the spoken texts; the attempt key, call and callback
/// secret stay, so a provider's late callback still verifies and applies.
/// Text that is not such JSON goes whole (`NULL`): nothing can be about it.
fn scrub_request(request: &str) -> Option<String> {
    use serde_json::Value;
    let Ok(Value::Object(mut placed)) = serde_json::from_str::<Value>(request) else { return None };
    placed.insert("to".into(), Value::String(String::new()));
    placed.insert("bridge_to".into(), Value::Null);
    if let Some(Value::Object(script)) = placed.get_mut("script") {
        for text in ["text", "no_input", "goodbye"] {
            script.insert(text.into(), Value::String(String::new()));
        }
    }
    serde_json::to_string(&placed).ok()
}

pub fn retention_days(db: &Db, depot: DepotId) -> Result<Option<Option<u32>>, StoreError> {
    db.opt("SELECT retention_days FROM depots WHERE id = ?1", params![depot.0], |r| r.get(0))
}

pub fn set_retention_days(tx: &WriteTx<'_>, depot: DepotId, days: u32) -> Result<bool, StoreError> {
    Ok(tx.exec("UPDATE depots SET retention_days = ?1 WHERE id = ?2", params![days, depot.0])? == 1)
}
