//! The service side of single sign-on: an OpenID Connect relying party (authorization code
//! flow with PKCE) as tower parts, starting the service's own session with
//! [`TokenLifecycle`](crate::TokenLifecycle) once the provider vouched for the user.
//!
//! - [`OidcClient`]: the client's registration at the provider (from its discovery
//!   document), how ID tokens are verified, how the login-state cookie is signed.
//! - [`OidcLoginLayer`]: outermost layer of the protected routes. A page request (`GET` or
//!   `HEAD` without `Authorization`) the inner service answers 401 is sent to the provider
//!   (302, with `state`, `nonce` and PKCE `S256`), or, when it carries a refresh cookie,
//!   refreshed silently (303 to the same page). Every other 401 (API calls, `POST`) passes
//!   unchanged, with its RFC 6750 challenge.
//! - [`OidcCallback`]: the redirect URI. Checks the login-state cookie, exchanges the code
//!   (server to server), validates the ID token and starts the local session: access and
//!   refresh cookies ([`TokenCookies`](crate::endpoint::TokenCookies)), 303 to the page the
//!   login started from.
//! - [`OidcLogout`]: `POST /logout` (same-origin only) ends the local session and sends the
//!   browser to the provider's `end_session_endpoint` (RP-Initiated Logout 1.0).
//! - [`BackChannelLogout::end_local_sessions`](crate::sso::BackChannelLogout::end_local_sessions):
//!   a logout at the provider ends these local sessions too. A local session started from an
//!   ID token with `sid` lives in the refresh family [`local_session_id`]`(iss, sid)`, which
//!   the logout token names.
//!
//! The local session's `sub` is the provider's `sub`: one provider per service.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(all(feature = "http-client", feature = "axum"))]
//! # async fn run(state_secret: [u8; 32], my_issuer: tower_token_auth::TokenIssuer, my_verifier: tower_token_auth::Verifier) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use tower_token_auth::endpoint::TokenCookies;
//! use tower_token_auth::keys::Discovery;
//! use tower_token_auth::refresh::MemoryRefreshStore;
//! use tower_token_auth::sso::{BackChannelLogout, OidcCallback, OidcClient, OidcLoginLayer, OidcLogout};
//! use tower_token_auth::{JwtAuthLayer, KeySet, TokenLifecycle, Verifier};
//!
//! // The provider: its metadata and its keys, for ID tokens and logout tokens.
//! let op = Discovery::fetch("https://login.example").await?;
//! let op_tokens = Verifier::builder(KeySet::new())
//!     .issuer(op.issuer())
//!     .audience("orders-web")
//!     .build_with_jwks(op.remote_jwks()?)
//!     .await?;
//! let client = OidcClient::new(&op, "orders-web", "https://orders.example/callback", op_tokens.clone(), &state_secret)?
//!     .client_secret("s3cret")
//!     .post_logout_redirect_uri("https://orders.example/")?;
//!
//! // The service's own session: its tokens in cookies (the refresh cookie on `/`, so that a
//! // page request can refresh silently).
//! let cookies = TokenCookies::new("/");
//! let auth = JwtAuthLayer::new(my_verifier).with_cookie(cookies.access().clone())?;
//! let lifecycle = TokenLifecycle::for_layer(&auth, my_issuer, MemoryRefreshStore::new());
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(auth.clone())
//!     .layer(OidcLoginLayer::new(client.clone(), lifecycle.clone(), cookies.clone()))
//!     .route_service("/callback", OidcCallback::new(client.clone(), lifecycle.clone(), cookies.clone()))
//!     .route_service("/logout", OidcLogout::new(client, lifecycle.clone(), cookies))
//!     .route_service(
//!         "/backchannel-logout",
//!         BackChannelLogout::with_shared_store(op_tokens, auth.revocation_store())?
//!             .end_local_sessions(lifecycle),
//!     );
//! # let _ = app; Ok(()) }
//! ```

// Most items here need feature `http-client`; without it their links have no target.
#![cfg_attr(not(feature = "http-client"), allow(rustdoc::broken_intra_doc_links))]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

#[cfg(feature = "http-client")]
mod callback;
#[cfg(feature = "http-client")]
mod client;
#[cfg(feature = "http-client")]
mod id_token;
#[cfg(feature = "http-client")]
mod layer;
#[cfg(feature = "http-client")]
mod logout;
#[cfg(feature = "http-client")]
mod page;
#[cfg(feature = "http-client")]
mod state;

#[cfg(feature = "http-client")]
pub use callback::OidcCallback;
#[cfg(feature = "http-client")]
pub use client::{DEFAULT_STATE_COOKIE, MIN_STATE_SECRET_LEN, OidcClient};
#[cfg(feature = "http-client")]
pub use layer::{OidcLogin, OidcLoginFuture, OidcLoginLayer};
#[cfg(feature = "http-client")]
pub use logout::OidcLogout;

/// The local session (refresh family) id of the provider session `sid` of issuer `iss`:
/// the first 128 bits of SHA-256 over a tag, `iss`, a zero byte and `sid`, base64url (22
/// characters, the syntax of the families [`TokenLifecycle`](crate::TokenLifecycle) makes).
///
/// [`OidcCallback`] starts the session of an ID token with `sid` in this family
/// ([`TokenLifecycle::issue_pair_in_session`](crate::TokenLifecycle::issue_pair_in_session)),
/// and a back-channel logout token naming `sid` ends it
/// ([`BackChannelLogout::end_local_sessions`](crate::sso::BackChannelLogout::end_local_sessions)).
/// Hashing keeps the provider's `sid` (a value it may reuse elsewhere) out of local tokens,
/// and the issuer in the input keeps two providers' sessions apart.
///
/// ```
/// use tower_token_auth::sso::local_session_id;
///
/// let id = local_session_id("https://login.example", "sid-1");
/// assert_eq!(id.len(), 22);
/// assert_eq!(id, local_session_id("https://login.example", "sid-1"));
/// assert_ne!(id, local_session_id("https://login.example", "sid-2"));
/// assert_ne!(id, local_session_id("https://other.example", "sid-1"));
/// ```
pub fn local_session_id(iss: &str, sid: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"tower-token-auth oidc local session\0");
    hash.update(iss.as_bytes());
    hash.update([0]);
    hash.update(sid.as_bytes());
    let digest = hash.finalize();
    URL_SAFE_NO_PAD.encode(&digest[..16])
}
