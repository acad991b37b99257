//! The SQL remember-me store (features `postgres`, `sqlite`): Spring Security's
//! `persistent_logins` table, with token hashes instead of tokens.

// Built with the internal `sql` feature alone there is no backend: nothing is used.
#![cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(unused))]

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sqlx::Row;

use super::store::{
    Device, RememberMeStore, RememberMeStoreError, SeriesCheck, SeriesRecord, Verdict, judge,
};
use crate::revocation::{BoxFuture, now_secs};
use crate::sql::{
    DEFAULT_OP_TIMEOUT, Database, backend_name, bounded, db_int, from_db_int, on_backend,
    purge_batches, spawn_purge_loop, unavailable,
};

/// A [`RememberMeStore`] in PostgreSQL or SQLite (features `postgres`, `sqlite`).
///
/// One table, `persistent_logins` (migration `20261204000003_remember_me`, applied by
/// [`Database::connect`]), indexed by `username`. It keeps the columns of Spring Security's
/// `JdbcTokenRepositoryImpl` — `series` (the key), `username`, `token`, `last_used` — but
/// `token` holds the SHA-256 of the cookie's token, never the token, and `last_used` is a
/// `timestamptz` on PostgreSQL, Unix seconds on SQLite. Added: `previous_token` (its
/// predecessor's hash, for the grace window and repeated rotations), `rotated_at_ms`,
/// `created`, `expires_at`, `user_agent` and `stolen_at_ms` (set on a theft marker).
///
/// Check-and-rotate is one transaction (PostgreSQL `SELECT … FOR UPDATE`, SQLite
/// `BEGIN IMMEDIATE`); on theft, the marker and the deletion of the user's other series commit
/// together. Every call is bounded by an operation timeout
/// ([`DEFAULT_OP_TIMEOUT`](Self::DEFAULT_OP_TIMEOUT), see
/// [`with_op_timeout`](Self::with_op_timeout)). Expired rows stay until
/// [`purge_expired`](Self::purge_expired) or [`spawn_purge`](Self::spawn_purge) deletes them;
/// they log nobody in.
///
/// ```no_run
/// # #[cfg(feature = "postgres")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::remember_me::{RememberMe, SqlRememberMeStore, StaticUsers};
/// use tower_token_auth::sql::Database;
///
/// let db = Database::connect("postgres://app@localhost/app").await?;
/// let store = SqlRememberMeStore::new(db);
/// let _purge = store.spawn_purge(Duration::from_secs(3600), 1000);
/// let remember_me = RememberMe::persistent(store, StaticUsers::default());
/// # let _ = remember_me;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqlRememberMeStore {
    db: Database,
    op_timeout: Duration,
}

impl fmt::Debug for SqlRememberMeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlRememberMeStore")
            .field("backend", &backend_name(&self.db))
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

/// The statements whose text differs between the backends: `last_used` is a timestamp on
/// PostgreSQL, and the lock and the purge are spelled differently.
struct Dialect {
    begin: &'static str,
    create: &'static str,
    lock_series: &'static str,
    rotate: &'static str,
    touch: &'static str,
    devices: &'static str,
    purge: &'static str,
}

/// `$1` series; `$2`…`$10` the columns; a series created again starts over.
macro_rules! create_series {
    ($last_used:literal) => {
        concat!(
            "INSERT INTO persistent_logins (series, username, token, last_used, \
                 previous_token, rotated_at_ms, created, expires_at, user_agent) \
             VALUES ($1, $2, $3, ",
            $last_used,
            ", $5, $6, $7, $8, $9) \
             ON CONFLICT (series) DO UPDATE SET username = excluded.username, \
                 token = excluded.token, last_used = excluded.last_used, \
                 previous_token = excluded.previous_token, \
                 rotated_at_ms = excluded.rotated_at_ms, created = excluded.created, \
                 expires_at = excluded.expires_at, user_agent = excluded.user_agent, \
                 stolen_at_ms = NULL"
        )
    };
}

/// The series `$1`: username, token, previous_token, rotated_at_ms, created, last_used,
/// expires_at, user_agent, stolen_at_ms.
macro_rules! select_series {
    ($last_used:literal, $lock:literal) => {
        concat!(
            "SELECT username, token, previous_token, rotated_at_ms, created, ",
            $last_used,
            ", expires_at, user_agent, stolen_at_ms FROM persistent_logins WHERE series = $1",
            $lock
        )
    };
}

