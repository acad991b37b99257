//! Remember-me through the real layers (`JwtAuthLayer` optional outside, `RememberMeLayer`
//! inside, an axum router): signed mode, and persistent mode with one shared suite on the
//! memory store, the Redis store, and the SQL store on PostgreSQL and on SQLite files (plus
//! the SQL store's purge, a PostgreSQL crash and a reopened SQLite file).

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::remember_me::{
    MemoryRememberMeStore, RememberMe, RememberMeStore, SeriesCheck, SeriesRecord, StaticUsers,
    UserRecord,
};
use tower_token_auth::revocation::{
    BoxFuture, RevocationCheck, RevocationError, RevocationStore, TokenRef,
};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, AuthStatus, Claims, JwtAuthLayer, MemoryStore};

struct Fixture {
    app: Router,
    users: StaticUsers,
    remember_me: RememberMe,
}

/// The app over a memory revocation store.
fn fixture(remember_me: impl FnOnce(StaticUsers) -> RememberMe) -> Fixture {
    fixture_with(remember_me, Arc::new(MemoryStore::new()), |r| r)
}

/// The app: `remember_me` (given the users) mints access tokens and revokes them in
/// `revocations`, the store the auth layer checks; `options` applies last.
fn fixture_with(
    remember_me: impl FnOnce(StaticUsers) -> RememberMe,
    revocations: Arc<dyn RevocationStore>,
    options: impl FnOnce(RememberMe) -> RememberMe,
) -> Fixture {
    let keys = TestKeys::hs256();
    let users = StaticUsers::new([
        UserRecord::new("alice", "v1", "read write"),
        UserRecord::new("bob", "v1", "read"),
    ]);
    let access = AccessCookie::new("access_token").secure(false);
    let remember_me = options(
        remember_me(users.clone())
            .cookie(AccessCookie::new("remember_me").secure(false))
            .mint_access_tokens(keys.issuer(), access.clone(), revocations.clone()),
    );
    let app = Router::new()
        .route(
            "/me",
            get(|c: Option<Claims>, s: AuthStatus| async move {
                match c {
                    Some(c) => format!(
                        "{} {:?} remembered={}",
                        c.sub.as_deref().unwrap_or(""),
                        s,
                        c.is_remembered()
                    ),
                    None => "anonymous".to_owned(),
                }
            }),
        )
        .route(
            "/protected",
            get(|c: Claims| async move { c.sub.clone().unwrap_or_default() }),
        )
        .route(
            "/sensitive",
            get(|c: Claims| async move { c.require_fresh_login().map(|()| "ok") }),
        )
        .route(
            "/logout",
            get(|| async {
                // A handler that clears the cookies itself has the last word.
                (
                    axum::response::AppendHeaders([
                        (header::SET_COOKIE, "remember_me=; Max-Age=0"),
                        (header::SET_COOKIE, "access_token=; Max-Age=0"),
                    ]),
                    "bye",
                )
            }),
        )
        .layer(remember_me.layer())
        .layer(
            JwtAuthLayer::new(keys.verifier())
                .with_cookie(access)
                .unwrap()
                .with_shared_revocation_store(revocations)
                .optional(),
        );
    Fixture {
        app,
        users,
        remember_me,
    }
}

struct Reply {
    status: StatusCode,
    body: String,
    set_cookies: Vec<String>,
}

impl Reply {
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }

    fn clears(&self, name: &str) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0"))
    }
}

