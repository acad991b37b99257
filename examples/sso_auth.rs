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

use anyhow::{Context, anyhow, bail};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, body::Bytes};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tower_token_auth::endpoint::RevocationEndpoint;
use tower_token_auth::refresh::RedisRefreshStore;
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig, TokenRef};
use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
use tower_token_auth::sso::code::{AuthorizationCodeStore, AuthorizationRequest, AuthorizeError};
use tower_token_auth::sso::code::{CodeHash, IssuedRef, MarkIssued, Redemption, RedisCodeStore};
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
    revocation: Arc<RedisRevocationStore>,
    codes: RedisCodeStore,
    refresh: Arc<RedisRefreshStore>,
    ring: SigningKeyRing,
    /// This server's access tokens (`at+jwt`) and ID tokens (`JWT`: the `id_token_hint`).
    verifiers: [Verifier; 2],
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
    let secs = Duration::from_secs;
    let key = match env_or("SIGNING_KEY", "")? {
        path if path.is_empty() => {
            tracing::warn!("SIGNING_KEY is not set: a fresh Ed25519 key signs");
            RingKey::generate_ed25519()?
        }
        path => RingKey::from_pem(&std::fs::read(&path).context(path)?)?,
    };
    let ring = SigningKeyRing::new(key)
        .publish_ahead(secs(env_u64("KEY_PUBLISH_AHEAD_SECS", 120)?))
        .max_token_lifetime(secs(access_ttl))
        .leeway(secs(skew));
    let verifier = |typ| {
        let v = Verifier::builder(ring.key_set()?)
            .issuer(&issuer)
            .require_typ(typ);
        let v = v.require_claims(["exp", "sub"]).leeway(secs(skew));
        clients
            .iter()
            .fold(v, |v, c| v.audience(&c.client_id))
            .build()
    };
    let url = env_or("REDIS_URL", "redis://127.0.0.1:6379/")?;
    // Fail closed (the default): a revocation that cannot be written is an error.
    let revocation = RedisRevocationStore::connect(&url, RedisStoreConfig::default()).await?;
    if !revocation.wait_live(secs(3)).await {
        tracing::warn!("Redis at {url} is not answering yet");
    }
    let users = DEMO_USERS
        .iter()
        .map(|&(user, pw, _)| Ok((user, hash_password(pw)?)));
    let secure = issuer.starts_with("https://");
    let metadata = ProviderMetadata::new(&issuer)?
        .signing_algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .scopes(["openid", "offline_access"]);
    let app = Arc::new(App {
        verifiers: [verifier("at+jwt")?, verifier("JWT")?],
        logout_sender: BackchannelLogoutSender::new(&issuer, ring.clone())?
            .token_ttl(secs(access_ttl.min(120))),
        redis: ConnectionManager::new_lazy_with_config(
            redis::Client::open(url.as_str())?,
            ConnectionManagerConfig::new().set_response_timeout(Some(REDIS_TIMEOUT)),
        )?,
        codes: RedisCodeStore::connect(&url, "sso:code:", REDIS_TIMEOUT)?,
        refresh: Arc::new(RedisRefreshStore::connect(
            &url,
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
        let admin = Router::new().route("/permissions", post(admin_permissions));
        router = router.nest("/admin", admin.route("/rotate-key", post(admin_rotate_key)));
    }
    tracing::info!(%addr, issuer = %app.issuer, kid = %ring.current_kid(), "SSO auth server up");
    if !secure {
        tracing::warn!("PUBLIC_URL is not https: cookies without `Secure`, for localhost only");
    }
    let shutdown = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    let router = router.with_state(app);
    Ok(axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?)
}

/// `id=redirect_uri[;backchannel_logout_uri=URI][;post_logout_redirect_uri=URI],…`
fn parse_clients(spec: &str) -> anyhow::Result<ClientRegistry> {
    let mut registry = ClientRegistry::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(';').map(|part| part.split_once('='));
        let Some(Some((id, uri))) = parts.next() else {
            bail!("CLIENTS entry {entry:?} is not client_id=redirect_uri");
        };
        let mut client = RegisteredClient::new(id)?.redirect_uri(uri)?;
        for part in parts {
            client = match part {
                Some(("backchannel_logout_uri", uri)) => client.backchannel_logout_uri(uri)?,
                Some(("post_logout_redirect_uri", uri)) => client.post_logout_redirect_uri(uri)?,
                _ => bail!("CLIENTS entry {entry:?}: unknown setting"),
            };
        }
        registry.insert(client)?;
    }
    Ok(registry)
}

/// A handler's failure.
enum AppError {
    /// A page (the request names no client and redirect URI it could be sent back to).
    Page(StatusCode, &'static str),
    /// Back to the client's registered redirect URI with an `error`.
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
        let (status, error, text) = match self {
            Self::Page(status, text) => return page(status, "Refused", &format!("<p>{text}</p>")),
            Self::Redirect(location) => return redirect(StatusCode::FOUND, &location),
            Self::OAuth(status, error, description) => (status, error, description),
            Self::Failed(e) => {
                tracing::warn!(error = %e, "request failed");
                let text = "a store is unavailable, retry later";
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    text,
                )
            }
        };
        let mut res = no_store((
            status,
            Json(json!({ "error": error, "error_description": text })),
        ));
        let extra = match status {
            StatusCode::UNAUTHORIZED => Some((header::WWW_AUTHENTICATE, "Bearer")),
            StatusCode::SERVICE_UNAVAILABLE => Some((header::RETRY_AFTER, "1")),
            _ => None,
        };
        if let Some((name, value)) = extra {
            res.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        res
    }
}

fn no_store(res: impl IntoResponse) -> Response {
    let mut res = res.into_response();
    let value = HeaderValue::from_static("no-store");
    res.headers_mut().insert(header::CACHE_CONTROL, value);
    res
}

fn invalid_grant(description: &'static str) -> AppError {
    AppError::OAuth(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// An SSO session: the Redis hash `sso:session:<sid>` (`sub`, `secret` = the cookie secret's
/// hash, `auth_time`, `expires`, `client:<id>` per client signed in to, `family:<id>` per
/// refresh-token family started).
struct Session {
    sid: String,
    fields: HashMap<String, String>,
}

impl Session {
    fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
    fn time(&self, name: &str) -> u64 {
        self.get(name).parse().unwrap_or(0)
    }
    fn named<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.keys().filter_map(move |k| k.strip_prefix(kind))
    }
}

type Params = HashMap<String, String>;

fn owner_key(family: &str) -> String {
    format!("sso:family:{family}")
}

impl App {
    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, AppError> {
        let mut conn = self.redis.clone();
        Ok(bounded("redis", REDIS_TIMEOUT, cmd.query_async(&mut conn)).await?)
    }

    /// Sets a field of session `sid`, and whether the session is still live (a logout may have
    /// just ended it).
    async fn add_to_session(&self, sid: &str, field: &str) -> Result<bool, AppError> {
        let (key, mut conn, mut pipe) = (
            format!("sso:session:{sid}"),
            self.redis.clone(),
            redis::pipe(),
        );
        pipe.atomic()
            .hset(&key, field, 1)
            .ignore()
            .expire(&key, self.session_ttl as i64)
            .ignore();
        let query = pipe.hexists(&key, "sub").query_async::<(bool,)>(&mut conn);
        Ok(bounded("redis", REDIS_TIMEOUT, query).await?.0)
    }

    async fn session(&self, sid: &str) -> Result<Option<Session>, AppError> {
        let fields = self
            .cmd(redis::cmd("HGETALL").arg(format!("sso:session:{sid}")))
            .await?;
        let session = Session {
            sid: sid.to_owned(),
            fields,
        };
        Ok(Some(session).filter(|s| s.time("expires") > now_secs()))
    }

    /// The live session the cookie `<sid>.<secret>` names (Redis keeps the secret's hash).
    async fn cookie_session(&self, headers: &HeaderMap) -> Result<Option<Session>, AppError> {
        let value = cookie_value(headers, SSO_COOKIE).unwrap_or_default();
        let Some((sid, secret)) = value.split_once('.') else {
            return Ok(None);
        };
        if !is_b64url(sid, 22, 22) || !is_b64url(secret, 43, 43) {
            return Ok(None);
        }
        let hash = sha256_hex(secret);
        let session = self.session(sid).await?;
        Ok(session.filter(|s| s.get("secret").as_bytes().ct_eq(hash.as_bytes()).into()))
    }

    /// Starts an SSO session for `sub`: the session and its cookie value.
    async fn start_session(&self, sub: &str) -> Result<(Session, String), AppError> {
        let (sid, secret, now) = (random_id::<16>(), random_id::<32>(), now_secs());
        let key = format!("sso:session:{sid}");
        let values = [("sub", sub.to_owned()), ("secret", sha256_hex(&secret))];
        let times = [("auth_time", now), ("expires", now + self.session_ttl)];
        let mut pipe = redis::pipe();
        pipe.atomic().hset_multiple(&key, &values).ignore();
        pipe.hset_multiple(&key, &times).ignore();
        let fields = pipe
            .expire(&key, self.session_ttl as i64)
            .ignore()
            .hgetall(&key);
        let mut conn = self.redis.clone();
        let query = fields.query_async::<(Params,)>(&mut conn);
        let (fields,) = bounded("redis", REDIS_TIMEOUT, query).await?;
        tracing::info!(sub, sid, "SSO session started");
        Ok((
            Session {
                sid: sid.clone(),
                fields,
            },
            format!("{sid}.{secret}"),
        ))
    }

    /// Ends a session everywhere: its tokens and refresh families are revoked in the store
    /// every service checks, and every client it signed in to is told (back channel).
    async fn end_session(&self, sub: &str, sid: &str) -> Result<(), AppError> {
        let key = format!("sso:session:{sid}");
        let mut pipe = redis::pipe();
        let query = pipe.atomic().hgetall(&key).del(&key).ignore();
        let mut conn = self.redis.clone();
        let query = query.query_async::<(Params,)>(&mut conn);
        let session = Session {
            sid: sid.to_owned(),
            fields: bounded("redis", REDIS_TIMEOUT, query).await?.0,
        };
        let until = now_secs() + self.access_ttl + self.skew;
        self.revocation
            .revoke_session(Some(sub), sid, until)
            .await?;
        for family in session.named("family:") {
            self.lifecycle("").revoke_family(Some(sub), family).await?;
        }
        let clients = session.named("client:").filter_map(|c| self.clients.get(c));
        let clients: Vec<RegisteredClient> = clients.cloned().collect();
        let (sender, sub, sid) = (self.logout_sender.clone(), sub.to_owned(), sid.to_owned());
        tracing::info!(sub, sid, "SSO session ended");
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
                StatusCode::BAD_REQUEST,
                "Unknown client, or not its registered redirect_uri: nothing was sent anywhere.",
            )),
        }
    }

    /// Access tokens for `client`, signed with the ring's current key.
    fn issuer_for(&self, client: &str) -> TokenIssuer {
        let issuer = TokenIssuer::new(self.ring.signing_key()).issuer(&self.issuer);
        issuer
            .audience(client)
            .ttl(Duration::from_secs(self.access_ttl))
            .typ("at+jwt")
    }

    /// Refresh tokens of `client` (`""`: to revoke only): rotated at every use, a reuse
    /// revokes the family; they live as long as an SSO session and end with theirs.
    fn lifecycle(&self, client: &str) -> TokenLifecycle {
        let (verifier, refresh) = (self.verifiers[0].clone(), self.refresh.clone());
        let lifecycle = TokenLifecycle::new(
            self.issuer_for(client),
            verifier,
            refresh,
            self.revocation.clone(),
        );
        lifecycle.refresh_ttl(Duration::from_secs(self.session_ttl))
    }

    /// A code came back (RFC 6749 §4.1.2: it may have been stolen): revoke what it produced.
    async fn revoke_issued(&self, sub: &str, issued: &IssuedRef) -> Result<AppError, AppError> {
        tracing::warn!(
            sub,
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
            self.lifecycle("").revoke_family(Some(sub), family).await?;
        }
        Ok(invalid_grant("the code was used already"))
    }

    /// The authorization-code grant (RFC 6749 §4.1.3, PKCE, OpenID Connect Core §3.1.3).
    async fn code_grant(&self, client: &str, f: &Params) -> Result<Value, AppError> {
        let p = |name: &str| f.get(name).map_or("", String::as_str);
        if ["code", "redirect_uri", "code_verifier"]
            .iter()
            .any(|n| p(n).is_empty())
        {
            let text = "code, redirect_uri and code_verifier are required";
            return Err(AppError::OAuth(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                text,
            ));
        }
        let redeemed = self
            .codes
            .redeem(p("code"), client, p("redirect_uri"), p("code_verifier"));
        let grant = match redeemed.await? {
            Redemption::Redeemed(grant) => grant,
            Redemption::Replayed {
                sub,
                issued: Some(issued),
                ..
            } => {
                return Err(self.revoke_issued(&sub, &issued).await?);
            }
            _ => return Err(invalid_grant("unknown, expired, used or mismatched code")),
        };
        let (sub, sid) = (grant.sub.as_str(), grant.session.as_str());
        let Some(session) = self.session(sid).await? else {
            return Err(invalid_grant("the SSO session has ended"));
        };
        let scope = self.scope_of(sub).await?;
        let mut body = json!({ "token_type": "Bearer", "scope": scope });
        let mut issued = IssuedRef::new().sid(sid);
        let access = if grant.has_scope("offline_access") {
            let pair = self.lifecycle(client).issue_pair(sub, &scope).await?;
            let family = pair
                .refresh_token
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            let mut owner = redis::cmd("SET");
            owner.arg(owner_key(&family)).arg(format!("{sid} {client}"));
            self.cmd::<()>(owner.arg("EX").arg(self.session_ttl))
                .await?;
            if !self
                .add_to_session(sid, &format!("family:{family}"))
                .await?
            {
                self.lifecycle(client)
                    .revoke_family(Some(sub), &family)
                    .await?;
                return Err(invalid_grant("the SSO session has ended"));
            }
            (issued, body["refresh_token"]) = (issued.family(family), pair.refresh_token.into());
            pair.access
        } else {
            // Never outliving the SSO session.
            let ttl = self
                .access_ttl
                .min(session.time("expires").saturating_sub(now_secs()));
            let issuer = self.issuer_for(client).ttl(Duration::from_secs(ttl.max(1)));
            let access = issuer.issue_in_session(sub, &scope, Some(sid), &NoCustomClaims {})?;
            issued = issued.jti(&access.jti).expires_at(access.expires_at);
            access
        };
        if grant.has_scope("openid") {
            let ttl = Duration::from_secs(self.access_ttl);
            let id_token =
                grant.id_token(self.ring.signing_key(), &self.issuer, &access.token, ttl);
            body["id_token"] = id_token?.into();
        }
        if self
            .codes
            .mark_issued(CodeHash::of(p("code")), &issued)
            .await?
            == MarkIssued::Replayed
        {
            return Err(self.revoke_issued(sub, &issued).await?);
        }
        tracing::info!(sub, sid, client, "tokens issued");
        (body["access_token"], body["expires_in"]) =
            (access.token.into(), access.expires_in.into());
        Ok(body)
    }

    /// The refresh grant (the crate's rotation), for the client the family was issued to.
    async fn refresh_grant(&self, client: &str, token: &str) -> Result<Value, AppError> {
        let family = token.split('.').next().unwrap_or_default();
        let owner: Option<String> = self.cmd(redis::cmd("GET").arg(owner_key(family))).await?;
        if owner
            .as_deref()
            .and_then(|o| o.split_once(' '))
            .map(|(_, c)| c)
            != Some(client)
        {
            return Err(invalid_grant("unknown refresh token, or another client's"));
        }
        let pair = match self.lifecycle(client).refresh(token, None).await {
            Ok(pair) => pair,
            Err(GrantError::Unavailable(e)) => return Err(e.into()),
            Err(_) => return Err(invalid_grant("invalid, spent or revoked refresh token")),
        };
        let (access, expires_in) = (pair.access.token, pair.access.expires_in);
        Ok(
            json!({ "access_token": access, "token_type": "Bearer", "expires_in": expires_in,
            "refresh_token": pair.refresh_token, "scope": pair.scope }),
        )
    }

    /// The user's scope: set by an admin, else the demo default.
    async fn scope_of(&self, user: &str) -> Result<String, AppError> {
        let set: Option<String> = self
            .cmd(redis::cmd("GET").arg(format!("sso:perms:{user}")))
            .await?;
        let default = DEMO_USERS.iter().find(|u| u.0 == user).map_or("", |u| u.2);
        Ok(set.unwrap_or_else(|| default.to_owned()))
    }

    /// After a logout: to the client's registered `post_logout_redirect_uri` (with `state`),
    /// or the signed-out page; the SSO cookie is cleared.
    fn signed_out(&self, p: &Params) -> Response {
        let client = p.get("client_id").and_then(|c| self.clients.get(c));
        let target = p.get("post_logout_redirect_uri");
        let mut res = match target
            .filter(|uri| client.is_some_and(|c| c.allows_post_logout_redirect_uri(uri)))
        {
            Some(uri) => match p.get("state").filter(|s| !s.is_empty()) {
                Some(state) => {
                    redirect(StatusCode::SEE_OTHER, &with_query(uri, &[("state", state)]))
                }
                None => redirect(StatusCode::SEE_OTHER, uri),
            },
            None => page(
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
        let given = sha256_hex(bearer(headers).unwrap_or_default());
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) && bearer(headers).is_some() {
            return Ok(());
        }
        Err(AppError::OAuth(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Bearer $ADMIN_TOKEN",
        ))
    }
}

