//! Single sign-on, a service: signs its users in through the `sso_auth` server and checks
//! their access tokens with `JwtAuthLayer`. One binary, run once per service:
//!
//! ```sh
//! SERVICE=orders  cargo run --example sso_service    # http://127.0.0.1:4001
//! SERVICE=members cargo run --example sso_service    # http://127.0.0.1:4002
//! ```
//!
//! (with `cargo run --example sso_auth` and a Redis running; see that example and
//! `docs/sso.md`).
//!
//! - A request without a valid token for a page (`GET`/`HEAD`, no `Authorization` header) is
//!   sent to the auth server's `/authorize` with PKCE and `state` = the page it asked for.
//!   API calls (`Authorization: Bearer …`) and other methods get the layer's 401.
//! - `GET /callback?code&state` exchanges the code with the auth server (server to server),
//!   stores the access token in this service's own cookie (`<SERVICE>_session`: HttpOnly,
//!   SameSite=Lax) and redirects to `state` if it is a path on this service, else to `/`.
//! - Tokens are verified with the auth server's JWK Set (fetched at start, refreshed every
//!   `JWKS_REFRESH_SECS`, fetched again for an unknown `kid` at most every
//!   `JWKS_MIN_REFETCH_MS`) and checked against the revocation store in Redis shared with the
//!   auth server and the other services: a logout or permission change anywhere is refused here
//!   at once.
//! - `POST /logout` revokes the SSO session's tokens in that store and ends the SSO session at
//!   the auth server: every service refuses the user from then on.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /` | token with scope `<SERVICE>` | a page with the user and a sign-out button |
//! | `GET /me` | token with scope `<SERVICE>` | the token's claims (JSON) |
//! | `POST /logout` | token | signed out of every service |
//! | `GET /callback?code&state` | none | sets the session cookie, redirects |
//! | `GET /health` | none | `ok` |
//!
//! Environment: `SERVICE` (required; the OAuth `client_id`, the scope this service requires
//! and the cookie prefix), `BIND` (default `127.0.0.1:4001` for `orders`, `127.0.0.1:4002` for
//! `members`), `PUBLIC_URL` (default `http://<BIND>`; the redirect URI is
//! `<PUBLIC_URL>/callback`, which must be the one registered at the auth server), `AUTH_URL`
//! (default `http://127.0.0.1:4000`; also the expected `iss`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379/`), `JWKS_REFRESH_SECS` (60), `JWKS_MIN_REFETCH_MS` (10000),
//! `CLOCK_SKEW_SECS` (30), `RUST_LOG`.

#[path = "sso/common.rs"]
mod common;
#[path = "shared/mod.rs"]
mod shared;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tower_token_auth::keys::{BoxError, RemoteJwks};
use tower_token_auth::revocation::{
    RedisRevocationStore, RedisStoreConfig, RevocationStore, TokenRef,
};
use tower_token_auth::{
    AccessCookie, Claims, JwtAuthLayer, KeySet, RequireScopeLayer, Verifier, local_return_path,
};

use common::{
    bearer, cookie_value, csrf_layer, env_or, env_u64, esc, now_secs, page, random_id, redirect,
    sha256_b64, with_query,
};

const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:4000";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// How long a started sign-in may take before its PKCE cookie is gone.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Bound on each call to the auth server.
const AUTH_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read from the auth server.
const MAX_AUTH_ANSWER: usize = 256 * 1024;
/// How long to wait at start-up for the auth server's JWK Set.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Svc {
    /// The service's name: its `client_id` and the scope it requires.
    name: String,
    auth_url: String,
    redirect_uri: String,
    /// Holds the access token. Cookies are per host, not per port: on one host every service
    /// needs its own cookie name.
    session_cookie: AccessCookie,
    /// Holds the PKCE verifier of a sign-in in progress, sent to `/callback` only.
    pkce_cookie: AccessCookie,
    http: HttpClient,
    revocation: Arc<dyn RevocationStore>,
    clock_skew: u64,
}

