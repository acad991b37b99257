//! Revocation: the store trait the layer consults, and its shared types.
//!
//! A token is revoked when its `jti` was revoked (until the token's own `exp`, after which
//! the entry may vanish: the token is dead anyway), when its session (`sid`, the refresh-token
//! family it was minted from) was revoked, or when every token of its subject issued at or
//! before some instant was revoked ("log out everywhere", password change).
//!
//! The layer calls [`RevocationStore::check`] once per request, after the signature and time
//! checks passed. `check` answers synchronously when it can ([`RevocationCheck::Ready`]: the
//! memory store always does, a caching Redis store does in steady state) and returns a boxed
//! future only when it must ask a remote server.
//!
//! # A custom store
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::Mutex;
//! use tower_token_auth::revocation::{
//!     BoxFuture, RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef,
//! };
//!
//! /// Revokes single tokens only, forever (a toy: entries never expire).
//! #[derive(Debug, Default)]
//! struct SetStore(Mutex<HashSet<String>>);
//!
//! impl RevocationStore for SetStore {
//!     fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
//!         let set = self.0.lock().unwrap();
//!         let revoked = token.jti.is_some_and(|j| set.contains(j));
//!         RevocationCheck::Ready(Ok(RevocationStatus::from_revoked(revoked)))
//!     }
//!     fn revoke_token<'a>(&'a self, token: TokenRef<'a>)
//!         -> BoxFuture<'a, Result<(), RevocationError>> {
//!         let Some(jti) = token.jti else {
//!             return Box::pin(async { Err(RevocationError::NotRevocable("jti")) });
//!         };
//!         self.0.lock().unwrap().insert(jti.to_owned());
//!         Box::pin(async { Ok(()) })
//!     }
//!     fn revoke_user<'a>(&'a self, _sub: &'a str, _before: u64, _until: u64)
//!         -> BoxFuture<'a, Result<(), RevocationError>> {
//!         Box::pin(async { Err(RevocationError::Unsupported("per-user revocation")) })
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisRevocationStore, RedisStoreConfig};
pub use memory::MemoryStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use self::sql::{SqlRevocationConfig, SqlRevocationStore};

/// How long past its `until` (a token's `exp`, a revocation's `keep_until`) every store of this
/// crate still enforces a revocation and keeps its record: the longest leeway a
/// [`Verifier`](crate::Verifier) accepts, so a revoked token stays refused for as long as a
/// verifier would still admit it after its `exp`.
pub const RECORD_GRACE: std::time::Duration = std::time::Duration::from_secs(GRACE_SECS);

pub(crate) const GRACE_SECS: u64 = 300;

/// Whether a record kept `until` (Unix seconds) is still enforced at `now`.
pub(crate) fn in_force(until: u64, now: u64) -> bool {
    until.saturating_add(GRACE_SECS) >= now
}

/// A boxed, `Send` future, as the store trait returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the revocation check needs to know of a verified token.
///
/// Built with [`TokenRef::new`] and one call per identifier known:
///
/// ```
/// use tower_token_auth::revocation::TokenRef;
///
/// let token = TokenRef::new().jti("4f1c").sub("alice").iat(1_700_000_000).exp(1_700_000_900);
/// assert_eq!(token.jti, Some("4f1c"));
/// assert_eq!(token.sid, None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TokenRef<'a> {
    /// The token's `jti`.
    pub jti: Option<&'a str>,
    /// The token's `sub`.
    pub sub: Option<&'a str>,
    /// The token's `iat`. A token without one counts as issued before any user revocation.
    pub iat: Option<u64>,
    /// The token's `exp`.
    pub exp: Option<u64>,
    /// The token's session (refresh-token family), OIDC `sid`.
    pub sid: Option<&'a str>,
    /// The token's issuer. A `sub` is unique only per issuer; the stores of this crate key
    /// user revocations by `sub` alone (one issuer per store), and carry `iss` for stores
    /// that serve several.
    pub iss: Option<&'a str>,
}

impl<'a> TokenRef<'a> {
    /// A reference with no identifier; add them with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// With this `jti` (`&str` or `Option<&str>`).
    pub fn jti(mut self, jti: impl Into<Option<&'a str>>) -> Self {
        self.jti = jti.into();
        self
    }

    /// With this `sub`.
    #[allow(clippy::should_implement_trait)] // named after the claim, like the others
    pub fn sub(mut self, sub: impl Into<Option<&'a str>>) -> Self {
        self.sub = sub.into();
        self
    }

