//! RFC 7638 JWK thumbprints (SHA-256), the `jkt` a DPoP-bound token carries in `cnf`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use sha2::{Digest, Sha256};

/// A JWK whose thumbprint this crate does not compute: a symmetric (`oct`) key, an unknown key
/// type, or a curve that does not belong to its key type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no JWK thumbprint for this key: {0}")]
pub struct ThumbprintError(&'static str);

/// The RFC 7638 thumbprint of a public key: base64url (no padding) of the SHA-256 of its
/// required members, in lexicographic order, without whitespace — `crv`, `kty`, `x`, `y` for
/// `EC`; `e`, `kty`, `n` for `RSA`; `crv`, `kty`, `x` for `OKP`. Other members (`kid`, `alg`,
/// `use`, …) do not count.
///
/// This is the value of `cnf.jkt` in a token bound to the key (RFC 9449 §6.1).
///
/// ```
/// use tower_token_auth::dpop::jwk_thumbprint;
///
/// // RFC 7638 §3.1
/// let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::json!({
///     "kty": "RSA",
///     "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
///     "e": "AQAB",
///     "alg": "RS256",
///     "kid": "2011-04-29",
/// }))?;
/// assert_eq!(jwk_thumbprint(&jwk)?, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn jwk_thumbprint(jwk: &Jwk) -> Result<String, ThumbprintError> {
    let input = thumbprint_input(jwk)?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes())))
}

/// The JSON object RFC 7638 §3.2 hashes. Member values are JSON-escaped, so a member with
/// unusual characters cannot change the object's structure.
fn thumbprint_input(jwk: &Jwk) -> Result<String, ThumbprintError> {
    let s = |v: &str| {
        // Key members are base64url, which needs no escaping; anything else is escaped.
        if v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            format!("\"{v}\"")
        } else {
            serde_json::Value::from(v).to_string()
        }
    };
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            let crv = match ec.curve {
                EllipticCurve::P256 => "P-256",
                EllipticCurve::P384 => "P-384",
                EllipticCurve::P521 => "P-521",
                _ => {
                    return Err(ThumbprintError(
                        "EC key on a curve that is not P-256/384/521",
                    ));
                }
            };
            Ok(format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                s(crv),
                s(&ec.x),
                s(&ec.y)
            ))
        }
        AlgorithmParameters::RSA(rsa) => Ok(format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            s(&rsa.e),
            s(&rsa.n)
        )),
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Ok(format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#,
                s(&okp.x)
            )),
            _ => Err(ThumbprintError("OKP key on a curve that is not Ed25519")),
        },
        AlgorithmParameters::OctetKey(_) => Err(ThumbprintError("symmetric (oct) key")),
        _ => Err(ThumbprintError("unknown key type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwk(v: serde_json::Value) -> Jwk {
        serde_json::from_value(v).expect("a JWK")
    }

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn rfc7638_example() {
        let key = jwk(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(
            jwk_thumbprint(&key).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    /// The hashed input is exactly RFC 7638's: required members only, sorted, no whitespace.
    #[test]
    fn inputs_have_required_members_in_order() {
        let ec = jwk(
            json!({"kty": "EC", "crv": "P-256", "x": "AAA", "y": "BBB", "kid": "k", "use": "sig"}),
        );
        assert_eq!(
            thumbprint_input(&ec).unwrap(),
            r#"{"crv":"P-256","kty":"EC","x":"AAA","y":"BBB"}"#
        );
        let okp = jwk(json!({"kty": "OKP", "crv": "Ed25519", "x": "XXX", "alg": "EdDSA"}));
        assert_eq!(
            thumbprint_input(&okp).unwrap(),
            r#"{"crv":"Ed25519","kty":"OKP","x":"XXX"}"#
        );
        let rsa = jwk(json!({"kty": "RSA", "n": "NNN", "e": "AQAB"}));
        assert_eq!(
            thumbprint_input(&rsa).unwrap(),
            r#"{"e":"AQAB","kty":"RSA","n":"NNN"}"#
        );
    }

    /// RFC 8037 appendix A.3: the Ed25519 example key's thumbprint.
    #[test]
    fn rfc8037_okp_example() {
        let key = jwk(json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }));
        assert_eq!(
            jwk_thumbprint(&key).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn symmetric_and_mismatched_curves_have_none() {
        let oct = jwk(json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(jwk_thumbprint(&oct).is_err());
        let ec_ed = jwk(json!({"kty": "EC", "crv": "Ed25519", "x": "AAA", "y": "BBB"}));
        assert!(jwk_thumbprint(&ec_ed).is_err());
        let okp_p256 = jwk(json!({"kty": "OKP", "crv": "P-256", "x": "AAA"}));
        assert!(jwk_thumbprint(&okp_p256).is_err());
    }
}
