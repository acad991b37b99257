//! Quickstart: log in, call protected routes, log out.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Serves on `127.0.0.1:3000` (`BIND` overrides) and prints ready-to-paste `curl` commands.
//!
//! - `JWT_SECRET`: the HS256 secret, at least 32 bytes. Unset: a random one (tokens die with
//!   the process).
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379/`): share revocations through Redis, so every
//!   instance of the quickstart on that Redis refuses a logged-out token. Unset: in memory.
//! - `RUST_LOG`: log filter, default `info,tower_token_auth=debug` (logs go to stderr).
//!
//! Tokens carry `iss` = `aud` = `quickstart`, `sub`, `scope`, `jti`, `iat` and a 15-minute
//! `exp`. Any HS256 token signed with `JWT_SECRET` that carries `iss`, `aud`, `exp` and `sub`
//! is accepted, whichever library minted it.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /login` `{"username","password"}` | none | `{"access_token","token_type","expires_in"}` |
//! | `GET /me` | bearer | the token's claims |
//! | `GET /admin` | bearer, scope `admin` | a greeting, 403 `insufficient_scope` otherwise |
//! | `POST /logout` | bearer | 204; the token is refused from then on |
//! | `GET /health` | none | `ok` |
//!
//! Demo users: `alice` / `alice-password` (scopes `read write`) and `admin` / `admin-password`
//! (scopes `read write admin`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use tower_token_auth::revocation::{
    RedisRevocationStore, RedisStoreConfig, RevocationError, RevocationStore,
};
use tower_token_auth::{
    Algorithm, Claims, JwtAuthLayer, KeySet, Logout, MemoryStore, RequireScopeLayer, SigningKey,
    TokenIssuer, Verifier, VerifyingKey,
};
use tracing_subscriber::EnvFilter;

/// `iss` and `aud` of every token this service mints and accepts.
const ISSUER: &str = "quickstart";
/// Lifetime of access tokens.
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_BIND: &str = "127.0.0.1:3000";
/// HS256 needs a secret at least as long as its hash output (RFC 7518 §3.2).
const MIN_SECRET_LEN: usize = 32;

/// The demo users: name, password, scopes. Passwords are hashed at start-up.
const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "read write"),
    ("admin", "admin-password", "read write admin"),
];

struct User {
    /// Argon2id hash in PHC string format.
    password_hash: String,
    scope: &'static str,
}

struct AppState {
    users: HashMap<&'static str, User>,
    /// Verified against when the user is unknown, so both cases cost the same time.
    dummy_hash: String,
    issuer: TokenIssuer,
    logout: Logout,
}

type SharedState = Arc<AppState>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_token_auth=debug")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let secret = load_secret()?;
    let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &secret)?)?;
    let verifier = Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(ISSUER)
        .require_claims(["exp", "sub"])
        // Repeat requests with a token skip the signature check; exp/nbf and revocation are
        // still checked every time.
        .verified_token_cache(16 << 20)
        .build()?;
    let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret)?)
        .issuer(ISSUER)
        .audience(ISSUER)
        .ttl(ACCESS_TOKEN_TTL);

    let auth = JwtAuthLayer::new(verifier).with_shared_revocation_store(revocation_store().await?);
    let users = demo_users()?;
    // Any user's hash will do: same parameters, same cost.
    let dummy_hash = users[DEMO_USERS[0].0].password_hash.clone();
    let state = Arc::new(AppState {
        users,
        dummy_hash,
        issuer,
        logout: auth.logout(),
    });

    let protected = Router::new()
        .route(
            "/admin",
            get(admin).route_layer(RequireScopeLayer::new("admin")?),
        )
        .route("/me", get(me))
        .route("/logout", post(logout))
        // `route_layer`: only the routes above need a token; unknown paths stay 404.
        .route_layer(auth);
    let app = Router::new()
        .route("/health", get(health))
        .route("/login", post(login))
        .merge(protected)
        .with_state(state);

    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "quickstart listening");
    print_walkthrough(addr);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The HS256 secret: `JWT_SECRET`, or 32 random bytes.
fn load_secret() -> anyhow::Result<Vec<u8>> {
    match std::env::var("JWT_SECRET") {
        Ok(secret) => {
            if secret.len() < MIN_SECRET_LEN {
                bail!(
                    "JWT_SECRET is {} bytes long; HS256 needs at least {MIN_SECRET_LEN} bytes \
                     (try: export JWT_SECRET=$(openssl rand -hex 32))",
                    secret.len()
                );
            }
            Ok(secret.into_bytes())
        }
        Err(std::env::VarError::NotPresent) => {
            tracing::warn!(
                "JWT_SECRET is not set: using a random secret, tokens stop working when this process exits"
            );
            let mut secret = vec![0u8; MIN_SECRET_LEN];
            rand::rng().fill_bytes(&mut secret);
            Ok(secret)
        }
        Err(std::env::VarError::NotUnicode(_)) => bail!("JWT_SECRET is not valid UTF-8"),
    }
}

