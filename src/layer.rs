//! [`JwtAuthLayer`] and its service [`JwtAuth`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, header};
use http_body::Body;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::AuthBody;
use crate::claims::{AuthStatus, Claims, NoCustomClaims};
use crate::error::{
    AuthError, AuthErrorKind, ConfigError, ErrorResponder, InvalidToken, Rfc6750Responder,
};
use crate::future::{Insert, PendingCheck, ResponseFuture};
use crate::logout::Logout;
use crate::revocation::{
    MemoryStore, RevocationCheck, RevocationStatus, RevocationStore, TokenRef,
};
use crate::source::{AccessCookie, TokenSource, bearer_syntax_error, extract_with_source};
use crate::verifier::Verifier;

/// Whether a request without a token may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    sources: Vec<TokenSource>,
    cookie: Option<AccessCookie>,
    store: Arc<dyn RevocationStore>,
    responder: Arc<dyn ErrorResponder>,
    mode: Mode,
    allow_preflight: bool,
    lenient_cookies: bool,
}

/// Authenticates requests with a JWT and puts its [`Claims<T>`] into the request extensions.
///
/// For each request the layer:
/// 1. lets CORS preflights (`OPTIONS` + `Access-Control-Request-Method`) through, unless
///    turned off with [`allow_cors_preflight`](Self::allow_cors_preflight);
/// 2. reads the token from the configured [`TokenSource`]s (default: `Authorization: Bearer`);
/// 3. verifies it with the [`Verifier`] (size cap, `kid`, pinned `alg`, signature, times,
///    `iss`, `aud`, required claims);
/// 4. only then asks the [`RevocationStore`] whether it was revoked;
/// 5. inserts the claims, as `Arc<Claims<T>>`, and [`AuthStatus::Authenticated`] and calls
///    the inner service.
///
/// Any failure answers through the [`ErrorResponder`] (RFC 6750 by default) without calling
/// the inner service. In [optional](Self::optional) mode a request without a token passes with
/// [`AuthStatus::Anonymous`]; a request with a bad token is still refused.
///
/// ```
/// use std::sync::Arc;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use http::{Request, Response, StatusCode, header};
/// use tower_token_auth::{Claims, JwtAuthLayer, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let svc = ServiceBuilder::new()
///     .layer(JwtAuthLayer::new(keys.verifier()))
///     .service(service_fn(|req: Request<String>| async move {
///         let claims = req.extensions().get::<Arc<Claims>>().unwrap();
///         Ok::<_, std::convert::Infallible>(Response::new(format!("hi {}", claims.sub.as_deref().unwrap_or(""))))
///     }));
///
/// let req = Request::builder()
///     .header(header::AUTHORIZATION, format!("Bearer {}", keys.mint("alice", "read")))
///     .body(String::new())
///     .unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// # }
/// ```
pub struct JwtAuthLayer<T = NoCustomClaims> {
    config: Arc<Config>,
    _claims: PhantomData<fn() -> T>,
}

impl<T> Clone for JwtAuthLayer<T> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            _claims: PhantomData,
        }
    }
}

impl<T> fmt::Debug for JwtAuthLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("verifier", &self.verifier)
            .field("sources", &self.sources)
            .field("store", &self.store)
            .field("mode", &self.mode)
            .field("allow_preflight", &self.allow_preflight)
            .finish_non_exhaustive()
    }
}

impl JwtAuthLayer<NoCustomClaims> {
    /// A layer that requires a bearer token verified by `verifier`, with a fresh
    /// [`MemoryStore`] for revocation and RFC 6750 error responses.
    ///
    /// Use [`for_claims`](Self::for_claims) to decode your own claims type.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                sources: vec![TokenSource::AuthorizationBearer],
                cookie: None,
                store: Arc::new(MemoryStore::new()),
                responder: Arc::new(Rfc6750Responder::default()),
                mode: Mode::Required,
                allow_preflight: true,
                lenient_cookies: false,
            }),
            _claims: PhantomData,
        }
    }
}

