//! [`OidcLoginLayer`]: sends a browser without a session to the provider, or refreshes its
//! session silently.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::client::OidcClient;
use super::page::{redirect, with_query};
use super::state::{LOGIN_TTL_SECS, LoginState};
use crate::endpoint::TokenCookies;
use crate::issuer::random_id;
use crate::lifecycle::{GrantError, TokenLifecycle};
use crate::local_return_path;
use crate::revocation::{BoxFuture, now_secs};
use crate::sso::code::s256_challenge as code_challenge;

#[derive(Debug)]
struct Config {
    client: OidcClient,
    lifecycle: TokenLifecycle,
    cookies: TokenCookies,
}

/// Layer of the protected routes (outside [`JwtAuthLayer`](crate::JwtAuthLayer) in cookie
/// mode) that turns a page request's 401 into a login at the provider.
///
/// When the inner service answers 401 to a *page request* — `GET` or `HEAD` without an
/// `Authorization` header — the layer answers instead:
///
/// - with a refresh cookie ([`TokenCookies`]; its path must cover the page, e.g. `/`): a
///   silent refresh with [`TokenLifecycle::refresh`] (rotation and reuse detection), the new
///   cookies and a 303 to the same page. A refused refresh falls back to the login below; a
///   store that cannot answer gives 503 with `Retry-After`.
/// - otherwise 302 to the provider's authorization endpoint with `response_type=code`,
///   `client_id`, `redirect_uri`, `scope`, a random `state` and `nonce`, a PKCE `S256`
///   challenge (RFC 7636) and `max_age` when configured, and a login-state cookie
///   (HttpOnly, SameSite=Lax, on the callback's path, 600 s) holding them and the page's path
///   and query ([`local_return_path`], else `/`), HMAC-SHA256-signed. The access and refresh
///   cookies are cleared.
///
/// Every other answer passes unchanged, 401s to API calls (`Authorization: Bearer …`) and to
/// other methods included: they keep their RFC 6750 challenge, never a redirect.
#[derive(Debug, Clone)]
pub struct OidcLoginLayer {
    config: Arc<Config>,
}

impl OidcLoginLayer {
    /// A layer starting logins for `client`, refreshing local sessions with `lifecycle`,
    /// whose tokens travel in `cookies`.
    pub fn new(client: OidcClient, lifecycle: TokenLifecycle, cookies: TokenCookies) -> Self {
        Self {
            config: Arc::new(Config {
                client,
                lifecycle,
                cookies,
            }),
        }
    }
}

impl<S> Layer<S> for OidcLoginLayer {
    type Service = OidcLogin<S>;

    fn layer(&self, inner: S) -> OidcLogin<S> {
        OidcLogin {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`OidcLoginLayer`] makes.
#[derive(Debug, Clone)]
pub struct OidcLogin<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> OidcLogin<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// What a page request's 401 needs: where it was going, and its refresh token if any.
#[derive(Debug)]
struct PageRequest {
    return_to: String,
    refresh_token: Option<String>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OidcLogin<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = OidcLoginFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let page = (matches!(*req.method(), Method::GET | Method::HEAD)
            && !req.headers().contains_key(header::AUTHORIZATION))
        .then(|| PageRequest {
            return_to: req
                .uri()
                .path_and_query()
                .and_then(|p| local_return_path(p.as_str()))
                .unwrap_or("/")
                .to_owned(),
            refresh_token: self.config.cookies.refresh_from(req.headers()),
        });
        OidcLoginFuture {
            state: State::Inner {
                future: self.inner.call(req),
                page: page.map(|page| (page, self.config.clone())),
            },
        }
    }
}

pin_project! {
    /// The future of [`OidcLogin`].
    pub struct OidcLoginFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            page: Option<(PageRequest, Arc<Config>)>,
        },
        Refreshing {
            future: BoxFuture<'static, Response<B>>,
        },
    }
}

impl<F, B> std::fmt::Debug for OidcLoginFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLoginFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for OidcLoginFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Inner { future, page } => {
                    let res = ready!(future.poll(cx))?;
                    if res.status() != StatusCode::UNAUTHORIZED {
                        return Poll::Ready(Ok(res));
                    }
                    let Some((page, config)) = page.take() else {
                        return Poll::Ready(Ok(res));
                    };
                    match page.refresh_token {
                        None => return Poll::Ready(Ok(start_login(&config, &page.return_to))),
                        Some(token) => {
                            let future: BoxFuture<'static, Response<B>> = Box::pin(async move {
                                silent_refresh(&config, &token, &page.return_to).await
                            });
                            State::Refreshing { future }
                        }
                    }
                }
                StateProj::Refreshing { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))));
                }
            };
            this.state.set(next);
        }
    }
}

/// The refresh grant for a page request: 303 to the same page with the new cookies, the
/// login redirect when refused, 503 when a store cannot answer.
async fn silent_refresh<B: Default>(config: &Config, token: &str, return_to: &str) -> Response<B> {
    match config.lifecycle.refresh(token, None).await {
        Ok(pair) => {
            let Some(mut res) = redirect(StatusCode::SEE_OTHER, return_to) else {
                return start_login(config, "/");
            };
            for cookie in config.cookies.set(&pair) {
                res.headers_mut().append(header::SET_COOKIE, cookie);
            }
            res
        }
        Err(GrantError::Unavailable(e)) => {
            tracing::warn!(target: "tower_token_auth", error = %e, "silent refresh failed");
            let mut res = Response::new(B::default());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::info!(target: "tower_token_auth", reason = %e, "silent refresh refused; starting a login");
            start_login(config, return_to)
        }
    }
}

/// 302 to the authorization endpoint, with a new login-state cookie.
fn start_login<B: Default>(config: &Config, return_to: &str) -> Response<B> {
    let client = &config.client.inner;
    let login = LoginState {
        state: random_id::<16>(),
        nonce: random_id::<16>(),
        verifier: random_id::<32>(),
        return_to: return_to.to_owned(),
        issued_at: now_secs(),
    };
    let challenge = code_challenge(&login.verifier);
    let scope = client.scopes.join(" ");
    let max_age = client.max_age.map(|d| d.as_secs().to_string());
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", login.state.as_str()),
        ("nonce", login.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(max_age) = &max_age {
        params.push(("max_age", max_age.as_str()));
    }
    let location = with_query(&client.authorization_endpoint.to_string(), &params);
    let Some(mut res) = redirect::<B>(StatusCode::FOUND, &location) else {
        // Not reached: the endpoint is a parsed URI and the query is percent-encoded.
        let mut res = Response::new(B::default());
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return res;
    };
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        client.state_cookie.set_cookie(
            &login.seal(&client.state_key),
            std::time::Duration::from_secs(LOGIN_TTL_SECS),
        ),
    );
    // Whatever tokens the browser had are no good (expired, revoked): drop them.
    for cookie in config.cookies.clear() {
        h.append(header::SET_COOKIE, cookie);
    }
    res
}
