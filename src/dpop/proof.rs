//! One DPoP proof JWT: structure, header, embedded key and signature (RFC 9449 §4.2, §4.3
//! steps 2 and 4–7), then its claims against the request (steps 3 and 8–12).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use subtle::ConstantTimeEq;

use super::thumbprint::jwk_thumbprint;
use crate::InvalidDpopProof;

/// The longest `jti` accepted, in bytes. RFC 9449 asks for at least 96 random bits (16
/// base64url characters, or a 36-character UUID); 256 leaves room for any reasonable encoding.
pub const MAX_JTI_LEN: usize = 256;

/// The `typ` of a DPoP proof, compared exactly (RFC 9449 §4.2).
const DPOP_TYP: &str = "dpop+jwt";

/// RSA modulus sizes accepted, in bits: RFC 7518 §3.3 asks for 2048 at least; the upper bound
/// caps the cost of a verification an unauthenticated client can ask for.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A proof whose signature verified with the key in its header.
#[derive(Debug)]
pub(crate) struct SignedProof<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) jwk: Jwk,
    pub(crate) jkt: String,
    pub(crate) claims: ProofPayload<'a>,
}

/// One JSON member, as far as these checks care: absent, a string, a number, or anything
/// else. Parsing into this (rather than a `serde_json::Value`) borrows strings from the input
/// and skips the members nobody reads, while still telling a member of the wrong type from
/// a missing one.
#[derive(Debug, Default)]
pub(crate) enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Num(f64),
    Other,
}

impl Member<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Member<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Member<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Member::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Member::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Member::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Member::Num(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Member::Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Member::Num(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Member::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Member::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The header members a proof's checks read; a member twice is a parse error.
#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(default, borrow)]
    typ: Member<'a>,
    #[serde(default, borrow)]
    alg: Member<'a>,
    #[serde(default, borrow)]
    crit: Member<'a>,
    #[serde(default, borrow)]
    jwk: JwkMember<'a>,
}

/// The header's `jwk`: absent, an object, or something else.
#[derive(Default)]
enum JwkMember<'a> {
    #[default]
    Absent,
    Object(Box<JwkMembers<'a>>),
    NotObject,
}

impl<'de: 'a, 'a> Deserialize<'de> for JwkMember<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JwkMember<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWK")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let members = JwkMembers::deserialize(MapAccessDeserializer::new(map))?;
                Ok(JwkMember::Object(Box::new(members)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JwkMember::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(JwkMember::NotObject)
            }
        }
        d.deserialize_any(V)
    }
}

/// The members of a proof's `jwk` the checks read: the public ones of each key type, `alg`
/// and `use`, and the private or symmetric ones whose presence refuses the key (RFC 7518
/// §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
#[derive(Deserialize)]
struct JwkMembers<'a> {
    #[serde(default, borrow)]
    kty: Member<'a>,
    #[serde(default, borrow)]
    crv: Member<'a>,
    #[serde(default, borrow)]
    x: Member<'a>,
    #[serde(default, borrow)]
    y: Member<'a>,
    #[serde(default, borrow)]
    n: Member<'a>,
    #[serde(default, borrow)]
    e: Member<'a>,
    #[serde(default, borrow)]
    alg: Member<'a>,
    #[serde(default, borrow, rename = "use")]
    key_use: Member<'a>,
    #[serde(default, borrow)]
    d: Member<'a>,
    #[serde(default, borrow)]
    p: Member<'a>,
    #[serde(default, borrow)]
    q: Member<'a>,
    #[serde(default, borrow)]
    dp: Member<'a>,
    #[serde(default, borrow)]
    dq: Member<'a>,
    #[serde(default, borrow)]
    qi: Member<'a>,
    #[serde(default, borrow)]
    oth: Member<'a>,
    #[serde(default, borrow)]
    k: Member<'a>,
}

impl JwkMembers<'_> {
    fn has_private_member(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|m| m.is_present())
    }
}

