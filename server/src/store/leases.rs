//! Work shared by nodes, owned once (docs/adr/0011): the nodes on a
//! database, leases on work items with an epoch, claims that skip what
//! another node is taking, and the fence every write that starts or records
//! a side effect passes first.
//!
//! The table functions run on both engines (and are tested on both); the
//! server reaches them through [`Claims`], which on SQLite is
//! [`Claims::sole`] and never executes a lease statement.

use super::{Db, Dialect, StoreError, WriteTx};
use callahead_core::clock::SharedClock;
use callahead_core::CallId;
use rusqlite::params;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a lease lives without renewal (ms).
pub const LEASE_TTL_MS: i64 = 15_000;
/// How often a node renews its leases and sweeps dead nodes' work.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
/// A holder stops acting this long before its lease could lapse (ms): a
/// node cut off from the database stops before anyone may take over, and
/// clock skew between nodes up to this much is harmless.
pub const MARGIN_MS: i64 = 5_000;
/// A held lease expired this long ago (ms) is stuck: no live node swept it.
pub const STUCK_AFTER_MS: i64 = 2 * LEASE_TTL_MS;

/// What a lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A call, from the claim that creates an attempt until the attempt ends.
    Call,
    /// A queued message, for one pass of the sender.
    Message,
    /// A campaign run, for one step.
    CampaignRun,
    /// A webhook endpoint, while a node's worker delivers its stream.
    Webhook,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Call, Kind::Message, Kind::CampaignRun, Kind::Webhook].into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Message => "message",
            Kind::CampaignRun => "campaign_run",
            Kind::Webhook => "webhook",
        }
    }
}

/// A held lease. `owner` `None` is SQLite's sole node: held by definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub kind: Kind,
    pub item: i64,
    owner: Option<Arc<str>>,
    pub epoch: i64,
    pub expires_at: i64,
}

impl Lease {
    /// The lease of the only node there is (SQLite).
    pub fn sole(kind: Kind, item: i64) -> Lease {
        Lease { kind, item, owner: None, epoch: 0, expires_at: i64::MAX }
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}

/// A lease nobody renewed (its node is gone) and nobody swept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckLease {
    pub kind: String,
    pub item: i64,
    pub owner: String,
    pub epoch: i64,
    pub expires_at: i64,
}

/// A node as `nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

// ---------------------------------------------------------------- the table

/// Adds node `id` (started now).
pub fn register(db: &Db, id: &str, now: i64) -> Result<(), StoreError> {
    db.exec(
        "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
        params![id, now],
    )?;
    Ok(())
}

/// The advisory-lock class of node ids: a running node holds
/// `(NODE_LOCK_CLASS, hashtext(id))` on its claims connection for its life.
const NODE_LOCK_CLASS: i32 = 0x0ca1_1a4e;
/// How long a starting node waits for its id's lock: a node killed a moment
/// ago holds it until PostgreSQL sees its connection close.
const NODE_ID_WAIT_MS: u64 = 5_000;

/// Takes the lock of node id `id` on `db` (PostgreSQL), or refuses: a
/// running node already has this id.
fn hold_node_id(db: &Db, id: &str) -> Result<(), StoreError> {
    db.batch(&format!("SET lock_timeout = '{NODE_ID_WAIT_MS}ms'"))?;
    let held = db.exec(&format!("SELECT pg_advisory_lock({NODE_LOCK_CLASS}, hashtext(?1))"), params![id]);
    db.batch("SET lock_timeout = 0")?;
    match held {
        Ok(_) => Ok(()),
        Err(StoreError::Backend(e)) if e.starts_with("55P03") => Err(StoreError::Invalid(format!(
            "node id {id} belongs to a node that is still running on this database; give every node its own \
             --node-id (or none: a random one)"
        ))),
        Err(e) => Err(e),
    }
}

/// Frees what an earlier process under this node id held, for the
/// recovery that follows (restart recovery, docs/adr/0002): that process is
/// gone, since its id's lock was free. Returns how many leases it held.
fn take_back(db: &Db, id: &str) -> Result<usize, StoreError> {
    db.exec("UPDATE leases SET owner = NULL, expires_at = 0 WHERE owner = ?1", params![id])
}

