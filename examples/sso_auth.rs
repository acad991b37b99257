//! Single sign-on, the auth server: one login for several services (`sso_service`, run once per
//! service). An OAuth 2.0 authorization-code flow with PKCE; services verify its ES256/EdDSA
//! access tokens with its JWK Set, and every revocation goes through one Redis that all of
//! them share. `docs/sso.md` explains the design.
//!
//! ```sh
//! redis-server &   # or any Redis on REDIS_URL
//! ADMIN_TOKEN=$(openssl rand -hex 16) cargo run --example sso_auth
//! SERVICE=orders  cargo run --example sso_service    # http://127.0.0.1:4001
//! SERVICE=members cargo run --example sso_service    # http://127.0.0.1:4002
//! ```
//!
//! Open <http://127.0.0.1:4001/>, sign in (`alice` / `alice-password`, or `bob` /
//! `bob-password`), then open <http://127.0.0.1:4002/>: no password asked.
//!
//! | route | who calls it | what it does |
//! |---|---|---|
//! | `GET /authorize?response_type=code&client_id&redirect_uri&state&code_challenge&code_challenge_method=S256` | the browser, sent by a service | unknown client or a redirect URI other than the registered one: 400 page, no redirect. Signed in (SSO cookie): 302 to the redirect URI with a one-time `code` and the `state`. Otherwise the login page |
//! | `POST /login` (form) | the login page | checks the password, starts the SSO session (cookie `sso_session`), 303 to the redirect URI with a `code` |
//! | `POST /token` `grant_type=authorization_code&code&redirect_uri&client_id&code_verifier` | a service, server to server | the access token: `iss` = this server, `aud` = the client, `sid` = the SSO session, `scope` = the user's permissions |
//! | `GET /.well-known/jwks.json` | services | the public keys, by `kid` |
//! | `POST /logout` | a service (`Authorization: Bearer <the user's access token>`), or the browser (SSO cookie) | ends the SSO session: its tokens are revoked at every service at once |
//! | `POST /admin/permissions` `{"user","scope"}` | an operator, `Authorization: Bearer $ADMIN_TOKEN` | new permissions; the user's current tokens are revoked, new ones carry the new scope |
//! | `POST /admin/rotate-key` | an operator, `Authorization: Bearer $ADMIN_TOKEN` | signs from now on with a new Ed25519 key under a new `kid`; the old key stays published until its last token has expired |
//! | `GET /` | the browser | who is signed in, and a sign-out button |
//! | `GET /health` | probes | `ok` |
//!
//! Environment:
//!
//! - `BIND`: listen address, default `127.0.0.1:4000`. `PUBLIC_URL`: this server's URL as the
//!   browser and the services see it, and the tokens' `iss`; default `http://<BIND>`.
//!   Cookies get `Secure` when it is `https://`.
//! - `CLIENTS`: the services allowed to sign users in, each with its one redirect URI, compared
//!   byte for byte: `orders=http://127.0.0.1:4001/callback,members=http://127.0.0.1:4002/callback`
//!   (the default).
//! - `REDIS_URL`: SSO sessions, codes, permissions and the revocation store shared with the
//!   services; default `redis://127.0.0.1:6379/`.
//! - `SIGNING_KEY`: a PKCS#8 PEM private key, P-256 (ES256) or Ed25519 (EdDSA). Unset: a fresh
//!   Ed25519 key (services fetch it; tokens of an earlier run stop verifying, and their users
//!   are signed in again silently while their SSO session lasts).
//! - `ACCESS_TTL_SECS` (300), `SSO_SESSION_TTL_SECS` (28800), `CLOCK_SKEW_SECS` (30: how long
//!   past its last token's expiry an old key stays published; use the services' leeway).
//! - `ADMIN_TOKEN`: the bearer secret of the `/admin` routes. Unset: those routes are absent.
//! - `RUST_LOG`: log filter, default `info,tower_token_auth=debug` (stderr).
//!
//! Demo users: `alice` / `alice-password` (scope `orders members`) and `bob` / `bob-password`
//! (scope `orders`). Scopes name the services a user may use.

#[path = "sso/common.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use rand::RngCore;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_token_auth::revocation::{
    RedisRevocationStore, RedisStoreConfig, RevocationStore, TokenRef,
};
use tower_token_auth::{
    AccessCookie, Algorithm, KeySet, RevocationError, SigningKey, TokenIssuer, Verifier,
};

use common::{
    bearer, bounded, cookie_value, csrf_layer, env_or, env_u64, esc, fill, is_b64url, now_ms,
    now_secs, page, random_id, redirect, sha256_b64, sha256_hex, with_query,
};
use shared::{hash_password, verify_password};

