//! Single sign-on, the auth server: an OpenID Provider for the `sso_service` example (run once
//! per service) and for any OpenID Connect relying party. The protocol is the crate's
//! `tower_token_auth::sso` parts (codes, clients, key ring, discovery document, back-channel
//! logout) and `TokenLifecycle`; this file is the pages and the policy. See `docs/sso.md`.
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
//!
//! Routes: `GET /authorize` (code flow, PKCE `S256`, redirect URIs compared byte for byte),
//! `POST /login`, `POST /token` (`authorization_code`; `refresh_token`, rotated, for grants
//! that asked `offline_access`), `POST /revoke`, `GET /.well-known/openid-configuration`,
//! `GET /.well-known/jwks.json`, `GET /logout` (the `end_session_endpoint`), `POST /logout`
//! (a service with the user's access token, or the browser), `POST /admin/permissions`
//! `{"user","scope"}` and `POST /admin/rotate-key` (bearer `ADMIN_TOKEN`), `GET /`, `/health`.
//!
//! Environment: `BIND` (`127.0.0.1:4000`); `PUBLIC_URL`, the issuer (`http://<BIND>`; cookies
//! are `Secure` when it is https); `CLIENTS`, comma-separated
//! `id=redirect_uri[;backchannel_logout_uri=URI][;post_logout_redirect_uri=URI]` (default
//! `orders=http://127.0.0.1:4001/callback,members=http://127.0.0.1:4002/callback`);
//! `REDIS_URL`; `SIGNING_KEY`, a PKCS#8 PEM P-256 or Ed25519 key (unset: a fresh Ed25519 key);
//! `ACCESS_TTL_SECS` (300), `SSO_SESSION_TTL_SECS` (28800), `CLOCK_SKEW_SECS` (30);
//! `KEY_PUBLISH_AHEAD_SECS` (120: a rotated-in key is published that long before it signs, at
//! least the services' `JWKS_REFRESH_SECS`); `ADMIN_TOKEN` (unset: no `/admin` routes).

#[path = "sso/common.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, body::Bytes};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use tower_token_auth::endpoint::RevocationEndpoint;
use tower_token_auth::refresh::{PresentedToken, RedisRefreshStore};
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig, TokenRef};
use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
use tower_token_auth::sso::code::{self, AuthorizationCodeStore, CodeGrant, CodeHash, IssuedRef};
use tower_token_auth::sso::code::{MarkIssued, Redemption, RedisCodeStore};
use tower_token_auth::sso::discovery_document::ProviderMetadata;
use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
use tower_token_auth::sso::logout_sender::BackchannelLogoutSender;
use tower_token_auth::{AccessCookie, Algorithm, GrantError, NoCustomClaims, RevocationStore};
use tower_token_auth::{TokenIssuer, TokenLifecycle, Verifier};

use common::{bearer, bounded, cookie_value, csrf_layer, env_or, env_u64, esc, fill, is_b64url};
use common::{now_secs, page, random_id, redirect, sha256_hex, with_query};
use shared::{hash_password, verify_password};

const DEFAULT_CLIENTS: &str =
    "orders=http://127.0.0.1:4001/callback,members=http://127.0.0.1:4002/callback";
const LOGIN_PAGE: &str = include_str!("sso/login.html");
const SSO_COOKIE: &str = "sso_session";
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest `state`, `nonce` or `scope` accepted.
const MAX_PARAM: usize = 2048;
/// Demo users: name, password (hashed at start-up), scope (the services they may use).
const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "orders members"),
    ("bob", "bob-password", "orders"),
];
/// Adds a field to a session only if it still exists (a logout may just have deleted it).
const HSET_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end return 0";

