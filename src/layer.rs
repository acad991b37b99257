//! [`JwtAuthLayer`] and its service [`JwtAuth`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Extensions, HeaderMap, Method, Request, Response, header};
use http_body::Body;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::authentication::Authentication;
use crate::body::AuthBody;
use crate::claims::{AuthStatus, ClaimSet, Claims, NoCustomClaims};
use crate::dpop::{DpopConfig, ProofCheck, VerifiedProof};
use crate::error::{
    AuthError, AuthErrorKind, ConfigError, DpopChallenge, ErrorResponder, InvalidDpopProof,
    InvalidToken, Rfc6750Responder, Scheme, log_rejection,
};
use crate::future::{PendingCheck, ResponseFuture};
use crate::logout::Logout;
use crate::mtls::CertificateBinding;
use crate::revocation::BoxFuture;
use crate::revocation::{MemoryStore, RevocationCheck, RevocationStatus, RevocationStore};
use crate::source::{AccessCookie, TokenSource, bearer_syntax_error, extract_with_source};
use crate::verifier::{Verification, Verifier};

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
    responder: Arc<dyn ErrorResponder>,
    mode: Mode,
    allow_preflight: bool,
    lenient_cookies: bool,
    /// The revocation store the layer checks and the access cookie (if any), as the
    /// [`Logout`] every request's [`Authentication`] shares.
    logout: Arc<Logout>,
    /// DPoP (RFC 9449): how `Authorization: DPoP` proofs are checked, and what challenges
    /// announce.
    dpop: Option<(Arc<DpopConfig>, Arc<DpopChallenge>)>,
    /// Client-certificate-bound tokens (RFC 8705): where the request's certificate is found.
    certificates: Option<Arc<CertificateBinding>>,
}

impl Config {
    fn store(&self) -> &Arc<dyn RevocationStore> {
        self.logout.store()
    }

    fn pass<T: 'static>(&self, status: AuthStatus) -> Authentication {
        Authentication::without_claims::<T>(status, Some(self.logout.clone()))
            .with_challenge(Scheme::Bearer, self.dpop.as_ref().map(|(_, c)| c))
    }

    /// `error` as this layer answers it: on the challenge of the scheme the request used,
    /// beside a `DPoP` challenge when DPoP is accepted.
    fn decorate(&self, error: AuthError, scheme: Scheme) -> AuthError {
        error
            .with_scheme(scheme)
            .with_dpop(self.dpop.as_ref().map(|(_, challenge)| challenge))
    }

    /// The DPoP proof of a request that used `Authorization: DPoP <token>`: exactly one
    /// `DPoP` header, checked against the request and the token.
    fn proof(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        token: &str,
    ) -> ProofCheck {
        let Some((dpop, _)) = &self.dpop else {
            // Not reached: without DPoP the layer reads no DPoP scheme.
            return ProofCheck::Ready(Err(AuthError::new(AuthErrorKind::InvalidDpopProof(
                InvalidDpopProof::Missing,
            ))));
        };
        let mut values = headers.get_all("dpop").iter();
        let refuse =
            |why| ProofCheck::Ready(Err(AuthError::new(AuthErrorKind::InvalidDpopProof(why))));
        let (Some(value), None) = (values.next(), values.next()) else {
            let none = headers.get("dpop").is_none();
            return refuse(if none {
                InvalidDpopProof::Missing
            } else {
                InvalidDpopProof::Multiple
            });
        };
        let Ok(proof) = value.to_str() else {
            return refuse(InvalidDpopProof::Malformed);
        };
        dpop.check(proof, method, uri, headers, Some(token))
    }

    /// Whether the token's binding (`cnf`) is honoured by the request: a DPoP-bound token
    /// with a proof by its key, an unbound one without, a certificate-bound one with its
    /// certificate.
    fn check_binding<T>(
        &self,
        claims: &ClaimSet<T>,
        proof: Option<&VerifiedProof>,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<(), AuthError> {
        let cnf = claims.cnf.as_ref();
        match (cnf.and_then(|c| c.jkt.as_deref()), proof) {
            (Some(jkt), Some(proof)) => {
                use subtle::ConstantTimeEq as _;
                if !bool::from(jkt.as_bytes().ct_eq(proof.jkt().as_bytes())) {
                    return Err(AuthError::new(AuthErrorKind::InvalidDpopProof(
                        InvalidDpopProof::KeyMismatch,
                    )));
                }
            }
            // RFC 9449 §7.2: a bound token is never accepted as a bearer token.
            (Some(_), None) => return Err(AuthError::invalid_token(InvalidToken::BoundToDpopKey)),
            (None, Some(_)) => return Err(AuthError::invalid_token(InvalidToken::NotDpopBound)),
            (None, None) => {}
        }
        if let Some(x5t) = cnf.and_then(|c| c.x5t_s256.as_deref()) {
            match &self.certificates {
                Some(binding) => binding.check(headers, extensions, x5t)?,
                // Fail closed: a layer that cannot see certificates cannot honour the binding.
                None => return Err(AuthError::invalid_token(InvalidToken::CertificateMismatch)),
            }
        }
        Ok(())
    }
}

