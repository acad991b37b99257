//! Single sign-on, the auth server: an OpenID Provider for the `sso_service` example (run once
//! per service) and for any OpenID Connect relying party. The protocol is the crate's
//! `tower_token_auth::sso` parts and `TokenLifecycle`; this file is the app's pages and
//! policy. `docs/sso.md` explains the design and lists the settings (environment variables).
//!
//! ```sh
//! redis-server &   # or any Redis on REDIS_URL
//! ADMIN_TOKEN=$(openssl rand -hex 16) cargo run --features http-client --example sso_auth
//! SERVICE=orders  cargo run --example sso_service    # http://127.0.0.1:4001
//! SERVICE=members cargo run --example sso_service    # http://127.0.0.1:4002
//! ```
//!
//! Open <http://127.0.0.1:4001/>, sign in (`alice` / `alice-password`, or `bob` /
//! `bob-password`), then open <http://127.0.0.1:4002/>: no password asked.

#[path = "sso/common.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, body::Bytes};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_token_auth::Verifier;
use tower_token_auth::endpoint::{OAuthError, RevocationEndpoint};
use tower_token_auth::refresh::RedisRefreshStore;
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
use tower_token_auth::sso::code::RedisCodeStore;
use tower_token_auth::sso::code::{AuthorizationCodeStore, AuthorizationRequest, AuthorizeError};
use tower_token_auth::sso::discovery_document::ProviderMetadata;
use tower_token_auth::sso::end_session::{hinted_session, post_logout_redirect};
use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
use tower_token_auth::sso::logout_sender::BackchannelLogoutSender;
use tower_token_auth::sso::session::{RedisSsoSessionStore, SsoSession, SsoSessionStore};
use tower_token_auth::sso::token_endpoint::{TokenError, TokenGrants};
use tower_token_auth::{AccessCookie, Algorithm, NoCustomClaims};

use common::{bearer, bounded, cookie_value, csrf_layer, env_or, env_u64, esc, fill};
use common::{now_secs, page, redirect, sha256_hex};
use shared::{hash_password, verify_password, without_password};

const DEFAULT_CLIENTS: &str =
    "orders=http://127.0.0.1:4001/callback,members=http://127.0.0.1:4002/callback";
const SSO_COOKIE: &str = "sso_session";
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// Demo users: name, password (hashed at start-up), scope (the services they may use).
const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "orders members"),
    ("bob", "bob-password", "orders"),
];

