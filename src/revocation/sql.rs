//! A [`RevocationStore`] in PostgreSQL or SQLite (features `postgres`, `sqlite`), answering
//! every check from a local mirror of the revocation table.
//!
//! # How a check stays off the database
//!
//! Revocations are few (logouts, password changes, reused refresh families) and short-lived
//! (a row lives as long as the tokens it revokes), so each instance holds *all* live
//! revocations in memory and answers checks from that mirror alone: no query per request.
//!
//! - **PostgreSQL**: the instance `LISTEN`s on a channel, *then* loads the table. Every
//!   revocation is one statement that upserts its row and calls `pg_notify` with it; the
//!   notification is delivered on commit, to every listener. A row committed before the load
//!   is in the load, one committed after the `LISTEN` arrives as a notification, so the mirror
//!   misses nothing.
//! - **SQLite**: each write takes a number from a counter in the same transaction; instances
//!   sharing the file poll for rows with a higher number every `heartbeat_interval`. SQLite
//!   serialises writers, so numbers follow commit order and polling misses nothing.
//!
//! # Freshness and failure
//!
//! The mirror answers "not revoked" only while its feed is *live*: on PostgreSQL, while the
//! instance hears the echo of its own heartbeat notification (sent every
//! `heartbeat_interval`) within `staleness_bound`; on SQLite, while its last poll succeeded
//! within `staleness_bound`. Otherwise (database down, listener connection lost, a silent
//! network cut) every check reads the table directly, bounded by `op_timeout`, and if the
//! database cannot answer, the request is refused with 503 and `Retry-After` (fail closed)
//! unless [`fail_open`](SqlRevocationConfig::fail_open) is set. Revocations already in the
//! mirror are always enforced. When the feed comes back the instance loads the table again
//! before it trusts the mirror.
//!
//! # Durability
//!
//! A revocation is reported done only once its transaction committed (and, on PostgreSQL,
//! with its notification, which commits with it). A revocation that reported success is on
//! disk and reaches every instance, including those started later; one that failed is
//! reported failed and recorded nowhere, so the caller's retry repeats it (every write is an
//! idempotent upsert that only ever raises `until_s` and `before_s`).
//!
//! The schema is in `migrations/` and `docs/sql.md`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::{
    BoxFuture, GRACE_SECS, MemoryStore, RevocationCheck, RevocationError, RevocationStatus,
    RevocationStore, TokenRef, now_ms, now_secs,
};
use crate::sql::Database;

/// Settings of a [`SqlRevocationStore`].
#[derive(Debug, Clone)]
pub struct SqlRevocationConfig {
    channel: String,
    op_timeout: Duration,
    connect_timeout: Duration,
    heartbeat_interval: Duration,
    staleness_bound: Duration,
    fail_open: bool,
    purge_interval: Option<Duration>,
    purge_batch: u32,
}

impl Default for SqlRevocationConfig {
    fn default() -> Self {
        Self {
            channel: "tta_revocations".into(),
            op_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            heartbeat_interval: Duration::from_millis(250),
            staleness_bound: Duration::from_secs(2),
            fail_open: false,
            purge_interval: Some(Duration::from_secs(60)),
            purge_batch: 1000,
        }
    }
}

impl SqlRevocationConfig {
    /// The PostgreSQL `LISTEN`/`NOTIFY` channel (default `tta_revocations`). Instances that
    /// share a database and a channel share their revocations. Ignored by SQLite.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// The longest a database call may take, a request's direct read included
    /// (default 500 ms).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The longest (re)connecting the PostgreSQL listener may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often the instance proves its feed alive: a heartbeat notification on PostgreSQL,
    /// a poll of the table on SQLite (default 250 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long after the last heartbeat echo (PostgreSQL) or successful poll (SQLite) the
    /// mirror is still trusted (default 2 s). Past it, checks read the table directly.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// Accept tokens when the database cannot be asked (default false: refuse with 503).
    /// Revocations in the mirror are enforced either way.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// How often a background task deletes rows whose tokens have all expired (default every
    /// 60 s; `None`: never, call [`SqlRevocationStore::purge_expired`] yourself).
    pub fn purge_interval(mut self, interval: Option<Duration>) -> Self {
        self.purge_interval = interval;
        self
    }

