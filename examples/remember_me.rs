//! Remember-me in a browser app: an HTML login form with a "Remember me" box, pages that tell
//! a password login from a remembered one, a settings page that wants the password again, and
//! a logout that forgets the browser.
//!
//! ```sh
//! COOKIE_SECURE=0 cargo run --example remember_me   # then open http://127.0.0.1:3400/
//! ```
//!
//! Log in as `alice` / `alice-password` (or `bob` / `bob-password`) with the box ticked, then
//! delete the `access_token` cookie in the browser's developer tools (or restart the browser):
//! the next page load logs you in again from the `remember_me` cookie, and the page says so.
//! `/settings` then asks for the password once more. A copied remember-me cookie is detected
//! (persistent mode) when both browsers use it: every remembered login of the user is deleted
//! and every access token of the user issued until then revoked, so the thief is logged out,
//! and so is the user, who logs in again with the password.
//!
//! | route | answer |
//! |---|---|
//! | `GET /login` | the login form (a logged-in browser is sent on to `/`) |
//! | `POST /login` `username, password[, remember=on][, next]` (form) | 303 to `next` (default `/`; anything but a plain local path also goes to `/`) with the `access_token` cookie, and a new `remember_me` when ticked; a `remember_me` cookie the request carried is forgotten and replaced, or deleted when the box is not ticked (kept only when the user confirms the password and it is their own); 401 and the form again on a wrong password |
//! | `GET /` | who is logged in, and how: `password` or `remembered`; 303 to `/login` when nobody is |
//! | `GET /settings` | the remembered devices, for a password login only; a remembered login gets 401 and a form asking for the password again |
//! | `POST /logout` | revokes the access token, forgets this browser's remembered login, clears both cookies, 303 to `/login` |
//! | `GET /health` | `ok` |
//!
//! Every `POST` is checked against cross-site request forgery (tower-http's `CsrfLayer`:
//! `Sec-Fetch-Site` / `Origin`, 403 otherwise).
//!
//! Environment:
//!
//! - `BIND`: listen address, default `127.0.0.1:3400`.
//! - `MODE`: `persistent` (default: random series and token, rotated on every auto-login,
//!   copied cookies detected) or `signed` (stateless HMAC cookie; `REMEMBER_ME_KEY`, at least
//!   32 bytes, else a random key).
//! - `REDIS_URL` (e.g. `redis://127.0.0.1:6379/`): keep remembered logins and revoked tokens
//!   in Redis. Unset: in memory.
//! - `JWT_SECRET`: the HS256 secret for access tokens, at least 32 bytes. Unset: random.
//! - `ACCESS_TTL_SECS`: lifetime of access tokens and of their cookie, default 900.
//! - `REMEMBER_GRACE_SECS`: persistent mode: how long a rotated-away remember-me token is
//!   still accepted (parallel requests, restored tabs), default 5.
//! - `COOKIE_SECURE=0`: cookies without `Secure`, for plain-HTTP `127.0.0.1` only.
//! - `RUST_LOG`: log filter, default `info,tower_token_auth=debug` (logs go to stderr).
//!
//! The remember-me layer runs on page loads (`GET`) only: `POST /login` and `POST /logout` set
//! and clear the cookies themselves, and an auto-login on the same request would add its own
//! `Set-Cookie`s after theirs.

#[path = "shared/mod.rs"]
mod shared;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::{env_flag, esc, hash_password, verify_password, without_password};
use tower_http::csrf::{CsrfLayer, ProtectionError};
use tower_token_auth::remember_me::{
    MemoryRememberMeStore, RedisRememberMeStore, RememberMe, StaticUsers, UserRecord,
};
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
use tower_token_auth::{
    AccessCookie, Algorithm, AuthError, AuthStatus, Claims, JwtAuthLayer, KeySet, Logout,
    MemoryStore, RevocationStore, SigningKey, TokenIssuer, Verifier, VerifyingKey,
    local_return_path,
};

/// `iss` and `aud` of the access tokens.
const ISSUER: &str = "remember-me-demo";
const DEFAULT_BIND: &str = "127.0.0.1:3400";
const ACCESS_COOKIE: &str = "access_token";
const REMEMBER_COOKIE: &str = "remember_me";
const MIN_SECRET_LEN: usize = 32;
/// RFC 8176 `amr` of a password login (a remembered one carries `remember-me`).
const PASSWORD_AMR: &str = "pwd";

