//! Runs the real `quickstart` example binary and walks its contract over HTTP on 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{ChildGuard, Http, free_port};

const SECRET: &str = "quickstart-test-secret-0123456789abcdef";

struct Quickstart {
    // Declared first so it is dropped first; the guard kills the child when dropped.
    child: ChildGuard,
    base: String,
    http: Http,
}

impl Quickstart {
    async fn start() -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let bind = addr.to_string();
        let mut child =
            ChildGuard::spawn_example("quickstart", &[("BIND", &bind), ("JWT_SECRET", SECRET)]);
        let http = Http::new();
        // Start-up hashes the demo passwords with Argon2, slow-ish in debug builds.
        child
            .wait_ready(&http, addr, "/health", Duration::from_secs(10))
            .await;
        Self {
            child,
            base: format!("http://{addr}"),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> support::Resp {
        self.http
            .send(Method::GET, &self.url(path), token, None)
            .await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> support::Resp {
        self.http
            .send(Method::POST, &self.url(path), token, body)
            .await
    }

    async fn login(&self, username: &str, password: &str) -> support::Resp {
        let body = json!({ "username": username, "password": password });
        self.post("/login", None, Some(&body)).await
    }

    /// Logs in and returns the access token, checking the token response's shape.
    async fn token(&self, username: &str, password: &str) -> String {
        let res = self.login(username, password).await;
        assert_eq!(res.status, StatusCode::OK, "login {username}: {res:?}");
        let body = res.json();
        assert_eq!(body["token_type"], "Bearer", "{body}");
        assert_eq!(body["expires_in"], 900, "{body}");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

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
    let exp = me["exp"].as_u64().expect("numeric exp");
    assert!(exp > now() && exp <= now() + 15 * 60 + 5, "exp {exp}");

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
    let t = now();
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

    // ...but not one meant for another audience.
    let wrong_aud = foreign_token(&json!({
        "iss": "quickstart", "aud": "elsewhere", "sub": "bob", "exp": t + 300,
    }));
    let res = qs.get("/me", Some(&wrong_aud)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    assert!(res.www_authenticate().contains(r#"error="invalid_token""#));

    // Logout revokes exactly the presented token.
    let res = qs.post("/logout", Some(&alice), None).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{res:?}");
    let res = qs.get("/me", Some(&alice)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    assert!(
        res.www_authenticate().contains(r#"error="invalid_token""#),
        "{:?}",
        res.www_authenticate()
    );
    let res = qs.get("/me", Some(&admin)).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "other tokens stay valid: {res:?}"
    );

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
