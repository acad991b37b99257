//! Refresh tokens: opaque, rotated on every use, grouped in families for reuse detection.
//!
//! A refresh token is `<family>.<secret>`: a 128-bit family id and a 256-bit secret from the
//! OS-seeded CSPRNG, both base64url. The server keeps only the SHA-256 of the whole token, with
//! the user, scope, expiry and whether the token was already spent, in a [`RefreshStore`].
//!
//! Every refresh spends the presented token and stores its successor in the same family.
//! Presenting a spent token again is *reuse* (RFC 9700 §4.14.2): someone holds a copy, so the
//! whole family is revoked, including the access tokens minted from it (they carry the family
//! as `sid`, which the revocation store checks). An optional grace window lets a client that
//! retried the same request within a few seconds get a plain refusal instead of losing its
//! session; it is off by default.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::revocation::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) mod sql;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisRefreshStore;
pub use memory::MemoryRefreshStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::SqlRefreshStore;

/// The longest refresh token accepted from a client, in bytes (ours are 66).
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

/// SHA-256 of a refresh token: what stores keep instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lowercase hex, for store keys.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// A refresh token as presented by a client, split into its family and the whole token's hash.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    /// The family id the token names.
    pub family: String,
    /// SHA-256 of the whole token.
    pub hash: TokenHash,
}

impl PresentedToken {
    /// Parses `<family>.<secret>`; `None` for anything else (no store is asked about it).
    pub fn parse(token: &str) -> Option<Self> {
        if token.len() > MAX_REFRESH_TOKEN_LEN {
            return None;
        }
        let (family, secret) = token.split_once('.')?;
        let b64url = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (b64url(family) && b64url(secret) && family.len() == 22 && secret.len() == 43).then(|| {
            Self {
                family: family.to_owned(),
                hash: TokenHash::of(token),
            }
        })
    }
}

/// Mints a new refresh token in `family`: `(token, hash)`.
pub(crate) fn mint(family: &str) -> (String, TokenHash) {
    let token = format!("{family}.{}", crate::issuer::random_id::<32>());
    let hash = TokenHash::of(&token);
    (token, hash)
}

/// A new family id (128 random bits, base64url).
pub(crate) fn new_family() -> String {
    crate::issuer::random_id::<16>()
}

/// What a store keeps of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The user.
    pub sub: String,
    /// The family (session) the token belongs to.
    pub family: String,
    /// The scope granted.
    pub scope: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// When the session began (the login's credentials were checked), Unix seconds. A user
    /// revocation ("log out everywhere") at or after this instant ends the family.
    pub created_at: u64,
    /// The RFC 7638 thumbprint of the DPoP key the family is bound to (RFC 9449 §5), if any:
    /// a refresh grant for a bound family needs a proof made with that key. Set at the
    /// family's first token and carried to every successor.
    pub jkt: Option<String>,
}

impl RefreshRecord {
    /// A record of a token of `family`, for `sub`, granting `scope`, expiring at
    /// `expires_at`, in a session begun at `created_at` (Unix seconds).
    pub fn new(
        sub: impl Into<String>,
        family: impl Into<String>,
        scope: impl Into<String>,
        expires_at: u64,
        created_at: u64,
    ) -> Self {
        Self {
            sub: sub.into(),
            family: family.into(),
            scope: scope.into(),
            expires_at,
            created_at,
            jkt: None,
        }
    }

    /// The same record, its family bound to the DPoP key with thumbprint `jkt`.
    pub fn with_jkt(mut self, jkt: impl Into<String>) -> Self {
        self.jkt = Some(jkt.into());
        self
    }
}

/// What [`RefreshStore::find`] knows of a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FoundToken {
    /// The token's record.
    pub record: RefreshRecord,
    /// Whether its family was revoked. A revoked family's tokens refresh nothing, but
    /// revocation (RFC 7009) still finds them, so a revocation interrupted half-way can be
    /// finished by sending the same request again.
    pub family_revoked: bool,
}