/// The demo users: name, password, scopes. Passwords are hashed at start-up.
const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "read write"),
    ("bob", "bob-password", "read"),
];

struct DemoUser {
    /// Argon2id hash in PHC string format.
    password_hash: String,
    /// What remember-me knows of the user.
    record: UserRecord,
}

struct AppState {
    users: HashMap<&'static str, DemoUser>,
    /// Verified against when the user is unknown, so both cases cost the same time.
    dummy_hash: String,
    issuer: TokenIssuer,
    access_cookie: AccessCookie,
    /// Verifies the access cookie at logout (that route runs outside the auth layer).
    verifier: Verifier,
    /// Revokes in the store the auth layer checks.
    logout: Logout,
    remember_me: RememberMe,
    /// Shown on the pages.
    mode: &'static str,
}

type SharedState = Arc<AppState>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::init_tracing();

    let secret = secret_from_env("JWT_SECRET")?;
    let access_ttl = Duration::from_secs(env_u64("ACCESS_TTL_SECS", 900)?);
    let grace = Duration::from_secs(env_u64("REMEMBER_GRACE_SECS", 5)?);
    let secure = env_flag("COOKIE_SECURE", true)?;
    if !secure {
        tracing::warn!("COOKIE_SECURE=0: cookies without `Secure`, fine for localhost only");
    }

    let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &secret)?)?;
    let verifier = Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(ISSUER)
        .require_claims(["exp", "sub", "jti"])
        .build()?;
    let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret)?)
        .issuer(ISSUER)
        .audience(ISSUER)
        .ttl(access_ttl);
    let access_cookie = AccessCookie::new(ACCESS_COOKIE).secure(secure);

    let users = demo_users()?;
    let user_store = StaticUsers::new(users.values().map(|u| u.record.clone()));
    let redis_url = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let (remember_me, mode, revocation) = stores(redis_url.as_deref(), user_store).await?;
    let remember_me = remember_me
        .cookie(AccessCookie::new(REMEMBER_COOKIE).secure(secure))
        .grace(grace)
        // Each auto-login also sets a fresh access-token cookie, so the following requests
        // are plain JWT requests (still marked as remembered). When a copied remember-me
        // cookie is detected, every access token of the user issued until then is revoked in
        // the store the auth layer checks (the thief may hold one minted from the copy), and
        // the user logs in again with the password.
        .mint_access_tokens(issuer.clone(), access_cookie.clone(), revocation.clone());

    // Optional: pages decide themselves what to do without a login. A refused token cookie
    // (expired, revoked) is cleared and the browser sent to the login page, where its
    // remember-me cookie, if any, logs it in again.
    let clear_access = access_cookie.removal_cookie();
    let auth = JwtAuthLayer::new(verifier.clone())
        .with_shared_revocation_store(revocation)
        .with_cookie(access_cookie.clone())?
        .optional()
        .with_responder(move |e: &AuthError| auth_refusal(e, &clear_access));

    let dummy_hash = users[DEMO_USERS[0].0].password_hash.clone();
    let state = Arc::new(AppState {
        users,
        dummy_hash,
        issuer,
        access_cookie,
        verifier,
        logout: auth.logout(),
        remember_me: remember_me.clone(),
        mode,
    });

    // Page loads: a request without a valid access cookie but with a remember-me cookie is
    // logged in by the remember-me layer (inside the auth layer, which lets a valid token
    // through untouched).
    let pages = Router::new()
        .route("/", get(home))
        .route("/settings", get(settings))
        .route("/login", get(login_page))
        .layer(remember_me.layer());
    let authenticated = Router::new()
        .route("/login", post(login))
        .merge(pages)
        .layer(auth);
    let app = Router::new()
        // Logout must work whatever state the access cookie is in: it reads it itself.
        .route("/logout", post(logout))
        .route("/health", get(health))
        .merge(authenticated)
        // Browsers attach cookies to requests any site makes: refuse cross-site POSTs (a
        // forged logout, or a login into the attacker's account). GETs change nothing here.
        .layer(CsrfLayer::new().with_rejection_response(csrf_refusal as fn(_) -> _))
        .with_state(state);

    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, mode, redis = redis_url.is_some(), "remember_me example listening");
    print_walkthrough(addr, mode, secure);

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The remember-me configuration (`MODE`) and the revocation store, in Redis when `url` is set.
async fn stores(
    url: Option<&str>,
    users: StaticUsers,
) -> anyhow::Result<(RememberMe, &'static str, Arc<dyn RevocationStore>)> {
    let mode = std::env::var("MODE").unwrap_or_default();
    let revocation: Arc<dyn RevocationStore> = match url {
        Some(url) => {
            let store = RedisRevocationStore::connect(url, RedisStoreConfig::default()).await?;
            if !store.wait_live(Duration::from_secs(3)).await {
                tracing::warn!(
                    "Redis at {} is not answering yet: token checks answer 503 until it does",
                    without_password(url)
                );
            }
            Arc::new(store)
        }
        None => Arc::new(MemoryStore::new()),
    };
    let remember_me = match (mode.as_str(), url) {
        ("signed", _) => {
            let key = secret_from_env("REMEMBER_ME_KEY")?;
            return Ok((RememberMe::signed(&key, users)?, "signed", revocation));
        }
        ("" | "persistent", Some(url)) => RememberMe::persistent(
            RedisRememberMeStore::connect(url, "tta:", Duration::from_millis(500))?,
            users,
        ),
        ("" | "persistent", None) => RememberMe::persistent(MemoryRememberMeStore::new(), users),
        (other, _) => bail!("MODE={other:?}: expected persistent or signed"),
    };
    Ok((remember_me, "persistent", revocation))
}

