//! The verifier checks the registered claims itself (one read of the claims instead of
//! jsonwebtoken's two). Its answers must be jsonwebtoken's: for every configuration of
//! issuers, audiences and required claims below and every shape of `iss`, `aud`, `exp`, `nbf`
//! and `sub`, `Verifier::verify` accepts what `jsonwebtoken::decode` (with the `Validation`
//! the verifier used to build) accepts, and refuses the rest for the same reason.
//!
//! `iss` as an array (which RFC 7519 §4.1.1 does not allow) is refused by both: jsonwebtoken's
//! own check would take an array naming a configured issuer, but reading the claims set fails
//! first. Left out on purpose: fractional dates (the verifier rounds `exp` down and `nbf` up, where
//! jsonwebtoken rounds to the nearest second) and `iat` (checked by the verifier alone).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};

use tower_token_auth::{
    Algorithm, AuthErrorKind, ClaimSet, InvalidToken, KeySet, NoCustomClaims, Verifier,
    VerifyingKey,
};

const SECRET: &[u8] = b"validation-parity-secret-32-bytes!!";
const LEEWAY: u64 = 30;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The answer, reduced to what is compared: accepted, or the reason (claim names included).
fn ours(verifier: &Verifier, token: &str) -> String {
    match verifier.verify::<NoCustomClaims>(token) {
        Ok(_) => "ok".into(),
        Err(e) => match e.kind() {
            AuthErrorKind::InvalidToken(InvalidToken::InvalidClaim(_)) => "invalid claim".into(),
            // Which of several missing claims is named: jsonwebtoken keeps the required ones in
            // a HashSet, so its choice varies from run to run.
            AuthErrorKind::InvalidToken(InvalidToken::MissingClaim(_)) => "missing claim".into(),
            AuthErrorKind::InvalidToken(reason) => format!("{reason:?}"),
            other => format!("{other:?}"),
        },
    }
}

/// jsonwebtoken's answer, in the verifier's terms (its `map_error`).
fn theirs(validation: &Validation, token: &str) -> String {
    let key = DecodingKey::from_secret(SECRET);
    match jsonwebtoken::decode::<ClaimSet>(token, &key, validation) {
        Ok(_) => "ok".into(),
        Err(e) => match e.into_kind() {
            ErrorKind::ExpiredSignature => format!("{:?}", InvalidToken::Expired),
            ErrorKind::ImmatureSignature => format!("{:?}", InvalidToken::NotYetValid),
            ErrorKind::InvalidIssuer => format!("{:?}", InvalidToken::WrongIssuer),
            ErrorKind::InvalidAudience => format!("{:?}", InvalidToken::WrongAudience),
            ErrorKind::MissingRequiredClaim(_) => "missing claim".into(),
            ErrorKind::Json(e) if e.classify() == serde_json::error::Category::Data => {
                "invalid claim".into()
            }
            other => format!("jsonwebtoken: {other:?}"),
        },
    }
}

#[test]
fn registered_claims_are_judged_as_jsonwebtoken_judges_them() {
    let now = now();
    let absent = Value::Null; // marker: the claim is left out
    let iss = [
        absent.clone(),
        json!("a"),
        json!("c"),
        json!(null),
        json!(["a"]),
        json!(5),
    ];
    let aud = [
        absent.clone(),
        json!("x"),
        json!("z"),
        json!(["x", "z"]),
        json!([]),
        json!(["z"]),
        json!(null),
        json!(3),
    ];
    let exp = [
        absent.clone(),
        json!(now + 600),
        json!(now - 600),
        json!(now - LEEWAY / 2),
        json!("soon"),
    ];
    let nbf = [absent.clone(), json!(now + 600), json!(now + LEEWAY / 2)];
    let sub = [absent.clone(), json!("u"), json!(7)];

    let issuers: [&[&str]; 3] = [&[], &["a"], &["a", "b"]];
    let audiences: [&[&str]; 3] = [&[], &["x"], &["x", "y"]];
    let required: [&[&str]; 3] = [&[], &["exp"], &["exp", "sub", "nbf"]];
    let mut configs = Vec::new();
    for iss_conf in issuers {
        for aud_conf in audiences {
            for req in required {
                let keys = KeySet::new()
                    .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
                    .unwrap();
                let mut builder = Verifier::builder(keys)
                    .leeway(std::time::Duration::from_secs(LEEWAY))
                    .require_claims(req.iter().copied());
                for i in iss_conf {
                    builder = builder.issuer(*i);
                }
                for a in aud_conf {
                    builder = builder.audience(*a);
                }
                let verifier = builder.build().unwrap();
                // What the verifier used to hand jsonwebtoken: `iss`/`aud` required once
                // configured.
                let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
                validation.leeway = LEEWAY;
                validation.validate_nbf = true;
                let mut spec: Vec<&str> = req.to_vec();
                if !iss_conf.is_empty() {
                    validation.set_issuer(iss_conf);
                    spec.push("iss");
                }
                if !aud_conf.is_empty() {
                    validation.set_audience(aud_conf);
                    spec.push("aud");
                }
                validation.set_required_spec_claims(&spec);
                configs.push((
                    format!("iss {iss_conf:?} aud {aud_conf:?} required {req:?}"),
                    verifier,
                    validation,
                ));
            }
        }
    }

    let encoding = EncodingKey::from_secret(SECRET);
    let mut compared = 0;
    let mut accepted = 0;
    for i in &iss {
        for a in &aud {
            for e in &exp {
                for n in &nbf {
                    for s in &sub {
                        let mut claims = Map::new();
                        for (name, value, present) in [
                            ("iss", i, !std::ptr::eq(i, &iss[0])),
                            ("aud", a, !std::ptr::eq(a, &aud[0])),
                            ("exp", e, !std::ptr::eq(e, &exp[0])),
                            ("nbf", n, !std::ptr::eq(n, &nbf[0])),
                            ("sub", s, !std::ptr::eq(s, &sub[0])),
                        ] {
                            if present {
                                claims.insert(name.into(), value.clone());
                            }
                        }
                        let token = jsonwebtoken::encode(
                            &Header::new(jsonwebtoken::Algorithm::HS256),
                            &Value::Object(claims.clone()),
                            &encoding,
                        )
                        .unwrap();
                        for (config, verifier, validation) in &configs {
                            let (got, want) = (ours(verifier, &token), theirs(validation, &token));
                            compared += 1;
                            accepted += usize::from(got == "ok");
                            assert_eq!(got, want, "{config}: {claims:?}");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, 6 * 8 * 5 * 3 * 3 * 27);
    // Both answers occur (a table refusing everything would compare nothing).
    assert!(
        accepted > 100 && accepted < compared / 2,
        "{accepted} of {compared}"
    );
}