/// What an asynchronous check needs of the request besides the token: its proof, and, for
/// certificate-bound tokens, its headers and extensions (copied only when the layer checks
/// certificates).
struct RequestContext {
    scheme: Scheme,
    method: Method,
    uri: http::Uri,
    /// The request's headers when a DPoP proof or a certificate is still to be checked.
    headers: HeaderMap,
    extensions: Extensions,
}

impl RequestContext {
    fn of<B>(config: &Config, req: &Request<B>, scheme: Scheme) -> Self {
        let headers = if config.certificates.is_some() || scheme == Scheme::Dpop {
            req.headers().clone()
        } else {
            HeaderMap::new()
        };
        let extensions = if config.certificates.is_some() {
            req.extensions().clone()
        } else {
            Extensions::new()
        };
        Self {
            scheme,
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers,
            extensions,
        }
    }
}

/// Authenticates requests with a JWT and puts its [`Claims<T>`] into the request extensions.
///
/// For each request the layer:
/// 1. reads the token from the configured [`TokenSource`]s (default: `Authorization: Bearer`);
/// 2. verifies it with the [`Verifier`] (size cap, `kid`, pinned `alg`, signature, times,
///    `iss`, `aud`, required claims);
/// 3. only then asks the [`RevocationStore`] whether it was revoked;
/// 4. inserts one [`Authentication`] (status [`AuthStatus::Authenticated`], the shared
///    [`Claims<T>`], the layer's [`Logout`]) and calls the inner service.
///
/// Every request the layer lets through carries an [`Authentication`], anonymous ones too;
/// axum handlers take `Claims<T>`, `Option<Claims<T>>`, `AuthStatus` or `Logout` as
/// extractors, other code calls [`Claims::from_extensions`].
///
/// Any failure answers through the [`ErrorResponder`] (RFC 6750 by default) without calling
/// the inner service. In [optional](Self::optional) mode a request without a token passes with
/// [`AuthStatus::Anonymous`]; a request with a bad token is still refused.
///
/// # CORS
///
/// Every request needs a token, CORS preflights (`OPTIONS` + `Access-Control-Request-Method`)
/// included: browsers send preflights without credentials, so they are refused with 401. Put
/// `tower-http`'s `CorsLayer` *outside* this layer; it answers preflights itself and the
/// handlers behind this layer never see them:
///
/// ```
/// use http::{HeaderValue, Method, Request, Response, StatusCode, header};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_http::cors::CorsLayer;
/// use tower_token_auth::{JwtAuthLayer, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let svc = ServiceBuilder::new()
///     .layer(
///         CorsLayer::new()
///             .allow_origin(HeaderValue::from_static("https://app.example"))
///             .allow_methods([Method::GET, Method::DELETE])
///             .allow_headers([header::AUTHORIZATION]),
///     )
///     .layer(JwtAuthLayer::new(keys.verifier()))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::from("deleted")))
///     }));
///
/// // The preflight is answered by CorsLayer; the handler does not run.
/// let preflight = Request::builder()
///     .method(Method::OPTIONS)
///     .header(header::ORIGIN, "https://app.example")
///     .header(header::ACCESS_CONTROL_REQUEST_METHOD, "DELETE")
///     .body(String::new())
///     .unwrap();
/// let res = svc.clone().oneshot(preflight).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// assert!(res.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
///
/// // The actual request still needs its token.
/// let delete = Request::builder()
///     .method(Method::DELETE)
///     .header(header::ORIGIN, "https://app.example")
///     .body(String::new())
///     .unwrap();
/// assert_eq!(svc.oneshot(delete).await.unwrap().status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
///
/// [`allow_cors_preflight(true)`](Self::allow_cors_preflight) passes preflights to the inner
/// service unauthenticated instead, marked [`AuthStatus::Preflight`]; only for inner services
/// that answer every `OPTIONS` themselves without doing anything else.
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use http::{Request, Response, StatusCode, header};
/// use tower_token_auth::{Claims, JwtAuthLayer, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let svc = ServiceBuilder::new()
///     .layer(JwtAuthLayer::new(keys.verifier()))
///     .service(service_fn(|req: Request<String>| async move {
///         let claims: Claims = Claims::from_extensions(req.extensions()).unwrap();
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
            .field("store", self.store())
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
                logout: Arc::new(Logout::new(Arc::new(MemoryStore::new()), None)),
                responder: Arc::new(Rfc6750Responder::default()),
                mode: Mode::Required,
                allow_preflight: false,
                lenient_cookies: false,
                dpop: None,
                certificates: None,
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
        c.logout = Arc::new(Logout::new(c.store().clone(), Some(cookie)));
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
        let c = self.config_mut();
        c.logout = Arc::new(Logout::new(store, c.logout.cookie().cloned()));
        self
    }

    /// The store this layer checks, to share with logout handlers.
    pub fn revocation_store(&self) -> Arc<dyn RevocationStore> {
        self.config.store().clone()
    }

    /// A [`Logout`] helper bound to this layer's store and cookie.
    pub fn logout(&self) -> Logout {
        Logout::clone(&self.config.logout)
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

    /// Whether CORS preflight requests (`OPTIONS` + `Access-Control-Request-Method`) pass to
    /// the inner service unauthenticated, marked [`AuthStatus::Preflight`] (default false:
    /// they are refused like any request without a token).
    ///
    /// Prefer `tower-http`'s `CorsLayer` outside this layer, which answers preflights before
    /// they reach it. Turn this on only when the inner service answers every `OPTIONS`
    /// itself, since a handler that ignores the method would run for anyone.
    /// [`RequireScopeLayer`](crate::RequireScopeLayer) lets through what this let through.
    pub fn allow_cors_preflight(mut self, allow: bool) -> Self {
        self.config_mut().allow_preflight = allow;
        self
    }

    /// Accept DPoP-bound tokens (RFC 9449) beside bearer tokens: `Authorization: DPoP
    /// <token>` with a `DPoP` proof header, checked by `dpop` (signature by the embedded key,
    /// `htm`/`htu` against this request, `iat` window, `ath`, `jti` replay), and the token's
    /// `cnf.jkt` equal to the proof key's thumbprint. A DPoP-bound token sent as `Bearer` (or
    /// in a cookie) is refused, and so is an unbound token sent as `DPoP`. Challenges carry
    /// `DPoP algs="…"` beside `Bearer`. See `docs/dpop.md`.
    pub fn with_dpop(self, dpop: DpopConfig) -> Self {
        self.dpop_mode(dpop, true)
    }

    /// Accept DPoP-bound tokens only: like [`with_dpop`](Self::with_dpop), and bearer tokens
    /// (header or cookie) are refused, with a `DPoP` challenge alone.
    pub fn require_dpop(self, dpop: DpopConfig) -> Self {
        self.dpop_mode(dpop, false)
    }

    fn dpop_mode(mut self, dpop: DpopConfig, bearer: bool) -> Self {
        let challenge = DpopChallenge {
            algs: dpop.algs_param(),
            bearer,
        };
        let c = self.config_mut();
        c.sources.retain(|s| *s != TokenSource::AuthorizationDpop);
        if !bearer {
            c.sources
                .retain(|s| matches!(s, TokenSource::AuthorizationDpop));
        }
        // Read first: a request has one Authorization header, of one scheme.
        c.sources.insert(0, TokenSource::AuthorizationDpop);
        c.dpop = Some((Arc::new(dpop), Arc::new(challenge)));
        self
    }

    /// Honour certificate-bound tokens (RFC 8705 `cnf.x5t#S256`) with the client certificate
    /// found as `binding` says. Without this, every certificate-bound token is refused (the
    /// layer cannot see certificates, so it cannot honour the binding).
    pub fn with_certificate_binding(mut self, binding: CertificateBinding) -> Self {
        self.config_mut().certificates = Some(Arc::new(binding));
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
            req.extensions_mut()
                .insert(config.pass::<T>(AuthStatus::Preflight));
            return ResponseFuture::calling(self.inner.call(req));
        }
        let found = extract_with_source(
            req.headers(),
            &config.sources,
            config.verifier.max_token_len(),
        );
        let scheme = match &found {
            Ok(Some((_, TokenSource::AuthorizationDpop))) => Scheme::Dpop,
            _ => Scheme::Bearer,
        };
        // The token string, for the proof's `ath` (read only after the token verified, so
        // that nobody without a valid token fills the replay store).
        let presented = match &found {
            Ok(Some((token, _))) => Some(*token),
            _ => None,
        };
        let (claims, lenient) = match decide::<T>(config, found) {
            Decision::Pass(status) => {
                req.extensions_mut().insert(config.pass::<T>(status));
                return ResponseFuture::calling(self.inner.call(req));
            }
            Decision::Reject(e) => return self.reject(&config.decorate(e, scheme)),
            Decision::Wait {
                verification,
                token,
                source,
            } => {
                let ctx = RequestContext::of(config, &req, scheme);
                let check =
                    decide_later::<T>(self.config.clone(), verification, token, source, ctx);
                return self.check_later(check, req);
            }
            Decision::Verified { claims, lenient } => (claims, lenient),
        };
        let mut proof = None;
        if scheme == Scheme::Dpop {
            let token = presented.unwrap_or_default();
            match config.proof(req.method(), req.uri(), req.headers(), token) {
                ProofCheck::Ready(Ok(verified)) => proof = Some(verified),
                ProofCheck::Ready(Err(e)) => return self.reject(&config.decorate(e, scheme)),
                ProofCheck::Pending(pending) => {
                    // The replay store needs I/O: finish once it has answered.
                    let ctx = RequestContext::of(config, &req, scheme);
                    let config = self.config.clone();
                    let check: PendingCheck = Box::pin(async move {
                        let finished = async {
                            let proof = pending.await?;
                            finish(&config, claims, lenient, Some(&proof), &ctx).await
                        }
                        .await;
                        finished.map_err(|e| config.decorate(e, scheme))
                    });
                    return self.check_later(check, req);
                }
            }
        }
        if let Err(e) =
            config.check_binding(&claims, proof.as_ref(), req.headers(), req.extensions())
        {
            return self.reject(&config.decorate(e, scheme));
        }
        let check = config.store().check(&claims.token_ref());
        match check {
            RevocationCheck::Ready(status) => match revocation_decision(status, lenient) {
                Ok(outcome) => {
                    req.extensions_mut()
                        .insert(outcome.authentication(config, claims, scheme));
                    ResponseFuture::calling(self.inner.call(req))
                }
                Err(e) => self.reject(&config.decorate(e, scheme)),
            },
            RevocationCheck::Pending(check) => {
                let config = self.config.clone();
                let check: PendingCheck = Box::pin(async move {
                    let outcome = revocation_decision(check.await, lenient)
                        .map_err(|e| config.decorate(e, scheme))?;
                    Ok(outcome.authentication(&config, claims, scheme))
                });
                self.check_later(check, req)
            }
        }
    }
}

