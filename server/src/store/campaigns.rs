//! Campaigns, their runs (one per enrolled stop), trigger rules and the
//! order events that fire them. The rules of a run live in
//! `crate::campaigns`; this is how they are kept.

use super::queries::{corrupt, opt_ms};
use super::{from_ms, ms, Db, Row, StoreError, WriteTx};
use callahead_core::campaign::{
    Campaign, CampaignRun, CampaignStep, OrderEventResult, RunState, TriggerRule,
};
use callahead_core::{DepotId, StopId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

const RUN_COLS: &str = "id, campaign_id, stop_id, state, next_step, next_at, enrolled_at, updated_at";

fn run_row(r: &Row<'_>) -> rusqlite::Result<CampaignRun> {
    let state: String = r.get(3)?;
    Ok(CampaignRun {
        id: r.get(0)?,
        campaign_id: r.get(1)?,
        stop_id: StopId(r.get(2)?),
        state: RunState::parse(&state).ok_or_else(|| corrupt(format!("run state {state:?}")))?,
        next_step: r.get(4)?,
        next_at: opt_ms(r.get(5)?)?,
        enrolled_at: from_ms(r.get(6)?)?,
        updated_at: from_ms(r.get(7)?)?,
    })
}

pub fn campaign(db: &Db, id: i64) -> Result<Option<Campaign>, StoreError> {
    let row = db.opt(
        "SELECT id, depot_id, name, steps, created_at FROM campaigns WHERE id = ?1",
        params![id],
        |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
            ))
        },
    )?;
    let Some((id, depot, name, steps, created)) = row else { return Ok(None) };
    Ok(Some(Campaign {
        id,
        depot_id: DepotId(depot),
        name,
        steps: serde_json::from_str(&steps)?,
        created_at: from_ms(created)?,
    }))
}

/// The depot's campaigns, in id order.
pub fn campaigns(db: &Db, depot: DepotId) -> Result<Vec<Campaign>, StoreError> {
    let ids: Vec<i64> =
        db.all("SELECT id FROM campaigns WHERE depot_id = ?1 ORDER BY id", params![depot.0], |r| r.get(0))?;
    ids.into_iter().filter_map(|id| campaign(db, id).transpose()).collect()
}

/// Stores a new campaign; its id.
pub fn insert(
    tx: &WriteTx<'_>,
    depot: DepotId,
    name: &str,
    steps: &[CampaignStep],
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO campaigns (depot_id, name, steps, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        params![depot.0, name, serde_json::to_string(steps)?, ms(at)],
        |r| r.get(0),
    )
}

pub fn run(db: &Db, id: i64) -> Result<Option<CampaignRun>, StoreError> {
    db.opt(&format!("SELECT {RUN_COLS} FROM campaign_runs WHERE id = ?1"), params![id], run_row)
}

pub fn runs(db: &Db, campaign: i64) -> Result<Vec<CampaignRun>, StoreError> {
    db.all(
        &format!("SELECT {RUN_COLS} FROM campaign_runs WHERE campaign_id = ?1 ORDER BY id"),
        params![campaign],
        run_row,
    )
}

/// `stop`'s run in `campaign`, if it was ever enrolled.
pub fn run_of(db: &Db, campaign: i64, stop: StopId) -> Result<Option<CampaignRun>, StoreError> {
    let id: Option<i64> = db.opt(
        "SELECT id FROM campaign_runs WHERE campaign_id = ?1 AND stop_id = ?2",
        params![campaign, stop.0],
        |r| r.get(0),
    )?;
    Ok(id.map(|id| run(db, id)).transpose()?.flatten())
}

/// Runs handed over to an operator, in the depot, oldest first.
pub fn operator_queue(db: &Db, depot: DepotId) -> Result<Vec<CampaignRun>, StoreError> {
    db.all(
        &format!(
            "SELECT {} FROM campaign_runs r JOIN campaigns c ON c.id = r.campaign_id
             WHERE c.depot_id = ?1 AND r.state = 'handed_over' ORDER BY r.updated_at, r.id",
            RUN_COLS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
        ),
        params![depot.0],
        run_row,
    )
}

pub fn active_runs_of_stop(db: &Db, stop: StopId) -> Result<Vec<CampaignRun>, StoreError> {
    db.all(
        &format!("SELECT {RUN_COLS} FROM campaign_runs WHERE stop_id = ?1 AND state = 'active' ORDER BY id"),
        params![stop.0],
        run_row,
    )
}

/// Enrolls `stop` (at most once per campaign: a second enrollment returns
/// `None`), its first step due at `first_due`.
pub fn enroll(
    tx: &WriteTx<'_>,
    campaign: i64,
    stop: StopId,
    first_due: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    tx.db().opt(
        "INSERT INTO campaign_runs (campaign_id, stop_id, state, next_step, next_at, enrolled_at, updated_at)
         VALUES (?1, ?2, 'active', 0, ?3, ?4, ?4) ON CONFLICT (campaign_id, stop_id) DO NOTHING RETURNING id",
        params![campaign, stop.0, ms(first_due), ms(at)],
        |r| r.get(0),
    )
}

