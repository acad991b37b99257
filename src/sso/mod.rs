//! Single sign-on as library parts: the service side (relying party), back-channel logout,
//! and the building blocks of an authorization server.
//!
//! - Back-channel logout (OpenID Connect Back-Channel Logout 1.0): a receiver that ends the
//!   session a provider's logout token names, in the revocation store every instance checks.
//! - Authorization-server parts: the authorization-code store, exact redirect-URI matching,
//!   the signing key ring that publishes a key before it signs with it.

mod backchannel;
pub use backchannel::{
    BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout, DEFAULT_MAX_TOKEN_AGE, DEFAULT_SESSION_TTL,
    MAX_LOGOUT_BODY,
};
