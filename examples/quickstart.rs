//! Quickstart: log in, call protected routes, refresh, revoke, log out (here or everywhere).
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Serves on `127.0.0.1:3000` (`BIND` overrides) and prints ready-to-paste `curl` commands.
//!
//! - `JWT_SECRET`: the HS256 secret, at least 32 bytes. Unset: a random one (tokens die with
//!   the process).
//! - `DATABASE_URL`: keep revocations and refresh tokens in a database, so they survive a
//!   restart. `sqlite://tokens.db` (a file, created on first start; build with
//!   `--features sqlite`) needs no server; `postgres://user:password@host/db` (build with
//!   `--features postgres`) is shared by every instance on that database. The tables are
//!   created (migrated) at start.
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379/`): keep revocations and refresh tokens in
//!   Redis, so every instance of the quickstart on that Redis shares sessions and refuses a
//!   revoked token. Both unset: in memory (lost on restart, not shared).
//! - `COOKIE_MODE=1`: browser mode. Login and refresh also deliver the tokens in HttpOnly
//!   cookies (`access_token` on `/`, `refresh_token` on `/token` only), the refresh token is
//!   then left out of JSON bodies, `/me` & co. accept the access cookie, and every `POST` is
//!   checked against cross-site request forgery (`Sec-Fetch-Site` / `Origin`, 403 otherwise).
//! - `COOKIE_SECURE=0`: cookies without `Secure`, for plain-HTTP localhost only.
//! - `ALLOWED_ORIGIN` (e.g. `https://app.example.com`, comma-separated): in cookie mode, other
//!   origins whose `POST`s are let through (a front end served from elsewhere).
//! - `RUST_LOG`: log filter, default `info,tower_token_auth=debug` (logs go to stderr).
//!
//! Access tokens carry `iss` = `aud` = `quickstart`, `sub`, `scope`, `jti`, `iat`, a 15-minute
//! `exp` and `sid`, the session (refresh token family) they belong to. Refresh tokens are
//! opaque, live 14 days, and are rotated on every use; presenting a spent one again revokes
//! its whole session. Any HS256 token signed with `JWT_SECRET` that carries `iss`, `aud`,
//! `exp` and `sub` is accepted, whichever library minted it.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /login` `{"username","password"}` (JSON or form) | none | `{"access_token","token_type","expires_in","refresh_token","scope"}` |
//! | `POST /token` `grant_type=refresh_token&refresh_token=…` (form or JSON) | the refresh token | a new pair, same shape (RFC 6749 §6); 400 `invalid_grant` for a spent, revoked or unknown one |
//! | `POST /revoke` `token=…` (form or JSON) | the token itself | 200 (RFC 7009); a refresh token ends its session, an access token just itself |
//! | `GET /me` | bearer | the token's claims |
//! | `GET /admin` | bearer, scope `admin` | a greeting, 403 `insufficient_scope` otherwise |
//! | `POST /logout` | bearer | 204; this token and its session (refresh token and its other access tokens) are refused from then on |
//! | `POST /logout-all` | bearer | 204; every token and session of the user |
//! | `POST /password` `{"current_password","new_password"}` | bearer | 204 and every session of the user ends; 403 wrong current password, 400 new one under 8 characters |
//! | `GET /health` | none | `ok` |
//!
//! "bearer" is `Authorization: Bearer …`, or in cookie mode the `access_token` cookie too.
//!
//! Demo users: `alice` / `alice-password` (scopes `read write`) and `admin` / `admin-password`
//! (scopes `read write admin`).

#[path = "shared/mod.rs"]
mod shared;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use shared::{env_flag, hash_password, verify_password, without_password};
use tower_http::csrf::{CsrfLayer, ProtectionError};
use tower_token_auth::endpoint::{RevocationEndpoint, TokenCookies, TokenEndpoint};
use tower_token_auth::refresh::{MemoryRefreshStore, RedisRefreshStore, RefreshStore};
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig, RevocationStore};
use tower_token_auth::{
    Algorithm, Claims, JwtAuthLayer, KeySet, LifecycleError, MemoryStore, RequireScopeLayer,
    SigningKey, TokenIssuer, TokenLifecycle, TokenPair, Verifier, VerifyingKey,
};