async fn get_with(app: &Router, path: &str, cookies: &[&str]) -> Reply {
    let mut req = Request::builder().uri(path);
    if !cookies.is_empty() {
        req = req.header(header::COOKIE, cookies.join("; "));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let set_cookies = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Reply {
        status,
        body,
        set_cookies,
    }
}

/// The `name=value` pair of a login helper's Set-Cookie.
fn pair(set_cookie: &HeaderValue) -> String {
    set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn login(f: &Fixture, user: &str) -> String {
    let record = UserRecord::new(user, "v1", "read");
    pair(
        &f.remember_me
            .remember(&record, Some("test-agent/1.0"))
            .await
            .unwrap(),
    )
}

// ---- behaviour common to both modes -------------------------------------------------------

async fn auto_login_marks_remembered_and_mints_an_access_cookie(f: Fixture) {
    let cookie = login(&f, "alice").await;
    let r = get_with(&f.app, "/me", &[&cookie]).await;
    assert_eq!(r.body, "alice Remembered remembered=true");
    let access = r
        .cookie("access_token")
        .expect("a fresh access token cookie");
    // The next request is a plain JWT request, still marked as a remembered login.
    let r = get_with(&f.app, "/me", &[&access]).await;
    assert_eq!(r.body, "alice Authenticated remembered=true");
    assert!(
        r.set_cookies.is_empty(),
        "no remember-me work for a token request"
    );
    // Sensitive routes want the password again.
    let r = get_with(&f.app, "/sensitive", &[&access]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("insufficient_user_authentication"),
        "{}",
        r.body
    );
}

async fn refused_cookies_are_cancelled(f: Fixture) {
    let cookie = login(&f, "alice").await;
    let (name, value) = cookie.split_once('=').unwrap();
    // Tamper with every byte position in turn: never a login.
    for i in 0..value.len() {
        let mut bytes = value.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
        let r = get_with(&f.app, "/me", &[&tampered]).await;
        assert_eq!(r.body, "anonymous", "byte {i}");
        assert!(r.clears("remember_me"), "byte {i}: cookie cancelled");
    }
    for garbage in ["remember_me=", "remember_me=%%%", "remember_me=YWxpY2U"] {
        assert_eq!(get_with(&f.app, "/me", &[garbage]).await.body, "anonymous");
    }
}

async fn disabled_locked_and_missing_users_are_refused(f: Fixture) {
    let alice = login(&f, "alice").await;
    let bob = login(&f, "bob").await;
    let ghost = login(&f, "ghost").await;
    f.users.update(UserRecord {
        enabled: false,
        ..UserRecord::new("alice", "v1", "read")
    });
    f.users.update(UserRecord {
        locked: true,
        ..UserRecord::new("bob", "v1", "read")
    });
    for c in [&alice, &bob, &ghost] {
        let r = get_with(&f.app, "/me", &[c]).await;
        assert_eq!(r.body, "anonymous");
        assert!(r.clears("remember_me"));
    }
}

async fn expired_logins_are_refused(f: Fixture) {
    let f = Fixture {
        remember_me: f.remember_me.clone().ttl(Duration::from_secs(1)),
        ..f
    };
    let cookie = login(&f, "alice").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get_with(&f.app, "/me", &[&cookie]).await.body, "anonymous");
}

async fn reject_on_failure_answers_401(f: Fixture) {
    let strict = f.remember_me.clone().reject_on_failure(true);
    let app = Router::new()
        .route("/me", get(|| async { "never" }))
        .layer(strict.layer());
    let r = get_with(&app, "/me", &["remember_me=bogus"]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.clears("remember_me"));
}

async fn is_cookie_of_names_the_owner(f: Fixture) {
    let cookie = login(&f, "alice").await;
    let headers = |c: &str| {
        let mut h = http::HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        h
    };
    let rm = &f.remember_me;
    assert!(rm.is_cookie_of(&headers(&cookie), "alice").await.unwrap());
    assert!(!rm.is_cookie_of(&headers(&cookie), "bob").await.unwrap());
    assert!(
        !rm.is_cookie_of(&headers("remember_me=YWxpY2U"), "alice")
            .await
            .unwrap()
    );
    assert!(
        !rm.is_cookie_of(&http::HeaderMap::new(), "alice")
            .await
            .unwrap()
    );
    // Nothing was rotated: the cookie still logs in.
    assert!(
        get_with(&f.app, "/me", &[&cookie])
            .await
            .body
            .starts_with("alice")
    );
}

// ---- persistent mode ------------------------------------------------------------------------

async fn rotation_and_theft(f: Fixture) {
    let laptop = login(&f, "alice").await;
    let phone = login(&f, "alice").await;
    let bobs = login(&f, "bob").await;
    assert_eq!(f.remember_me.devices("alice").await.unwrap().len(), 2);

    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert!(r.body.starts_with("alice"));
    let rotated = r.cookie("remember_me").expect("rotated cookie");
    let minted = r.cookie("access_token").expect("access cookie");
    assert!(
        get_with(&f.app, "/me", &[&minted])
            .await
            .body
            .starts_with("alice")
    );
    assert_ne!(rotated, laptop, "the token changes on every auto-login");
    // The rotated cookie works.
    let r = get_with(&f.app, "/me", &[&rotated]).await;
    assert!(r.body.starts_with("alice"));
    let rotated = r.cookie("remember_me").unwrap();

    // The old cookie, after the grace window: a copy. Every login of alice goes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert_eq!(r.body, "anonymous");
    assert!(r.clears("remember_me"));
    for c in [&rotated, &phone] {
        assert_eq!(
            get_with(&f.app, "/me", &[c]).await.body,
            "anonymous",
            "theft removes all"
        );
    }
    assert!(f.remember_me.devices("alice").await.unwrap().is_empty());
    // The access tokens minted from the stolen login are revoked too.
    let r = get_with(&f.app, "/me", &[&minted]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Bob is untouched.
    assert!(
        get_with(&f.app, "/me", &[&bobs])
            .await
            .body
            .starts_with("bob")
    );
}

/// The thief copies the laptop's cookie and uses it first; the laptop's next auto-login
/// presents the rotated-away token and reveals the theft. Which browser is the thief's cannot
/// be told, so every access token of the user issued until then stops working: the thief's,
/// and the legitimate user's (they log in again with the password). A login after the theft
/// works.
async fn theft_logs_out_the_thief_and_the_user(f: Fixture) {
    let laptop = login(&f, "alice").await;
    let phone = login(&f, "alice").await;
    let bobs = login(&f, "bob").await;
    let access_of = |r: &Reply| r.cookie("access_token").expect("an access cookie");

    let users_token = access_of(&get_with(&f.app, "/me", &[&phone]).await);
    let bobs_token = access_of(&get_with(&f.app, "/me", &[&bobs]).await);
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert!(r.body.starts_with("alice Remembered"), "{}", r.body);
    let thiefs_token = access_of(&r);
    let thiefs_cookie = r.cookie("remember_me").expect("rotated cookie");
    for token in [&thiefs_token, &users_token] {
        let r = get_with(&f.app, "/protected", &[token]).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "alice"));
    }

    // Past the grace window, the laptop presents the token the thief rotated away.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert_eq!(r.body, "anonymous");
    assert!(r.clears("remember_me"));

    let r = get_with(&f.app, "/protected", &[&thiefs_token]).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the thief's access token: {}",
        r.body
    );
    let r = get_with(&f.app, "/protected", &[&users_token]).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the user's access token: {}",
        r.body
    );
    for c in [&thiefs_cookie, &phone, &laptop] {
        assert_eq!(get_with(&f.app, "/me", &[c]).await.body, "anonymous");
    }
    // Bob keeps his session; alice can log in again at once.
    let r = get_with(&f.app, "/protected", &[&bobs_token]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bob"));
    let again = login(&f, "alice").await;
    let fresh = access_of(&get_with(&f.app, "/me", &[&again]).await);
    let r = get_with(&f.app, "/protected", &[&fresh]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "alice"),
        "a login after the theft"
    );
}