    /// How many rows one purge statement deletes at most (default 1000), so a purge never
    /// holds long locks; a purge repeats statements until a batch comes back short.
    pub fn purge_batch(mut self, batch: u32) -> Self {
        self.purge_batch = batch.max(1);
        self
    }
}

/// One row of the table, as loaded, read or notified.
#[derive(Debug, Deserialize)]
struct Row {
    #[serde(rename = "k")]
    kind: String,
    id: Option<String>,
    sub: Option<String>,
    #[serde(rename = "b", default)]
    before: i64,
    #[serde(rename = "u", default)]
    until: i64,
}

type RowTuple = (String, String, Option<String>, i64, i64);

impl From<RowTuple> for Row {
    fn from((kind, id, sub, before, until): RowTuple) -> Self {
        Self {
            kind,
            id: Some(id),
            sub,
            before,
            until,
        }
    }
}

fn secs(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

struct Shared {
    config: SqlRevocationConfig,
    db: Database,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    instance_id: String,
    mirror: MemoryStore,
    /// PostgreSQL: listening and loaded. SQLite: loaded.
    feed_up: AtomicBool,
    /// PostgreSQL: the last heartbeat echo. SQLite: the last successful poll.
    last_proof_ms: AtomicU64,
}

/// A [`RevocationStore`] in a SQL database, shared by the instances that use it (features
/// `postgres`, `sqlite`).
///
/// Every check is answered from an in-memory mirror of the table, kept fresh by
/// `LISTEN`/`NOTIFY` (PostgreSQL) or by polling a write counter (SQLite). While that feed is
/// not live, checks read the table directly and fail closed (503) when the database cannot
/// answer. A revocation is reported done once its transaction committed. `docs/sql.md` has
/// the freshness rules, the failure policy and the table.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::revocation::{SqlRevocationConfig, SqlRevocationStore};
/// use tower_token_auth::sql::Database;
/// use tower_token_auth::{JwtAuthLayer, testing::TestKeys};
///
/// let db = Database::connect("sqlite://tokens.db").await?;
/// let store = SqlRevocationStore::new(db, SqlRevocationConfig::default());
/// store.wait_live(Duration::from_secs(5)).await;
/// let layer = JwtAuthLayer::new(TestKeys::hs256().verifier()).with_revocation_store(store);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlRevocationStore {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl fmt::Debug for SqlRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRevocationStore")
            .field("backend", &self.shared.backend_name())
            .field("live", &self.is_live())
            .field("mirrored", &self.shared.mirror.len())
            .finish_non_exhaustive()
    }
}

fn unavailable(e: sqlx::Error) -> RevocationError {
    RevocationError::Unavailable(crate::sql::unavailable(e))
}

async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, RevocationError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(RevocationError::Timeout),
    }
}

