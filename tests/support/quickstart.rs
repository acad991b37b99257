//! The real `quickstart` example binary, started on a free loopback port and driven over
//! HTTP: shared by the tests that walk its contract and those that inject faults under it.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ChildGuard, Http, Resp, free_port};

/// The quickstart's `JWT_SECRET` in tests.
pub const SECRET: &str = "quickstart-test-secret-0123456789abcdef";
/// The form content type of the token and revocation endpoints.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// One running quickstart.
pub struct Quickstart {
    // Declared first so it is dropped first; the guard kills the child when dropped.
    pub child: ChildGuard,
    pub base: String,
    pub http: Http,
}

/// What `POST /login` and `POST /token` hand out in bearer mode.
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

impl Quickstart {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the quickstart with `envs` besides `BIND` and `JWT_SECRET`.
    pub async fn start_with(envs: &[(&str, &str)]) -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let bind = addr.to_string();
        let mut all = vec![("BIND", bind.as_str()), ("JWT_SECRET", SECRET)];
        all.extend_from_slice(envs);
        let mut child = ChildGuard::spawn_example("quickstart", &all);
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.http
            .send(Method::GET, &self.url(path), token, None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        self.http
            .send(Method::POST, &self.url(path), token, body)
            .await
    }

    /// Any request: extra headers, and a body with its content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Resp {
        self.http
            .send_with(method, &self.url(path), headers, body)
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Resp {
        let body = json!({ "username": username, "password": password });
        self.post("/login", None, Some(&body)).await
    }

    /// Logs in and returns the access token, checking the token response's shape.
    pub async fn token(&self, username: &str, password: &str) -> String {
        self.pair(username, password).await.access
    }

    /// Logs in and returns both tokens, checking the token response's shape.
    pub async fn pair(&self, username: &str, password: &str) -> Pair {
        let res = self.login(username, password).await;
        assert_eq!(res.status, StatusCode::OK, "login {username}: {res:?}");
        assert_eq!(res.header("cache-control"), "no-store", "{res:?}");
        token_pair(&res)
    }

    /// The refresh grant with a form body (RFC 6749 §6).
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
        self.send(Method::POST, "/token", &[], Some((FORM, body)))
            .await
    }

    /// RFC 7009 revocation with a form body.
    pub async fn revoke(&self, token: &str) -> Resp {
        let body = form(&[("token", token)]);
        self.send(Method::POST, "/revoke", &[], Some((FORM, body)))
            .await
    }

    /// The status of `GET /me` with `token`.
    pub async fn me(&self, token: &str) -> StatusCode {
        self.get("/me", Some(token)).await.status
    }

    /// The session (`sid`) of an access token, as `GET /me` shows it.
    pub async fn sid(&self, token: &str) -> String {
        let res = self.get("/me", Some(token)).await;
        assert_eq!(res.status, StatusCode::OK, "{res:?}");
        res.json()["sid"].as_str().expect("sid").to_owned()
    }

    /// Polls `GET /me` with `token` until it answers `expected` (revocations reach other
    /// instances through Redis pub/sub, a moment later).
    pub async fn eventually_me(&self, token: &str, expected: StatusCode) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.me(token).await;
            if status == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "GET /me stayed {status}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A bearer-mode token response: checks its shape and returns its tokens.
pub fn token_pair(res: &Resp) -> Pair {
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 900, "{body}");
    assert!(body["scope"].is_string(), "{body}");
    let field = |name: &str| {
        body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .to_owned()
    };
    Pair {
        access: field("access_token"),
        refresh: field("refresh_token"),
    }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The OAuth error code of a JSON error response.
pub fn error_code(res: &Resp) -> String {
    res.json()["error"].as_str().unwrap_or_default().to_owned()
}
