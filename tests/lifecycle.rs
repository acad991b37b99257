//! The access + refresh lifecycle, one suite run against the memory stores, against real
//! Redis (refresh store and revocation store), and with the SQL refresh store on PostgreSQL and
//! on SQLite: rotation, reuse detection, revocation endpoint, logout, logout everywhere, the
//! grace window, and 50 concurrent refreshes.

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceExt, service_fn};
use tower_token_auth::endpoint::{RevocationEndpoint, TokenEndpoint};
use tower_token_auth::refresh::RefreshStore;
use tower_token_auth::revocation::RevocationStore;
use tower_token_auth::testing::{TEST_ISSUER, TestKeys};
use tower_token_auth::{Claims, GrantError, JwtAuthLayer, TokenLifecycle, TokenPair, Verifier};

/// A service instance: the layer and the lifecycle share one revocation store.
struct App {
    keys: TestKeys,
    layer: JwtAuthLayer,
    lifecycle: TokenLifecycle,
}

fn app(
    refresh: Arc<dyn RefreshStore>,
    revocation: Arc<dyn RevocationStore>,
    access_ttl: Duration,
    grace: Duration,
) -> App {
    let keys = TestKeys::hs256();
    let verifier = Verifier::builder(keys.key_set())
        .issuer(TEST_ISSUER)
        .audience(TEST_ISSUER)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let layer =
        JwtAuthLayer::new(verifier.clone()).with_shared_revocation_store(revocation.clone());
    let issuer = keys.issuer().ttl(access_ttl);
    let lifecycle = TokenLifecycle::new(issuer, verifier, refresh, revocation).reuse_grace(grace);
    App {
        keys,
        layer,
        lifecycle,
    }
}