/// A secret of at least 32 bytes from `name`, or 32 random bytes when unset.
fn secret_from_env(name: &str) -> anyhow::Result<Vec<u8>> {
    match std::env::var(name) {
        Ok(secret) if secret.len() >= MIN_SECRET_LEN => Ok(secret.into_bytes()),
        Ok(secret) => bail!(
            "{name} is {} bytes long; it needs at least {MIN_SECRET_LEN} \
             (try: export {name}=$(openssl rand -hex 32))",
            secret.len()
        ),
        Err(std::env::VarError::NotPresent) => {
            tracing::warn!("{name} is not set: using a random one, lost when this process exits");
            let mut secret = vec![0u8; MIN_SECRET_LEN];
            rand::rng().fill_bytes(&mut secret);
            Ok(secret)
        }
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .with_context(|| format!("{name}={v:?}: expected a number of seconds")),
        _ => Ok(default),
    }
}

fn demo_users() -> anyhow::Result<HashMap<&'static str, DemoUser>> {
    DEMO_USERS
        .iter()
        .map(|&(name, password, scope)| {
            let password_hash = hash_password(password)?;
            // Changes with the password: signed cookies made before a change stop working.
            let version: String = Sha256::digest(password_hash.as_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let record = UserRecord::new(name, &version, scope);
            Ok((
                name,
                DemoUser {
                    password_hash,
                    record,
                },
            ))
        })
        .collect()
}

impl AppState {
    /// The user if `password` is theirs. Argon2 runs off the async workers, and costs the
    /// same for unknown users.
    async fn check_password(&self, username: &str, password: &str) -> Option<&DemoUser> {
        let user = self.users.get(username);
        let hash = user.map_or(&self.dummy_hash, |u| &u.password_hash).clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        user.filter(|_| ok)
    }
}

// ---- pages ---------------------------------------------------------------------------------