/// Claims what it can of `items` for `node` until `now + ttl`, in a
/// transaction of its own on `db` (not the writer's). An item is free when
/// its lease expired, was released, never existed, or is already `node`'s;
/// one another claim is taking at this moment is skipped, not waited for.
/// Taking a lease from anyone else (or a lapsed one of one's own) bumps
/// its epoch; re-claiming one's own live lease keeps it.
pub fn claim(
    db: &Db,
    node: &str,
    kind: Kind,
    items: &[i64],
    now: i64,
    ttl: i64,
) -> Result<Vec<Lease>, StoreError> {
    let mut items = items.to_vec();
    // One order for every claimer: two claims inserting the same new rows
    // in opposite orders would deadlock on each other's inserts.
    items.sort_unstable();
    items.dedup();
    db.begin_write()?;
    let out = claim_in(db, node, kind, &items, now, ttl);
    let ended = db.end(out.is_ok());
    let out = out?;
    ended?;
    Ok(out)
}

fn claim_in(
    db: &Db,
    node: &str,
    kind: Kind,
    items: &[i64],
    now: i64,
    ttl: i64,
) -> Result<Vec<Lease>, StoreError> {
    let free = match db.dialect() {
        // One writer at a time (`BEGIN IMMEDIATE`): nothing to skip.
        Dialect::Sqlite => {
            "SELECT owner, epoch, expires_at FROM leases
             WHERE kind = ?1 AND item = ?2 AND (expires_at <= ?4 OR owner = ?3)"
        }
        Dialect::Postgres => {
            "SELECT owner, epoch, expires_at FROM leases
             WHERE kind = ?1 AND item = ?2 AND (expires_at <= ?4 OR owner = ?3)
             FOR UPDATE SKIP LOCKED"
        }
    };
    let owner: Arc<str> = Arc::from(node);
    let mut out = Vec::with_capacity(items.len());
    for &item in items {
        db.exec(
            "INSERT INTO leases (kind, item, owner, epoch, expires_at) VALUES (?1, ?2, NULL, 0, 0)
             ON CONFLICT (kind, item) DO NOTHING",
            params![kind.as_str(), item],
        )?;
        let found = db.opt(free, params![kind.as_str(), item, node, now], |r| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let Some((was, epoch, expires_at)) = found else { continue };
        let ours_and_live = was.as_deref() == Some(node) && expires_at > now;
        let epoch = if ours_and_live { epoch } else { epoch + 1 };
        let until = now + ttl;
        db.exec(
            "UPDATE leases SET owner = ?3, epoch = ?4, expires_at = ?5 WHERE kind = ?1 AND item = ?2",
            params![kind.as_str(), item, node, epoch, until],
        )?;
        out.push(Lease { kind, item, owner: Some(owner.clone()), epoch, expires_at: until });
    }
    Ok(out)
}

/// Renews `node`: its row, and every lease of its that is still live, to
/// `now + ttl`. A lapsed lease is not renewed (it can only be claimed
/// again), and one a write is fencing on at this moment waits for the next
/// renewal rather than holding this one up (a renewal that waited could
/// deadlock with a group commit that holds one lease and releases another).
/// Returns the leases renewed, `(kind, item)`.
pub fn renew(db: &Db, node: &str, now: i64, ttl: i64) -> Result<Vec<(String, i64)>, StoreError> {
    db.exec("UPDATE nodes SET heartbeat_at = ?2 WHERE id = ?1", params![node, now])?;
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "UPDATE leases SET expires_at = ?3 WHERE owner = ?1 AND expires_at > ?2 RETURNING kind, item"
        }
        Dialect::Postgres => {
            "UPDATE leases SET expires_at = ?3 WHERE (kind, item) IN (
                 SELECT kind, item FROM leases WHERE owner = ?1 AND expires_at > ?2
                 FOR UPDATE SKIP LOCKED)
             RETURNING kind, item"
        }
    };
    db.all(sql, params![node, now, now + ttl], |r| Ok::<_, rusqlite::Error>((r.get(0)?, r.get(1)?)))
}