type Shared = Arc<Svc>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();

    let name = env_or("SERVICE", "")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
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
    let public_url = env_or("PUBLIC_URL", &format!("http://{addr}"))?
        .trim_end_matches('/')
        .to_owned();
    let auth_url = env_or("AUTH_URL", DEFAULT_AUTH_URL)?
        .trim_end_matches('/')
        .to_owned();
    if !auth_url.starts_with("http://") {
        // hyper-util's plain connector: put TLS in front (or use a TLS connector) for https.
        bail!("AUTH_URL must be http:// in this example (its HTTP client has no TLS)");
    }
    let clock_skew = env_u64("CLOCK_SKEW_SECS", 30)?;
    let secure = public_url.starts_with("https://");

    let redis_url = env_or("REDIS_URL", DEFAULT_REDIS_URL)?;
    // Fail closed (the default): if Redis cannot answer, requests are refused with 503.
    let store = RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
    if !store.wait_live(Duration::from_secs(3)).await {
        tracing::warn!(
            "Redis at {redis_url} is not answering yet: requests are refused until it does"
        );
    }
    let revocation: Arc<dyn RevocationStore> = Arc::new(store);

    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let verifier = remote_verifier(
        &http,
        &auth_url,
        &name,
        Duration::from_secs(env_u64("JWKS_REFRESH_SECS", 60)?.max(1)),
        Duration::from_millis(env_u64("JWKS_MIN_REFETCH_MS", 10_000)?),
        Duration::from_secs(clock_skew),
    )
    .await?;

    let session_cookie = AccessCookie::new(format!("{name}_session")).secure(secure);
    let auth = JwtAuthLayer::new(verifier)
        .with_cookie(session_cookie.clone())?
        .with_shared_revocation_store(revocation.clone());
    let svc = Arc::new(Svc {
        name: name.clone(),
        auth_url: auth_url.clone(),
        redirect_uri: format!("{public_url}/callback"),
        session_cookie,
        pkce_cookie: AccessCookie::new(format!("{name}_pkce"))
            .secure(secure)
            .path("/callback"),
        http,
        revocation,
        clock_skew,
    });

    let protected = Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        // The service's own permission: users without it get 403 insufficient_scope.
        .route_layer(RequireScopeLayer::new(&name)?)
        .route("/logout", post(logout).route_layer(csrf_layer()))
        .route_layer(auth)
        .route_layer(middleware::from_fn_with_state(svc.clone(), login_redirect));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/callback", get(callback))
        .merge(protected)
        .with_state(svc.clone());

    tracing::info!(%addr, service = %name, %auth_url, redirect_uri = %svc.redirect_uri, "SSO service listening");
    println!("\ntower-token-auth SSO service `{name}` on {public_url}   (Ctrl-C to stop)\n");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// A verifier over the auth server's JWK Set; waits for the auth server at start-up.
async fn remote_verifier(
    http: &HttpClient,
    auth_url: &str,
    audience: &str,
    refresh_every: Duration,
    min_refetch: Duration,
    clock_skew: Duration,
) -> anyhow::Result<Verifier> {
    let fetcher = {
        let http = http.clone();
        let url = format!("{auth_url}/.well-known/jwks.json");
        move || {
            let http = http.clone();
            let url = url.clone();
            async move { fetch_jwks(&http, &url).await }
        }
    };
    let deadline = Instant::now() + STARTUP_WAIT;
    loop {
        let source = RemoteJwks::new(fetcher.clone())
            .refresh_every(refresh_every)
            .min_refetch_interval(min_refetch);
        let built = Verifier::builder(KeySet::new())
            .issuer(auth_url)
            .audience(audience)
            .require_claims(["exp", "sub", "iat", "jti"])
            .require_typ("at+jwt")
            .leeway(clock_skew)
            // Repeat requests skip the signature check (exp and revocation are still checked).
            .verified_token_cache(16 << 20)
            .build_with_jwks(source)
            .await;
        match built {
            Ok(verifier) => return Ok(verifier),
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "auth server's JWK Set not available yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("fetching the auth server's JWK Set"),
        }
    }
}

