//! ID token validation beyond what the [`Verifier`](crate::Verifier) checks (OpenID Connect
//! Core 1.0 §3.1.3.7): `aud`/`azp`, `nonce`, `at_hash`, `auth_time` against `max_age`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::claims::{Audience, ClaimSet};

/// The ID token claims the registered [`ClaimSet`] does not have.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct IdTokenClaims {
    #[serde(default)]
    pub(crate) nonce: Option<String>,
    #[serde(default)]
    pub(crate) azp: Option<String>,
    #[serde(default)]
    pub(crate) at_hash: Option<String>,
}

/// What the login was started with, to check the ID token against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) nonce: &'a str,
    /// The `max_age` sent, in seconds.
    pub(crate) max_age: Option<u64>,
    pub(crate) now: u64,
    pub(crate) leeway: u64,
}

/// `at_hash` (§3.1.3.6): base64url of the left half of the hash of the access token, with
/// the hash of the ID token's `alg` (SHA-512 for EdDSA, as for Ed25519). `None` for an
/// algorithm without a defined hash.
pub(crate) fn at_hash(alg: Algorithm, access_token: &str) -> Option<String> {
    let digest: Vec<u8> = match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => {
            Sha256::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            Sha384::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            Sha512::digest(access_token.as_bytes()).to_vec()
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

/// Checks a verified ID token's claims (signature, `iss`, `exp`, `iat` are the verifier's).
/// The error is a fixed description for the log, never a claim's value.
pub(crate) fn check(
    claims: &ClaimSet<IdTokenClaims>,
    alg: Algorithm,
    access_token: Option<&str>,
    expected: Expected<'_>,
) -> Result<(), &'static str> {
    if claims.sub.as_deref().is_none_or(str::is_empty) {
        return Err("ID token has no sub");
    }
    if claims.iss.is_none() || claims.exp.is_none() || claims.iat.is_none() {
        return Err("ID token lacks iss, exp or iat");
    }
    let several = match &claims.aud {
        Some(aud @ Audience::One(_)) | Some(aud @ Audience::Many(_))
            if aud.contains(expected.client_id) =>
        {
            matches!(aud, Audience::Many(all) if all.len() > 1)
        }
        _ => return Err("ID token aud does not contain the client_id"),
    };
    match claims.custom.azp.as_deref() {
        Some(azp) if azp != expected.client_id => return Err("ID token azp is another client"),
        None if several => return Err("ID token with several audiences has no azp"),
        _ => {}
    }
    let nonce_ok = claims
        .custom
        .nonce
        .as_deref()
        .is_some_and(|n| bool::from(n.as_bytes().ct_eq(expected.nonce.as_bytes())));
    if !nonce_ok {
        return Err("ID token nonce does not match the login's");
    }
    if let (Some(claimed), Some(token)) = (claims.custom.at_hash.as_deref(), access_token) {
        let ok = at_hash(alg, token)
            .is_some_and(|computed| bool::from(computed.as_bytes().ct_eq(claimed.as_bytes())));
        if !ok {
            return Err("ID token at_hash does not match the access token");
        }
    }
    if let Some(max_age) = expected.max_age {
        let Some(auth_time) = claims.auth_time else {
            return Err("ID token has no auth_time though max_age was sent");
        };
        let limit = auth_time
            .saturating_add(max_age)
            .saturating_add(expected.leeway);
        if expected.now > limit {
            return Err("ID token auth_time is older than max_age");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> ClaimSet<IdTokenClaims> {
        serde_json::from_value(json).unwrap()
    }

    fn expected() -> Expected<'static> {
        Expected {
            client_id: "rp",
            nonce: "n1",
            max_age: None,
            now: 1000,
            leeway: 0,
        }
    }

    #[test]
    fn at_hash_of_the_spec_example() {
        // OpenID Connect Core 1.0 appendix A.3 (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            at_hash(Algorithm::RS256, token).unwrap(),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash(Algorithm::EdDSA, token).unwrap().len(), 43);
        assert_eq!(at_hash(Algorithm::ES384, token).unwrap().len(), 32);
    }

    #[test]
    fn claim_checks() {
        let base = serde_json::json!({"iss":"op","sub":"alice","aud":"rp","exp":2000,"iat":1000,"nonce":"n1"});
        let ok = |v: serde_json::Value, e: Expected<'_>, at: Option<&str>| {
            check(&claims(v), Algorithm::RS256, at, e)
        };
        assert_eq!(ok(base.clone(), expected(), None), Ok(()));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = base.clone();
            c.as_object_mut().unwrap().remove(k);
            c
        };
        let refused = [
            without("sub"),
            without("nonce"),
            without("iat"),
            with("nonce", "n2".into()),
            with("aud", "other".into()),
            with("aud", serde_json::json!(["rp", "other"])),
            with("azp", "other".into()),
            with("at_hash", "wrong".into()),
        ];
        for c in refused {
            assert!(ok(c.clone(), expected(), Some("at")).is_err(), "{c}");
        }
        let mut many = with("aud", serde_json::json!(["rp", "other"]));
        many["azp"] = "rp".into();
        assert_eq!(ok(many, expected(), None), Ok(()));
        let good_hash = at_hash(Algorithm::RS256, "at").unwrap();
        assert_eq!(
            ok(with("at_hash", good_hash.into()), expected(), Some("at")),
            Ok(())
        );
        // max_age: auth_time required and recent enough.
        let e = Expected {
            max_age: Some(100),
            ..expected()
        };
        assert!(ok(base.clone(), e, None).is_err());
        assert_eq!(ok(with("auth_time", 950.into()), e, None), Ok(()));
        assert!(ok(with("auth_time", 899.into()), e, None).is_err());
    }
}