struct App {
    issuer: String,
    clients: ClientRegistry,
    access_ttl: u64,
    session_ttl: u64,
    skew: u64,
    admin_token: Option<String>,
    cookie: AccessCookie,
    redis: ConnectionManager,
    revocation: Arc<RedisRevocationStore>,
    codes: RedisCodeStore,
    refresh: Arc<RedisRefreshStore>,
    ring: SigningKeyRing,
    /// Access tokens (`at+jwt`) and ID tokens (`JWT`, for `id_token_hint`) of this server.
    access_verifier: Verifier,
    id_verifier: Verifier,
    logout_sender: BackchannelLogoutSender,
    users: HashMap<&'static str, String>,
}
type Shared = Arc<App>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();
    let bind = env_or("BIND", "127.0.0.1:4000")?;
    let listener = tokio::net::TcpListener::bind(&bind).await.context(bind)?;
    let addr = listener.local_addr()?;
    let issuer = env_or("PUBLIC_URL", &format!("http://{addr}"))?;
    let issuer = issuer.trim_end_matches('/').to_owned();
    let clients = parse_clients(&env_or("CLIENTS", DEFAULT_CLIENTS)?)?;
    let access_ttl = env_u64("ACCESS_TTL_SECS", 300)?.max(1);
    let session_ttl = env_u64("SSO_SESSION_TTL_SECS", 8 * 3600)?.max(access_ttl);
    let skew = env_u64("CLOCK_SKEW_SECS", 30)?;
    let first_key = match env_or("SIGNING_KEY", "")? {
        path if path.is_empty() => {
            tracing::warn!("SIGNING_KEY is not set: a fresh Ed25519 key signs");
            RingKey::generate_ed25519()?
        }
        path => RingKey::from_pem(&std::fs::read(&path).context(path)?)?,
    };
    let ring = SigningKeyRing::new(first_key)
        .publish_ahead(Duration::from_secs(env_u64("KEY_PUBLISH_AHEAD_SECS", 120)?))
        .max_token_lifetime(Duration::from_secs(access_ttl))
        .leeway(Duration::from_secs(skew));
    let verifier = |typ: &str| {
        let mut v = Verifier::builder(ring.key_set()?)
            .issuer(&issuer)
            .require_claims(["exp", "sub"])
            .require_typ(typ)
            .leeway(Duration::from_secs(skew));
        for client in clients.iter() {
            v = v.audience(&client.client_id);
        }
        v.build()
    };
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/")?;
    let redis = ConnectionManager::new_lazy_with_config(
        redis::Client::open(redis_url.as_str())?,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1),
    )?;
    // Fail closed (the default): a revocation that cannot be written is an error.
    let revocation = RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
    if !revocation.wait_live(Duration::from_secs(3)).await {
        tracing::warn!("Redis at {redis_url} is not answering yet");
    }
    let users = DEMO_USERS
        .iter()
        .map(|&(name, password, _)| Ok((name, hash_password(password)?)));
    let secure = issuer.starts_with("https://");
    let metadata = ProviderMetadata::new(&issuer)?
        .signing_algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .scopes(["openid", "offline_access"])
        .claims([
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "azp",
            "at_hash",
        ]);
    let app = Arc::new(App {
        access_verifier: verifier("at+jwt")?,
        id_verifier: verifier("JWT")?,
        logout_sender: BackchannelLogoutSender::new(&issuer, ring.clone())?
            .token_ttl(Duration::from_secs(access_ttl)),
        codes: RedisCodeStore::connect(&redis_url, "sso:code:", REDIS_TIMEOUT)?,
        refresh: Arc::new(RedisRefreshStore::connect(
            &redis_url,
            "sso:refresh:",
            REDIS_TIMEOUT,
        )?),
        revocation: Arc::new(revocation),
        users: users.collect::<anyhow::Result<_>>()?,
        cookie: AccessCookie::new(SSO_COOKIE).secure(secure),
        admin_token: Some(env_or("ADMIN_TOKEN", "")?).filter(|t| !t.is_empty()),
        ring: ring.clone(),
        issuer,
        clients,
        access_ttl,
        session_ttl,
        skew,
        redis,
    });
    let mut router = Router::new()
        .route("/", get(home))
        .route("/health", get(|| async { "ok" }))
        .route("/authorize", get(authorize))
        // Browsers attach the SSO cookie to any site's requests: cross-site POSTs are refused.
        .route("/login", post(login).route_layer(csrf_layer()))
        .route(
            "/logout",
            get(end_session).post(logout).route_layer(csrf_layer()),
        )
        .route("/token", post(token))
        .route_service("/revoke", RevocationEndpoint::new(app.lifecycle("")))
        .route_service("/.well-known/jwks.json", ring.jwks_service())
        .route_service(ProviderMetadata::WELL_KNOWN_PATH, metadata.service());
    if app.admin_token.is_some() {
        router = router
            .route("/admin/permissions", post(admin_permissions))
            .route("/admin/rotate-key", post(admin_rotate_key));
    }
    let clients: Vec<_> = app.clients.iter().map(|c| c.client_id.as_str()).collect();
    tracing::info!(%addr, issuer = %app.issuer, ?clients, kid = %ring.current_kid(), "SSO auth server listening");
    if !secure {
        tracing::warn!(
            "PUBLIC_URL is not https: cookies without `Secure`, fine for localhost only"
        );
    }
    axum::serve(listener, router.with_state(app.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn parse_clients(spec: &str) -> anyhow::Result<ClientRegistry> {
    let mut registry = ClientRegistry::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(';');
        let Some((id, uri)) = parts.next().and_then(|p| p.split_once('=')) else {
            bail!("CLIENTS entry {entry:?} is not client_id=redirect_uri");
        };
        let mut client = RegisteredClient::new(id)?.redirect_uri(uri)?;
        for part in parts {
            client = match part.split_once('=') {
                Some(("backchannel_logout_uri", uri)) => client.backchannel_logout_uri(uri)?,
                Some(("post_logout_redirect_uri", uri)) => client.post_logout_redirect_uri(uri)?,
                _ => bail!(
                    "CLIENTS: {part:?} is neither backchannel_logout_uri= nor post_logout_redirect_uri="
                ),
            };
        }
        registry.insert(client)?;
    }
    if registry.is_empty() {
        bail!("CLIENTS lists no client");
    }
    Ok(registry)
}

/// A handler's failure.
enum AppError {
    /// A page, never a redirect: the request names no client and redirect URI to send it to.
    Page(StatusCode, &'static str),
    /// Back to the client's registered redirect URI with an `error` (RFC 6749 §4.1.2.1).
    Redirect(String),
    /// An OAuth error (RFC 6749 §5.2): status, `error`, `error_description`.
    OAuth(StatusCode, &'static str, &'static str),
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
        let (status, error, description) = match self {
            Self::Page(status, text) => return page(status, "Refused", &format!("<p>{text}</p>")),
            Self::Redirect(location) => return redirect(StatusCode::FOUND, &location),
            Self::OAuth(status, error, description) => (status, error, description),
            Self::Failed(e) => {
                tracing::warn!(error = %e, "request failed");
                let s = StatusCode::SERVICE_UNAVAILABLE;
                (
                    s,
                    "temporarily_unavailable",
                    "a store is unavailable, retry later",
                )
            }
        };
        let body = json!({ "error": error, "error_description": description });
        let mut res = no_store((status, Json(body)));
        let h = res.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                h.insert(header::WWW_AUTHENTICATE, "Bearer".parse().unwrap())
            }
            StatusCode::SERVICE_UNAVAILABLE => h.insert(header::RETRY_AFTER, "1".parse().unwrap()),
            _ => None,
        };
        res
    }
}

