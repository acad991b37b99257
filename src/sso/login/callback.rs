//! [`OidcCallback`]: the redirect URI, where the provider sends the browser with a code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde::Deserialize;

use super::client::OidcClient;
use super::id_token::{self, Expected, IdTokenClaims};
use super::local_session_id;
use super::page::{page, redirect};
use super::state::{LoginState, MAX_STATE_COOKIE_LEN};
use crate::endpoint::TokenCookies;
use crate::lifecycle::{LifecycleError, TokenLifecycle, TokenPair};
use crate::revocation::now_secs;
use crate::source::TokenSource;

/// The redirect URI of the login (a tower service; in axum mount it with `route_service` at
/// the path of [`OidcClient::redirect_uri`]).
///
/// `GET ?code&state`:
///
/// 1. reads the login-state cookie [`OidcLoginLayer`](super::OidcLoginLayer) set and checks
///    its HMAC, its age (at most 600 s) and that its `state` equals the query's (in constant
///    time) — else 400;
/// 2. exchanges the code at the token endpoint, server to server (`grant_type=
///    authorization_code`, `code`, `redirect_uri`, `code_verifier`, `client_secret_basic`
///    when the client has a secret), within a timeout and a 64 KiB answer cap — a refused
///    code (spent, expired, another login's) is 400, a provider that cannot be reached 503
///    with `Retry-After`;
/// 3. validates the ID token: signature, `iss`, `exp`/`iat` by the client's verifier; `aud`
///    contains the client_id, `azp` is the client_id when present (required with several
///    audiences), `nonce` equals the login's, `at_hash` matches the access token when
///    present, `auth_time` within `max_age` when it was sent — else 401;
/// 4. starts the local session for the ID token's `sub`:
///    [`TokenLifecycle::issue_pair_in_session`] in the family
///    [`local_session_id`]`(iss, sid)` when the ID token has a `sid` (so a back-channel logout
///    can end it), else a new family, authenticated at the ID token's `iat`; its scope is
///    [`OidcClient::session_scope`], or the granted one
///    ([`OidcClient::session_scope_from_grant`]); sets the access and refresh cookies, clears the
///    login-state cookie and answers 303 to the page the login started from.
///
/// `?error=…` from the provider (the user declined, …) is a 400 page. The pages never show
/// or log codes or tokens; nothing here answers 500.
#[derive(Debug, Clone)]
pub struct OidcCallback {
    client: OidcClient,
    lifecycle: TokenLifecycle,
    cookies: TokenCookies,
}

/// Why a callback failed: the page it answers.
struct Failure {
    status: StatusCode,
    text: &'static str,
}