/// The one place that picks the revocation store: Redis when `REDIS_URL` is set (revocations
/// shared by every instance on that Redis), else an in-process [`MemoryStore`] (lost on
/// restart, not shared).
async fn revocation_store() -> anyhow::Result<Arc<dyn RevocationStore>> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let store = RedisRevocationStore::connect(&url, RedisStoreConfig::default()).await?;
            if !store.wait_live(Duration::from_secs(3)).await {
                tracing::warn!(
                    "Redis at {url} is not answering yet: token checks answer 503 until it does"
                );
            }
            tracing::info!("revocation store: Redis at {url}");
            Ok(Arc::new(store))
        }
        _ => {
            tracing::info!("revocation store: in memory (set REDIS_URL to share it through Redis)");
            Ok(Arc::new(MemoryStore::new()))
        }
    }
}

fn demo_users() -> anyhow::Result<HashMap<&'static str, User>> {
    DEMO_USERS
        .iter()
        .map(|&(name, password, scope)| {
            let password_hash = hash_password(password)?;
            Ok((
                name,
                User {
                    password_hash,
                    scope,
                },
            ))
        })
        .collect()
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .and_then(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed))
        .is_ok()
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// `POST /login`: checks the password and answers an OAuth-style token response.
async fn login(State(state): State<SharedState>, Json(req): Json<LoginRequest>) -> Response {
    // Argon2 is deliberately slow: keep it off the async worker threads.
    let checked = {
        let state = state.clone();
        let username = req.username.clone();
        tokio::task::spawn_blocking(move || {
            let user = state.users.get(username.as_str());
            let hash = user.map_or(state.dummy_hash.as_str(), |u| u.password_hash.as_str());
            let ok = verify_password(&req.password, hash);
            user.filter(|_| ok).map(|u| u.scope)
        })
        .await
    };
    let scope = match checked {
        Ok(Some(scope)) => scope,
        Ok(None) => {
            tracing::info!(username = %req.username, "login refused");
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({
                    "error": "invalid_grant",
                    "error_description": "wrong username or password",
                })),
            )
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "password check failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let issued = match state.issuer.issue(&req.username, scope) {
        Ok(issued) => issued,
        Err(e) => {
            tracing::error!(error = %e, "could not issue a token");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    tracing::info!(username = %req.username, jti = %issued.jti, "logged in");
    let mut res = Json(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    }))
    .into_response();
    // Token responses must not be cached (RFC 6749 §5.1).
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /me`: the verified claims of the presented token.
async fn me(claims: Claims) -> Json<Claims> {
    Json(claims)
}

/// `GET /admin`: reached only with scope `admin` (see `RequireScopeLayer` in `main`).
async fn admin(claims: Claims) -> Json<serde_json::Value> {
    Json(json!({ "message": "welcome to the admin area", "sub": claims.sub }))
}

/// `POST /logout`: revokes the presented token until its `exp`.
async fn logout(
    State(state): State<SharedState>,
    claims: Claims,
) -> Result<StatusCode, RevocationError> {
    state.logout.revoke(&claims).await?;
    tracing::info!(sub = ?claims.sub, jti = ?claims.jti, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

async fn health() -> &'static str {
    "ok"
}

fn print_walkthrough(addr: SocketAddr) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let base = format!("http://{host}");
    println!(
        r#"
tower-token-auth quickstart on {base}   (Ctrl-C to stop)

# log in as alice (scopes: read write) and keep the access token
TOKEN=$(curl -s -X POST {base}/login -H 'content-type: application/json' \
  -d '{{"username":"alice","password":"alice-password"}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

# who am I? (200, the token's claims)
curl -i {base}/me -H "Authorization: Bearer $TOKEN"

# alice lacks the admin scope (403, WWW-Authenticate: Bearer error="insufficient_scope")
curl -i {base}/admin -H "Authorization: Bearer $TOKEN"

# log out (204), then the same token is refused (401, error="invalid_token")
curl -i -X POST {base}/logout -H "Authorization: Bearer $TOKEN"
curl -i {base}/me -H "Authorization: Bearer $TOKEN"

# the admin user may enter /admin
ADMIN_TOKEN=$(curl -s -X POST {base}/login -H 'content-type: application/json' \
  -d '{{"username":"admin","password":"admin-password"}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
curl -i {base}/admin -H "Authorization: Bearer $ADMIN_TOKEN"
"#
    );
}
