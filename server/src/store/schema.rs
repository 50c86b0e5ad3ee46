//! The schema as code, keyed on `PRAGMA user_version`: `init`
//! creates the latest schema in one go, `upgrade_from` walks an older file
//! forward one version at a time, and a test checks both end up identical.
//!
//! Times are integer milliseconds since the epoch (sortable, no parsing),
//! route dates are `YYYY-MM-DD` text.

use rusqlite::Connection;

pub const VERSION: i64 = 24;

/// Version 1: every table.
const V1_TABLES: &str = r#"
CREATE TABLE depots (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    retry_spacing_secs INTEGER NOT NULL,
    ring_timeout_secs INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE couriers (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    name TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE supervisors (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    subject_id INTEGER,
    depot_id INTEGER,
    name TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE stops (
    id INTEGER PRIMARY KEY,
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    route_date TEXT NOT NULL,
    position INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    phone TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    address TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    order_numbers TEXT NOT NULL,
    amount_minor INTEGER,
    amount_currency TEXT,
    removed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (courier_id, route_date, external_id)
);
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    retry_spacing_secs INTEGER NOT NULL,
    ring_timeout_secs INTEGER NOT NULL,
    next_action_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (courier_id, idempotency_key)
);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL REFERENCES calls(id),
    number INTEGER NOT NULL,
    placed_at INTEGER NOT NULL,
    ringing_at INTEGER,
    answered_at INTEGER,
    key TEXT,
    ended_at INTEGER,
    result TEXT,
    provider_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (call_id, number)
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    origin_wall_ms INTEGER NOT NULL,
    depot_id INTEGER NOT NULL,
    courier_id INTEGER NOT NULL,
    stop_id INTEGER,
    kind TEXT NOT NULL,
    call TEXT
);
CREATE INDEX stops_route ON stops (courier_id, route_date, position);
CREATE INDEX calls_stop ON calls (stop_id);
"#;

/// Version 2: indexes for the hot paths — the scheduler's "earliest due
/// call", the per-courier active-call cap, and scoped websocket replay.
const V2_INDEXES: &str = r#"
CREATE INDEX calls_due ON calls (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX calls_active ON calls (courier_id) WHERE status NOT IN ('finished', 'cancelled');
CREATE INDEX events_courier ON events (courier_id, seq);
CREATE INDEX events_depot ON events (depot_id, seq);
"#;

/// Version 3: route planning. `sequence` is the courier's planned order
/// (import order until they plan); coordinates feed travel estimates; a
/// `route_plans` row says the courier planned that day, so a re-import keeps
/// their order instead of resetting it.
const V3_PLANNING: &str = r#"
ALTER TABLE stops ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stops ADD COLUMN lat REAL;
ALTER TABLE stops ADD COLUMN lon REAL;
UPDATE stops SET sequence = position;
CREATE TABLE route_plans (
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    route_date TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (courier_id, route_date)
);
"#;

/// Version 4: the rest of the attempt policy as data. `calling_hours` is
/// JSON (`NULL` = the default 09:00–21:00); a call copies its depot's policy
/// when it is requested, so a later policy change never alters a running call.
const V4_POLICY: &str = r#"
ALTER TABLE depots ADD COLUMN calling_hours TEXT;
ALTER TABLE depots ADD COLUMN stop_at_window_start INTEGER NOT NULL DEFAULT 1;
ALTER TABLE calls ADD COLUMN calling_hours TEXT;
ALTER TABLE calls ADD COLUMN stop_at_window_start INTEGER NOT NULL DEFAULT 1;
"#;

/// Version 5: what the robot says. A depot's templates (JSON, `NULL` = the
/// built-in wording), the customer's language per stop, and the rendered
/// script kept with every attempt for audit.
const V5_MESSAGES: &str = r#"
ALTER TABLE depots ADD COLUMN templates TEXT;
ALTER TABLE stops ADD COLUMN language TEXT;
ALTER TABLE attempts ADD COLUMN script TEXT;
"#;

/// Version 6: reschedule by link. One offer per call that ended as
/// `reschedule_requested`: the token's hash, the offered slots (JSON), and
/// the SMS outbox state. `pending_token` is the plain token, kept only until
/// the provider accepted the SMS so a crash before that can resend it;
/// `expires_at` is set when the SMS went out.
const V6_RESCHEDULE: &str = r#"
CREATE TABLE reschedule_offers (
    id INTEGER PRIMARY KEY,
    call_id INTEGER NOT NULL UNIQUE REFERENCES calls(id),
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    token_hash TEXT NOT NULL UNIQUE,
    pending_token TEXT,
    slots TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_send_at INTEGER,
    send_attempts INTEGER NOT NULL DEFAULT 0,
    send_error TEXT,
    sent_at INTEGER,
    expires_at INTEGER,
    used_at INTEGER,
    chosen_start INTEGER,
    chosen_end INTEGER
);
CREATE INDEX reschedule_offers_unsent ON reschedule_offers (next_send_at) WHERE next_send_at IS NOT NULL;
"#;

/// Version 7: calls the courier made themselves, logged for the audit; the
/// key makes a retried log harmless.
const V7_DIRECT_CALLS: &str = r#"
CREATE TABLE direct_calls (
    id INTEGER PRIMARY KEY,
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    idempotency_key TEXT NOT NULL,
    note TEXT NOT NULL,
    called_at INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    UNIQUE (courier_id, idempotency_key)
);
"#;

/// Version 8: the rest of issue #4. "Answered" = heard at least
/// `min_heard_secs` (policy, copied onto each call) with the talk time kept
/// per attempt; the depot's pickup points (JSON, `NULL` = none) offered on
/// the reschedule page, the one a customer chose (JSON) on the stop and the
/// offer.
const V8_HEARD_AND_PICKUP: &str = r#"
ALTER TABLE depots ADD COLUMN min_heard_secs INTEGER NOT NULL DEFAULT 5;
ALTER TABLE calls ADD COLUMN min_heard_secs INTEGER NOT NULL DEFAULT 5;
ALTER TABLE attempts ADD COLUMN talk_secs INTEGER;
ALTER TABLE depots ADD COLUMN pickup_points TEXT;
ALTER TABLE stops ADD COLUMN pickup_point TEXT;
ALTER TABLE reschedule_offers ADD COLUMN chosen_pickup TEXT;
"#;

/// Version 9: campaigns and order-event triggers. A run is one stop in one
/// campaign (at most once); order events are kept with their answer so a
/// retried POST gets the same one. Reschedule offers become "link offers":
/// a campaign's SMS link has no call (`call_id` NULL) and may confirm the
/// current window, so the table is rebuilt (SQLite cannot relax NOT NULL).
const V9_CAMPAIGNS: &str = r#"
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    name TEXT NOT NULL,
    steps TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE campaign_runs (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    state TEXT NOT NULL,
    next_step INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER,
    enrolled_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (campaign_id, stop_id)
);
CREATE INDEX campaign_runs_due ON campaign_runs (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX campaign_runs_stop ON campaign_runs (stop_id, state);
CREATE TABLE trigger_rules (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    event_type TEXT NOT NULL,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    cancel_on TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE order_events (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    idempotency_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    occurred_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    result TEXT NOT NULL,
    UNIQUE (depot_id, idempotency_key)
);
CREATE TABLE link_offers (
    id INTEGER PRIMARY KEY,
    call_id INTEGER UNIQUE REFERENCES calls(id),
    campaign_run_id INTEGER UNIQUE REFERENCES campaign_runs(id),
    confirmable INTEGER NOT NULL DEFAULT 0,
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    token_hash TEXT NOT NULL UNIQUE,
    pending_token TEXT,
    slots TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_send_at INTEGER,
    send_attempts INTEGER NOT NULL DEFAULT 0,
    send_error TEXT,
    sent_at INTEGER,
    expires_at INTEGER,
    used_at INTEGER,
    chosen_start INTEGER,
    chosen_end INTEGER,
    chosen_pickup TEXT,
    confirmed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO link_offers (id, call_id, stop_id, token_hash, pending_token, slots, created_at, next_send_at,
    send_attempts, send_error, sent_at, expires_at, used_at, chosen_start, chosen_end, chosen_pickup)
  SELECT id, call_id, stop_id, token_hash, pending_token, slots, created_at, next_send_at,
    send_attempts, send_error, sent_at, expires_at, used_at, chosen_start, chosen_end, chosen_pickup
  FROM reschedule_offers;
DROP TABLE reschedule_offers;
ALTER TABLE link_offers RENAME TO reschedule_offers;
CREATE INDEX reschedule_offers_unsent ON reschedule_offers (next_send_at) WHERE next_send_at IS NOT NULL;
"#;

/// Version 10: outbound webhooks (docs/adr/0004). The secret is kept in
/// clear because the server signs with it (a hash cannot sign).
/// `cursor`: every matching event up to it was delivered or dead-lettered;
/// `pending_*`: the retry state of the one event being delivered. Ids are
/// never reused, so a deleted endpoint's worker cannot act for a new one.
const V10_WEBHOOKS: &str = r#"
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    max_attempts INTEGER NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until INTEGER,
    cursor INTEGER NOT NULL,
    pending_seq INTEGER,
    pending_attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_depot ON webhook_endpoints (depot_id);
CREATE TABLE webhook_failures (
    id INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    error TEXT NOT NULL
);
CREATE INDEX webhook_failures_endpoint ON webhook_failures (endpoint_id, id);
CREATE TABLE webhook_dead_letters (
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    dead_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    replaying INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, seq)
);
"#;

/// Version 11: the notification cascade (ADR 0005). A `messages` row per
/// text to a customer: its channel plan (JSON, fixed at the first send),
/// the step reached, the channel that reached them and the total cost; a
/// `message_sends` row per channel tried, written before the provider is
/// asked. Reschedule SMS not yet sent move over from the old outbox columns.
const V11_CASCADE: &str = r#"
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    purpose TEXT NOT NULL,
    ref_id INTEGER NOT NULL,
    phone TEXT NOT NULL,
    plan TEXT,
    currency TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER,
    channel TEXT,
    segments INTEGER,
    cost_minor INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (purpose, ref_id)
);
CREATE INDEX messages_due ON messages (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX messages_depot ON messages (depot_id, created_at);
CREATE TABLE message_sends (
    message_id INTEGER NOT NULL REFERENCES messages(id),
    step INTEGER NOT NULL,
    channel TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    result TEXT NOT NULL,
    segments INTEGER NOT NULL,
    cost_minor INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    ended_at INTEGER,
    PRIMARY KEY (message_id, step)
);
CREATE INDEX calls_depot_created ON calls (depot_id, created_at);
INSERT INTO messages (depot_id, courier_id, stop_id, purpose, ref_id, phone, state, next_at, created_at)
    SELECT s.depot_id, s.courier_id, s.id, 'reschedule', o.id, s.phone, 'sending', o.next_send_at, o.created_at
    FROM reschedule_offers o JOIN stops s ON s.id = o.stop_id WHERE o.next_send_at IS NOT NULL;
UPDATE reschedule_offers SET next_send_at = NULL;
"#;

/// Version 12: the supervisor's drill-down reads every event of one stop.
const V12_STOP_EVENTS: &str = r#"
CREATE INDEX events_stop ON events (stop_id, seq) WHERE stop_id IS NOT NULL;
"#;

/// Version 13: what a crash must not leave behind. Attempts still open are
/// found without scanning them all; the couriers whose app was connected are
/// kept durably, so a restart can close what the crash left "online" (taken
/// from the log for databases that predate it); the log gets an identity,
/// so a client that resumes against another database can tell.
const V13_CRASH_RECOVERY: &str = r#"
CREATE INDEX attempts_open ON attempts (call_id) WHERE ended_at IS NULL;
CREATE TABLE apps_online (
    courier_id INTEGER PRIMARY KEY REFERENCES couriers(id),
    depot_id INTEGER NOT NULL REFERENCES depots(id)
);
INSERT INTO apps_online (courier_id, depot_id)
    SELECT e.courier_id, e.depot_id FROM events e
    WHERE e.seq IN (SELECT MAX(seq) FROM events WHERE kind LIKE '{"type":"app_connection"%' GROUP BY courier_id)
      AND json_extract(e.kind, '$.connected') = 1;
CREATE TABLE server_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO server_meta (key, value) VALUES ('log_id', lower(hex(randomblob(16))));
"#;

/// Version 14 (issue #11): real telephony providers. An attempt keeps what
/// was placed (the script a provider asks for mid-call), the provider's
/// reference and control URL and the secret its callbacks are signed with;
/// provider callbacks are deduplicated on their own keys; SMS sent through a
/// provider keep its message id and receipt; direct calls through the
/// provider (click-to-call) and their recordings; answering-machine
/// detection as a policy option (depot, copied onto each call).
const V14_PROVIDERS: &str = r#"
ALTER TABLE attempts ADD COLUMN request TEXT;
ALTER TABLE attempts ADD COLUMN provider_ref TEXT;
ALTER TABLE attempts ADD COLUMN provider_control TEXT;
CREATE INDEX attempts_provider_ref ON attempts (provider_ref) WHERE provider_ref IS NOT NULL;
CREATE TABLE provider_receipts (
    key TEXT PRIMARY KEY,
    first_at INTEGER NOT NULL
);
CREATE TABLE provider_messages (
    idempotency_key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    provider_ref TEXT,
    status TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX provider_messages_ref ON provider_messages (provider_ref) WHERE provider_ref IS NOT NULL;
ALTER TABLE depots ADD COLUMN record_direct_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE depots ADD COLUMN machine_detection INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN machine_detection INTEGER NOT NULL DEFAULT 0;
CREATE TABLE direct_dials (
    id INTEGER PRIMARY KEY,
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    courier_id INTEGER NOT NULL REFERENCES couriers(id),
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    idempotency_key TEXT NOT NULL UNIQUE,
    record INTEGER NOT NULL,
    status TEXT NOT NULL,
    provider_ref TEXT,
    callback_secret TEXT NOT NULL,
    recording_ref TEXT,
    recording_secs INTEGER,
    talk_secs INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
"#;

/// Version 15: the token lifecycle (docs/adr/0007). A token's kind
/// (`access`, `refresh`, `bootstrap`), the sign-in family a courier's pair
/// shares, when a refresh token was exchanged, when it was revoked, when it
/// was last used; deactivated couriers and supervisors. Admin tokens so far
/// came only from `CALLAHEAD_ADMIN_TOKEN`.
const V15_TOKEN_LIFECYCLE: &str = r#"
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'access';
ALTER TABLE tokens ADD COLUMN family TEXT;
ALTER TABLE tokens ADD COLUMN rotated_at INTEGER;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE couriers ADD COLUMN deactivated_at INTEGER;
ALTER TABLE supervisors ADD COLUMN deactivated_at INTEGER;
UPDATE tokens SET kind = 'bootstrap' WHERE role = 'admin';
CREATE INDEX tokens_subject ON tokens (role, subject_id);
CREATE INDEX tokens_family ON tokens (family) WHERE family IS NOT NULL;
"#;

/// Version 16: a depot's send limits (JSON `SendLimits`, `NULL`: the
/// server's defaults), and an index for counting a depot's day of calls.
const V16_SEND_LIMITS: &str = r#"
ALTER TABLE depots ADD COLUMN send_limits TEXT;
"#;

/// Version 17: personal data kept no longer than needed. A depot's
/// retention (days after a route's date; `NULL`: the server's default), and
/// when a stop's customer data was erased (by retention or on request).
const V17_RETENTION: &str = r#"
ALTER TABLE depots ADD COLUMN retention_days INTEGER;
ALTER TABLE stops ADD COLUMN erased_at INTEGER;
CREATE INDEX stops_unerased ON stops (depot_id, route_date) WHERE erased_at IS NULL;
CREATE INDEX stops_phone ON stops (depot_id, phone);
"#;

/// Version 18: the audit chain (docs/audit.md); an older log is linked in
/// the upgrade.
const V18_AUDIT: &str = r#"
ALTER TABLE events ADD COLUMN hash BLOB;
"#;

/// Version 19: a depot's call-ahead settings (JSON `CallAheadSettings`;
/// `NULL`: the defaults): what the savings figures assume, and the bounds of
/// the couriers' automatic call-ahead lead time.
const V19_CALL_AHEAD: &str = r#"
ALTER TABLE depots ADD COLUMN call_ahead TEXT;
"#;

/// Version 20: each courier's last logged position (the dashboard's map;
/// every logged one is also a `courier_position` event).
const V20_POSITIONS: &str = r#"
CREATE TABLE courier_positions (
    courier_id INTEGER PRIMARY KEY REFERENCES couriers(id),
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    reported_at INTEGER NOT NULL,
    logged_at INTEGER NOT NULL
);
CREATE INDEX courier_positions_depot ON courier_positions (depot_id);
"#;

/// Version 21: a stop's events are read through its courier's range of the
/// log (`queries::OF_STOP`); the index by stop cost every append a random
/// page (issue #13: fewer pages per event).
const V21_NO_STOP_INDEX: &str = r#"
DROP INDEX events_stop;
"#;

/// Version 22 (issue #15): retries at the best hour. The policy switch
/// (depot; copied onto each call: a call requested before the upgrade keeps
/// the fixed spacing it was requested under); counters of attempts and
/// answers per depot by the customer's local weekday and hour, and per
/// customer number (a keyed hash, one row per stop and hour, so erasing a
/// stop deletes what was learned from it); the hash's key. An older log
/// is counted in the upgrade.
const V22_BEST_HOUR: &str = r#"
ALTER TABLE depots ADD COLUMN retry_at_best_hour INTEGER NOT NULL DEFAULT 1;
ALTER TABLE calls ADD COLUMN retry_at_best_hour INTEGER NOT NULL DEFAULT 0;
CREATE TABLE depot_answer_stats (
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    weekday INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    PRIMARY KEY (depot_id, weekday, hour)
) WITHOUT ROWID;
CREATE TABLE number_answer_stats (
    stop_id INTEGER NOT NULL REFERENCES stops(id),
    hour INTEGER NOT NULL,
    depot_id INTEGER NOT NULL REFERENCES depots(id),
    number_key BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    PRIMARY KEY (stop_id, hour)
) WITHOUT ROWID;
CREATE INDEX number_answer_stats_key ON number_answer_stats (depot_id, number_key);
INSERT INTO server_meta (key, value) VALUES ('number_key', lower(hex(randomblob(32))));
"#;

/// Version 23: a stop the customer's answer took out of the day's chain
/// (docs/adr/0010): `declined` or `another_day`; `NULL` while in it.
const V23_OUT_OF_CHAIN: &str = r#"
ALTER TABLE stops ADD COLUMN out_of_chain TEXT;
"#;

/// Version 24 (docs/adr/0011): the nodes sharing a database and the leases
/// they hold on shared work. SQLite never writes them (one file is one
/// node); they exist so both engines have one schema and one set of tests.
const V24_LEASES: &str = r#"
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
CREATE TABLE leases (
    kind TEXT NOT NULL,
    item INTEGER NOT NULL,
    owner TEXT,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, item)
);
CREATE INDEX leases_owner ON leases (owner, expires_at);
CREATE INDEX leases_expiry ON leases (kind, expires_at);
"#;

/// Brings `conn` to [`VERSION`], in one transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        init(&tx)?;
    } else {
        let mut v = version;
        while v < VERSION {
            upgrade_from(&tx, v)?;
            v += 1;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}

fn init(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(V1_TABLES)?;
    conn.execute_batch(V2_INDEXES)?;
    conn.execute_batch(V3_PLANNING)?;
    conn.execute_batch(V4_POLICY)?;
    conn.execute_batch(V5_MESSAGES)?;
    conn.execute_batch(V6_RESCHEDULE)?;
    conn.execute_batch(V7_DIRECT_CALLS)?;
    conn.execute_batch(V8_HEARD_AND_PICKUP)?;
    conn.execute_batch(V9_CAMPAIGNS)?;
    conn.execute_batch(V10_WEBHOOKS)?;
    conn.execute_batch(V11_CASCADE)?;
    conn.execute_batch(V12_STOP_EVENTS)?;
    conn.execute_batch(V13_CRASH_RECOVERY)?;
    conn.execute_batch(V14_PROVIDERS)?;
    conn.execute_batch(V15_TOKEN_LIFECYCLE)?;
    conn.execute_batch(V16_SEND_LIMITS)?;
    conn.execute_batch(V17_RETENTION)?;
    conn.execute_batch(V18_AUDIT)?;
    conn.execute_batch(V19_CALL_AHEAD)?;
    conn.execute_batch(V20_POSITIONS)?;
    conn.execute_batch(V21_NO_STOP_INDEX)?;
    conn.execute_batch(V22_BEST_HOUR)?;
    conn.execute_batch(V23_OUT_OF_CHAIN)?;
    conn.execute_batch(V24_LEASES)
}

/// One arm per version: each moves the schema from `version` to `version + 1`.
fn upgrade_from(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    match version {
        1 => conn.execute_batch(V2_INDEXES),
        2 => conn.execute_batch(V3_PLANNING),
        3 => conn.execute_batch(V4_POLICY),
        4 => conn.execute_batch(V5_MESSAGES),
        5 => conn.execute_batch(V6_RESCHEDULE),
        6 => conn.execute_batch(V7_DIRECT_CALLS),
        7 => conn.execute_batch(V8_HEARD_AND_PICKUP),
        8 => conn.execute_batch(V9_CAMPAIGNS),
        9 => conn.execute_batch(V10_WEBHOOKS),
        10 => conn.execute_batch(V11_CASCADE),
        11 => conn.execute_batch(V12_STOP_EVENTS),
        12 => conn.execute_batch(V13_CRASH_RECOVERY),
        13 => conn.execute_batch(V14_PROVIDERS),
        14 => conn.execute_batch(V15_TOKEN_LIFECYCLE),
        15 => conn.execute_batch(V16_SEND_LIMITS),
        16 => conn.execute_batch(V17_RETENTION),
        17 => conn.execute_batch(V18_AUDIT).and_then(|()| super::audit::backfill(conn)).map(drop),
        18 => conn.execute_batch(V19_CALL_AHEAD),
        19 => conn.execute_batch(V20_POSITIONS),
        20 => conn.execute_batch(V21_NO_STOP_INDEX),
        21 => conn.execute_batch(V22_BEST_HOUR).and_then(|()| {
            super::answers::backfill(conn)
                .map(drop)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        }),
        22 => conn.execute_batch(V23_OUT_OF_CHAIN),
        23 => conn.execute_batch(V24_LEASES),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's columns and every index's definition, in a stable order.
    fn describe(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .expect("prepare");
        let rows: Vec<(String, String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        for (kind, name, table, sql) in rows {
            if kind == "table" {
                let mut cols = conn.prepare(&format!("PRAGMA table_info({name})")).expect("table_info");
                let cols: Vec<String> = cols
                    .query_map([], |r| {
                        Ok(format!(
                            "{}:{}:{}:{:?}:{}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .expect("cols")
                    .collect::<Result<_, _>>()
                    .expect("cols");
                out.push(format!("table {name}: {}", cols.join(", ")));
            } else {
                out.push(format!("{kind} {name} on {table}: {}", sql.unwrap_or_default()));
            }
        }
        out
    }

    #[test]
    fn an_upgraded_database_equals_a_fresh_one() {
        let mut fresh = Connection::open_in_memory().expect("open");
        migrate(&mut fresh).expect("fresh");

        let mut old = Connection::open_in_memory().expect("open");
        old.execute_batch(V1_TABLES).expect("v1");
        old.pragma_update(None, "user_version", 1).expect("version");
        old.execute("INSERT INTO depots (name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at) VALUES ('d', 'UTC', 3, 900, 30, 0)", []).expect("row");
        migrate(&mut old).expect("upgrade");

        assert_eq!(describe(&old), describe(&fresh));
        let v: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(v, VERSION);
        let depots: i64 = old.query_row("SELECT COUNT(*) FROM depots", [], |r| r.get(0)).expect("count");
        assert_eq!(depots, 1, "data survives the upgrade");
    }

    #[test]
    fn an_unsent_reschedule_sms_moves_into_the_cascade_on_upgrade() {
        let mut old = Connection::open_in_memory().expect("open");
        for v in [V1_TABLES, V2_INDEXES, V3_PLANNING, V4_POLICY, V5_MESSAGES, V6_RESCHEDULE, V7_DIRECT_CALLS]
        {
            old.execute_batch(v).expect("old schema");
        }
        old.pragma_update(None, "user_version", 7).expect("version");
        old.execute_batch(
            "INSERT INTO depots VALUES (1, 'd', 'UTC', 3, 900, 30, 0, NULL, 1, NULL);
             INSERT INTO couriers VALUES (1, 1, 'c', '+79990000001', 0);
             INSERT INTO stops (id, courier_id, depot_id, route_date, position, external_id, customer_name, phone,
               time_zone, address, window_start, window_end, order_numbers)
               VALUES (5, 1, 1, '2027-01-15', 0, 'o', 'n', '+79160000001', 'UTC', 'a', 0, 1, '[]');
             INSERT INTO calls (id, courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
               retry_spacing_secs, ring_timeout_secs, created_at, updated_at)
               VALUES (1, 1, 1, 5, 'k', 'finished', 3, 900, 30, 0, 0), (2, 1, 1, 5, 'k2', 'finished', 3, 900, 30, 0, 0);
             INSERT INTO reschedule_offers (id, call_id, stop_id, token_hash, pending_token, slots, created_at,
               next_send_at) VALUES (7, 1, 5, 'h1', 'tok', '[]', 100, 160);
             INSERT INTO reschedule_offers (id, call_id, stop_id, token_hash, slots, created_at, sent_at)
               VALUES (8, 2, 5, 'h2', '[]', 100, 120);",
        )
        .expect("rows");
        migrate(&mut old).expect("upgrade");
        let moved: Vec<(String, i64, i64, String, String, Option<i64>)> = old
            .prepare("SELECT purpose, ref_id, stop_id, phone, state, next_at FROM messages")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            moved,
            vec![("reschedule".into(), 7, 5, "+79160000001".into(), "sending".into(), Some(160))],
            "only the unsent one, due when it was"
        );
        let old_outbox: i64 = old
            .query_row("SELECT COUNT(*) FROM reschedule_offers WHERE next_send_at IS NOT NULL", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(old_outbox, 0, "the old outbox no longer sends");
    }

    #[test]
    fn apps_left_online_in_the_log_are_known_after_the_upgrade() {
        let mut old = Connection::open_in_memory().expect("open");
        init_upto(&old, 12);
        old.pragma_update(None, "user_version", 12).expect("version");
        old.execute_batch(
            r#"INSERT INTO depots (id, name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at)
                 VALUES (1, 'd', 'UTC', 3, 900, 30, 0);
               INSERT INTO couriers VALUES (1, 1, 'a', '+79990000001', 0), (2, 1, 'b', '+79990000002', 0),
                 (3, 1, 'c', '+79990000003', 0);
               INSERT INTO events (seq, at, origin_wall_ms, depot_id, courier_id, kind) VALUES
                 (1, 0, 0, 1, 1, '{"type":"app_connection","connected":true}'),
                 (2, 0, 0, 1, 2, '{"type":"app_connection","connected":true}'),
                 (3, 0, 0, 1, 2, '{"type":"app_connection","connected":false}'),
                 (4, 0, 0, 1, 3, '{"type":"call_requested"}');"#,
        )
        .expect("rows");
        migrate(&mut old).expect("upgrade");
        let online: Vec<i64> = old
            .prepare("SELECT courier_id FROM apps_online ORDER BY courier_id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(online, vec![1], "courier 1 was still online when the log ended; 2 left; 3 never came");
        let log_id: String = old
            .query_row("SELECT value FROM server_meta WHERE key = 'log_id'", [], |r| r.get(0))
            .expect("log id");
        assert_eq!(log_id.len(), 32);
    }

    /// Applies the schema up to `version` as an old server would have.
    fn init_upto(conn: &Connection, version: i64) {
        conn.execute_batch(V1_TABLES).expect("v1");
        for v in 1..version {
            upgrade_from(conn, v).expect("upgrade step");
        }
    }

    #[test]
    fn the_upgrade_to_best_hour_retries_counts_the_attempts_already_made() {
        let mut old = Connection::open_in_memory().expect("open");
        init_upto(&old, 18);
        old.pragma_update(None, "user_version", 18).expect("version");
        // Monday 2026-11-23 07:05 UTC is 10:05 in Moscow.
        let at = 1_795_417_500_000_i64;
        old.execute_batch(&format!(
            "INSERT INTO depots (id, name, time_zone, max_attempts, retry_spacing_secs, ring_timeout_secs, created_at)
               VALUES (1, 'd', 'Europe/Moscow', 3, 900, 30, 0);
             INSERT INTO couriers (id, depot_id, name, phone, created_at) VALUES (1, 1, 'c', '+79990000001', 0);
             INSERT INTO stops (id, courier_id, depot_id, route_date, position, external_id, customer_name, phone,
               time_zone, address, window_start, window_end, order_numbers)
               VALUES (1, 1, 1, '2026-11-23', 0, 'o', 'n', '+79160000001', 'Europe/Moscow', 'a', 0, 1, '[]');
             INSERT INTO calls (id, courier_id, depot_id, stop_id, idempotency_key, status, max_attempts,
               retry_spacing_secs, ring_timeout_secs, created_at, updated_at)
               VALUES (1, 1, 1, 1, 'k', 'finished', 3, 900, 30, 0, 0);
             INSERT INTO attempts (call_id, number, placed_at, result) VALUES
               (1, 1, {at}, 'no_answer'), (1, 2, {at} + 60000, 'failed'), (1, 3, {at} + 120000, 'completed');"
        ))
        .expect("rows");
        migrate(&mut old).expect("upgrade");
        let depot: (i64, i64, i64, i64) = old
            .query_row("SELECT weekday, hour, attempts, answered FROM depot_answer_stats", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .expect("one slot");
        assert_eq!(depot, (0, 10, 2, 1), "Monday 10:00 Moscow: the failed attempt tells nothing");
        let number: (i64, i64, i64) = old
            .query_row("SELECT stop_id, attempts, answered FROM number_answer_stats", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("one row");
        assert_eq!(number, (1, 2, 1));
        let switch: i64 =
            old.query_row("SELECT retry_at_best_hour FROM depots", [], |r| r.get(0)).expect("depot");
        assert_eq!(switch, 1, "existing depots get the default: on");
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first");
        let before = describe(&conn);
        migrate(&mut conn).expect("second");
        assert_eq!(describe(&conn), before);
    }
}
