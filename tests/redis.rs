//! Several service instances on one real Redis: propagation of revocations, Redis killed under
//! load, Redis restarted empty, and Redis Cluster. Every server is started by the harness on
//! free loopback ports and killed afterwards.

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use redis_server::{RedisCluster, RedisServer};
use support::now_secs;
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};
use tower_token_auth::revocation::{
    RedisRevocationStore, RedisStoreConfig, RevocationCheck, RevocationStatus, RevocationStore,
    TokenRef,
};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AuthBody, Claims, JwtAuthLayer, Logout};

type Svc = BoxCloneSyncService<Request<Full<Bytes>>, Response<AuthBody<Full<Bytes>>>, Infallible>;

/// One service instance: the layer with its own Redis store, as a separate process would have.
struct Instance {
    svc: Svc,
    logout: Logout,
    store: RedisRevocationStore,
}

/// Generous timeouts: the machine may be busy compiling while these tests run, and a slow
/// answer must not be mistaken for an outage.
fn config() -> RedisStoreConfig {
    RedisStoreConfig::default().op_timeout(Duration::from_secs(2))
}

async fn instance(keys: &TestKeys, url: &str) -> Instance {
    let store = RedisRevocationStore::connect(url, config()).await.unwrap();
    instance_with(keys, store).await
}

async fn instance_with(keys: &TestKeys, store: RedisRevocationStore) -> Instance {
    assert!(
        store.wait_live(Duration::from_secs(10)).await,
        "subscription live"
    );
    let layer = JwtAuthLayer::new(keys.verifier()).with_revocation_store(store.clone());
    let logout = layer.logout();
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }));
    Instance {
        svc: BoxCloneSyncService::new(svc),
        logout,
        store,
    }
}

async fn get(svc: &Svc, token: &str) -> StatusCode {
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap().status()
}

