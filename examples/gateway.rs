//! Gateway mode: the same verifier in front of services not written in Rust, through nginx's
//! `auth_request`.
//!
//! ```sh
//! JWT_SECRET=$(openssl rand -hex 32) cargo run --example gateway
//! ```
//!
//! nginx sends every client request's headers to `GET /auth` (see `docs/nginx/`); the gateway
//! answers:
//!
//! | answer | when | what nginx does |
//! |---|---|---|
//! | 200 + `X-Auth-Sub`, `X-Auth-Scope`, `X-Auth-Jti` | valid, unrevoked token | proxies the request, passing the claims on |
//! | 401 + `WWW-Authenticate: Bearer …` | no token, bad token, revoked, malformed header | 401 to the client, with the challenge |
//! | 403 + `X-Auth-Error: temporarily_unavailable` | the revocation store cannot answer | the documented config turns it into 503 + `Retry-After`; a bare config answers 403 |
//!
//! nginx treats any other status from `auth_request` as an error (500 to the client), so the
//! library's 400 `invalid_request` becomes 401 (the challenge still says
//! `error="invalid_request"`) and its 503 (fail closed) becomes the 403 above. Neither ever
//! becomes an accept. `docs/nginx/README.md` explains the choice.
//!
//! Claims travel as headers, so they must be header-safe: a `sub` that is not visible ASCII
//! (or longer than 1 KiB) refuses the request with 401; such a `scope` or `jti` is left out.
//!
//! Environment:
//!
//! - `BIND`: listen address, default `127.0.0.1:3300`.
//! - `JWT_SECRET`: HS256 secret, at least 32 bytes. Unset: a random one, with a warning.
//! - `JWT_PUBLIC_KEY_PEM` + `JWT_ALG` (e.g. `RS256`, `ES256`, `EdDSA`): verify with this public
//!   key instead (the PEM text, or a path to it). `JWKS_FILE`: or with this JWK set (keys by
//!   `kid`). At most one of `JWT_SECRET`, `JWT_PUBLIC_KEY_PEM`, `JWKS_FILE`.
//! - `JWT_ISSUER`, `JWT_AUDIENCE`: the accepted `iss` and `aud`, default `gateway`.
//! - `AUTH_COOKIE`: the cookie read when there is no bearer token, default `access_token`.
//! - `REDIS_URL`: the revocation store shared with the services that log users out (and with
//!   other gateway instances). Unset: in memory, this process only.
//! - `RUST_LOG`: log filter, default `info,tower_token_auth=debug` (stderr).
//!
//! `POST /logout` (bearer or cookie) revokes the presented token in the same store: 204.
//! `GET /health` answers `ok`.

#[path = "shared/mod.rs"]
mod shared;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use rand::RngCore;
use shared::{env_or, without_password};
use tower_token_auth::revocation::RevocationStore;
use tower_token_auth::{
    AccessCookie, Algorithm, AuthError, AuthErrorKind, Claims, InvalidToken, JwtAuthLayer, KeySet,
    Logout, MemoryStore, Rfc6750Responder, Verifier, VerifyingKey,
};

const DEFAULT_BIND: &str = "127.0.0.1:3300";
const DEFAULT_ISSUER: &str = "gateway";
const DEFAULT_COOKIE: &str = "access_token";
/// HS256 needs a secret at least as long as its hash output (RFC 7518 §3.2).
const MIN_SECRET_LEN: usize = 32;
/// Longest claim forwarded as a header; nginx's default buffer for the answer's headers is
/// 4 or 8 KiB, and an answer that overflows it turns into a 500.
const MAX_CLAIM_HEADER_LEN: usize = 1024;

