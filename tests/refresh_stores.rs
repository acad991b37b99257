//! One contract, every refresh store: the in-memory store, the Redis store on a real
//! `redis-server`, the SQL store on a real PostgreSQL server and on SQLite files. Rotation
//! retried with the same successor, reuse, revoked families still found for revocation, the
//! user's family index outliving its first token, the grace window, expiry, the DPoP binding,
//! 50 concurrent rotations of one token; then each backend's own failures: the first call
//! after a Redis restart, PostgreSQL killed and restarted, purging expired rows.

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis_server::RedisServer;
use support::now_secs;
use tower_token_auth::refresh::{
    MemoryRefreshStore, PresentedToken, RedisRefreshStore, RefreshRecord, RefreshStore, Rotation,
    TokenHash,
};

/// A well-formed refresh token (`<22 chars>.<43 chars>`), distinct on every call.
fn token(family: &str) -> (String, PresentedToken) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let token = format!("{family}.{:0>43}", format!("{}x{n}", now_secs()));
    let presented = PresentedToken::parse(&token).expect("a well-formed token");
    (token, presented)
}

/// A family id, distinct on every call (stores may be shared between tests).
fn family() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{:0>22}", format!("{}f{n}", std::process::id()))
}

fn record(sub: &str, family: &str, expires_at: u64) -> RefreshRecord {
    RefreshRecord::new(sub, family, "read", expires_at, now_secs())
}

fn now_ms() -> u64 {
    now_secs() * 1000
}

/// A rotation whose answer was lost is sent again with the same successor: the same answer.
/// Another successor for the spent token is reuse.
async fn retried_rotation_is_not_reuse(store: &dyn RefreshStore) {
    let fam = family();
    let (_, first) = token(&fam);
    let rec = record("alice", &fam, now_secs() + 60);
    store.create(first.hash, &rec).await.unwrap();
    store.create(first.hash, &rec).await.unwrap();
    let (_, second) = token(&fam);
    let exp = now_secs() + 60;
    for attempt in 0..2 {
        let out = store
            .rotate(&first, second.hash, exp, now_ms(), 0)
            .await
            .unwrap();
        assert!(
            matches!(out, Rotation::Rotated(ref r) if r.family == fam),
            "attempt {attempt}: {out:?}"
        );
    }
    let found = store.find(&second, now_secs()).await.unwrap().unwrap();
    assert!(!found.family_revoked);
    // The spent token presented for any other successor: reuse, the family dies.
    let (_, third) = token(&fam);
    let out = store
        .rotate(&first, third.hash, exp, now_ms(), 0)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Reused(_)), "{out:?}");
    // The current token of the dead family refreshes nothing but is still found, so a
    // revocation interrupted half-way can be sent again.
    let found = store.find(&second, now_secs()).await.unwrap().unwrap();
    assert!(found.family_revoked, "{found:?}");
    let out = store
        .rotate(&second, third.hash, exp, now_ms(), 0)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::FamilyRevoked(_)), "{out:?}");
    // Revoking again is idempotent and still names the owner.
    assert_eq!(
        store.revoke_family(&fam).await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.revoke_family(&fam).await.unwrap().as_deref(),
        Some("alice")
    );
}

/// A session that outlives its first refresh token (it rotated to one that expires later)
/// is still found by "log out everywhere".
async fn user_index_outlives_the_first_token(store: &dyn RefreshStore, sub: &str) {
    let fam = family();
    let (_, first) = token(&fam);
    store
        .create(first.hash, &record(sub, &fam, now_secs() + 1))
        .await
        .unwrap();
    let (_, second) = token(&fam);
    let out = store
        .rotate(&first, second.hash, now_secs() + 60, now_ms(), 0)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
    // The first token's lifetime is over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let families = store.revoke_user(sub).await.unwrap();
    assert_eq!(families, vec![fam.clone()]);
    let (_, third) = token(&fam);
    let out = store
        .rotate(&second, third.hash, now_secs() + 60, now_ms(), 0)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::FamilyRevoked(_)), "{out:?}");
}