fn claims(keys: &TestKeys, token: &str) -> Claims {
    keys.verifier().verify(token).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_seen_by_the_other() {
    let server = RedisServer::start();
    let keys = TestKeys::hs256();
    let a = instance(&keys, &server.url()).await;
    let b = instance(&keys, &server.url()).await;

    let mut delays = Vec::new();
    for i in 0..200 {
        let token = keys.mint(&format!("user{i}"), "read");
        // Both instances have seen the token: it is in their caches as not revoked.
        assert_eq!(get(&a.svc, &token).await, StatusCode::OK);
        assert_eq!(get(&b.svc, &token).await, StatusCode::OK);
        let start = Instant::now();
        a.logout.revoke(&claims(&keys, &token)).await.unwrap();
        assert_eq!(get(&a.svc, &token).await, StatusCode::UNAUTHORIZED);
        loop {
            if get(&b.svc, &token).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "B still accepts after 1 s"
            );
            tokio::task::yield_now().await;
        }
        delays.push(start.elapsed());
    }
    delays.sort();
    eprintln!(
        "propagation over {} trials: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        percentile(&delays, 0.99),
        delays.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_checks_make_no_round_trip() {
    let server = RedisServer::start();
    let keys = TestKeys::hs256();
    let a = instance(&keys, &server.url()).await;
    let token = keys.mint("alice", "read");
    assert_eq!(get(&a.svc, &token).await, StatusCode::OK);
    let calls = |s: &RedisServer| -> u64 {
        let info = s.cli(&["INFO", "commandstats"]).unwrap();
        info.lines()
            .find(|l| l.starts_with("cmdstat_mget:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = calls(&server);
    for _ in 0..500 {
        assert_eq!(get(&a.svc, &token).await, StatusCode::OK);
    }
    assert_eq!(
        calls(&server),
        before,
        "no MGET for a token already confirmed"
    );
    assert_eq!(before, 1, "the first sight of the token cost one MGET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_closed_and_recovers() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let mut server = RedisServer::start();
    let keys = TestKeys::hs256();
    let a = instance(&keys, &server.url()).await;
    let b = instance(&keys, &server.url()).await;

    let valid: Vec<String> = (0..10)
        .map(|i| keys.mint(&format!("v{i}"), "read"))
        .collect();
    let revoked: Vec<String> = (0..10)
        .map(|i| keys.mint(&format!("r{i}"), "read"))
        .collect();
    for t in &revoked {
        a.logout.revoke(&claims(&keys, t)).await.unwrap();
    }
    for t in &revoked {
        let start = Instant::now();
        while get(&b.svc, t).await != StatusCode::UNAUTHORIZED {
            assert!(start.elapsed() < Duration::from_secs(1));
        }
    }

    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Bounded load: 4 workers looping over all tokens on both instances until told to stop,
    // for at most 30 s.
    let mut workers = Vec::new();
    for w in 0..4 {
        let svcs = [a.svc.clone(), b.svc.clone()];
        let valid = valid.clone();
        let revoked = revoked.clone();
        let (down, stop) = (down.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seen = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                i += 1;
                let svc = &svcs[i % 2];
                let (token, is_revoked) = if i % 3 == 0 {
                    (&revoked[i % revoked.len()], true)
                } else {
                    (&valid[i % valid.len()], false)
                };
                let started = Instant::now();
                let status = get(svc, token).await;
                let took = started.elapsed();
                seen.push((
                    down.load(Ordering::Relaxed),
                    Instant::now(),
                    is_revoked,
                    status,
                    took,
                ));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill_begins = Instant::now();
    server.kill();
    down.store(true, Ordering::Relaxed);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Requests completing from here on may already see the new server.
    let restart_begins = Instant::now();
    server.restart();
    let restarted_at = Instant::now();
    down.store(false, Ordering::Relaxed);
    // Wait for recovery, then a little more load.
    let mut recovered_after = None;
    while restarted_at.elapsed() < Duration::from_secs(10) {
        if get(&a.svc, &valid[0]).await == StatusCode::OK
            && get(&b.svc, &valid[1]).await == StatusCode::OK
        {
            recovered_after = Some(restarted_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let recovered_after = recovered_after.expect("back to 200 within 10 s of the restart");
    eprintln!(
        "recovered {recovered_after:?} after restart, {} requests",
        all.len()
    );

    let revoked_accepted = all.iter().filter(|s| s.2 && s.3 == StatusCode::OK).count();
    assert_eq!(revoked_accepted, 0, "a revoked token was accepted");
    for (_, _, _, status, took) in &all {
        assert!(
            matches!(
                *status,
                StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "unexpected status {status}"
        );
        assert!(
            *took < Duration::from_secs(3),
            "a request hung for {took:?}"
        );
    }
    // While down (past the first second), valid tokens get 503, never 200 or 500.
    let down_valid: Vec<_> = all
        .iter()
        .filter(|s| {
            !s.2 && s.1.duration_since(killed_at) > Duration::from_secs(1) && s.1 < restart_begins
        })
        .collect();
    assert!(!down_valid.is_empty());
    assert!(
        down_valid
            .iter()
            .all(|s| s.3 == StatusCode::SERVICE_UNAVAILABLE),
        "valid tokens while Redis is down: {:?}",
        down_valid
            .iter()
            .map(|s| s.3)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let up_before = all
        .iter()
        .filter(|s| !s.2 && s.1 < kill_begins)
        .collect::<Vec<_>>();
    assert!(
        up_before.iter().all(|s| s.3 == StatusCode::OK),
        "all valid before the kill: {:?}",
        up_before
            .iter()
            .map(|s| s.3)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        recovered_after < Duration::from_secs(5),
        "recovery took {recovered_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_is_reseeded() {
    let mut server = RedisServer::start();
    let keys = TestKeys::hs256();
    let a = instance(&keys, &server.url()).await;
    let token = keys.mint("alice", "read");
    let other = keys.mint("bob", "read");
    a.logout.revoke(&claims(&keys, &token)).await.unwrap();
    let mallory = keys.mint("mallory", "read");
    a.logout
        .revoke_user("mallory", Duration::from_secs(600))
        .await
        .unwrap();
    let key = a
        .store
        .token_key(Some("alice"), &claims(&keys, &token).jti.clone().unwrap());
    assert_eq!(server.cli(&["EXISTS", &key]).unwrap().trim(), "1");

    server.kill();
    server.restart();
    assert_eq!(
        server.cli(&["DBSIZE"]).unwrap().trim(),
        "0",
        "restarted empty"
    );
    // Instance A notices the lost data and writes back what it knows.
    let start = Instant::now();
    while server.cli(&["EXISTS", &key]).unwrap().trim() != "1" {
        assert!(start.elapsed() < Duration::from_secs(10), "not re-seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.store.wait_live(Duration::from_secs(5)).await);
    assert_eq!(get(&a.svc, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&a.svc, &other).await, StatusCode::OK);
    // A new instance, which never saw the revocations, enforces them from Redis.
    let c = instance(&keys, &server.url()).await;
    assert_eq!(get(&c.svc, &token).await, StatusCode::UNAUTHORIZED);
    // And the user revocation: mallory's token from before it stays refused.
    assert_eq!(get(&c.svc, &mallory).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&c.svc, &other).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_is_opt_in() {
    let mut server = RedisServer::start();
    let keys = TestKeys::hs256();
    let open =
        RedisRevocationStore::connect(&server.url(), RedisStoreConfig::default().fail_open(true))
            .await
            .unwrap();
    let open = instance_with(&keys, open).await;
    let closed = instance(&keys, &server.url()).await;
    let revoked = keys.mint("r", "read");
    closed
        .logout
        .revoke(&claims(&keys, &revoked))
        .await
        .unwrap();
    let start = Instant::now();
    while get(&open.svc, &revoked).await != StatusCode::UNAUTHORIZED {
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = keys.mint("f", "read");
    assert_eq!(
        get(&closed.svc, &fresh).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&open.svc, &fresh).await,
        StatusCode::OK,
        "fail-open accepts"
    );
    assert_eq!(
        get(&open.svc, &revoked).await,
        StatusCode::UNAUTHORIZED,
        "known revocations still hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_revocation_across_slots() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
    let keys = TestKeys::hs256();
    let x = RedisRevocationStore::connect_cluster(&nodes, RedisStoreConfig::default())
        .await
        .unwrap();
    let y = RedisRevocationStore::connect_cluster(&nodes[1..], RedisStoreConfig::default())
        .await
        .unwrap();
    let x = instance_with(&keys, x).await;
    let y = instance_with(&keys, y).await;

    let users: Vec<String> = (0..12).map(|i| format!("member-{i}")).collect();
    let tokens: Vec<String> = users.iter().map(|u| keys.mint(u, "read")).collect();
    for t in &tokens {
        assert_eq!(get(&y.svc, t).await, StatusCode::OK);
    }
    for t in &tokens {
        x.logout.revoke(&claims(&keys, t)).await.unwrap();
    }
    x.logout
        .revoke_user("member-0", Duration::from_secs(600))
        .await
        .unwrap();
    for t in &tokens {
        let start = Instant::now();
        while get(&y.svc, t).await != StatusCode::UNAUTHORIZED {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "not seen through the cluster"
            );
        }
    }
    // A fresh instance reads the keys from their slots directly.
    let z = RedisRevocationStore::connect_cluster(&nodes[2..], RedisStoreConfig::default())
        .await
        .unwrap();
    let z = instance_with(&keys, z).await;
    for t in &tokens {
        assert_eq!(get(&z.svc, t).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        get(&z.svc, &keys.mint("member-99", "read")).await,
        StatusCode::OK
    );
    // The keys are spread over several masters, each user's keys on one slot.
    let masters_with_keys = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["DBSIZE"]).unwrap().trim() != "0")
        .count();
    assert!(
        masters_with_keys >= 2,
        "keys on {masters_with_keys} masters"
    );
    let slot = |k: &str| cluster.nodes[0].cli(&["CLUSTER", "KEYSLOT", k]).unwrap();
    assert_eq!(
        slot(&x.store.token_key(Some("member-0"), "any")),
        slot(&x.store.user_key("member-0"))
    );
}

async fn status(store: &RedisRevocationStore, token: &TokenRef<'_>) -> RevocationStatus {
    match store.check(token) {
        RevocationCheck::Ready(answer) => answer.unwrap(),
        RevocationCheck::Pending(answer) => answer.await.unwrap(),
    }
}

async fn live_store(server: &RedisServer) -> RedisRevocationStore {
    let store = RedisRevocationStore::connect(&server.url(), config())
        .await
        .unwrap();
    assert!(store.wait_live(Duration::from_secs(10)).await, "live");
    store
}

/// Polls until `store` answers `expected` for `token`, up to 5 s.
async fn eventually(
    store: &RedisRevocationStore,
    token: &TokenRef<'_>,
    expected: RevocationStatus,
) {
    let start = Instant::now();
    while status(store, token).await != expected {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{token:?} stayed not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every dimension of a token is confirmed before the cache answers for it: an instance that
/// subscribed after a session was revoked, and has confirmed another session of the same
/// user, still refuses the revoked session's tokens, with or without `jti`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_revoked_before_subscribing_is_refused() {
    let server = RedisServer::start();
    let a = live_store(&server).await;
    let exp = now_secs() + 600;
    a.revoke_session(Some("alice"), "s-revoked", exp)
        .await
        .unwrap();
    let b = live_store(&server).await;
    let token = |jti, sid| {
        TokenRef::new()
            .jti(jti)
            .sub(Some("alice"))
            .sid(Some(sid))
            .iat(Some(now_secs()))
            .exp(Some(exp))
    };
    for jti in [None, Some("j-1")] {
        let live = token(jti, "s-live");
        let dead = token(jti, "s-revoked");
        // Twice: the second answer comes from the cache.
        assert_eq!(status(&b, &live).await, RevocationStatus::Active, "{jti:?}");
        assert_eq!(status(&b, &live).await, RevocationStatus::Active, "{jti:?}");
        assert_eq!(
            status(&b, &dead).await,
            RevocationStatus::Revoked,
            "{jti:?}"
        );
        assert_eq!(
            status(&a, &dead).await,
            RevocationStatus::Revoked,
            "{jti:?}"
        );
    }
}

/// A revocation Redis refused is reported failed, is not enforced anywhere meanwhile (so
/// every instance answers alike and the caller's retry gets through), is retried in the
/// background, and once Redis takes writes again it is durable and published: every
/// instance refuses the token, including one started afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_revocation_is_retried_until_durable() {
    let server = RedisServer::start();
    let a = live_store(&server).await;
    let b = live_store(&server).await;
    let exp = now_secs() + 600;
    let token = TokenRef::new()
        .jti(Some("j-oom"))
        .sub(Some("dave"))
        .sid(None)
        .iat(Some(now_secs()))
        .exp(Some(exp));
    assert_eq!(status(&a, &token).await, RevocationStatus::Active);
    assert_eq!(status(&b, &token).await, RevocationStatus::Active);
    let cli = |args: &[&str]| assert_eq!(server.cli(args).unwrap().trim(), "OK", "{args:?}");
    cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let err = a.revoke_token(token).await.unwrap_err();
    assert!(err.to_string().contains("OOM"), "{err}");
    assert_eq!(a.pending_retries(), 1);
    // A second failure of the same revocation is not queued twice.
    a.revoke_token(token).await.unwrap_err();
    assert_eq!(a.pending_retries(), 1);
    assert_eq!(status(&a, &token).await, RevocationStatus::Active);
    assert_eq!(status(&b, &token).await, RevocationStatus::Active);
    cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert!(a.wait_retries_done(Duration::from_secs(10)).await);
    assert_eq!(status(&a, &token).await, RevocationStatus::Revoked);
    eventually(&b, &token, RevocationStatus::Revoked).await;
    let c = live_store(&server).await;
    assert_eq!(status(&c, &token).await, RevocationStatus::Revoked);
}