impl App {
    async fn get(&self, token: &str) -> StatusCode {
        let svc = tower::ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(service_fn(|_r: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        let req = Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        svc.oneshot(req).await.unwrap().status()
    }

    async fn refresh(&self, pair: &TokenPair) -> Result<TokenPair, GrantError> {
        self.lifecycle.refresh(&pair.refresh_token, None).await
    }

    fn claims(&self, token: &str) -> Claims {
        self.keys.verifier().verify(token).unwrap()
    }
}

async fn full_lifecycle(app: App) {
    let first = app
        .lifecycle
        .issue_pair("alice", "read write")
        .await
        .unwrap();
    assert_eq!(app.get(&first.access.token).await, StatusCode::OK);
    assert_eq!(
        first.refresh_token.len(),
        66,
        "128-bit family + 256-bit secret"
    );
    assert_eq!(
        app.claims(&first.access.token).sid.as_deref(),
        first.refresh_token.split('.').next()
    );

    // The access token expires (1 s TTL, no leeway).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.get(&first.access.token).await, StatusCode::UNAUTHORIZED);

    let second = app.refresh(&first).await.unwrap();
    assert_eq!(second.scope, "read write");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(app.get(&second.access.token).await, StatusCode::OK);

    // The old refresh token is spent: presenting it again is reuse.
    assert!(matches!(
        app.refresh(&first).await,
        Err(GrantError::InvalidGrant)
    ));
    // The whole family is revoked, including the access token minted from it...
    assert_eq!(
        app.get(&second.access.token).await,
        StatusCode::UNAUTHORIZED
    );
    // ...and the newest refresh token.
    assert!(matches!(
        app.refresh(&second).await,
        Err(GrantError::InvalidGrant)
    ));

    // A fresh login starts a new family that works.
    let third = app
        .lifecycle
        .issue_pair("alice", "read write")
        .await
        .unwrap();
    assert_eq!(app.get(&third.access.token).await, StatusCode::OK);
    assert!(app.refresh(&third).await.is_ok());
}

async fn concurrent_refreshes_yield_at_most_one_pair(app: App) {
    let app = Arc::new(app);
    let pair = app.lifecycle.issue_pair("bob", "read").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, token) = (app.clone(), pair.refresh_token.clone());
        tasks.push(tokio::spawn(async move {
            app.lifecycle.refresh(&token, None).await
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => issued.push(p),
            Err(GrantError::InvalidGrant) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(issued.len() <= 1, "{} pairs issued", issued.len());
    // 49 replays revoked the family: whatever was issued is dead too.
    for p in &issued {
        assert_eq!(app.get(&p.access.token).await, StatusCode::UNAUTHORIZED);
        assert!(app.refresh(p).await.is_err());
    }
    assert!(app.refresh(&pair).await.is_err());
}

async fn revocation_endpoint(app: App) {
    let endpoint = RevocationEndpoint::new(app.lifecycle.clone());
    let revoke = |body: String| {
        let endpoint = endpoint.clone();
        async move {
            let req = Request::post("/revoke")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            endpoint.oneshot(req).await.unwrap().status()
        }
    };
    // A refresh token: its family and the family's access tokens end.
    let pair = app.lifecycle.issue_pair("carol", "read").await.unwrap();
    let hint = format!("token={}&token_type_hint=refresh_token", pair.refresh_token);
    assert_eq!(revoke(hint).await, StatusCode::OK);
    assert!(app.refresh(&pair).await.is_err());
    assert_eq!(app.get(&pair.access.token).await, StatusCode::UNAUTHORIZED);

    // An access token, without hint: only that token ends.
    let pair = app.lifecycle.issue_pair("carol", "read").await.unwrap();
    assert_eq!(
        revoke(format!("token={}", pair.access.token)).await,
        StatusCode::OK
    );
    assert_eq!(app.get(&pair.access.token).await, StatusCode::UNAUTHORIZED);
    let renewed = app.refresh(&pair).await.unwrap();
    assert_eq!(app.get(&renewed.access.token).await, StatusCode::OK);

    // Unknown and garbage tokens: 200 all the same (RFC 7009 §2.2).
    for unknown in [
        "nope",
        "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "a.b.c",
    ] {
        assert_eq!(revoke(format!("token={unknown}")).await, StatusCode::OK);
    }
    assert_eq!(
        revoke(String::new()).await,
        StatusCode::BAD_REQUEST,
        "missing token"
    );
}

async fn logout_and_logout_everywhere(app: App) {
    let a = app.lifecycle.issue_pair("dave", "read").await.unwrap();
    let b = app.lifecycle.issue_pair("dave", "read").await.unwrap();
    let other = app.lifecycle.issue_pair("erin", "read").await.unwrap();

    // Logout in session A ends A (access and refresh), not B.
    app.lifecycle
        .logout(&app.claims(&a.access.token))
        .await
        .unwrap();
    assert_eq!(app.get(&a.access.token).await, StatusCode::UNAUTHORIZED);
    assert!(app.refresh(&a).await.is_err());
    assert_eq!(app.get(&b.access.token).await, StatusCode::OK);

    // Log out everywhere (password change) ends every session of dave.
    app.lifecycle.logout_everywhere("dave").await.unwrap();
    assert_eq!(app.get(&b.access.token).await, StatusCode::UNAUTHORIZED);
    assert!(app.refresh(&b).await.is_err());
    assert_eq!(app.get(&other.access.token).await, StatusCode::OK);
    assert!(app.refresh(&other).await.is_ok());
    // Logging in again right away works: the revocation's second is over when it returns.
    let again = app.lifecycle.issue_pair("dave", "read").await.unwrap();
    assert_eq!(app.get(&again.access.token).await, StatusCode::OK);
}

async fn grace_window(app: App) {
    let pair = app.lifecycle.issue_pair("frank", "read").await.unwrap();
    let next = app.refresh(&pair).await.unwrap();
    // A retry right after: refused, but the family survives.
    assert!(matches!(
        app.refresh(&pair).await,
        Err(GrantError::InvalidGrant)
    ));
    assert_eq!(app.get(&next.access.token).await, StatusCode::OK);
    // After the window the replay is treated as theft.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(app.refresh(&pair).await.is_err());
    assert_eq!(app.get(&next.access.token).await, StatusCode::UNAUTHORIZED);
    assert!(app.refresh(&next).await.is_err());
}

async fn scope_narrowing(app: App) {
    let pair = app
        .lifecycle
        .issue_pair("gina", "read write")
        .await
        .unwrap();
    assert!(matches!(
        app.lifecycle
            .refresh(&pair.refresh_token, Some("read admin"))
            .await,
        Err(GrantError::InvalidScope)
    ));
    // The refused request did not spend the token.
    let narrowed = app
        .lifecycle
        .refresh(&pair.refresh_token, Some("read"))
        .await
        .unwrap();
    assert_eq!(narrowed.scope, "read");
    assert_eq!(
        app.claims(&narrowed.access.token).scope.as_deref(),
        Some("read")
    );
}

async fn token_endpoint_shapes(app: App) {
    let endpoint = TokenEndpoint::new(app.lifecycle.clone());
    let call = |ct: &'static str, body: String, method: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let req = Request::builder()
                .method(method)
                .uri("/token")
                .header(header::CONTENT_TYPE, ct)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let res = endpoint.oneshot(req).await.unwrap();
            let status = res.status();
            let no_store = res.headers().get(header::CACHE_CONTROL).cloned();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert_eq!(
                no_store.as_ref().map(|v| v.to_str().unwrap()),
                Some("no-store")
            );
            (status, json)
        }
    };
    let form = "application/x-www-form-urlencoded";
    let pair = app.lifecycle.issue_pair("hugo", "read").await.unwrap();

    let (status, json) = call(
        form,
        format!(
            "grant_type=refresh_token&refresh_token={}",
            pair.refresh_token
        ),
        "POST",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["scope"], "read");
    assert!(json["expires_in"].as_u64().unwrap() > 0);
    let rotated = json["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get(json["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    // JSON works too.
    let body =
        serde_json::json!({"grant_type": "refresh_token", "refresh_token": rotated}).to_string();
    let (status, json) = call("application/json", body, "POST").await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let oversize = "A".repeat(5000);
    let cases: Vec<(&str, String, &str, StatusCode, &str)> = vec![
        (
            form,
            "refresh_token=x".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "grant_type=".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "grant_type=password&username=a&password=b".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            form,
            "grant_type=refresh_token".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "grant_type=refresh_token&refresh_token=".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "grant_type=refresh_token&refresh_token=garbage".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            form,
            format!("grant_type=refresh_token&refresh_token={oversize}"),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            form,
            format!(
                "grant_type=refresh_token&refresh_token={}",
                pair.refresh_token
            ),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            form,
            "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "text/plain",
            "grant_type=refresh_token&refresh_token=x".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "application/json",
            "{\"grant_type\":1}".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "application/json",
            "not json".into(),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "x".repeat(9000),
            "POST",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            form,
            "grant_type=refresh_token".into(),
            "GET",
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
        ),
    ];
    for (ct, body, method, status, code) in cases {
        let shown = body.chars().take(60).collect::<String>();
        let (got, json) = call(ct, body, method).await;
        assert_eq!(got, status, "{ct} {shown}: {json}");
        assert_eq!(json["error"], code, "{ct} {shown}");
    }
}

macro_rules! suite {
    ($($test:ident $(($ttl:expr, $grace:expr))?),* $(,)?) => {
        mod memory {
            use super::*;
            use tower_token_auth::MemoryStore;
            use tower_token_auth::refresh::MemoryRefreshStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    #[allow(unused_mut, unused_assignments)]
                    let (mut ttl, mut grace) = (Duration::from_secs(600), Duration::ZERO);
                    $( (ttl, grace) = ($ttl, $grace); )?
                    super::$test(app(Arc::new(MemoryRefreshStore::new()), Arc::new(MemoryStore::new()), ttl, grace)).await;
                }
            )*
        }

        mod redis {
            use super::*;
            use super::redis_server::RedisServer;
            use tower_token_auth::refresh::RedisRefreshStore;
            use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    #[allow(unused_mut, unused_assignments)]
                    let (mut ttl, mut grace) = (Duration::from_secs(600), Duration::ZERO);
                    $( (ttl, grace) = ($ttl, $grace); )?
                    let server = RedisServer::start();
                    let refresh = RedisRefreshStore::connect(&server.url(), "tta:", Duration::from_millis(500)).unwrap();
                    let revocation = RedisRevocationStore::connect(&server.url(), RedisStoreConfig::default()).await.unwrap();
                    assert!(revocation.wait_live(Duration::from_secs(5)).await);
                    super::$test(app(Arc::new(refresh), Arc::new(revocation), ttl, grace)).await;
                    drop(server);
                }
            )*
        }