impl SqlRevocationStore {
    /// A store over `db` (migrated: [`Database::connect`] does it). Must be called inside a
    /// Tokio runtime. The database need not be up yet: until the mirror is loaded, checks
    /// read the table directly and fail closed if it cannot answer.
    pub fn new(db: Database, config: SqlRevocationConfig) -> Self {
        let shared = Arc::new(Shared {
            config,
            db,
            instance_id: crate::issuer::random_id::<12>(),
            mirror: MemoryStore::new(),
            feed_up: AtomicBool::new(false),
            last_proof_ms: AtomicU64::new(0),
        });
        let mut tasks = Vec::new();
        match &shared.db {
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => {
                tasks.push(tokio::spawn(postgres::listen_loop(shared.clone())));
                tasks.push(tokio::spawn(postgres::heartbeat_loop(shared.clone())));
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => tasks.push(tokio::spawn(sqlite::poll_loop(shared.clone()))),
        }
        if let Some(every) = shared.config.purge_interval {
            tasks.push(tokio::spawn(purge_loop(shared.clone(), every)));
        }
        Self {
            shared,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }

    /// Whether the feed is live, i.e. the mirror may answer "not revoked".
    pub fn is_live(&self) -> bool {
        self.shared.is_live()
    }

    /// Waits until the feed is live, up to `limit`. Useful at start-up.
    pub async fn wait_live(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.is_live() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.is_live()
    }

    /// Deletes the rows whose tokens have all expired (past `until_s` and
    /// [`RECORD_GRACE`](super::RECORD_GRACE)), at most `purge_batch` per statement; returns
    /// how many went. The background task calls this every `purge_interval`.
    pub async fn purge_expired(&self) -> Result<u64, RevocationError> {
        self.shared.purge_expired().await
    }
}

impl Shared {
    fn backend_name(&self) -> &'static str {
        match &self.db {
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => "sqlite",
        }
    }

    fn is_live(&self) -> bool {
        self.feed_up.load(Ordering::Acquire)
            && now_ms().saturating_sub(self.last_proof_ms.load(Ordering::Acquire))
                < self.config.staleness_bound.as_millis() as u64
    }

    fn proof(&self) {
        self.last_proof_ms.store(now_ms(), Ordering::Release);
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    fn lost(&self) {
        self.feed_up.store(false, Ordering::Release);
        self.last_proof_ms.store(0, Ordering::Release);
    }

    /// Records a row in the mirror. Unknown kinds are ignored (a newer schema's rows).
    fn apply(&self, row: &Row) {
        let Some(id) = row.id.as_deref() else { return };
        let sub = row.sub.as_deref();
        match row.kind.as_str() {
            "t" => self.mirror.revoke_token_of(id, sub, secs(row.until)),
            "s" => self.mirror.revoke_session_now(sub, id, secs(row.until)),
            "u" => self
                .mirror
                .revoke_user_now(id, secs(row.before), secs(row.until)),
            _ => {}
        }
    }

    /// Upserts one revocation (and, on PostgreSQL, notifies it in the same statement);
    /// records it in the mirror once committed.
    async fn commit(
        &self,
        kind: &'static str,
        id: &str,
        sub: Option<&str>,
        before: u64,
        until: u64,
    ) -> Result<(), RevocationError> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let until = i64::try_from(until).unwrap_or(i64::MAX);
        let limit = self.config.op_timeout;
        let row: RowTuple = match &self.db {
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                bounded(
                    limit,
                    postgres::write(pool, &self.config.channel, kind, id, sub, before, until),
                )
                .await?
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                bounded(limit, sqlite::write(pool, kind, id, sub, before, until)).await?
            }
        };
        self.apply(&row.into());
        Ok(())
    }

    /// Reads the token's rows directly; records what it finds in the mirror and answers
    /// from it.
    async fn read_status(&self, token: OwnedToken) -> Result<RevocationStatus, RevocationError> {
        let t = token.as_ref();
        if t.jti.is_none() && t.sub.is_none() && t.sid.is_none() {
            return Ok(RevocationStatus::Active);
        }
        let limit = self.config.op_timeout;
        let rows: Vec<RowTuple> = match &self.db {
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => {
                bounded(limit, postgres::read(pool, t.jti, t.sid, t.sub)).await?
            }
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => {
                bounded(limit, sqlite::read(pool, t.jti, t.sid, t.sub)).await?
            }
        };
        for row in rows {
            self.apply(&row.into());
        }
        Ok(RevocationStatus::from_revoked(self.mirror.is_revoked(&t)))
    }

    async fn purge_expired(&self) -> Result<u64, RevocationError> {
        let cutoff = i64::try_from(now_secs().saturating_sub(GRACE_SECS)).unwrap_or(0);
        let batch = i64::from(self.config.purge_batch);
        let limit = self.config.op_timeout * 4;
        let mut total = 0;
        loop {
            let n = match &self.db {
                #[cfg(feature = "postgres")]
                Database::Postgres(pool) => {
                    bounded(limit, postgres::purge(pool, cutoff, batch)).await?
                }
                #[cfg(feature = "sqlite")]
                Database::Sqlite(pool) => {
                    bounded(limit, sqlite::purge(pool, cutoff, batch)).await?
                }
            };
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }
}

/// A token's fields, owned, for a check that outlives the request borrow.
struct OwnedToken {
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    iat: Option<u64>,
}

impl OwnedToken {
    fn new(t: &TokenRef<'_>) -> Self {
        Self {
            jti: t.jti.map(str::to_owned),
            sub: t.sub.map(str::to_owned),
            sid: t.sid.map(str::to_owned),
            iat: t.iat,
        }
    }

    fn as_ref(&self) -> TokenRef<'_> {
        TokenRef::new()
            .jti(self.jti.as_deref())
            .sub(self.sub.as_deref())
            .sid(self.sid.as_deref())
            .iat(self.iat)
    }
}