/// A repeated `check_and_rotate` (its answer lost on the way back) is the same rotation, even
/// with no grace window; a theft marker answers `Theft` until deleted, and is no device.
async fn store_rotation_is_retry_safe<S: RememberMeStore>(store: S) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let record =
        |user: &str, token: u8| SeriesRecord::new(user, [token; 32], now_ms, now_ms / 1000 + 600);
    let rotated = SeriesCheck::Rotated {
        username: "alice".into(),
    };
    store
        .create("laptop-series", record("alice", 1))
        .await
        .unwrap();
    store
        .create("phone-series", record("alice", 5))
        .await
        .unwrap();
    store.create("bobs-series", record("bob", 7)).await.unwrap();
    for _ in 0..3 {
        let check = store
            .check_and_rotate("laptop-series", [1; 32], [2; 32], now_ms, 0)
            .await
            .unwrap();
        assert_eq!(check, rotated, "the same rotation, repeated");
    }
    let check = store
        .check_and_rotate("laptop-series", [2; 32], [3; 32], now_ms + 1, 0)
        .await
        .unwrap();
    assert_eq!(check, rotated, "the successor is current");

    // The token rotated away, with another successor: theft.
    let theft = SeriesCheck::Theft {
        username: "alice".into(),
        detected_at_ms: now_ms + 2,
    };
    let check = store
        .check_and_rotate("laptop-series", [2; 32], [4; 32], now_ms + 2, 0)
        .await
        .unwrap();
    assert_eq!(check, theft);
    assert!(
        store.devices("alice").await.unwrap().is_empty(),
        "no devices left"
    );
    let gone = store
        .check_and_rotate("phone-series", [5; 32], [6; 32], now_ms + 3, 0)
        .await
        .unwrap();
    assert_eq!(
        gone,
        SeriesCheck::Invalid,
        "the user's other series are deleted"
    );
    // The marker: any token, the same instant, until deleted.
    for token in [[3; 32], [2; 32], [9; 32]] {
        let check = store
            .check_and_rotate("laptop-series", token, [8; 32], now_ms + 5000, 0)
            .await
            .unwrap();
        assert_eq!(check, theft, "a presented theft marker");
    }
    store.delete("laptop-series").await.unwrap();
    let check = store
        .check_and_rotate("laptop-series", [3; 32], [8; 32], now_ms + 5000, 0)
        .await
        .unwrap();
    assert_eq!(check, SeriesCheck::Invalid);
    assert_eq!(
        store.devices("bob").await.unwrap().len(),
        1,
        "bob untouched"
    );
}