impl<T> JwtAuthLayer<T> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Decode the application's claims as `U`: handlers then take `Claims<U>`.
    pub fn for_claims<U>(self) -> JwtAuthLayer<U> {
        JwtAuthLayer {
            config: self.config,
            _claims: PhantomData,
        }
    }

    /// Also read the token from this cookie, after the `Authorization` header. The cookie's
    /// settings are used again by [`Logout`] to clear it.
    pub fn with_cookie(mut self, cookie: AccessCookie) -> Result<Self, ConfigError> {
        cookie.validate()?;
        let c = self.config_mut();
        c.sources.retain(|s| !matches!(s, TokenSource::Cookie(_)));
        c.sources
            .push(TokenSource::Cookie(cookie.name().to_owned()));
        c.cookie = Some(cookie);
        Ok(self)
    }

    /// Sets the sources and their order; the first one present decides. Cookie sources must
    /// name the cookie given to [`with_cookie`](Self::with_cookie), if any.
    pub fn with_sources(mut self, sources: Vec<TokenSource>) -> Result<Self, ConfigError> {
        if sources.is_empty() {
            return Err(ConfigError::new("at least one token source is needed"));
        }
        for s in &sources {
            if let TokenSource::Cookie(name) = s {
                AccessCookie::new(name.clone()).validate()?;
            }
        }
        self.config_mut().sources = sources;
        Ok(self)
    }

    /// Let requests without any token through, marked [`AuthStatus::Anonymous`]. Requests
    /// with a token that fails verification are still refused.
    pub fn optional(mut self) -> Self {
        self.config_mut().mode = Mode::Optional;
        self
    }

    /// Optional mode, browser flavour: a token from a *cookie* that fails verification (expired,
    /// revoked, from an old key…) counts as no token, so the request passes as
    /// [`AuthStatus::Anonymous`] and a [`RememberMeLayer`](crate::remember_me::RememberMeLayer)
    /// inside can log the user in again. Bearer tokens are still refused, and so is everything
    /// when the revocation store cannot answer. Implies [`optional`](Self::optional).
    pub fn optional_ignoring_bad_cookies(mut self) -> Self {
        let c = self.config_mut();
        c.mode = Mode::Optional;
        c.lenient_cookies = true;
        self
    }

    /// The revocation store to check (default: a new [`MemoryStore`]).
    pub fn with_revocation_store<R: RevocationStore>(self, store: R) -> Self {
        self.with_shared_revocation_store(Arc::new(store))
    }

    /// The revocation store to check, shared with other parts of the application.
    pub fn with_shared_revocation_store(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.config_mut().store = store;
        self
    }

    /// The store this layer checks, to share with logout handlers.
    pub fn revocation_store(&self) -> Arc<dyn RevocationStore> {
        self.config.store.clone()
    }

    /// A [`Logout`] helper bound to this layer's store and cookie.
    pub fn logout(&self) -> Logout {
        Logout::new(self.config.store.clone(), self.config.cookie.clone())
    }

    /// Replace the error responses.
    pub fn with_responder<R: ErrorResponder>(mut self, responder: R) -> Self {
        self.config_mut().responder = Arc::new(responder);
        self
    }

    /// Use RFC 6750 responses with `realm="…"` in the challenge.
    pub fn with_realm(self, realm: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(self.with_responder(Rfc6750Responder::with_realm(realm)?))
    }

    /// Whether CORS preflight requests pass unauthenticated (default true: browsers never
    /// send credentials on a preflight).
    pub fn allow_cors_preflight(mut self, allow: bool) -> Self {
        self.config_mut().allow_preflight = allow;
        self
    }

    /// The verifier in use.
    pub fn verifier(&self) -> &Verifier {
        &self.config.verifier
    }
}

impl<S, T> Layer<S> for JwtAuthLayer<T> {
    type Service = JwtAuth<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth {
            inner,
            config: self.config.clone(),
            _claims: PhantomData,
        }
    }
}

/// The service built by [`JwtAuthLayer`].
pub struct JwtAuth<S, T = NoCustomClaims> {
    inner: S,
    config: Arc<Config>,
    _claims: PhantomData<fn() -> T>,
}

impl<S: Clone, T> Clone for JwtAuth<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for JwtAuth<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, T> JwtAuth<S, T> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &JwtAuthLayer<T>) -> Self {
        layer.layer(inner)
    }

    /// Gets a reference to the underlying service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the underlying service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the underlying service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

pub(crate) fn log_rejection(error: &AuthError) {
    // The reason only: never the token, which is a bearer credential.
    tracing::debug!(
        target: "tower_token_auth",
        status = error.status().as_u16(),
        reason = ?error.kind(),
        "request not authenticated"
    );
}

fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes>,
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        if config.allow_preflight && is_preflight(req.method(), req.headers()) {
            req.extensions_mut().insert(AuthStatus::Preflight);
            return ResponseFuture::calling(self.inner.call(req));
        }
        let verified = match extract_with_source(
            req.headers(),
            &config.sources,
            config.verifier.max_token_len(),
        ) {
            Ok(Some((token, source))) => match config.verifier.verify_shared::<T>(token) {
                // Keys come from a JWK Set that may have rotated: fetch it once more
                // (rate-limited) before refusing.
                Err(e) if is_unknown_key(&e) && config.verifier.remote().is_some() => {
                    let check = refetch_and_verify::<T>(
                        config.verifier.clone(),
                        config.store.clone(),
                        token.to_owned(),
                    );
                    return self.check_later(check, req);
                }
                Err(e)
                    if config.lenient_cookies
                        && matches!(source, TokenSource::Cookie(_))
                        && matches!(e.kind(), AuthErrorKind::InvalidToken(_)) =>
                {
                    log_rejection(&e);
                    Ok(None)
                }
                Err(e) => Err(match source {
                    TokenSource::AuthorizationBearer => bearer_syntax_error(token).unwrap_or(e),
                    _ => e,
                }),
                Ok(claims) => Ok(Some((claims, matches!(source, TokenSource::Cookie(_))))),
            },
            Ok(None) if config.mode == Mode::Optional => Ok(None),
            Ok(None) => Err(AuthError::missing_token()),
            Err(e) => Err(e),
        };
        let (claims, from_cookie) = match verified {
            Ok(Some(found)) => found,
            Ok(None) => {
                req.extensions_mut().insert(AuthStatus::Anonymous);
                return ResponseFuture::calling(self.inner.call(req));
            }
            Err(e) => return self.reject(&e),
        };
        // A revoked cookie token in lenient mode is no token (see optional_ignoring_bad_cookies).
        let lenient = config.lenient_cookies && from_cookie;
        let check = config.store.check(&token_ref(&claims));
        let authenticated = move |ext: &mut http::Extensions| {
            ext.insert(claims);
            ext.insert(AuthStatus::Authenticated);
        };
        let anonymous = |ext: &mut http::Extensions| {
            ext.insert(AuthStatus::Anonymous);
        };
        match check {
            RevocationCheck::Ready(Ok(RevocationStatus::Revoked)) if lenient => {
                log_rejection(&AuthError::invalid_token(InvalidToken::Revoked));
                anonymous(req.extensions_mut());
                ResponseFuture::calling(self.inner.call(req))
            }
            RevocationCheck::Ready(status) => match revocation_outcome(status) {
                Ok(()) => {
                    authenticated(req.extensions_mut());
                    ResponseFuture::calling(self.inner.call(req))
                }
                Err(e) => self.reject(&e),
            },
            RevocationCheck::Pending(check) => {
                let check: PendingCheck = Box::pin(async move {
                    let insert: Insert = match check.await {
                        Ok(RevocationStatus::Revoked) if lenient => Box::new(anonymous),
                        status => {
                            revocation_outcome(status)?;
                            Box::new(authenticated)
                        }
                    };
                    Ok(Some(insert))
                });
                self.check_later(check, req)
            }
        }
    }
}

fn is_unknown_key(e: &AuthError) -> bool {
    matches!(
        e.kind(),
        AuthErrorKind::InvalidToken(InvalidToken::UnknownKey)
    )
}

/// What a revocation answer means for the request.
fn revocation_outcome(
    status: Result<RevocationStatus, crate::revocation::RevocationError>,
) -> Result<(), AuthError> {
    match status {
        Ok(RevocationStatus::Active) => Ok(()),
        Ok(RevocationStatus::Revoked) => Err(AuthError::invalid_token(InvalidToken::Revoked)),
        Err(e) => {
            tracing::warn!(target: "tower_token_auth", error = %e, "revocation check failed; refusing the request");
            Err(AuthError::revocation_unavailable())
        }
    }
}

fn refetch_and_verify<T>(
    verifier: Verifier,
    store: Arc<dyn RevocationStore>,
    token: String,
) -> PendingCheck
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    Box::pin(async move {
        if !verifier.refetch_for_unknown_kid().await {
            return Err(AuthError::invalid_token(InvalidToken::UnknownKey));
        }
        let claims = verifier.verify_shared::<T>(&token)?;
        let status = match store.check(&token_ref(&claims)) {
            RevocationCheck::Ready(status) => status,
            RevocationCheck::Pending(f) => f.await,
        };
        revocation_outcome(status)?;
        let insert: Insert = Box::new(move |ext: &mut http::Extensions| {
            ext.insert(claims);
            ext.insert(AuthStatus::Authenticated);
        });
        Ok(Some(insert))
    })
}

impl<S, T> JwtAuth<S, T> {
    /// Finishes authentication asynchronously, then calls the inner service.
    fn check_later<B>(&mut self, check: PendingCheck, req: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        // Call the service that poll_ready prepared, leave a fresh clone behind:
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::checking(check, req, inner, self.config.responder.clone())
    }

    fn reject<B>(&self, error: &AuthError) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        log_rejection(error);
        ResponseFuture::rejected(self.config.responder.respond(error))
    }
}

pub(crate) fn token_ref<T>(claims: &Claims<T>) -> TokenRef<'_> {
    TokenRef {
        jti: claims.jti.as_deref(),
        sub: claims.sub.as_deref(),
        iat: claims.iat,
        exp: claims.exp,
        sid: claims.sid.as_deref(),
    }
}