/// The claims of a proof the checks read; a claim twice is a parse error.
#[derive(Debug, Deserialize)]
pub(crate) struct ProofPayload<'a> {
    #[serde(default, borrow)]
    jti: Member<'a>,
    #[serde(default, borrow)]
    htm: Member<'a>,
    #[serde(default, borrow)]
    htu: Member<'a>,
    #[serde(default, borrow)]
    iat: Member<'a>,
    #[serde(default, borrow)]
    ath: Member<'a>,
    #[serde(default, borrow)]
    nonce: Member<'a>,
}

/// Checks the JWS: three base64url segments of JSON objects (no more than `max_len` bytes in
/// all), `typ` `dpop+jwt`, an `alg` of `algorithms`, a public `jwk` fit for that `alg`, and a
/// signature that verifies with it. `scratch` holds the decoded segments the answer borrows.
pub(crate) fn verify_signature<'a>(
    proof: &str,
    algorithms: &[Algorithm],
    max_len: usize,
    scratch: &'a mut Scratch,
) -> Result<SignedProof<'a>, InvalidDpopProof> {
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
    decode_segment(header, &mut scratch.header)?;
    decode_segment(payload, &mut scratch.payload)?;
    let header: ProofHeader<'_> = parse_object(&scratch.header)?;

    if header.typ.as_str() != Some(DPOP_TYP) {
        return Err(WrongType);
    }
    let Some(alg) = header.alg.as_str() else {
        return Err(Malformed);
    };
    let alg = Algorithm::from_str(alg)
        .ok()
        .filter(|a| algorithms.contains(a))
        .ok_or(AlgorithmNotAllowed)?;
    // RFC 7515 §4.1.11: extensions this code does not know must be refused; it knows none.
    if header.crit.is_present() {
        return Err(Malformed);
    }
    let JwkMember::Object(members) = &header.jwk else {
        return Err(BadKey);
    };
    let (jwk, key) = public_jwk(members, alg)?;
    let jkt = jwk_thumbprint(&jwk).map_err(|_| BadKey)?;

    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(Malformed);
    }
    crate::crypto::ensure_provider();
    let signed = &proof[..header_and_payload_len(proof)];
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, alg) {
        Ok(true) => {}
        Ok(false) => return Err(BadSignature),
        // The backend could not use the key (e.g. an RSA exponent it refuses).
        Err(_) => return Err(BadKey),
    }

    let claims = parse_object(&scratch.payload)?;
    Ok(SignedProof {
        alg,
        jwk,
        jkt,
        claims,
    })
}

/// Buffers for a proof's decoded header and payload.
#[derive(Default)]
pub(crate) struct Scratch {
    header: Vec<u8>,
    payload: Vec<u8>,
}

/// The length of `header.payload`, the signed part of a compact JWS.
fn header_and_payload_len(proof: &str) -> usize {
    proof.rfind('.').unwrap_or(0)
}

/// A base64url (unpadded) segment, decoded into `out`.
fn decode_segment(segment: &str, out: &mut Vec<u8>) -> Result<(), InvalidDpopProof> {
    out.clear();
    URL_SAFE_NO_PAD
        .decode_vec(segment, out)
        .map_err(|_| InvalidDpopProof::Malformed)
}

/// A JSON object (nothing else, nothing after it) as `T`.
fn parse_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, InvalidDpopProof> {
    // A struct also deserializes from a JSON array of its fields: refuse anything but `{`.
    let starts_with_brace = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_with_brace {
        return Err(InvalidDpopProof::Malformed);
    }
    serde_json::from_slice(bytes).map_err(|_| InvalidDpopProof::Malformed)
}

