//! Keys for verifying tokens, and where they come from.
//!
//! A [`KeySet`] holds any number of [`VerifyingKey`]s. A token's `kid` header picks its key by
//! exact map lookup (never a path, URL or query); the token's `alg` must then be one the key
//! allows (one algorithm for a key with an `alg`, the verifier's allowed algorithms of the
//! key's type otherwise), so a token can never choose how it is verified outside that list (no
//! `alg: none`, no RS256/HS256 confusion). At most one key may have no `kid`: it verifies
//! tokens that carry none. Several keys with distinct `kid`s make key rotation possible
//! without downtime.
//!
//! Key sources, each in its own file:
//! - static keys: a [`KeySet`] given to [`Verifier::builder`](crate::Verifier::builder);
//! - [`jwk`]: JWK and JWK Set parsing, tolerant of the keys real providers publish;
//! - [`remote`]: a remote JWK Set, refreshed in the background and refetched (single-flight)
//!   for unknown `kid`s, following `Cache-Control`, through outages;
//! - `discovery` and `http` (feature `http-client`): an issuer's metadata (OpenID Connect
//!   discovery, RFC 8414) and the built-in HTTPS client;
//! - [`KeyHandle`]: the current keys, read lock-free by the verifier, replaced by the sources.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use sha2::{Digest, Sha256};

use crate::crypto::ensure_provider;
use crate::error::ConfigError;

#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub mod discovery;
mod handle;
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub mod http;
pub mod jwk;
pub mod remote;
pub(crate) mod url;

#[cfg(feature = "http-client")]
pub use discovery::{Discovery, DiscoveryError};
pub use handle::KeyHandle;
#[cfg(feature = "http-client")]
pub use http::{HttpError, HttpFetcher};
pub use jwk::{JwkPolicy, SkippedKey};
pub use remote::{BoxError, JwksFetcher, JwksResponse, KeySourceError, RemoteJwks};

/// One public key (or HMAC secret) and the algorithms it may verify: one, for a key created
/// with an algorithm or a JWK with `alg`; the allowed algorithms of its type for a JWK
/// without `alg` (see [`JwkPolicy`]).
#[derive(Clone)]
pub struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) algs: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    /// SHA-256 over the key material and its algorithms: tells a changed key from the same
    /// key fetched again.
    pub(crate) fingerprint: [u8; 32],
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .field("key", &"REDACTED")
            .finish()
    }
}

/// The fingerprint of `material` for `algs`.
pub(crate) fn fingerprint(algs: &[Algorithm], material: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for alg in algs {
        h.update(format!("{alg:?},").as_bytes());
    }
    h.update([0]);
    h.update(material);
    h.finalize().into()
}

pub(crate) fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn check_family(alg: Algorithm, family: AlgorithmFamily) -> Result<(), ConfigError> {
    if alg.family() == family {
        Ok(())
    } else {
        Err(ConfigError::new(format!(
            "algorithm {alg:?} does not fit a {family:?} key"
        )))
    }
}

impl VerifyingKey {
    /// An HMAC secret for HS256, HS384 or HS512.
    ///
    /// The secret must be at least as long as the hash output (32, 48 or 64 bytes, RFC 7518
    /// §3.2).
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        check_family(alg, AlgorithmFamily::Hmac)?;
        if secret.len() < min_hmac_len(alg) {
            return Err(ConfigError::new(format!(
                "an {alg:?} secret needs at least {} bytes",
                min_hmac_len(alg)
            )));
        }
        Ok(Self::from_parts(
            vec![alg],
            DecodingKey::from_secret(secret),
            secret,
        ))
    }

    /// An RSA public key in PEM for RS256/384/512 or PS256/384/512.
    pub fn rsa_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        check_family(alg, AlgorithmFamily::Rsa)?;
        let key = DecodingKey::from_rsa_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid RSA public key PEM: {e}")))?;
        Ok(Self::from_parts(vec![alg], key, pem))
    }

    /// An EC public key in PEM for ES256 (P-256) or ES384 (P-384).
    pub fn ec_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        check_family(alg, AlgorithmFamily::Ec)?;
        let key = DecodingKey::from_ec_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid EC public key PEM: {e}")))?;
        Ok(Self::from_parts(vec![alg], key, pem))
    }

    /// An Ed25519 public key in PEM for EdDSA.
    pub fn ed_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        let key = DecodingKey::from_ed_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid Ed25519 public key PEM: {e}")))?;
        Ok(Self::from_parts(vec![Algorithm::EdDSA], key, pem))
    }

    /// A key from one JSON Web Key, with the default [`JwkPolicy`] (an RSA key without `alg`
    /// verifies RS256 only).
    ///
    /// The algorithm comes from the JWK's `alg`, or from its curve for EC and OKP keys, or from
    /// the policy for RSA keys; symmetric JWKs without `alg` are refused, since their
    /// algorithm would be a guess.
    pub fn from_jwk(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Self, ConfigError> {
        jwk::verifying_key(jwk, &JwkPolicy::default())
    }

    pub(crate) fn from_parts(algs: Vec<Algorithm>, key: DecodingKey, material: &[u8]) -> Self {
        Self {
            kid: None,
            fingerprint: fingerprint(&algs, material),
            algs,
            key,
        }
    }

    /// Gives the key a `kid`; tokens naming this `kid` are verified with it.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key verifies (one, unless it came from a JWK without `alg`).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algs
    }

    /// Whether a token signed with `alg` may be verified with this key.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algs.contains(&alg)
    }
}