/// Within the grace window a spent token is refused and the family lives on; past it, the same
/// token is reuse. Expired and unknown tokens are invalid; a spent token is not found.
async fn grace_window_and_expiry(store: &dyn RefreshStore) {
    let fam = family();
    let (_, first) = token(&fam);
    store
        .create(first.hash, &record("dora", &fam, now_secs() + 60))
        .await
        .unwrap();
    let (_, second) = token(&fam);
    let t0 = now_ms();
    let exp = now_secs() + 60;
    let out = store
        .rotate(&first, second.hash, exp, t0, 5000)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
    assert_eq!(store.find(&first, now_secs()).await.unwrap(), None, "spent");
    let (_, other) = token(&fam);
    let out = store
        .rotate(&first, other.hash, exp, t0 + 4999, 5000)
        .await
        .unwrap();
    assert_eq!(out, Rotation::WithinGrace);
    let found = store.find(&second, now_secs()).await.unwrap().unwrap();
    assert!(
        !found.family_revoked,
        "the family survives a retry in the grace window"
    );
    let out = store
        .rotate(&first, other.hash, exp, t0 + 5000, 5000)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Reused(_)), "{out:?}");

    // Expired: invalid for rotation, not found.
    let fam = family();
    let (_, old) = token(&fam);
    store
        .create(old.hash, &record("dora", &fam, now_secs() - 1))
        .await
        .unwrap();
    assert_eq!(store.find(&old, now_secs()).await.unwrap(), None);
    let (_, next) = token(&fam);
    let out = store
        .rotate(&old, next.hash, exp, now_ms(), 0)
        .await
        .unwrap();
    assert_eq!(out, Rotation::Invalid);
    // A token presented under another family's id is unknown there.
    let (_, live) = token(&fam);
    store
        .create(live.hash, &record("dora", &fam, now_secs() + 60))
        .await
        .unwrap();
    let forged = PresentedToken {
        family: family(),
        hash: live.hash,
    };
    assert_eq!(store.find(&forged, now_secs()).await.unwrap(), None);
    let out = store
        .rotate(&forged, next.hash, exp, now_ms(), 0)
        .await
        .unwrap();
    assert_eq!(out, Rotation::Invalid);
    // Unknown revocations name nobody.
    assert_eq!(store.revoke_family(&family()).await.unwrap(), None);
    assert!(store.revoke_user("nobody-at-all").await.unwrap().is_empty());
}

/// A DPoP-bound family keeps its key thumbprint and session start across rotations.
async fn binding_survives_rotation(store: &dyn RefreshStore) {
    let fam = family();
    let (_, first) = token(&fam);
    let rec = RefreshRecord::new("erin", &fam, "read write", now_secs() + 60, 1_700_000_000)
        .with_jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    store.create(first.hash, &rec).await.unwrap();
    let found = store.find(&first, now_secs()).await.unwrap().unwrap();
    assert_eq!(found.record, rec);
    let (_, second) = token(&fam);
    let exp = now_secs() + 120;
    let out = store
        .rotate(&first, second.hash, exp, now_ms(), 0)
        .await
        .unwrap();
    assert_eq!(out, Rotation::Rotated(rec.clone()));
    let found = store.find(&second, now_secs()).await.unwrap().unwrap();
    let mut expected = rec;
    expected.expires_at = exp;
    assert_eq!(found.record, expected);
}

/// 50 rotations of one token at once, each with its own successor: at most one succeeds;
/// the others see a spent token (reuse, which revokes the family) or a revoked family.
async fn concurrent_rotations_yield_at_most_one(store: Arc<dyn RefreshStore>) {
    let fam = family();
    let (_, first) = token(&fam);
    store
        .create(first.hash, &record("frank", &fam, now_secs() + 60))
        .await
        .unwrap();
    let first = Arc::new(first);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (store, first) = (store.clone(), first.clone());
        let (_, next) = token(&fam);
        tasks.push(tokio::spawn(async move {
            let out = store
                .rotate(&first, next.hash, now_secs() + 60, now_ms(), 0)
                .await
                .unwrap();
            (out, next)
        }));
    }
    let mut rotated = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Rotation::Rotated(_), next) => rotated.push(next),
            (Rotation::Reused(_) | Rotation::FamilyRevoked(_), _) => {}
            (other, _) => panic!("unexpected {other:?}"),
        }
    }
    assert!(rotated.len() <= 1, "{} successors", rotated.len());
    for next in &rotated {
        let found = store.find(next, now_secs()).await.unwrap().unwrap();
        assert!(found.family_revoked, "the replays revoked the family");
    }
}