/// `iss` and `aud` of every token this service mints and accepts.
const ISSUER: &str = "quickstart";
/// Lifetime of access tokens: short, since a stolen one works until it expires or is revoked.
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Lifetime of refresh tokens; every refresh starts a new term.
const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// Where the refresh grant is served; the refresh cookie is sent to this path only.
const TOKEN_PATH: &str = "/token";
const DEFAULT_BIND: &str = "127.0.0.1:3000";
/// HS256 needs a secret at least as long as its hash output (RFC 7518 §3.2).
const MIN_SECRET_LEN: usize = 32;
const MIN_PASSWORD_LEN: usize = 8;

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
    /// Mutable: `POST /password` replaces hashes.
    users: RwLock<HashMap<&'static str, User>>,
    /// Verified against when the user is unknown, so both cases cost the same time.
    dummy_hash: String,
    /// Issues, refreshes and revokes tokens, in the stores the auth layer checks.
    lifecycle: TokenLifecycle,
    /// Cookie mode (`COOKIE_MODE=1`): the token cookies' settings.
    cookies: Option<TokenCookies>,
}

type SharedState = Arc<AppState>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();

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

    let cookies = cookie_settings()?;
    let (revocation, refresh) = stores().await?;
    let mut auth = JwtAuthLayer::new(verifier).with_shared_revocation_store(revocation.clone());
    if let Some(cookies) = &cookies {
        // After the Authorization header, which still wins when both are sent.
        auth = auth.with_cookie(cookies.access().clone())?;
    }
    // The lifecycle revokes in the store the layer checks: a revoked token is refused at once.
    let lifecycle = TokenLifecycle::new(issuer, auth.verifier().clone(), refresh, revocation)
        .refresh_ttl(REFRESH_TOKEN_TTL);

    let mut token_endpoint = TokenEndpoint::new(lifecycle.clone());
    if let Some(cookies) = &cookies {
        // Reads the refresh cookie when the body has no token, answers with new cookies.
        token_endpoint = token_endpoint.with_cookies(cookies.clone());
    }
    let revocation_endpoint = RevocationEndpoint::new(lifecycle.clone());

    let users = demo_users()?;
    // Any user's hash will do: same parameters, same cost.
    let dummy_hash = users[DEMO_USERS[0].0].password_hash.clone();
    let state = Arc::new(AppState {
        users: RwLock::new(users),
        dummy_hash,
        lifecycle,
        cookies: cookies.clone(),
    });

    let protected = Router::new()
        .route(
            "/admin",
            get(admin).route_layer(RequireScopeLayer::new("admin")?),
        )
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/password", post(change_password))
        // `route_layer`: only the routes above need a token; unknown paths stay 404.
        .route_layer(auth);
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/login", post(login))
        // OAuth endpoints (tower services): the refresh token they are given is the credential.
        .route_service(TOKEN_PATH, token_endpoint)
        .route_service("/revoke", revocation_endpoint)
        .merge(protected);
    if cookies.is_some() {
        // Browsers attach cookies to requests any site makes, so a cookie is no proof that
        // our own page sent the request. Refuse cross-site POSTs, `/login` included (a forged
        // login would sign the victim in as the attacker). GETs change nothing here.
        app = app.route_layer(csrf_layer()?);
    }
    let app = app.with_state(state);

    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, cookie_mode = cookies.is_some(), "quickstart listening");
    print_walkthrough(addr, cookies.is_some());

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

