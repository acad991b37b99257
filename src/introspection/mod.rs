//! Opaque access tokens, verified by the authorization server's token introspection endpoint
//! (RFC 7662), with the answers cached.
//!
//! An [`Introspector`] is given to a [`Verifier`](crate::Verifier)
//! ([`VerifierBuilder::introspect_opaque_tokens`](crate::VerifierBuilder::introspect_opaque_tokens)
//! or [`introspect_all_tokens`](crate::VerifierBuilder::introspect_all_tokens)), so
//! [`JwtAuthLayer`](crate::JwtAuthLayer) treats an introspected token like a JWT: the
//! answer's members become the [`Claims<T>`](crate::Claims), the verifier's issuer, audience,
//! time and required-claim rules apply to them, then the revocation store is checked, and
//! scope guards, DPoP and certificate bindings (`cnf`) work unchanged.
//!
//! - **Client authentication**: [`ClientAuth`] `client_secret_basic`, `client_secret_post`
//!   or `private_key_jwt` (RFC 7523).
//! - **Cache**: an active answer is kept until the token's `exp` or the configured maximum
//!   ([`IntrospectorBuilder::max_cache_ttl`], 5 minutes by default), whichever comes first;
//!   `exp` and `nbf` are checked again on every hit. An inactive answer is kept briefly
//!   ([`IntrospectorBuilder::negative_cache_ttl`], 10 s). Entries are keyed by the SHA-256
//!   of the token: the token itself is never stored. Memory is bounded
//!   ([`IntrospectorBuilder::max_cache_entries`]).
//! - **One request in flight per token**: however many requests wait for the same new token,
//!   the endpoint is asked once and every one of them gets that answer.
//! - **Fail closed**: the endpoint down, slow, answering an error status or something that
//!   is not an introspection response → 503 `temporarily_unavailable` (and a warning in the
//!   log), never an accept. Such failures are not cached.
//! - **Access tokens only**: the answer's `token_type` must be `Bearer` or `DPoP`; a token
//!   whose answer has none (node `oidc-provider` answers so for refresh tokens) is refused
//!   unless [`IntrospectorBuilder::accept_missing_token_type`] says otherwise.
//!
//! A revocation recorded in the layer's revocation store wins over a cached active answer.
//! Answers without `jti` (`oidc-provider` leaves it out for opaque tokens, whose value is
//! their id) get one: `sha256:` and the base64url SHA-256 of the token, so that
//! [`Logout`](crate::Logout) can revoke the token like a JWT.
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::StatusCode;
//! use tower_token_auth::introspection::{ClientAuth, IntrospectionResponse, Introspector};
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # fn run() -> Result<(), tower_token_auth::ConfigError> {
//! // Any HTTP client: here one that answers "active" for every token.
//! let transport = |_request| async {
//!     Ok(IntrospectionResponse::new(
//!         StatusCode::OK,
//!         Bytes::from_static(br#"{"active":true,"token_type":"Bearer","sub":"alice","exp":4102444800,"iss":"https://auth.example","aud":"orders"}"#),
//!     ))
//! };
//! let introspector = Introspector::builder(
//!     "https://auth.example/introspect",
//!     ClientAuth::secret_basic("orders-api", "s3cret"),
//! )?
//! .transport(transport)
//! .max_cache_ttl(Duration::from_secs(60))
//! .build()?;
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer("https://auth.example")
//!     .audience("orders")
//!     .introspect_opaque_tokens(introspector)
//!     .build()?;
//! # let _ = verifier; Ok(()) }
//! ```

mod cache;
#[cfg(feature = "http-client")]
mod http_transport;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::claims::Registered;
use crate::error::{AuthError, AuthErrorKind, ConfigError, InvalidToken};
use crate::issuer::{SigningKey, random_id};
use crate::keys::remote::BoxError;
use crate::keys::url::check_url;
use crate::revocation::{BoxFuture, now_secs};