const DEFAULT_BIND: &str = "127.0.0.1:4000";
const DEFAULT_CLIENTS: &str =
    "orders=http://127.0.0.1:4001/callback,members=http://127.0.0.1:4002/callback";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
const LOGIN_PAGE: &str = include_str!("sso/login.html");
/// The SSO session cookie, on this server's origin only.
const SSO_COOKIE: &str = "sso_session";
/// Prefix of this server's own Redis keys (the revocation store uses `tta:`).
const PREFIX: &str = "sso:";
/// Authorization codes are single-use and live this long (RFC 6749 §4.1.2: at most 10 min).
const CODE_TTL: Duration = Duration::from_secs(60);
/// Bound on every Redis operation.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest `state` echoed back to a client.
const MAX_STATE_LEN: usize = 2048;
/// PKCS#8 v1 header of an Ed25519 private key; the 32-byte seed follows (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The demo users: name, password, default scope. Passwords are hashed at start-up.
const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "orders members"),
    ("bob", "bob-password", "orders"),
];

/// Adds a client to a session, only if the session still exists (a logout may have just
/// deleted it; `HSET` alone would bring it back without an expiry).
const ADD_CLIENT_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
";

struct Config {
    public_url: String,
    /// client_id → its one registered redirect URI.
    clients: BTreeMap<String, String>,
    access_ttl: u64,
    session_ttl: u64,
    clock_skew: u64,
    admin_token: Option<String>,
    sso_cookie: AccessCookie,
}

/// A public key in the JWK Set; `retired_at` once new tokens are signed with another key.
struct PublishedKey {
    jwk: Jwk,
    retired_at: Option<u64>,
}

struct Keyring {
    current: SigningKey,
    current_kid: String,
    published: Vec<PublishedKey>,
}

struct App {
    config: Config,
    redis: ConnectionManager,
    /// The store every service checks: logout and permission changes revoke here.
    revocation: RedisRevocationStore,
    keys: RwLock<Keyring>,
    /// Verifies the access tokens services present to the back-channel logout.
    verifier: Verifier,
    /// User → Argon2id hash.
    users: HashMap<&'static str, String>,
    /// Verified against for unknown users, so both cases cost the same.
    dummy_hash: String,
    add_client: Script,
}