/// Keys by `kid`, each pinned to its algorithm.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_token_auth::{KeySet, VerifyingKey};
///
/// let keys = KeySet::new()
///     .with_key(VerifyingKey::hmac(Algorithm::HS256, &[7u8; 32])?.with_kid("2026-11"))?
///     .with_key(VerifyingKey::hmac(Algorithm::HS256, &[8u8; 32])?.with_kid("2026-12"))?;
/// assert_eq!(keys.len(), 2);
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerifyingKey>,
    default: Option<VerifyingKey>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key. Fails on a duplicate `kid`, or on a second key without `kid`.
    pub fn with_key(mut self, key: VerifyingKey) -> Result<Self, ConfigError> {
        self.insert(key)?;
        Ok(self)
    }

    /// Adds a key in place; see [`with_key`](Self::with_key).
    pub fn insert(&mut self, key: VerifyingKey) -> Result<(), ConfigError> {
        match &key.kid {
            Some(kid) => {
                if self.by_kid.contains_key(kid) {
                    return Err(ConfigError::new(format!("duplicate kid `{kid}`")));
                }
                self.by_kid.insert(kid.clone(), key);
            }
            None => {
                if self.default.is_some() {
                    return Err(ConfigError::new(
                        "only one key may have no kid; give the others a kid",
                    ));
                }
                self.default = Some(key);
            }
        }
        Ok(())
    }

    /// Builds a key set from a JWK Set JSON document (`{"keys":[…]}`) with the default
    /// [`JwkPolicy`]. Keys this crate cannot use (unknown `kty`, curve or `alg`, encryption
    /// keys, malformed members) are skipped and logged at warn with their `kid`; only a
    /// document that is not a JWK Set at all is an error. See [`jwk::parse_jwks`] for the
    /// list of skipped keys.
    pub fn from_jwks_json(json: &str) -> Result<Self, ConfigError> {
        let (keys, skipped) = jwk::parse_jwks(json, &JwkPolicy::default())?;
        jwk::log_skipped(&skipped);
        Ok(keys)
    }

    /// Builds a key set from a parsed [`JwkSet`](jsonwebtoken::jwk::JwkSet), skipping the
    /// keys it cannot use as [`from_jwks_json`](Self::from_jwks_json) does.
    pub fn from_jwks(set: &jsonwebtoken::jwk::JwkSet) -> Result<Self, ConfigError> {
        let json = serde_json::to_string(set)
            .map_err(|e| ConfigError::new(format!("invalid JWK Set: {e}")))?;
        Self::from_jwks_json(&json)
    }

    /// The keys of `self` and then of `other`; a key of `other` whose `kid` (or absence of
    /// one) is already taken is left out. Returns the merged set and the `kid`s left out.
    pub fn merged_with(&self, other: &KeySet) -> (KeySet, Vec<Option<String>>) {
        let mut merged = self.clone();
        let mut left_out = Vec::new();
        for key in other.iter() {
            if merged.insert(key.clone()).is_err() {
                left_out.push(key.kid.clone());
            }
        }
        (merged, left_out)
    }

    /// Whether both sets hold the same keys (same `kid`s, algorithms and key material).
    pub fn same_keys(&self, other: &KeySet) -> bool {
        let print = |set: &KeySet| {
            let mut v: Vec<(Option<String>, [u8; 32])> =
                set.iter().map(|k| (k.kid.clone(), k.fingerprint)).collect();
            v.sort();
            v
        };
        self.len() == other.len() && print(self) == print(other)
    }

    /// The `kid`s of the keys, sorted (the key without `kid` is not listed).
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.by_kid.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// The key for a token header's `kid` (or the key without `kid` when the token has none).
    pub fn get(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.default.as_ref(),
        }
    }

    /// The key for a token without `kid`: the key without `kid`, or else the only key that
    /// allows the token's algorithm.
    pub(crate) fn for_token_without_kid(
        &self,
        alg: jsonwebtoken::Algorithm,
    ) -> Option<&VerifyingKey> {
        if let Some(key) = &self.default {
            return Some(key);
        }
        let mut fitting = self.by_kid.values().filter(|k| k.allows(alg));
        match (fitting.next(), fitting.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    /// Iterates over all keys.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.default.iter().chain(self.by_kid.values())
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + usize::from(self.default.is_some())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secret_is_refused() {
        assert!(VerifyingKey::hmac(Algorithm::HS256, &[1; 31]).is_err());
        assert!(VerifyingKey::hmac(Algorithm::HS512, &[1; 32]).is_err());
        assert!(VerifyingKey::hmac(Algorithm::RS256, &[1; 64]).is_err());
    }

    #[test]
    fn duplicate_kids_and_defaults_are_refused() {
        let k = || VerifyingKey::hmac(Algorithm::HS256, &[1; 32]).unwrap();
        assert!(KeySet::new().with_key(k()).unwrap().with_key(k()).is_err());
        let set = KeySet::new().with_key(k().with_kid("a")).unwrap();
        assert!(set.with_key(k().with_kid("a")).is_err());
    }

    #[test]
    fn jwks_pins_algorithms() {
        let json = r#"{"keys":[
          {"kty":"oct","kid":"h","alg":"HS256","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
          {"kty":"OKP","kid":"e","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        let set = KeySet::from_jwks_json(json).unwrap();
        assert_eq!(set.get(Some("h")).unwrap().algorithms(), [Algorithm::HS256]);
        assert_eq!(set.get(Some("e")).unwrap().algorithms(), [Algorithm::EdDSA]);
        assert!(set.get(None).is_none());
        // A symmetric key without `alg` is skipped, not guessed.
        let no_alg = r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert!(KeySet::from_jwks_json(no_alg).unwrap().is_empty());
        assert!(KeySet::from_jwks_json("{").is_err());
        assert!(KeySet::from_jwks_json(r#"{"keys":{}}"#).is_err());
    }
}