/// The one place that picks the stores: a database when `DATABASE_URL` is set (SQLite or
/// PostgreSQL: revocations and refresh tokens survive restarts), Redis when `REDIS_URL` is set
/// (shared by every instance on that Redis), else in process (lost on restart, not shared).
async fn stores() -> anyhow::Result<(Arc<dyn RevocationStore>, Arc<dyn RefreshStore>)> {
    let database_url = std::env::var("DATABASE_URL").unwrap_or_default();
    let redis_url = std::env::var("REDIS_URL").unwrap_or_default();
    if !database_url.is_empty() && !redis_url.is_empty() {
        bail!("set DATABASE_URL or REDIS_URL, not both");
    }
    if !database_url.is_empty() {
        return database_stores(&database_url).await;
    }
    if !redis_url.is_empty() {
        let shown = without_password(&redis_url);
        let revocation =
            RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
        if !revocation.wait_live(Duration::from_secs(3)).await {
            tracing::warn!(
                "Redis at {shown} is not answering yet: token checks answer 503 until it does"
            );
        }
        let refresh = RedisRefreshStore::connect(&redis_url, "tta:", Duration::from_millis(500))?;
        tracing::info!("revocation and refresh stores: Redis at {shown}");
        return Ok((Arc::new(revocation), Arc::new(refresh)));
    }
    tracing::info!(
        "revocation and refresh stores: in memory (set DATABASE_URL=sqlite://tokens.db to keep them across restarts)"
    );
    Ok((
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryRefreshStore::new()),
    ))
}

/// The SQL stores on `DATABASE_URL` (connected and migrated now).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn database_stores(
    url: &str,
) -> anyhow::Result<(Arc<dyn RevocationStore>, Arc<dyn RefreshStore>)> {
    use tower_token_auth::refresh::SqlRefreshStore;
    use tower_token_auth::revocation::{SqlRevocationConfig, SqlRevocationStore};
    use tower_token_auth::sql::Database;

    let shown = without_password(url);
    let db = Database::connect(url)
        .await
        .with_context(|| format!("DATABASE_URL {shown}"))?;
    let revocation = SqlRevocationStore::new(db.clone(), SqlRevocationConfig::default());
    if !revocation.wait_live(Duration::from_secs(3)).await {
        tracing::warn!(
            "the database at {shown} is not answering yet: token checks answer 503 until it does"
        );
    }
    let refresh = SqlRefreshStore::new(db);
    // Expired refresh tokens and families go once an hour, 1000 rows per statement (the
    // revocation store purges its own table). The task lives as long as the server.
    drop(refresh.spawn_purge(Duration::from_secs(3600), 1000));
    tracing::info!("revocation and refresh stores: the database at {shown}");
    Ok((Arc::new(revocation), Arc::new(refresh)))
}

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
async fn database_stores(
    url: &str,
) -> anyhow::Result<(Arc<dyn RevocationStore>, Arc<dyn RefreshStore>)> {
    let feature = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    bail!(
        "DATABASE_URL is set, but this build has no database support: run it with `cargo run --example quickstart --features {feature}`"
    )
}

/// Cookie mode's settings, or `None` when `COOKIE_MODE` is off.
fn cookie_settings() -> anyhow::Result<Option<TokenCookies>> {
    if !env_flag("COOKIE_MODE", false)? {
        return Ok(None);
    }
    let cookies = TokenCookies::new(TOKEN_PATH);
    if env_flag("COOKIE_SECURE", true)? {
        Ok(Some(cookies))
    } else {
        // Browsers drop `Secure` cookies set over plain HTTP, except on localhost.
        tracing::warn!("COOKIE_SECURE=0: cookies without `Secure`, fine for localhost only");
        Ok(Some(cookies.insecure_for_localhost()))
    }
}

/// tower-http's CSRF layer, answering refusals with [`csrf_refusal`].
type Csrf = CsrfLayer<fn(ProtectionError) -> Response>;

/// CSRF protection for cookie mode: a `POST` passes when `Sec-Fetch-Site` says same-origin
/// (or the user typed it), when `Origin` matches `Host` or `ALLOWED_ORIGIN`, or when neither
/// header is sent (not a browser: curl, other services).
fn csrf_layer() -> anyhow::Result<Csrf> {
    let mut layer = CsrfLayer::new();
    for origin in std::env::var("ALLOWED_ORIGIN")
        .unwrap_or_default()
        .split(',')
    {
        let origin = origin.trim();
        if !origin.is_empty() {
            layer = layer
                .add_trusted_origin(origin)
                .with_context(|| format!("ALLOWED_ORIGIN {origin:?}"))?;
        }
    }
    // The default refusal is a bare 403; say why.
    Ok(layer.with_rejection_response(csrf_refusal as fn(ProtectionError) -> Response))
}