/// The whole contract, on `store`.
async fn contract(store: Arc<dyn RefreshStore>) {
    retried_rotation_is_not_reuse(&*store).await;
    grace_window_and_expiry(&*store).await;
    binding_survives_rotation(&*store).await;
    concurrent_rotations_yield_at_most_one(store.clone()).await;
    user_index_outlives_the_first_token(&*store, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    contract(Arc::new(MemoryRefreshStore::new())).await;
}

fn redis_store(redis: &RedisServer) -> RedisRefreshStore {
    RedisRefreshStore::connect(&redis.url(), "tta-test:", Duration::from_secs(2)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_contract() {
    let redis = RedisServer::start();
    contract(Arc::new(redis_store(&redis))).await;
}

/// After Redis restarts, the first call on the pooled (now dead) connection is retried on a
/// fresh one instead of failing with "broken pipe".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_survives_a_restart() {
    let mut redis = RedisServer::start();
    let store = redis_store(&redis);
    for round in 0..3 {
        let fam = family();
        let (_, first) = token(&fam);
        store
            .create(first.hash, &record("carol", &fam, now_secs() + 60))
            .await
            .unwrap_or_else(|e| panic!("round {round}: create: {e}"));
        redis.restart();
        // Redis came back empty: the token is unknown, and that is an answer, not an error.
        let found = store
            .find(&first, now_secs())
            .await
            .unwrap_or_else(|e| panic!("round {round}: first call after restart: {e}"));
        assert_eq!(found, None, "round {round}");
    }
    // Hashes of unknown tokens are unknown too.
    let (_, stranger) = token(&family());
    let out = store
        .rotate(&stranger, TokenHash::of("x"), now_secs() + 60, now_ms(), 0)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Invalid), "{out:?}");
}