type Shared = Arc<App>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();

    let bind = env_or("BIND", DEFAULT_BIND)?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    let public_url = env_or("PUBLIC_URL", &format!("http://{addr}"))?
        .trim_end_matches('/')
        .to_owned();
    let clients = parse_clients(&env_or("CLIENTS", DEFAULT_CLIENTS)?)?;
    let access_ttl = env_u64("ACCESS_TTL_SECS", 300)?.max(1);
    let session_ttl = env_u64("SSO_SESSION_TTL_SECS", 8 * 3600)?.max(access_ttl);
    let clock_skew = env_u64("CLOCK_SKEW_SECS", 30)?;
    let admin_token = Some(env_or("ADMIN_TOKEN", "")?).filter(|t| !t.is_empty());
    let secure = public_url.starts_with("https://");
    if !secure {
        tracing::warn!(
            "PUBLIC_URL is not https: cookies without `Secure`, fine for localhost only"
        );
    }

    let (signing_key, jwk, kid) = match env_or("SIGNING_KEY", "")? {
        path if path.is_empty() => {
            tracing::warn!(
                "SIGNING_KEY is not set: signing with a fresh Ed25519 key (tokens of an earlier run stop verifying)"
            );
            generate_ed25519()?
        }
        path => {
            let pem = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
            key_from_pem(&pem).with_context(|| format!("SIGNING_KEY {path}"))?
        }
    };
    tracing::info!(%kid, alg = ?signing_key.algorithm(), "signing key");
    let keyring = Keyring {
        current: signing_key,
        current_kid: kid,
        published: vec![PublishedKey {
            jwk,
            retired_at: None,
        }],
    };

    let mut verifier = Verifier::builder(keyring.key_set()?)
        .issuer(&public_url)
        .require_claims(["exp", "sub"])
        .require_typ("at+jwt")
        .leeway(Duration::from_secs(clock_skew));
    for client in clients.keys() {
        verifier = verifier.audience(client);
    }
    let verifier = verifier.build()?;

    let redis_url = env_or("REDIS_URL", DEFAULT_REDIS_URL)?;
    let client = redis::Client::open(redis_url.as_str())?;
    let redis = ConnectionManager::new_lazy_with_config(
        client,
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1),
    )?;
    // Fail closed (the default): a revocation that cannot be written is an error, never a
    // silent success.
    let revocation = RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
    if !revocation.wait_live(Duration::from_secs(3)).await {
        tracing::warn!("Redis at {redis_url} is not answering yet");
    }

    let users = DEMO_USERS
        .iter()
        .map(|&(name, password, _)| Ok((name, hash_password(password)?)))
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let dummy_hash = users[DEMO_USERS[0].0].clone();

    let app = Arc::new(App {
        config: Config {
            public_url: public_url.clone(),
            clients,
            access_ttl,
            session_ttl,
            clock_skew,
            admin_token,
            sso_cookie: AccessCookie::new(SSO_COOKIE).secure(secure),
        },
        redis,
        revocation,
        keys: RwLock::new(keyring),
        verifier,
        users,
        dummy_hash,
        add_client: Script::new(ADD_CLIENT_LUA),
    });

    // Browsers attach the SSO cookie to requests any site makes: cross-site POSTs are refused
    // (a forged login would sign the victim in as the attacker, a forged logout is a nuisance).
    let browser_posts = Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route_layer(csrf_layer());
    let mut router = Router::new()
        .route("/", get(home))
        .route("/health", get(|| async { "ok" }))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(browser_posts);
    if app.config.admin_token.is_some() {
        router = router
            .route("/admin/permissions", post(admin_permissions))
            .route("/admin/rotate-key", post(admin_rotate_key));
    } else {
        tracing::info!("ADMIN_TOKEN is not set: no /admin routes");
    }
    let router = router.with_state(app.clone());

    tracing::info!(%addr, %public_url, clients = ?app.config.clients.keys().collect::<Vec<_>>(), "SSO auth server listening");
    println!(
        "\ntower-token-auth SSO auth server on {public_url}   (Ctrl-C to stop)\n\n\
         Services: {}\nJWK Set:  {public_url}/.well-known/jwks.json\n",
        app.config
            .clients
            .iter()
            .map(|(id, uri)| format!("{id} ({uri})"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `id=uri,id=uri`: ids are `[A-Za-z0-9_-]`, URIs absolute http(s) without fragment.
fn parse_clients(spec: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut clients = BTreeMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, uri)) = entry.split_once('=') else {
            bail!("CLIENTS entry {entry:?} is not client_id=redirect_uri");
        };
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!("CLIENTS: client_id {id:?} must be letters, digits, - or _");
        }
        let parsed: axum::http::Uri = uri
            .parse()
            .with_context(|| format!("CLIENTS: {uri:?} is not a URI"))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https"))
            || parsed.authority().is_none()
            || uri.contains('#')
        {
            bail!("CLIENTS: {uri:?} must be an absolute http(s) URI without fragment");
        }
        if clients.insert(id.to_owned(), uri.to_owned()).is_some() {
            bail!("CLIENTS: client {id} listed twice");
        }
    }
    if clients.is_empty() {
        bail!("CLIENTS lists no client");
    }
    Ok(clients)
}

/// A signing key from a PKCS#8 PEM (P-256 or Ed25519), its public JWK and its `kid` (the RFC
/// 7638 thumbprint).
fn key_from_pem(pem: &str) -> anyhow::Result<(SigningKey, Jwk, String)> {
    // Building a SigningKey first also installs the crypto provider jsonwebtoken needs below.
    let (key, encoding, alg) = match SigningKey::ec_pem(Algorithm::ES256, pem.as_bytes()) {
        Ok(key) => (
            key,
            EncodingKey::from_ec_pem(pem.as_bytes())?,
            Algorithm::ES256,
        ),
        Err(_) => (
            SigningKey::ed_pem(pem.as_bytes())
                .context("not a PKCS#8 PEM P-256 or Ed25519 private key")?,
            EncodingKey::from_ed_pem(pem.as_bytes())?,
            Algorithm::EdDSA,
        ),
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, alg)?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok((key.with_kid(kid.clone()), jwk, kid))
}

/// A new random Ed25519 key.
fn generate_ed25519() -> anyhow::Result<(SigningKey, Jwk, String)> {
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    der.extend_from_slice(&seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&der)
    );
    key_from_pem(&pem)
}