/// The fence (docs/adr/0011): whether `lease` is still held, as it was
/// claimed, at `now`, checked inside the write that acts on it. On
/// PostgreSQL the row is share-locked until that write commits, so no claim
/// can take it in between.
pub fn holds_at(tx: &WriteTx<'_>, lease: &Lease, now: i64) -> Result<bool, StoreError> {
    let Some(owner) = lease.owner() else { return Ok(true) };
    let sql = match tx.db().dialect() {
        Dialect::Sqlite => {
            "SELECT 1 FROM leases
             WHERE kind = ?1 AND item = ?2 AND owner = ?3 AND epoch = ?4 AND expires_at > ?5"
        }
        Dialect::Postgres => {
            "SELECT 1 FROM leases
             WHERE kind = ?1 AND item = ?2 AND owner = ?3 AND epoch = ?4 AND expires_at > ?5
             FOR SHARE"
        }
    };
    let found = tx.db().opt(sql, params![lease.kind.as_str(), lease.item, owner, lease.epoch, now], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(found.is_some())
}

/// Gives `lease` up, if it is still the holder's (same owner and epoch).
pub fn release_in(tx: &WriteTx<'_>, lease: &Lease) -> Result<(), StoreError> {
    let Some(owner) = lease.owner() else { return Ok(()) };
    tx.exec(
        "UPDATE leases SET owner = NULL, expires_at = 0 WHERE kind = ?1 AND item = ?2 AND owner = ?3 AND epoch = ?4",
        params![lease.kind.as_str(), lease.item, owner, lease.epoch],
    )?;
    Ok(())
}

/// Ends the lease on `item` whoever holds it: its work is over (an
/// attempt ended, on whichever node heard of it). The row and its epoch stay.
pub fn finished(tx: &WriteTx<'_>, kind: Kind, item: i64) -> Result<(), StoreError> {
    if tx.db().dialect() == Dialect::Sqlite {
        // SQLite's sole node writes no lease (docs/adr/0011).
        return Ok(());
    }
    tx.exec(
        "UPDATE leases SET owner = NULL, expires_at = 0 WHERE kind = ?1 AND item = ?2 AND owner IS NOT NULL",
        params![kind.as_str(), item],
    )?;
    Ok(())
}

/// Releases every lapsed lease whose work the normal paths find again by
/// themselves: messages, campaign runs, webhook endpoints, and calls with
/// no open attempt. Calls with an open attempt are recovered instead
/// ([`orphaned_attempts`]). Returns how many.
pub fn release_lapsed(db: &Db, now: i64) -> Result<usize, StoreError> {
    db.exec(
        "UPDATE leases SET owner = NULL, expires_at = 0
         WHERE owner IS NOT NULL AND expires_at <= ?1
           AND (kind <> 'call' OR NOT EXISTS (
               SELECT 1 FROM attempts a WHERE a.call_id = leases.item AND a.ended_at IS NULL))",
        params![now],
    )
}

/// Open attempts whose call nobody holds a live lease on: their node died
/// (or left, or they predate leases). The taker recovers them as restart
/// recovery does (docs/adr/0002).
pub fn orphaned_attempts(db: &Db, now: i64) -> Result<Vec<(CallId, u32)>, StoreError> {
    db.all(
        "SELECT u.call_id, u.n FROM (
             SELECT call_id, number AS n FROM attempts WHERE ended_at IS NULL
             UNION
             SELECT id, attempt FROM calls WHERE status IN ('dialing', 'ringing', 'answered')
         ) u
         LEFT JOIN leases l ON l.kind = 'call' AND l.item = u.call_id
         WHERE l.item IS NULL OR l.expires_at <= ?1
         ORDER BY 1, 2",
        params![now],
        |r| Ok::<_, rusqlite::Error>((CallId(r.get(0)?), r.get(1)?)),
    )
}

/// A node stops cleanly: its leases are released at once (no wait for
/// them to lapse) and its row is removed.
pub fn leave(db: &Db, node: &str) -> Result<(), StoreError> {
    db.exec("UPDATE leases SET owner = NULL, expires_at = 0 WHERE owner = ?1", params![node])?;
    db.exec("DELETE FROM nodes WHERE id = ?1", params![node])?;
    Ok(())
}

/// Held leases expired more than [`STUCK_AFTER_MS`] before `now`.
pub fn stuck(db: &Db, now: i64) -> Result<Vec<StuckLease>, StoreError> {
    db.all(
        "SELECT kind, item, owner, epoch, expires_at FROM leases
         WHERE owner IS NOT NULL AND expires_at <= ?1 ORDER BY kind, item",
        params![now - STUCK_AFTER_MS],
        |r| {
            Ok::<_, rusqlite::Error>(StuckLease {
                kind: r.get(0)?,
                item: r.get(1)?,
                owner: r.get(2)?,
                epoch: r.get(3)?,
                expires_at: r.get(4)?,
            })
        },
    )
}