    /// With this `iat` (`u64` or `Option<u64>`).
    pub fn iat(mut self, iat: impl Into<Option<u64>>) -> Self {
        self.iat = iat.into();
        self
    }

    /// With this `exp`.
    pub fn exp(mut self, exp: impl Into<Option<u64>>) -> Self {
        self.exp = exp.into();
        self
    }

    /// With this session id (`sid`).
    pub fn sid(mut self, sid: impl Into<Option<&'a str>>) -> Self {
        self.sid = sid.into();
        self
    }

    /// With this issuer.
    pub fn iss(mut self, iss: impl Into<Option<&'a str>>) -> Self {
        self.iss = iss.into();
        self
    }
}

/// The answer of a revocation check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationStatus {
    /// Not revoked.
    Active,
    /// Revoked: the request must be refused.
    Revoked,
}

impl RevocationStatus {
    /// `Revoked` when `revoked` is true.
    pub fn from_revoked(revoked: bool) -> Self {
        if revoked { Self::Revoked } else { Self::Active }
    }
}

/// A check answered now, or one that needs I/O.
pub enum RevocationCheck {
    /// The answer is known without I/O.
    Ready(Result<RevocationStatus, RevocationError>),
    /// The store must ask a remote server.
    Pending(BoxFuture<'static, Result<RevocationStatus, RevocationError>>),
}

impl fmt::Debug for RevocationCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// A revocation store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The backend could not be reached or answered with an error.
    #[error("revocation backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store cannot guarantee it has seen every revocation (e.g. after a lost
    /// subscription), so it refuses to answer.
    #[error("revocation state is not known to be fresh")]
    Stale,
    /// The operation timed out.
    #[error("revocation backend timed out")]
    Timeout,
    /// The token cannot be revoked individually (it has no `jti` or no `exp`).
    #[error("token cannot be revoked: it has no {0}")]
    NotRevocable(&'static str),
    /// The store does not support this operation.
    #[error("operation not supported by this store: {0}")]
    Unsupported(&'static str),
}

/// Where revocations are recorded and checked.
///
/// Implementations must be cheap to call from the request path: `check` should not block
/// and should answer `Ready` whenever no I/O is needed.
pub trait RevocationStore: Send + Sync + fmt::Debug + 'static {
    /// Whether `token` is revoked. Called only for tokens that passed verification.
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck;

    /// Revokes one token until its `exp`. The token must have a `jti` and an `exp`
    /// ([`RevocationError::NotRevocable`] otherwise); its `sub` lets stores keep a user's keys
    /// together (e.g. on one Redis Cluster slot).
    fn revoke_token<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<(), RevocationError>>;

    /// Revokes every token of `sub` issued at or before `issued_before` (Unix seconds). The
    /// record may be dropped after `keep_until`, once every such token has expired (use
    /// `now + the longest token lifetime`).
    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        issued_before: u64,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>>;

    /// Revokes every token whose `sid` is `sid` (of subject `sub`), until `keep_until` (use
    /// `now + the access-token lifetime`). Stores that cannot do this refuse, so a refresh
    /// family is never believed revoked when its access tokens are not.
    fn revoke_session<'a>(
        &'a self,
        sub: Option<&'a str>,
        sid: &'a str,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        let _ = (sub, sid, keep_until);
        Box::pin(async { Err(RevocationError::Unsupported("session revocation")) })
    }
}

impl TokenRef<'_> {
    /// The `jti` and `exp` a single-token revocation needs.
    pub fn revocable(&self) -> Result<(&str, u64), RevocationError> {
        let jti = self.jti.ok_or(RevocationError::NotRevocable("jti"))?;
        let exp = self.exp.ok_or(RevocationError::NotRevocable("exp"))?;
        Ok((jti, exp))
    }
}

/// Waits until the Unix clock enters its next whole second.
///
/// A user revocation covers every token with `iat` at or before the second it was made in
/// (`iat` has whole seconds). Returning only once that second is over means a token minted
/// after the revocation call returns — a login right after a password change — carries a
/// later `iat` and is not caught by it.
pub(crate) async fn wait_for_next_second() {
    let into_second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let left = 1000u64.saturating_sub(u64::from(into_second));
    tokio::time::sleep(std::time::Duration::from_millis(left + 1)).await;
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
