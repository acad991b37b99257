//! Keys for verifying tokens, each pinned to one algorithm and selected by `kid`.
//!
//! A [`KeySet`] holds any number of [`VerifyingKey`]s. A token's `kid` header picks its key by
//! exact map lookup (never a path, URL or query); the token's `alg` must then equal the key's
//! pinned algorithm, so a token can never choose how it is verified (no `alg: none`, no
//! RS256/HS256 confusion). At most one key may have no `kid`: it verifies tokens that carry
//! none. Several keys with distinct `kid`s make key rotation possible without downtime.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::crypto::ensure_provider;
use crate::error::ConfigError;

/// One public key (or HMAC secret) pinned to one algorithm.
#[derive(Clone)]
pub struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"REDACTED")
            .finish()
    }
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
        Ok(Self::from_parts(alg, DecodingKey::from_secret(secret)))
    }

    /// An RSA public key in PEM for RS256/384/512 or PS256/384/512.
    pub fn rsa_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        check_family(alg, AlgorithmFamily::Rsa)?;
        let key = DecodingKey::from_rsa_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid RSA public key PEM: {e}")))?;
        Ok(Self::from_parts(alg, key))
    }

    /// An EC public key in PEM for ES256 (P-256) or ES384 (P-384).
    pub fn ec_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        check_family(alg, AlgorithmFamily::Ec)?;
        let key = DecodingKey::from_ec_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid EC public key PEM: {e}")))?;
        Ok(Self::from_parts(alg, key))
    }

    /// An Ed25519 public key in PEM for EdDSA.
    pub fn ed_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        let key = DecodingKey::from_ed_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid Ed25519 public key PEM: {e}")))?;
        Ok(Self::from_parts(Algorithm::EdDSA, key))
    }

    /// A key from one JSON Web Key.
    ///
    /// The algorithm comes from the JWK's `alg`, or from its curve for EC and OKP keys; RSA and
    /// symmetric JWKs without `alg` are refused, since their algorithm would be a guess.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        ensure_provider();
        let declared = match &jwk.common.key_algorithm {
            None => None,
            Some(ka) => Some(
                Algorithm::try_from(*ka)
                    .map_err(|_| ConfigError::new(format!("JWK alg {ka} cannot sign JWTs")))?,
            ),
        };
        let implied = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                ref c => return Err(ConfigError::new(format!("unsupported EC curve {c:?}"))),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
                ref c => return Err(ConfigError::new(format!("unsupported OKP curve {c:?}"))),
            },
            AlgorithmParameters::RSA(_) | AlgorithmParameters::OctetKey(_) => None,
            _ => return Err(ConfigError::new("unsupported JWK key type")),
        };
        let alg = match (declared, implied) {
            (Some(d), Some(i)) if d != i => {
                return Err(ConfigError::new(format!(
                    "JWK alg {d:?} does not match its curve ({i:?})"
                )));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(ConfigError::new(
                    "RSA and symmetric JWKs need an explicit `alg`",
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| ConfigError::new(format!("invalid JWK: {e}")))?;
        check_family(alg, key.family())?;
        if let AlgorithmParameters::OctetKey(_) = jwk.algorithm {
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            if len < min_hmac_len(alg) {
                return Err(ConfigError::new(
                    "symmetric JWK shorter than its hash output",
                ));
            }
        }
        let mut key = Self::from_parts(alg, key);
        key.kid = jwk.common.key_id.clone();
        Ok(key)
    }

    fn from_parts(alg: Algorithm, key: DecodingKey) -> Self {
        Self {
            kid: None,
            alg,
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

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
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

    /// Builds a key set from a JWK Set JSON document (`{"keys":[…]}`).
    ///
    /// Every key must be usable (see [`VerifyingKey::from_jwk`]); keys whose `use` is not `sig`
    /// are skipped.
    pub fn from_jwks_json(json: &str) -> Result<Self, ConfigError> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| ConfigError::new(format!("invalid JWK Set: {e}")))?;
        Self::from_jwks(&set)
    }

    /// Builds a key set from a parsed [`JwkSet`].
    pub fn from_jwks(set: &JwkSet) -> Result<Self, ConfigError> {
        let mut keys = Self::new();
        for jwk in &set.keys {
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            keys.insert(VerifyingKey::from_jwk(jwk)?)?;
        }
        Ok(keys)
    }

    /// The key for a token header's `kid` (or the key without `kid` when the token has none).
    pub fn get(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None => self.default.as_ref(),
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
        assert_eq!(set.get(Some("h")).unwrap().algorithm(), Algorithm::HS256);
        assert_eq!(set.get(Some("e")).unwrap().algorithm(), Algorithm::EdDSA);
        assert!(set.get(None).is_none());
        let no_alg = r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert!(KeySet::from_jwks_json(no_alg).is_err());
        assert!(KeySet::from_jwks_json("{").is_err());
    }
}
