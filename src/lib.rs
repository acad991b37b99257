//! Tower middleware and axum extractors for token authentication.
//!
//! [`JwtAuthLayer`] wraps any `tower::Service<http::Request<B>>`: it reads a token from
//! `Authorization: Bearer …` or a named cookie (never from the query string), verifies it with
//! [`jsonwebtoken`] against a [`KeySet`] (algorithm pinned per key, keys by `kid`,
//! `exp`/`nbf`/`iss`/`aud`, leeway, required claims), checks a [`RevocationStore`], and puts
//! typed [`Claims<T>`] into the request extensions. Failures answer as RFC 6750 says:
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"…`, 400 `invalid_request`,
//! 403 `insufficient_scope`.
//!
//! [`TokenIssuer`] mints access tokens (random `jti`, `iat`, `exp`), and [`Logout`] revokes
//! them, one by one or all of a user's at once.
//!
//! Around that:
//!
//! - [`TokenLifecycle`] and [`endpoint`]: access + refresh token pairs, rotation with reuse
//!   detection (RFC 9700), the RFC 6749 refresh grant and RFC 7009 revocation as tower
//!   services, logout everywhere, cookie delivery for browsers. Stores in [`refresh`].
//! - [`revocation`]: the store the layer checks — in memory, or Redis shared by many
//!   instances with no round trip per request and a fail-closed policy.
//! - [`remember_me`]: Spring-style remember-me (signed or persistent cookies, theft
//!   detection) as [`remember_me::RememberMeLayer`].
//! - [`keys`]: key sets and where they come from: static keys, JWK Sets as providers publish
//!   them, a remote JWK Set refreshed and rotated without restarts.
//!
//! # Example
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use jsonwebtoken::Algorithm;
//! use tower_token_auth::{
//!     Claims, JwtAuthLayer, KeySet, RequireScopeLayer, SigningKey, TokenIssuer, Verifier,
//!     VerifyingKey,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"a secret of at least thirty-two bytes!";
//! let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, secret)?)?;
//! let verifier = Verifier::builder(keys)
//!     .issuer("my-app")
//!     .audience("my-app")
//!     .require_claims(["exp", "sub"])
//!     .build()?;
//! let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, secret)?)
//!     .issuer("my-app")
//!     .audience("my-app");
//!
//! async fn me(claims: Claims) -> Json<Claims> {
//!     Json(claims)
//! }
//!
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(RequireScopeLayer::new("admin")?)
//!     .route("/me", get(me))
//!     // `route_layer`, not `layer`: only matched routes are authenticated, so an unknown
//!     // path answers 404 rather than 401.
//!     .route_layer(JwtAuthLayer::new(verifier))
//!     .route("/health", get(|| async { "ok" })); // added after the layer: public
//!
//! let token = issuer.issue("alice", "read")?.token; // send as `Authorization: Bearer …`
//! # let _ = (app, token);
//! # Ok(())
//! # }
//! ```
//!
//! Plain tower or hyper code reads `Claims::<T>::from_extensions(req.extensions())` instead of
//! extractors.
//!
//! # Tokens from an identity provider
//!
//! With the `http-client` feature, an issuer URL and an audience are the whole set-up: OpenID
//! Connect discovery (or RFC 8414) finds the JWK Set, which is then refreshed as its
//! `Cache-Control` says, refetched when a token names a new key, and kept through outages
//! (`keys::discovery`, `keys::remote`).
//!
//! ```no_run
//! # #[cfg(feature = "http-client")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tower_token_auth::{JwtAuthLayer, KeySet, Verifier};
//!
//! let verifier = Verifier::builder(KeySet::new())
//!     .audience("api://orders")
//!     .discover("https://login.example.com/realms/acme")
//!     .await?;
//! let layer = JwtAuthLayer::new(verifier);
//! # let _ = layer; Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | `Claims<T>` / `Option<Claims<T>>` extractors, `IntoResponse` for errors |
//! | `redis` | yes | Redis stores: `revocation::RedisRevocationStore` (revocations shared by many instances, answered from a local cache kept fresh by pub/sub, Redis Cluster too), `refresh::RedisRefreshStore`, `remember_me::RedisRememberMeStore` |
//! | `aws_lc_rs` | yes | jsonwebtoken's aws-lc-rs crypto backend |
//! | `rust_crypto` | no | jsonwebtoken's pure-Rust backend; with both enabled aws-lc-rs is used |
//! | `testing` | no | `testing::TestKeys` for applications' own tests |
//! | `http-client` | no | a built-in HTTPS client (hyper, rustls, Mozilla roots): `RemoteJwks::from_url`, OpenID Connect / RFC 8414 discovery (`keys::Discovery`, `VerifierBuilder::discover`) |
//!
//! Building with neither crypto backend is a compile error. With both, the crate installs
//! aws-lc-rs as jsonwebtoken's process-wide provider the first time a key is built; an
//! application that calls `jsonwebtoken` directly before building any key of this crate must
//! install a provider itself (`jsonwebtoken::crypto::CryptoProvider::install_default`).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authentication;
mod body;
mod claims;
mod crypto;
pub mod dpop;
pub mod endpoint;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod handler_service;
pub mod introspection;
mod issuer;
mod json_document;
pub mod keys;
mod layer;
mod lifecycle;
mod logout;
pub mod mtls;
#[cfg(feature = "redis")]
mod redis_conn;
pub mod refresh;
pub mod remember_me;
pub mod resource_metadata;
mod return_path;
pub mod revocation;
pub mod rfc9068;
mod scope;
mod source;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub mod sql;
pub mod sso;
mod step_up;
#[cfg(feature = "testing")]
pub mod testing;
mod token_cache;
mod verifier;

