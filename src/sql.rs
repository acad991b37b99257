//! SQL databases (features `postgres` and `sqlite`): connecting, and the schema the SQL stores
//! use, shipped as migrations inside the crate.
//!
//! The stores themselves live beside the others of their kind:
//! [`revocation`](crate::revocation), [`refresh`](crate::refresh) and
//! [`remember_me`](crate::remember_me). Their tables are described in `docs/sql.md`.
//!
//! [`Database::connect`] picks the backend from the URL (`postgres://…` or `sqlite://…`),
//! opens a pool with this crate's settings and applies the migrations. An application that
//! already has a pool passes it to [`migrate_postgres`] / [`migrate_sqlite`] and to the
//! stores' constructors instead.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), tower_token_auth::sql::SqlError> {
//! use tower_token_auth::sql::Database;
//!
//! // A file next to the app: created on first use, migrated on every start.
//! let db = Database::connect("sqlite://tokens.db").await?;
//! # let _ = db;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::time::Duration;

pub use sqlx;

/// How long a store call waits for a pooled connection before it fails (and the request is
/// answered 503 with `Retry-After`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connecting to a database or migrating it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The URL names no backend compiled into this build.
    #[error(
        "unsupported database URL (want postgres://… or sqlite://…, with the matching feature): {0}"
    )]
    UnsupportedUrl(String),
    /// The database could not be reached or refused the connection.
    #[error("database unavailable: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying the crate's migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// A connected, migrated database of either backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Database {
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(sqlx::PgPool),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(sqlx::SqlitePool),
}

impl Database {
    /// Connects to `url` (`postgres://…`/`postgresql://…` or `sqlite://…`/`sqlite:…`) and
    /// applies this crate's migrations.
    pub async fn connect(url: &str) -> Result<Self, SqlError> {
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(connect_postgres(url).await?));
        }
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            return Ok(Self::Sqlite(connect_sqlite(url).await?));
        }
        // Never echo a password.
        let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
        Err(SqlError::UnsupportedUrl(format!("scheme {scheme:?}")))
    }
}

/// A pool of connections to the PostgreSQL database at `url`, migrated.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn connect_postgres(url: &str) -> Result<sqlx::PgPool, SqlError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(SqlError::Connect)?;
    migrate_postgres(&pool).await?;
    Ok(pool)
}

/// Applies this crate's PostgreSQL migrations (`migrations/postgres`). Idempotent; safe to
/// run from several instances at once (sqlx takes an advisory lock).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), SqlError> {
    let mut migrator = sqlx::migrate!("migrations/postgres");
    // The application's own migrations may share the database (and sqlx's table).
    migrator.set_ignore_missing(true);
    migrator.run(pool).await.map_err(SqlError::Migrate)
}

/// A pool of connections to the SQLite database at `url` (the file is created if missing),
/// migrated. Settings: WAL journal, `synchronous = FULL` (a commit survives a power cut),
/// foreign keys on, a 5 s busy timeout.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn connect_sqlite(url: &str) -> Result<sqlx::SqlitePool, SqlError> {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::from_str(url)
        .map_err(SqlError::Connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(SqlError::Connect)?;
    migrate_sqlite(&pool).await?;
    Ok(pool)
}

/// Applies this crate's SQLite migrations (`migrations/sqlite`). Idempotent.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), SqlError> {
    let mut migrator = sqlx::migrate!("migrations/sqlite");
    // The application's own migrations may share the database (and sqlx's table).
    migrator.set_ignore_missing(true);
    migrator.run(pool).await.map_err(SqlError::Migrate)
}

/// A database error as the stores report it: the backend is unavailable.
#[allow(dead_code)] // used by the stores
pub(crate) fn unavailable(error: sqlx::Error) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

// What the SQL stores share.

/// How long a SQL store call may take by default.
pub(crate) const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `$body` once per backend, with `$pool` bound to that backend's pool and `$sql` to its
/// dialect (the statements whose text differs). The body is type-checked for each backend.
macro_rules! on_backend {
    ($db:expr, $pg:expr, $lite:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match *$db {
            #[cfg(feature = "postgres")]
            crate::sql::Database::Postgres(ref $pool) => {
                let $sql = &$pg;
                $body
            }
            #[cfg(feature = "sqlite")]
            crate::sql::Database::Sqlite(ref $pool) => {
                let $sql = &$lite;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// The backend's name, for `Debug`.
pub(crate) fn backend_name(db: &Database) -> &'static str {
    on_backend!(db, "postgres", "sqlite", |_pool, name| *name)
}

/// Unix time as stored (`BIGINT`/`INTEGER`); saturates far in the future.
pub(crate) fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored time read back; a negative one (never written by this crate) reads as 0.
pub(crate) fn from_db_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `fut`, failing with `timed_out()` once `limit` has passed.
pub(crate) async fn bounded<T, E>(
    limit: Duration,
    timed_out: impl FnOnce() -> E,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}

/// Calls `purge` every `interval` until the task is aborted, logging failures.
pub(crate) fn spawn_purge_loop<F, Fut, E>(
    what: &'static str,
    interval: Duration,
    purge: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, E>> + Send,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match purge().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "{what}: expired rows purged"),
                Err(e) => tracing::warn!(error = %e, "{what}: purging expired rows failed"),
            }
        }
    })
}

/// Deletes rows `delete` selects (`$1`: now, `$2`: the batch size) batch after batch, until a
/// batch comes back short.
macro_rules! purge_batches {
    ($pool:expr, $delete:expr, $now:expr, $batch:expr) => {
        async {
            let mut total = 0u64;
            loop {
                let n = sqlx::query($delete)
                    .bind($now)
                    .bind(crate::sql::db_int($batch as u64))
                    .execute($pool)
                    .await?
                    .rows_affected();
                total += n;
                if n < $batch as u64 {
                    break Ok::<u64, sqlx::Error>(total);
                }
            }
        }
    };
}
pub(crate) use purge_batches;