/// Every node the database has heard of, newest heartbeat first.
pub fn nodes(db: &Db) -> Result<Vec<NodeRow>, StoreError> {
    db.all("SELECT id, started_at, heartbeat_at FROM nodes ORDER BY heartbeat_at DESC, id", params![], |r| {
        Ok::<_, rusqlite::Error>(NodeRow { id: r.get(0)?, started_at: r.get(1)?, heartbeat_at: r.get(2)? })
    })
}

/// Forgets nodes silent for an hour (their leases were swept long ago).
pub fn forget_silent_nodes(db: &Db, now: i64) -> Result<usize, StoreError> {
    db.exec("DELETE FROM nodes WHERE heartbeat_at < ?1", params![now - 3_600_000])
}

/// What `/metrics` and `callahead-server leases` report: stuck leases,
/// and the nodes heard from within a lease length (SQLite: this process).
pub fn health(db: &Db, now: i64) -> Result<(usize, usize), StoreError> {
    let stuck = stuck(db, now)?.len();
    let alive = match db.dialect() {
        Dialect::Sqlite => 1,
        Dialect::Postgres => nodes(db)?.iter().filter(|n| n.heartbeat_at > now - LEASE_TTL_MS).count(),
    };
    Ok((stuck, alive))
}

/// The nodes and stuck leases of the database at `db` (a SQLite file or
/// a PostgreSQL URL), read only, for `callahead-server leases`.
pub fn report(db: &std::path::Path, now: i64) -> Result<(Vec<NodeRow>, Vec<StuckLease>), StoreError> {
    let location = super::Location::of(db);
    if let super::Location::Sqlite(path) = &location {
        if !path.exists() {
            return Err(StoreError::Corrupt(format!("no database at {}", path.display())));
        }
    }
    let conn = super::open_reader(&location)?;
    Ok((nodes(&conn)?, stuck(&conn, now)?))
}

// ---------------------------------------------------------------- the handle

/// How the server's workers claim (docs/adr/0011).
pub struct Claims {
    shared: Option<Shared>,
    clock: SharedClock,
}

struct Shared {
    node: Arc<str>,
    /// Claims and renewals, off the writer, one at a time per node.
    conn: Arc<Mutex<Db>>,
    /// Until when (ms) each lease of this node is known to live, by its
    /// claim or its last renewal: a lease a renewal skipped keeps the
    /// older expiry, so [`Claims::may_act`] never trusts a renewal that did
    /// not happen.
    known: Mutex<HashMap<(&'static str, i64), i64>>,
}

impl Claims {
    /// One node alone (SQLite): every claim is granted, nothing is written.
    pub fn sole(clock: SharedClock) -> Arc<Claims> {
        Arc::new(Claims { shared: None, clock })
    }

    /// A node among others on `db` (its own connection), registered now
    /// under `id` (`--node-id`) or a fresh random one. A node that comes back
    /// under the id it had takes its own work back at once instead of
    /// waiting for its leases to lapse: holding the id's lock proves the
    /// earlier process is gone.
    pub(super) fn shared(db: Db, clock: SharedClock, id: Option<String>) -> Result<Arc<Claims>, StoreError> {
        let id = id.unwrap_or_else(|| {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..16).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
        });
        hold_node_id(&db, &id)?;
        let taken_back = take_back(&db, &id)?;
        let now = clock.now().timestamp_millis();
        register(&db, &id, now)?;
        // Operators (and the multi-node test) match a lease's owner to a node.
        tracing::info!(node = %id, taken_back, "joined the nodes sharing this database");
        let shared =
            Shared { node: Arc::from(id), conn: Arc::new(Mutex::new(db)), known: Mutex::new(HashMap::new()) };
        Ok(Arc::new(Claims { shared: Some(shared), clock }))
    }

