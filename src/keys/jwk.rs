//! JSON Web Keys (RFC 7517) as real providers publish them.
//!
//! A JWK Set is read key by key: a key this crate cannot use (an unknown `kty`, curve or `alg`,
//! an encryption key, a post-quantum `AKP` key, malformed members) is skipped and reported as a
//! [`SkippedKey`], never failing the whole set. RSA keys without `alg` (Entra ID, Azure AD B2C,
//! Cognito and Ping publish them so) verify the algorithms the [`JwkPolicy`] allows for RSA,
//! RS256 by default; symmetric (`oct`) keys need an explicit `alg`, and a policy can refuse
//! them altogether (remote JWK Sets do by default: a public key set has no business carrying
//! shared secrets).

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::{KeySet, VerifyingKey, fingerprint, min_hmac_len};
use crate::crypto::ensure_provider;
use crate::error::ConfigError;

/// Every algorithm this crate verifies (what a key may be pinned to).
pub(crate) const SUPPORTED: &[Algorithm] = &[
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which keys of a JWK Set are used, and with which algorithms.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_token_auth::keys::JwkPolicy;
///
/// // Entra ID publishes RSA keys without `alg`; its tokens are RS256 or PS256.
/// let policy = JwkPolicy::new()
///     .algorithms([Algorithm::RS256, Algorithm::PS256])
///     .without_symmetric_keys();
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkPolicy {
    algorithms: Option<Vec<Algorithm>>,
    rsa_without_alg: Option<Vec<Algorithm>>,
    symmetric: bool,
}

impl Default for JwkPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl JwkPolicy {
    /// Every supported algorithm for keys that declare one; RS256 for RSA keys without `alg`;
    /// symmetric keys accepted (with an explicit `alg`).
    pub fn new() -> Self {
        Self {
            algorithms: None,
            rsa_without_alg: None,
            symmetric: true,
        }
    }

    /// Only these algorithms: a key declaring another is skipped, and an RSA key without
    /// `alg` verifies those of them that are RSA algorithms (skipped when there are none).
    /// Unsupported algorithms in the list are ignored.
    pub fn algorithms<I: IntoIterator<Item = Algorithm>>(mut self, algorithms: I) -> Self {
        let mut list: Vec<Algorithm> = algorithms
            .into_iter()
            .filter(|a| SUPPORTED.contains(a))
            .collect();
        list.dedup();
        self.algorithms = Some(list);
        self
    }

    /// What an RSA key without `alg` verifies, without restricting keys that declare their
    /// algorithm: the RSA algorithms among `algorithms` that the policy allows (skipped when
    /// there are none). Overrides the RSA default of [`algorithms`](Self::algorithms); what
    /// discovery sets from a provider's `*_signing_alg_values_supported`.
    ///
    /// ```
    /// use jsonwebtoken::Algorithm;
    /// use tower_token_auth::keys::JwkPolicy;
    ///
    /// // RSA keys without `alg` verify RS256 and PS256; EC keys still verify ES256.
    /// let policy = JwkPolicy::new()
    ///     .rsa_algorithms([Algorithm::RS256, Algorithm::PS256])
    ///     .without_symmetric_keys();
    /// assert!(policy.allows(Algorithm::ES256));
    /// ```
    pub fn rsa_algorithms<I: IntoIterator<Item = Algorithm>>(mut self, algorithms: I) -> Self {
        let mut list: Vec<Algorithm> = algorithms
            .into_iter()
            .filter(|a| SUPPORTED.contains(a) && a.family() == AlgorithmFamily::Rsa)
            .collect();
        list.dedup();
        self.rsa_without_alg = Some(list);
        self
    }

    /// Skip symmetric (`oct`) keys: what a public JWK Set from a provider should get.
    pub fn without_symmetric_keys(mut self) -> Self {
        self.symmetric = false;
        self
    }

    /// Whether `alg` is allowed.
    pub fn allows(&self, alg: Algorithm) -> bool {
        SUPPORTED.contains(&alg)
            && self.algorithms.as_ref().is_none_or(|l| l.contains(&alg))
            && (self.symmetric || alg.family() != AlgorithmFamily::Hmac)
    }

    /// What an RSA key without `alg` verifies.
    fn rsa_without_alg(&self) -> Vec<Algorithm> {
        if let Some(list) = &self.rsa_without_alg {
            return list.clone();
        }
        match &self.algorithms {
            None => vec![Algorithm::RS256],
            Some(list) => list
                .iter()
                .copied()
                .filter(|a| a.family() == AlgorithmFamily::Rsa)
                .collect(),
        }
    }
}

/// A key of a JWK Set that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SkippedKey {
    /// Its `kid`, when it has a readable one.
    pub kid: Option<String>,
    /// Why it was skipped (for the log).
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key `{kid}`: {}", self.reason),
            None => write!(f, "key without kid: {}", self.reason),
        }
    }
}

