//! The SQL revocation store through the layer, on a real PostgreSQL server (killed and
//! restarted mid-test) and on SQLite files: propagation between instances, no query per
//! request, the database down (503 with `Retry-After`, recovery without restart), the listener
//! cut while the database stays up, durability across crashes of the app and of the database,
//! purges in bounded batches, and revocations too long for one notification.

#![cfg(any(feature = "postgres", feature = "sqlite"))]

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::util::BoxCloneSyncService;
use tower::{ServiceExt, service_fn};
use tower_token_auth::revocation::{
    RevocationCheck, RevocationStatus, RevocationStore, SqlRevocationConfig, SqlRevocationStore,
    TokenRef,
};
use tower_token_auth::sql::Database;
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AuthBody, Claims, JwtAuthLayer, Logout};

type Svc = BoxCloneSyncService<Request<Full<Bytes>>, Response<AuthBody<Full<Bytes>>>, Infallible>;

/// One service instance: the layer with its own store and pool, as a separate process has.
struct Instance {
    svc: Svc,
    logout: Logout,
    store: SqlRevocationStore,
}

/// Generous timeouts: the machine may be busy compiling while these tests run, and a slow
/// answer must not be mistaken for an outage. A short staleness bound keeps the fault tests
/// short.
fn config() -> SqlRevocationConfig {
    SqlRevocationConfig::default()
        .op_timeout(Duration::from_secs(2))
        .staleness_bound(Duration::from_millis(800))
}

