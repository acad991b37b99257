//! Gateway mode end to end: a real nginx configured from `docs/nginx/` (the documented files,
//! placeholders filled in), the `gateway` example binary on a real Redis, and an upstream that
//! echoes the `X-Auth-*` headers it receives. Everything on 127.0.0.1.
//!
//! Needs nginx and libnginx-mod-http-js (njs 0.7.9 on Debian bookworm) and redis-server:
//! `scripts/test.sh` installs them. The gateway binary comes from `cargo build --examples`
//! (or a plain `cargo test`).

#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::HeaderMap;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use nginx::Nginx;
use redis_server::RedisServer;
use support::{ChildGuard, Http, Resp, free_port, now_secs};

const SECRET: &str = "gateway-test-secret-0123456789abcdef";
/// `proxy_cache_valid 200 5s` in docs/nginx/njs.conf.
const NJS_CACHE_TTL: Duration = Duration::from_secs(5);

/// What the upstream saw: every `X-Auth-*` or `X_Auth_*` header, by lowercase name.
type Seen = BTreeMap<String, Vec<String>>;

/// The protected application: counts requests and echoes the auth headers as JSON.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut seen = Seen::new();
                for (name, value) in &headers {
                    let n = name.as_str();
                    if n.starts_with("x-auth") || n.starts_with("x_auth") {
                        seen.entry(n.to_owned())
                            .or_default()
                            .push(value.to_str().unwrap_or("<not ASCII>").to_owned());
                    }
                }
                Json(seen)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("upstream server");
        });
        Self { addr, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// nginx + gateway + Redis + upstream. Fields drop in order: nginx first.
struct Stack {
    nginx: Nginx,
    gateway: ChildGuard,
    gateway_addr: SocketAddr,
    redis: RedisServer,
    upstream: Upstream,
}

impl Stack {
    /// `site`: a file of docs/nginx.
    async fn start(site: &str) -> Self {
        let redis = RedisServer::start();
        let upstream = Upstream::start().await;
        let gateway_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let bind = gateway_addr.to_string();
        let mut gateway = ChildGuard::spawn_example(
            "gateway",
            &[
                ("BIND", bind.as_str()),
                ("JWT_SECRET", SECRET),
                ("REDIS_URL", redis.url().as_str()),
            ],
        );
        gateway
            .wait_ready(
                &Http::new(),
                gateway_addr,
                "/health",
                Duration::from_secs(10),
            )
            .await;
        let upstream_addr = upstream.addr.to_string();
        let njs_dir = nginx::docs_file("").display().to_string();
        let mut vars = vec![
            ("__GATEWAY__", bind.as_str()),
            ("__UPSTREAM__", upstream_addr.as_str()),
        ];
        if site.starts_with("njs") {
            vars.push(("__NJS_DIR__", njs_dir.as_str()));
        }
        let nginx = Nginx::start(site, &vars);
        Self {
            nginx,
            gateway,
            gateway_addr,
            redis,
            upstream,
        }
    }

    /// `GET /app` through nginx.
    async fn get(&self, headers: &[(&str, &str)]) -> Resp {
        nginx::get(&self.nginx.url("/app"), headers).await
    }

    /// Through nginx with `Authorization: Bearer <token>`.
    async fn get_bearer(&self, token: &str) -> Resp {
        self.get(&[("authorization", &format!("Bearer {token}"))])
            .await
    }

    /// Accepted, and what the upstream saw.
    async fn accepted(&self, headers: &[(&str, &str)]) -> Seen {
        let before = self.upstream.hits();
        let res = self.get(headers).await;
        assert_eq!(res.status, StatusCode::OK, "{res:?}");
        assert_eq!(self.upstream.hits(), before + 1, "upstream reached once");
        serde_json::from_slice(&res.body).expect("upstream JSON")
    }

    /// Refused with `status`, without reaching the upstream.
    async fn refused(&self, headers: &[(&str, &str)], status: StatusCode) -> Resp {
        let before = self.upstream.hits();
        let res = self.get(headers).await;
        assert_eq!(res.status, status, "{res:?}");
        assert_eq!(self.upstream.hits(), before, "upstream must not be reached");
        res
    }

    /// `POST /logout` on the gateway itself (not exposed through nginx).
    async fn logout(&self, token: &str) {
        let url = format!("http://{}/logout", self.gateway_addr);
        let res = Http::new()
            .send(Method::POST, &url, Some(token), None)
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "logout: {res:?}");
    }
}