/// Reads a JWK Set document: the usable keys, and the ones skipped. Only a document that is not
/// a JSON object with a `keys` array is an error.
pub fn parse_jwks(
    json: &str,
    policy: &JwkPolicy,
) -> Result<(KeySet, Vec<SkippedKey>), ConfigError> {
    let doc: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| ConfigError::new(format!("invalid JWK Set: {e}")))?;
    let Some(members) = doc.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(ConfigError::new("invalid JWK Set: no `keys` array"));
    };
    let mut keys = KeySet::new();
    let mut skipped = Vec::new();
    for member in members {
        let kid = member
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let skip = |reason: String| SkippedKey {
            kid: kid.clone(),
            reason,
        };
        let jwk: Jwk = match serde_json::from_value(member.clone()) {
            Ok(jwk) => jwk,
            Err(e) => {
                let kty = member.get("kty").and_then(serde_json::Value::as_str);
                skipped.push(skip(format!("not a usable JWK (kty {kty:?}): {e}")));
                continue;
            }
        };
        match verifying_key(&jwk, policy) {
            Ok(key) => {
                if let Err(e) = keys.insert(key) {
                    skipped.push(skip(e.to_string()));
                }
            }
            Err(e) => skipped.push(skip(e.to_string())),
        }
    }
    Ok((keys, skipped))
}

/// Logs each skipped key at warn.
pub(crate) fn log_skipped(skipped: &[SkippedKey]) {
    for key in skipped {
        tracing::warn!(target: "tower_token_auth", kid = ?key.kid, reason = %key.reason, "JWK skipped");
    }
}

