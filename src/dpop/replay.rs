//! The replay store trait: each proof is accepted once (RFC 9449 §11.1).

use std::fmt;

use sha2::{Digest, Sha256};

use crate::revocation::BoxFuture;

/// Where the proofs already accepted are remembered, so that each is accepted only once.
///
/// [`DpopConfig::check`](super::DpopConfig::check) calls
/// [`check_and_record`](Self::check_and_record) once per proof that passed every other check.
/// A store shared by every instance of a service ([`RedisReplayStore`](super::RedisReplayStore)
/// with the `redis` feature) catches a proof replayed to another instance; the default
/// [`MemoryReplayStore`](super::MemoryReplayStore) sees one process only.
///
/// An error is never taken for a first sight: the request is refused with 503
/// (`AuthErrorKind::ReplayCheckUnavailable`).
///
/// # A custom store
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use tower_token_auth::dpop::{ReplayCheck, ReplayStore};
///
/// /// Forgets nothing (a toy: a real store drops entries once they expire).
/// #[derive(Debug, Default)]
/// struct Forever(Mutex<HashMap<[u8; 32], u64>>);
///
/// impl ReplayStore for Forever {
///     fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck {
///         let first = self.0.lock().unwrap().insert(*key, expires_at_unix).is_none();
///         ReplayCheck::Ready(Ok(first))
///     }
/// }
/// ```
pub trait ReplayStore: Send + Sync + fmt::Debug + 'static {
    /// Records `key` (the SHA-256 of the proof key's thumbprint and the proof's `jti`) and
    /// answers `true` if it was not recorded before, `false` for a replay. The record must be
    /// kept at least until the Unix second `expires_at_unix` is over: until then the proof
    /// would still pass the `iat` check.
    ///
    /// Must be atomic: of two concurrent calls with one key, at most one answers `true`.
    fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck;
}

impl<S: ReplayStore + ?Sized> ReplayStore for std::sync::Arc<S> {
    fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck {
        (**self).check_and_record(key, expires_at_unix)
    }
}

/// The answer of a [`ReplayStore`]: known now, or after I/O.
#[must_use = "a pending check does nothing until awaited"]
pub enum ReplayCheck {
    /// Answered without I/O: `Ok(true)` for a first sight, `Ok(false)` for a replay.
    Ready(Result<bool, ReplayError>),
    /// The store must ask a remote server.
    Pending(BoxFuture<'static, Result<bool, ReplayError>>),
}

impl ReplayCheck {
    /// The answer, waiting for the store when it is pending.
    pub async fn resolve(self) -> Result<bool, ReplayError> {
        match self {
            Self::Ready(r) => r,
            Self::Pending(f) => f.await,
        }
    }
}

impl fmt::Debug for ReplayCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// A replay store could not answer. The proof is refused (503), never accepted unchecked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The backend could not be reached or answered with an error.
    #[error("DPoP replay store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer in time.
    #[error("DPoP replay store timed out")]
    Timeout,
    /// The store holds as many unexpired proofs as it may: it refuses new ones rather than
    /// forget one that could still be replayed.
    #[error("DPoP replay store full ({capacity} unexpired proofs)")]
    Full {
        /// The store's capacity.
        capacity: usize,
    },
}

/// The replay key of a proof: SHA-256 over a domain tag, the key thumbprint and the `jti`,
/// so that one client cannot use up another's `jti` values, and stores hold fixed-size keys
/// whatever the `jti`.
pub(crate) fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"tower-token-auth dpop jti\0");
    // The thumbprint is base64url (no NUL), so the NUL separates it from the jti.
    hash.update(jkt.as_bytes());
    hash.update([0]);
    hash.update(jti.as_bytes());
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_thumbprints_and_jtis() {
        assert_eq!(replay_key("a", "b"), replay_key("a", "b"));
        assert_ne!(replay_key("a", "b"), replay_key("a", "c"));
        assert_ne!(replay_key("a", "b"), replay_key("c", "b"));
        assert_ne!(replay_key("ab", "c"), replay_key("a", "bc"));
    }
}
