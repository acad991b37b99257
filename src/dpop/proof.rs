//! One DPoP proof JWT: structure, header, embedded key and signature (RFC 9449 §4.2, §4.3
//! steps 2 and 4–7), then its claims against the request (steps 3 and 8–12).

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::thumbprint::jwk_thumbprint;
use crate::InvalidDpopProof;

/// The longest `jti` accepted, in bytes. RFC 9449 asks for at least 96 random bits (16
/// base64url characters, or a 36-character UUID); 256 leaves room for any reasonable encoding.
pub const MAX_JTI_LEN: usize = 256;

/// The `typ` of a DPoP proof, compared exactly (RFC 9449 §4.2).
const DPOP_TYP: &str = "dpop+jwt";

/// JWK members that belong to private or symmetric keys (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC
/// 8037 §2). A proof's `jwk` must have none of them.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RSA modulus sizes accepted, in bits: RFC 7518 §3.3 asks for 2048 at least; the upper bound
/// caps the cost of a verification an unauthenticated client can ask for.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A proof whose signature verified with the key in its header.
#[derive(Debug)]
pub(crate) struct SignedProof {
    pub(crate) alg: Algorithm,
    pub(crate) jwk: Jwk,
    pub(crate) jkt: String,
    pub(crate) claims: Map<String, Value>,
}

/// Checks the JWS: three base64url segments of JSON objects (no more than `max_len` bytes in
/// all), `typ` `dpop+jwt`, an `alg` of `algorithms`, a public `jwk` fit for that `alg`, and a
/// signature that verifies with it.
pub(crate) fn verify_signature(
    proof: &str,
    algorithms: &[Algorithm],
    max_len: usize,
) -> Result<SignedProof, InvalidDpopProof> {
    use InvalidDpopProof::*;
    if proof.len() > max_len {
        return Err(Malformed);
    }
    let mut segments = proof.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Malformed);
    };
    let header = decode_object(header)?;

    if header.get("typ").and_then(Value::as_str) != Some(DPOP_TYP) {
        return Err(WrongType);
    }
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(Malformed);
    };
    let alg = Algorithm::from_str(alg)
        .ok()
        .filter(|a| algorithms.contains(a))
        .ok_or(AlgorithmNotAllowed)?;
    // RFC 7515 §4.1.11: extensions this code does not know must be refused; it knows none.
    if header.contains_key("crit") {
        return Err(Malformed);
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(BadKey);
    };
    let jwk = public_jwk(jwk, alg)?;
    let jkt = jwk_thumbprint(&jwk).map_err(|_| BadKey)?;

    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(Malformed);
    }
    crate::crypto::ensure_provider();
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| BadKey)?;
    let signed = &proof[..header_and_payload_len(proof)];
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, alg) {
        Ok(true) => {}
        Ok(false) => return Err(BadSignature),
        // The backend could not use the key (e.g. an RSA exponent it refuses).
        Err(_) => return Err(BadKey),
    }

    let claims = decode_object(payload)?;
    Ok(SignedProof {
        alg,
        jwk,
        jkt,
        claims,
    })
}

/// The length of `header.payload`, the signed part of a compact JWS.
fn header_and_payload_len(proof: &str) -> usize {
    proof.rfind('.').unwrap_or(0)
}

/// A base64url (unpadded) segment holding a JSON object.
fn decode_object(segment: &str) -> Result<Map<String, Value>, InvalidDpopProof> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| InvalidDpopProof::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(InvalidDpopProof::Malformed),
    }
}

/// The header's `jwk` as a public key of `alg`'s type: no private or symmetric members, an
/// `alg` and `use` (when present) that agree, the right curve and sizes.
fn public_jwk(members: &Map<String, Value>, alg: Algorithm) -> Result<Jwk, InvalidDpopProof> {
    use InvalidDpopProof::BadKey;
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(BadKey);
    }
    if !matches!(
        members.get("kty").and_then(Value::as_str),
        Some("EC" | "RSA" | "OKP")
    ) {
        return Err(BadKey);
    }
    if let Some(key_alg) = members.get("alg")
        && key_alg.as_str() != alg_name(alg)
    {
        return Err(BadKey);
    }
    if let Some(key_use) = members.get("use")
        && key_use.as_str() != Some("sig")
    {
        return Err(BadKey);
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(members.clone())).map_err(|_| BadKey)?;
    let decoded_len = |v: &str| URL_SAFE_NO_PAD.decode(v).map(|b| b.len()).ok();
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
                && decoded_len(&ec.x) == Some(32)
                && decoded_len(&ec.y) == Some(32)
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
                && decoded_len(&ec.x) == Some(48)
                && decoded_len(&ec.y) == Some(48)
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519 && decoded_len(&okp.x) == Some(32)
        }
        (
            AlgorithmParameters::RSA(rsa),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => rsa_fits(&rsa.n, &rsa.e),
        _ => false,
    };
    if fits { Ok(jwk) } else { Err(BadKey) }
}

fn rsa_fits(n: &str, e: &str) -> bool {
    let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
        return false;
    };
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => return false,
    };
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    RSA_BITS.contains(&bits) && !e.is_empty() && e.len() <= 8
}

/// The JOSE name of `alg`; `None` for an algorithm newer than this code.
pub(crate) fn alg_name(alg: Algorithm) -> Option<&'static str> {
    Some(match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => return None,
    })
}

/// The claims a request's proof must have, as checked.
#[derive(Debug)]
pub(crate) struct ProofClaims {
    pub(crate) jti: String,
    pub(crate) iat: u64,
    pub(crate) nonce: Option<String>,
}

/// What the claims are checked against.
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a str,
    /// The request's normalised URL; `None` when it has none (then no `htu` matches).
    pub(crate) url: Option<String>,
    /// `b64url(sha256(access token))` at a resource server.
    pub(crate) ath: Option<String>,
    pub(crate) now: u64,
    pub(crate) past: u64,
    pub(crate) future: u64,
}

/// RFC 9449 §4.2 claims, checked against the request: `jti`, `htm`, `htu`, `iat` present and
/// of the right type (else `Malformed`), then compared.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<ProofClaims, InvalidDpopProof> {
    use InvalidDpopProof::*;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (
        text("jti"),
        text("htm"),
        text("htu"),
        claims.get("iat").and_then(Value::as_f64),
    ) else {
        return Err(Malformed);
    };
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(Malformed);
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(Malformed),
    };

    if htm != expected.method {
        return Err(WrongMethod);
    }
    match (super::htu::normalize_htu(htu), &expected.url) {
        (Some(htu), Some(url)) if htu == *url => {}
        _ => return Err(WrongUri),
    }
    let now = expected.now as f64;
    // Written so that NaN could not pass (JSON has none, but the comparison says it).
    if !(iat + expected.past as f64 >= now && iat <= now + expected.future as f64) {
        return Err(Stale);
    }
    // Whole seconds from here on (the replay record lives until `iat + past`); `as`
    // saturates, so a negative `iat` (possible only with a window reaching before 1970) is 0.
    let iat = iat as u64;
    if let Some(want) = &expected.ath {
        let got = text("ath").unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(want.as_bytes())) {
            return Err(WrongAccessTokenHash);
        }
    }
    Ok(ProofClaims {
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}