async fn parallel_requests_share_one_rotation(f: Fixture) {
    let cookie = login(&f, "alice").await;
    let app = Arc::new(f.app.clone());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, cookie) = (app.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            get_with(&app, "/me", &[&cookie]).await
        }));
    }
    let mut rotations = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.body.starts_with("alice Remembered"),
            "every request logged in: {}",
            r.body
        );
        assert!(!r.clears("remember_me"), "no theft alarm");
        rotations += usize::from(r.cookie("remember_me").is_some());
    }
    assert_eq!(rotations, 1, "one rotation for 20 parallel requests");
    assert_eq!(f.remember_me.devices("alice").await.unwrap().len(), 1);
}

async fn handler_cookies_win(f: Fixture) {
    let cookie = login(&f, "alice").await;
    let r = get_with(&f.app, "/logout", &[&cookie]).await;
    assert_eq!(r.body, "bye");
    assert_eq!(r.set_cookies.len(), 2, "{:?}", r.set_cookies);
    assert!(
        r.clears("remember_me") && r.clears("access_token"),
        "{:?}",
        r.set_cookies
    );
}

async fn devices_and_logout(f: Fixture) {
    let first = login(&f, "alice").await;
    let second = login(&f, "alice").await;
    let devices = f.remember_me.devices("alice").await.unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].user_agent.as_deref(), Some("test-agent/1.0"));
    // Revoke one device; the other still works.
    assert!(
        !f.remember_me
            .revoke_device("bob", &devices[0].series)
            .await
            .unwrap(),
        "not bob's"
    );
    assert!(
        get_with(&f.app, "/me", &[&second])
            .await
            .body
            .starts_with("alice")
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::from_str(&first).unwrap());
    let clear = f.remember_me.forget(&headers).await.unwrap();
    assert!(clear.to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(
        get_with(&f.app, "/me", &[&first]).await.body,
        "anonymous",
        "logged out"
    );
    assert_eq!(f.remember_me.devices("alice").await.unwrap().len(), 1);
    let left = &f.remember_me.devices("alice").await.unwrap()[0];
    assert!(
        f.remember_me
            .revoke_device("alice", &left.series)
            .await
            .unwrap()
    );
    assert!(f.remember_me.devices("alice").await.unwrap().is_empty());
}

async fn password_change_forgets_everything(f: Fixture) {
    let cookie = login(&f, "alice").await;
    assert_eq!(f.remember_me.forget_user("alice").await.unwrap(), 1);
    assert_eq!(get_with(&f.app, "/me", &[&cookie]).await.body, "anonymous");
}

fn persistent<S: RememberMeStore + Clone>(store: S) -> impl Fn(StaticUsers) -> RememberMe {
    move |users| RememberMe::persistent(store.clone(), users).grace(Duration::from_secs(1))
}

/// A remember-me and a revocation store on `server`.
async fn redis_stores(
    server: &redis_server::RedisServer,
) -> (
    tower_token_auth::remember_me::RedisRememberMeStore,
    Arc<dyn RevocationStore>,
) {
    use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
    let store = tower_token_auth::remember_me::RedisRememberMeStore::connect(
        &server.url(),
        "tta:",
        Duration::from_millis(500),
    )
    .unwrap();
    let revocations = RedisRevocationStore::connect(&server.url(), RedisStoreConfig::default())
        .await
        .unwrap();
    assert!(revocations.wait_live(Duration::from_secs(5)).await);
    (store, Arc::new(revocations))
}