/// What the layer concluded about a request before its revocation check.
enum Decision<T> {
    /// Pass without authentication, marked with this status.
    Pass(AuthStatus),
    /// Refuse with this error.
    Reject(AuthError),
    /// The verification needs I/O (a JWK Set refetch for a new `kid`): wait for it, then
    /// decide on its answer with [`on_verified`].
    Wait {
        /// The verification in flight.
        verification: BoxFuture<'static, Result<Claims<T>, AuthError>>,
        /// The token, owned for the asynchronous path.
        token: String,
        /// Where it was found.
        source: TokenSource,
    },
    /// A verified token, still to be checked for revocation.
    Verified {
        /// Its claims.
        claims: Claims<T>,
        /// A revoked token counts as no token (lenient cookie mode).
        lenient: bool,
    },
}

/// The decision over what the request carries. A verification that must wait comes back as
/// [`Decision::Wait`], and its answer goes through [`on_verified`] like a ready one, so every
/// rule (optional mode, lenient cookies, `b64token` syntax) holds however the key was found.
fn decide<T>(config: &Config, found: Result<Option<(&str, &TokenSource)>, AuthError>) -> Decision<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let (token, source) = match found {
        Ok(Some(found)) => found,
        Ok(None) if config.mode == Mode::Optional => return Decision::Pass(AuthStatus::Anonymous),
        Ok(None) => return Decision::Reject(AuthError::missing_token()),
        Err(e) => return Decision::Reject(e),
    };
    match config.verifier.verification::<T>(token) {
        Verification::Ready(answer) => on_verified(config, token, source, answer),
        Verification::Pending(verification) => Decision::Wait {
            verification,
            token: token.to_owned(),
            source: source.clone(),
        },
    }
}