/// One JWK as a verifying key under `policy`.
pub(crate) fn verifying_key(jwk: &Jwk, policy: &JwkPolicy) -> Result<VerifyingKey, ConfigError> {
    ensure_provider();
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(other) => {
            return Err(ConfigError::new(format!(
                "not a signing key (`use` is {other:?})"
            )));
        }
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return Err(ConfigError::new("`key_ops` does not include `verify`"));
    }
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
        _ => return Err(ConfigError::new("unsupported key type")),
    };
    let symmetric = matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_));
    if symmetric && !policy.symmetric {
        return Err(ConfigError::new(
            "a symmetric key, not accepted from this source",
        ));
    }
    let algs = match (declared, implied) {
        (Some(d), Some(i)) if d != i => {
            return Err(ConfigError::new(format!(
                "JWK alg {d:?} does not match its curve ({i:?})"
            )));
        }
        (Some(a), _) | (None, Some(a)) => vec![a],
        (None, None) if symmetric => {
            return Err(ConfigError::new("symmetric JWKs need an explicit `alg`"));
        }
        (None, None) => policy.rsa_without_alg(),
    };
    let algs: Vec<Algorithm> = algs.into_iter().filter(|a| policy.allows(*a)).collect();
    let Some(first) = algs.first().copied() else {
        return Err(ConfigError::new(
            "its algorithm is not among the allowed algorithms",
        ));
    };
    let key =
        DecodingKey::from_jwk(jwk).map_err(|e| ConfigError::new(format!("invalid JWK: {e}")))?;
    if key.family() != first.family() {
        return Err(ConfigError::new(format!(
            "algorithm {first:?} does not fit a {:?} key",
            key.family()
        )));
    }
    if symmetric {
        let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
        if len < min_hmac_len(first) {
            return Err(ConfigError::new(
                "symmetric JWK shorter than its hash output",
            ));
        }
    }
    let material = serde_json::to_vec(&jwk.algorithm).unwrap_or_default();
    Ok(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        fingerprint: fingerprint(&algs, &material),
        algs,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // tests/keys/rs256-public.jwk.json, inline so the packaged crate's unit tests build.
    const RSA: &str = r#"{"kty": "RSA", "n": "yhMmW8j6wH6krYHH794eI4N_XxnatxtJ30xl20uPu-fh06iPrcehbO2rU9YBUaxnlJuklupq7tKEdSgW-Ev_yyerAtPCmnx_iy6CaFbLyPIBUisYL1fQTCU-w44GCeblYPG4L4wIvL-2zLvXjRgR6N_y7AR7WqzU6bjrWLsYltTEScn79rAyUi59pAo8maZJXkvsaHVtcNPHEwQkjmVoZyHvnDemaEaha8sbR5xCyWYHjzRCgjfXpo4AOafF6fD-vdqULiPHH8ve4N4uUP-0kPfm3rjRsoENE3aE790nIAejhHfeIILN_fVIOT3uwtfyK5NifQxGOABcBcZ9_asGuQ", "e": "AQAB"}"#;
    const EC: &str = r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;
    const ED: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    const OCT: &str = r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;

    /// `base` with `extra` members and `kid` "k".
    fn jwk(base: &str, extra: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
        let extra: serde_json::Value = serde_json::from_str(extra).unwrap();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v["kid"] = "k".into();
        v.to_string()
    }

    /// The algorithms of the one key, or `None` when it was skipped.
    fn algs(member: &str, policy: &JwkPolicy) -> Option<Vec<Algorithm>> {
        let (keys, skipped) = parse_jwks(&format!(r#"{{"keys":[{member}]}}"#), policy).unwrap();
        assert_eq!(keys.len() + skipped.len(), 1, "{member}");
        keys.get(Some("k")).map(|k| k.algorithms().to_vec())
    }

    #[test]
    fn every_jwk_shape() {
        use Algorithm::*;
        let any = JwkPolicy::new();
        let public = JwkPolicy::new().without_symmetric_keys();
        let rsa_ps = JwkPolicy::new().algorithms([RS256, PS256, ES256]);
        let ec_only = JwkPolicy::new().algorithms([ES256]);
        let advertised = JwkPolicy::new().rsa_algorithms([PS256, ES256, HS256]);
        let advertised_not_allowed = ec_only.clone().rsa_algorithms([RS256]);
        let cases: Vec<(&str, String, &JwkPolicy, Option<Vec<Algorithm>>)> = vec![
            ("RSA without alg", jwk(RSA, "{}"), &any, Some(vec![RS256])),
            (
                "RSA without alg, RS+PS allowed",
                jwk(RSA, "{}"),
                &rsa_ps,
                Some(vec![RS256, PS256]),
            ),
            (
                "RSA without alg, no RSA allowed",
                jwk(RSA, "{}"),
                &ec_only,
                None,
            ),
            (
                "RSA without alg, PS256 advertised",
                jwk(RSA, "{}"),
                &advertised,
                Some(vec![PS256]),
            ),
            (
                "RSA RS512, PS256 advertised for keys without alg",
                jwk(RSA, r#"{"alg":"RS512"}"#),
                &advertised,
                Some(vec![RS512]),
            ),
            (
                "RSA without alg, advertised but not allowed",
                jwk(RSA, "{}"),
                &advertised_not_allowed,
                None,
            ),
            (
                "RSA RS256",
                jwk(RSA, r#"{"alg":"RS256"}"#),
                &any,
                Some(vec![RS256]),
            ),
            (
                "RSA PS384",
                jwk(RSA, r#"{"alg":"PS384"}"#),
                &any,
                Some(vec![PS384]),
            ),
            (
                "RSA alg not allowed",
                jwk(RSA, r#"{"alg":"RS512"}"#),
                &rsa_ps,
                None,
            ),
            (
                "RSA use sig",
                jwk(RSA, r#"{"use":"sig"}"#),
                &any,
                Some(vec![RS256]),
            ),
            ("RSA use enc", jwk(RSA, r#"{"use":"enc"}"#), &any, None),
            (
                "RSA RSA-OAEP",
                jwk(RSA, r#"{"alg":"RSA-OAEP"}"#),
                &any,
                None,
            ),
            (
                "RSA key_ops verify",
                jwk(RSA, r#"{"key_ops":["verify"]}"#),
                &any,
                Some(vec![RS256]),
            ),
            (
                "RSA key_ops encrypt",
                jwk(RSA, r#"{"key_ops":["encrypt"]}"#),
                &any,
                None,
            ),
            (
                "RSA with an HS alg",
                jwk(RSA, r#"{"alg":"HS256"}"#),
                &any,
                None,
            ),
            (
                "RSA unknown alg",
                jwk(RSA, r#"{"alg":"RS1024"}"#),
                &any,
                None,
            ),
            ("RSA bad n", jwk(RSA, r#"{"n":"!!"}"#), &any, None),
            ("P-256 without alg", jwk(EC, "{}"), &any, Some(vec![ES256])),
            (
                "P-256 ES256",
                jwk(EC, r#"{"alg":"ES256"}"#),
                &any,
                Some(vec![ES256]),
            ),
            (
                "P-256 claiming ES384",
                jwk(EC, r#"{"alg":"ES384"}"#),
                &any,
                None,
            ),
            ("P-521", jwk(EC, r#"{"crv":"P-521"}"#), &any, None),
            ("secp256k1", jwk(EC, r#"{"crv":"secp256k1"}"#), &any, None),
            ("Ed25519", jwk(ED, "{}"), &any, Some(vec![EdDSA])),
            (
                "Ed25519 EdDSA",
                jwk(ED, r#"{"alg":"EdDSA"}"#),
                &any,
                Some(vec![EdDSA]),
            ),
            ("Ed448", jwk(ED, r#"{"crv":"Ed448"}"#), &any, None),
            ("X25519", jwk(ED, r#"{"crv":"X25519"}"#), &any, None),
            ("EdDSA not allowed", jwk(ED, "{}"), &rsa_ps, None),
            (
                "oct HS256",
                jwk(OCT, r#"{"alg":"HS256"}"#),
                &any,
                Some(vec![HS256]),
            ),
            ("oct without alg", jwk(OCT, "{}"), &any, None),
            (
                "oct in a public set",
                jwk(OCT, r#"{"alg":"HS256"}"#),
                &public,
                None,
            ),
            (
                "oct too short for HS512",
                jwk(OCT, r#"{"alg":"HS512"}"#),
                &any,
                None,
            ),
            (
                "AKP (post-quantum)",
                r#"{"kty":"AKP","kid":"k","alg":"ML-DSA-65","pub":"AAAA"}"#.into(),
                &any,
                None,
            ),
            (
                "unknown kty",
                r#"{"kty":"XYZ","kid":"k"}"#.into(),
                &any,
                None,
            ),
            ("no kty", r#"{"kid":"k","n":"AQAB"}"#.into(), &any, None),
            ("not an object", r#""k""#.into(), &any, None),
        ];
        for (name, member, policy, want) in cases {
            let got = if member.starts_with('"') {
                let (keys, skipped) =
                    parse_jwks(&format!(r#"{{"keys":[{member}]}}"#), policy).unwrap();
                assert!(keys.is_empty() && skipped.len() == 1, "{name}");
                None
            } else {
                algs(&member, policy)
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_set_survives_its_bad_keys() {
        let doc = format!(
            r#"{{"keys":[{},{},{},{}]}}"#,
            r#"{"kty":"AKP","kid":"pq","alg":"ML-DSA-44","pub":"AAAA"}"#,
            jwk(EC, r#"{"crv":"P-521"}"#).replace(r#""kid":"k""#, r#""kid":"p521""#),
            jwk(RSA, "{}"),
            jwk(RSA, "{}"),
        );
        let (keys, skipped) = parse_jwks(&doc, &JwkPolicy::new()).unwrap();
        assert_eq!(keys.kids(), ["k"]);
        let reasons: Vec<_> = skipped.iter().map(|s| s.kid.as_deref()).collect();
        // The second key with kid "k" is left out, not allowed to replace the first.
        assert_eq!(reasons, [Some("pq"), Some("p521"), Some("k")]);
        for s in &skipped {
            assert!(!s.to_string().is_empty());
        }
    }

    #[test]
    fn only_a_document_that_is_no_jwk_set_is_an_error() {
        for doc in ["", "{", "[]", r#"{"keys":{}}"#, r#"{"no":[]}"#, "null"] {
            assert!(parse_jwks(doc, &JwkPolicy::new()).is_err(), "{doc}");
        }
        let (keys, skipped) = parse_jwks(r#"{"keys":[]}"#, &JwkPolicy::new()).unwrap();
        assert!(keys.is_empty() && skipped.is_empty());
    }

    #[test]
    fn fingerprints_tell_material_apart() {
        let parse = |doc: &str| parse_jwks(doc, &JwkPolicy::new()).unwrap().0;
        let a = parse(&format!(r#"{{"keys":[{}]}}"#, jwk(RSA, "{}")));
        let again = parse(&format!(r#"{{"keys":[{}]}}"#, jwk(RSA, "{}")));
        assert!(a.same_keys(&again));
        let ps = parse_jwks(
            &format!(r#"{{"keys":[{}]}}"#, jwk(RSA, "{}")),
            &JwkPolicy::new().algorithms([Algorithm::RS256, Algorithm::PS256]),
        )
        .unwrap()
        .0;
        assert!(
            !a.same_keys(&ps),
            "other algorithms for the same key are a change"
        );
        let ec = parse(&format!(r#"{{"keys":[{}]}}"#, jwk(EC, "{}")));
        assert!(!a.same_keys(&ec));
    }
}