macro_rules! persistent_suite {
    ($($test:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(fixture(persistent(MemoryRememberMeStore::new()))).await;
                }
            )*

            #[tokio::test]
            async fn store_rotation_is_retry_safe() {
                super::store_rotation_is_retry_safe(MemoryRememberMeStore::new()).await;
            }
        }
        mod redis {
            use super::*;
            use super::redis_server::RedisServer;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = RedisServer::start();
                    let (store, revocations) = redis_stores(&server).await;
                    super::$test(fixture_with(persistent(store), revocations, |r| r)).await;
                    drop(server);
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_rotation_is_retry_safe() {
                let server = RedisServer::start();
                let (store, _) = redis_stores(&server).await;
                super::store_rotation_is_retry_safe(store).await;
            }
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            use super::*;
            use super::postgres_server::PostgresServer;
            use tower_token_auth::remember_me::SqlRememberMeStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = PostgresServer::start();
                    let db = super::sql_support::connect_postgres(&server.url()).await;
                    super::$test(fixture(persistent(SqlRememberMeStore::new(db)))).await;
                    drop(server);
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_rotation_is_retry_safe() {
                let server = PostgresServer::start();
                let db = super::sql_support::connect_postgres(&server.url()).await;
                super::store_rotation_is_retry_safe(SqlRememberMeStore::new(db)).await;
            }
        }
        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::*;
            use super::sql_support::TempSqlite;
            use tower_token_auth::remember_me::SqlRememberMeStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let file = TempSqlite::new();
                    let store = SqlRememberMeStore::new(file.connect().await);
                    super::$test(fixture(persistent(store))).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_rotation_is_retry_safe() {
                let file = TempSqlite::new();
                let store = SqlRememberMeStore::new(file.connect().await);
                super::store_rotation_is_retry_safe(store).await;
            }
        }
    };
}

persistent_suite!(
    auto_login_marks_remembered_and_mints_an_access_cookie,
    refused_cookies_are_cancelled,
    disabled_locked_and_missing_users_are_refused,
    expired_logins_are_refused,
    reject_on_failure_answers_401,
    is_cookie_of_names_the_owner,
    rotation_and_theft,
    theft_logs_out_the_thief_and_the_user,
    parallel_requests_share_one_rotation,
    handler_cookies_win,
    devices_and_logout,
    password_change_forgets_everything,
);

// ---- theft: opting out, and a revocation that fails -----------------------------------------

/// Steals alice's cookie (the thief uses it first), then reveals the theft past the grace
/// window. Returns the thief's access cookie and the reply to the revealing request.
async fn steal_and_reveal(f: &Fixture) -> (String, String, Reply) {
    let laptop = login(f, "alice").await;
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    let thiefs_token = r.cookie("access_token").expect("an access cookie");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reveal = get_with(&f.app, "/me", &[&laptop]).await;
    (laptop, thiefs_token, reveal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_access_tokens_on_theft_opts_out() {
    let f = fixture_with(
        persistent(MemoryRememberMeStore::new()),
        Arc::new(MemoryStore::new()),
        RememberMe::keep_access_tokens_on_theft,
    );
    let (_, thiefs_token, reveal) = steal_and_reveal(&f).await;
    assert_eq!(reveal.body, "anonymous");
    assert!(
        reveal.clears("remember_me"),
        "the remembered logins still go"
    );
    let r = get_with(&f.app, "/protected", &[&thiefs_token]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "alice"),
        "opted out: the access token lives until it expires"
    );
}

/// A memory store whose user revocations fail while `failing` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl RevocationStore for Flaky {
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
        self.inner.check(token)
    }
    fn revoke_token<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        self.inner.revoke_token(token)
    }
    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        before: u64,
        until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(async {
                Err(RevocationError::Unavailable("SECRET-BACKEND-DETAIL".into()))
            });
        }
        self.inner.revoke_user(sub, before, until)
    }
}

