//! Runs the real `quickstart` example binary and walks its contract over HTTP on 127.0.0.1:
//! login, protected routes, the refresh token lifecycle (rotation, reuse detection, RFC 7009
//! revocation, logout, logout everywhere, password change), cookie mode with its CSRF
//! protection, two instances sharing one Redis or one PostgreSQL database, and a restart on
//! SQLite keeping sessions and revocations.

#[cfg(feature = "postgres")]
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/quickstart.rs"]
mod quickstart;
#[path = "support/redis_server.rs"]
mod redis_server;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[path = "support/sql.rs"]
mod sql_support;
mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use quickstart::{FORM, Quickstart, SECRET, error_code, form, token_pair};
use redis_server::RedisServer;
use serde_json::{Value, json};
use support::{ChildGuard, Resp, free_port, now_secs};

/// "Log out everywhere" revokes every token issued at or before the current second, so a
/// login in that same second is refused too: tests wait this long before logging in again.
const NEXT_SECOND: Duration = Duration::from_millis(1100);

/// A token minted with `jsonwebtoken` directly, as another service or library would.
fn foreign_token(claims: &Value) -> String {
    // jsonwebtoken 11 needs a process-wide crypto provider when both of its backends are
    // compiled in (as with `--all-features`); with one backend it picks it by itself.
    #[cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signing with jsonwebtoken")
}

