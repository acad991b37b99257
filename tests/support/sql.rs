//! SQL databases for the store tests: a SQLite file in the temp directory (removed with its
//! WAL files on drop), and a connected [`Database`] on it or on a `PostgresServer`.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tower_token_auth::sql::Database;

/// A SQLite database file that does not exist yet; it and its `-wal`/`-shm` files are removed
/// on drop.
pub struct TempSqlite {
    pub path: PathBuf,
}

impl TempSqlite {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("tta-sqlite-{}-{n}.db", std::process::id()));
        let this = Self { path };
        this.remove();
        this
    }

    /// `sqlite://<path>`
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// Connects (creating and migrating the file).
    pub async fn connect(&self) -> Database {
        Database::connect(&self.url())
            .await
            .expect("sqlite database")
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Connects to the PostgreSQL server at `url` and migrates it.
pub async fn connect_postgres(url: &str) -> Database {
    Database::connect(url).await.expect("postgres database")
}

/// How many rows `table` holds.
pub async fn count_rows(db: &Database, table: &str) -> i64 {
    use tower_token_auth::sql::sqlx;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match db {
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        #[allow(unreachable_patterns)]
        _ => unreachable!("no such backend"),
    }
}

/// Closes the pool (every connection), as a process exit would.
pub async fn close(db: Database) {
    match db {
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => pool.close().await,
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => pool.close().await,
        #[allow(unreachable_patterns)]
        _ => {}
    }
}