        // The SQL refresh store; revocations in memory (the SQL revocation store has its own
        // suite).
        #[cfg(feature = "postgres")]
        mod postgres {
            use super::*;
            use super::postgres_server::PostgresServer;
            use tower_token_auth::MemoryStore;
            use tower_token_auth::refresh::SqlRefreshStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    #[allow(unused_mut, unused_assignments)]
                    let (mut ttl, mut grace) = (Duration::from_secs(600), Duration::ZERO);
                    $( (ttl, grace) = ($ttl, $grace); )?
                    let server = PostgresServer::start();
                    let db = super::sql_support::connect_postgres(&server.url()).await;
                    let refresh = SqlRefreshStore::new(db);
                    super::$test(app(Arc::new(refresh), Arc::new(MemoryStore::new()), ttl, grace)).await;
                    drop(server);
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::*;
            use super::sql_support::TempSqlite;
            use tower_token_auth::MemoryStore;
            use tower_token_auth::refresh::SqlRefreshStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    #[allow(unused_mut, unused_assignments)]
                    let (mut ttl, mut grace) = (Duration::from_secs(600), Duration::ZERO);
                    $( (ttl, grace) = ($ttl, $grace); )?
                    let file = TempSqlite::new();
                    let refresh = SqlRefreshStore::new(file.connect().await);
                    super::$test(app(Arc::new(refresh), Arc::new(MemoryStore::new()), ttl, grace)).await;
                }
            )*
        }
    };
}