/// The revealing request answers 503 with a fixed body and keeps the cookie; once the store
/// works again, presenting the same cookie finishes the job.
async fn failed_theft_revocation_is_retried(
    f: Fixture,
    break_store: impl FnOnce(),
    fix_store: impl FnOnce(),
) {
    let laptop = login(&f, "alice").await;
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    let thiefs_token = r.cookie("access_token").expect("an access cookie");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    break_store();
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"error":"temporarily_unavailable","error_description":"the login cannot be checked, retry later"}"#
    );
    assert!(!r.clears("remember_me"), "the cookie is kept for the retry");
    fix_store();
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "anonymous"));
    assert!(r.clears("remember_me"));
    let r = get_with(&f.app, "/protected", &[&thiefs_token]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked on the retry");
    // Done: the marker is gone, the cookie is just unknown now.
    let r = get_with(&f.app, "/me", &[&laptop]).await;
    assert_eq!(r.body, "anonymous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_theft_revocation_memory() {
    let flaky = Arc::new(Flaky::default());
    let f = fixture_with(
        persistent(MemoryRememberMeStore::new()),
        flaky.clone(),
        |r| r,
    );
    let set = |on| {
        let flaky = flaky.clone();
        move || flaky.failing.store(on, std::sync::atomic::Ordering::SeqCst)
    };
    failed_theft_revocation_is_retried(f, set(true), set(false)).await;
}

/// Redis refuses the revocation's publish (an ACL), so the revocation store reports failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_theft_revocation_redis() {
    let server = redis_server::RedisServer::start();
    let (store, revocations) = redis_stores(&server).await;
    let f = fixture_with(persistent(store), revocations, |r| r);
    let acl = |rule: &'static str| {
        let server = &server;
        move || {
            let out = server.cli(&["ACL", "SETUSER", "default", rule]);
            assert_eq!(out.as_deref().map(str::trim), Some("OK"));
        }
    };
    failed_theft_revocation_is_retried(f, acl("-publish"), acl("+publish")).await;
}

// ---- signed mode ----------------------------------------------------------------------------

fn signed(users: StaticUsers) -> RememberMe {
    RememberMe::signed(&[9u8; 32], users).unwrap()
}

mod signed_mode {
    use super::*;

    #[tokio::test]
    async fn auto_login() {
        auto_login_marks_remembered_and_mints_an_access_cookie(fixture(signed)).await;
    }

    #[tokio::test]
    async fn refused() {
        refused_cookies_are_cancelled(fixture(signed)).await;
    }

    #[tokio::test]
    async fn disabled() {
        disabled_locked_and_missing_users_are_refused(fixture(signed)).await;
    }

    #[tokio::test]
    async fn expired() {
        expired_logins_are_refused(fixture(signed)).await;
    }

    #[tokio::test]
    async fn is_cookie_of() {
        is_cookie_of_names_the_owner(fixture(signed)).await;
    }

    #[tokio::test]
    async fn password_change_voids_signed_cookies() {
        let f = fixture(signed);
        let cookie = login(&f, "alice").await;
        // Stateless: the same cookie logs in again and again, no rotation.
        for _ in 0..3 {
            let r = get_with(&f.app, "/me", &[&cookie]).await;
            assert!(r.body.starts_with("alice"));
            assert!(r.cookie("remember_me").is_none());
        }
        f.users.update(UserRecord::new("alice", "v2", "read write"));
        let r = get_with(&f.app, "/me", &[&cookie]).await;
        assert_eq!(r.body, "anonymous");
        assert!(r.clears("remember_me"));
    }

    #[tokio::test]
    async fn another_users_signature_does_not_fit() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let f = fixture(signed);
        let cookie = login(&f, "bob").await;
        let value = cookie.split_once('=').unwrap().1;
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(value).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(text.replacen("bob", "alice", 1));
        assert_eq!(
            get_with(&f.app, "/me", &[&format!("remember_me={forged}")])
                .await
                .body,
            "anonymous"
        );
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(RememberMe::signed(&[1u8; 31], StaticUsers::default()).is_err());
    }
}

// ---- the SQL store on its own ---------------------------------------------------------------