async fn purge_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match shared.purge_expired().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(target: "tower_token_auth", purged = n, "expired revocations purged")
            }
            Err(e) => {
                tracing::debug!(target: "tower_token_auth", error = %e, "purging expired revocations failed; next time")
            }
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    //! `LISTEN`/`NOTIFY` feed and the PostgreSQL statements.

    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use sqlx::PgPool;
    use sqlx::postgres::PgListener;

    use super::{Row, RowTuple, Shared, bounded, now_ms};
    use crate::revocation::RevocationError;

    /// What a notification too long for `pg_notify` (8000 bytes) is replaced with: every
    /// listener loads the table again.
    const RESYNC: &str = r#"{"k":"r"}"#;

    pub(super) async fn write(
        pool: &PgPool,
        channel: &str,
        kind: &str,
        id: &str,
        sub: Option<&str>,
        before: i64,
        until: i64,
    ) -> Result<RowTuple, sqlx::Error> {
        // One statement, one transaction: the row and its notification commit together.
        let (kind, id, sub, before, until, _): (String, String, Option<String>, i64, i64, Option<String>) = sqlx::query_as(
            "WITH r AS (
                INSERT INTO tta_revocations (kind, id, sub, before_s, until_s)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (kind, id) DO UPDATE SET
                    sub = COALESCE(tta_revocations.sub, EXCLUDED.sub),
                    before_s = GREATEST(tta_revocations.before_s, EXCLUDED.before_s),
                    until_s = GREATEST(tta_revocations.until_s, EXCLUDED.until_s)
                RETURNING kind::text AS kind, id, sub, before_s, until_s
             ), n AS (
                SELECT r.*, json_build_object(
                    'k', r.kind, 'id', r.id, 'sub', r.sub, 'b', r.before_s, 'u', r.until_s
                )::text AS payload FROM r
             )
             SELECT kind, id, sub, before_s, until_s,
                    pg_notify($6, CASE WHEN octet_length(payload) < 7900 THEN payload ELSE $7 END)::text
             FROM n",
        )
        .bind(kind)
        .bind(id)
        .bind(sub)
        .bind(before)
        .bind(until)
        .bind(channel)
        .bind(RESYNC)
        .fetch_one(pool)
        .await?;
        Ok((kind, id, sub, before, until))
    }

    pub(super) async fn read(
        pool: &PgPool,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<Vec<RowTuple>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kind::text, id, sub, before_s, until_s FROM tta_revocations
             WHERE (kind = 't' AND id = $1) OR (kind = 's' AND id = $2) OR (kind = 'u' AND id = $3)",
        )
        .bind(jti)
        .bind(sid)
        .bind(sub)
        .fetch_all(pool)
        .await
    }

    pub(super) async fn load(pool: &PgPool, cutoff: i64) -> Result<Vec<RowTuple>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kind::text, id, sub, before_s, until_s FROM tta_revocations
             WHERE until_s >= $1",
        )
        .bind(cutoff)
        .fetch_all(pool)
        .await
    }

    pub(super) async fn purge(pool: &PgPool, cutoff: i64, batch: i64) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM tta_revocations WHERE ctid IN (
                SELECT ctid FROM tta_revocations WHERE until_s < $1 LIMIT $2
             )",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    }

    fn pool(shared: &Shared) -> &PgPool {
        match &shared.db {
            crate::sql::Database::Postgres(pool) => pool,
            #[allow(unreachable_patterns)]
            _ => unreachable!("the PostgreSQL tasks run only for a PostgreSQL database"),
        }
    }

    /// `LISTEN`, then load the table: from then on nothing is missed.
    async fn subscribe(shared: &Shared) -> Result<PgListener, RevocationError> {
        let pool = pool(shared);
        let limit = shared.config.connect_timeout;
        let mut listener = bounded(limit, PgListener::connect_with(pool)).await?;
        bounded(limit, listener.listen(&shared.config.channel)).await?;
        load_into_mirror(shared).await?;
        Ok(listener)
    }

    async fn load_into_mirror(shared: &Shared) -> Result<(), RevocationError> {
        let cutoff = super::now_secs().saturating_sub(super::GRACE_SECS);
        let rows = bounded(
            shared.config.op_timeout * 4,
            load(pool(shared), i64::try_from(cutoff).unwrap_or(0)),
        )
        .await?;
        for row in rows {
            shared.apply(&row.into());
        }
        Ok(())
    }

    pub(super) async fn listen_loop(shared: Arc<Shared>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut listener = match subscribe(&shared).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(target: "tower_token_auth", error = %e, "revocation listener failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            shared.feed_up.store(true, Ordering::Release);
            // Prove the feed now rather than at the next heartbeat.
            let _ = heartbeat(&shared).await;
            tracing::info!(target: "tower_token_auth", "revocation listener live");
            let mut watchdog = tokio::time::interval(shared.config.staleness_bound);
            loop {
                tokio::select! {
                    msg = listener.try_recv() => match msg {
                        Ok(Some(n)) => {
                            if !on_notification(&shared, n.payload()).await {
                                break;
                            }
                        }
                        // The connection was lost: notifications may have been missed.
                        Ok(None) | Err(_) => break,
                    },
                    _ = watchdog.tick() => {
                        // A listener that hears not even its own heartbeat is dead.
                        let last = shared.last_proof_ms.load(Ordering::Acquire);
                        if now_ms().saturating_sub(last)
                            > 2 * shared.config.staleness_bound.as_millis() as u64
                        {
                            break;
                        }
                    }
                }
            }
            shared.lost();
            tracing::warn!(target: "tower_token_auth", "revocation listener lost; checks read the database directly until it is back");
        }
    }

    /// Applies one notification; false if the feed must be re-established.
    async fn on_notification(shared: &Shared, payload: &str) -> bool {
        let Ok(row) = serde_json::from_str::<Row>(payload) else {
            tracing::warn!(target: "tower_token_auth", "ignoring a malformed revocation notification");
            return true;
        };
        match row.kind.as_str() {
            "h" => {
                if row.id.as_deref() == Some(shared.instance_id.as_str()) {
                    shared.proof();
                }
                true
            }
            // A revocation too long to notify: load the table again.
            "r" => load_into_mirror(shared).await.is_ok(),
            _ => {
                shared.apply(&row);
                true
            }
        }
    }

    async fn heartbeat(shared: &Shared) -> Result<(), RevocationError> {
        let payload = serde_json::json!({"k": "h", "id": shared.instance_id}).to_string();
        bounded(
            shared.config.op_timeout,
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&shared.config.channel)
                .bind(payload)
                .execute(pool(shared)),
        )
        .await
        .map(drop)
    }

    pub(super) async fn heartbeat_loop(shared: Arc<Shared>) {
        let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if shared.feed_up.load(Ordering::Acquire) {
                let _ = heartbeat(&shared).await;
            }
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    //! The polling feed and the SQLite statements.

    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use sqlx::SqlitePool;

    use super::{RowTuple, Shared, bounded};
    use crate::revocation::RevocationError;

    pub(super) async fn write(
        pool: &SqlitePool,
        kind: &str,
        id: &str,
        sub: Option<&str>,
        before: i64,
        until: i64,
    ) -> Result<RowTuple, sqlx::Error> {
        // The write lock first (IMMEDIATE): the number taken follows commit order.
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let (seq,): (i64,) = sqlx::query_as("UPDATE tta_revocation_seq SET n = n + 1 RETURNING n")
            .fetch_one(&mut *tx)
            .await?;
        let row = sqlx::query_as(
            "INSERT INTO tta_revocations (kind, id, sub, before_s, until_s, seq)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (kind, id) DO UPDATE SET
                 sub = COALESCE(tta_revocations.sub, excluded.sub),
                 before_s = max(tta_revocations.before_s, excluded.before_s),
                 until_s = max(tta_revocations.until_s, excluded.until_s),
                 seq = excluded.seq
             RETURNING kind, id, sub, before_s, until_s",
        )
        .bind(kind)
        .bind(id)
        .bind(sub)
        .bind(before)
        .bind(until)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub(super) async fn read(
        pool: &SqlitePool,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<Vec<RowTuple>, sqlx::Error> {
        sqlx::query_as(
            "SELECT kind, id, sub, before_s, until_s FROM tta_revocations
             WHERE (kind = 't' AND id = $1) OR (kind = 's' AND id = $2) OR (kind = 'u' AND id = $3)",
        )
        .bind(jti)
        .bind(sid)
        .bind(sub)
        .fetch_all(pool)
        .await
    }

    pub(super) async fn purge(
        pool: &SqlitePool,
        cutoff: i64,
        batch: i64,
    ) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "DELETE FROM tta_revocations WHERE rowid IN (
                SELECT rowid FROM tta_revocations WHERE until_s < $1 LIMIT $2
             )",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    }

    fn pool(shared: &Shared) -> &SqlitePool {
        match &shared.db {
            crate::sql::Database::Sqlite(pool) => pool,
            #[allow(unreachable_patterns)]
            _ => unreachable!("the SQLite task runs only for a SQLite database"),
        }
    }

    /// The counter, then every live row: a write numbered after the counter was read is
    /// polled later; one numbered before it committed before the counter was read.
    async fn load(shared: &Shared) -> Result<i64, RevocationError> {
        let pool = pool(shared);
        let limit = shared.config.op_timeout * 4;
        let (seq,): (i64,) = bounded(
            limit,
            sqlx::query_as("SELECT n FROM tta_revocation_seq").fetch_one(pool),
        )
        .await?;
        let cutoff = super::now_secs().saturating_sub(super::GRACE_SECS);
        let rows: Vec<RowTuple> = bounded(
            limit,
            sqlx::query_as(
                "SELECT kind, id, sub, before_s, until_s FROM tta_revocations
                 WHERE until_s >= $1",
            )
            .bind(i64::try_from(cutoff).unwrap_or(0))
            .fetch_all(pool),
        )
        .await?;
        for row in rows {
            shared.apply(&row.into());
        }
        Ok(seq)
    }

    /// The rows written since `seq`, and the highest number seen.
    async fn poll(shared: &Shared, seq: i64) -> Result<i64, RevocationError> {
        let rows: Vec<(String, String, Option<String>, i64, i64, i64)> = bounded(
            shared.config.op_timeout,
            sqlx::query_as(
                "SELECT kind, id, sub, before_s, until_s, seq FROM tta_revocations
                 WHERE seq > $1 ORDER BY seq",
            )
            .bind(seq)
            .fetch_all(pool(shared)),
        )
        .await?;
        let mut last = seq;
        for (kind, id, sub, before, until, n) in rows {
            shared.apply(&(kind, id, sub, before, until).into());
            last = last.max(n);
        }
        Ok(last)
    }

    pub(super) async fn poll_loop(shared: Arc<Shared>) {
        let mut backoff = Duration::from_millis(50);
        let mut seq = loop {
            match load(&shared).await {
                Ok(seq) => break seq,
                Err(e) => {
                    tracing::debug!(target: "tower_token_auth", error = %e, "loading revocations failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        shared.feed_up.store(true, Ordering::Release);
        shared.proof();
        let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match poll(&shared, seq).await {
                Ok(last) => {
                    seq = last;
                    shared.proof();
                }
                Err(e) => {
                    tracing::debug!(target: "tower_token_auth", error = %e, "polling revocations failed");
                }
            }
        }
    }
}

impl RevocationStore for SqlRevocationStore {
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
        let shared = &self.shared;
        if shared.mirror.is_revoked(token) {
            return RevocationCheck::Ready(Ok(RevocationStatus::Revoked));
        }
        if shared.is_live() {
            return RevocationCheck::Ready(Ok(RevocationStatus::Active));
        }
        let shared = self.shared.clone();
        let owned = OwnedToken::new(token);
        RevocationCheck::Pending(Box::pin(async move {
            match shared.read_status(owned).await {
                Err(e) if shared.config.fail_open => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "revocation store unavailable; failing open");
                    Ok(RevocationStatus::Active)
                }
                other => other,
            }
        }))
    }

    fn revoke_token<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            let (jti, exp) = token.revocable()?;
            self.shared.commit("t", jti, token.sub, 0, exp).await
        })
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        issued_before: u64,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            self.shared
                .commit("u", sub, Some(sub), issued_before, keep_until)
                .await
        })
    }

    fn revoke_session<'a>(
        &'a self,
        sub: Option<&'a str>,
        sid: &'a str,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move { self.shared.commit("s", sid, sub, 0, keep_until).await })
    }
}