/// A whole page, not to be cached (it shows who is logged in).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}\
         label{{display:block;margin:.5em 0}}</style></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        title = esc(title),
    );
    let mut res = (status, Html(html)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    res.headers_mut().insert(header::LOCATION, location);
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The login form. `username`: a fixed user (asking a logged-in user for the password again).
fn login_form(next: &str, username: Option<&str>, error: Option<&str>) -> String {
    let mut html = String::new();
    if let Some(error) = error {
        let _ = writeln!(html, "<p id=\"error\" role=\"alert\">{}</p>", esc(error));
    }
    let _ = writeln!(
        html,
        "<form id=\"login\" method=\"post\" action=\"/login\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{}\">",
        esc(next)
    );
    match username {
        Some(u) => {
            let _ = writeln!(
                html,
                "<input type=\"hidden\" name=\"username\" value=\"{0}\">\
                 <p>User: <b>{0}</b></p>",
                esc(u)
            );
        }
        None => html.push_str(
            "<label>Username <input name=\"username\" autocomplete=\"username\" required autofocus></label>\n",
        ),
    }
    html.push_str(
        "<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\n",
    );
    if username.is_none() {
        html.push_str(
            "<label><input type=\"checkbox\" name=\"remember\" value=\"on\"> Remember me</label>\n",
        );
    }
    html.push_str("<button type=\"submit\">Log in</button>\n</form>");
    html
}

const LOGOUT_FORM: &str = "<form id=\"logout\" method=\"post\" action=\"/logout\">\
                           <button type=\"submit\">Log out</button></form>";

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the form, or on to `next` for a browser that is logged in already.
async fn login_page(claims: Option<Claims>, Query(q): Query<LoginQuery>) -> Response {
    let next = q.next.as_deref().and_then(local_return_path).unwrap_or("/");
    if claims.is_some() {
        return see_other(next);
    }
    page(StatusCode::OK, "Log in", &login_form(next, None, None))
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    /// The checkbox: present (`on`) when ticked.
    remember: Option<String>,
    next: Option<String>,
}

/// `POST /login`: checks the password, sets the access cookie, and remembers the browser when
/// the box is ticked. Also used to confirm the password of a remembered login.
async fn login(
    State(state): State<SharedState>,
    previous: Option<Claims>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = form
        .next
        .as_deref()
        .and_then(local_return_path)
        .unwrap_or("/");
    let Some(user) = state.check_password(&form.username, &form.password).await else {
        // `?`: the name is the client's, escaped so a newline in it cannot forge a log line.
        tracing::info!(username = ?form.username, "login refused");
        // Confirming the password of a logged-in user keeps the username fixed.
        let fixed = previous
            .as_ref()
            .and_then(|c| c.sub.as_deref())
            .filter(|&sub| sub == form.username);
        let form = login_form(next, fixed, Some("Wrong username or password."));
        return page(StatusCode::UNAUTHORIZED, "Log in", &form);
    };
    let issued = match state.issuer.issue_with(
        &user.record.username,
        &user.record.scope,
        &json!({ "amr": [PASSWORD_AMR] }),
    ) {
        Ok(issued) => issued,
        Err(e) => return internal_error(&e),
    };
    // The token this browser had (a remembered login, another user) is replaced: revoke it.
    if let Some(previous) = &previous
        && let Err(e) = state.logout.revoke(previous).await
    {
        tracing::warn!(error = %e, "could not revoke the previous access token");
    }
    let mut res = see_other(next);
    res.headers_mut().append(
        header::SET_COOKIE,
        state
            .access_cookie
            .set_cookie(&issued.token, Duration::from_secs(issued.expires_in)),
    );
    // A remember-me cookie the browser arrived with is kept across a password login only when
    // it is this user's own and the user is confirming the password (that form has no box): it
    // may be one an attacker planted (their own account's, so that the victim ends up in it
    // once the access token expires), or another user's. Otherwise its series is forgotten and
    // the cookie replaced (box ticked) or deleted.
    let confirming = previous.as_ref().and_then(|c| c.sub.as_deref()) == Some(&form.username);
    let keep = form.remember.is_none()
        && confirming
        && state
            .remember_me
            .is_cookie_of(&headers, &user.record.username)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not check the remember-me cookie; replacing it");
                false
            });
    if !keep {
        let clear_remember = match state.remember_me.forget(&headers).await {
            Ok(clear) => clear,
            Err(e) => {
                tracing::warn!(error = %e, "could not forget the previous remembered login");
                state.remember_me.clear_cookie()
            }
        };
        let remembered = match form.remember {
            None => None,
            Some(_) => {
                let user_agent = headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok());
                state
                    .remember_me
                    .remember(&user.record, user_agent)
                    .await
                    // The password login stands; only "remember me" failed.
                    .inspect_err(|e| tracing::warn!(error = %e, "could not remember the login"))
                    .ok()
            }
        };
        res.headers_mut()
            .append(header::SET_COOKIE, remembered.unwrap_or(clear_remember));
    }
    tracing::info!(
        username = ?user.record.username,
        remember = form.remember.is_some(),
        "logged in with the password"
    );
    res
}