suite!(
    full_lifecycle(Duration::from_secs(1), Duration::ZERO),
    concurrent_refreshes_yield_at_most_one_pair,
    revocation_endpoint,
    logout_and_logout_everywhere,
    grace_window(Duration::from_secs(600), Duration::from_secs(1)),
    scope_narrowing,
    token_endpoint_shapes,
);

/// A browser whose access token expired logs out with only its refresh cookie.
#[tokio::test]
async fn revocation_endpoint_reads_the_refresh_cookie() {
    use tower_token_auth::endpoint::TokenCookies;
    use tower_token_auth::refresh::MemoryRefreshStore;
    let app = app(
        Arc::new(MemoryRefreshStore::new()),
        Arc::new(tower_token_auth::MemoryStore::new()),
        Duration::from_secs(600),
        Duration::ZERO,
    );
    let cookies = TokenCookies::new("/token").insecure_for_localhost();
    let endpoint = RevocationEndpoint::new(app.lifecycle.clone()).with_cookies(cookies);
    let pair = app.lifecycle.issue_pair("ivan", "read").await.unwrap();
    let req = Request::post("/token/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("refresh_token={}", pair.refresh_token),
        )
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = endpoint.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    assert_eq!(parts.status, StatusCode::OK, "{body:?}");
    let res = Response::from_parts(parts, ());
    let cleared: Vec<_> = res.headers().get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(cleared.len(), 2);
    assert!(
        cleared
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    assert!(app.refresh(&pair).await.is_err(), "the family is revoked");
    assert_eq!(app.get(&pair.access.token).await, StatusCode::UNAUTHORIZED);
}