fn csrf_refusal(e: ProtectionError) -> Response {
    tracing::info!(reason = %e, "cross-site request refused");
    error_response(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        "cross-site request refused (CSRF protection)",
    )
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

/// `{"error","error_description"}`, the shape RFC 6749 and RFC 6750 errors have.
fn error_response(status: StatusCode, code: &str, description: &str) -> Response {
    let body = json!({ "error": code, "error_description": description });
    (status, Json(body)).into_response()
}

/// A handler's failure.
enum ApiError {
    /// A refusal the client can act on.
    Refused(StatusCode, &'static str, &'static str),
    /// A token store refused or could not answer.
    Store(LifecycleError),
    /// A bug or a crashed task: 500, details in the log only.
    Internal(anyhow::Error),
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        Self::Store(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Refused(status, code, description) => error_response(status, code, description),
            // The library's answer: 400 for a token that cannot be revoked (no `jti`, as some
            // other issuers mint them), 503 when the store is down.
            Self::Store(LifecycleError::Revocation(e)) => e.into_response(),
            // A password change ended the user's sessions while this login ran.
            Self::Store(LifecycleError::SessionsEnded) => error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "your sessions were just ended; log in again",
            ),
            Self::Store(e) => {
                tracing::warn!(error = %e, "token store failed");
                let mut res = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "token store unavailable, retry later",
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                res
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

impl AppState {
    /// The scope of `username` if `password` is theirs. Argon2 is deliberately slow: it runs
    /// off the async worker threads, and costs the same for unknown users.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Option<&'static str>> {
        let (hash, scope) = match self.users.read().expect("users lock").get(username) {
            Some(user) => (user.password_hash.clone(), Some(user.scope)),
            None => (self.dummy_hash.clone(), None),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await?;
        Ok(scope.filter(|_| ok))
    }

    /// 204, and in cookie mode `Set-Cookie`s deleting both token cookies (their tokens are
    /// revoked; a browser should stop sending them).
    fn no_content_clearing_cookies(&self) -> Response {
        let mut res = StatusCode::NO_CONTENT.into_response();
        for cookie in self.cookies.iter().flat_map(TokenCookies::clear) {
            res.headers_mut().append(header::SET_COOKIE, cookie);
        }
        res
    }
}

/// Seconds since the Unix epoch, the unit of `iat`.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The user a verified token is about (the verifier requires `sub`).
fn subject(claims: &Claims) -> &str {
    claims.sub.as_deref().unwrap_or_default()
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// A body sent as JSON or as a form (`application/x-www-form-urlencoded`): `/login` takes
/// both, as `/token` and `/revoke` do.
struct JsonOrForm<T>(T);

impl<S, T> axum::extract::FromRequest<S> for JsonOrForm<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let parsed = if form {
            axum::Form::<T>::from_request(req, state)
                .await
                .map(|axum::Form(t)| t)
                .ok()
        } else {
            Json::<T>::from_request(req, state)
                .await
                .map(|Json(t)| t)
                .ok()
        };
        parsed.map(Self).ok_or(ApiError::Refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send username and password as JSON or as a form",
        ))
    }
}

/// `POST /login`: checks the password and starts a session (a refresh token family).
async fn login(
    State(state): State<SharedState>,
    JsonOrForm(req): JsonOrForm<LoginRequest>,
) -> Result<Response, ApiError> {
    // Taken before the password hash is read: a password change racing this login ends the
    // session it starts (see `issue_pair_authenticated_at`).
    let authenticated_at = now_secs();
    let Some(scope) = state.check_password(&req.username, &req.password).await? else {
        // `?`: a username is user input, and Debug escapes line breaks (no forged log lines).
        tracing::info!(username = ?req.username, "login refused");
        return Err(ApiError::Refused(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "wrong username or password",
        ));
    };
    let pair = state
        .lifecycle
        .issue_pair_authenticated_at(&req.username, scope, authenticated_at)
        .await?;
    tracing::info!(username = ?req.username, jti = %pair.access.jti, "logged in");
    Ok(token_response(&state, &pair))
}

/// The token response of RFC 6749 §5.1, as `/token` answers it too. In cookie mode the
/// tokens also go into cookies, and the refresh token only there: page scripts never see it.
fn token_response(state: &AppState, pair: &TokenPair) -> Response {
    let mut body = json!({
        "access_token": pair.access.token,
        "token_type": "Bearer",
        "expires_in": pair.access.expires_in,
        "scope": pair.scope,
    });
    if state.cookies.is_none() {
        body["refresh_token"] = pair.refresh_token.clone().into();
    }
    let mut res = Json(body).into_response();
    for cookie in state.cookies.iter().flat_map(|c| c.set(pair)) {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
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

/// `POST /logout`: ends this session: the presented access token, its refresh token family
/// and the family's other access tokens. The user's other sessions go on.
async fn logout(State(state): State<SharedState>, claims: Claims) -> Result<Response, ApiError> {
    state.lifecycle.logout(&claims).await?;
    tracing::info!(sub = ?claims.sub, sid = ?claims.sid, "logged out");
    Ok(state.no_content_clearing_cookies())
}

/// `POST /logout-all`: ends every session of the user, on every device.
async fn logout_all(
    State(state): State<SharedState>,
    claims: Claims,
) -> Result<Response, ApiError> {
    state.lifecycle.logout_everywhere(subject(&claims)).await?;
    tracing::info!(sub = ?claims.sub, "logged out everywhere");
    Ok(state.no_content_clearing_cookies())
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /password`: asks for the current password again (a stolen access token alone must
/// not be enough), stores the new one, then ends every session: whoever had the old password
/// may hold tokens obtained with it.
async fn change_password(
    State(state): State<SharedState>,
    claims: Claims,
    Json(req): Json<PasswordChange>,
) -> Result<Response, ApiError> {
    if req.new_password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::Refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the new password must be at least 8 characters long",
        ));
    }
    let sub = subject(&claims);
    if state
        .check_password(sub, &req.current_password)
        .await?
        .is_none()
    {
        tracing::info!(sub = ?sub, "password change refused: wrong current password");
        // 403, not 401: the bearer token is fine, the password proof is not.
        return Err(ApiError::Refused(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        ));
    }
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&req.new_password))
        .await
        .context("password hashing task")??;
    let old_hash = state
        .users
        .write()
        .expect("users lock")
        .get_mut(sub)
        .map(|user| std::mem::replace(&mut user.password_hash, new_hash.clone()));
    // After the new hash is in place: a login that read the old one began before this.
    if let Err(e) = state.lifecycle.logout_everywhere(sub).await {
        // The sessions are not ended yet: put the old password back (unless another change
        // came in since) so the client's retry, which proves the current password again,
        // can finish the job.
        let mut users = state.users.write().expect("users lock");
        if let (Some(old), Some(user)) = (old_hash, users.get_mut(sub))
            && user.password_hash == new_hash
        {
            user.password_hash = old;
        }
        drop(users);
        return Err(e.into());
    }
    tracing::info!(sub = ?sub, "password changed; every session ended");
    Ok(state.no_content_clearing_cookies())
}

async fn health() -> &'static str {
    "ok"
}

/// Printed at start-up with `$BASE` set; keep it in sync with README.md.
const BEARER_WALKTHROUGH: &str = r#"
# helpers: log in (prints the token response), pick a field out of a JSON answer
login() { curl -s -X POST "$BASE/login" -H 'content-type: application/json' -d "{\"username\":\"$1\",\"password\":\"$2\"}"; }
field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

# log in as alice (scopes: read write): an access token and a refresh token
LOGIN=$(login alice alice-password); echo "$LOGIN"
TOKEN=$(echo "$LOGIN" | field access_token); REFRESH=$(echo "$LOGIN" | field refresh_token)

# who am I? (200, the token's claims; sid names this session)
curl -i "$BASE/me" -H "Authorization: Bearer $TOKEN"

# alice lacks the admin scope (403, WWW-Authenticate: Bearer error="insufficient_scope")
curl -i "$BASE/admin" -H "Authorization: Bearer $TOKEN"

# refresh (RFC 6749 §6): a new pair; the refresh token just used is spent
NEW=$(curl -s -X POST "$BASE/token" -d grant_type=refresh_token -d "refresh_token=$REFRESH"); echo "$NEW"
TOKEN=$(echo "$NEW" | field access_token)

# replaying the spent refresh token looks like theft: 400 invalid_grant, and the whole
# session is revoked, including the access token just refreshed (401)
curl -i -X POST "$BASE/token" -d grant_type=refresh_token -d "refresh_token=$REFRESH"
curl -i "$BASE/me" -H "Authorization: Bearer $TOKEN"

# revoke a refresh token (RFC 7009, always 200): its session's access tokens die too (401)
LOGIN=$(login alice alice-password)
TOKEN=$(echo "$LOGIN" | field access_token); REFRESH=$(echo "$LOGIN" | field refresh_token)
curl -i -X POST "$BASE/revoke" -d "token=$REFRESH"
curl -i "$BASE/me" -H "Authorization: Bearer $TOKEN"

# log out of this session (204), then its token is refused (401, error="invalid_token")
TOKEN=$(login alice alice-password | field access_token)
curl -i -X POST "$BASE/logout" -H "Authorization: Bearer $TOKEN"
curl -i "$BASE/me" -H "Authorization: Bearer $TOKEN"

# log out everywhere (204): every token of alice, from every login, is refused (401)
PHONE=$(login alice alice-password | field access_token)
LAPTOP=$(login alice alice-password | field access_token)
curl -i -X POST "$BASE/logout-all" -H "Authorization: Bearer $LAPTOP"
curl -i "$BASE/me" -H "Authorization: Bearer $PHONE"

# change the password (204; 403 with a wrong current password): every session ends.
TOKEN=$(login alice alice-password | field access_token)
curl -i -X POST "$BASE/password" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"current_password":"alice-password","new_password":"correct horse battery"}'
login alice alice-password; echo; login alice 'correct horse battery'; echo

# the admin user may enter /admin (200)
ADMIN_TOKEN=$(login admin admin-password | field access_token)
curl -i "$BASE/admin" -H "Authorization: Bearer $ADMIN_TOKEN"
"#;

/// Printed instead in cookie mode: curl's cookie jar plays the browser.
const COOKIE_WALKTHROUGH: &str = r#"
# cookie mode: curl keeps cookies in a jar (-c writes it, -b sends it), as a browser would.
# Start with COOKIE_SECURE=0 for plain HTTP: curl keeps `Secure` cookies for HTTPS.

# log in: Set-Cookie access_token (Path=/) and refresh_token (Path=/token), both HttpOnly
curl -i -c jar.txt -X POST "$BASE/login" -H 'content-type: application/json' \
  -d '{"username":"alice","password":"alice-password"}'

# who am I? the access cookie is enough (200)
curl -i -b jar.txt "$BASE/me"

# refresh with the refresh cookie alone (200, new cookies; the old refresh token is spent)
curl -i -b jar.txt -c jar.txt -X POST "$BASE/token" -d grant_type=refresh_token

# a cross-site POST carrying the cookies is refused (403, CSRF protection)...
curl -i -b jar.txt -X POST "$BASE/logout" -H 'Sec-Fetch-Site: cross-site'

# ...a same-origin one logs out (204, Set-Cookie clears both cookies); should a client keep
# sending the old access cookie, it is refused (401, error="invalid_token")
curl -i -b jar.txt -c jar.txt -X POST "$BASE/logout" -H 'Sec-Fetch-Site: same-origin'
curl -i -b jar.txt "$BASE/me"

# log in again, then log out everywhere (204; every session of alice ends)
curl -s -c jar.txt -X POST "$BASE/login" -H 'content-type: application/json' \
  -d '{"username":"alice","password":"alice-password"}' >/dev/null
curl -i -b jar.txt -c jar.txt -X POST "$BASE/logout-all" -H "Origin: $BASE"
"#;

fn print_walkthrough(addr: SocketAddr, cookie_mode: bool) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let mode = if cookie_mode {
        "cookie mode"
    } else {
        "bearer mode; COOKIE_MODE=1 for cookies"
    };
    let commands = if cookie_mode {
        COOKIE_WALKTHROUGH
    } else {
        BEARER_WALKTHROUGH
    };
    println!(
        "\ntower-token-auth quickstart on http://{host} ({mode})   (Ctrl-C to stop)\n\nBASE=http://{host}\n{commands}"
    );
}