fn login_page(req: &AuthorizationRequest, error: &str, status: StatusCode) -> Response {
    let v = |value: &Option<String>| esc(value.as_deref().unwrap_or_default());
    let (client_id, redirect_uri, state) = (v(&req.client_id), v(&req.redirect_uri), v(&req.state));
    let (code_challenge, nonce, scope) = (v(&req.code_challenge), v(&req.nonce), v(&req.scope));
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

/// `GET /authorize`: a code at once when the SSO cookie names a live session, else the login
/// page.
async fn authorize(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(req): Query<AuthorizationRequest>,
) -> Result<Response, AppError> {
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
    s: &Session,
    req: &AuthorizationRequest,
) -> Result<Option<String>, AppError> {
    let client_id = req.client_id.as_deref().unwrap_or_default();
    if !app
        .add_to_session(&s.sid, &format!("client:{client_id}"))
        .await?
    {
        return Ok(None);
    }
    let grant = req
        .grant(s.get("sub"), &s.sid)?
        .auth_time(s.time("auth_time"));
    let code = app.codes.issue(&grant).await?;
    tracing::info!(
        sub = s.get("sub"),
        sid = s.sid,
        client_id,
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
async fn login(
    State(app): State<Shared>,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    app.check(&form.req)?;
    let (user, hash) = match app.users.get_key_value(form.username.as_str()) {
        Some((&user, hash)) => (Some(user), hash.clone()),
        None => (None, app.users[DEMO_USERS[0].0].clone()),
    };
    let ok = tokio::task::spawn_blocking(move || verify_password(&form.password, &hash)).await?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(username = ?form.username, "login refused");
        return Ok(login_page(
            &form.req,
            "Wrong user name or password.",
            StatusCode::UNAUTHORIZED,
        ));
    };
    let (session, cookie) = app.start_session(user).await?;
    let location = issue_code(&app, &session, &form.req)
        .await?
        .ok_or_else(|| anyhow!("session gone"))?;
    let mut res = redirect(StatusCode::SEE_OTHER, &location);
    let cookie = app
        .cookie
        .set_cookie(&cookie, Duration::from_secs(app.session_ttl));
    res.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(res)
}

/// `POST /token`: public clients, named by `client_id`, proven by PKCE.
async fn token(State(app): State<Shared>, Form(f): Form<Params>) -> Result<Response, AppError> {
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
                "code or refresh",
            ));
        }
    };
    Ok(no_store(Json(body)))
}