impl Failure {
    const fn new(status: StatusCode, text: &'static str) -> Self {
        Self { status, text }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    access_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// Whether `scope` is at most 1024 bytes of RFC 6749 §3.3 scope tokens.
fn valid_scope(scope: &str) -> bool {
    scope.len() <= 1024
        && scope
            .bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
}

impl OidcCallback {
    /// The callback of `client`, starting local sessions with `lifecycle` whose tokens it
    /// delivers in `cookies`.
    pub fn new(client: OidcClient, lifecycle: TokenLifecycle, cookies: TokenCookies) -> Self {
        Self {
            client,
            lifecycle,
            cookies,
        }
    }

    /// Handles one request: what the [`Service`](tower_service::Service) implementation runs.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        // The body is not read: a callback has none.
        let (parts, _body) = req.into_parts();
        let clear_state = self.client.inner.state_cookie.removal_cookie();
        let mut res = match self
            .process(&parts.method, &parts.uri, &parts.headers)
            .await
        {
            Ok((pair, return_to)) => {
                let mut res = redirect(StatusCode::SEE_OTHER, &return_to)
                    .unwrap_or_else(|| page(StatusCode::OK, "Signed in", "You are signed in."));
                for cookie in self.cookies.set(&pair) {
                    res.headers_mut().append(header::SET_COOKIE, cookie);
                }
                res
            }
            Err(f) => {
                let mut res = page(f.status, "Sign-in failed", f.text);
                if f.status == StatusCode::METHOD_NOT_ALLOWED {
                    res.headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                }
                res
            }
        };
        res.headers_mut().append(header::SET_COOKIE, clear_state);
        res
    }

    async fn process(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Result<(TokenPair, String), Failure> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Err(Failure::new(StatusCode::METHOD_NOT_ALLOWED, "Use GET."));
        }
        let (mut code, mut state, mut error) = (None, None, None);
        for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let slot = match &*name {
                "code" => &mut code,
                "state" => &mut state,
                "error" => &mut error,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(Failure::new(StatusCode::BAD_REQUEST, "Repeated parameter."));
            }
        }
        if let Some(error) = error {
            tracing::info!(target: "tower_token_auth", error = %error.chars().take(64).collect::<String>(), "the provider refused the login");
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "The provider did not sign you in.",
            ));
        }
        let (Some(code), Some(state)) = (code, state) else {
            return Err(Failure::new(StatusCode::BAD_REQUEST, "No code or state."));
        };
        let client = &self.client.inner;
        let leeway = client.verifier.leeway().as_secs();
        let login = crate::source::extract(
            headers,
            &[TokenSource::Cookie(client.state_cookie.name().to_owned())],
            MAX_STATE_COOKIE_LEN,
        )
        .ok()
        .flatten()
        .and_then(|value| LoginState::open(&client.state_key, value, now_secs(), leeway));
        let Some(login) = login else {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "This sign-in was not started here, or took too long.",
            ));
        };
        if !login.state_matches(&state) {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "This sign-in was not started here.",
            ));
        }
        let answer = self.exchange(&code, &login.verifier).await?;
        let Some(id_token) = answer.id_token else {
            tracing::info!(target: "tower_token_auth", "token endpoint answered without an id_token");
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "The provider sent no ID token.",
            ));
        };
        let invalid = |why: &str| {
            tracing::info!(target: "tower_token_auth", reason = why, "ID token refused");
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "The provider's ID token is not valid.",
            )
        };
        let claims = match client
            .verifier
            .verification::<IdTokenClaims>(&id_token)
            .wait()
            .await
        {
            Ok(claims) => claims,
            Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(target: "tower_token_auth", error = %e, "the provider's keys are unavailable");
                return Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The provider cannot be reached. Try again in a moment.",
                ));
            }
            Err(e) => return Err(invalid(&e.to_string())),
        };
        let alg = jsonwebtoken::decode_header(&id_token)
            .map_err(|_| invalid("malformed header"))?
            .alg;
        let now = now_secs();
        id_token::check(
            &claims,
            alg,
            answer.access_token.as_deref(),
            Expected {
                client_id: &client.client_id,
                nonce: &login.nonce,
                max_age: client.max_age.map(|d| d.as_secs()),
                now,
                leeway,
            },
        )
        .map_err(invalid)?;
        // Checked by `id_token::check`.
        let sub = claims.sub.as_deref().unwrap_or_default();
        let iss = claims.iss.as_deref().unwrap_or_default();
        // When the provider vouched for the user: a revocation of the user (in a store shared
        // with the provider, or a back-channel logout) made before it does not end this new
        // session, one made after does. Not `auth_time`: a provider that revokes a user's
        // tokens (a permission change) and keeps the SSO session would sign them in nowhere.
        let authenticated_at = claims.iat.unwrap_or(now);
        let scope = match answer.scope.as_deref() {
            Some(granted) if client.granted_scope => {
                if !valid_scope(granted) {
                    return Err(invalid("the granted scope is malformed"));
                }
                granted
            }
            _ => client.session_scope.as_str(),
        };
        let started = match claims.sid.as_deref().filter(|s| !s.is_empty()) {
            Some(sid) => {
                self.lifecycle
                    .issue_pair_in_session(
                        sub,
                        scope,
                        authenticated_at,
                        &local_session_id(iss, sid),
                    )
                    .await
            }
            None => {
                self.lifecycle
                    .issue_pair_authenticated_at(sub, scope, authenticated_at)
                    .await
            }
        };
        match started {
            Ok(pair) => {
                tracing::info!(target: "tower_token_auth", sub, "signed in through the provider");
                Ok((pair, login.return_to))
            }
            Err(LifecycleError::SessionsEnded) => Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "This sign-in session was ended. Sign out at the provider, then sign in again.",
            )),
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "starting the local session failed");
                Err(Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Signing in is not possible right now. Try again in a moment.",
                ))
            }
        }
    }

    /// The authorization-code exchange (RFC 6749 §4.1.3, RFC 7636 §4.5).
    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenAnswer, Failure> {
        let client = &self.client.inner;
        let (headers, body) = token_request(&self.client, code, verifier)?;
        let unavailable = || {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The provider cannot be reached. Try again in a moment.",
            )
        };
        let fetched = match client
            .http
            .post_form(&client.token_endpoint, "token endpoint", headers, body)
            .await
        {
            Ok(fetched) => fetched,
            // Timeout, transport, an answer over the cap: the provider is not usable now.
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "code exchange failed");
                return Err(unavailable());
            }
        };
        match fetched.status {
            StatusCode::OK => serde_json::from_slice::<TokenAnswer>(&fetched.body).map_err(|_| {
                tracing::warn!(target: "tower_token_auth", "token endpoint answered something that is not a token response");
                unavailable()
            }),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                let error = serde_json::from_slice::<serde_json::Value>(&fetched.body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(|s| s.chars().take(64).collect::<String>()));
                tracing::info!(target: "tower_token_auth", ?error, "the provider refused the code");
                Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "The provider refused this sign-in (it may have been used already).",
                ))
            }
            status => {
                tracing::warn!(target: "tower_token_auth", %status, "token endpoint answered an unexpected status");
                Err(unavailable())
            }
        }
    }
}

/// The token request's headers and form body, with `client_secret_basic` when the client has
/// a secret (RFC 6749 §2.3.1: both parts form-encoded, then Basic), else `client_id` in the
/// form (a public client).
fn token_request(
    client: &OidcClient,
    code: &str,
    verifier: &str,
) -> Result<(HeaderMap, String), Failure> {
    let client = &client.inner;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("code_verifier", verifier);
    let mut headers = HeaderMap::new();
    match &client.client_secret {
        Some(secret) => {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = format!("{}:{}", enc(&client.client_id), enc(secret));
            let value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
                .map_err(|_| {
                Failure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The client is misconfigured.",
                )
            })?;
            headers.insert(header::AUTHORIZATION, value);
        }
        None => {
            form.append_pair("client_id", &client.client_id);
        }
    }
    Ok((headers, form.finish()))
}

crate::handler_service::handler_service!(OidcCallback, any_body);