pub(crate) use cache::{Answer, Cache, TokenKey};
#[cfg(feature = "http-client")]
pub use http_transport::HttpTransport;

/// The default of [`IntrospectorBuilder::max_cache_ttl`].
pub const DEFAULT_MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// The default of [`IntrospectorBuilder::negative_cache_ttl`].
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(10);
/// The default of [`IntrospectorBuilder::max_cache_entries`].
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 100_000;
/// The largest introspection answer read (bytes); a longer one is a failure of the endpoint.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One introspection request, ready to send: `POST url` with these headers and this
/// `application/x-www-form-urlencoded` body (which holds the token: never log it).
#[derive(Clone)]
#[non_exhaustive]
pub struct IntrospectionRequest {
    /// The introspection endpoint.
    pub url: Uri,
    /// `Content-Type`, `Accept` and, for `client_secret_basic`, `Authorization`.
    pub headers: HeaderMap,
    /// The form: `token`, `token_type_hint=access_token` and the client authentication.
    pub body: String,
}

impl fmt::Debug for IntrospectionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the token nor the client's secret.
        f.debug_struct("IntrospectionRequest")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What the endpoint answered: the status and the body (at most [`MAX_RESPONSE_BYTES`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IntrospectionResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl IntrospectionResponse {
    /// An answer with this status and body.
    pub fn new(status: StatusCode, body: Bytes) -> Self {
        Self { status, body }
    }
}

/// Sends introspection requests: the built-in `HttpTransport` (feature `http-client`), or
/// any async closure `Fn(IntrospectionRequest) -> Future<Output = Result<IntrospectionResponse,
/// BoxError>>` over the application's own client. It must not follow redirects with the
/// request's body (the token and the client's credentials).
pub trait IntrospectionTransport: Send + Sync + 'static {
    /// Sends `request` and returns the answer.
    fn send(
        &self,
        request: IntrospectionRequest,
    ) -> BoxFuture<'static, Result<IntrospectionResponse, BoxError>>;
}

impl<F, Fut> IntrospectionTransport for F
where
    F: Fn(IntrospectionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<IntrospectionResponse, BoxError>> + Send + 'static,
{
    fn send(
        &self,
        request: IntrospectionRequest,
    ) -> BoxFuture<'static, Result<IntrospectionResponse, BoxError>> {
        Box::pin(self(request))
    }
}

/// How the resource server authenticates to the introspection endpoint (RFC 7662 §2.1).
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: `Authorization: Basic` (RFC 6749 §2.3.1, the id and secret
    /// form-urlencoded first).
    SecretBasic {
        /// The client id.
        client_id: String,
        /// The client secret.
        secret: String,
    },
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    SecretPost {
        /// The client id.
        client_id: String,
        /// The client secret.
        secret: String,
    },
    /// `private_key_jwt` (RFC 7523 §2.2): a client assertion signed with this key, new for
    /// every request (`iss` = `sub` = client id, `aud`, `jti`, `iat`, `exp` 60 s later).
    PrivateKeyJwt {
        /// The client id.
        client_id: String,
        /// The key registered for the client.
        key: Arc<SigningKey>,
        /// The assertion's `aud`: the authorization server's issuer identifier (default:
        /// the endpoint URL; `Introspector::from_discovery` sets the issuer).
        audience: Option<String>,
    },
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, client_id) = match self {
            Self::SecretBasic { client_id, .. } => ("client_secret_basic", client_id),
            Self::SecretPost { client_id, .. } => ("client_secret_post", client_id),
            Self::PrivateKeyJwt { client_id, .. } => ("private_key_jwt", client_id),
        };
        f.debug_struct("ClientAuth")
            .field("method", &method)
            .field("client_id", client_id)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// `client_secret_basic`.
    pub fn secret_basic(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::SecretBasic {
            client_id: client_id.into(),
            secret: secret.into(),
        }
    }

    /// `client_secret_post`.
    pub fn secret_post(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::SecretPost {
            client_id: client_id.into(),
            secret: secret.into(),
        }
    }

    /// `private_key_jwt` with an asymmetric key (an HMAC key is refused by
    /// [`IntrospectorBuilder::build`]: that would be `client_secret_jwt`).
    pub fn private_key_jwt(client_id: impl Into<String>, key: SigningKey) -> Self {
        Self::PrivateKeyJwt {
            client_id: client_id.into(),
            key: Arc::new(key),
            audience: None,
        }
    }

    fn client_id(&self) -> &str {
        match self {
            Self::SecretBasic { client_id, .. }
            | Self::SecretPost { client_id, .. }
            | Self::PrivateKeyJwt { client_id, .. } => client_id,
        }
    }
}