struct App {
    issuer: String,
    clients: ClientRegistry,
    access_ttl: u64,
    session_ttl: u64,
    skew: u64,
    admin_token: Option<String>,
    cookie: AccessCookie,
    redis: ConnectionManager,
    codes: Arc<RedisCodeStore>,
    sessions: Arc<RedisSsoSessionStore>,
    grants: TokenGrants,
    ring: SigningKeyRing,
    /// This server's access tokens (`at+jwt`) and ID tokens (`JWT`: the `id_token_hint`).
    verifiers: [Verifier; 2],
    logout_sender: BackchannelLogoutSender,
    users: HashMap<&'static str, String>,
}
type Shared = State<Arc<App>>;
type Answer = Result<Response, AppError>;
type Params = HashMap<String, String>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();
    let bind = env_or("BIND", "127.0.0.1:4000")?;
    let listener = tokio::net::TcpListener::bind(&bind).await.context(bind)?;
    let addr = listener.local_addr()?;
    let issuer = env_or("PUBLIC_URL", &format!("http://{addr}"))?;
    let issuer = issuer.trim_end_matches('/').to_owned();
    let clients = ClientRegistry::from_spec(&env_or("CLIENTS", DEFAULT_CLIENTS)?);
    let clients = clients.context("CLIENTS")?;
    let access_ttl = env_u64("ACCESS_TTL_SECS", 300)?.max(1);
    let session_ttl = env_u64("SSO_SESSION_TTL_SECS", 8 * 3600)?.max(access_ttl);
    let skew = env_u64("CLOCK_SKEW_SECS", 30)?;
    let secs = Duration::from_secs;
    let key = match env_or("SIGNING_KEY", "")? {
        path if path.is_empty() => {
            tracing::warn!("SIGNING_KEY is not set: a fresh Ed25519 key signs");
            RingKey::generate_ed25519()?
        }
        path => RingKey::from_pem(&std::fs::read(&path).context(path)?)?,
    };
    let ahead = secs(env_u64("KEY_PUBLISH_AHEAD_SECS", 120)?);
    let ring = SigningKeyRing::new(key).publish_ahead(ahead);
    let ring = ring.max_token_lifetime(secs(access_ttl)).leeway(secs(skew));
    let verifier = |typ| {
        let mut v = Verifier::builder(ring.key_set()?).issuer(&issuer);
        v = v.require_typ(typ).require_claims(["exp", "sub"]);
        for client in clients.iter() {
            v = v.audience(&client.client_id);
        }
        v.leeway(secs(skew)).build()
    };
    let url = env_or("REDIS_URL", "redis://127.0.0.1:6379/")?;
    // Fail closed (the default): a revocation that cannot be written is an error.
    let revocation = RedisRevocationStore::connect(&url, RedisStoreConfig::default()).await?;
    if !revocation.wait_live(secs(3)).await {
        tracing::warn!("Redis at {} is not answering yet", without_password(&url));
    }
    let config = ConnectionManagerConfig::new().set_response_timeout(Some(REDIS_TIMEOUT));
    let redis = redis::Client::open(url.as_str())?;
    let hash = |&(user, password, _): &(&'static str, &str, &str)| {
        anyhow::Ok((user, hash_password(password)?))
    };
    let sender = BackchannelLogoutSender::new(&issuer, ring.clone())?;
    let secure = issuer.starts_with("https://");
    let metadata = ProviderMetadata::new(&issuer)?
        .signing_algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .scopes(["openid", "offline_access"]);
    let verifiers = [verifier("at+jwt")?, verifier("JWT")?];
    let codes = Arc::new(RedisCodeStore::connect(&url, "sso:", REDIS_TIMEOUT)?);
    let sessions = RedisSsoSessionStore::connect(&url, "sso:", secs(session_ttl), REDIS_TIMEOUT)?;
    let sessions = Arc::new(sessions);
    let refresh = Arc::new(RedisRefreshStore::connect(&url, "sso:rt:", REDIS_TIMEOUT)?);
    let revocation = Arc::new(revocation);
    let app = Arc::new(App {
        verifiers: verifiers.clone(),
        logout_sender: sender.token_ttl(secs(access_ttl.min(120))),
        redis: ConnectionManager::new_lazy_with_config(redis, config)?,
        grants: TokenGrants::new(
            &issuer,
            ring.clone(),
            verifiers[0].clone(),
            codes.clone(),
            sessions.clone(),
            (refresh, revocation.clone()),
        )
        .access_ttl(secs(access_ttl))
        .leeway(secs(skew)),
        codes,
        sessions,
        users: DEMO_USERS.iter().map(hash).collect::<anyhow::Result<_>>()?,
        cookie: AccessCookie::new(SSO_COOKIE).secure(secure),
        admin_token: Some(env_or("ADMIN_TOKEN", "")?).filter(|t| !t.is_empty()),
        ring: ring.clone(),
        issuer,
        clients,
        access_ttl,
        session_ttl,
        skew,
    });
    // Browsers attach the SSO cookie to any site's requests: cross-site POSTs are refused.
    let logout_routes = get(end_session).post(logout).route_layer(csrf_layer());
    let mut router = Router::new()
        .route("/", get(home))
        .route("/health", get(|| async { "ok" }))
        .route("/authorize", get(authorize))
        .route("/login", post(login).route_layer(csrf_layer()))
        .route("/logout", logout_routes)
        .route("/token", post(token))
        .route_service("/revoke", RevocationEndpoint::new(app.grants.lifecycle("")))
        .route_service("/.well-known/jwks.json", ring.jwks_service())
        .route_service(ProviderMetadata::WELL_KNOWN_PATH, metadata.service());
    if app.admin_token.is_some() {
        let admin = Router::new().route("/permissions", post(admin_permissions));
        router = router.nest("/admin", admin.route("/rotate-key", post(rotate_key)));
    }
    tracing::info!(%addr, issuer = %app.issuer, kid = %ring.current_kid(), "SSO auth server up");
    if !secure {
        tracing::warn!("PUBLIC_URL is not https: cookies without `Secure`, for localhost only");
    }
    let shutdown = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    let serve = axum::serve(listener, router.with_state(app));
    Ok(serve.with_graceful_shutdown(shutdown).await?)
}

