//! Single sign-on, a service: an OpenID Connect relying party of the `sso_auth` server, built
//! from the crate's relying-party parts (`tower_token_auth::sso`). One binary, run once per
//! service:
//!
//! ```sh
//! SERVICE=orders  cargo run --features http-client --example sso_service  # http://127.0.0.1:4001
//! SERVICE=members cargo run --features http-client --example sso_service  # http://127.0.0.1:4002
//! ```
//!
//! (with `cargo run --example sso_auth` and a Redis running; see that example and
//! `docs/sso.md`).
//!
//! - A page request without a valid session (`GET`/`HEAD`, no `Authorization` header) is
//!   refreshed silently with the refresh cookie, or sent to the provider to sign in
//!   (`OidcLoginLayer`: PKCE, `state`, `nonce`, a signed login-state cookie). Other requests
//!   get the layer's 401.
//! - `GET /callback` (`OidcCallback`) exchanges the code, validates the ID token and starts
//!   this service's own session: its access and refresh tokens in HttpOnly cookies
//!   (`<SERVICE>_session`, `<SERVICE>_refresh`), signed with this service's key. The session's
//!   scope is what the provider granted the user (`session_scope_from_grant`): users without
//!   the scope `<SERVICE>` get 403.
//! - The session's tokens are checked against the revocation store in Redis shared with the
//!   provider and the other services: a permission change at the provider (it revokes the
//!   user) refuses the user here at once; the next page load signs in again with the new
//!   scope.
//! - `POST /logout` (`OidcLogout`) ends the local session and sends the browser to the
//!   provider's `end_session_endpoint`; ending the SSO session there logs every other service
//!   out through `POST /backchannel-logout` (`BackChannelLogout`, register it at the provider
//!   as the client's `backchannel_logout_uri`).
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /` | session with scope `<SERVICE>` | a page with the user and a sign-out button |
//! | `GET /me` | session with scope `<SERVICE>` | the session token's claims (JSON) |
//! | `POST /logout` | same-origin | ends the local session, 303 to the provider |
//! | `GET /callback` | login-state cookie | starts the session, 303 to the page asked for |
//! | `POST /backchannel-logout` | the provider's logout token | ends the sessions it names |
//! | `GET /health` | none | `ok` |
//!
//! Environment: `SERVICE` (required; the `client_id`, the scope this service requires and
//! the cookie prefix), `BIND` (default `127.0.0.1:4001` for `orders`, `127.0.0.1:4002` for
//! `members`), `PUBLIC_URL` (default `http://<BIND>`; the redirect URI is
//! `<PUBLIC_URL>/callback`, registered at the provider; `https` makes every cookie `Secure`),
//! `AUTH_URL` (the provider's issuer, default `http://127.0.0.1:4000`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379/`), `STATE_SECRET` (32+ bytes, the same on every instance of the
//! service: signs the login-state cookie and, derived, the session tokens; unset, a random one
//! per process: sign-ins in flight and sessions end at a restart), `JWKS_REFRESH_SECS` (60)
//! and `JWKS_MIN_REFETCH_MS` (10000) for the provider's keys, `SESSION_TTL_SECS` (300, the
//! access token), `CLOCK_SKEW_SECS` (30), `RUST_LOG`.

#[path = "sso/common.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use tower_token_auth::dpop::RedisReplayStore;
use tower_token_auth::endpoint::TokenCookies;
use tower_token_auth::keys::Discovery;
use tower_token_auth::refresh::RedisRefreshStore;
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
use tower_token_auth::sso::{
    BackChannelLogout, OidcCallback, OidcClient, OidcLoginLayer, OidcLogout,
};
use tower_token_auth::{AccessCookie, Algorithm, Claims, JwtAuthLayer, KeySet, RequireScopeLayer};
use tower_token_auth::{SigningKey, TokenIssuer, TokenLifecycle, Verifier, VerifyingKey};

use common::{env_or, env_u64, esc, page, random_id};