impl FoundToken {
    /// What a store found: `record`, and whether its family was revoked.
    pub fn new(record: RefreshRecord, family_revoked: bool) -> Self {
        Self {
            record,
            family_revoked,
        }
    }
}

/// The outcome of [`RefreshStore::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was current: it is now spent and the successor is stored. Also the answer
    /// when the token was already spent *for this same successor*: a retry of a rotation
    /// whose answer was lost (the connection died) gets the same answer, not a reuse alarm.
    Rotated(RefreshRecord),
    /// The token had been spent before: the family is now revoked.
    Reused(RefreshRecord),
    /// The token is current in a family that was revoked earlier (logout, reuse, log out
    /// everywhere).
    FamilyRevoked(RefreshRecord),
    /// The token was spent less than the grace window ago: refused, family untouched.
    WithinGrace,
    /// Unknown or expired.
    Invalid,
}

/// A refresh store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshStoreError {
    /// The backend could not be reached or answered with an error.
    #[error("refresh store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The operation timed out.
    #[error("refresh store timed out")]
    Timeout,
}

/// Where refresh tokens (their hashes) and families live. Every method is atomic: in
/// particular two concurrent rotations of one token can never both succeed. Every method is
/// also idempotent — called again with the same arguments it changes nothing more and
/// answers the same — so a call whose answer was lost can be sent again.
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Stores the first token of a new family.
    fn create<'a>(
        &'a self,
        hash: TokenHash,
        record: &'a RefreshRecord,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>>;

    /// Spends `presented` and stores `successor` (expiring at `successor_expires_at`) in its
    /// family, or reports reuse (and revokes the family), or refuses. `now_ms` is the current
    /// time in milliseconds; `grace_ms` the grace window (0: none). A token already spent for
    /// this very `successor` answers [`Rotation::Rotated`] again.
    fn rotate<'a>(
        &'a self,
        presented: &'a PresentedToken,
        successor: TokenHash,
        successor_expires_at: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>>;

    /// The record of a current token (known, not spent, not expired), if any, and whether
    /// its family was revoked.
    fn find<'a>(
        &'a self,
        presented: &'a PresentedToken,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<FoundToken>, RefreshStoreError>>;

    /// Revokes a family; returns its user if the family exists.
    fn revoke_family<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RefreshStoreError>>;

    /// Revokes every family of `sub`; returns them.
    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RefreshStoreError>>;
}

/// A shared store is a store (so `Arc<dyn RefreshStore>` chosen at run time fits wherever a
/// store is taken).
impl<S: RefreshStore + ?Sized> RefreshStore for std::sync::Arc<S> {
    fn create<'a>(
        &'a self,
        hash: TokenHash,
        record: &'a RefreshRecord,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        (**self).create(hash, record)
    }

    fn rotate<'a>(
        &'a self,
        presented: &'a PresentedToken,
        successor: TokenHash,
        successor_expires_at: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        (**self).rotate(presented, successor, successor_expires_at, now_ms, grace_ms)
    }

    fn find<'a>(
        &'a self,
        presented: &'a PresentedToken,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<FoundToken>, RefreshStoreError>> {
        (**self).find(presented, now)
    }

    fn revoke_family<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RefreshStoreError>> {
        (**self).revoke_family(family)
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RefreshStoreError>> {
        (**self).revoke_user(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_garbage_does_not() {
        let family = new_family();
        let (token, hash) = mint(&family);
        let p = PresentedToken::parse(&token).unwrap();
        assert_eq!(p.family, family);
        assert_eq!(p.hash, hash);
        for bad in [
            "",
            ".",
            "a.b",
            &token[1..],
            &format!("{token}x"),
            &token.replace('.', ""),
        ] {
            assert!(PresentedToken::parse(bad).is_none(), "{bad}");
        }
        assert!(PresentedToken::parse(&"a".repeat(4096)).is_none());
    }
}