impl Keyring {
    /// The keys to publish: the current one, and retired ones until every token they signed
    /// has expired (plus the clock skew services tolerate).
    fn published_set(&self, access_ttl: u64, clock_skew: u64) -> JwkSet {
        let now = now_secs();
        JwkSet {
            keys: self
                .published
                .iter()
                .filter(|k| {
                    k.retired_at
                        .is_none_or(|at| at.saturating_add(access_ttl + clock_skew) >= now)
                })
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// Every key ever used (this server's own verifier; expired tokens fail on `exp`).
    fn key_set(&self) -> anyhow::Result<KeySet> {
        let all = JwkSet {
            keys: self.published.iter().map(|k| k.jwk.clone()).collect(),
        };
        Ok(KeySet::from_jwks(&all)?)
    }
}

/// Whether `a` and `b` are equal, in time independent of where they differ (and, hashed
/// first, of their lengths).
fn secrets_equal(a: &str, b: &str) -> bool {
    sha256_hex(a)
        .as_bytes()
        .ct_eq(sha256_hex(b).as_bytes())
        .into()
}

/// A handler's failure.
enum AppError {
    /// A page for the browser: status, title, text.
    Page(StatusCode, &'static str, String),
    /// An OAuth error (RFC 6749 §5.2): status, `error`, `error_description`.
    OAuth(StatusCode, &'static str, &'static str),
    /// Redis or the revocation store could not answer: 503.
    Unavailable(anyhow::Error),
    /// A bug: 500, details in the log only.
    Internal(anyhow::Error),
}

impl From<RevocationError> for AppError {
    fn from(e: RevocationError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(status, title, text) => {
                page(status, title, &format!("<p>{}</p>", esc(&text)))
            }
            Self::OAuth(status, code, description) => {
                let mut res = (
                    status,
                    Json(json!({ "error": code, "error_description": description })),
                )
                    .into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if status == StatusCode::UNAUTHORIZED {
                    res.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                res
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "store unavailable");
                let mut res = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "error": "temporarily_unavailable",
                        "error_description": "the session store is unavailable, retry later",
                    })),
                )
                    .into_response();
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

fn invalid_grant(description: &'static str) -> AppError {
    AppError::OAuth(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// A signed-in browser: the SSO session its cookie names.
struct Session {
    sid: String,
    sub: String,
    expires: u64,
    /// The services this session signed in to.
    clients: Vec<String>,
}

/// What an authorization code stands for (stored under the code's hash).
#[derive(Serialize, Deserialize)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    sub: String,
    sid: String,
    code_challenge: String,
}

/// The token a spent code was exchanged for: replaying the code revokes it.
#[derive(Serialize, Deserialize)]
struct SpentCode {
    jti: String,
    sub: String,
    exp: u64,
}

/// A checked authorization request.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: String,
}

fn session_key(sid: &str) -> String {
    format!("{PREFIX}session:{sid}")
}
fn code_key(code_hash: &str) -> String {
    format!("{PREFIX}code:{code_hash}")
}
fn spent_code_key(code_hash: &str) -> String {
    format!("{PREFIX}code-spent:{code_hash}")
}
fn permissions_key(user: &str) -> String {
    format!("{PREFIX}perms:{user}")
}
fn permissions_changed_key(user: &str) -> String {
    format!("{PREFIX}perms-changed:{user}")
}

impl App {
    /// Runs one Redis command, bounded by [`REDIS_TIMEOUT`].
    async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, AppError> {
        let mut conn = self.redis.clone();
        bounded("redis", REDIS_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(AppError::Unavailable)
    }

    /// The client and its registered redirect URI, when `redirect_uri` is exactly that URI.
    /// Otherwise the user is told, and never redirected anywhere (RFC 6749 §4.1.2.1): an open
    /// redirector would hand codes to whoever wrote the link.
    fn registered_client(
        &self,
        client_id: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<(String, String), AppError> {
        let refused = |text: &str| {
            AppError::Page(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                format!(
                    "{text} The link that brought you here is wrong; nothing was sent anywhere."
                ),
            )
        };
        let Some(client_id) = client_id else {
            return Err(refused("No client_id."));
        };
        let Some(registered) = self.config.clients.get(client_id) else {
            tracing::info!(client_id, "authorization refused: unknown client");
            return Err(refused("Unknown client."));
        };
        if redirect_uri != Some(registered.as_str()) {
            tracing::info!(
                client_id,
                redirect_uri,
                "authorization refused: redirect_uri is not the registered one"
            );
            return Err(refused(
                "The redirect_uri is not the one registered for this client.",
            ));
        }
        Ok((client_id.to_owned(), registered.clone()))
    }

    /// The user whose password this is, or `None`. Argon2 is deliberately slow: it runs off
    /// the async worker threads, and costs the same for unknown users.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<&'static str>, AppError> {
        let (user, hash) = match self.users.get_key_value(username) {
            Some((&name, hash)) => (Some(name), hash.clone()),
            None => (None, self.dummy_hash.clone()),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        Ok(user.filter(|_| ok))
    }

    /// Starts an SSO session for `sub`: returns it and the cookie value `<sid>.<secret>`. Redis
    /// keeps only the secret's hash; `sid` is not secret (every access token carries it).
    async fn create_session(&self, sub: &str) -> Result<(Session, String), AppError> {
        let sid = random_id::<16>();
        let secret = random_id::<32>();
        let now = now_secs();
        let expires = now + self.config.session_ttl;
        let key = session_key(&sid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("sub")
            .arg(sub)
            .arg("secret")
            .arg(sha256_hex(&secret))
            .arg("created")
            .arg(now)
            .arg("expires")
            .arg(expires)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.config.session_ttl)
            .ignore();
        let mut conn = self.redis.clone();
        bounded("redis", REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn))
            .await
            .map_err(AppError::Unavailable)?;
        tracing::info!(sub, sid, "SSO session started");
        let session = Session {
            sid: sid.clone(),
            sub: sub.to_owned(),
            expires,
            clients: Vec::new(),
        };
        Ok((session, format!("{sid}.{secret}")))
    }

    /// The live SSO session the request's cookie names, if any.
    async fn session_from_cookie(&self, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
        let Some(value) = cookie_value(headers, SSO_COOKIE) else {
            return Ok(None);
        };
        let Some((sid, secret)) = value.split_once('.') else {
            return Ok(None);
        };
        if !is_b64url(sid, 22, 22) || !is_b64url(secret, 43, 43) {
            return Ok(None);
        }
        let fields: HashMap<String, String> = self
            .cmd(redis::cmd("HGETALL").arg(session_key(sid)))
            .await?;
        let (Some(sub), Some(hash)) = (fields.get("sub"), fields.get("secret")) else {
            return Ok(None);
        };
        if !bool::from(sha256_hex(secret).as_bytes().ct_eq(hash.as_bytes())) {
            tracing::warn!(sid, "SSO cookie with a wrong secret");
            return Ok(None);
        }
        let expires = fields
            .get("expires")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        if expires <= now_secs() {
            return Ok(None);
        }
        let mut clients: Vec<String> = fields
            .keys()
            .filter_map(|k| k.strip_prefix("client:"))
            .map(str::to_owned)
            .collect();
        clients.sort();
        Ok(Some(Session {
            sid: sid.to_owned(),
            sub: sub.clone(),
            expires,
            clients,
        }))
    }

    /// Records that `session` signed in to the client, and mints a one-time code for it.
    /// Returns where to send the browser, or `None` when the session just ended.
    async fn issue_code(
        &self,
        session: &Session,
        req: &AuthRequest,
    ) -> Result<Option<String>, AppError> {
        let mut conn = self.redis.clone();
        let mut invocation = self.add_client.prepare_invoke();
        invocation
            .key(session_key(&session.sid))
            .arg(format!("client:{}", req.client_id))
            .arg(now_secs());
        let added: i64 = bounded("redis", REDIS_TIMEOUT, invocation.invoke_async(&mut conn))
            .await
            .map_err(AppError::Unavailable)?;
        if added == 0 {
            return Ok(None);
        }
        let code = random_id::<32>();
        let record = CodeRecord {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            sub: session.sub.clone(),
            sid: session.sid.clone(),
            code_challenge: req.code_challenge.clone(),
        };
        let record = serde_json::to_string(&record).map_err(|e| AppError::Internal(e.into()))?;
        self.cmd::<()>(
            redis::cmd("SET")
                .arg(code_key(&sha256_hex(&code)))
                .arg(record)
                .arg("EX")
                .arg(CODE_TTL.as_secs()),
        )
        .await?;
        tracing::info!(sub = ?session.sub, sid = ?session.sid, client_id = ?req.client_id, "authorization code issued");
        let mut params = vec![("code", code.as_str())];
        if !req.state.is_empty() {
            params.push(("state", req.state.as_str()));
        }
        Ok(Some(with_query(&req.redirect_uri, &params)))
    }

    /// Ends an SSO session: no new code or token for it, and every token it produced is
    /// refused by every service sharing the revocation store.
    async fn end_session(&self, sub: &str, sid: &str) -> Result<(), AppError> {
        // Delete first: a token minted after this point still carries the sid, and the
        // revocation below covers it.
        self.cmd::<()>(redis::cmd("DEL").arg(session_key(sid)))
            .await?;
        let keep_until = now_secs() + self.config.access_ttl + self.config.clock_skew;
        self.revocation
            .revoke_session(Some(sub), sid, keep_until)
            .await?;
        tracing::info!(sub, sid, "SSO session ended");
        Ok(())
    }

    /// The user's current scope: set by an admin, else the demo default.
    async fn scope_of(&self, user: &str) -> Result<String, AppError> {
        let set: Option<String> = self
            .cmd(redis::cmd("GET").arg(permissions_key(user)))
            .await?;
        Ok(set.unwrap_or_else(|| {
            DEMO_USERS
                .iter()
                .find(|u| u.0 == user)
                .map(|u| u.2.to_owned())
                .unwrap_or_default()
        }))
    }

    /// A permission change revoked the user's tokens issued up to and including its second
    /// (`iat` has one-second resolution): wait for the next second, or the new token would be
    /// refused too. Waits at most a second.
    async fn wait_past_permission_change(&self, user: &str) -> Result<(), AppError> {
        let changed: Option<u64> = self
            .cmd(redis::cmd("GET").arg(permissions_changed_key(user)))
            .await?;
        if let Some(second) = changed {
            let next = (second + 1) * 1000;
            let now = now_ms();
            if now < next {
                tokio::time::sleep(Duration::from_millis((next - now + 5).min(1_100))).await;
            }
        }
        Ok(())
    }

    /// A code that was already spent came back (RFC 6749 §4.1.2: it may have been stolen):
    /// revoke the token it was exchanged for.
    async fn code_replayed(&self, code_hash: &str) -> Result<(), AppError> {
        let spent: Option<String> = self
            .cmd(redis::cmd("GET").arg(spent_code_key(code_hash)))
            .await?;
        let Some(spent) = spent.and_then(|s| serde_json::from_str::<SpentCode>(&s).ok()) else {
            return Ok(());
        };
        tracing::warn!(sub = ?spent.sub, jti = ?spent.jti, "authorization code replayed; revoking the token it was exchanged for");
        self.revocation
            .revoke_token(
                TokenRef::new()
                    .jti(spent.jti.as_str())
                    .sub(spent.sub.as_str())
                    .exp(Some(spent.exp)),
            )
            .await?;
        Ok(())
    }

    /// 404 without `ADMIN_TOKEN` (the routes are not even mounted), 401 unless the request
    /// carries it as a bearer token.
    fn require_admin(&self, headers: &HeaderMap) -> Result<(), AppError> {
        let Some(expected) = &self.config.admin_token else {
            return Err(AppError::OAuth(
                StatusCode::NOT_FOUND,
                "not_found",
                "no admin routes",
            ));
        };
        match bearer(headers) {
            Some(given) if secrets_equal(given, expected) => Ok(()),
            _ => Err(AppError::OAuth(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "admin routes need Authorization: Bearer $ADMIN_TOKEN",
            )),
        }
    }
}

/// The login page for `req`, with an optional error message.
fn login_page(req: &AuthRequest, error: Option<&str>, status: StatusCode) -> Response {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    common::html(
        status,
        fill(
            LOGIN_PAGE,
            &[
                ("error", &error),
                ("client_id", &esc(&req.client_id)),
                ("redirect_uri", &esc(&req.redirect_uri)),
                ("state", &esc(&req.state)),
                ("code_challenge", &esc(&req.code_challenge)),
            ],
        ),
    )
}

/// The request's `state` and PKCE challenge, checked. `Err`: the `error` to send back.
fn check_request(
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<&str>,
) -> Result<(String, String), (&'static str, String)> {
    let state = state.unwrap_or_default();
    if state.len() > MAX_STATE_LEN {
        // Not echoed back: too long to put in a URL safely.
        return Err(("invalid_request", String::new()));
    }
    // PKCE is required of every client (OAuth 2.1): it binds the code to the browser that
    // started the login, so a stolen or injected code is worthless.
    match (code_challenge, code_challenge_method) {
        (Some(challenge), Some("S256")) if is_b64url(&challenge, 43, 43) => Ok((state, challenge)),
        _ => Err(("invalid_request", state)),
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `GET /authorize`: client and redirect URI first (refused without redirect), then the
/// request itself (refused by redirecting with `error`), then a code or the login page.
async fn authorize(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Response, AppError> {
    let (client_id, redirect_uri) =
        app.registered_client(q.client_id.as_deref(), q.redirect_uri.as_deref())?;
    let (state, code_challenge) = match check_request(
        q.state,
        q.code_challenge,
        q.code_challenge_method.as_deref(),
    ) {
        Ok(checked) => checked,
        Err((error, state)) => return Ok(error_redirect(&redirect_uri, error, &state)),
    };
    if q.response_type.as_deref() != Some("code") {
        return Ok(error_redirect(
            &redirect_uri,
            "unsupported_response_type",
            &state,
        ));
    }
    let req = AuthRequest {
        client_id,
        redirect_uri,
        state,
        code_challenge,
    };
    if let Some(session) = app.session_from_cookie(&headers).await?
        && let Some(location) = app.issue_code(&session, &req).await?
    {
        // Signed in already: straight back to the service, no password.
        return Ok(redirect(StatusCode::FOUND, &location));
    }
    Ok(login_page(&req, None, StatusCode::OK))
}

/// Sends an error back to a registered redirect URI (RFC 6749 §4.1.2.1).
fn error_redirect(redirect_uri: &str, error: &str, state: &str) -> Response {
    let mut params = vec![("error", error)];
    if !state.is_empty() {
        params.push(("state", state));
    }
    redirect(StatusCode::FOUND, &with_query(redirect_uri, &params))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `POST /login`: the login page's form.
async fn login(State(app): State<Shared>, Form(f): Form<LoginForm>) -> Result<Response, AppError> {
    let (client_id, redirect_uri) =
        app.registered_client(f.client_id.as_deref(), f.redirect_uri.as_deref())?;
    let Ok((state, code_challenge)) = check_request(
        f.state,
        f.code_challenge,
        f.code_challenge_method.as_deref(),
    ) else {
        return Err(AppError::Page(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "The sign-in request is incomplete; go back to the service and start again.".into(),
        ));
    };
    let req = AuthRequest {
        client_id,
        redirect_uri,
        state,
        code_challenge,
    };
    let Some(user) = app.check_password(&f.username, &f.password).await? else {
        tracing::info!(username = ?f.username, "login refused");
        return Ok(login_page(
            &req,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let (session, cookie) = app.create_session(user).await?;
    let location = app
        .issue_code(&session, &req)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a new session vanished")))?;
    let mut res = redirect(StatusCode::SEE_OTHER, &location);
    res.headers_mut().append(
        header::SET_COOKIE,
        app.config
            .sso_cookie
            .set_cookie(&cookie, Duration::from_secs(app.config.session_ttl)),
    );
    Ok(res)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

/// `POST /token`: the authorization-code grant (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6).
async fn token(State(app): State<Shared>, Form(f): Form<TokenForm>) -> Result<Response, AppError> {
    if f.grant_type.as_deref() != Some("authorization_code") {
        return Err(AppError::OAuth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        ));
    }
    let Some(client_id) = f.client_id.filter(|c| app.config.clients.contains_key(c)) else {
        return Err(AppError::OAuth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client",
        ));
    };
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (f.code, f.redirect_uri, f.code_verifier)
    else {
        return Err(AppError::OAuth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        ));
    };
    let code_hash = sha256_hex(&code);
    // GETDEL: whoever comes first gets the code, nobody else ever does.
    let stored: Option<String> = app
        .cmd(redis::cmd("GETDEL").arg(code_key(&code_hash)))
        .await?;
    let Some(stored) = stored else {
        app.code_replayed(&code_hash).await?;
        return Err(invalid_grant("unknown, expired or already used code"));
    };
    let record: CodeRecord =
        serde_json::from_str(&stored).map_err(|e| AppError::Internal(e.into()))?;
    // RFC 7636 verifiers are 43 to 128 characters of [A-Za-z0-9-._~].
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        && secrets_equal(&sha256_b64(&verifier), &record.code_challenge);
    if record.client_id != client_id || record.redirect_uri != redirect_uri || !verifier_ok {
        tracing::info!(
            ?client_id,
            "code exchange refused: client, redirect_uri or code_verifier mismatch"
        );
        return Err(invalid_grant(
            "the code was issued to another client, redirect_uri or code_challenge",
        ));
    }
    let session_expires: Option<u64> = app
        .cmd(
            redis::cmd("HGET")
                .arg(session_key(&record.sid))
                .arg("expires"),
        )
        .await?;
    let Some(session_expires) = session_expires else {
        return Err(invalid_grant("the SSO session has ended"));
    };
    app.wait_past_permission_change(&record.sub).await?;
    let scope = app.scope_of(&record.sub).await?;
    // Never outlive the SSO session.
    let ttl = app
        .config
        .access_ttl
        .min(session_expires.saturating_sub(now_secs()));
    if ttl == 0 {
        return Err(invalid_grant("the SSO session has ended"));
    }
    let signing_key = app.keys.read().expect("keyring lock").current.clone();
    let issued = TokenIssuer::new(signing_key)
        .issuer(&app.config.public_url)
        .audience(&client_id)
        .ttl(Duration::from_secs(ttl))
        .typ("at+jwt")
        .issue_in_session(
            &record.sub,
            &scope,
            Some(&record.sid),
            &serde_json::Map::new(),
        )
        .map_err(|e| AppError::Internal(e.into()))?;
    let spent = SpentCode {
        jti: issued.jti.clone(),
        sub: record.sub.clone(),
        exp: issued.expires_at,
    };
    app.cmd::<()>(
        redis::cmd("SET")
            .arg(spent_code_key(&code_hash))
            .arg(serde_json::to_string(&spent).map_err(|e| AppError::Internal(e.into()))?)
            .arg("EX")
            .arg(ttl),
    )
    .await?;
    tracing::info!(sub = ?record.sub, sid = ?record.sid, ?client_id, jti = ?issued.jti, "access token issued");
    let mut res = Json(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    }))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /.well-known/jwks.json`.
async fn jwks(State(app): State<Shared>) -> Response {
    let set = app
        .keys
        .read()
        .expect("keyring lock")
        .published_set(app.config.access_ttl, app.config.clock_skew);
    let mut res = Json(set).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res
}

/// `POST /logout`: from a service (bearer: the user's access token) or from the browser (the
/// SSO cookie). Either way the SSO session ends and its tokens are revoked everywhere.
async fn logout(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, AppError> {
    if let Some(token) = bearer(&headers) {
        let Ok(claims) = app
            .verifier
            .verify::<tower_token_auth::NoCustomClaims>(token)
        else {
            return Err(AppError::OAuth(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "not an access token of this server",
            ));
        };
        let (Some(sub), Some(sid)) = (&claims.sub, &claims.sid) else {
            return Err(AppError::OAuth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the token names no session",
            ));
        };
        app.end_session(sub, sid).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(session) = app.session_from_cookie(&headers).await? {
        app.end_session(&session.sub, &session.sid).await?;
    }
    let mut res = page(
        StatusCode::OK,
        "Signed out",
        "<p>You are signed out of every service.</p>",
    );
    res.headers_mut()
        .append(header::SET_COOKIE, app.config.sso_cookie.removal_cookie());
    Ok(res)
}

/// `GET /`: who is signed in here.
async fn home(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some(session) = app.session_from_cookie(&headers).await? else {
        return Ok(page(
            StatusCode::OK,
            "Not signed in",
            "<p>Open one of the services to sign in.</p>",
        ));
    };
    let clients = if session.clients.is_empty() {
        "none yet".to_owned()
    } else {
        esc(&session.clients.join(", "))
    };
    let remaining = session.expires.saturating_sub(now_secs()) / 60;
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> for {remaining} more minutes.</p>
<p>Services used with this sign-in: {clients}.</p>
<form method="post" action="/logout"><button type="submit">Sign out everywhere</button></form>"#,
        esc(&session.sub)
    );
    Ok(page(StatusCode::OK, "Single sign-on", &body))
}

#[derive(Deserialize)]
struct PermissionChange {
    user: String,
    scope: String,
}

/// `POST /admin/permissions`: sets a user's scope. Tokens carry their scope, so the user's
/// current tokens are revoked at once: services refuse them, send the browser back here, and
/// the SSO session gets a new token with the new scope, without a password.
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
    let valid = req.scope.len() <= 1024
        && req.scope.split(' ').filter(|s| !s.is_empty()).all(|s| {
            s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        });
    if !valid {
        return Err(AppError::OAuth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope tokens are visible ASCII but \" and \\, separated by spaces",
        ));
    }
    let scope = req.scope.split_whitespace().collect::<Vec<_>>().join(" ");
    let now = now_secs();
    let keep_until = now + app.config.access_ttl + app.config.clock_skew;
    // Scope first, revocation second: a token minted in between with the old scope was minted
    // at or before `now` and is revoked too.
    app.cmd::<()>(redis::cmd("SET").arg(permissions_key(user)).arg(&scope))
        .await?;
    app.cmd::<()>(
        redis::cmd("SET")
            .arg(permissions_changed_key(user))
            .arg(now)
            .arg("EX")
            .arg(app.config.access_ttl + app.config.clock_skew + 1),
    )
    .await?;
    app.revocation.revoke_user(user, now, keep_until).await?;
    tracing::info!(
        user,
        ?scope,
        "permissions changed; the user's tokens are revoked"
    );
    Ok(Json(json!({ "user": user, "scope": scope, "revoked_issued_before": now })).into_response())
}

/// `POST /admin/rotate-key`: a new Ed25519 key signs from now on; the previous one stays in
/// the JWK Set until every token it signed has expired.
async fn admin_rotate_key(
    State(app): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    app.require_admin(&headers)?;
    let (key, jwk, kid) = generate_ed25519().map_err(AppError::Internal)?;
    let now = now_secs();
    let (previous, key_set) = {
        let mut ring = app.keys.write().expect("keyring lock");
        for k in &mut ring.published {
            k.retired_at.get_or_insert(now);
        }
        ring.published.push(PublishedKey {
            jwk,
            retired_at: None,
        });
        ring.current = key;
        let previous = std::mem::replace(&mut ring.current_kid, kid.clone());
        (previous, ring.key_set().map_err(AppError::Internal)?)
    };
    app.verifier.set_keys(&key_set);
    let published_until = now + app.config.access_ttl + app.config.clock_skew;
    tracing::info!(%kid, %previous, published_until, "signing key rotated");
    Ok(Json(json!({
        "kid": kid,
        "alg": "EdDSA",
        "previous_kid": previous,
        "previous_published_until": published_until,
    }))
    .into_response())
}