#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql_store {
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use tower_token_auth::remember_me::{Device, SqlRememberMeStore};
    use tower_token_auth::sql::Database;

    use super::sql_support::{TempSqlite, count_rows};
    use super::*;

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    fn login(user: &str, token: u8, expires_in: i64) -> SeriesRecord {
        let now = now_ms();
        let mut record = SeriesRecord::new(
            user,
            [token; 32],
            now,
            (now / 1000).saturating_add_signed(expires_in),
        );
        record.user_agent = Some("test-agent/1.0".into());
        record
    }

    /// Devices read back as written (times, User-Agent); `delete_user` counts live series
    /// only; expired logins go in batches smaller than their number, live ones stay.
    async fn columns_and_purge(db: Database) {
        let store = SqlRememberMeStore::new(db.clone());
        let record = login("kim", 1, 600);
        store.create("kim-laptop", record.clone()).await.unwrap();
        let devices = store.devices("kim").await.unwrap();
        assert_eq!(devices, vec![Device::new("kim-laptop", &record)]);
        for i in 0..5 {
            store
                .create(&format!("kim-old-{i}"), login("kim", 2, -10))
                .await
                .unwrap();
        }
        store
            .create("lee-phone", login("lee", 3, 600))
            .await
            .unwrap();
        assert_eq!(
            store.devices("kim").await.unwrap().len(),
            1,
            "expired: no device"
        );
        assert_eq!(count_rows(&db, "persistent_logins").await, 7);
        assert_eq!(store.purge_expired(2).await.unwrap(), 5);
        assert_eq!(store.purge_expired(2).await.unwrap(), 0);
        assert_eq!(count_rows(&db, "persistent_logins").await, 2);
        let check = store
            .check_and_rotate("kim-laptop", [1; 32], [4; 32], now_ms(), 0)
            .await
            .unwrap();
        assert_eq!(
            check,
            SeriesCheck::Rotated {
                username: "kim".into()
            }
        );
        assert_eq!(store.delete_user("kim").await.unwrap(), 1);
        assert_eq!(store.delete_user("kim").await.unwrap(), 0);
        assert_eq!(
            store.devices("lee").await.unwrap().len(),
            1,
            "lee untouched"
        );
        let shown = format!("{store:?}");
        assert!(shown.starts_with("SqlRememberMeStore"), "{shown}");
        assert!(
            !shown.contains("127.0.0.1") && !shown.contains("tta-sqlite"),
            "{shown}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_columns_and_purge() {
        let file = TempSqlite::new();
        columns_and_purge(file.connect().await).await;
    }

    /// Closed and opened again, the file still has the rotated login (the old token is theft).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_reopened_keeps_logins() {
        let file = TempSqlite::new();
        let db = file.connect().await;
        let store = SqlRememberMeStore::new(db.clone());
        store
            .create("mia-laptop", login("mia", 1, 600))
            .await
            .unwrap();
        let check = store
            .check_and_rotate("mia-laptop", [1; 32], [2; 32], now_ms(), 0)
            .await
            .unwrap();
        assert!(matches!(check, SeriesCheck::Rotated { .. }), "{check:?}");
        drop(store);
        super::sql_support::close(db).await;
        let store = SqlRememberMeStore::new(file.connect().await);
        assert_eq!(store.devices("mia").await.unwrap().len(), 1);
        let check = store
            .check_and_rotate("mia-laptop", [1; 32], [3; 32], now_ms(), 0)
            .await
            .unwrap();
        assert!(matches!(check, SeriesCheck::Theft { .. }), "{check:?}");
    }

    #[cfg(feature = "postgres")]
    mod postgres {
        use super::super::postgres_server::PostgresServer;
        use super::super::sql_support::connect_postgres;
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_columns_and_purge() {
            let server = PostgresServer::start();
            columns_and_purge(connect_postgres(&server.url()).await).await;
        }

        /// PostgreSQL killed: calls fail fast; restarted: the same store works, and the
        /// committed rotation is there.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres_killed_and_restarted() {
            let mut server = PostgresServer::start();
            let store = SqlRememberMeStore::new(connect_postgres(&server.url()).await)
                .with_op_timeout(Duration::from_secs(1));
            store
                .create("ned-laptop", login("ned", 1, 600))
                .await
                .unwrap();
            let check = store
                .check_and_rotate("ned-laptop", [1; 32], [2; 32], now_ms(), 0)
                .await
                .unwrap();
            assert!(matches!(check, SeriesCheck::Rotated { .. }), "{check:?}");
            server.kill();
            let started = Instant::now();
            store
                .check_and_rotate("ned-laptop", [2; 32], [3; 32], now_ms(), 0)
                .await
                .expect_err("the database is down");
            store.devices("ned").await.expect_err("down");
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{:?}",
                started.elapsed()
            );
            server.restart();
            let check = store
                .check_and_rotate("ned-laptop", [2; 32], [3; 32], now_ms(), 0)
                .await
                .expect("the same store works once the database is back");
            assert!(matches!(check, SeriesCheck::Rotated { .. }), "{check:?}");
        }
    }
}