/// One call to the auth server: status and body, bounded in time and size.
async fn call(
    http: &HttpClient,
    req: http::Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    let exchange = async {
        let res = http.request(req).await?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_AUTH_ANSWER)
            .collect()
            .await?
            .to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    tokio::time::timeout(AUTH_CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| BoxError::from("the auth server did not answer in time"))?
}

async fn fetch_jwks(http: &HttpClient, url: &str) -> Result<String, BoxError> {
    let req = http::Request::get(url).body(Full::default())?;
    let (status, body) = call(http, req).await?;
    if status != StatusCode::OK {
        return Err(format!("JWK Set fetch answered {status}").into());
    }
    Ok(String::from_utf8(body.to_vec())?)
}

/// Sends a browser that asked for a page without a valid token to the auth server.
async fn login_redirect(State(svc): State<Shared>, req: Request, next: Next) -> Response {
    let page_request = matches!(*req.method(), Method::GET | Method::HEAD)
        && !req.headers().contains_key(header::AUTHORIZATION);
    let return_to = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let res = next.run(req).await;
    if page_request && res.status() == StatusCode::UNAUTHORIZED {
        return svc.start_login(&return_to);
    }
    res
}

impl Svc {
    /// 302 to `/authorize` with a fresh PKCE pair: the verifier stays in a cookie of this
    /// service, only its hash travels. A code that did not come from this browser's sign-in
    /// (stolen, or injected to sign the victim in as the attacker) cannot be exchanged.
    fn start_login(&self, return_to: &str) -> Response {
        let verifier = random_id::<32>();
        let location = with_query(
            &format!("{}/authorize", self.auth_url),
            &[
                ("response_type", "code"),
                ("client_id", &self.name),
                ("redirect_uri", &self.redirect_uri),
                ("state", return_to),
                ("code_challenge", &sha256_b64(&verifier)),
                ("code_challenge_method", "S256"),
            ],
        );
        let mut res = redirect(StatusCode::FOUND, &location);
        let headers = res.headers_mut();
        headers.append(
            header::SET_COOKIE,
            self.pkce_cookie.set_cookie(&verifier, LOGIN_TTL),
        );
        // Whatever token the browser had is no good (expired, revoked): drop it.
        headers.append(header::SET_COOKIE, self.session_cookie.removal_cookie());
        res
    }

    /// The authorization-code exchange (RFC 6749 §4.1.3), server to server.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenAnswer, ExchangeError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("client_id", &self.name)
            .append_pair("code_verifier", verifier)
            .finish();
        let req = http::Request::post(format!("{}/token", self.auth_url))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::from(body))
            .map_err(|e| ExchangeError::Unavailable(e.into()))?;
        let (status, body) = call(&self.http, req)
            .await
            .map_err(ExchangeError::Unavailable)?;
        match status {
            StatusCode::OK => {
                serde_json::from_slice(&body).map_err(|e| ExchangeError::Unavailable(e.into()))
            }
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                let error = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "invalid_grant".into());
                Err(ExchangeError::Refused(error))
            }
            other => Err(ExchangeError::Unavailable(
                format!("the auth server answered {other}").into(),
            )),
        }
    }

    /// Ends the SSO session at the auth server (back channel), with the user's token.
    async fn end_sso_session(&self, token: &str) -> Result<(), BoxError> {
        let req = http::Request::post(format!("{}/logout", self.auth_url))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())?;
        let (status, _) = call(&self.http, req).await?;
        if status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(format!("the auth server answered {status}").into())
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