const X_AUTH_SUB: HeaderName = HeaderName::from_static("x-auth-sub");
const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");
const X_AUTH_JTI: HeaderName = HeaderName::from_static("x-auth-jti");
const X_AUTH_ERROR: HeaderName = HeaderName::from_static("x-auth-error");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();

    let issuer = env_or("JWT_ISSUER", DEFAULT_ISSUER)?;
    let audience = env_or("JWT_AUDIENCE", DEFAULT_ISSUER)?;
    let cookie = env_or("AUTH_COOKIE", DEFAULT_COOKIE)?;
    let verifier = Verifier::builder(load_keys()?)
        .issuer(&issuer)
        .audience(&audience)
        .require_claims(["exp", "sub"])
        // Every request behind nginx comes through here: repeat tokens skip the signature
        // check (exp/nbf and revocation are still checked every time).
        .verified_token_cache(16 << 20)
        .build()?;

    let auth = JwtAuthLayer::new(verifier)
        .with_cookie(AccessCookie::new(cookie.clone()))?
        .with_shared_revocation_store(revocation_store().await?)
        // nginx's auth subrequest is always a GET; an OPTIONS reaching /auth must not pass
        // without a token.
        .allow_cors_preflight(false);
    // /logout is called by clients, not by nginx: plain RFC 6750 answers there.
    let logout_auth = auth.clone().with_responder(Rfc6750Responder::default());
    let auth = auth.with_responder(auth_request_responder);
    let logout = auth.logout();

    let app = Router::new()
        .route("/auth", get(check).route_layer(auth))
        .route("/logout", post(logout_handler).route_layer(logout_auth))
        .route("/health", get(|| async { "ok" }))
        .with_state(logout);

    let bind = env_or("BIND", DEFAULT_BIND)?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, %issuer, %audience, %cookie, "gateway listening");
    print_wiring(addr);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn env_opt(name: &str) -> anyhow::Result<Option<String>> {
    Ok(Some(env_or(name, "")?).filter(|v| !v.is_empty()))
}

/// The verifying keys: `JWT_PUBLIC_KEY_PEM` + `JWT_ALG`, `JWKS_FILE`, or the HS256 `JWT_SECRET`
/// (random when nothing is set).
fn load_keys() -> anyhow::Result<KeySet> {
    let secret = env_opt("JWT_SECRET")?;
    let pem = env_opt("JWT_PUBLIC_KEY_PEM")?;
    let jwks = env_opt("JWKS_FILE")?;
    if [&secret, &pem, &jwks]
        .iter()
        .filter(|v| v.is_some())
        .count()
        > 1
    {
        bail!("set only one of JWT_SECRET, JWT_PUBLIC_KEY_PEM, JWKS_FILE");
    }
    if let Some(path) = jwks {
        let json = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        return KeySet::from_jwks_json(&json).with_context(|| format!("JWKS_FILE {path}"));
    }
    if let Some(pem) = pem {
        let pem = if pem.trim_start().starts_with("-----BEGIN") {
            pem
        } else {
            std::fs::read_to_string(&pem).with_context(|| format!("reading {pem}"))?
        };
        let alg = env_opt("JWT_ALG")?.context("JWT_PUBLIC_KEY_PEM needs JWT_ALG")?;
        let alg: Algorithm = alg
            .parse()
            .map_err(|_| anyhow::anyhow!("JWT_ALG {alg:?} is not a JWS algorithm"))?;
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => VerifyingKey::rsa_pem(alg, pem.as_bytes())?,
            Algorithm::ES256 | Algorithm::ES384 => VerifyingKey::ec_pem(alg, pem.as_bytes())?,
            Algorithm::EdDSA => VerifyingKey::ed_pem(pem.as_bytes())?,
            _ => bail!("JWT_ALG {alg:?} is not a public-key algorithm; use JWT_SECRET"),
        };
        return Ok(KeySet::new().with_key(key)?);
    }
    let secret = match secret {
        Some(secret) if secret.len() < MIN_SECRET_LEN => bail!(
            "JWT_SECRET is {} bytes long; HS256 needs at least {MIN_SECRET_LEN} bytes \
             (try: export JWT_SECRET=$(openssl rand -hex 32))",
            secret.len()
        ),
        Some(secret) => secret.into_bytes(),
        None => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret, so no token minted elsewhere verifies"
            );
            let mut secret = vec![0u8; MIN_SECRET_LEN];
            rand::rng().fill_bytes(&mut secret);
            secret
        }
    };
    Ok(KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &secret)?)?)
}

/// Redis when `REDIS_URL` is set, else an in-process [`MemoryStore`].
async fn revocation_store() -> anyhow::Result<Arc<dyn RevocationStore>> {
    let Some(url) = env_opt("REDIS_URL")? else {
        tracing::info!("revocation store: in memory (set REDIS_URL to share it through Redis)");
        return Ok(Arc::new(MemoryStore::new()));
    };
    #[cfg(feature = "redis")]
    {
        use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
        // Fail closed (the default): if Redis cannot answer, requests are refused.
        let store = RedisRevocationStore::connect(&url, RedisStoreConfig::default()).await?;
        if !store.wait_live(std::time::Duration::from_secs(3)).await {
            tracing::warn!(
                "Redis at {} is not answering yet: requests are refused until it does",
                without_password(&url)
            );
        }
        tracing::info!("revocation store: Redis at {}", without_password(&url));
        Ok(Arc::new(store))
    }
    #[cfg(not(feature = "redis"))]
    {
        bail!(
            "REDIS_URL is set ({}) but this build lacks the `redis` feature",
            without_password(&url)
        )
    }
}

