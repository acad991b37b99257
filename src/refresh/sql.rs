//! The SQL refresh store (features `postgres`, `sqlite`): families and tokens in two tables,
//! rotation in one transaction.

// Built with the internal `sql` feature alone there is no backend: nothing is used.
#![cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(unused))]

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sqlx::Row;

use super::{
    FoundToken, PresentedToken, RefreshRecord, RefreshStore, RefreshStoreError, Rotation, TokenHash,
};
use crate::revocation::{BoxFuture, now_secs};
use crate::sql::{
    DEFAULT_OP_TIMEOUT, Database, backend_name, bounded, db_int, from_db_int, on_backend,
    purge_batches, spawn_purge_loop, unavailable,
};

/// A [`RefreshStore`] in PostgreSQL or SQLite (features `postgres`, `sqlite`).
///
/// Two tables (migration `20261204000002_refresh`, applied by [`crate::sql::Database::connect`]):
/// `tta_refresh_families` (family id, user, scope, DPoP thumbprint, revoked flag, session
/// start, latest expiry) and `tta_refresh_tokens` (SHA-256 of the token, its family, expiry,
/// and once spent: when, and its successor's hash). Tokens themselves are never stored.
///
/// Rotation is one transaction: PostgreSQL locks the token and family rows
/// (`SELECT … FOR UPDATE`), SQLite takes the write lock first (`BEGIN IMMEDIATE`), so 50
/// concurrent refreshes with one token yield at most one successor. Every call is bounded
/// by an operation timeout ([`DEFAULT_OP_TIMEOUT`](Self::DEFAULT_OP_TIMEOUT), see [`with_op_timeout`](Self::with_op_timeout)):
/// a database that is down answers [`RefreshStoreError`] quickly, and once it is back the same
/// store (its pool) works again.
///
/// Expired rows stay until [`purge_expired`](Self::purge_expired) (or the task
/// [`spawn_purge`](Self::spawn_purge) starts) deletes them; they never refresh anything.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::refresh::SqlRefreshStore;
/// use tower_token_auth::sql::Database;
///
/// let db = Database::connect("sqlite://tokens.db").await?;
/// let store = SqlRefreshStore::new(db);
/// // Expired families and tokens go every 10 minutes, 1000 rows per statement.
/// let _purge = store.spawn_purge(Duration::from_secs(600), 1000);
/// // Then: TokenLifecycle::new(issuer, verifier, Arc::new(store), revocations)
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqlRefreshStore {
    db: Database,
    op_timeout: Duration,
}

impl fmt::Debug for SqlRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRefreshStore")
            .field("backend", &backend_name(&self.db))
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

/// The statements whose text differs between the backends.
struct Dialect {
    /// Opens a transaction that writes.
    begin: &'static str,
    /// [`select_token!`] holding the rows until the transaction ends.
    lock_token: &'static str,
    purge_tokens: &'static str,
    purge_families: &'static str,
}

/// The presented token (`$1` hash, `$2` family) with its family.
macro_rules! select_token {
    () => {
        "SELECT f.sub, f.scope, f.jkt, f.revoked, f.created_at, \
                t.expires_at, t.spent_at_ms, t.successor \
         FROM tta_refresh_tokens t JOIN tta_refresh_families f ON f.family = t.family \
         WHERE t.hash = $1 AND t.family = $2"
    };
}

#[cfg(feature = "postgres")]
const POSTGRES: Dialect = Dialect {
    begin: "BEGIN",
    lock_token: concat!(select_token!(), " FOR UPDATE"),
    purge_tokens: "DELETE FROM tta_refresh_tokens WHERE ctid IN \
        (SELECT ctid FROM tta_refresh_tokens WHERE expires_at < $1 LIMIT $2)",
    purge_families: "DELETE FROM tta_refresh_families WHERE ctid IN \
        (SELECT ctid FROM tta_refresh_families WHERE expires_at < $1 LIMIT $2)",
};

#[cfg(feature = "sqlite")]
const SQLITE: Dialect = Dialect {
    // The write lock before the read: two rotations cannot both read the token unspent.
    begin: "BEGIN IMMEDIATE",
    lock_token: select_token!(),
    purge_tokens: "DELETE FROM tta_refresh_tokens WHERE rowid IN \
        (SELECT rowid FROM tta_refresh_tokens WHERE expires_at < $1 LIMIT $2)",
    purge_families: "DELETE FROM tta_refresh_families WHERE rowid IN \
        (SELECT rowid FROM tta_refresh_families WHERE expires_at < $1 LIMIT $2)",
};