/// The header's `jwk` as a public key of `alg`'s type: no private or symmetric members, an
/// `alg` and `use` (when present) that agree, the right curve and sizes. Answers the key as
/// a [`Jwk`] (its key members, `alg` and `use`) and ready to verify with.
fn public_jwk(
    members: &JwkMembers<'_>,
    alg: Algorithm,
) -> Result<(Jwk, DecodingKey), InvalidDpopProof> {
    use InvalidDpopProof::BadKey;
    if members.has_private_member() {
        return Err(BadKey);
    }
    if members.alg.is_present() && members.alg.as_str() != alg_name(alg) {
        return Err(BadKey);
    }
    if members.key_use.is_present() && members.key_use.as_str() != Some("sig") {
        return Err(BadKey);
    }
    let text = |m: &Member<'_>| m.as_str().map(str::to_owned).ok_or(BadKey);
    let decoded_len = |m: &Member<'_>| {
        m.as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .map(|b| b.len())
    };
    let (algorithm, key) = match (members.kty.as_str(), members.crv.as_str(), alg) {
        (Some("EC"), Some(crv), Algorithm::ES256 | Algorithm::ES384) => {
            let (curve, size) = match (crv, alg) {
                ("P-256", Algorithm::ES256) => (EllipticCurve::P256, 32),
                ("P-384", Algorithm::ES384) => (EllipticCurve::P384, 48),
                _ => return Err(BadKey),
            };
            if decoded_len(&members.x) != Some(size) || decoded_len(&members.y) != Some(size) {
                return Err(BadKey);
            }
            let (x, y) = (text(&members.x)?, text(&members.y)?);
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|_| BadKey)?;
            let params = EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve,
                x,
                y,
            };
            (AlgorithmParameters::EllipticCurve(params), key)
        }
        (Some("OKP"), Some("Ed25519"), Algorithm::EdDSA) => {
            if decoded_len(&members.x) != Some(32) {
                return Err(BadKey);
            }
            let x = text(&members.x)?;
            let key = DecodingKey::from_ed_components(&x).map_err(|_| BadKey)?;
            let params = OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x,
            };
            (AlgorithmParameters::OctetKeyPair(params), key)
        }
        (
            Some("RSA"),
            _,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let (n, e) = (text(&members.n)?, text(&members.e)?);
            if !rsa_fits(&n, &e) {
                return Err(BadKey);
            }
            let key = DecodingKey::from_rsa_components(&n, &e).map_err(|_| BadKey)?;
            let params = RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n,
                e,
            };
            (AlgorithmParameters::RSA(params), key)
        }
        _ => return Err(BadKey),
    };
    let common = CommonParameters {
        public_key_use: members
            .key_use
            .is_present()
            .then_some(PublicKeyUse::Signature),
        key_algorithm: members
            .alg
            .as_str()
            .and_then(|a| KeyAlgorithm::from_str(a).ok()),
        ..CommonParameters::default()
    };
    Ok((Jwk { common, algorithm }, key))
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
    claims: &ProofPayload<'_>,
    expected: &Expected<'_>,
) -> Result<ProofClaims, InvalidDpopProof> {
    use InvalidDpopProof::*;
    let (Some(jti), Some(htm), Some(htu), Member::Num(iat)) = (
        claims.jti.as_str(),
        claims.htm.as_str(),
        claims.htu.as_str(),
        &claims.iat,
    ) else {
        return Err(Malformed);
    };
    let iat = *iat;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(Malformed);
    }
    let nonce = match &claims.nonce {
        Member::Absent => None,
        Member::Str(n) => Some(n.to_string()),
        _ => return Err(Malformed),
    };

    if htm != expected.method {
        return Err(WrongMethod);
    }
    // Most clients write `htu` exactly as the normalised request URL: then no normalising
    // (and no allocation) is needed.
    let htu_matches = expected.url.as_deref().is_some_and(|url| {
        htu == url || super::htu::normalize_htu(htu).is_some_and(|htu| htu == url)
    });
    if !htu_matches {
        return Err(WrongUri);
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
        let got = claims.ath.as_str().unwrap_or("");
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
