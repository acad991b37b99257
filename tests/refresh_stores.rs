//! One contract, two refresh stores: the in-memory store and the Redis store on a real
//! `redis-server`. Rotation retried with the same successor, reuse, revoked families still
//! found for revocation, the user's family index outliving its first token, and the first
//! call after a Redis restart.

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

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

#[tokio::test]
async fn memory_store() {
    let store = MemoryRefreshStore::new();
    retried_rotation_is_not_reuse(&store).await;
    user_index_outlives_the_first_token(&store, "bob").await;
}

fn redis_store(redis: &RedisServer) -> RedisRefreshStore {
    RedisRefreshStore::connect(&redis.url(), "tta-test:", Duration::from_secs(2)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_contract() {
    let redis = RedisServer::start();
    let store = redis_store(&redis);
    retried_rotation_is_not_reuse(&store).await;
    user_index_outlives_the_first_token(&store, "bob").await;
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
