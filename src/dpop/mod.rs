//! DPoP proofs (RFC 9449): checking that a request was sent by the holder of a key.
//!
//! A DPoP client signs, for every request, a short JWT (a *proof*, sent in the `DPoP` header)
//! with a key of its own, whose public half the proof carries. The proof names the request's
//! method (`htm`) and URL (`htu`), when it was made (`iat`), a unique `jti`, and at a resource
//! server the hash of the access token (`ath`). An access token bound to the key (its `cnf.jkt`
//! is the key's RFC 7638 thumbprint) is useless to whoever steals it without the key.
//!
//! [`DpopConfig::check`] checks one proof for one request — everything RFC 9449 §4.3 lists
//! except the comparison with the token's `cnf.jkt`, which the caller makes with
//! [`VerifiedProof::jkt`] — and records it in a [`ReplayStore`] so that it is accepted once:
//!
//! | refused with `InvalidDpopProof::…` | when |
//! |---|---|
//! | `Malformed` | longer than the cap, not three base64url segments of JSON objects, a `crit` header, or `jti`/`htm`/`htu`/`iat` missing or of the wrong type, `jti` empty or over [`MAX_JTI_LEN`] bytes, `nonce` not a string |
//! | `WrongType` | header `typ` is not exactly `dpop+jwt` |
//! | `AlgorithmNotAllowed` | `alg` is `none`, symmetric, unknown or not configured |
//! | `BadKey` | no `jwk`, a private or symmetric one, or not a key of `alg` (curve, size, its own `alg` or `use`) |
//! | `BadSignature` | the signature does not verify with the embedded key |
//! | `WrongMethod` | `htm` is not the request's method |
//! | `WrongUri` | `htu` is not the request's URL (see below) |
//! | `Stale` | `iat` outside [`proof_lifetime`](DpopConfig::proof_lifetime) / [`clock_skew`](DpopConfig::clock_skew) |
//! | `WrongAccessTokenHash` | an access token was given and `ath` is missing or not its hash |
//! | `Replayed` | the replay store saw this key and `jti` before |
//!
//! and with `ReplayCheckUnavailable` (503) when the replay store cannot answer. The `DPoP`
//! header itself (missing, several) is the caller's to read.
//!
//! # The request's URL
//!
//! `htu` and the request's URL are compared without query and fragment, after RFC 3986
//! §6.2.2–6.2.3 normalisation: scheme and host in lower case, default port dropped,
//! percent-escapes of unreserved characters decoded and the others in upper case, dot
//! segments removed, an empty path as `/`. The request's URL is
//! [`external_origin`](DpopConfig::external_origin) when configured (set it behind a proxy),
//! else the request's absolute target if it has one, else `https://` and its `Host` header.
//!
//! # Left out
//!
//! Server-provided nonces (RFC 9449 §8, §9) are not issued or required: a proof's `nonce`, if
//! any, is passed on in [`VerifiedProof::nonce`] for the caller to check.
//!
//! # Example
//!
//! ```
//! use http::{HeaderMap, Method, Uri};
//! use tower_token_auth::dpop::{DpopConfig, ProofCheck};
//! use tower_token_auth::testing::DpopKey;
//!
//! let config = DpopConfig::new().external_origin("https://api.example.com")?;
//! let key = DpopKey::es256(); // a client's key, in a test
//! let proof = key.proof("POST", "https://api.example.com/token", None);
//! let uri: Uri = "/token".parse()?;
//!
//! // The memory store answers at once; a Redis store answers `Pending`.
//! let ProofCheck::Ready(verified) =
//!     config.check(&proof, &Method::POST, &uri, &HeaderMap::new(), None)
//! else {
//!     unreachable!()
//! };
//! // A token endpoint binds the tokens it issues to this thumbprint (`cnf.jkt`).
//! assert_eq!(verified?.jkt(), key.thumbprint());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use sha2::{Digest, Sha256};

use crate::AuthError;
use crate::revocation::BoxFuture;

mod config;
mod htu;
mod memory;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod test_key;
mod thumbprint;

pub use config::{DEFAULT_ALGORITHMS, DEFAULT_MAX_PROOF_LEN, DpopConfig};
pub use memory::MemoryReplayStore;
pub use proof::MAX_JTI_LEN;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisReplayStore;
pub use replay::{ReplayCheck, ReplayError, ReplayStore};
pub use thumbprint::{ThumbprintError, jwk_thumbprint};

/// A proof that passed every check of [`DpopConfig::check`].
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: u64,
    nonce: Option<String>,
    algorithm: Algorithm,
    // Boxed: a `Jwk` is large, and the answer travels by value.
    jwk: Box<Jwk>,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key: compare it with the token's
    /// `cnf.jkt`, or bind new tokens to it.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, in whole Unix seconds.
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// The proof's `nonce`, if it has one (not checked: see the module docs).
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The algorithm the proof was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The proof's public key.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }
}

/// The answer of [`DpopConfig::check`]: known now, or once the replay store answers.
#[must_use = "a pending check does nothing until awaited"]
pub enum ProofCheck {
    /// Answered without I/O.
    Ready(Result<VerifiedProof, AuthError>),
    /// Every check passed but the replay check, which needs I/O (a Redis store).
    Pending(BoxFuture<'static, Result<VerifiedProof, AuthError>>),
}

impl ProofCheck {
    /// The answer, waiting for the replay store when it is pending.
    pub async fn resolve(self) -> Result<VerifiedProof, AuthError> {
        match self {
            Self::Ready(r) => r,
            Self::Pending(f) => f.await,
        }
    }
}

impl fmt::Debug for ProofCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// The `ath` of a proof sent with `access_token`: base64url (no padding) of its SHA-256
/// (RFC 9449 §4.2).
///
/// ```
/// // RFC 9449 §7.1's example token and its `ath`.
/// assert_eq!(
///     tower_token_auth::dpop::access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
/// );
/// ```
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

#[cfg(test)]
mod tests;