/// `POST /logout`: a service (bearer: the user's access token; 204) or the browser (the SSO
/// cookie; the sign-out form). The SSO session ends everywhere.
async fn logout(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    if let Some(token) = bearer(&headers) {
        let claims = app.verifiers[0].verify::<NoCustomClaims>(token);
        let Some((sub, sid)) = claims.ok().and_then(|c| c.sub.clone().zip(c.sid.clone())) else {
            return Err(AppError::OAuth(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "not a token of this server with a session",
            ));
        };
        // A refreshed token's `sid` is its refresh family's: the SSO session owns it.
        let owner: Option<String> = app.cmd(redis::cmd("GET").arg(owner_key(&sid))).await?;
        let sid = owner
            .as_deref()
            .and_then(|o| o.split_once(' '))
            .map_or(sid.as_str(), |(s, _)| s);
        app.end_session(&sub, sid).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if let Some(session) = app.cookie_session(&headers).await? {
        app.end_session(session.get("sub"), &session.sid).await?;
    }
    Ok(app.signed_out(&form_urlencoded::parse(&body).into_owned().collect()))
}

/// `GET /logout`, the `end_session_endpoint` (OpenID Connect RP-Initiated Logout 1.0): an
/// `id_token_hint` of the client ends its session at once; otherwise the user confirms (a GET
/// must not sign anyone out on a third party's say-so).
async fn end_session(
    State(app): State<Shared>,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let hint = p
        .get("id_token_hint")
        .and_then(|t| app.verifiers[1].verify::<NoCustomClaims>(t).ok());
    let for_client =
        |aud: &tower_token_auth::Audience| p.get("client_id").is_some_and(|c| aud.contains(c));
    if let Some((sub, sid)) = hint
        .filter(|c| c.aud.as_ref().is_some_and(for_client))
        .and_then(|c| c.sub.clone().zip(c.sid.clone()))
    {
        app.end_session(&sub, &sid).await?;
        return Ok(app.signed_out(&p));
    }
    let v = |name: &str| esc(p.get(name).map_or("", String::as_str));
    let (client_id, uri, state) = (v("client_id"), v("post_logout_redirect_uri"), v("state"));
    let vars = [
        ("client_id", client_id.as_str()),
        ("post_logout_redirect_uri", &uri),
        ("state", &state),
    ];
    Ok(page(
        StatusCode::OK,
        "Sign out?",
        &fill(include_str!("sso/sign_out.html"), &vars),
    ))
}

/// `GET /`: who is signed in here.
async fn home(State(app): State<Shared>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some(s) = app.cookie_session(&headers).await? else {
        return Ok(page(
            StatusCode::OK,
            "Not signed in",
            "<p>Open one of the services to sign in.</p>",
        ));
    };
    let mut clients: Vec<&str> = s.named("client:").collect();
    clients.sort_unstable();
    let clients = if clients.is_empty() {
        "none yet".into()
    } else {
        esc(&clients.join(", "))
    };
    let minutes = (s.time("expires").saturating_sub(now_secs()) / 60).to_string();
    let vars = [
        ("user", esc(s.get("sub"))),
        ("minutes", minutes),
        ("clients", clients),
    ];
    let vars = vars
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect::<Vec<_>>();
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
    let scope_char = |b: u8| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if req.scope.len() > 1024 || !req.scope.bytes().all(scope_char) {
        return Err(AppError::OAuth(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "not RFC 6749 scope",
        ));
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
    app.lifecycle("").logout_everywhere(user).await?;
    tracing::info!(
        user,
        scope,
        "permissions changed; the user's tokens are revoked"
    );
    Ok(Json(json!({ "user": user, "scope": scope, "revoked_issued_before": now })).into_response())
}

/// `POST /admin/rotate-key`: a new Ed25519 key, published at once and signing once every
/// service has fetched it (`KEY_PUBLISH_AHEAD_SECS`): a rotation refuses nothing.
async fn admin_rotate_key(
    State(app): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    app.require_admin(&headers)?;
    let (key, previous_kid) = (RingKey::generate_ed25519()?, app.ring.current_kid());
    let kid = key.kid().to_owned();
    let signs_from = app.ring.rotate(key)?;
    let keys = app.ring.key_set()?;
    app.verifiers.iter().for_each(|v| v.set_keys(&keys));
    let previous_published_until = signs_from + app.access_ttl + app.skew;
    tracing::info!(kid, previous_kid, signs_from, "signing key rotated");
    Ok(Json(
        json!({ "kid": kid, "alg": "EdDSA", "signs_from": signs_from,
        "previous_kid": previous_kid, "previous_published_until": previous_published_until }),
    )
    .into_response())
}