fn no_store(res: impl IntoResponse) -> Response {
    let mut res = res.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn invalid_grant(description: &'static str) -> AppError {
    AppError::OAuth(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// A signed-in browser's SSO session (Redis hash `sso:session:<sid>`).
struct Session {
    sid: String,
    sub: String,
    auth_time: u64,
    expires: u64,
    /// Its fields: `client:<id>` for each client it signed in to, `family:<id>` for each
    /// refresh-token family it started.
    fields: HashMap<String, String>,
}

impl Session {
    fn named<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.keys().filter_map(move |k| k.strip_prefix(kind))
    }
}

/// An authorization request, checked (`/authorize`, and the login form that repeats it).
#[derive(Deserialize)]
struct AuthParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    #[serde(default)]
    state: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    nonce: Option<String>,
    #[serde(default)]
    scope: String,
    username: Option<String>,
    password: Option<String>,
}

fn session_key(sid: &str) -> String {
    format!("sso:session:{sid}")
}
fn family_key(family: &str) -> String {
    format!("sso:family:{family}")
}

impl App {
    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, AppError> {
        Ok(bounded(
            "redis",
            REDIS_TIMEOUT,
            cmd.query_async(&mut self.redis.clone()),
        )
        .await?)
    }

    async fn hset_if_exists(&self, sid: &str, field: &str, value: &str) -> Result<bool, AppError> {
        let (script, mut conn) = (redis::Script::new(HSET_IF_EXISTS), self.redis.clone());
        let mut call = script.prepare_invoke();
        call.key(session_key(sid)).arg(field).arg(value);
        Ok(bounded("redis", REDIS_TIMEOUT, call.invoke_async::<i64>(&mut conn)).await? == 1)
    }

    /// The client and redirect URI first (refused with a page, never redirected: an open
    /// redirector would hand codes to whoever wrote the link), then the rest of the request
    /// (refused by redirecting back with `error`). PKCE `S256` is required of every client.
    fn check(&self, p: &AuthParams) -> Result<(), AppError> {
        let (client_id, redirect_uri) = (p.client_id.as_deref(), p.redirect_uri.as_deref());
        if let Err(e) = self
            .clients
            .redirect_uri(client_id.unwrap_or(""), redirect_uri.unwrap_or(""))
        {
            tracing::info!(?client_id, ?redirect_uri, %e, "authorization refused");
            let text =
                "Unknown client, or not its registered redirect_uri: nothing was sent anywhere.";
            return Err(AppError::Page(StatusCode::BAD_REQUEST, text));
        }
        let back = |error: &str, state: &str| {
            let params = [("error", error), ("state", state)];
            let n = if state.is_empty() { 1 } else { 2 };
            AppError::Redirect(with_query(redirect_uri.unwrap_or(""), &params[..n]))
        };
        let too_long = |s: &str| s.len() > MAX_PARAM;
        if too_long(&p.state) || too_long(&p.scope) || p.nonce.as_deref().is_some_and(too_long) {
            return Err(back("invalid_request", ""));
        }
        let pkce = p
            .code_challenge
            .as_deref()
            .is_some_and(code::is_valid_challenge);
        if !pkce || p.code_challenge_method.as_deref() != Some("S256") {
            return Err(back("invalid_request", &p.state));
        }
        if p.response_type.as_deref() != Some("code") {
            return Err(back("unsupported_response_type", &p.state));
        }
        Ok(())
    }

    /// Records that `session` signed in to the client and mints a one-time code for it:
    /// where to send the browser, or `None` when the session just ended.
    async fn issue_code(&self, s: &Session, p: &AuthParams) -> Result<Option<String>, AppError> {
        let (client_id, redirect_uri) = (p.client_id.as_deref(), p.redirect_uri.as_deref());
        let (client_id, redirect_uri) = (client_id.unwrap_or(""), redirect_uri.unwrap_or(""));
        if !self
            .hset_if_exists(&s.sid, &format!("client:{client_id}"), "1")
            .await?
        {
            return Ok(None);
        }
        let challenge = p.code_challenge.as_deref().unwrap_or("");
        let mut grant = CodeGrant::new(client_id, redirect_uri, challenge, &s.sub, &s.sid)?
            .scope(&p.scope)
            .auth_time(s.auth_time);
        if let Some(nonce) = p.nonce.as_deref().filter(|n| !n.is_empty()) {
            grant = grant.nonce(nonce);
        }
        let code = self.codes.issue(&grant).await?;
        tracing::info!(sub = %s.sub, sid = %s.sid, client_id, "authorization code issued");
        let params = [("code", code.as_str()), ("state", &p.state)];
        let n = if p.state.is_empty() { 1 } else { 2 };
        Ok(Some(with_query(redirect_uri, &params[..n])))
    }

    async fn load_session(&self, sid: &str) -> Result<Option<Session>, AppError> {
        let fields: HashMap<String, String> = self
            .cmd(redis::cmd("HGETALL").arg(session_key(sid)))
            .await?;
        let number = |name: &str| fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        let (auth_time, expires) = (number("auth_time"), number("expires"));
        let Some(sub) = fields.get("sub").filter(|_| expires > now_secs()).cloned() else {
            return Ok(None);
        };
        Ok(Some(Session {
            sid: sid.to_owned(),
            sub,
            auth_time,
            expires,
            fields,
        }))
    }

    /// The live SSO session the cookie `<sid>.<secret>` names (Redis keeps the secret's hash).
    async fn session_from_cookie(&self, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
        let value = cookie_value(headers, SSO_COOKIE).unwrap_or_default();
        let Some((sid, secret)) = value.split_once('.') else {
            return Ok(None);
        };
        if !is_b64url(sid, 22, 22) || !is_b64url(secret, 43, 43) {
            return Ok(None);
        }
        let session = self.load_session(sid).await?;
        let hash = sha256_hex(secret);
        Ok(session.filter(|s| {
            s.fields
                .get("secret")
                .is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash.as_bytes())))
        }))
    }

    /// Starts an SSO session: it and the cookie value.
    async fn create_session(&self, sub: &str) -> Result<(Session, String), AppError> {
        let (sid, secret, now) = (random_id::<16>(), random_id::<32>(), now_secs());
        let expires = now + self.session_ttl;
        let key = session_key(&sid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &[("sub", sub), ("secret", &sha256_hex(&secret))])
            .ignore();
        pipe.hset_multiple(&key, &[("auth_time", now), ("expires", expires)])
            .ignore();
        pipe.expire(&key, self.session_ttl as i64).ignore();
        bounded(
            "redis",
            REDIS_TIMEOUT,
            pipe.query_async::<()>(&mut self.redis.clone()),
        )
        .await?;
        tracing::info!(sub, sid, "SSO session started");
        let fields = HashMap::new();
        let session = Session {
            sid: sid.clone(),
            sub: sub.to_owned(),
            auth_time: now,
            expires,
            fields,
        };
        Ok((session, format!("{sid}.{secret}")))
    }

    /// Ends an SSO session everywhere: its tokens and refresh families are revoked in the
    /// store every service checks, and every client it reached hears of it (back channel).
    async fn end_session(&self, sub: &str, sid: &str) -> Result<(), AppError> {
        let key = session_key(sid);
        let mut pipe = redis::pipe();
        pipe.atomic().hgetall(&key).del(&key).ignore();
        let mut conn = self.redis.clone();
        let fut = pipe.query_async::<(HashMap<String, String>,)>(&mut conn);
        let (fields,) = bounded("redis", REDIS_TIMEOUT, fut).await?;
        let until = now_secs() + self.access_ttl + self.skew;
        self.revocation
            .revoke_session(Some(sub), sid, until)
            .await?;
        let session = Session {
            sid: sid.to_owned(),
            sub: sub.to_owned(),
            auth_time: 0,
            expires: 0,
            fields,
        };
        for family in session.named("family:") {
            self.lifecycle("").revoke_family(Some(sub), family).await?;
        }
        let clients: Vec<RegisteredClient> = session
            .named("client:")
            .filter_map(|c| self.clients.get(c))
            .cloned()
            .collect();
        let (sender, sub, sid) = (self.logout_sender.clone(), sub.to_owned(), sid.to_owned());
        tracing::info!(sub, sid, "SSO session ended");
        tokio::spawn(async move {
            let report = sender.send_logout(clients.iter(), &sub, &sid).await;
            for (client, why) in report.failed {
                tracing::warn!(client, why, "back-channel logout not delivered");
            }
        });
        Ok(())
    }

    /// Access tokens for `client`, signed with the ring's current key.
    fn issuer_for(&self, client: &str) -> TokenIssuer {
        let ttl = Duration::from_secs(self.access_ttl);
        TokenIssuer::new(self.ring.signing_key())
            .issuer(&self.issuer)
            .audience(client)
            .ttl(ttl)
    }

    /// Refresh tokens of `client` (`""`: to revoke only): rotated on every use, a reuse
    /// revokes the family; they live as long as an SSO session and end with it.
    fn lifecycle(&self, client: &str) -> TokenLifecycle {
        let (verifier, refresh) = (self.access_verifier.clone(), self.refresh.clone());
        TokenLifecycle::new(
            self.issuer_for(client).typ("at+jwt"),
            verifier,
            refresh,
            self.revocation.clone(),
        )
        .refresh_ttl(Duration::from_secs(self.session_ttl))
    }

    /// An OpenID Connect ID token for a redeemed code, bound to its access token (`at_hash`).
    fn id_token(&self, grant: &CodeGrant, access_token: &str) -> anyhow::Result<String> {
        let key = self.ring.signing_key();
        let digest = match key.algorithm() {
            Algorithm::ES384 | Algorithm::RS384 | Algorithm::PS384 => {
                Sha384::digest(access_token).to_vec()
            }
            Algorithm::EdDSA | Algorithm::RS512 | Algorithm::PS512 => {
                Sha512::digest(access_token).to_vec()
            }
            _ => Sha256::digest(access_token).to_vec(),
        };
        let mut claims = Map::new();
        claims.insert(
            "at_hash".into(),
            URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]).into(),
        );
        claims.insert("azp".into(), grant.client_id.clone().into());
        claims.insert("auth_time".into(), grant.auth_time.into());
        if let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), nonce.clone().into());
        }
        let issuer = TokenIssuer::new(key)
            .issuer(&self.issuer)
            .audience(&grant.client_id);
        let issuer = issuer.ttl(Duration::from_secs(self.access_ttl));
        Ok(issuer
            .issue_in_session(&grant.sub, "", Some(&grant.session), &claims)?
            .token)
    }

    /// A replayed code (RFC 6749 §4.1.2: it may have been stolen): revoke what it produced.
    async fn revoke_issued(
        &self,
        sub: &str,
        client: &str,
        issued: &IssuedRef,
    ) -> Result<(), AppError> {
        tracing::warn!(
            sub,
            client,
            "authorization code replayed; revoking what it was exchanged for"
        );
        for jti in &issued.jtis {
            let token = TokenRef::new()
                .jti(jti.as_str())
                .sub(sub)
                .exp(issued.expires_at);
            self.revocation.revoke_token(token).await?;
        }
        if let Some(family) = &issued.family {
            self.lifecycle(client)
                .revoke_family(Some(sub), family)
                .await?;
        }
        Ok(())
    }

    /// The authorization-code grant (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6, OpenID Connect).
    async fn code_grant(
        &self,
        client: &str,
        f: &HashMap<String, String>,
    ) -> Result<Value, AppError> {
        let param = |name: &str| f.get(name).map(String::as_str);
        let (Some(code), Some(redirect_uri), Some(verifier)) =
            (param("code"), param("redirect_uri"), param("code_verifier"))
        else {
            let what = "code, redirect_uri and code_verifier are required";
            return Err(AppError::OAuth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                what,
            ));
        };
        let grant = match self
            .codes
            .redeem(code, client, redirect_uri, verifier)
            .await?
        {
            Redemption::Redeemed(grant) => grant,
            Redemption::Replayed {
                sub,
                client_id,
                issued: Some(issued),
                ..
            } => {
                self.revoke_issued(&sub, &client_id, &issued).await?;
                return Err(invalid_grant("the code was used already"));
            }
            _ => return Err(invalid_grant("unknown, expired, used or mismatched code")),
        };
        let Some(session) = self.load_session(&grant.session).await? else {
            return Err(invalid_grant("the SSO session has ended"));
        };
        let scope = self.scope_of(&grant.sub).await?;
        let mut issued = IssuedRef::new().sid(&grant.session);
        let mut body = if has_scope(&grant.scope, "offline_access") {
            let pair = self
                .lifecycle(client)
                .issue_pair(&grant.sub, &scope)
                .await?;
            let family = PresentedToken::parse(&pair.refresh_token)
                .ok_or_else(|| anyhow!("refresh token"))?
                .family;
            let owner = format!("{} {client}", grant.session);
            self.cmd::<()>(
                redis::cmd("SET")
                    .arg(family_key(&family))
                    .arg(owner)
                    .arg("EX")
                    .arg(self.session_ttl),
            )
            .await?;
            if !self
                .hset_if_exists(&grant.session, &format!("family:{family}"), client)
                .await?
            {
                self.lifecycle(client)
                    .revoke_family(Some(&grant.sub), &family)
                    .await?;
                return Err(invalid_grant("the SSO session has ended"));
            }
            issued = issued.family(family);
            json!({ "access_token": pair.access.token, "refresh_token": pair.refresh_token, "expires_in": pair.access.expires_in })
        } else {
            // Never outliving the SSO session.
            let ttl = self
                .access_ttl
                .min(session.expires.saturating_sub(now_secs()))
                .max(1);
            let issuer = self
                .issuer_for(client)
                .typ("at+jwt")
                .ttl(Duration::from_secs(ttl));
            let access = issuer.issue_in_session(
                &grant.sub,
                &scope,
                Some(&grant.session),
                &NoCustomClaims {},
            )?;
            issued = issued.jti(&access.jti).expires_at(access.expires_at);
            json!({ "access_token": access.token, "expires_in": access.expires_in })
        };
        let access_token = body["access_token"].as_str().unwrap_or_default().to_owned();
        if has_scope(&grant.scope, "openid") {
            body["id_token"] = self.id_token(&grant, &access_token)?.into();
        }
        if self.codes.mark_issued(CodeHash::of(code), &issued).await? == MarkIssued::Replayed {
            self.revoke_issued(&grant.sub, client, &issued).await?;
            return Err(invalid_grant("the code was used already"));
        }
        tracing::info!(sub = %grant.sub, sid = %grant.session, client, "tokens issued");
        body["token_type"] = "Bearer".into();
        body["scope"] = scope.into();
        Ok(body)
    }

    /// The refresh grant: the crate's rotation, for the client the family was issued to.
    async fn refresh_grant(&self, client: &str, token: &str) -> Result<Value, AppError> {
        let owner = match PresentedToken::parse(token) {
            Some(p) => {
                self.cmd::<Option<String>>(redis::cmd("GET").arg(family_key(&p.family)))
                    .await?
            }
            None => None,
        };
        if owner
            .as_deref()
            .and_then(|o| o.split_once(' '))
            .map(|(_, c)| c)
            != Some(client)
        {
            return Err(invalid_grant("unknown refresh token, or another client's"));
        }
        match self.lifecycle(client).refresh(token, None).await {
            Ok(pair) => Ok(
                json!({ "access_token": pair.access.token, "token_type": "Bearer",
                "expires_in": pair.access.expires_in, "refresh_token": pair.refresh_token, "scope": pair.scope }),
            ),
            Err(GrantError::Unavailable(e)) => Err(e.into()),
            Err(_) => Err(invalid_grant("invalid, spent or revoked refresh token")),
        }
    }

    /// The user's scope: set by an admin, else the demo default.
    async fn scope_of(&self, user: &str) -> Result<String, AppError> {
        let set: Option<String> = self
            .cmd(redis::cmd("GET").arg(format!("sso:perms:{user}")))
            .await?;
        let default = DEMO_USERS.iter().find(|u| u.0 == user).map(|u| u.2);
        Ok(set.unwrap_or_else(|| default.unwrap_or_default().to_owned()))
    }

    /// Where a logout sends the browser: the client's registered `post_logout_redirect_uri`
    /// (with `state`), or the signed-out page. The SSO cookie is cleared either way.
    fn signed_out(&self, p: &HashMap<String, String>) -> Response {
        let client = p.get("client_id").and_then(|c| self.clients.get(c));
        let target = p
            .get("post_logout_redirect_uri")
            .filter(|u| client.is_some_and(|c| c.allows_post_logout_redirect_uri(u)));
        let mut res = match (target, p.get("state")) {
            (Some(uri), Some(state)) => {
                redirect(StatusCode::SEE_OTHER, &with_query(uri, &[("state", state)]))
            }
            (Some(uri), None) => redirect(StatusCode::SEE_OTHER, uri),
            _ => page(
                StatusCode::OK,
                "Signed out",
                "<p>You are signed out of every service.</p>",
            ),
        };
        res.headers_mut()
            .append(header::SET_COOKIE, self.cookie.removal_cookie());
        res
    }

    fn require_admin(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let expected = sha256_hex(self.admin_token.as_deref().unwrap_or_default());
        match bearer(headers) {
            Some(given) if bool::from(sha256_hex(given).as_bytes().ct_eq(expected.as_bytes())) => {
                Ok(())
            }
            _ => Err(AppError::OAuth(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Authorization: Bearer $ADMIN_TOKEN",
            )),
        }
    }
}

