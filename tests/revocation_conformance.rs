//! One suite, every store: the memory store, the Redis store (a real `redis-server` started
//! by the harness), the Redis store on a 3-node Redis Cluster, and the SQL store on a real
//! PostgreSQL server and on a SQLite file must behave the same. Each test gets a `writer`
//! store and a `reader` view of the same state: for memory a clone, for the others a second
//! instance, as two service instances would have.

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_token_auth::revocation::{
    RECORD_GRACE, RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn status(store: &dyn RevocationStore, token: TokenRef<'_>) -> RevocationStatus {
    match store.check(&token) {
        RevocationCheck::Ready(r) => r.unwrap(),
        RevocationCheck::Pending(f) => f.await.unwrap(),
    }
}

/// Polls until the store answers `want` (a shared store may take a moment), for at most 1 s.
async fn eventually(store: &dyn RevocationStore, token: TokenRef<'_>, want: RevocationStatus) {
    let start = Instant::now();
    loop {
        let got = status(store, token).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tok<'a>(jti: &'a str, sub: &'a str, iat: u64) -> TokenRef<'a> {
    TokenRef::new()
        .jti(Some(jti))
        .sub(Some(sub))
        .iat(Some(iat))
        .exp(Some(now() + 600))
        .sid(None)
}

use RevocationStatus::{Active, Revoked};

async fn revoke_token_rejects_only_that_token(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    assert_eq!(status(r, tok("a1", "alice", t)).await, Active);
    w.revoke_token(tok("a1", "alice", t)).await.unwrap();
    assert_eq!(
        status(w, tok("a1", "alice", t)).await,
        Revoked,
        "the writer enforces at once"
    );
    eventually(r, tok("a1", "alice", t), Revoked).await;
    assert_eq!(status(r, tok("a2", "alice", t)).await, Active);
    assert_eq!(status(r, tok("b1", "bob", t)).await, Active);
}

async fn revoke_user_rejects_older_tokens_only(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    assert_eq!(status(r, tok("c1", "carol", t)).await, Active);
    w.revoke_user("carol", t, t + 600).await.unwrap();
    eventually(r, tok("c1", "carol", t), Revoked).await;
    eventually(r, tok("c0", "carol", t - 100), Revoked).await;
    assert_eq!(
        status(r, tok("c2", "carol", t + 1)).await,
        Active,
        "issued later"
    );
    assert_eq!(
        status(r, tok("d1", "dave", t)).await,
        Active,
        "another user"
    );
    let no_iat = TokenRef::new()
        .jti(Some("c3"))
        .sub(Some("carol"))
        .iat(None)
        .exp(Some(t + 600))
        .sid(None);
    assert_eq!(
        status(r, no_iat).await,
        Revoked,
        "no iat cannot prove it is newer"
    );
}

async fn user_revocation_is_never_lowered(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    w.revoke_user("erin", t, t + 600).await.unwrap();
    w.revoke_user("erin", t - 500, t + 10).await.unwrap();
    eventually(r, tok("e1", "erin", t - 1), Revoked).await;
    assert_eq!(status(w, tok("e1", "erin", t - 1)).await, Revoked);
}

async fn entries_expire_with_the_token(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    let grace = RECORD_GRACE.as_secs();
    let short = TokenRef::new()
        .jti(Some("f1"))
        .sub(Some("frank"))
        .iat(Some(t))
        .exp(Some(t + 1))
        .sid(None);
    w.revoke_token(short).await.unwrap();
    eventually(r, short, Revoked).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Past its exp but within the longest leeway a verifier accepts: still refused.
    assert_eq!(status(w, short).await, Revoked, "the record outlives exp");
    assert_eq!(status(r, short).await, Revoked);
    // A token whose exp and grace are both over: its record is gone (or never kept).
    let dead = TokenRef::new()
        .jti(Some("f2"))
        .sub(Some("frank"))
        .iat(Some(t - grace - 100))
        .exp(Some(t - grace - 2))
        .sid(None);
    w.revoke_token(dead).await.unwrap();
    w.revoke_user("frank-old", t, t - grace - 2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status(w, dead).await,
        Active,
        "the record ends after the grace"
    );
    assert_eq!(status(r, dead).await, Active);
    assert_eq!(status(r, tok("f3", "frank-old", t - 1)).await, Active);
}

async fn tokens_without_jti_or_exp_are_not_revocable(
    w: &dyn RevocationStore,
    _r: &dyn RevocationStore,
) {
    let no_jti = TokenRef::new()
        .jti(None)
        .sub(Some("g"))
        .iat(Some(now()))
        .exp(Some(now() + 60))
        .sid(None);
    assert!(matches!(
        w.revoke_token(no_jti).await,
        Err(RevocationError::NotRevocable("jti"))
    ));
    let no_exp = TokenRef::new()
        .jti(Some("g1"))
        .sub(Some("g"))
        .iat(Some(now()))
        .exp(None)
        .sid(None);
    assert!(matches!(
        w.revoke_token(no_exp).await,
        Err(RevocationError::NotRevocable("exp"))
    ));
}

async fn many_users_and_odd_names(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    let subs = [
        "u{1}",
        "user:with:colons",
        "ünïcödé",
        "spaces in name",
        "}{",
        "",
    ];
    for (i, sub) in subs.iter().enumerate() {
        w.revoke_token(tok(&format!("odd{i}"), sub, t))
            .await
            .unwrap();
    }
    for (i, sub) in subs.iter().enumerate() {
        eventually(r, tok(&format!("odd{i}"), sub, t), Revoked).await;
        assert_eq!(status(r, tok(&format!("other{i}"), sub, t)).await, Active);
    }
}

async fn revoke_session_rejects_its_tokens_only(w: &dyn RevocationStore, r: &dyn RevocationStore) {
    let t = now();
    let in_session = |jti| {
        TokenRef::new()
            .jti(Some(jti))
            .sub(Some("sam"))
            .iat(Some(t))
            .exp(Some(t + 600))
            .sid(Some("family-1"))
    };
    let other_session = TokenRef::new().sid(Some("family-2"));
    assert_eq!(status(r, in_session("s1")).await, Active);
    w.revoke_session(Some("sam"), "family-1", t + 600)
        .await
        .unwrap();
    eventually(r, in_session("s1"), Revoked).await;
    assert_eq!(
        status(r, in_session("s2")).await,
        Revoked,
        "every token of the session"
    );
    assert_eq!(status(r, other_session).await, Active);
    assert_eq!(
        status(r, tok("s4", "sam", t)).await,
        Active,
        "tokens without sid"
    );
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    let store = tower_token_auth::MemoryStore::new();
                    let reader = store.clone();
                    super::$test(&store, &reader).await;
                }
            )*
        }

        mod redis_cluster {
            use super::redis_server::RedisCluster;
            use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let cluster = RedisCluster::start();
                    let urls = cluster.urls();
                    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
                    let config = RedisStoreConfig::default();
                    let writer = RedisRevocationStore::connect_cluster(&nodes, config.clone()).await.unwrap();
                    let reader = RedisRevocationStore::connect_cluster(&nodes[1..], config).await.unwrap();
                    assert!(writer.wait_live(std::time::Duration::from_secs(5)).await);
                    assert!(reader.wait_live(std::time::Duration::from_secs(5)).await);
                    super::$test(&writer, &reader).await;
                    drop(cluster);
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            use super::postgres_server::PostgresServer;
            use tower_token_auth::revocation::{SqlRevocationConfig, SqlRevocationStore};
            use tower_token_auth::sql::Database;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = PostgresServer::start();
                    let config = SqlRevocationConfig::default();
                    let writer = SqlRevocationStore::new(Database::connect(&server.url()).await.unwrap(), config.clone());
                    let reader = SqlRevocationStore::new(Database::connect(&server.url()).await.unwrap(), config);
                    assert!(writer.wait_live(std::time::Duration::from_secs(5)).await);
                    assert!(reader.wait_live(std::time::Duration::from_secs(5)).await);
                    super::$test(&writer, &reader).await;
                    drop(server);
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::sql_support::TempSqlite;
            use tower_token_auth::revocation::{SqlRevocationConfig, SqlRevocationStore};
            use tower_token_auth::sql::Database;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let file = TempSqlite::new();
                    let url = file.url();
                    let config = SqlRevocationConfig::default();
                    // Two pools on one file: two processes sharing it.
                    let writer = SqlRevocationStore::new(Database::connect(&url).await.unwrap(), config.clone());
                    let reader = SqlRevocationStore::new(Database::connect(&url).await.unwrap(), config);
                    assert!(writer.wait_live(std::time::Duration::from_secs(5)).await);
                    assert!(reader.wait_live(std::time::Duration::from_secs(5)).await);
                    super::$test(&writer, &reader).await;
                }
            )*
        }

        mod redis {
            use super::redis_server::RedisServer;
            use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = RedisServer::start();
                    let config = RedisStoreConfig::default();
                    let writer = RedisRevocationStore::connect(&server.url(), config.clone()).await.unwrap();
                    let reader = RedisRevocationStore::connect(&server.url(), config).await.unwrap();
                    assert!(writer.wait_live(std::time::Duration::from_secs(5)).await);
                    assert!(reader.wait_live(std::time::Duration::from_secs(5)).await);
                    super::$test(&writer, &reader).await;
                    drop(server);
                }
            )*
        }
    };
}

conformance!(
    revoke_token_rejects_only_that_token,
    revoke_user_rejects_older_tokens_only,
    user_revocation_is_never_lowered,
    entries_expire_with_the_token,
    tokens_without_jti_or_exp_are_not_revocable,
    many_users_and_odd_names,
    revoke_session_rejects_its_tokens_only,
);

// Keep the trait object form in use, as the layer holds stores.
#[allow(dead_code)]
fn _object_safe(s: Arc<dyn RevocationStore>) -> Arc<dyn RevocationStore> {
    s
}