    /// Whether several nodes may share the work (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// This node's id (`None` alone on SQLite).
    pub fn node(&self) -> Option<&str> {
        self.shared.as_ref().map(|s| &*s.node)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    async fn on_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(s) = &self.shared else {
            return Err(StoreError::Invalid("no shared claims on SQLite".into()));
        };
        let (conn, node) = (s.conn.clone(), s.node.clone());
        tokio::task::spawn_blocking(move || {
            let db = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&db, &node)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Claims what it can of `items`.
    pub async fn claim(&self, kind: Kind, items: Vec<i64>) -> Result<Vec<Lease>, StoreError> {
        if self.shared.is_none() {
            return Ok(items.into_iter().map(|i| Lease::sole(kind, i)).collect());
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now_ms();
        let leases = self.on_conn(move |db, node| claim(db, node, kind, &items, now, LEASE_TTL_MS)).await?;
        if let Some(s) = &self.shared {
            let mut known = s.known.lock().unwrap_or_else(|e| e.into_inner());
            for l in &leases {
                known.insert((l.kind.as_str(), l.item), l.expires_at);
            }
        }
        Ok(leases)
    }

    /// Claims one item, if free.
    pub async fn claim_one(&self, kind: Kind, item: i64) -> Result<Option<Lease>, StoreError> {
        Ok(self.claim(kind, vec![item]).await?.into_iter().next())
    }

    /// Whether this node may still act on `lease` outside the database
    /// (place, send, POST): its lease is known to live for more than
    /// [`MARGIN_MS`] yet.
    pub fn may_act(&self, lease: &Lease) -> bool {
        let Some(s) = &self.shared else { return true };
        let renewed = s
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(lease.kind.as_str(), lease.item))
            .copied();
        let until = renewed.map_or(lease.expires_at, |r| r.max(lease.expires_at));
        self.now_ms() < until - MARGIN_MS
    }

    /// The fence, at this node's now ([`holds_at`]).
    pub fn holds(&self, tx: &WriteTx<'_>, lease: &Lease) -> Result<bool, StoreError> {
        if lease.owner().is_none() {
            return Ok(true);
        }
        holds_at(tx, lease, self.now_ms())
    }

    /// [`Claims::holds`] as an error: a job whose lease is gone does nothing.
    pub fn fence(&self, tx: &WriteTx<'_>, lease: &Lease) -> Result<(), StoreError> {
        if self.holds(tx, lease)? {
            Ok(())
        } else {
            Err(StoreError::LeaseLost(format!(
                "{} {} (epoch {})",
                lease.kind.as_str(),
                lease.item,
                lease.epoch
            )))
        }
    }

    /// Renews this node's leases, releases lapsed ones that need no
    /// recovery, and returns the open attempts nobody holds any more.
    pub async fn heartbeat(&self) -> Result<Vec<(CallId, u32)>, StoreError> {
        if self.shared.is_none() {
            return Ok(Vec::new());
        }
        // Measured before the statement is sent: the lease lives at least
        // this long from here, whenever the database applies it.
        let asked = self.now_ms();
        let (renewed, orphans) = self
            .on_conn(move |db, node| {
                let renewed = renew(db, node, asked, LEASE_TTL_MS)?;
                release_lapsed(db, asked)?;
                forget_silent_nodes(db, asked)?;
                Ok((renewed, orphaned_attempts(db, asked)?))
            })
            .await?;
        if let Some(s) = &self.shared {
            let mut known = s.known.lock().unwrap_or_else(|e| e.into_inner());
            known.retain(|_, until| *until > asked);
            for (kind, item) in renewed {
                let Some(kind) = Kind::parse(&kind) else { continue };
                known.insert((kind.as_str(), item), asked + LEASE_TTL_MS);
            }
        }
        Ok(orphans)
    }

    /// Gives up `lease` outside a write job (a worker stopping).
    pub async fn release(&self, lease: Lease) -> Result<(), StoreError> {
        let Some(owner) = lease.owner.clone() else { return Ok(()) };
        self.on_conn(move |db, _| {
            db.exec(
                "UPDATE leases SET owner = NULL, expires_at = 0 WHERE kind = ?1 AND item = ?2 AND owner = ?3 AND epoch = ?4",
                params![lease.kind.as_str(), lease.item, &*owner, lease.epoch],
            )
            .map(drop)
        })
        .await
    }

    /// A clean stop: this node's leases are free for the others at once.
    pub async fn leave(&self) -> Result<(), StoreError> {
        if self.shared.is_none() {
            return Ok(());
        }
        self.on_conn(leave).await
    }

    /// Stuck leases and live nodes, for `/metrics`.
    pub async fn health(&self) -> Result<(usize, usize), StoreError> {
        if self.shared.is_none() {
            return Ok((0, 1));
        }
        let now = self.now_ms();
        self.on_conn(move |db, _| health(db, now)).await
    }
}