/// Asks an authorization server whether tokens are active (RFC 7662), with a cache. Cheap to
/// clone; clones share the cache. See the [module docs](self).
#[derive(Clone)]
pub struct Introspector {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Uri,
    auth: ClientAuth,
    transport: Arc<dyn IntrospectionTransport>,
    max_ttl: u64,
    negative_ttl: u64,
    accept_missing_token_type: bool,
    cache: Cache,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.inner.endpoint)
            .field("auth", &self.inner.auth)
            .field("max_ttl", &self.inner.max_ttl)
            .field("negative_ttl", &self.inner.negative_ttl)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Introspector`].
#[derive(Clone)]
pub struct IntrospectorBuilder {
    endpoint: Uri,
    auth: ClientAuth,
    transport: Option<Arc<dyn IntrospectionTransport>>,
    max_ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
    accept_missing_token_type: bool,
}

impl fmt::Debug for IntrospectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectorBuilder")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// Starts a builder for the endpoint at `endpoint` (`https`, or `http` to a loopback
    /// host), authenticating with `auth`.
    pub fn builder(endpoint: &str, auth: ClientAuth) -> Result<IntrospectorBuilder, ConfigError> {
        Ok(IntrospectorBuilder {
            endpoint: check_url(endpoint)?,
            auth,
            transport: None,
            max_ttl: DEFAULT_MAX_CACHE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
            max_entries: DEFAULT_MAX_CACHE_ENTRIES,
            accept_missing_token_type: false,
        })
    }

    /// Starts a builder for the introspection endpoint that `metadata` names, sending with
    /// the client `metadata` was fetched with. A `private_key_jwt` assertion gets the issuer
    /// as its audience.
    #[cfg(feature = "http-client")]
    pub fn from_discovery(
        metadata: &crate::keys::discovery::Discovery,
        auth: ClientAuth,
    ) -> Result<IntrospectorBuilder, ConfigError> {
        let endpoint = metadata.introspection_endpoint().ok_or_else(|| {
            ConfigError::new(format!(
                "the metadata of `{}` names no introspection_endpoint",
                metadata.issuer()
            ))
        })?;
        let auth = match auth {
            ClientAuth::PrivateKeyJwt {
                client_id,
                key,
                audience: None,
            } => ClientAuth::PrivateKeyJwt {
                client_id,
                key,
                audience: Some(metadata.issuer().to_owned()),
            },
            other => other,
        };
        let mut builder = Self::builder(&endpoint.to_string(), auth)?;
        if let Some(client) = metadata.http_client() {
            builder.transport = Some(Arc::new(HttpTransport::with_client(client.clone())));
        }
        Ok(builder)
    }

    /// The endpoint asked.
    pub fn endpoint(&self) -> &Uri {
        &self.inner.endpoint
    }

    /// How many answers the cache holds (active and inactive).
    pub fn cached_entries(&self) -> usize {
        self.inner.cache.len()
    }

    /// The cached answer for `key`, if any, as of `now`.
    pub(crate) fn cached(&self, key: &TokenKey, now: u64) -> Option<Answer> {
        self.inner.cache.get(key, now)
    }

    /// The answer for `token`: from the cache, or from the endpoint, with one request in
    /// flight per token.
    pub(crate) async fn answer(&self, token: &str, key: TokenKey) -> Result<Answer, AuthError> {
        let this = self.clone();
        let token = token.to_owned();
        self.inner
            .cache
            .single_flight(key, now_secs, move || async move { this.ask(&token).await })
            .await
    }

    /// One request to the endpoint, and what its answer means, with how long to cache it.
    async fn ask(&self, token: &str) -> Result<(Answer, u64), AuthError> {
        let inner = &*self.inner;
        let request = self.request(token).map_err(|e| {
            tracing::warn!(target: "tower_token_auth", error = %e, "cannot build the introspection request");
            AuthError::new(AuthErrorKind::IntrospectionUnavailable)
        })?;
        let unavailable = |why: &dyn fmt::Display| {
            tracing::warn!(
                target: "tower_token_auth",
                endpoint = %inner.endpoint,
                error = %why,
                "token introspection failed; refusing the token (503)"
            );
            AuthError::new(AuthErrorKind::IntrospectionUnavailable)
        };
        let response = inner
            .transport
            .send(request)
            .await
            .map_err(|e| unavailable(&e))?;
        if response.status != StatusCode::OK {
            return Err(unavailable(&format_args!(
                "the endpoint answered {}",
                response.status.as_u16()
            )));
        }
        if response.body.len() > MAX_RESPONSE_BYTES {
            return Err(unavailable(&"the answer is too large"));
        }
        let now = now_secs();
        let answer = self
            .read(token, response.body)
            .map_err(|e| unavailable(&e))?;
        let until = match &answer {
            Answer::Active(active) => {
                let max = now.saturating_add(inner.max_ttl);
                active.registered.exp.map_or(max, |exp| exp.min(max))
            }
            Answer::Inactive | Answer::Invalid(_) => now.saturating_add(inner.negative_ttl),
        };
        Ok((answer, until))
    }

    /// The request for `token`.
    fn request(&self, token: &str) -> Result<IntrospectionRequest, String> {
        let inner = &*self.inner;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("token_type_hint", "access_token");
        let mut headers = HeaderMap::new();
        match &inner.auth {
            ClientAuth::SecretBasic { client_id, secret } => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let basic = STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
                let mut value =
                    HeaderValue::from_str(&format!("Basic {basic}")).map_err(|e| e.to_string())?;
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
            ClientAuth::SecretPost { client_id, secret } => {
                form.append_pair("client_id", client_id);
                form.append_pair("client_secret", secret);
            }
            ClientAuth::PrivateKeyJwt {
                client_id,
                key,
                audience,
            } => {
                let now = now_secs();
                let aud = audience
                    .clone()
                    .unwrap_or_else(|| inner.endpoint.to_string());
                let claims = serde_json::json!({
                    "iss": client_id, "sub": client_id, "aud": aud,
                    "jti": random_id::<16>(), "iat": now, "exp": now + 60,
                });
                let assertion = key.sign(&claims, Some("JWT")).map_err(|e| e.to_string())?;
                form.append_pair("client_id", client_id);
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", &assertion);
            }
        }
        Ok(IntrospectionRequest {
            url: inner.endpoint.clone(),
            headers,
            body: form.finish(),
        })
    }

    /// What an answer body means.
    fn read(&self, token: &str, body: Bytes) -> Result<Answer, String> {
        #[derive(Deserialize)]
        struct Status {
            active: bool,
            #[serde(default)]
            token_type: Option<String>,
        }
        let status: Status = serde_json::from_slice(&body)
            .map_err(|e| format!("not an introspection response: {e}"))?;
        if !status.active {
            return Ok(Answer::Inactive);
        }
        let access = match status.token_type.as_deref() {
            Some(t) => t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop"),
            None => self.inner.accept_missing_token_type,
        };
        if !access {
            tracing::debug!(
                target: "tower_token_auth",
                token_type = ?status.token_type,
                "introspection: active, but not an access token"
            );
            return Ok(Answer::Inactive);
        }
        let mut registered: Registered = match serde_json::from_slice(&body) {
            Ok(r) => r,
            // An active token whose members have the wrong types is refused, not a failure
            // of the endpoint: another request would get the same answer.
            Err(e) => return Ok(Answer::invalid(e.to_string())),
        };
        if registered.jti.is_none() {
            registered.jti = Some(format!("sha256:{}", URL_SAFE_NO_PAD.encode(sha256(token))));
        }
        Ok(Answer::active(registered, body))
    }

    /// The cache key of `token`.
    pub(crate) fn key(token: &str) -> TokenKey {
        TokenKey::new(sha256(token))
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl IntrospectorBuilder {
    /// The client that sends the requests (default, with feature `http-client`: the
    /// built-in `HttpTransport`).
    pub fn transport<T: IntrospectionTransport>(mut self, transport: T) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// The longest an active answer is cached (default 5 minutes); never past the token's
    /// `exp`. A token revoked at the authorization server (not in this crate's revocation
    /// store) is accepted until its cached answer ends: this is the bound on that delay.
    /// `Duration::ZERO` turns caching of active answers off.
    pub fn max_cache_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long an inactive answer is cached (default 10 s), so that a client retrying a
    /// dead token does not cost a request each time.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most answers kept (default 100,000); when full, expired answers are dropped, then
    /// about half of the rest.
    pub fn max_cache_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// Accept active answers without `token_type` as access tokens (default false: such an
    /// answer is refused, since node `oidc-provider`, for one, answers so for refresh
    /// tokens). Turn on only for an authorization server that introspects access tokens
    /// alone, or never omits `token_type` for them.
    pub fn accept_missing_token_type(mut self, accept: bool) -> Self {
        self.accept_missing_token_type = accept;
        self
    }

    /// Builds the introspector.
    pub fn build(self) -> Result<Introspector, ConfigError> {
        if self.auth.client_id().is_empty() {
            return Err(ConfigError::new("the introspection client id is empty"));
        }
        if let ClientAuth::PrivateKeyJwt { key, .. } = &self.auth
            && matches!(
                key.algorithm(),
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            )
        {
            return Err(ConfigError::new(
                "private_key_jwt needs an asymmetric key (an HMAC key would be client_secret_jwt)",
            ));
        }
        if self.max_entries == 0 {
            return Err(ConfigError::new("max_cache_entries must be at least 1"));
        }
        let transport = match self.transport {
            Some(t) => t,
            None => default_transport()?,
        };
        Ok(Introspector {
            inner: Arc::new(Inner {
                endpoint: self.endpoint,
                auth: self.auth,
                transport,
                max_ttl: self.max_ttl.as_secs(),
                negative_ttl: self.negative_ttl.as_secs(),
                accept_missing_token_type: self.accept_missing_token_type,
                cache: Cache::new(self.max_entries),
            }),
        })
    }
}

#[cfg(feature = "http-client")]
fn default_transport() -> Result<Arc<dyn IntrospectionTransport>, ConfigError> {
    Ok(Arc::new(HttpTransport::new()?))
}

#[cfg(not(feature = "http-client"))]
fn default_transport() -> Result<Arc<dyn IntrospectionTransport>, ConfigError> {
    Err(ConfigError::new(
        "no introspection transport: give one with IntrospectorBuilder::transport, or enable the `http-client` feature",
    ))
}

/// Whether `token` is opaque to this crate: not a JWS in compact form (three segments).
pub(crate) fn is_opaque(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() != 2
}

/// The error of an answer that is not for an acceptable token.
pub(crate) fn inactive() -> AuthError {
    AuthError::invalid_token(InvalidToken::Inactive)
}