/// How the login behind `claims` was made.
fn how(claims: &Claims) -> &'static str {
    if claims.is_remembered() {
        "remembered"
    } else {
        "password"
    }
}

/// `GET /`: who is logged in, and how.
async fn home(claims: Option<Claims>, status: AuthStatus) -> Response {
    let Some(claims) = claims else {
        return see_other("/login");
    };
    let sub = claims.sub.as_deref().unwrap_or_default();
    let how = how(&claims);
    let mut body = format!(
        "<p>Logged in as <b id=\"who\">{}</b> by <b id=\"how\">{how}</b>.</p>\n",
        esc(sub)
    );
    if status == AuthStatus::Remembered {
        body.push_str(
            "<p id=\"auto-login\">Your remember-me cookie logged you in just now \
             (and was replaced by a new one).</p>\n",
        );
    }
    if claims.is_remembered() {
        body.push_str(
            "<p><a href=\"/settings\">Settings</a> will ask for your password again.</p>\n",
        );
    } else {
        body.push_str("<p><a href=\"/settings\">Settings</a></p>\n");
    }
    body.push_str(LOGOUT_FORM);
    page(StatusCode::OK, &format!("Hello, {sub}"), &body)
}

/// `GET /settings`: for password logins only; a remembered login is asked for the password.
async fn settings(State(state): State<SharedState>, claims: Option<Claims>) -> Response {
    let Some(claims) = claims else {
        return see_other("/login?next=/settings");
    };
    let sub = claims.sub.as_deref().unwrap_or_default();
    if let Err(refusal) = claims.require_fresh_login() {
        let body = format!(
            "<p id=\"reauth\">You were logged in by your remember-me cookie. \
             Please confirm your password to open the settings.</p>\n{}",
            login_form("/settings", Some(sub), None)
        );
        let mut res = page(refusal.status(), "Confirm your password", &body);
        // The RFC 6750 challenge, error="insufficient_user_authentication" (RFC 9470).
        if let Some(challenge) = refusal
            .to_response(None)
            .headers()
            .get(header::WWW_AUTHENTICATE)
        {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge.clone());
        }
        return res;
    }
    let devices = match state.remember_me.devices(sub).await {
        Ok(devices) => devices,
        Err(e) => return internal_error(&e),
    };
    let mut body = format!(
        "<p id=\"settings\">Settings of <b>{}</b> (password confirmed).</p>\n\
         <p>Remember-me mode: {}.</p>\n",
        esc(sub),
        state.mode
    );
    if state.mode == "persistent" {
        let _ = writeln!(
            body,
            "<p>Remembered browsers: <b id=\"devices\">{}</b></p>\n<ul>",
            devices.len()
        );
        for d in &devices {
            let _ = writeln!(
                body,
                "<li>{} (remembered at {}, last used at {}, Unix time)</li>",
                esc(d.user_agent.as_deref().unwrap_or("unknown browser")),
                d.created,
                d.last_used
            );
        }
        body.push_str("</ul>\n");
    }
    body.push_str("<p><a href=\"/\">Home</a></p>\n");
    body.push_str(LOGOUT_FORM);
    page(StatusCode::OK, "Settings", &body)
}

/// The value of cookie `name` in the request, if sent once.
fn request_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        for c in cookie::Cookie::split_parse(value.to_str().ok()?).flatten() {
            if c.name_raw() == Some(name) {
                if found.is_some() {
                    return None;
                }
                found = c.value_raw();
            }
        }
    }
    found.filter(|v| !v.is_empty())
}

/// `POST /logout`: revokes the access token (if it is still good), forgets this browser's
/// remembered login, clears both cookies.
async fn logout(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Some(token) = request_cookie(&headers, ACCESS_COOKIE)
        && let Ok(claims) = state
            .verifier
            .verify::<tower_token_auth::NoCustomClaims>(token)
    {
        if let Err(e) = state.logout.revoke(&claims).await {
            tracing::warn!(error = %e, "could not revoke the access token");
        }
        tracing::info!(sub = ?claims.sub, "logged out");
    }
    let clear_remember = match state.remember_me.forget(&headers).await {
        Ok(clear) => clear,
        Err(e) => {
            // The cookie is cleared anyway; the series expires on its own.
            tracing::warn!(error = %e, "could not forget the remembered login");
            state.remember_me.clear_cookie()
        }
    };
    let mut res = see_other("/login");
    let headers = res.headers_mut();
    if let Some(clear_access) = state.logout.removal_cookie() {
        headers.append(header::SET_COOKIE, clear_access);
    }
    headers.append(header::SET_COOKIE, clear_remember);
    res
}

