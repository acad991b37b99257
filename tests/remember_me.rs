//! Remember-me through the real layers (`JwtAuthLayer` optional outside, `RememberMeLayer`
//! inside, an axum router): signed mode, and persistent mode on the memory and the Redis store
//! with one shared suite.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::remember_me::{
    MemoryRememberMeStore, RememberMe, RememberMeStore, StaticUsers, UserRecord,
};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, AuthStatus, Claims, JwtAuthLayer};

struct Fixture {
    app: Router,
    users: StaticUsers,
    remember_me: RememberMe,
}

fn fixture(remember_me: impl FnOnce(StaticUsers) -> RememberMe) -> Fixture {
    let keys = TestKeys::hs256();
    let users = StaticUsers::new([
        UserRecord::new("alice", "v1", "read write"),
        UserRecord::new("bob", "v1", "read"),
    ]);
    let access = AccessCookie::new("access_token").secure(false);
    let revocations = tower_token_auth::MemoryStore::new();
    let remember_me = remember_me(users.clone())
        .cookie(AccessCookie::new("remember_me").secure(false))
        .mint_access_tokens(keys.issuer(), access.clone())
        .revoke_on_theft(Arc::new(revocations.clone()), Duration::from_secs(600));
    let app = Router::new()
        .route(
            "/me",
            get(
                |c: Option<Claims>, s: axum::Extension<AuthStatus>| async move {
                    match c {
                        Some(c) => format!(
                            "{} {:?} remembered={}",
                            c.sub.as_deref().unwrap_or(""),
                            s.0,
                            c.is_remembered()
                        ),
                        None => "anonymous".to_owned(),
                    }
                },
            ),
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
                .with_revocation_store(revocations)
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
        }
        mod redis {
            use super::*;
            use super::redis_server::RedisServer;
            use tower_token_auth::remember_me::RedisRememberMeStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let server = RedisServer::start();
                    let store = RedisRememberMeStore::connect(&server.url(), "tta:", Duration::from_millis(500)).unwrap();
                    super::$test(fixture(persistent(store))).await;
                    drop(server);
                }
            )*
        }
    };
}

persistent_suite!(
    auto_login_marks_remembered_and_mints_an_access_cookie,
    refused_cookies_are_cancelled,
    disabled_locked_and_missing_users_are_refused,
    expired_logins_are_refused,
    reject_on_failure_answers_401,
    rotation_and_theft,
    parallel_requests_share_one_rotation,
    handler_cookies_win,
    devices_and_logout,
    password_change_forgets_everything,
);

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
