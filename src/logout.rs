//! Logout: revoke the presented token (or all of a user's tokens) and clear the cookie.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::claims::Claims;
use crate::revocation::{RevocationError, RevocationStore, now_secs};
use crate::source::AccessCookie;

/// Revokes tokens in the store a [`JwtAuthLayer`](crate::JwtAuthLayer) checks; get one from
/// [`JwtAuthLayer::logout`](crate::JwtAuthLayer::logout).
///
/// ```
/// use tower_token_auth::{JwtAuthLayer, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let layer = JwtAuthLayer::new(keys.verifier());
/// let logout = layer.logout();
/// let claims: tower_token_auth::Claims = keys.verifier().verify(&keys.mint("alice", "read")).unwrap();
/// logout.revoke(&claims).await.unwrap(); // this token is refused from now on
/// # }
/// ```
#[derive(Clone)]
pub struct Logout {
    store: Arc<dyn RevocationStore>,
    cookie: Option<AccessCookie>,
}

impl fmt::Debug for Logout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logout")
            .field("store", &self.store)
            .field("cookie", &self.cookie)
            .finish()
    }
}

impl Logout {
    /// A helper over `store`; `cookie` is the access cookie to clear, if tokens travel in one.
    pub fn new(store: Arc<dyn RevocationStore>, cookie: Option<AccessCookie>) -> Self {
        Self { store, cookie }
    }

    /// The store it revokes in.
    pub(crate) fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    /// The access cookie it clears.
    pub(crate) fn cookie(&self) -> Option<&AccessCookie> {
        self.cookie.as_ref()
    }

    /// Revokes the token these claims came from, until its `exp`.
    ///
    /// Fails with [`RevocationError::NotRevocable`] when the token has no `jti` or `exp`.
    pub async fn revoke<T>(&self, claims: &Claims<T>) -> Result<(), RevocationError> {
        self.store.revoke_token(claims.token_ref()).await
    }

    /// "Log out everywhere": revokes every token of `sub` issued until now. Keep the record
    /// for `max_token_lifetime`, the longest lifetime of any token the issuer mints.
    ///
    /// Tokens carry whole seconds, so every token of `sub` minted in the current second is
    /// revoked too; this returns once that second is over (at most one second later), so a
    /// token minted afterwards — the user logging in again — is not.
    pub async fn revoke_user(
        &self,
        sub: &str,
        max_token_lifetime: Duration,
    ) -> Result<(), RevocationError> {
        let now = now_secs();
        self.store
            .revoke_user(sub, now, now.saturating_add(max_token_lifetime.as_secs()))
            .await?;
        crate::revocation::wait_for_next_second().await;
        Ok(())
    }

    /// A `Set-Cookie` value that deletes the access cookie, when the layer reads one.
    pub fn removal_cookie(&self) -> Option<HeaderValue> {
        self.cookie.as_ref().map(AccessCookie::removal_cookie)
    }
}