async fn health() -> &'static str {
    "ok"
}

/// What the auth layer answers for a refused access cookie: a 401 (expired, revoked, forged)
/// clears the cookie and sends the browser to the login page; anything else is an error page.
fn auth_refusal(e: &AuthError, clear_access: &HeaderValue) -> axum::http::Response<Bytes> {
    let mut res = axum::http::Response::new(Bytes::new());
    if e.status() == StatusCode::UNAUTHORIZED {
        *res.status_mut() = StatusCode::SEE_OTHER;
        let h = res.headers_mut();
        h.insert(header::LOCATION, HeaderValue::from_static("/login"));
        h.insert(header::SET_COOKIE, clear_access.clone());
    } else {
        *res.status_mut() = e.status();
        *res.body_mut() = Bytes::from(format!("{}\n", e.description()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn csrf_refusal(e: ProtectionError) -> Response {
    tracing::info!(reason = %e, "cross-site request refused");
    page(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "<p id=\"csrf\">Cross-site request refused (CSRF protection).</p>",
    )
}

fn internal_error(e: &dyn std::error::Error) -> Response {
    tracing::error!(error = %e, "request failed");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "<p>Something went wrong; try again.</p>",
    )
}

/// Printed at start-up with `$BASE` set.
const WALKTHROUGH: &str = r#"
# curl plays the browser: -c writes the cookie jar, -b sends it (start with COOKIE_SECURE=0,
# curl keeps `Secure` cookies for HTTPS only).

# log in with "remember me" ticked: 303, Set-Cookie access_token and remember_me
curl -si -c jar.txt -X POST "$BASE/login" -d username=alice -d password=alice-password -d remember=on | grep -iE '^(HTTP|set-cookie|location)'

# who am I? "Logged in as alice by password"
curl -s -b jar.txt "$BASE/" | grep -o 'Logged in as.*'

# "restart the browser": drop the access cookie, keep remember_me; the next page load logs
# in from the cookie (rotated: the jar gets a new remember_me and a new access_token)
sed -i '/access_token/d' jar.txt
curl -s -b jar.txt -c jar.txt "$BASE/" | grep -o 'Logged in as.*'

# settings want the password again: 401, WWW-Authenticate: ... insufficient_user_authentication
curl -si -b jar.txt "$BASE/settings" | grep -iE '^(HTTP|www-authenticate)'

# confirm the password: the new access token is a password login; settings open (200)
curl -s -b jar.txt -c jar.txt -X POST "$BASE/login" -d username=alice -d password=alice-password -d next=/settings -o /dev/null
curl -si -b jar.txt "$BASE/settings" | grep -E '^HTTP|Remembered browsers'

# a cross-site POST is refused (403, CSRF protection)...
curl -si -b jar.txt -X POST "$BASE/logout" -H 'Sec-Fetch-Site: cross-site' | head -1

# ...a same-origin one logs out: token revoked, remembered login forgotten, cookies cleared
curl -si -b jar.txt -c jar.txt -X POST "$BASE/logout" -H 'Sec-Fetch-Site: same-origin' | grep -iE '^(HTTP|set-cookie|location)'
curl -si -b jar.txt "$BASE/" | grep -iE '^(HTTP|location)'
"#;

fn print_walkthrough(addr: SocketAddr, mode: &str, secure: bool) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let note = if secure {
        "\nnote: cookies are `Secure`: over plain http, restart with COOKIE_SECURE=0\n"
    } else {
        ""
    };
    println!(
        "\ntower-token-auth remember-me example on http://{host} ({mode} mode)   (Ctrl-C to stop)\n\
         \nIn a browser: open http://{host}/ and log in as alice / alice-password with \
         \"Remember me\" ticked, delete the access_token cookie (or restart the browser) and \
         reload.\n{note}\nBASE=http://{host}\n{WALKTHROUGH}"
    );
}