enum ExchangeError {
    /// The auth server refused the code (`error`).
    Refused(String),
    /// It could not be asked.
    Unavailable(BoxError),
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /callback`: the auth server sends the browser here with a code.
async fn callback(
    State(svc): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let retry = r#"<p><a href="/">Try again</a></p>"#;
    if let Some(error) = q.error {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!(
                "<p>The auth server answered <code>{}</code>.</p>{retry}",
                esc(&error)
            ),
        );
    }
    let Some(code) = q.code else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!("<p>No code.</p>{retry}"),
        );
    };
    let Some(verifier) = cookie_value(&headers, svc.pkce_cookie.name()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!("<p>This sign-in was not started here, or took too long.</p>{retry}"),
        );
    };
    let answer = match svc.exchange(&code, &verifier).await {
        Ok(answer) => answer,
        Err(ExchangeError::Refused(error)) => {
            tracing::info!(?error, "code exchange refused");
            return page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                &format!(
                    "<p>The auth server refused the code (<code>{}</code>).</p>{retry}",
                    esc(&error)
                ),
            );
        }
        Err(ExchangeError::Unavailable(e)) => {
            tracing::warn!(error = %e, "code exchange failed");
            return page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                &format!("<p>The auth server cannot be reached.</p>{retry}"),
            );
        }
    };
    let target = q
        .state
        .as_deref()
        .and_then(local_return_path)
        .unwrap_or_else(|| {
            if q.state.is_some() {
                tracing::info!("state is not a local path; redirecting to /");
            }
            "/"
        });
    let mut res = redirect(StatusCode::SEE_OTHER, target);
    let headers = res.headers_mut();
    headers.append(
        header::SET_COOKIE,
        svc.session_cookie
            .set_cookie(&answer.access_token, Duration::from_secs(answer.expires_in)),
    );
    headers.append(header::SET_COOKIE, svc.pkce_cookie.removal_cookie());
    res
}

/// `GET /`: a page for the signed-in user.
async fn home(State(svc): State<Shared>, claims: Claims) -> Response {
    let body = format!(
        r#"<p>Signed in as <strong>{}</strong> (scope: {}).</p>
<p><a href="/me">Your token's claims</a> · <a href="{}/">Your sign-in</a></p>
<form method="post" action="/logout"><button type="submit">Sign out everywhere</button></form>"#,
        esc(claims.sub.as_deref().unwrap_or("")),
        esc(claims.scope.as_deref().unwrap_or("")),
        esc(&svc.auth_url),
    );
    page(StatusCode::OK, &format!("The {} service", svc.name), &body)
}

/// `GET /me`: the verified claims.
async fn me(claims: Claims) -> Json<Claims> {
    Json(claims)
}

/// `POST /logout`: the token's SSO session ends, at every service.
async fn logout(State(svc): State<Shared>, headers: HeaderMap, claims: Claims) -> Response {
    let sub = claims.sub.as_deref();
    // 1. Revoke in the shared store ourselves: every service refuses these tokens from now on,
    //    even if the auth server cannot be reached. Tokens of this session minted later than
    //    this one live at most as long as this one does.
    let lifetime = claims
        .exp
        .unwrap_or(0)
        .saturating_sub(claims.iat.unwrap_or(0));
    let keep_until = now_secs() + lifetime + svc.clock_skew;
    let revoked = match claims.sid.as_deref() {
        Some(sid) => svc.revocation.revoke_session(sub, sid, keep_until).await,
        None => {
            svc.revocation
                .revoke_token(
                    TokenRef::new()
                        .jti(claims.jti.as_deref())
                        .sub(sub)
                        .iat(claims.iat)
                        .exp(claims.exp)
                        .sid(None),
                )
                .await
        }
    };
    if let Err(e) = revoked {
        tracing::warn!(error = %e, "logout: revocation failed");
        return e.into_response();
    }
    // 2. End the SSO session, or the next visit would sign the user in again silently.
    let token = bearer(&headers)
        .map(str::to_owned)
        .or_else(|| cookie_value(&headers, svc.session_cookie.name()));
    let ended = match token {
        Some(token) => svc.end_sso_session(&token).await,
        None => Err("no token to present".into()),
    };
    let body = match ended {
        Ok(()) => "<p>You are signed out of every service.</p>".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "logout: the auth server could not end the SSO session");
            format!(
                r#"<p>Your tokens are revoked, but the sign-in could not be ended at the auth
server. <a href="{}/">Sign out there</a>.</p>"#,
                esc(&svc.auth_url)
            )
        }
    };
    tracing::info!(sub = ?claims.sub, sid = ?claims.sid, "logged out");
    let mut res = page(StatusCode::OK, "Signed out", &body);
    res.headers_mut()
        .append(header::SET_COOKIE, svc.session_cookie.removal_cookie());
    res
}