const INSERT_FAMILY: &str = "INSERT INTO tta_refresh_families \
    (family, sub, scope, jkt, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (family) DO NOTHING";
const INSERT_TOKEN: &str = "INSERT INTO tta_refresh_tokens (hash, family, expires_at) \
    VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING";
const SPEND_TOKEN: &str =
    "UPDATE tta_refresh_tokens SET spent_at_ms = $2, successor = $3 WHERE hash = $1";
const EXTEND_FAMILY: &str =
    "UPDATE tta_refresh_families SET expires_at = $2 WHERE family = $1 AND expires_at < $2";
const REVOKE_FAMILY: &str =
    "UPDATE tta_refresh_families SET revoked = TRUE WHERE family = $1 RETURNING sub";
const REVOKE_USER: &str =
    "UPDATE tta_refresh_families SET revoked = TRUE WHERE sub = $1 RETURNING family";

/// A token row with its family, as read.
struct Stored {
    record: RefreshRecord,
    revoked: bool,
    spent_at_ms: Option<u64>,
    successor: Option<Vec<u8>>,
}

/// What a rotation does, decided from the stored row alone (the rules of
/// [`MemoryRefreshStore`](super::MemoryRefreshStore) and the Redis script).
enum Decision {
    /// Answer without writing.
    Answer(Rotation),
    /// Reuse of a spent token: revoke the family.
    Reuse(RefreshRecord),
    /// Spend the token, store the successor.
    Spend(RefreshRecord),
}

fn decide(stored: Stored, successor: &TokenHash, now_ms: u64, grace_ms: u64) -> Decision {
    let Stored {
        record,
        revoked,
        spent_at_ms,
        successor: spent_for,
    } = stored;
    if record.expires_at < now_ms / 1000 {
        return Decision::Answer(Rotation::Invalid);
    }
    if spent_at_ms.is_some() && spent_for.as_deref() == Some(&successor.0[..]) {
        // The same rotation again (its answer was lost): same answer.
        return Decision::Answer(Rotation::Rotated(record));
    }
    if revoked {
        return Decision::Answer(Rotation::FamilyRevoked(record));
    }
    match spent_at_ms {
        Some(spent) if grace_ms > 0 && now_ms.saturating_sub(spent) < grace_ms => {
            Decision::Answer(Rotation::WithinGrace)
        }
        Some(_) => Decision::Reuse(record),
        None => Decision::Spend(record),
    }
}

/// Reads a [`select_token!`] row of `family`.
macro_rules! stored_from_row {
    ($row:expr, $family:expr) => {{
        let row = $row;
        Stored {
            record: RefreshRecord {
                sub: row.try_get(0)?,
                family: $family.to_owned(),
                scope: row.try_get(1)?,
                jkt: row.try_get(2)?,
                created_at: from_db_int(row.try_get(4)?),
                expires_at: from_db_int(row.try_get(5)?),
            },
            revoked: row.try_get(3)?,
            spent_at_ms: row.try_get::<Option<i64>, _>(6)?.map(from_db_int),
            successor: row.try_get(7)?,
        }
    }};
}

fn store_error(e: sqlx::Error) -> RefreshStoreError {
    RefreshStoreError::Unavailable(unavailable(e))
}

impl SqlRefreshStore {
    /// How long a call may take by default before it fails with an error (a dead database
    /// answers quickly instead of holding the request): 2 s.
    pub const DEFAULT_OP_TIMEOUT: Duration = DEFAULT_OP_TIMEOUT;