// ---- SQL ------------------------------------------------------------------------------------

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql {
    use std::time::Instant;

    use tower_token_auth::refresh::SqlRefreshStore;
    use tower_token_auth::sql::Database;

    use super::sql_support::{TempSqlite, count_rows};
    use super::*;

    /// Expired families and tokens go in batches smaller than their number; live ones stay.
    async fn purge_removes_only_expired_rows(db: Database) {
        let store = SqlRefreshStore::new(db.clone());
        let mut live = Vec::new();
        for i in 0..7 {
            let fam = family();
            let (_, t) = token(&fam);
            let exp = if i < 5 {
                now_secs() - 10
            } else {
                now_secs() + 60
            };
            store
                .create(t.hash, &record("gina", &fam, exp))
                .await
                .unwrap();
            if i >= 5 {
                // A live family with a spent token and its successor.
                let (_, next) = token(&fam);
                let out = store
                    .rotate(&t, next.hash, now_secs() + 60, now_ms(), 0)
                    .await
                    .unwrap();
                assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
                live.push((t, next));
            }
        }
        assert_eq!(count_rows(&db, "tta_refresh_families").await, 7);
        assert_eq!(count_rows(&db, "tta_refresh_tokens").await, 9);
        // 5 expired tokens and their 5 families, 2 rows per statement.
        assert_eq!(store.purge_expired(2).await.unwrap(), 10);
        assert_eq!(store.purge_expired(2).await.unwrap(), 0);
        assert_eq!(count_rows(&db, "tta_refresh_families").await, 2);
        assert_eq!(count_rows(&db, "tta_refresh_tokens").await, 4);
        for (spent, current) in &live {
            assert!(store.find(current, now_secs()).await.unwrap().is_some());
            // The spent token is still known as spent: presenting it is still reuse.
            let (_, other) = token(&current.family);
            let out = store
                .rotate(spent, other.hash, now_secs() + 60, now_ms(), 0)
                .await
                .unwrap();
            assert!(matches!(out, Rotation::Reused(_)), "{out:?}");
        }
        // The background task purges too.
        let fam = family();
        let (_, t) = token(&fam);
        store
            .create(t.hash, &record("gina", &fam, now_secs() - 10))
            .await
            .unwrap();
        let task = store.spawn_purge(Duration::from_millis(50), 100);
        let deadline = Instant::now() + Duration::from_secs(5);
        while count_rows(&db, "tta_refresh_families").await != 2 {
            assert!(Instant::now() < deadline, "the purge task did not run");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    }

    /// `Debug` names the backend and nothing of the connection.
    fn debug_shows_no_secrets(store: &SqlRefreshStore, backend: &str) {
        let shown = format!("{store:?}");
        assert!(shown.contains(backend), "{shown}");
        assert!(
            !shown.contains("127.0.0.1") && !shown.contains("tta-sqlite"),
            "{shown}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_contract() {
        let file = TempSqlite::new();
        let store = SqlRefreshStore::new(file.connect().await);
        debug_shows_no_secrets(&store, "sqlite");
        contract(Arc::new(store)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_purge() {
        let file = TempSqlite::new();
        purge_removes_only_expired_rows(file.connect().await).await;
    }

    /// Committed rotations are in the file: closed and opened again, the spent token is reuse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reopened_keeps_rotations() {
        let file = TempSqlite::new();
        let db = file.connect().await;
        let store = SqlRefreshStore::new(db.clone());
        let fam = family();
        let (_, first) = token(&fam);
        store
            .create(first.hash, &record("hank", &fam, now_secs() + 60))
            .await
            .unwrap();
        let (_, second) = token(&fam);
        let out = store
            .rotate(&first, second.hash, now_secs() + 60, now_ms(), 0)
            .await
            .unwrap();
        assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
        drop(store);
        super::sql_support::close(db).await;

        let store = SqlRefreshStore::new(file.connect().await);
        assert!(store.find(&second, now_secs()).await.unwrap().is_some());
        let (_, third) = token(&fam);
        let out = store
            .rotate(&first, third.hash, now_secs() + 60, now_ms(), 0)
            .await
            .unwrap();
        assert!(matches!(out, Rotation::Reused(_)), "{out:?}");
    }

    #[cfg(feature = "postgres")]
    mod postgres {
        use super::super::postgres_server::PostgresServer;
        use super::super::sql_support::connect_postgres;
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_store_contract() {
            let server = PostgresServer::start();
            let store = SqlRefreshStore::new(connect_postgres(&server.url()).await);
            debug_shows_no_secrets(&store, "postgres");
            contract(Arc::new(store)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_purge() {
            let server = PostgresServer::start();
            purge_removes_only_expired_rows(connect_postgres(&server.url()).await).await;
        }

        /// PostgreSQL killed (SIGKILL) mid-test: calls fail fast with an error; restarted, the
        /// same store works again, and a committed rotation survived the crash.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_killed_and_restarted() {
            let mut server = PostgresServer::start();
            let store = SqlRefreshStore::new(connect_postgres(&server.url()).await)
                .with_op_timeout(Duration::from_secs(1));
            let fam = family();
            let (_, first) = token(&fam);
            store
                .create(first.hash, &record("ivy", &fam, now_secs() + 60))
                .await
                .unwrap();
            let (_, second) = token(&fam);
            let out = store
                .rotate(&first, second.hash, now_secs() + 60, now_ms(), 0)
                .await
                .unwrap();
            assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");

            server.kill();
            for round in 0..2 {
                let started = Instant::now();
                let (_, third) = token(&fam);
                let err = store
                    .rotate(&second, third.hash, now_secs() + 60, now_ms(), 0)
                    .await
                    .expect_err("the database is down");
                let took = started.elapsed();
                // The store's 1 s bound, not the pool's 2 s acquire timeout.
                assert!(
                    took < Duration::from_millis(1500),
                    "round {round}: {took:?} ({err})"
                );
                let started = Instant::now();
                store.find(&second, now_secs()).await.expect_err("down");
                let took = started.elapsed();
                assert!(
                    took < Duration::from_millis(1500),
                    "round {round}: {took:?}"
                );
            }

            server.restart();
            let started = Instant::now();
            let found = store
                .find(&second, now_secs())
                .await
                .expect("the same store works once the database is back");
            assert!(found.is_some(), "the rotation survived the crash");
            assert!(started.elapsed() < Duration::from_secs(4));

            // A fresh pool (another instance, a restarted app) sees the spent token.
            let fresh = SqlRefreshStore::new(connect_postgres(&server.url()).await);
            let (_, third) = token(&fam);
            let out = fresh
                .rotate(&first, third.hash, now_secs() + 60, now_ms(), 0)
                .await
                .unwrap();
            assert!(matches!(out, Rotation::Reused(_)), "{out:?}");
            let out = store
                .rotate(&second, third.hash, now_secs() + 60, now_ms(), 0)
                .await
                .unwrap();
            assert!(matches!(out, Rotation::FamilyRevoked(_)), "{out:?}");
        }
    }
}
