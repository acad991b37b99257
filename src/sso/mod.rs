//! Single sign-on as library parts: the service side (relying party), back-channel logout,
//! and the building blocks of an authorization server.
//!
//! - [`BackChannelLogout`] (OpenID Connect Back-Channel Logout 1.0): a receiver that ends the
//!   session a provider's logout token names, in the revocation store every instance checks.
//! - The relying party ([`login`] module docs, feature `http-client`): `OidcClient`,
//!   `OidcLoginLayer` (a page request without a session goes to the provider; silent refresh),
//!   `OidcCallback` (code exchange, ID-token validation, the local session), `OidcLogout`
//!   (RP-initiated logout) and [`local_session_id`], the sessions back-channel logout ends.
//! - [`local_return_path`](crate::local_return_path): where a login or logout may send the
//!   browser back to.
//! - Authorization-server parts: the authorization-code store, exact redirect-URI matching,
//!   the signing key ring that publishes a key before it signs with it.
//!   - [`code`]: the authorization-code store (single use, PKCE `S256`, replay detection), in
//!     memory or Redis.
//!   - [`clients`]: registered clients, redirect URIs matched byte for byte.
//!   - [`key_ring`]: signing keys published before they sign, kept until their tokens expired.
//!   - [`discovery_document`]: the OpenID Provider Metadata at
//!     `/.well-known/openid-configuration`.
//!   - [`end_session`]: RP-initiated logout, the `id_token_hint` and the
//!     `post_logout_redirect_uri` checks.
//!   - [`session`]: the provider's SSO sessions (cookie, clients, refresh families), in
//!     memory or Redis.
//!   - [`token_endpoint`]: the authorization-code and refresh grants of a provider's token
//!     endpoint, joining the code store, the SSO sessions and `TokenLifecycle`.
//!   - `logout_sender` (feature `http-client`): back-channel logout tokens minted with the key
//!     ring and POSTed to every client of an ended session, with a timeout and bounded retries.

pub mod clients;
pub mod code;
pub mod discovery_document;
pub mod end_session;
pub mod key_ring;
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub mod logout_sender;
pub mod session;
pub mod token_endpoint;

pub mod login;
pub use login::local_session_id;
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub use login::{
    DEFAULT_STATE_COOKIE, MIN_STATE_SECRET_LEN, OidcCallback, OidcClient, OidcLogin,
    OidcLoginFuture, OidcLoginLayer, OidcLogout,
};

mod backchannel;
pub use backchannel::{
    BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, DEFAULT_MAX_TOKEN_AGE, DEFAULT_SESSION_TTL,
    MAX_LOGOUT_BODY,
};