/// A handler's failure.
enum AppError {
    /// A page (the request names no client and redirect URI it could be sent back to).
    Page(&'static str),
    /// Back to the client's registered redirect URI with an `error`.
    Redirect(String),
    /// An OAuth error (RFC 6749 §5.2): status, `error`, `error_description`.
    OAuth(u16, &'static str, &'static str),
    /// A store could not answer (or a bug): 503, details in the log only.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, error, text) = match self {
            Self::Page(text) => {
                let text = format!("<p>{text}</p>");
                return page(StatusCode::BAD_REQUEST, "Refused", &text);
            }
            Self::Redirect(location) => return redirect(StatusCode::FOUND, &location),
            Self::OAuth(status, error, text) => (status, error, text),
            Self::Failed(e) => {
                tracing::warn!(error = %e, "request failed");
                (503, "temporarily_unavailable", "a store is unavailable")
            }
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        OAuthError::new(status, error, text).into_response()
    }
}

fn no_store(res: impl IntoResponse) -> Response {
    let mut res = res.into_response();
    let value = HeaderValue::from_static("no-store");
    res.headers_mut().insert(header::CACHE_CONTROL, value);
    res
}

impl App {
    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let mut conn = self.redis.clone();
        bounded("redis", REDIS_TIMEOUT, cmd.query_async(&mut conn)).await
    }

    /// The live session the SSO cookie names.
    async fn cookie_session(&self, headers: &HeaderMap) -> Result<Option<SsoSession>, AppError> {
        let value = cookie_value(headers, SSO_COOKIE).unwrap_or_default();
        Ok(self.sessions.by_cookie(&value).await?)
    }

    /// Ends a session everywhere: its tokens and refresh families are revoked in the store
    /// every service checks, and every client it signed in to is told (back channel).
    async fn end_session(&self, sub: &str, sid: &str) -> Result<(), AppError> {
        let clients = self.grants.end_session(sub, sid).await?;
        let clients = clients.iter().filter_map(|c| self.clients.get(c));
        let clients: Vec<RegisteredClient> = clients.cloned().collect();
        let (sender, sub, sid) = (self.logout_sender.clone(), sub.to_owned(), sid.to_owned());
        tokio::spawn(async move {
            for (client, why) in sender.send_logout(&clients, &sub, &sid).await.failed {
                tracing::warn!(client, why, "back-channel logout not delivered");
            }
        });
        Ok(())
    }

    fn check(&self, req: &AuthorizationRequest) -> Result<(), AppError> {
        match req.check(&self.clients) {
            Ok(()) => Ok(()),
            Err(AuthorizeError::Redirect { location, .. }) => Err(AppError::Redirect(location)),
            Err(_) => Err(AppError::Page(
                "Unknown client, or not its registered redirect_uri: nothing was sent anywhere.",
            )),
        }
    }

    /// The user's scope: set by an admin, else the demo default.
    async fn scope_of(&self, user: &str) -> anyhow::Result<String> {
        let key = format!("sso:perms:{user}");
        let set: Option<String> = self.cmd(redis::cmd("GET").arg(key)).await?;
        let default = DEMO_USERS.iter().find(|u| u.0 == user).map_or("", |u| u.2);
        Ok(set.unwrap_or_else(|| default.to_owned()))
    }

    /// After a logout: to the client's registered `post_logout_redirect_uri` (with `state`),
    /// or the signed-out page; the SSO cookie is cleared.
    fn signed_out(&self, p: &Params) -> Response {
        let mut res = match post_logout_redirect(&self.clients, p) {
            Some(uri) => redirect(StatusCode::SEE_OTHER, &uri),
            None => page(
                StatusCode::OK,
                "Signed out",
                include_str!("sso/signed_out.html"),
            ),
        };
        let cookie = self.cookie.removal_cookie();
        res.headers_mut().append(header::SET_COOKIE, cookie);
        res
    }

    fn require_admin(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let expected = self.admin_token.as_deref().map(sha256_hex);
        let given = bearer(headers).map(sha256_hex);
        match (given, expected) {
            (Some(g), Some(e)) if bool::from(g.as_bytes().ct_eq(e.as_bytes())) => Ok(()),
            _ => Err(AppError::OAuth(401, "invalid_token", "Bearer $ADMIN_TOKEN")),
        }
    }
}

/// The login page for `req`, with an error message (or `""`).
fn login_page(req: &AuthorizationRequest, error: &str, status: StatusCode) -> Response {
    let v = |value: &Option<String>| esc(value.as_deref().unwrap_or_default());
    let fields = [
        &req.client_id,
        &req.redirect_uri,
        &req.state,
        &req.code_challenge,
    ];
    let [client_id, redirect_uri, state, code_challenge] = fields.map(v);
    let (nonce, scope) = (v(&req.nonce), v(&req.scope));
    let vars = [
        ("error", error),
        ("client_id", &client_id),
        ("redirect_uri", &redirect_uri),
        ("state", &state),
        ("code_challenge", &code_challenge),
        ("nonce", &nonce),
        ("scope", &scope),
    ];
    common::html(status, fill(include_str!("sso/login.html"), &vars))
}

