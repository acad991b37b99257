//! How long a revocation takes to reach another instance, through Redis pub/sub and through
//! PostgreSQL `LISTEN`/`NOTIFY`, measured side by side: each trial revokes a fresh token on
//! instance A and times until instance B refuses it (A's write and notification round trips
//! included), once per backend, the backends alternating. Both servers are started here on
//! free loopback ports and stopped afterwards.
//!
//! ```text
//! cargo bench --bench propagation --features postgres [-- TRIALS]
//! ```
//!
//! Prints p50, p90, p99 and max per backend (200 trials by default). Not a criterion bench:
//! the quantity is a latency distribution across two instances, not a function's cost.

#[path = "../tests/support/postgres_server.rs"]
mod postgres_server;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use tower_token_auth::revocation::{
    RedisRevocationStore, RedisStoreConfig, RevocationCheck, RevocationStatus, RevocationStore,
    SqlRevocationConfig, SqlRevocationStore, TokenRef,
};
use tower_token_auth::sql::Database;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn status(store: &dyn RevocationStore, token: &TokenRef<'_>) -> RevocationStatus {
    match store.check(token) {
        RevocationCheck::Ready(r) => r.expect("check"),
        RevocationCheck::Pending(f) => f.await.expect("check"),
    }
}

/// Revokes `jti` on `a`; the time until `b` refuses it.
async fn trial(a: &dyn RevocationStore, b: &dyn RevocationStore, jti: &str) -> Duration {
    let token = TokenRef::new()
        .jti(jti)
        .sub("alice")
        .iat(now())
        .exp(now() + 600);
    assert_eq!(status(b, &token).await, RevocationStatus::Active);
    let start = Instant::now();
    a.revoke_token(token).await.expect("revoke");
    while status(b, &token).await != RevocationStatus::Revoked {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not propagated in 5 s"
        );
        tokio::task::yield_now().await;
    }
    start.elapsed()
}

fn report(name: &str, mut delays: Vec<Duration>) {
    delays.sort();
    let p = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<10} {} trials: p50 {:>9.3?}  p90 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}",
        delays.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        delays.last().unwrap()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; a number is the trial count.
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let pg = postgres_server::PostgresServer::start();
    let redis = redis_server::RedisServer::start();

    let pg_store = || async {
        let db = Database::connect(&pg.url()).await.expect("PostgreSQL");
        let s = SqlRevocationStore::new(db, SqlRevocationConfig::default());
        assert!(s.wait_live(Duration::from_secs(10)).await);
        s
    };
    let redis_store = || async {
        let s = RedisRevocationStore::connect(&redis.url(), RedisStoreConfig::default())
            .await
            .expect("Redis");
        assert!(s.wait_live(Duration::from_secs(10)).await);
        s
    };
    let (pa, pb) = (pg_store().await, pg_store().await);
    let (ra, rb) = (redis_store().await, redis_store().await);

    // Warm up both paths (connections, prepared statements).
    for i in 0..20 {
        trial(&pa, &pb, &format!("warm-pg-{i}")).await;
        trial(&ra, &rb, &format!("warm-redis-{i}")).await;
    }
    let (mut by_pg, mut by_redis) = (Vec::new(), Vec::new());
    for i in 0..trials {
        by_pg.push(trial(&pa, &pb, &format!("pg-{i}")).await);
        by_redis.push(trial(&ra, &rb, &format!("redis-{i}")).await);
    }
    println!("revocation propagation, instance A to instance B, loopback:");
    report("postgres", by_pg);
    report("redis", by_redis);
}