fn login_page(p: &AuthParams, error: &str, status: StatusCode) -> Response {
    let field = |v: &Option<String>| esc(v.as_deref().unwrap_or_default());
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="error">{error}</p>"#)
    };
    let vars = [
        ("error", error),
        ("client_id", field(&p.client_id)),
        ("redirect_uri", field(&p.redirect_uri)),
        ("state", esc(&p.state)),
        ("code_challenge", field(&p.code_challenge)),
        ("nonce", field(&p.nonce)),
        ("scope", esc(&p.scope)),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::html(status, fill(LOGIN_PAGE, &vars))
}

/// `GET /authorize`: a code at once when the SSO cookie names a live session, else the login page.
async fn authorize(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<AuthParams>,
) -> Result<Response, AppError> {
    app.check(&p)?;
    if let Some(session) = app.session_from_cookie(&headers).await?
        && let Some(location) = app.issue_code(&session, &p).await?
    {
        return Ok(redirect(StatusCode::FOUND, &location));
    }
    Ok(login_page(&p, "", StatusCode::OK))
}

/// `POST /login`: checks the password (Argon2, off the async threads, as slow for unknown
/// users), starts the SSO session, and sends the browser back with a code.
async fn login(State(app): State<Shared>, Form(p): Form<AuthParams>) -> Result<Response, AppError> {
    app.check(&p)?;
    let (name, password) = (
        p.username.clone().unwrap_or_default(),
        p.password.clone().unwrap_or_default(),
    );
    let (user, hash) = match app.users.get_key_value(name.as_str()) {
        Some((&user, hash)) => (Some(user), hash.clone()),
        None => (None, app.users[DEMO_USERS[0].0].clone()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(username = ?name, "login refused");
        return Ok(login_page(
            &p,
            "Wrong user name or password.",
            StatusCode::UNAUTHORIZED,
        ));
    };
    let (session, cookie) = app.create_session(user).await?;
    let location = app
        .issue_code(&session, &p)
        .await?
        .ok_or_else(|| anyhow!("a new session vanished"))?;
    let mut res = redirect(StatusCode::SEE_OTHER, &location);
    let set_cookie = app
        .cookie
        .set_cookie(&cookie, Duration::from_secs(app.session_ttl));
    res.headers_mut().append(header::SET_COOKIE, set_cookie);
    Ok(res)
}

/// `POST /token`: public clients, identified by `client_id`, proving themselves with PKCE.
async fn token(
    State(app): State<Shared>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let Some(client) = f.get("client_id").filter(|c| app.clients.get(c).is_some()) else {
        return Err(AppError::OAuth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client",
        ));
    };
    let body = match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => app.code_grant(client, &f).await?,
        Some("refresh_token") => {
            app.refresh_grant(client, f.get("refresh_token").map_or("", |t| t))
                .await?
        }
        _ => {
            return Err(AppError::OAuth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "authorization_code or refresh_token",
            ));
        }
    };
    Ok(no_store(Json(body)))
}