/// The layer's rejections, reshaped for `auth_request`, which passes on only 2xx, 401 and 403
/// and turns anything else into a 500.
fn auth_request_responder(error: &AuthError) -> Response<Bytes> {
    let mut res = error.to_response(None);
    match error.kind() {
        // Fail closed, and tell nginx why: the documented config answers 503 + Retry-After.
        AuthErrorKind::RevocationUnavailable => {
            *res.status_mut() = StatusCode::FORBIDDEN;
            res.headers_mut().insert(
                X_AUTH_ERROR,
                HeaderValue::from_static("temporarily_unavailable"),
            );
        }
        // A malformed Authorization or Cookie header: the challenge keeps error="invalid_request".
        AuthErrorKind::InvalidRequest(_) => *res.status_mut() = StatusCode::UNAUTHORIZED,
        _ => {}
    }
    res
}

/// `GET /auth`: reached only with a verified, unrevoked token. 200 with the claims as headers.
async fn check(claims: Claims) -> Response<Body> {
    let Some(sub) = claims.sub.as_deref().and_then(|s| header_safe(s, false)) else {
        // The upstream would see an authenticated request without a subject: refuse instead.
        tracing::info!(jti = ?claims.jti, "sub is not header-safe; refusing");
        let err = AuthError::invalid_token(InvalidToken::InvalidClaim("sub".into()));
        return auth_request_responder(&err).map(Body::from);
    };
    let mut res = Response::new(Body::empty());
    let headers = res.headers_mut();
    headers.insert(X_AUTH_SUB, sub);
    let scope = claims.scopes().collect::<Vec<_>>().join(" ");
    if !scope.is_empty() {
        // Dropping the scopes only takes rights away.
        match header_safe(&scope, true) {
            Some(v) => {
                headers.insert(X_AUTH_SCOPE, v);
            }
            None => tracing::warn!(jti = ?claims.jti, "scope is not header-safe; not forwarded"),
        }
    }
    if let Some(jti) = claims.jti.as_deref().and_then(|j| header_safe(j, false)) {
        headers.insert(X_AUTH_JTI, jti);
    }
    // The answer is per credential: no shared cache may keep it (the njs config in
    // docs/nginx overrides this on purpose, for a few seconds).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `value` as a header value if it is visible ASCII (and single spaces, when `spaces`), not
/// empty and at most [`MAX_CLAIM_HEADER_LEN`] bytes.
fn header_safe(value: &str, spaces: bool) -> Option<HeaderValue> {
    let ok = !value.is_empty()
        && value.len() <= MAX_CLAIM_HEADER_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() || (spaces && b == b' '));
    if ok {
        HeaderValue::from_str(value).ok()
    } else {
        None
    }
}

/// `POST /logout`: revokes the presented token in the shared store, clears the cookie.
async fn logout_handler(State(logout): State<Logout>, claims: Claims) -> Response<Body> {
    if let Err(e) = logout.revoke(&claims).await {
        tracing::warn!(error = %e, "logout failed");
        let status = match e {
            tower_token_auth::RevocationError::NotRevocable(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        return (status, e.to_string()).into_response();
    }
    tracing::info!(sub = ?claims.sub, jti = ?claims.jti, "logged out");
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = logout.removal_cookie() {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    res
}

fn print_wiring(addr: SocketAddr) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    println!(
        r#"
tower-token-auth gateway on http://{host}   (Ctrl-C to stop)

Wire nginx to it (full configs and the trade-offs: docs/nginx/):

    location / {{
        auth_request     /_auth;
        auth_request_set $auth_sub   $upstream_http_x_auth_sub;
        auth_request_set $auth_scope $upstream_http_x_auth_scope;
        auth_request_set $auth_jti   $upstream_http_x_auth_jti;
        proxy_set_header X-Auth-Sub   $auth_sub;     # always set: clients cannot spoof them
        proxy_set_header X-Auth-Scope $auth_scope;
        proxy_set_header X-Auth-Jti   $auth_jti;
        proxy_pass       http://your-app;
    }}
    location = /_auth {{
        internal;
        proxy_pass              http://{host}/auth;
        proxy_pass_request_body off;
        proxy_set_header        Content-Length "";
        proxy_set_header        X-Original-URI $request_uri;
    }}

Try it directly:

    curl -i http://{host}/auth -H "Authorization: Bearer $TOKEN"    # 200 + X-Auth-* or 401
    curl -i -X POST http://{host}/logout -H "Authorization: Bearer $TOKEN"   # revoke: 204
"#
    );
}