/// `$1` series, `$2` the new token's hash, `$3` now (ms), `$4` now (s).
macro_rules! rotate_series {
    ($last_used:literal) => {
        concat!(
            "UPDATE persistent_logins SET previous_token = token, token = $2, \
             rotated_at_ms = $3, last_used = ",
            $last_used,
            " WHERE series = $1"
        )
    };
}

/// `$1` series, `$2` now (s).
macro_rules! touch_series {
    ($last_used:literal) => {
        concat!(
            "UPDATE persistent_logins SET last_used = ",
            $last_used,
            " WHERE series = $1"
        )
    };
}

/// The live series of `$1` at `$2` (s): series, created, last_used, expires_at, user_agent.
macro_rules! select_devices {
    ($last_used:literal) => {
        concat!(
            "SELECT series, created, ",
            $last_used,
            ", expires_at, user_agent FROM persistent_logins \
             WHERE username = $1 AND expires_at >= $2 AND stolen_at_ms IS NULL \
             ORDER BY created, series"
        )
    };
}

#[cfg(feature = "postgres")]
const POSTGRES: Dialect = Dialect {
    begin: "BEGIN",
    create: create_series!("to_timestamp($4)"),
    lock_series: select_series!(
        "CAST(EXTRACT(EPOCH FROM last_used) AS BIGINT)",
        " FOR UPDATE"
    ),
    rotate: rotate_series!("to_timestamp($4)"),
    touch: touch_series!("to_timestamp($2)"),
    devices: select_devices!("CAST(EXTRACT(EPOCH FROM last_used) AS BIGINT)"),
    purge: "DELETE FROM persistent_logins WHERE ctid IN \
        (SELECT ctid FROM persistent_logins WHERE expires_at < $1 LIMIT $2)",
};

#[cfg(feature = "sqlite")]
const SQLITE: Dialect = Dialect {
    begin: "BEGIN IMMEDIATE",
    create: create_series!("$4"),
    lock_series: select_series!("last_used", ""),
    rotate: rotate_series!("$4"),
    touch: touch_series!("$2"),
    devices: select_devices!("last_used"),
    purge: "DELETE FROM persistent_logins WHERE rowid IN \
        (SELECT rowid FROM persistent_logins WHERE expires_at < $1 LIMIT $2)",
};

const MARK_STOLEN: &str = "UPDATE persistent_logins SET stolen_at_ms = $2 WHERE series = $1";
const DELETE_OTHERS: &str = "DELETE FROM persistent_logins WHERE username = $1 AND series <> $2";
const DELETE: &str = "DELETE FROM persistent_logins WHERE series = $1";
const DELETE_USER: &str =
    "DELETE FROM persistent_logins WHERE username = $1 RETURNING stolen_at_ms, expires_at";

/// A stored hash; the schema checks its length, anything else (never written) matches no
/// token.
fn hash32(bytes: &[u8]) -> [u8; 32] {
    bytes.try_into().unwrap_or_default()
}

fn store_error(e: sqlx::Error) -> RememberMeStoreError {
    RememberMeStoreError(unavailable(e))
}

fn timed_out() -> RememberMeStoreError {
    RememberMeStoreError("remember-me store timed out".into())
}

impl SqlRememberMeStore {
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
    /// of [`DEFAULT_OP_TIMEOUT`](Self::DEFAULT_OP_TIMEOUT); past it the call fails.
    pub fn with_op_timeout(mut self, op_timeout: Duration) -> Self {
        self.op_timeout = op_timeout;
        self
    }

    /// Deletes expired logins (theft markers included), at most `batch` rows per statement,
    /// until none is left; returns how many went. Each statement is bounded by the operation
    /// timeout.
    pub async fn purge_expired(&self, batch: usize) -> Result<u64, RememberMeStoreError> {
        let batch = batch.max(1);
        let now = db_int(now_secs());
        self.bounded(async {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                purge_batches!(pool, sql.purge, now, batch).await
            })
        })
        .await
    }

    /// Starts a Tokio task that calls [`purge_expired`](Self::purge_expired)`(batch)` now and
    /// then every `interval`, logging failures (`tracing`). It runs until the returned handle
    /// is aborted or the runtime shuts down. Panics outside a Tokio runtime.
    pub fn spawn_purge(&self, interval: Duration, batch: usize) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        spawn_purge_loop("remember-me store", interval, move || {
            let store = store.clone();
            async move { store.purge_expired(batch).await }
        })
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, RememberMeStoreError> {
        bounded(self.op_timeout, timed_out, async {
            fut.await.map_err(store_error)
        })
        .await
    }
}