/// How long to wait at start-up for the provider's metadata and keys.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// Bound on each Redis operation of the refresh and replay stores.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a local session lives without a visit (its refresh token).
const REFRESH_TTL: Duration = Duration::from_secs(8 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();
    let name = env_or("SERVICE", "")?;
    let valid = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    if name.is_empty() || !name.bytes().all(valid) {
        bail!("SERVICE must be set to a lowercase name, e.g. SERVICE=orders");
    }
    let default_bind = match name.as_str() {
        "orders" => "127.0.0.1:4001",
        "members" => "127.0.0.1:4002",
        _ => "",
    };
    let bind = env_or("BIND", default_bind)?;
    if bind.is_empty() {
        bail!("set BIND for SERVICE={name}");
    }
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    let public_url = env_or("PUBLIC_URL", &format!("http://{addr}"))?;
    let public_url = public_url.trim_end_matches('/').to_owned();
    let auth_url = env_or("AUTH_URL", "http://127.0.0.1:4000")?;
    let redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/")?;
    let skew = Duration::from_secs(env_u64("CLOCK_SKEW_SECS", 30)?);
    let secure = public_url.starts_with("https://");
    let state_secret = match env_or("STATE_SECRET", "")? {
        s if s.is_empty() => {
            tracing::warn!("STATE_SECRET is not set: a random one; sessions end at a restart");
            random_id::<32>().into_bytes()
        }
        s if s.len() < 32 => bail!("STATE_SECRET must be at least 32 bytes"),
        s => s.into_bytes(),
    };

    // The provider: its metadata and keys (ID tokens and logout tokens), fetched at start-up.
    let op_tokens = provider_verifier(
        &auth_url,
        &name,
        Duration::from_secs(env_u64("JWKS_REFRESH_SECS", 60)?.max(1)),
        Duration::from_millis(env_u64("JWKS_MIN_REFETCH_MS", 10_000)?),
        skew,
    )
    .await?;
    let (op, op_tokens) = op_tokens;
    let mut client = OidcClient::new(
        &op,
        &name,
        format!("{public_url}/callback"),
        op_tokens.clone(),
        &state_secret,
    )?
    // The provider grants each user the services they may use; RequireScopeLayer checks it.
    .session_scope_from_grant()
    .state_cookie_name(format!("{name}_login"))?;
    if !secure {
        client = client.insecure_http();
    }

    // This service's own session: its tokens, signed with a key derived from STATE_SECRET.
    let key = Sha256::new()
        .chain_update(b"sso_service session key\0")
        .chain_update(&state_secret)
        .finalize();
    let ttl = Duration::from_secs(env_u64("SESSION_TTL_SECS", 300)?.max(1));
    let verifier =
        Verifier::builder(KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &key)?)?)
            .issuer(&public_url)
            .audience(&name)
            .require_claims(["exp", "sub", "iat", "jti"])
            .leeway(skew)
            .build()?;
    let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &key)?)
        .issuer(&public_url)
        .audience(&name)
        .ttl(ttl)
        .typ("at+jwt");
    // Cookies are per host, not per port: every service on one host needs its own names.
    let cookies = TokenCookies::with_cookies(
        AccessCookie::new(format!("{name}_session")).secure(secure),
        AccessCookie::new(format!("{name}_refresh")).secure(secure),
    );

    // Fail closed (the default): if Redis cannot answer, requests are refused with 503.
    let store = RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
    if !store.wait_live(Duration::from_secs(3)).await {
        tracing::warn!("Redis is not answering yet: requests are refused until it does");
    }
    let auth = JwtAuthLayer::new(verifier)
        .with_cookie(cookies.access().clone())?
        .with_shared_revocation_store(std::sync::Arc::new(store));
    let refresh = RedisRefreshStore::connect(&redis_url, &format!("{name}:rt:"), REDIS_TIMEOUT)?;
    let lifecycle = TokenLifecycle::for_layer(&auth, issuer, refresh).refresh_ttl(REFRESH_TTL);
    let replay = RedisReplayStore::connect(&redis_url, &format!("{name}:bcl:"), REDIS_TIMEOUT)?;
    let backchannel = BackChannelLogout::with_shared_store(op_tokens, auth.revocation_store())?
        .replay_store(replay)
        .end_local_sessions(lifecycle.clone());

    let (title, auth_home) = (format!("The {name} service"), format!("{}/", op.issuer()));
    let protected = Router::new()
        .route(
            "/",
            get(move |c: Claims| async move { home(&title, &auth_home, &c) }),
        )
        .route("/me", get(|c: Claims| async move { Json(c) }))
        // The service's own permission: users without it get 403 insufficient_scope.
        .route_layer(RequireScopeLayer::new(&name)?)
        .route_layer(auth)
        .route_layer(OidcLoginLayer::new(
            client.clone(),
            lifecycle.clone(),
            cookies.clone(),
        ));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route_service(
            "/callback",
            OidcCallback::new(client.clone(), lifecycle.clone(), cookies.clone()),
        )
        .route_service("/logout", OidcLogout::new(client, lifecycle, cookies))
        .route_service("/backchannel-logout", backchannel)
        .merge(protected);

    tracing::info!(%addr, service = %name, issuer = %op.issuer(), "SSO service listening");
    println!("\ntower-token-auth SSO service `{name}` on {public_url}   (Ctrl-C to stop)\n");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The provider's metadata and a verifier of its tokens for this client (issuer, `client_id`
/// as audience, its JWK Set); waits for the provider at start-up.
async fn provider_verifier(
    auth_url: &str,
    client_id: &str,
    refresh_every: Duration,
    min_refetch: Duration,
    leeway: Duration,
) -> anyhow::Result<(Discovery, Verifier)> {
    let deadline = Instant::now() + STARTUP_WAIT;
    loop {
        let attempt = async {
            let op = Discovery::fetch(auth_url).await?;
            let jwks = op.remote_jwks()?.refresh_every(refresh_every);
            let verifier = Verifier::builder(KeySet::new())
                .issuer(op.issuer())
                .audience(client_id)
                .leeway(leeway)
                .build_with_jwks(jwks.min_refetch_interval(min_refetch))
                .await?;
            anyhow::Ok((op, verifier))
        };
        match attempt.await {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "the provider is not available yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("discovering the provider at AUTH_URL"),
        }
    }
}

/// `GET /`: a page for the signed-in user.
fn home(title: &str, auth_home: &str, claims: &Claims) -> Response {
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> (scope: {}).</p>
<p><a href="/me">Your session's claims</a> · <a href="{}">Your sign-in</a></p>
<form method="post" action="/logout"><button type="submit">Sign out everywhere</button></form>"#,
        esc(claims.sub.as_deref().unwrap_or("")),
        esc(claims.scope.as_deref().unwrap_or("")),
        esc(auth_home),
    );
    page(StatusCode::OK, title, &body)
}