/// `GET /authorize`: signed in already (SSO cookie), a code at once; else the login page.
async fn authorize(app: Shared, headers: HeaderMap, req: Query<AuthorizationRequest>) -> Answer {
    app.check(&req)?;
    if let Some(session) = app.cookie_session(&headers).await?
        && let Some(location) = issue_code(&app, &session, &req).await?
    {
        return Ok(redirect(StatusCode::FOUND, &location));
    }
    Ok(login_page(&req, "", StatusCode::OK))
}

/// Records that the session signed in to the client and mints a one-time code: where to send
/// the browser, or `None` when the session just ended.
async fn issue_code(
    app: &App,
    s: &SsoSession,
    req: &AuthorizationRequest,
) -> Result<Option<String>, AppError> {
    let client = req.client_id.as_deref().unwrap_or_default();
    if !app.sessions.add_client(&s.sid, client).await? {
        return Ok(None);
    }
    let grant = req.grant(&s.sub, &s.sid)?.auth_time(s.auth_time);
    let code = app.codes.issue(&grant).await?;
    tracing::info!(
        sub = s.sub,
        sid = s.sid,
        client,
        "authorization code issued"
    );
    Ok(Some(req.code_redirect(&code)))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(flatten)]
    req: AuthorizationRequest,
    username: String,
    password: String,
}

/// `POST /login`: checks the password (Argon2, off the async threads, as slow for unknown
/// users), starts the SSO session, sends the browser back with a code.
async fn login(app: Shared, Form(form): Form<LoginForm>) -> Answer {
    app.check(&form.req)?;
    let (user, hash) = match app.users.get_key_value(form.username.as_str()) {
        Some((&user, hash)) => (Some(user), hash.clone()),
        None => (None, app.users[DEMO_USERS[0].0].clone()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&form.password, &hash)).await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(username = ?form.username, "login refused");
        let error = "Wrong user name or password.";
        return Ok(login_page(&form.req, error, StatusCode::UNAUTHORIZED));
    };
    let (session, cookie) = app.sessions.start(user).await?;
    tracing::info!(sub = user, sid = session.sid, "SSO session started");
    let location = issue_code(&app, &session, &form.req).await?;
    let mut res = redirect(StatusCode::SEE_OTHER, &location.context("session gone")?);
    let cookie = app
        .cookie
        .set_cookie(&cookie, Duration::from_secs(app.session_ttl));
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}