/// `POST /logout`: from a service (bearer: the user's access token, 204) or from the browser
/// (the SSO cookie; the form of the end-session page). The SSO session ends everywhere.
async fn logout(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if let Some(token) = bearer(&headers) {
        let unknown = AppError::OAuth(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "not an access token of this server",
        );
        let claims = app
            .access_verifier
            .verify::<NoCustomClaims>(token)
            .map_err(|_| unknown)?;
        let (Some(sub), Some(sid)) = (&claims.sub, &claims.sid) else {
            return Err(AppError::OAuth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the token names no session",
            ));
        };
        // A refreshed token's `sid` is its refresh family: the SSO session is its owner.
        let owner: Option<String> = app.cmd(redis::cmd("GET").arg(family_key(sid))).await?;
        let sid = owner
            .as_deref()
            .and_then(|o| o.split_once(' '))
            .map_or(sid.as_str(), |(s, _)| s);
        app.end_session(sub, sid).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(session) = app.session_from_cookie(&headers).await? {
        app.end_session(&session.sub, &session.sid).await?;
    }
    Ok(app.signed_out(&form_urlencoded::parse(&body).into_owned().collect()))
}

/// `GET /logout`, the `end_session_endpoint` (OpenID Connect RP-Initiated Logout 1.0): with a
/// valid `id_token_hint` of the client, its session ends at once; otherwise the user confirms
/// (a GET must not sign anyone out on a third party's say-so).
async fn end_session(
    State(app): State<Shared>,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let hint = p
        .get("id_token_hint")
        .and_then(|t| app.id_verifier.verify::<NoCustomClaims>(t).ok());
    let client = p.get("client_id");
    if let Some(claims) =
        hint.filter(|c| client.is_some_and(|id| c.aud.as_ref().is_some_and(|a| a.contains(id))))
        && let (Some(sub), Some(sid)) = (&claims.sub, &claims.sid)
    {
        app.end_session(sub, sid).await?;
        return Ok(app.signed_out(&p));
    }
    let hidden: String = ["client_id", "post_logout_redirect_uri", "state"]
        .iter()
        .filter_map(|name| {
            p.get(*name)
                .map(|v| format!(r#"<input type="hidden" name="{name}" value="{}">"#, esc(v)))
        })
        .collect();
    let form = format!(
        r#"<form method="post" action="/logout">{hidden}<button type="submit">Sign out everywhere</button></form>"#
    );
    Ok(page(StatusCode::OK, "Sign out?", &form))
}

/// `GET /`: who is signed in here.
async fn home(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some(s) = app.session_from_cookie(&headers).await? else {
        return Ok(page(
            StatusCode::OK,
            "Not signed in",
            "<p>Open one of the services to sign in.</p>",
        ));
    };
    let mut clients: Vec<&str> = s.named("client:").collect();
    clients.sort_unstable();
    let clients = if clients.is_empty() {
        "none yet".to_owned()
    } else {
        esc(&clients.join(", "))
    };
    let minutes = s.expires.saturating_sub(now_secs()) / 60;
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> for {minutes} more minutes.</p>
<p>Services used with this sign-in: {clients}.</p>
<form method="post" action="/logout"><button type="submit">Sign out everywhere</button></form>"#,
        esc(&s.sub)
    );
    Ok(page(StatusCode::OK, "Single sign-on", &body))
}

#[derive(Deserialize)]
struct PermissionChange {
    user: String,
    scope: String,
}

/// `POST /admin/permissions`: a user's new scope. Tokens carry their scope, so the user's
/// tokens and refresh families are revoked at once; the SSO session gets new ones.
async fn admin_permissions(
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(req): Json<PermissionChange>,
) -> Result<Response, AppError> {
    app.require_admin(&headers)?;
    let Some(&user) = app.users.keys().find(|u| **u == req.user) else {
        return Err(AppError::OAuth(
            StatusCode::NOT_FOUND,
            "unknown_user",
            "no such user",
        ));
    };
    // RFC 6749 §3.3 scope tokens: visible ASCII but `"` and `\`.
    if req.scope.len() > 1024
        || !req
            .scope
            .bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        return Err(AppError::OAuth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "visible ASCII but \" and \\",
        ));
    }
    let scope = req.scope.split_whitespace().collect::<Vec<_>>().join(" ");
    let now = now_secs();
    // Scope first, revocation second: a token minted in between with the old scope is revoked.
    app.cmd::<()>(
        redis::cmd("SET")
            .arg(format!("sso:perms:{user}"))
            .arg(&scope),
    )
    .await?;
    // Returns once the second is over, so the next token is not revoked too.
    app.lifecycle("").logout_everywhere(user).await?;
    tracing::info!(
        user,
        scope,
        "permissions changed; the user's tokens are revoked"
    );
    Ok(Json(json!({ "user": user, "scope": scope, "revoked_issued_before": now })).into_response())
}

/// `POST /admin/rotate-key`: a new Ed25519 key, published at once and signing after
/// `KEY_PUBLISH_AHEAD_SECS`, when every service has fetched it: a rotation refuses nothing.
async fn admin_rotate_key(
    State(app): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    app.require_admin(&headers)?;
    let (key, previous) = (RingKey::generate_ed25519()?, app.ring.current_kid());
    let kid = key.kid().to_owned();
    let signs_from = app.ring.rotate(key)?;
    let keys = app.ring.key_set()?;
    app.access_verifier.set_keys(&keys);
    app.id_verifier.set_keys(&keys);
    let previous_published_until = signs_from + app.access_ttl + app.skew;
    tracing::info!(kid, previous, signs_from, "signing key rotated");
    Ok(Json(
        json!({ "kid": kid, "alg": "EdDSA", "signs_from": signs_from, "previous_kid": previous,
        "previous_published_until": previous_published_until }),
    )
    .into_response())
}