/// Ends an active run in `state`; `false` if it had already ended.
pub fn end_run(tx: &WriteTx<'_>, run: i64, state: RunState, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let changed = tx.exec(
        "UPDATE campaign_runs SET state = ?1, next_at = NULL, updated_at = ?2 WHERE id = ?3 AND state = 'active'",
        params![state.as_str(), ms(at), run],
    )?;
    Ok(changed == 1)
}

/// Moves the run's next step to `until` (same step).
pub fn postpone(
    tx: &WriteTx<'_>,
    run: i64,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE campaign_runs SET next_at = ?1, updated_at = ?2 WHERE id = ?3",
        params![ms(until), ms(now), run],
    )?;
    Ok(())
}

/// The run's next step is `next`, due at `at` (never, if `None`).
pub fn advance(
    tx: &WriteTx<'_>,
    run: i64,
    next: u32,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE campaign_runs SET next_step = ?1, next_at = ?2, updated_at = ?3 WHERE id = ?4",
        params![next, at.map(ms), ms(now), run],
    )?;
    Ok(())
}

/// When the earliest step is due, if any.
pub fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let v: Option<i64> =
        db.one("SELECT MIN(next_at) FROM campaign_runs WHERE next_at IS NOT NULL", params![], |r| r.get(0))?;
    Ok(v.map(from_ms).transpose()?)
}

/// Runs with a step due at `now`, earliest first.
pub fn due_runs(db: &Db, now: DateTime<Utc>, limit: usize) -> Result<Vec<i64>, StoreError> {
    db.all(
        "SELECT id FROM campaign_runs WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
        params![ms(now), limit as i64],
        |r| r.get(0),
    )
}

// ---------------------------------------------------------------- trigger rules, order events

/// Stores a trigger rule; its id.
pub fn insert_rule(
    tx: &WriteTx<'_>,
    depot: DepotId,
    event_type: &str,
    campaign: i64,
    cancel_on: &[String],
    at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO trigger_rules (depot_id, event_type, campaign_id, cancel_on, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![depot.0, event_type, campaign, serde_json::to_string(cancel_on)?, ms(at)],
        |r| r.get(0),
    )
}

/// The depot's trigger rules, in id order.
pub fn rules(db: &Db, depot: DepotId) -> Result<Vec<TriggerRule>, StoreError> {
    let rows: Vec<(i64, String, i64, String, i64)> = db.all(
        "SELECT id, event_type, campaign_id, cancel_on, created_at FROM trigger_rules
         WHERE depot_id = ?1 ORDER BY id",
        params![depot.0],
        |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    rows.into_iter()
        .map(|(id, event_type, campaign_id, cancel_on, created)| {
            Ok(TriggerRule {
                id,
                depot_id: depot,
                event_type,
                campaign_id,
                cancel_on: serde_json::from_str(&cancel_on)?,
                created_at: from_ms(created)?,
            })
        })
        .collect()
}

/// The answer given to an order event already recorded under this key.
pub fn order_event_result(
    db: &Db,
    depot: DepotId,
    key: &str,
) -> Result<Option<OrderEventResult>, StoreError> {
    let seen: Option<String> = db.opt(
        "SELECT result FROM order_events WHERE depot_id = ?1 AND idempotency_key = ?2",
        params![depot.0, key],
        |r| r.get(0),
    )?;
    Ok(seen.map(|json| serde_json::from_str(&json)).transpose()?)
}

/// An order event as received.
pub struct NewOrderEvent<'a> {
    pub depot: DepotId,
    pub idempotency_key: &'a str,
    pub event_type: &'a str,
    pub stop: StopId,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// Records an order event (its answer follows with
/// [`set_order_event_result`]); its id.
pub fn insert_order_event(tx: &WriteTx<'_>, e: &NewOrderEvent<'_>) -> Result<i64, StoreError> {
    tx.db().one(
        "INSERT INTO order_events (depot_id, idempotency_key, event_type, stop_id, occurred_at, received_at, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '') RETURNING id",
        params![e.depot.0, e.idempotency_key, e.event_type, e.stop.0, ms(e.occurred_at), ms(e.received_at)],
        |r| r.get(0),
    )
}

pub fn set_order_event_result(tx: &WriteTx<'_>, result: &OrderEventResult) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE order_events SET result = ?1 WHERE id = ?2",
        params![serde_json::to_string(result)?, result.id],
    )?;
    Ok(())
}

/// The live stop of the depot's routes of `date` that carries this order.
pub fn stop_by_external_id(
    db: &Db,
    depot: DepotId,
    date: NaiveDate,
    external_id: &str,
) -> Result<Option<StopId>, StoreError> {
    Ok(db
        .opt(
            "SELECT id FROM stops WHERE depot_id = ?1 AND route_date = ?2 AND external_id = ?3 AND removed = FALSE
             ORDER BY id LIMIT 1",
            params![depot.0, super::queries::date_str(date), external_id],
            |r| r.get(0),
        )?
        .map(StopId))
}