/// `POST /token`: public clients, named by `client_id`, proven by PKCE.
async fn token(app: Shared, Form(f): Form<Params>) -> Answer {
    let Some(client) = f.get("client_id").filter(|c| app.clients.get(c).is_some()) else {
        return Err(AppError::OAuth(401, "invalid_client", "unknown client"));
    };
    let refresh_token = f.get("refresh_token").map_or("", String::as_str);
    let body = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let scope_of = |user: String| {
                let app = app.clone();
                async move { app.scope_of(&user).await.map_err(Into::into) }
            };
            app.grants.code_grant(client, &f, scope_of).await
        }
        Some("refresh_token") => app.grants.refresh_grant(client, refresh_token).await,
        _ => {
            return Err(AppError::OAuth(
                400,
                "unsupported_grant_type",
                "code or refresh",
            ));
        }
    };
    match body {
        Ok(body) => Ok(no_store(Json(body))),
        Err(TokenError::Refused(e)) => Err(AppError::OAuth(
            e.status().as_u16(),
            e.code(),
            e.description(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /logout`: a service (bearer: the user's access token; 204) or the browser (the SSO
/// cookie; the sign-out form). The SSO session ends everywhere.
async fn logout(app: Shared, headers: HeaderMap, body: Bytes) -> Answer {
    if let Some(token) = bearer(&headers) {
        let claims = app.verifiers[0].verify::<NoCustomClaims>(token).ok();
        let Some((sub, sid)) = claims.and_then(|c| c.sub.clone().zip(c.sid.clone())) else {
            return Err(AppError::OAuth(
                401,
                "invalid_token",
                "no token of a session here",
            ));
        };
        // A refreshed token's `sid` is its refresh family's: its SSO session owns it.
        let sso_sid = app.grants.sso_session_of(&sid).await?;
        app.end_session(&sub, &sso_sid).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(session) = app.cookie_session(&headers).await? {
        app.end_session(&session.sub, &session.sid).await?;
    }
    Ok(app.signed_out(&form_urlencoded::parse(&body).into_owned().collect()))
}

/// `GET /logout`, the `end_session_endpoint` (OpenID Connect RP-Initiated Logout 1.0): an
/// `id_token_hint` for the client ends its session at once; otherwise the user confirms (a
/// GET must not sign anyone out on a third party's say-so).
async fn end_session(app: Shared, Query(p): Query<Params>) -> Answer {
    if let Some((sub, sid)) = hinted_session(&app.verifiers[1], &p) {
        app.end_session(&sub, &sid).await?;
        return Ok(app.signed_out(&p));
    }
    let v = |name: &str| esc(p.get(name).map_or("", String::as_str));
    let [client_id, uri, state] = ["client_id", "post_logout_redirect_uri", "state"].map(v);
    let vars = [
        ("client_id", client_id.as_str()),
        ("uri", &uri),
        ("state", &state),
    ];
    let form = fill(include_str!("sso/sign_out.html"), &vars);
    Ok(page(StatusCode::OK, "Sign out?", &form))
}

/// `GET /`: who is signed in here.
async fn home(app: Shared, headers: HeaderMap) -> Answer {
    let Some(s) = app.cookie_session(&headers).await? else {
        let text = "<p>Open one of the services to sign in.</p>";
        return Ok(page(StatusCode::OK, "Not signed in", text));
    };
    let clients: Vec<&str> = s.clients.iter().map(String::as_str).collect();
    let clients = match clients.is_empty() {
        true => "none yet".to_owned(),
        false => esc(&clients.join(", ")),
    };
    let minutes = (s.remaining(now_secs()) / 60).to_string();
    let vars = [
        ("user", &*esc(&s.sub)),
        ("minutes", &minutes),
        ("clients", &clients),
    ];
    Ok(page(
        StatusCode::OK,
        "Single sign-on",
        &fill(include_str!("sso/home.html"), &vars),
    ))
}

#[derive(Deserialize)]
struct PermissionChange {
    user: String,
    scope: String,
}

/// `POST /admin/permissions`: a user's new scope. Tokens carry their scope, so the user's
/// tokens and refresh families are revoked at once; the SSO session gets new ones.
async fn admin_permissions(app: Shared, headers: HeaderMap, req: Json<PermissionChange>) -> Answer {
    app.require_admin(&headers)?;
    let Some(&user) = app.users.keys().find(|u| **u == req.user) else {
        return Err(AppError::OAuth(404, "unknown_user", "no such user"));
    };
    // RFC 6749 §3.3 scope tokens: visible ASCII but `"` and `\`.
    let scope_char = |b: u8| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if req.scope.len() > 1024 || !req.scope.bytes().all(scope_char) {
        return Err(AppError::OAuth(400, "invalid_scope", "not RFC 6749 scope"));
    }
    let (scope, now) = (
        req.scope.split_whitespace().collect::<Vec<_>>().join(" "),
        now_secs(),
    );
    // Scope first, revocation second: a token minted in between with the old scope is revoked.
    app.cmd::<()>(
        redis::cmd("SET")
            .arg(format!("sso:perms:{user}"))
            .arg(&scope),
    )
    .await?;
    // Returns once the second is over, so that the next token is not revoked too.
    app.grants.lifecycle("").logout_everywhere(user).await?;
    tracing::info!(
        user,
        scope,
        "permissions changed; the user's tokens are revoked"
    );
    let body = json!({ "user": user, "scope": scope, "revoked_issued_before": now });
    Ok(Json(body).into_response())
}

/// `POST /admin/rotate-key`: a new Ed25519 key, published at once and signing once every
/// service has fetched it (`KEY_PUBLISH_AHEAD_SECS`): a rotation refuses nothing.
async fn rotate_key(app: Shared, headers: HeaderMap) -> Answer {
    app.require_admin(&headers)?;
    let (key, previous_kid) = (RingKey::generate_ed25519()?, app.ring.current_kid());
    let kid = key.kid().to_owned();
    let signs_from = app.ring.rotate(key)?;
    let keys = app.ring.key_set()?;
    app.verifiers.iter().for_each(|v| v.set_keys(&keys));
    let until = signs_from + app.access_ttl + app.skew;
    tracing::info!(kid, previous_kid, signs_from, "signing key rotated");
    let body = json!({ "kid": kid, "alg": "EdDSA", "signs_from": signs_from,
        "previous_kid": previous_kid, "previous_published_until": until });
    Ok(Json(body).into_response())
}