/// An HS256 token with iss = aud = "gateway", exp in 5 minutes, and `extra` on top (a null
/// removes a claim).
fn mint(extra: Value) -> String {
    let t = now_secs();
    let mut claims = json!({
        "iss": "gateway", "aud": "gateway", "iat": t, "exp": t + 300, "scope": "read write",
    });
    for (k, v) in extra.as_object().expect("an object") {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    sign(&Header::new(Algorithm::HS256), &claims, &key_hs256())
}

fn key_hs256() -> EncodingKey {
    EncodingKey::from_secret(SECRET.as_bytes())
}

fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    // jsonwebtoken 11 needs a process-wide crypto provider when both of its backends are
    // compiled in (as with `--all-features`); with one backend it picks it by itself.
    #[cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(header, claims, key).expect("signing")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn one(seen: &Seen, name: &str) -> Option<String> {
    let values = seen.get(name)?;
    assert_eq!(values.len(), 1, "{name} more than once: {seen:?}");
    Some(values[0].clone())
}

/// The contract shared by both configs.
async fn common_checks(s: &Stack) {
    // No token (and a spoofed identity): 401 with a bare challenge, copied by nginx.
    let res = s
        .refused(&[("x-auth-sub", "admin")], StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(res.www_authenticate(), "Bearer", "{res:?}");

    // Valid: the upstream sees the token's claims, not the client's X-Auth-* headers
    // (with dashes or underscores).
    let alice = mint(json!({ "sub": "alice", "jti": "alice-1" }));
    let seen = s
        .accepted(&[
            ("authorization", &bearer(&alice)),
            ("x-auth-sub", "admin"),
            ("x-auth-scope", "admin"),
            ("x-auth-jti", "forged"),
            ("x_auth_sub", "admin"),
        ])
        .await;
    assert_eq!(
        one(&seen, "x-auth-sub").as_deref(),
        Some("alice"),
        "{seen:?}"
    );
    assert_eq!(one(&seen, "x-auth-scope").as_deref(), Some("read write"));
    assert_eq!(one(&seen, "x-auth-jti").as_deref(), Some("alice-1"));
    assert!(!seen.contains_key("x_auth_sub"), "{seen:?}");

    // From the cookie, among others.
    let bob = mint(json!({ "sub": "bob", "jti": "bob-1", "scope": "read" }));
    let seen = s
        .accepted(&[("cookie", &format!("theme=dark; access_token={bob}"))])
        .await;
    assert_eq!(one(&seen, "x-auth-sub").as_deref(), Some("bob"), "{seen:?}");
    assert_eq!(one(&seen, "x-auth-scope").as_deref(), Some("read"));

    // A claim the token lacks is absent upstream, even when the client sent it.
    let no_jti = mint(json!({ "sub": "carol", "scope": null }));
    let seen = s
        .accepted(&[
            ("authorization", &bearer(&no_jti)),
            ("x-auth-jti", "forged"),
            ("x-auth-scope", "admin"),
        ])
        .await;
    assert_eq!(one(&seen, "x-auth-sub").as_deref(), Some("carol"));
    assert_eq!(seen.get("x-auth-jti"), None, "{seen:?}");
    assert_eq!(seen.get("x-auth-scope"), None, "{seen:?}");

    // A scope that cannot be a header value is dropped; the request still passes.
    let odd_scope = mint(json!({ "sub": "dave", "jti": "dave-1", "scope": "read \u{e9}crire" }));
    let seen = s.accepted(&[("authorization", &bearer(&odd_scope))]).await;
    assert_eq!(one(&seen, "x-auth-sub").as_deref(), Some("dave"));
    assert_eq!(seen.get("x-auth-scope"), None, "{seen:?}");

    // A sub that cannot be a header value (or tries to inject one) refuses the request.
    for sub in ["jos\u{e9}", "alice\r\nX-Auth-Scope: admin", "two words"] {
        let token = mint(json!({ "sub": sub, "jti": "odd-sub" }));
        let res = s
            .refused(
                &[("authorization", &bearer(&token))],
                StatusCode::UNAUTHORIZED,
            )
            .await;
        assert!(
            res.www_authenticate().contains(r#"error="invalid_token""#),
            "{sub:?}: {res:?}"
        );
    }

    // Bad tokens: 401 invalid_token with the gateway's description.
    let t = now_secs();
    let cases = [
        (
            mint(json!({ "sub": "eve", "exp": t - 120 })),
            "token expired",
        ),
        (
            mint(json!({ "sub": "eve", "aud": "elsewhere" })),
            "invalid audience",
        ),
        (
            sign(
                &Header::new(Algorithm::HS256),
                &json!({ "iss": "gateway", "aud": "gateway", "sub": "eve", "exp": t + 300 }),
                &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!"),
            ),
            "invalid signature",
        ),
    ];
    for (token, why) in &cases {
        let res = s
            .refused(
                &[("authorization", &bearer(token))],
                StatusCode::UNAUTHORIZED,
            )
            .await;
        let challenge = res.www_authenticate();
        assert!(
            challenge.contains(r#"error="invalid_token""#) && challenge.contains(why),
            "{why}: {challenge:?}"
        );
    }

    // A malformed header is the library's 400, which auth_request cannot pass: 401 instead.
    // (nginx itself answers 400 to a duplicate Authorization header.)
    let twice = format!("access_token={alice}; access_token={bob}");
    let malformed: [&[(&str, &str)]; 2] =
        [&[("authorization", "Bearer a b")], &[("cookie", &twice)]];
    for headers in malformed {
        let res = s.refused(headers, StatusCode::UNAUTHORIZED).await;
        assert!(
            res.www_authenticate()
                .contains(r#"error="invalid_request""#),
            "{headers:?}: {res:?}"
        );
    }

    // Revoked before nginx ever saw it: refused at once, cache or not.
    let frank = mint(json!({ "sub": "frank", "jti": "frank-1" }));
    s.logout(&frank).await;
    let res = s
        .refused(
            &[("authorization", &bearer(&frank))],
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert!(res.www_authenticate().contains("token revoked"), "{res:?}");
}

/// Redis goes away: a token the gateway cannot check is refused with 503 + Retry-After
/// (the gateway's 403 + X-Auth-Error, mapped back by the config), never accepted.
async fn redis_down_checks(s: &mut Stack) {
    s.redis.kill();
    let token = mint(json!({ "sub": "grace", "jti": "grace-1" }));
    let res = s
        .refused(
            &[("authorization", &bearer(&token))],
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
    assert_eq!(
        res.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "{res:?}"
    );
    assert!(s.gateway.try_exit().is_none(), "gateway still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_auth_request() {
    let mut s = Stack::start("auth_request.conf").await;
    common_checks(&s).await;

    // No cache: revoked after use is refused on the very next request.
    let token = mint(json!({ "sub": "heidi", "jti": "heidi-1" }));
    s.accepted(&[("authorization", &bearer(&token))]).await;
    s.logout(&token).await;
    let res = s.get_bearer(&token).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");

    redis_down_checks(&mut s).await;
    assert!(!s.nginx.error_log().contains("[emerg]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn njs_cached_auth_request() {
    let mut s = Stack::start("njs.conf").await;
    common_checks(&s).await;

    // Cached accepts are per credential: other tokens, or none, never hit another's entry.
    let ivan = mint(json!({ "sub": "ivan", "jti": "ivan-1" }));
    let judy = mint(json!({ "sub": "judy", "jti": "judy-1" }));
    for _ in 0..2 {
        let seen = s.accepted(&[("authorization", &bearer(&ivan))]).await;
        assert_eq!(one(&seen, "x-auth-sub").as_deref(), Some("ivan"));
        let seen = s.accepted(&[("authorization", &bearer(&judy))]).await;
        assert_eq!(one(&seen, "x-auth-sub").as_deref(), Some("judy"));
        s.refused(&[], StatusCode::UNAUTHORIZED).await;
    }

    // The documented window: revoked after a cached accept, the token passes until the entry
    // expires, then is refused.
    s.logout(&ivan).await;
    let revoked_at = Instant::now();
    let seen = s.accepted(&[("authorization", &bearer(&ivan))]).await;
    assert_eq!(
        one(&seen, "x-auth-sub").as_deref(),
        Some("ivan"),
        "served from the cache"
    );
    let deadline = revoked_at + NJS_CACHE_TTL + Duration::from_secs(3);
    loop {
        let res = s.get_bearer(&ivan).await;
        if res.status == StatusCode::UNAUTHORIZED {
            assert!(res.www_authenticate().contains("token revoked"), "{res:?}");
            break;
        }
        assert_eq!(res.status, StatusCode::OK, "{res:?}");
        assert!(
            Instant::now() < deadline,
            "revoked token still accepted {:?} after revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The cache holds entries, keyed by a hash: no token in any cache file.
    let files = s.nginx.cache_files();
    assert!(!files.is_empty(), "nothing was cached");
    for file in &files {
        let bytes = std::fs::read(file).expect("cache file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("KEY: "), "{}: {text}", file.display());
        for token in [&ivan, &judy] {
            assert!(
                !text.contains(token.as_str()),
                "token in {}",
                file.display()
            );
        }
    }

    redis_down_checks(&mut s).await;
}

#[tokio::test]
async fn public_key_from_pem() {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let bind = addr.to_string();
    let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing/es256-public.pem");
    let mut gateway = ChildGuard::spawn_example(
        "gateway",
        &[
            ("BIND", &bind),
            ("JWT_PUBLIC_KEY_PEM", pem),
            ("JWT_ALG", "ES256"),
        ],
    );
    let http = Http::new();
    gateway
        .wait_ready(&http, addr, "/health", Duration::from_secs(10))
        .await;
    let t = now_secs();
    let claims = json!({ "iss": "gateway", "aud": "gateway", "sub": "kim", "exp": t + 300 });
    let private = include_bytes!("../src/testing/es256-private.pem");
    let es256 = sign(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(private).expect("ES256 key"),
    );
    let url = format!("http://{addr}/auth");
    let res = http.send(Method::GET, &url, Some(&es256), None).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.headers["x-auth-sub"], "kim");
    // The HS256 secret path is off: an HS256 token is refused.
    let res = http
        .send(Method::GET, &url, Some(&mint(json!({"sub": "kim"}))), None)
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
}