    /// A store on `db` (migrated: [`Database::connect`] does it, or
    /// [`migrate_postgres`](crate::sql::migrate_postgres) /
    /// [`migrate_sqlite`](crate::sql::migrate_sqlite) for a pool of the application's).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            op_timeout: DEFAULT_OP_TIMEOUT,
        }
    }

    /// Bounds every call (waiting for a pooled connection included) by `op_timeout` instead
    /// of [`DEFAULT_OP_TIMEOUT`](Self::DEFAULT_OP_TIMEOUT); past it the call fails with [`RefreshStoreError::Timeout`].
    pub fn with_op_timeout(mut self, op_timeout: Duration) -> Self {
        self.op_timeout = op_timeout;
        self
    }

    /// Deletes expired tokens, then expired families, at most `batch` rows per statement (so
    /// no statement holds locks for long), until none is left; returns how many rows went.
    /// Expired rows refresh nothing; this only reclaims their space. Each statement is bounded
    /// by the operation timeout.
    pub async fn purge_expired(&self, batch: usize) -> Result<u64, RefreshStoreError> {
        let batch = batch.max(1);
        let now = db_int(now_secs());
        let limit = self.op_timeout;
        on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
            let mut total = 0;
            for delete in [sql.purge_tokens, sql.purge_families] {
                total += bounded(limit, || RefreshStoreError::Timeout, async {
                    purge_batches!(pool, delete, now, batch)
                        .await
                        .map_err(store_error)
                })
                .await?;
            }
            Ok(total)
        })
    }

    /// Starts a Tokio task that calls [`purge_expired`](Self::purge_expired)`(batch)` now and
    /// then every `interval`, logging failures (`tracing`). It runs until the returned handle
    /// is aborted or the runtime shuts down. Panics outside a Tokio runtime.
    pub fn spawn_purge(&self, interval: Duration, batch: usize) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        spawn_purge_loop("refresh store", interval, move || {
            let store = store.clone();
            async move { store.purge_expired(batch).await }
        })
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, RefreshStoreError> {
        bounded(self.op_timeout, || RefreshStoreError::Timeout, async {
            fut.await.map_err(store_error)
        })
        .await
    }
}

impl RefreshStore for SqlRefreshStore {
    fn create<'a>(
        &'a self,
        hash: TokenHash,
        record: &'a RefreshRecord,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                let mut tx = pool.begin_with(sql.begin).await?;
                sqlx::query(INSERT_FAMILY)
                    .bind(&record.family)
                    .bind(&record.sub)
                    .bind(&record.scope)
                    .bind(record.jkt.as_deref())
                    .bind(db_int(record.created_at))
                    .bind(db_int(record.expires_at))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(INSERT_TOKEN)
                    .bind(&hash.0[..])
                    .bind(&record.family)
                    .bind(db_int(record.expires_at))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
        }))
    }

    fn rotate<'a>(
        &'a self,
        presented: &'a PresentedToken,
        successor: TokenHash,
        successor_expires_at: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                let mut tx = pool.begin_with(sql.begin).await?;
                let row = sqlx::query(sql.lock_token)
                    .bind(&presented.hash.0[..])
                    .bind(&presented.family)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    tx.commit().await?;
                    return Ok(Rotation::Invalid);
                };
                let stored = stored_from_row!(row, presented.family);
                let rotation = match decide(stored, &successor, now_ms, grace_ms) {
                    Decision::Answer(rotation) => rotation,
                    Decision::Reuse(record) => {
                        sqlx::query(REVOKE_FAMILY)
                            .bind(&presented.family)
                            .fetch_optional(&mut *tx)
                            .await?;
                        Rotation::Reused(record)
                    }
                    Decision::Spend(record) => {
                        sqlx::query(SPEND_TOKEN)
                            .bind(&presented.hash.0[..])
                            .bind(db_int(now_ms))
                            .bind(&successor.0[..])
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(INSERT_TOKEN)
                            .bind(&successor.0[..])
                            .bind(&presented.family)
                            .bind(db_int(successor_expires_at))
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(EXTEND_FAMILY)
                            .bind(&presented.family)
                            .bind(db_int(successor_expires_at))
                            .execute(&mut *tx)
                            .await?;
                        Rotation::Rotated(record)
                    }
                };
                tx.commit().await?;
                Ok(rotation)
            })
        }))
    }

    fn find<'a>(
        &'a self,
        presented: &'a PresentedToken,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<FoundToken>, RefreshStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, _sql| {
                let row = sqlx::query(select_token!())
                    .bind(&presented.hash.0[..])
                    .bind(&presented.family)
                    .fetch_optional(pool)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let stored = stored_from_row!(row, presented.family);
                Ok(
                    (stored.spent_at_ms.is_none() && stored.record.expires_at >= now).then_some(
                        FoundToken {
                            record: stored.record,
                            family_revoked: stored.revoked,
                        },
                    ),
                )
            })
        }))
    }

    fn revoke_family<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RefreshStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, _sql| {
                sqlx::query_scalar(REVOKE_FAMILY)
                    .bind(family)
                    .fetch_optional(pool)
                    .await
            })
        }))
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RefreshStoreError>> {
        Box::pin(self.bounded(async move {
            let mut families: Vec<String> =
                on_backend!(&self.db, POSTGRES, SQLITE, |pool, _sql| {
                    sqlx::query_scalar(REVOKE_USER)
                        .bind(sub)
                        .fetch_all(pool)
                        .await?
                });
            families.sort();
            Ok(families)
        }))
    }
}