impl RememberMeStore for SqlRememberMeStore {
    fn create<'a>(
        &'a self,
        series: &'a str,
        record: SeriesRecord,
    ) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                sqlx::query(sql.create)
                    .bind(series)
                    .bind(&record.username)
                    .bind(&record.token_hash[..])
                    .bind(db_int(record.last_used))
                    .bind(record.previous_hash.as_ref().map(|h| &h[..]))
                    .bind(db_int(record.rotated_at_ms))
                    .bind(db_int(record.created))
                    .bind(db_int(record.expires_at))
                    .bind(record.user_agent.as_deref())
                    .execute(pool)
                    .await
                    .map(drop)
            })
        }))
    }

    fn check_and_rotate<'a>(
        &'a self,
        series: &'a str,
        presented: [u8; 32],
        next: [u8; 32],
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<SeriesCheck, RememberMeStoreError>> {
        let now = now_ms / 1000;
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                let mut tx = pool.begin_with(sql.begin).await?;
                let row = sqlx::query(sql.lock_series)
                    .bind(series)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    tx.commit().await?;
                    return Ok(SeriesCheck::Invalid);
                };
                let record = SeriesRecord {
                    username: row.try_get(0)?,
                    token_hash: hash32(row.try_get(1)?),
                    previous_hash: row.try_get::<Option<&[u8]>, _>(2)?.map(hash32),
                    rotated_at_ms: from_db_int(row.try_get(3)?),
                    created: from_db_int(row.try_get(4)?),
                    last_used: from_db_int(row.try_get(5)?),
                    expires_at: from_db_int(row.try_get(6)?),
                    user_agent: row.try_get(7)?,
                };
                let stolen_at_ms: Option<i64> = row.try_get(8)?;
                let username = record.username.clone();
                let check = if record.expires_at < now {
                    SeriesCheck::Invalid
                } else if let Some(detected) = stolen_at_ms {
                    SeriesCheck::Theft {
                        username,
                        detected_at_ms: from_db_int(detected),
                    }
                } else {
                    match judge(&record, &presented, &next, now_ms, grace_ms) {
                        Verdict::Current => {
                            sqlx::query(sql.rotate)
                                .bind(series)
                                .bind(&next[..])
                                .bind(db_int(now_ms))
                                .bind(db_int(now))
                                .execute(&mut *tx)
                                .await?;
                            SeriesCheck::Rotated { username }
                        }
                        Verdict::Repeat => SeriesCheck::Rotated { username },
                        Verdict::Grace => {
                            sqlx::query(sql.touch)
                                .bind(series)
                                .bind(db_int(now))
                                .execute(&mut *tx)
                                .await?;
                            SeriesCheck::WithinGrace { username }
                        }
                        Verdict::Theft => {
                            sqlx::query(MARK_STOLEN)
                                .bind(series)
                                .bind(db_int(now_ms))
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(DELETE_OTHERS)
                                .bind(&username)
                                .bind(series)
                                .execute(&mut *tx)
                                .await?;
                            SeriesCheck::Theft {
                                username,
                                detected_at_ms: now_ms,
                            }
                        }
                    }
                };
                tx.commit().await?;
                Ok(check)
            })
        }))
    }

    fn delete<'a>(&'a self, series: &'a str) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, _sql| {
                sqlx::query(DELETE)
                    .bind(series)
                    .execute(pool)
                    .await
                    .map(drop)
            })
        }))
    }

    fn delete_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<usize, RememberMeStoreError>> {
        let now = now_secs();
        Box::pin(self.bounded(async move {
            let deleted: Vec<(Option<i64>, i64)> =
                on_backend!(&self.db, POSTGRES, SQLITE, |pool, _sql| {
                    sqlx::query_as(DELETE_USER)
                        .bind(username)
                        .fetch_all(pool)
                        .await?
                });
            // Live series: neither theft markers nor expired.
            Ok(deleted
                .iter()
                .filter(|(stolen, expires_at)| stolen.is_none() && from_db_int(*expires_at) >= now)
                .count())
        }))
    }

    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>> {
        let now = db_int(now_secs());
        Box::pin(self.bounded(async move {
            on_backend!(&self.db, POSTGRES, SQLITE, |pool, sql| {
                let rows = sqlx::query(sql.devices)
                    .bind(username)
                    .bind(now)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Device {
                            series: row.try_get(0)?,
                            created: from_db_int(row.try_get(1)?),
                            last_used: from_db_int(row.try_get(2)?),
                            expires_at: from_db_int(row.try_get(3)?),
                            user_agent: row.try_get(4)?,
                        })
                    })
                    .collect()
            })
        }))
    }
}