#[tokio::test]
async fn quickstart_contract() {
    let qs = Quickstart::start().await;

    // Public route.
    let res = qs.get("/health", None).await;
    assert_eq!(res.status, StatusCode::OK);

    // No token: 401, a bare challenge without an error code (RFC 6750 §3.1).
    let res = qs.get("/me", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    let challenge = res.www_authenticate();
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    assert!(!challenge.contains("error="), "{challenge:?}");

    // Wrong password, unknown user: 401 invalid_grant.
    for (user, password) in [("alice", "wrong-password"), ("mallory", "alice-password")] {
        let res = qs.login(user, password).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{user}: {res:?}");
        assert_eq!(res.json()["error"], "invalid_grant", "{user}: {res:?}");
    }

    // Malformed JSON: 400.
    let res = qs
        .http
        .send_raw(
            Method::POST,
            &qs.url("/login"),
            "application/json",
            "{not json",
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");

    // alice: /me shows her claims.
    let alice = qs.token("alice", "alice-password").await;
    let res = qs.get("/me", Some(&alice)).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let me = res.json();
    assert_eq!(me["sub"], "alice", "{me}");
    assert_eq!(me["scope"], "read write", "{me}");
    assert_eq!(me["iss"], "quickstart", "{me}");
    assert!(me["jti"].is_string(), "{me}");
    assert!(
        me["sid"].is_string(),
        "access tokens name their session: {me}"
    );
    let exp = me["exp"].as_u64().expect("numeric exp");
    assert!(
        exp > now_secs() && exp <= now_secs() + 15 * 60 + 5,
        "exp {exp}"
    );

    // alice lacks the admin scope: 403 insufficient_scope naming it.
    let res = qs.get("/admin", Some(&alice)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{res:?}");
    let challenge = res.www_authenticate();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge:?}"
    );
    assert!(challenge.contains(r#"scope="admin""#), "{challenge:?}");

    // admin may enter.
    let admin = qs.token("admin", "admin-password").await;
    let res = qs.get("/admin", Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");

    // A token from another JWT library with the same secret and claims is accepted.
    let t = now_secs();
    let foreign = foreign_token(&json!({
        "iss": "quickstart",
        "aud": "quickstart",
        "sub": "bob",
        "exp": t + 300,
        "iat": t,
        "jti": "foreign-token-1",
        "scope": "read",
    }));
    let res = qs.get("/me", Some(&foreign)).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.json()["sub"], "bob");

    // Without a `jti` it cannot be revoked: logout answers 400, and the token stays valid.
    let no_jti = foreign_token(&json!({
        "iss": "quickstart", "aud": "quickstart", "sub": "bob", "exp": t + 300,
    }));
    let res = qs.post("/logout", Some(&no_jti), None).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");
    assert_eq!(error_code(&res), "invalid_request");

    // ...but not one meant for another audience.
    let wrong_aud = foreign_token(&json!({
        "iss": "quickstart", "aud": "elsewhere", "sub": "bob", "exp": t + 300,
    }));
    let res = qs.get("/me", Some(&wrong_aud)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    assert!(res.www_authenticate().contains(r#"error="invalid_token""#));

    // Logout ends the presented token's session, not alice's other sessions.
    let alice_elsewhere = qs.token("alice", "alice-password").await;
    let res = qs.post("/logout", Some(&alice), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    assert!(res.set_cookies().is_empty(), "no cookies in bearer mode");
    let res = qs.get("/me", Some(&alice)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    assert!(
        res.www_authenticate().contains(r#"error="invalid_token""#),
        "{:?}",
        res.www_authenticate()
    );
    for other in [&admin, &alice_elsewhere, &foreign] {
        let res = qs.get("/me", Some(other)).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "other tokens stay valid: {res:?}"
        );
    }

    // The process is still healthy at the end (and its guard kills it on drop).
    assert!(qs.child.log().contains("quickstart listening"));
}

#[test]
fn short_secret_is_refused() {
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let mut child = ChildGuard::spawn_example(
        "quickstart",
        &[("BIND", bind.as_str()), ("JWT_SECRET", "too-short")],
    );
    let status = child.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}");
    let log = child.log();
    assert!(
        log.contains("JWT_SECRET") && log.contains("32 bytes"),
        "{log}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let qs = Quickstart::start().await;
    let first = qs.pair("alice", "alice-password").await;
    let other_session = qs.pair("alice", "alice-password").await;

    // The refresh grant: a new pair, in the same session.
    let res = qs.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.header("cache-control"), "no-store", "{res:?}");
    assert_eq!(res.json()["scope"], "read write");
    let second = token_pair(&res);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(qs.me(&second.access).await, StatusCode::OK);
    assert_eq!(qs.sid(&second.access).await, qs.sid(&first.access).await);

    // JSON bodies work too (the endpoint takes both).
    let body = json!({ "grant_type": "refresh_token", "refresh_token": second.refresh });
    let res = qs.post("/token", None, Some(&body)).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let third = token_pair(&res);

    // The spent token again: 400 invalid_grant, and the whole session is revoked, its
    // newest access and refresh tokens included.
    let res = qs.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");
    assert_eq!(error_code(&res), "invalid_grant");
    for access in [&first.access, &second.access, &third.access] {
        assert_eq!(qs.me(access).await, StatusCode::UNAUTHORIZED);
    }
    let res = qs.refresh(&third.refresh).await;
    assert_eq!(error_code(&res), "invalid_grant", "{res:?}");

    // alice's other session is untouched.
    assert_eq!(qs.me(&other_session.access).await, StatusCode::OK);
    assert_eq!(
        qs.refresh(&other_session.refresh).await.status,
        StatusCode::OK
    );

    // Malformed grants.
    let res = qs
        .send(
            Method::POST,
            "/token",
            &[],
            Some((FORM, "grant_type=password".into())),
        )
        .await;
    assert_eq!(error_code(&res), "unsupported_grant_type", "{res:?}");
    let res = qs.refresh("not-a-refresh-token").await;
    assert_eq!(error_code(&res), "invalid_grant", "{res:?}");
}

#[tokio::test]
async fn revocation_endpoint() {
    let qs = Quickstart::start().await;

    // A refresh token: its session ends, access token included.
    let pair = qs.pair("alice", "alice-password").await;
    let res = qs.revoke(&pair.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    // RFC 7009 §2.2: the body is ignored; none is sent, and no content type claims one.
    assert!(res.body.is_empty(), "{res:?}");
    assert!(res.headers.get("content-type").is_none(), "{res:?}");
    assert_eq!(qs.me(&pair.access).await, StatusCode::UNAUTHORIZED);
    // JSON works as well as the form.
    let pair = qs.pair("alice", "alice-password").await;
    let res = qs
        .send(
            Method::POST,
            "/revoke",
            &[],
            Some((
                "application/json",
                json!({ "token": pair.refresh }).to_string(),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(qs.me(&pair.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_code(&qs.refresh(&pair.refresh).await),
        "invalid_grant"
    );

    // An access token: only that token ends; its refresh token still works.
    let pair = qs.pair("alice", "alice-password").await;
    let res = qs.revoke(&pair.access).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(qs.me(&pair.access).await, StatusCode::UNAUTHORIZED);
    let res = qs.refresh(&pair.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(qs.me(&token_pair(&res).access).await, StatusCode::OK);

    // Unknown tokens: 200 all the same (RFC 7009 §2.2); no token: 400.
    assert_eq!(qs.revoke("no-such-token").await.status, StatusCode::OK);
    let res = qs
        .send(Method::POST, "/revoke", &[], Some((FORM, String::new())))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");
    assert_eq!(error_code(&res), "invalid_request");
}

#[tokio::test]
async fn logout_ends_the_session_and_logout_all_every_session() {
    let qs = Quickstart::start().await;
    let a = qs.pair("alice", "alice-password").await;
    let b = qs.pair("alice", "alice-password").await;
    let admin = qs.pair("admin", "admin-password").await;

    // Logout in session A: A's access and refresh tokens end, B goes on.
    let res = qs.post("/logout", Some(&a.access), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    assert_eq!(qs.me(&a.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&qs.refresh(&a.refresh).await), "invalid_grant");
    assert_eq!(qs.me(&b.access).await, StatusCode::OK);

    // Log out everywhere from session C: every token of alice ends.
    let c = qs.pair("alice", "alice-password").await;
    let res = qs.post("/logout-all", Some(&c.access), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    for session in [&b, &c] {
        assert_eq!(qs.me(&session.access).await, StatusCode::UNAUTHORIZED);
        let res = qs.refresh(&session.refresh).await;
        assert_eq!(error_code(&res), "invalid_grant", "{res:?}");
    }
    // Other users are untouched.
    assert_eq!(qs.me(&admin.access).await, StatusCode::OK);
    assert_eq!(qs.refresh(&admin.refresh).await.status, StatusCode::OK);

    // Without a token: 401.
    let res = qs.post("/logout-all", None, None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");

    // A new login (in a later second) works again.
    tokio::time::sleep(NEXT_SECOND).await;
    let d = qs.pair("alice", "alice-password").await;
    assert_eq!(qs.me(&d.access).await, StatusCode::OK);
    assert_eq!(qs.refresh(&d.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn password_change_ends_every_session() {
    let qs = Quickstart::start().await;
    let old = qs.pair("alice", "alice-password").await;
    let admin = qs.pair("admin", "admin-password").await;
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });

    // Wrong current password: 403, nothing changes.
    let body = change("not-her-password", "a-brand-new-password");
    let res = qs.post("/password", Some(&old.access), Some(&body)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{res:?}");
    assert_eq!(error_code(&res), "wrong_password");
    assert_eq!(qs.me(&old.access).await, StatusCode::OK);

    // Too short a new password: 400.
    let body = change("alice-password", "short");
    let res = qs.post("/password", Some(&old.access), Some(&body)).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");
    assert_eq!(error_code(&res), "invalid_request");

    // Without a token: 401, before the body is even looked at.
    let body = change("alice-password", "a-brand-new-password");
    let res = qs.post("/password", None, Some(&body)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");

    // The right current password: 204, and every session of alice ends.
    let res = qs.post("/password", Some(&old.access), Some(&body)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    assert_eq!(qs.me(&old.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&qs.refresh(&old.refresh).await), "invalid_grant");
    assert_eq!(qs.me(&admin.access).await, StatusCode::OK);

    tokio::time::sleep(NEXT_SECOND).await;
    let res = qs.login("alice", "alice-password").await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "old password: {res:?}"
    );
    assert_eq!(error_code(&res), "invalid_grant");
    let new = qs.pair("alice", "a-brand-new-password").await;
    assert_eq!(qs.me(&new.access).await, StatusCode::OK);
}

/// The `name=value` part of a `Set-Cookie` header, to send back in `Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The attributes of a `Set-Cookie` header after `name=value`, trimmed.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn cookie_mode() {
    let trusted = "https://app.example.com";
    let qs = Quickstart::start_with(&[
        ("COOKIE_MODE", "1"),
        ("COOKIE_SECURE", "0"),
        ("ALLOWED_ORIGIN", trusted),
    ])
    .await;

    // Login sets both cookies; the refresh token stays out of the body.
    let res = qs.login("alice", "alice-password").await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let body = res.json();
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let access = res.set_cookie("access_token");
    let refresh = res.set_cookie("refresh_token");
    assert_eq!(
        cookie_attributes(&access),
        ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"],
        "{access}"
    );
    let attributes = cookie_attributes(&refresh);
    assert_eq!(
        attributes[..3],
        ["HttpOnly", "SameSite=Lax", "Path=/token"],
        "{refresh}"
    );
    // 14 days, give or take the second that may tick while the token is stored.
    let max_age: u64 = attributes[3]
        .strip_prefix("Max-Age=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{refresh}"));
    assert!(
        (14 * 86400 - 2..=14 * 86400).contains(&max_age),
        "{refresh}"
    );
    assert_eq!(
        attributes.len(),
        4,
        "no Secure with COOKIE_SECURE=0: {refresh}"
    );
    let (access, refresh) = (cookie_pair(&access), cookie_pair(&refresh));
    assert_eq!(
        access,
        format!("access_token={}", body["access_token"].as_str().unwrap())
    );

    // The access cookie alone authenticates.
    let res = qs
        .send(Method::GET, "/me", &[("cookie", &access)], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.json()["sub"], "alice");

    // The refresh cookie alone refreshes: 200 and two new cookies.
    let grant = || Some((FORM, "grant_type=refresh_token".to_owned()));
    let res = qs
        .send(Method::POST, "/token", &[("cookie", &refresh)], grant())
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert!(res.json().get("refresh_token").is_none(), "{res:?}");
    let new_access = cookie_pair(&res.set_cookie("access_token"));
    let new_refresh = cookie_pair(&res.set_cookie("refresh_token"));
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    assert!(res.set_cookie("refresh_token").contains("Path=/token"));
    let res = qs
        .send(Method::GET, "/me", &[("cookie", &new_access)], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");

    // Cross-site POSTs carrying the cookies are refused (CSRF), by Sec-Fetch-Site or, for
    // browsers that do not send it, by a foreign Origin; the session survives them.
    let cookies = format!("{new_access}; {new_refresh}");
    for (path, headers) in [
        ("/logout", [("sec-fetch-site", "cross-site")]),
        ("/logout", [("origin", "https://evil.example")]),
        ("/logout-all", [("sec-fetch-site", "same-site")]),
        ("/token", [("sec-fetch-site", "cross-site")]),
        ("/revoke", [("sec-fetch-site", "cross-site")]),
        ("/password", [("sec-fetch-site", "cross-site")]),
    ] {
        let headers = [headers[0], ("cookie", cookies.as_str())];
        let res = qs.send(Method::POST, path, &headers, grant()).await;
        assert_eq!(
            res.status,
            StatusCode::FORBIDDEN,
            "{path} {headers:?}: {res:?}"
        );
        assert_eq!(error_code(&res), "cross_site_request", "{res:?}");
    }
    let res = qs
        .send(Method::GET, "/me", &[("cookie", &new_access)], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "still logged in: {res:?}");

    // Same-origin logout: 204, both cookies cleared, the session over.
    let headers = [("sec-fetch-site", "same-origin"), ("cookie", &new_access)];
    let res = qs.send(Method::POST, "/logout", &headers, None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    assert_eq!(
        res.set_cookies(),
        [
            "access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0",
            "refresh_token=; HttpOnly; SameSite=Lax; Path=/token; Max-Age=0",
        ]
    );
    let res = qs
        .send(Method::GET, "/me", &[("cookie", &new_access)], None)
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    // The refresh cookie died with the session; a refused grant clears the cookies too.
    let res = qs
        .send(Method::POST, "/token", &[("cookie", &new_refresh)], grant())
        .await;
    assert_eq!(error_code(&res), "invalid_grant", "{res:?}");
    assert!(
        res.set_cookie("refresh_token").contains("Max-Age=0"),
        "{res:?}"
    );

    // A trusted origin (ALLOWED_ORIGIN) may POST cross-site; Origin matching Host passes too;
    // so do clients that send neither header (curl, other services), with a bearer token.
    let res = qs.login("alice", "alice-password").await;
    let access = cookie_pair(&res.set_cookie("access_token"));
    let headers = [
        ("sec-fetch-site", "cross-site"),
        ("origin", trusted),
        ("cookie", access.as_str()),
    ];
    let res = qs.send(Method::POST, "/logout", &headers, None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    let res = qs.login("alice", "alice-password").await;
    let access = cookie_pair(&res.set_cookie("access_token"));
    let host = qs.base.trim_start_matches("http://").to_owned();
    let origin = qs.base.clone();
    let headers = [
        ("host", host.as_str()),
        ("origin", origin.as_str()),
        ("cookie", access.as_str()),
    ];
    let res = qs.send(Method::POST, "/logout", &headers, None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    let token = res_token(&qs.login("alice", "alice-password").await);
    let res = qs.post("/logout", Some(&token), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
}

fn res_token(res: &Resp) -> String {
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    res.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn cookie_mode_is_secure_by_default() {
    let qs = Quickstart::start_with(&[("COOKIE_MODE", "1")]).await;
    let res = qs.login("alice", "alice-password").await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    for name in ["access_token", "refresh_token"] {
        let set = res.set_cookie(name);
        assert!(
            cookie_attributes(&set).contains(&"Secure".to_owned()),
            "{set}"
        );
    }
}

#[test]
fn bad_cookie_mode_value_is_refused() {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut child = ChildGuard::spawn_example(
        "quickstart",
        &[
            ("BIND", &bind),
            ("JWT_SECRET", SECRET),
            ("COOKIE_MODE", "maybe"),
        ],
    );
    let status = child.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}");
    assert!(child.log().contains("COOKIE_MODE"), "{}", child.log());
}

/// Two quickstart instances on one Redis share refresh tokens and revocations: a refresh on
/// A and a reuse of the spent token on B revoke the session on both.
#[tokio::test]
async fn two_instances_share_sessions_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Quickstart::start_with(&[("REDIS_URL", &url)]).await;
    let b = Quickstart::start_with(&[("REDIS_URL", &url)]).await;
    assert!(a.child.log().contains("Redis at"), "{}", a.child.log());

    let first = a.pair("alice", "alice-password").await;
    assert_eq!(b.me(&first.access).await, StatusCode::OK);

    // Refresh on A, replay the spent token on B: B sees the reuse.
    let res = a.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let second = token_pair(&res);
    let res = b.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res:?}");
    assert_eq!(error_code(&res), "invalid_grant");
    // The session is revoked on both instances.
    b.eventually_me(&second.access, StatusCode::UNAUTHORIZED)
        .await;
    a.eventually_me(&second.access, StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(
        error_code(&a.refresh(&second.refresh).await),
        "invalid_grant"
    );

    // Revocation on B of a session started on A.
    let pair = a.pair("alice", "alice-password").await;
    assert_eq!(b.revoke(&pair.refresh).await.status, StatusCode::OK);
    a.eventually_me(&pair.access, StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(error_code(&a.refresh(&pair.refresh).await), "invalid_grant");

    // Log out everywhere on B ends alice's sessions on A.
    let on_a = a.pair("alice", "alice-password").await;
    let on_b = b.pair("alice", "alice-password").await;
    let res = b.post("/logout-all", Some(&on_b.access), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    a.eventually_me(&on_a.access, StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(error_code(&a.refresh(&on_a.refresh).await), "invalid_grant");

    drop((a, b));
    drop(redis);
}

/// `/login` takes JSON or a form, as `/token` and `/revoke` do; anything else is a 400.
#[tokio::test]
async fn login_takes_json_or_a_form() {
    let qs = Quickstart::start().await;
    let res = qs
        .send(
            Method::POST,
            "/login",
            &[],
            Some((
                FORM,
                form(&[("username", "alice"), ("password", "alice-password")]),
            )),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let access = token_pair(&res).access;
    assert_eq!(qs.me(&access).await, StatusCode::OK);
    let res = qs
        .send(
            Method::POST,
            "/login",
            &[],
            Some((FORM, form(&[("username", "alice"), ("password", "wrong")]))),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    for (content_type, body) in [
        ("text/plain", "alice:alice-password".to_owned()),
        (FORM, "username=alice".to_owned()),
        ("application/json", "{".to_owned()),
    ] {
        let res = qs
            .send(Method::POST, "/login", &[], Some((content_type, body)))
            .await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{content_type}: {res:?}"
        );
        assert_eq!(error_code(&res), "invalid_request");
    }
}

/// With `DATABASE_URL=sqlite://…` revocations and refresh tokens survive a restart: the
/// restarted quickstart refuses what was revoked before it stopped (a logged-out access token,
/// a revoked session, a spent refresh token) and honours the refresh token it handed out.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_keeps_sessions_and_revocations_across_a_restart() {
    let file = sql_support::TempSqlite::new();
    let url = file.url();
    let qs = Quickstart::start_with(&[("DATABASE_URL", &url)]).await;
    assert!(
        qs.child.log().contains("the database at sqlite://"),
        "{}",
        qs.child.log()
    );
    let kept = qs.pair("alice", "alice-password").await;
    let logged_out = qs.pair("alice", "alice-password").await;
    let res = qs.post("/logout", Some(&logged_out.access), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    let revoked = qs.pair("admin", "admin-password").await;
    assert_eq!(qs.revoke(&revoked.refresh).await.status, StatusCode::OK);
    let spent = qs.pair("alice", "alice-password").await;
    let res = qs.refresh(&spent.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let successor = token_pair(&res);
    drop(qs);

    let qs = Quickstart::start_with(&[("DATABASE_URL", &url)]).await;
    assert_eq!(qs.me(&kept.access).await, StatusCode::OK);
    assert_eq!(qs.me(&logged_out.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_code(&qs.refresh(&logged_out.refresh).await),
        "invalid_grant"
    );
    assert_eq!(qs.me(&revoked.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_code(&qs.refresh(&revoked.refresh).await),
        "invalid_grant"
    );
    // The refresh token handed out before the restart works after it.
    let res = qs.refresh(&kept.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    // The spent token replayed after the restart is reuse: its session ends.
    assert_eq!(
        error_code(&qs.refresh(&spent.refresh).await),
        "invalid_grant"
    );
    qs.eventually_me(&successor.access, StatusCode::UNAUTHORIZED)
        .await;
}

/// Two quickstarts on one PostgreSQL database share refresh tokens and revocations, as on
/// Redis; the database URL's password never reaches the log.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn two_instances_share_sessions_through_postgres() {
    let pg = postgres_server::PostgresServer::start();
    // trust authentication: the password is ignored by the server, and must not be logged.
    let url = pg
        .url()
        .replacen("postgres@", "postgres:hunter2-secret@", 1);
    let a = Quickstart::start_with(&[("DATABASE_URL", &url)]).await;
    let b = Quickstart::start_with(&[("DATABASE_URL", &url)]).await;
    assert!(
        a.child.log().contains("the database at postgres://"),
        "{}",
        a.child.log()
    );

    let first = a.pair("alice", "alice-password").await;
    assert_eq!(b.me(&first.access).await, StatusCode::OK);
    let res = a.refresh(&first.refresh).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let second = token_pair(&res);
    // The spent token replayed on B: reuse, the session ends on both instances.
    assert_eq!(
        error_code(&b.refresh(&first.refresh).await),
        "invalid_grant"
    );
    b.eventually_me(&second.access, StatusCode::UNAUTHORIZED)
        .await;
    a.eventually_me(&second.access, StatusCode::UNAUTHORIZED)
        .await;
    // Log out everywhere on B ends alice's session on A.
    let on_a = a.pair("alice", "alice-password").await;
    let on_b = b.pair("alice", "alice-password").await;
    let res = b.post("/logout-all", Some(&on_b.access), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    a.eventually_me(&on_a.access, StatusCode::UNAUTHORIZED)
        .await;
    for log in [a.child.log(), b.child.log()] {
        assert!(!log.contains("hunter2"), "a password in the log: {log}");
    }
}