async fn instance(keys: &TestKeys, url: &str, config: SqlRevocationConfig) -> Instance {
    let db = Database::connect(url).await.unwrap();
    let store = SqlRevocationStore::new(db, config);
    assert!(store.wait_live(Duration::from_secs(10)).await, "feed live");
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

async fn send(svc: &Svc, token: &str) -> Response<AuthBody<Full<Bytes>>> {
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap()
}

async fn get(svc: &Svc, token: &str) -> StatusCode {
    send(svc, token).await.status()
}

fn claims(keys: &TestKeys, token: &str) -> Claims {
    keys.verifier().verify(token).unwrap()
}

async fn until_status(svc: &Svc, token: &str, want: StatusCode, limit: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let got = get(svc, token).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what}: still {got} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_ready(store: &SqlRevocationStore, token: TokenRef<'_>) -> bool {
    matches!(store.check(&token), RevocationCheck::Ready(_))
}

async fn status(store: &SqlRevocationStore, token: TokenRef<'_>) -> RevocationStatus {
    match store.check(&token) {
        RevocationCheck::Ready(r) => r.unwrap(),
        RevocationCheck::Pending(f) => f.await.unwrap(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::postgres_server::PostgresServer;
    use super::*;

    /// Logout on A reaches B through NOTIFY; B answers every other request from memory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logout_on_one_instance_is_seen_by_the_other() {
        let server = PostgresServer::start();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &server.url(), config()).await;
        let b = instance(&keys, &server.url(), config()).await;
        for i in 0..20 {
            let token = keys.mint(&format!("user{i}"), "read");
            assert_eq!(get(&a.svc, &token).await, StatusCode::OK);
            assert_eq!(get(&b.svc, &token).await, StatusCode::OK);
            a.logout.revoke(&claims(&keys, &token)).await.unwrap();
            assert_eq!(get(&a.svc, &token).await, StatusCode::UNAUTHORIZED);
            until_status(
                &b.svc,
                &token,
                StatusCode::UNAUTHORIZED,
                Duration::from_secs(1),
                "B after A's logout",
            )
            .await;
        }
        // Log out everywhere on B: A refuses the user's older tokens.
        let old = keys.mint("carol", "read");
        assert_eq!(get(&a.svc, &old).await, StatusCode::OK);
        b.logout
            .revoke_user("carol", Duration::from_secs(600))
            .await
            .unwrap();
        until_status(
            &a.svc,
            &old,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(1),
            "A after B's log out everywhere",
        )
        .await;
        assert_eq!(
            get(&a.svc, &keys.mint("carol", "read")).await,
            StatusCode::OK,
            "a login after it"
        );
    }

    /// While live, a check is answered without I/O: with the table renamed away under the
    /// store (any query on it would fail, and a failed read answers 503), 500 requests with a
    /// fresh token and 500 with a known one still answer 200. (PostgreSQL's statistics are
    /// flushed up to seconds late, so counting scans would be racy; this cannot be.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steady_state_checks_make_no_query() {
        let server = PostgresServer::start();
        let keys = TestKeys::hs256();
        // A staleness bound no scheduling hiccup on a busy machine reaches: the test is about
        // the live path.
        let live = config().staleness_bound(Duration::from_secs(30));
        let a = instance(&keys, &server.url(), live).await;
        let known = keys.mint("alice", "read");
        assert_eq!(get(&a.svc, &known).await, StatusCode::OK);
        let c = claims(&keys, &known);
        let t = TokenRef::new()
            .jti(c.jti.as_deref())
            .sub(c.sub.as_deref())
            .iat(c.iat)
            .exp(c.exp);
        assert!(is_ready(&a.store, t), "answered without I/O");
        server
            .psql("ALTER TABLE tta_revocations RENAME TO tta_revocations_away")
            .unwrap();
        for i in 0..500 {
            assert_eq!(get(&a.svc, &known).await, StatusCode::OK);
            let fresh = keys.mint(&format!("user{i}"), "read");
            assert_eq!(
                get(&a.svc, &fresh).await,
                StatusCode::OK,
                "no query for a new token"
            );
        }
        assert!(a.store.is_live());
        // The same requests through a store that is not live do read the table: they fail
        // closed, which shows the rename would have been noticed.
        let stale = SqlRevocationStore::new(
            Database::connect(&server.url()).await.unwrap(),
            config().heartbeat_interval(Duration::from_secs(3600)),
        );
        let fresh = keys.mint("bob", "read");
        let c = claims(&keys, &fresh);
        let t = TokenRef::new()
            .jti(c.jti.as_deref())
            .sub(c.sub.as_deref())
            .iat(c.iat);
        if !stale.is_live() {
            match stale.check(&t) {
                RevocationCheck::Pending(f) => assert!(f.await.is_err(), "a direct read fails"),
                RevocationCheck::Ready(r) => panic!("a store that is not live answered {r:?}"),
            }
        }
        server
            .psql("ALTER TABLE tta_revocations_away RENAME TO tta_revocations")
            .unwrap();
    }

    /// PostgreSQL killed: a token the instance cannot vouch for gets 503 with `Retry-After`
    /// (never 200, never 500); a known revocation still gets 401; a revocation is reported
    /// failed. Restarted: the same instance recovers by itself and sees what was committed
    /// meanwhile by another instance.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn database_down_fails_closed_and_recovers_without_restart() {
        let mut server = PostgresServer::start();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &server.url(), config()).await;
        let revoked = keys.mint("mallory", "read");
        a.logout.revoke(&claims(&keys, &revoked)).await.unwrap();
        let fresh = keys.mint("alice", "read");

        server.kill();
        let start = Instant::now();
        while a.store.is_live() {
            assert!(start.elapsed() < Duration::from_secs(5), "still live");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let res = send(&a.svc, &fresh).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(get(&a.svc, &revoked).await, StatusCode::UNAUTHORIZED);
        let during = keys.mint("bob", "read");
        assert!(
            a.logout.revoke(&claims(&keys, &during)).await.is_err(),
            "a revocation the database did not take is reported failed"
        );

        server.restart();
        // Another instance revokes while A's listener is still reconnecting.
        let b = instance(&keys, &server.url(), config()).await;
        b.logout.revoke(&claims(&keys, &fresh)).await.unwrap();
        assert!(
            a.store.wait_live(Duration::from_secs(10)).await,
            "A recovers"
        );
        until_status(
            &a.svc,
            &fresh,
            StatusCode::UNAUTHORIZED,
            Duration::from_secs(2),
            "A sees B's revocation",
        )
        .await;
        assert_eq!(get(&a.svc, &during).await, StatusCode::OK);
        // The caller's retry of the failed revocation now goes through.
        a.logout.revoke(&claims(&keys, &during)).await.unwrap();
        assert_eq!(get(&a.svc, &during).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            get(&a.svc, &keys.mint("dave", "read")).await,
            StatusCode::OK
        );
    }

    /// The listener's connection is terminated while the database stays up: notifications
    /// sent meanwhile are lost, so the instance reads directly until it has listened and
    /// loaded the table again; it misses nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listener_cut_misses_nothing() {
        let server = PostgresServer::start();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &server.url(), config()).await;
        let b = instance(&keys, &server.url(), config()).await;
        let tokens: Vec<String> = (0..20)
            .map(|i| keys.mint(&format!("u{i}"), "read"))
            .collect();
        for t in &tokens {
            assert_eq!(get(&b.svc, t).await, StatusCode::OK);
        }
        for round in 0..3 {
            let killed = server
                .psql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE query LIKE 'LISTEN%'",
                )
                .unwrap();
            assert_ne!(killed.trim(), "0", "round {round}: a listener was cut");
            // Tokens 0, 4, 8… in round 0, 1, 5, 9… in round 1, 2, 6… in round 2.
            for t in tokens.iter().skip(round).step_by(4) {
                a.logout.revoke(&claims(&keys, t)).await.unwrap();
            }
        }
        assert!(b.store.wait_live(Duration::from_secs(10)).await);
        for (i, t) in tokens.iter().enumerate() {
            let want = if i % 4 == 3 {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            until_status(&b.svc, t, want, Duration::from_secs(2), "B after the cuts").await;
        }
    }

    /// A revocation that reported success survives a crash of the app (its store dropped)
    /// and of the database (SIGKILL right after): a new instance refuses the token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_revocation_survives_crashes() {
        let mut server = PostgresServer::start();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &server.url(), config()).await;
        let token = keys.mint("alice", "read");
        let session = keys.mint("sam", "read");
        a.logout.revoke(&claims(&keys, &token)).await.unwrap();
        a.store
            .revoke_session(Some("sam"), "family-1", now() + 600)
            .await
            .unwrap();
        a.logout
            .revoke_user("mallory", Duration::from_secs(600))
            .await
            .unwrap();
        drop(a);
        server.kill();
        server.restart();
        let c = instance(&keys, &server.url(), config()).await;
        assert_eq!(get(&c.svc, &token).await, StatusCode::UNAUTHORIZED);
        assert_eq!(get(&c.svc, &session).await, StatusCode::OK);
        let sid = TokenRef::new()
            .jti("x")
            .sub("sam")
            .sid("family-1")
            .iat(now());
        assert_eq!(status(&c.store, sid).await, RevocationStatus::Revoked);
        let mallory = TokenRef::new().jti("m").sub("mallory").iat(now() - 5);
        assert_eq!(status(&c.store, mallory).await, RevocationStatus::Revoked);
    }

    /// A `jti` too long for one notification (8000 bytes) still reaches the other instance:
    /// it is told to load the table again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocation_too_long_to_notify_still_propagates() {
        let server = PostgresServer::start();
        let a = SqlRevocationStore::new(Database::connect(&server.url()).await.unwrap(), config());
        let b = SqlRevocationStore::new(Database::connect(&server.url()).await.unwrap(), config());
        assert!(a.wait_live(Duration::from_secs(10)).await);
        assert!(b.wait_live(Duration::from_secs(10)).await);
        let jti = "j".repeat(9000);
        let token = TokenRef::new()
            .jti(jti.as_str())
            .sub("alice")
            .exp(now() + 600);
        assert_eq!(status(&b, token).await, RevocationStatus::Active);
        a.revoke_token(token).await.unwrap();
        let start = Instant::now();
        while status(&b, token).await != RevocationStatus::Revoked {
            assert!(start.elapsed() < Duration::from_secs(2), "not propagated");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Rows whose tokens have all expired go, in batches smaller than their number; live
    /// rows (and rows within the leeway grace) stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn purge_deletes_expired_rows_in_batches() {
        let server = PostgresServer::start();
        let store = SqlRevocationStore::new(
            Database::connect(&server.url()).await.unwrap(),
            config().purge_interval(None).purge_batch(100),
        );
        assert!(store.wait_live(Duration::from_secs(10)).await);
        let dead = now() - 3600;
        server
            .psql(&format!(
                "INSERT INTO tta_revocations (kind, id, until_s) \
                 SELECT 't', 'old' || g, {dead} FROM generate_series(1, 350) g"
            ))
            .unwrap();
        store
            .revoke_token(TokenRef::new().jti("live").exp(now() + 600))
            .await
            .unwrap();
        store
            .revoke_token(TokenRef::new().jti("grace").exp(now() - 10))
            .await
            .unwrap();
        assert_eq!(store.purge_expired().await.unwrap(), 350);
        let left = server
            .psql("SELECT string_agg(id, ',' ORDER BY id) FROM tta_revocations")
            .unwrap();
        assert_eq!(left.trim(), "grace,live");
        assert_eq!(store.purge_expired().await.unwrap(), 0);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::sql_support::TempSqlite;
    use super::*;

    /// Revocations survive a restart of the app: a new pool on the same file refuses them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocations_survive_a_restart() {
        let file = TempSqlite::new();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &file.url(), config()).await;
        let token = keys.mint("alice", "read");
        let mallory = keys.mint("mallory", "read");
        a.logout.revoke(&claims(&keys, &token)).await.unwrap();
        a.logout
            .revoke_user("mallory", Duration::from_secs(600))
            .await
            .unwrap();
        drop(a);
        let b = instance(&keys, &file.url(), config()).await;
        assert_eq!(get(&b.svc, &token).await, StatusCode::UNAUTHORIZED);
        assert_eq!(get(&b.svc, &mallory).await, StatusCode::UNAUTHORIZED);
        assert_eq!(get(&b.svc, &keys.mint("bob", "read")).await, StatusCode::OK);
    }

    /// Two processes on one file: each sees the other's revocations by polling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_sharing_a_file_see_each_other() {
        let file = TempSqlite::new();
        let keys = TestKeys::hs256();
        let a = instance(&keys, &file.url(), config()).await;
        let b = instance(&keys, &file.url(), config()).await;
        for i in 0..10 {
            let token = keys.mint(&format!("user{i}"), "read");
            assert_eq!(get(&b.svc, &token).await, StatusCode::OK);
            a.logout.revoke(&claims(&keys, &token)).await.unwrap();
            until_status(
                &b.svc,
                &token,
                StatusCode::UNAUTHORIZED,
                Duration::from_secs(2),
                "B after A's logout",
            )
            .await;
        }
    }
}