/// What a verification's answer means for the request.
fn on_verified<T>(
    config: &Config,
    token: &str,
    source: &TokenSource,
    answer: Result<Claims<T>, AuthError>,
) -> Decision<T> {
    let lenient = config.lenient_cookies && matches!(source, TokenSource::Cookie(_));
    match answer {
        Ok(claims) => Decision::Verified { claims, lenient },
        // A bad cookie in lenient mode is no cookie (see optional_ignoring_bad_cookies).
        Err(e) if lenient && matches!(e.kind(), AuthErrorKind::InvalidToken(_)) => {
            log_rejection(&e);
            Decision::Pass(AuthStatus::Anonymous)
        }
        Err(e) => Decision::Reject(match source {
            TokenSource::AuthorizationBearer => bearer_syntax_error(token).unwrap_or(e),
            _ => e,
        }),
    }
}

/// How a verified request goes on after its revocation check.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Authenticated: the claims go into the request.
    Authenticated,
    /// A revoked cookie token in lenient mode: the request passes as anonymous.
    Anonymous,
}

impl Outcome {
    /// What goes into the request: one value, however it passed.
    fn authentication<T: Send + Sync + 'static>(
        self,
        config: &Config,
        claims: Claims<T>,
        scheme: Scheme,
    ) -> Authentication {
        match self {
            Self::Authenticated => Authentication::with_claims(
                AuthStatus::Authenticated,
                claims,
                Some(config.logout.clone()),
            )
            .with_challenge(scheme, config.dpop.as_ref().map(|(_, c)| c)),
            Self::Anonymous => config.pass::<T>(AuthStatus::Anonymous),
        }
    }
}