pub use authentication::Authentication;
pub use body::AuthBody;
pub use claims::{
    Audience, AuthStatus, ClaimSet, Claims, Confirmation, NoCustomClaims, REMEMBER_ME_AMR,
};
pub use error::{
    AuthError, AuthErrorKind, ConfigError, ErrorResponder, InvalidDpopProof, InvalidRequest,
    InvalidToken, Rfc6750Responder, Scheme,
};
#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
pub use future::ResponseFuture;
pub use issuer::{IssueError, IssuedToken, SigningKey, TokenIssuer};
pub use jsonwebtoken::Algorithm;
pub use keys::{KeySet, VerifyingKey};
pub use layer::{JwtAuth, JwtAuthLayer};
pub use lifecycle::{GrantError, LifecycleError, TokenLifecycle, TokenPair};
pub use logout::Logout;
pub use return_path::{MAX_RETURN_PATH_LEN, local_return_path};
pub use revocation::{MemoryStore, RevocationError, RevocationStore};
pub use scope::{RequireScope, RequireScopeLayer};
pub use source::{AccessCookie, TokenSource};
pub use step_up::{StepUp, StepUpLayer, StepUpRequirement};
pub use verifier::{DEFAULT_MAX_TOKEN_LEN, Verification, Verifier, VerifierBuilder};

/// The README's Rust examples, compiled as doctests (they use the `http-client` feature).
#[cfg(all(doctest, feature = "http-client"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// docs/dpop.md's examples, compiled as doctests.
#[cfg(all(doctest, feature = "testing", feature = "redis"))]
#[doc = include_str!("../docs/dpop.md")]
pub struct DpopDocDoctests;

/// docs/step-up.md's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum", feature = "testing"))]
#[doc = include_str!("../docs/step-up.md")]
pub struct StepUpDocDoctests;

/// docs/introspection.md's examples, compiled as doctests.
#[cfg(all(doctest, feature = "http-client"))]
#[doc = include_str!("../docs/introspection.md")]
pub struct IntrospectionDocDoctests;
