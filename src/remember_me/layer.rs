//! [`RememberMeLayer`]: runs [`RememberMe::auto_login`] for unauthenticated requests.

use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{AutoLogin, RememberMe, RememberMeError};
use crate::authentication::Authentication;
use crate::body::AuthBody;
use crate::claims::AuthStatus;
use crate::error::AuthError;
use crate::revocation::BoxFuture;

/// Logs in requests that carry no valid token but a remember-me cookie.
///
/// Place it inside an optional [`JwtAuthLayer`](crate::JwtAuthLayer) (so a request with a
/// valid token passes through untouched) and outside the routes:
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_token_auth::remember_me::{MemoryRememberMeStore, RememberMe, StaticUsers, UserRecord};
/// use std::sync::Arc;
/// use tower_token_auth::{AccessCookie, Claims, JwtAuthLayer, MemoryStore, testing::TestKeys};
///
/// let keys = TestKeys::hs256();
/// let access = AccessCookie::new("access_token");
/// let users = StaticUsers::new([UserRecord::new("alice", "v1", "read")]);
/// let revocation = Arc::new(MemoryStore::new());
/// let remember_me = RememberMe::persistent(MemoryRememberMeStore::new(), users)
///     .mint_access_tokens(keys.issuer(), access.clone(), revocation.clone());
/// let app: Router = Router::new()
///     .route("/", get(|c: Option<Claims>| async move { format!("{:?}", c.map(|c| c.sub.clone())) }))
///     .layer(remember_me.layer())
///     .layer(
///         JwtAuthLayer::new(keys.verifier())
///             .with_shared_revocation_store(revocation)
///             .with_cookie(access)
///             .unwrap()
///             .optional(),
///     );
/// ```
///
/// On success the request gets an [`Authentication`] with
/// [`AuthStatus::Remembered`] and [`Claims`](crate::Claims) (with `amr: ["remember-me"]`),
/// keeping the logout handle of the `JwtAuthLayer` outside, and the response the rotated cookie and the fresh access token
/// cookie. On refusal the response deletes the cookie, and the request goes on
/// unauthenticated (or is answered 401 with
/// [`reject_on_failure`](RememberMe::reject_on_failure)). If a store cannot be reached the
/// request goes on unauthenticated and the cookie is kept for a later try. If a stolen cookie
/// was detected but the user's access tokens could not be revoked
/// ([`RememberMeError::TheftRevocation`]), the answer is 503 with a fixed JSON body and
/// `Retry-After: 1` (the cause goes to the log only), and the cookie is kept so a retry
/// finishes the revocation.
#[derive(Clone)]
pub struct RememberMeLayer {
    config: RememberMe,
}

impl fmt::Debug for RememberMeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberMeLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl RememberMeLayer {
    /// The layer for `config`.
    pub fn new(config: RememberMe) -> Self {
        Self { config }
    }
}

impl<S> Layer<S> for RememberMeLayer {
    type Service = RememberMeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RememberMeService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service built by [`RememberMeLayer`].
#[derive(Clone)]
pub struct RememberMeService<S> {
    inner: S,
    config: RememberMe,
}

impl<S: fmt::Debug> fmt::Debug for RememberMeService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberMeService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RememberMeService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The service poll_ready prepared handles this request; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let before = req.extensions().get::<Authentication>();
        // Authenticated, remembered already, or a preflight: only anonymous requests log in.
        let authenticated = before.is_some_and(|a| a.status() != AuthStatus::Anonymous);
        // The logout handle of the JwtAuthLayer outside, kept for a remembered login.
        let logout = before.and_then(Authentication::shared_logout);
        if authenticated {
            let fut = inner.call(req);
            return Box::pin(async move { Ok(fut.await?.map(AuthBody::inner)) });
        }
        let config = self.config.clone();
        Box::pin(async move {
            let outcome = config.auto_login(req.headers()).await;
            let set_cookies = match outcome {
                Ok(AutoLogin::NoCookie) => Vec::new(),
                Ok(AutoLogin::LoggedIn {
                    claims,
                    set_cookies,
                }) => {
                    req.extensions_mut().insert(Authentication::with_claims(
                        AuthStatus::Remembered,
                        claims,
                        logout,
                    ));
                    set_cookies
                }
                Ok(AutoLogin::Refused { clear_cookie, .. }) => {
                    if config.rejects_on_failure() {
                        let mut res = AuthError::missing_token().to_response(None);
                        res.headers_mut().append(header::SET_COOKIE, clear_cookie);
                        return Ok(res.map(AuthBody::full));
                    }
                    vec![clear_cookie]
                }
                // The thief may hold a working access token: do not answer as if all was well.
                // The cookie is kept, so presenting it again retries the revocation.
                Err(RememberMeError::TheftRevocation(_)) => {
                    return Ok(theft_revocation_failed().map(AuthBody::full));
                }
                Err(e) => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "remember-me auto-login failed; continuing unauthenticated");
                    Vec::new()
                }
            };
            let mut res = inner.call(req).await?;
            // A handler that set one of these cookies itself (a login, a logout) has the last
            // word on it.
            let name_of = |v: &http::HeaderValue| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.split('=').next())
                    .map(|n| n.trim().to_owned())
            };
            let set_by_handler: Vec<String> = res
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(name_of)
                .collect();
            for c in set_cookies {
                if name_of(&c).is_some_and(|n| !set_by_handler.contains(&n)) {
                    res.headers_mut().append(header::SET_COOKIE, c);
                }
            }
            Ok(res.map(AuthBody::inner))
        })
    }
}

/// The fixed 503 for [`RememberMeError::TheftRevocation`]: no backend detail in the body.
fn theft_revocation_failed() -> Response<Bytes> {
    let body = r#"{"error":"temporarily_unavailable","error_description":"the login cannot be checked, retry later"}"#;
    let mut res = Response::new(Bytes::from_static(body.as_bytes()));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}