/// What a revocation answer means for the request. A store that cannot answer refuses the
/// request (503), in every mode.
fn revocation_decision(
    status: Result<RevocationStatus, crate::revocation::RevocationError>,
    lenient: bool,
) -> Result<Outcome, AuthError> {
    match status {
        Ok(RevocationStatus::Active) => Ok(Outcome::Authenticated),
        Ok(RevocationStatus::Revoked) if lenient => {
            log_rejection(&AuthError::invalid_token(InvalidToken::Revoked));
            Ok(Outcome::Anonymous)
        }
        Ok(RevocationStatus::Revoked) => Err(AuthError::invalid_token(InvalidToken::Revoked)),
        Err(e) => {
            tracing::warn!(target: "tower_token_auth", error = %e, "revocation check failed; refusing the request");
            Err(AuthError::revocation_unavailable())
        }
    }
}

/// The waiting path: the verification's answer, then the same decision and revocation check
/// as the synchronous path.
fn decide_later<T>(
    config: Arc<Config>,
    verification: BoxFuture<'static, Result<Claims<T>, AuthError>>,
    token: String,
    source: TokenSource,
    ctx: RequestContext,
) -> PendingCheck
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    Box::pin(async move {
        let scheme = ctx.scheme;
        let decided = async {
            let answer = verification.await;
            let (claims, lenient) = match on_verified(&config, &token, &source, answer) {
                Decision::Pass(status) => return Ok(config.pass::<T>(status)),
                Decision::Reject(e) => return Err(e),
                // on_verified never asks to wait.
                Decision::Wait { .. } => {
                    return Err(AuthError::invalid_token(InvalidToken::UnknownKey));
                }
                Decision::Verified { claims, lenient } => (claims, lenient),
            };
            // The proof after the token, as on the synchronous path.
            let proof = match scheme {
                Scheme::Dpop => Some(
                    match config.proof(&ctx.method, &ctx.uri, &ctx.headers, &token) {
                        ProofCheck::Ready(r) => r?,
                        ProofCheck::Pending(f) => f.await?,
                    },
                ),
                _ => None,
            };
            finish(&config, claims, lenient, proof.as_ref(), &ctx).await
        }
        .await;
        decided.map_err(|e| config.decorate(e, scheme))
    })
}

/// The end of an asynchronous check: the binding, then revocation.
async fn finish<T: Send + Sync + 'static>(
    config: &Config,
    claims: Claims<T>,
    lenient: bool,
    proof: Option<&VerifiedProof>,
    ctx: &RequestContext,
) -> Result<Authentication, AuthError> {
    config.check_binding(&claims, proof, &ctx.headers, &ctx.extensions)?;
    let status = match config.store().check(&claims.token_ref()) {
        RevocationCheck::Ready(status) => status,
        RevocationCheck::Pending(f) => f.await,
    };
    let outcome = revocation_decision(status, lenient)?;
    Ok(outcome.authentication(config, claims, ctx.scheme))
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
