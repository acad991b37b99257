//! The proof check, one refusal reason at a time.

use std::sync::Arc;

use http::{HeaderMap, Method, Uri, header};
use serde_json::{Map, Value, json};

use super::test_key::DpopKey;
use super::*;
use crate::revocation::now_secs;
use crate::{AuthErrorKind, InvalidDpopProof};

const HTU: &str = "https://api.example.com/orders";
const TOKEN: &str = "an-access-token";

fn host_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, "api.example.com".parse().unwrap());
    headers
}

/// `GET /orders` with `Host: api.example.com` and the access token [`TOKEN`].
fn check(config: &DpopConfig, proof: &str) -> Result<VerifiedProof, AuthError> {
    check_request(config, proof, &Method::GET, "/orders?page=1", Some(TOKEN))
}

fn check_request(
    config: &DpopConfig,
    proof: &str,
    method: &Method,
    uri: &str,
    token: Option<&str>,
) -> Result<VerifiedProof, AuthError> {
    let uri: Uri = uri.parse().unwrap();
    match config.check(proof, method, &uri, &host_headers(), token) {
        ProofCheck::Ready(r) => r,
        ProofCheck::Pending(_) => panic!("the memory store answers at once"),
    }
}

fn reason(result: Result<VerifiedProof, AuthError>) -> InvalidDpopProof {
    match result {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => match e.kind() {
            AuthErrorKind::InvalidDpopProof(r) => *r,
            other => panic!("refused as {other:?}"),
        },
    }
}

type Edit = Box<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>)>;

fn edit(f: impl Fn(&mut Map<String, Value>, &mut Map<String, Value>) + 'static) -> Edit {
    Box::new(f)
}

#[test]
fn good_proofs_pass_and_tell_their_key() {
    for key in [DpopKey::es256(), DpopKey::ed25519()] {
        let config = DpopConfig::new();
        let proof = key.proof("GET", HTU, Some(TOKEN));
        let verified = check(&config, &proof).expect("a good proof");
        assert_eq!(verified.jkt(), key.thumbprint());
        assert_eq!(verified.algorithm(), key.algorithm());
        assert_eq!(verified.jwk(), key.jwk());
        assert!(verified.iat().abs_diff(now_secs()) <= 1);
        assert_eq!(verified.jti().len(), 22);
        assert_eq!(verified.nonce(), None);
    }
}

#[test]
fn es256_test_key_thumbprint_is_rfc7638() {
    // tests/keys/es256-public.jwk.json is the public half of src/testing/es256-private.pem.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256",
        "x": "5TOmBFlEiIXeZ5E9AFVhCPgybmSDN65ZAyhmKWUthGk",
        "y": "0NA2wEs9tRgR04sS9pKmW0jSr_prmuIXTiyIUGOO3tE"
    }))
    .unwrap();
    assert_eq!(DpopKey::es256().thumbprint(), jwk_thumbprint(&jwk).unwrap());
}

/// Every refusal reason the proof itself can cause, with a proof made by the key `es256`
/// unless the case says otherwise.
#[test]
fn each_defect_is_refused_with_its_reason() {
    use InvalidDpopProof::*;
    let key = DpopKey::es256();
    let other = DpopKey::ed25519();
    let other_jwk = serde_json::to_value(other.jwk()).unwrap();
    let now = now_secs() as i64;
    let private_jwk = {
        let mut jwk = serde_json::to_value(key.jwk()).unwrap();
        jwk["d"] = "O0YOaZkz7tbNcvts".into();
        jwk
    };
    let cases: Vec<(&str, Edit, InvalidDpopProof)> = vec![
        ("typ missing", edit(|h, _| drop(h.remove("typ"))), WrongType),
        (
            "typ jwt",
            edit(|h, _| drop(h.insert("typ".into(), "jwt".into()))),
            WrongType,
        ),
        (
            "typ JWT",
            edit(|h, _| drop(h.insert("typ".into(), "JWT".into()))),
            WrongType,
        ),
        (
            "typ in capitals",
            edit(|h, _| drop(h.insert("typ".into(), "DPoP+JWT".into()))),
            WrongType,
        ),
        (
            "typ as a media type",
            edit(|h, _| drop(h.insert("typ".into(), "application/dpop+jwt".into()))),
            WrongType,
        ),
        (
            "typ not a string",
            edit(|h, _| drop(h.insert("typ".into(), 1.into()))),
            WrongType,
        ),
        ("alg missing", edit(|h, _| drop(h.remove("alg"))), Malformed),
        (
            "alg HS256",
            edit(|h, _| drop(h.insert("alg".into(), "HS256".into()))),
            AlgorithmNotAllowed,
        ),
        (
            "alg none",
            edit(|h, _| drop(h.insert("alg".into(), "none".into()))),
            AlgorithmNotAllowed,
        ),
        (
            "alg ES512",
            edit(|h, _| drop(h.insert("alg".into(), "ES512".into()))),
            AlgorithmNotAllowed,
        ),
        (
            "alg RS384 (not configured)",
            edit(|h, _| drop(h.insert("alg".into(), "RS384".into()))),
            AlgorithmNotAllowed,
        ),
        (
            "alg in lower case",
            edit(|h, _| drop(h.insert("alg".into(), "es256".into()))),
            AlgorithmNotAllowed,
        ),
        (
            "crit",
            edit(|h, _| drop(h.insert("crit".into(), json!(["b64"])))),
            Malformed,
        ),
        ("jwk missing", edit(|h, _| drop(h.remove("jwk"))), BadKey),
        (
            "jwk not an object",
            edit(|h, _| drop(h.insert("jwk".into(), "key".into()))),
            BadKey,
        ),
        (
            "jwk private",
            edit(move |h, _| drop(h.insert("jwk".into(), private_jwk.clone()))),
            BadKey,
        ),
        (
            "jwk symmetric",
            edit(|h, _| {
                drop(h.insert("jwk".into(), json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0"})))
            }),
            BadKey,
        ),
        (
            "jwk of another alg",
            edit(|h, _| {
                drop(
                    h["jwk"]
                        .as_object_mut()
                        .unwrap()
                        .insert("alg".into(), "ES384".into()),
                )
            }),
            BadKey,
        ),
        (
            "jwk for encryption",
            edit(|h, _| {
                drop(
                    h["jwk"]
                        .as_object_mut()
                        .unwrap()
                        .insert("use".into(), "enc".into()),
                )
            }),
            BadKey,
        ),
        (
            "P-256 key, alg ES384",
            edit(|h, _| {
                h.insert("alg".into(), "ES384".into());
                h["jwk"].as_object_mut().unwrap().remove("alg");
            }),
            BadKey,
        ),
        (
            "EC key, alg EdDSA",
            edit(|h, _| {
                h.insert("alg".into(), "EdDSA".into());
                h["jwk"].as_object_mut().unwrap().remove("alg");
            }),
            BadKey,
        ),
        (
            "x of the wrong length",
            edit(|h, _| {
                drop(
                    h["jwk"]
                        .as_object_mut()
                        .unwrap()
                        .insert("x".into(), "AAAA".into()),
                )
            }),
            BadKey,
        ),
        (
            "RSA key of 1024 bits",
            edit(|h, _| {
                h.insert("alg".into(), "RS256".into());
                let n = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    [0xc5u8; 128],
                );
                h.insert("jwk".into(), json!({"kty": "RSA", "n": n, "e": "AQAB"}));
            }),
            BadKey,
        ),
        (
            "another key's jwk",
            edit(move |h, _| {
                h.insert("alg".into(), "EdDSA".into());
                h.insert("jwk".into(), other_jwk.clone());
            }),
            BadSignature,
        ),
        ("jti missing", edit(|_, c| drop(c.remove("jti"))), Malformed),
        (
            "jti empty",
            edit(|_, c| drop(c.insert("jti".into(), "".into()))),
            Malformed,
        ),
        (
            "jti too long",
            edit(|_, c| drop(c.insert("jti".into(), "j".repeat(MAX_JTI_LEN + 1).into()))),
            Malformed,
        ),
        (
            "jti a number",
            edit(|_, c| drop(c.insert("jti".into(), 7.into()))),
            Malformed,
        ),
        ("htm missing", edit(|_, c| drop(c.remove("htm"))), Malformed),
        (
            "htm POST",
            edit(|_, c| drop(c.insert("htm".into(), "POST".into()))),
            WrongMethod,
        ),
        (
            "htm in lower case",
            edit(|_, c| drop(c.insert("htm".into(), "get".into()))),
            WrongMethod,
        ),
        ("htu missing", edit(|_, c| drop(c.remove("htu"))), Malformed),
        (
            "htu not a string",
            edit(|_, c| drop(c.insert("htu".into(), json!({"url": HTU})))),
            Malformed,
        ),
        (
            "htu other path",
            edit(|_, c| drop(c.insert("htu".into(), "https://api.example.com/admin".into()))),
            WrongUri,
        ),
        (
            "htu other host",
            edit(|_, c| drop(c.insert("htu".into(), "https://evil.example/orders".into()))),
            WrongUri,
        ),
        (
            "htu http",
            edit(|_, c| drop(c.insert("htu".into(), "http://api.example.com/orders".into()))),
            WrongUri,
        ),
        (
            "htu other port",
            edit(|_, c| drop(c.insert("htu".into(), "https://api.example.com:8443/orders".into()))),
            WrongUri,
        ),
        (
            "htu relative",
            edit(|_, c| drop(c.insert("htu".into(), "/orders".into()))),
            WrongUri,
        ),
        (
            "htu with userinfo",
            edit(|_, c| drop(c.insert("htu".into(), "https://u@api.example.com/orders".into()))),
            WrongUri,
        ),
        (
            "htu path case",
            edit(|_, c| drop(c.insert("htu".into(), "https://api.example.com/Orders".into()))),
            WrongUri,
        ),
        ("iat missing", edit(|_, c| drop(c.remove("iat"))), Malformed),
        (
            "iat a string",
            edit(move |_, c| drop(c.insert("iat".into(), now.to_string().into()))),
            Malformed,
        ),
        (
            "iat 61 s old",
            edit(move |_, c| drop(c.insert("iat".into(), (now - 61).into()))),
            Stale,
        ),
        (
            "iat 6 s ahead",
            edit(move |_, c| drop(c.insert("iat".into(), (now + 6).into()))),
            Stale,
        ),
        (
            "iat negative",
            edit(|_, c| drop(c.insert("iat".into(), (-1).into()))),
            Stale,
        ),
        (
            "iat huge",
            edit(|_, c| drop(c.insert("iat".into(), 1e300.into()))),
            Stale,
        ),
        (
            "ath missing",
            edit(|_, c| drop(c.remove("ath"))),
            WrongAccessTokenHash,
        ),
        (
            "ath of another token",
            edit(|_, c| drop(c.insert("ath".into(), access_token_hash("another-token").into()))),
            WrongAccessTokenHash,
        ),
        (
            "ath not a string",
            edit(|_, c| drop(c.insert("ath".into(), 1.into()))),
            WrongAccessTokenHash,
        ),
        (
            "nonce not a string",
            edit(|_, c| drop(c.insert("nonce".into(), 1.into()))),
            Malformed,
        ),
    ];
    let config = DpopConfig::new();
    for (name, edit, want) in cases {
        let proof = key.proof_with("GET", HTU, Some(TOKEN), |h, c| edit(h, c));
        let got = reason(check(&config, &proof));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn the_window_edges_pass() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let now = now_secs();
    for iat in [json!(now - 59), json!(now + 4), json!(now as f64 + 0.5)] {
        let proof = key.proof_with("GET", HTU, Some(TOKEN), |_, c| {
            drop(c.insert("iat".into(), iat.clone()))
        });
        check(&config, &proof).unwrap_or_else(|e| panic!("iat {iat}: {e}"));
    }
    // A wider window, configured.
    let config = DpopConfig::new().proof_lifetime(std::time::Duration::from_secs(300));
    let proof = key.proof_with("GET", HTU, Some(TOKEN), |_, c| {
        drop(c.insert("iat".into(), (now - 200).into()))
    });
    check(&config, &proof).expect("within 300 s");
}

#[test]
fn exact_edges_use_the_given_clock() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let uri: Uri = "/orders".parse().unwrap();
    let at = |iat: u64, now: u64| {
        let proof = key.proof_with("GET", HTU, None, |_, c| {
            drop(c.insert("iat".into(), iat.into()))
        });
        match config.check_at(&proof, &Method::GET, &uri, &host_headers(), None, now) {
            ProofCheck::Ready(r) => r,
            ProofCheck::Pending(_) => unreachable!(),
        }
    };
    assert!(at(1000, 1060).is_ok(), "60 s old");
    assert_eq!(reason(at(1000, 1061)), InvalidDpopProof::Stale);
    assert!(at(1005, 1000).is_ok(), "5 s ahead");
    assert_eq!(reason(at(1006, 1000)), InvalidDpopProof::Stale);
}

#[test]
fn htu_is_compared_normalised_without_query() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    for htu in [
        "https://api.example.com/orders",
        "HTTPS://API.EXAMPLE.COM:443/orders",
        "https://api.example.com/%6Frders",
        "https://api.example.com/x/../orders",
        "https://api.example.com/orders?other=query",
        "https://api.example.com/orders#fragment",
    ] {
        let proof = key.proof("GET", htu, Some(TOKEN));
        check(&config, &proof).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
}

#[test]
fn request_url_comes_from_the_external_origin_when_set() {
    let key = DpopKey::es256();
    let config = DpopConfig::new()
        .external_origin("https://public.example/api")
        .unwrap();
    let proof = key.proof("GET", "https://public.example/api/orders", Some(TOKEN));
    // Host says api.example.com (the internal name): ignored.
    check(&config, &proof).expect("the external URL");
    let proof = key.proof("GET", HTU, Some(TOKEN));
    assert_eq!(reason(check(&config, &proof)), InvalidDpopProof::WrongUri);
}

#[test]
fn no_host_no_match() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let proof = key.proof("GET", HTU, None);
    let uri: Uri = "/orders".parse().unwrap();
    let result = match config.check(&proof, &Method::GET, &uri, &HeaderMap::new(), None) {
        ProofCheck::Ready(r) => r,
        ProofCheck::Pending(_) => unreachable!(),
    };
    assert_eq!(reason(result), InvalidDpopProof::WrongUri);
}

#[test]
fn token_endpoint_proofs_need_no_ath() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let token_url = "https://api.example.com/token";
    let proof = key.proof("POST", token_url, None);
    check_request(&config, &proof, &Method::POST, "/token", None).expect("no ath needed");
    // One with an `ath` is not refused for it.
    let proof = key.proof("POST", token_url, Some(TOKEN));
    check_request(&config, &proof, &Method::POST, "/token", None).expect("ath ignored");
}

#[test]
fn nonce_is_passed_on() {
    let key = DpopKey::es256();
    let proof = key.proof_with("GET", HTU, Some(TOKEN), |_, c| {
        drop(c.insert("nonce".into(), "n-1".into()))
    });
    let verified = check(&DpopConfig::new(), &proof).unwrap();
    assert_eq!(verified.nonce(), Some("n-1"));
}

#[test]
fn algorithms_can_be_narrowed() {
    let config = DpopConfig::new().algorithms([Algorithm::ES256]).unwrap();
    assert_eq!(config.algs_param(), "ES256");
    check(&config, &DpopKey::es256().proof("GET", HTU, Some(TOKEN))).expect("ES256");
    let eddsa = DpopKey::ed25519().proof("GET", HTU, Some(TOKEN));
    assert_eq!(
        reason(check(&config, &eddsa)),
        InvalidDpopProof::AlgorithmNotAllowed
    );
}

#[test]
fn configuration_refuses_symmetric_or_no_algorithms() {
    assert_eq!(
        DpopConfig::new().algs_param(),
        "ES256 ES384 EdDSA PS256 RS256"
    );
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert!(
            DpopConfig::new()
                .algorithms([Algorithm::ES256, alg])
                .is_err()
        );
    }
    assert!(DpopConfig::new().algorithms([]).is_err());
    let deduplicated = DpopConfig::new()
        .algorithms([Algorithm::EdDSA, Algorithm::PS384, Algorithm::EdDSA])
        .unwrap();
    assert_eq!(deduplicated.algs_param(), "EdDSA PS384");
}

#[test]
fn structural_defects_are_malformed() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let good = key.proof("GET", HTU, Some(TOKEN));
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    let b64 =
        |v: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
    let claims_b64 =
        b64(&json!({"jti": "j", "htm": "GET", "htu": HTU, "iat": now_secs()}).to_string());
    let cases = [
        ("empty", String::new()),
        ("one segment", "abc".to_owned()),
        ("two segments", format!("{header}.{claims_b64}")),
        ("four segments", format!("{good}.{signature}")),
        ("no signature", format!("{signed}.")),
        (
            "signature not base64url",
            format!("{signed}.{}", signature.replace(|_| true, "*")),
        ),
        (
            "padded header",
            format!("{header}=.{claims_b64}.{signature}"),
        ),
        (
            "header not base64url",
            format!("@@@.{claims_b64}.{signature}"),
        ),
        (
            "header not JSON",
            format!("{}.{claims_b64}.{signature}", b64("not json")),
        ),
        (
            "header a JSON array",
            format!("{}.{claims_b64}.{signature}", b64("[1]")),
        ),
        (
            "too long",
            format!("{signed}.{}", "A".repeat(DEFAULT_MAX_PROOF_LEN)),
        ),
    ];
    for (name, proof) in cases {
        assert_eq!(
            reason(check(&config, &proof)),
            InvalidDpopProof::Malformed,
            "{name}"
        );
    }
    // Claims that are not a JSON object, signed: malformed, not a bad signature.
    let not_object = key.sign(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": serde_json::to_value(key.jwk()).unwrap()}),
        &json!(["jti"]),
    );
    assert_eq!(
        reason(check(&config, &not_object)),
        InvalidDpopProof::Malformed
    );
    // A smaller cap, configured.
    let capped = DpopConfig::new().max_proof_len(100);
    assert_eq!(reason(check(&capped, &good)), InvalidDpopProof::Malformed);
}

#[test]
fn members_twice_or_null_are_refused() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let jwk = serde_json::to_string(key.jwk()).unwrap();
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    let claims = |extra: &str| {
        format!(
            r#"{{"jti":"j-{extra}","htm":"GET","htu":"{HTU}","iat":{},"ath":"{}"{extra}}}"#,
            now_secs(),
            access_token_hash(TOKEN)
        )
    };
    // The texts as written are accepted (the cases below differ by one member only).
    let fine = key.sign_text(&header, &claims(""));
    assert!(check(&config, &fine).is_ok());
    let in_jwk = jwk.replacen('{', r#"{"x":"AAAA","#, 1);
    let cases = [
        (
            "typ twice",
            key.sign_text(&header.replacen('{', r#"{"typ":"jwt","#, 1), &claims("")),
            InvalidDpopProof::Malformed,
        ),
        (
            "jwk member twice",
            key.sign_text(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{in_jwk}}}"#),
                &claims(""),
            ),
            InvalidDpopProof::Malformed,
        ),
        (
            "htu twice",
            key.sign_text(&header, &claims(r#","htu":"https://evil.example/""#)),
            InvalidDpopProof::Malformed,
        ),
        (
            "crit null",
            key.sign_text(&header.replacen('{', r#"{"crit":null,"#, 1), &claims("")),
            InvalidDpopProof::Malformed,
        ),
        (
            "nonce null",
            key.sign_text(&header, &claims(r#","nonce":null"#)),
            InvalidDpopProof::Malformed,
        ),
        (
            "jwk null",
            key.sign_text(
                r#"{"typ":"dpop+jwt","alg":"ES256","jwk":null}"#,
                &claims(""),
            ),
            InvalidDpopProof::BadKey,
        ),
        (
            "jwk an array",
            key.sign_text(
                &format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":[{jwk}]}}"#),
                &claims(""),
            ),
            InvalidDpopProof::BadKey,
        ),
        (
            "private member null",
            key.sign_text(
                &format!(
                    r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
                    jwk.replacen('{', r#"{"d":null,"#, 1)
                ),
                &claims(""),
            ),
            InvalidDpopProof::BadKey,
        ),
    ];
    for (name, proof, want) in cases {
        assert_eq!(reason(check(&config, &proof)), want, "{name}");
    }
}

#[test]
fn escaped_members_compare_by_value() {
    // `dpop\u002bjwt` is `dpop+jwt` written with an escape: JSON-equal, so accepted.
    let key = DpopKey::es256();
    let jwk = serde_json::to_string(key.jwk()).unwrap();
    let proof = key.sign_text(
        &format!(r#"{{"typ":"dpop\u002bjwt","alg":"ES256","jwk":{jwk}}}"#),
        &format!(
            r#"{{"jti":"j","htm":"GET","htu":"{HTU}","iat":{},"ath":"{}"}}"#,
            now_secs(),
            access_token_hash(TOKEN)
        ),
    );
    assert!(check(&DpopConfig::new(), &proof).is_ok());
}

#[test]
fn tampering_breaks_the_signature() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let good = key.proof("GET", HTU, Some(TOKEN));
    let parts: Vec<&str> = good.split('.').collect();
    let b64 =
        |v: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v);
    let forged_claims = b64(&json!({
        "jti": "forged", "htm": "GET", "htu": HTU, "iat": now_secs(), "ath": access_token_hash(TOKEN)
    })
    .to_string());
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert_eq!(
        reason(check(&config, &forged)),
        InvalidDpopProof::BadSignature
    );
    // The signature of another proof of the same key.
    let other = key.proof("GET", HTU, Some(TOKEN));
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.rsplit('.').next().unwrap()
    );
    assert_eq!(
        reason(check(&config, &swapped)),
        InvalidDpopProof::BadSignature
    );
    // alg none: the header of a good proof, no signature.
    let none = key.proof_with("GET", HTU, Some(TOKEN), |h, _| {
        drop(h.insert("alg".into(), "none".into()))
    });
    let unsigned = format!("{}.", none.rsplit_once('.').unwrap().0);
    assert_eq!(
        reason(check(&config, &unsigned)),
        InvalidDpopProof::AlgorithmNotAllowed
    );
}

#[test]
fn a_proof_is_accepted_once() {
    let key = DpopKey::es256();
    let config = DpopConfig::new();
    let proof = key.proof("GET", HTU, Some(TOKEN));
    check(&config, &proof).expect("first use");
    assert_eq!(reason(check(&config, &proof)), InvalidDpopProof::Replayed);
    // Clones share the store.
    assert_eq!(
        reason(check(&config.clone(), &proof)),
        InvalidDpopProof::Replayed
    );
    // A fresh configuration has its own store.
    check(&DpopConfig::new(), &proof).expect("another store");
}

#[test]
fn replay_keys_are_per_key() {
    let config = DpopConfig::new();
    let with_jti = |key: &DpopKey| {
        key.proof_with("GET", HTU, Some(TOKEN), |_, c| {
            drop(c.insert("jti".into(), "same-jti".into()))
        })
    };
    check(&config, &with_jti(&DpopKey::es256())).expect("first key");
    check(&config, &with_jti(&DpopKey::ed25519())).expect("another key, same jti");
    assert_eq!(
        reason(check(&config, &with_jti(&DpopKey::es256()))),
        InvalidDpopProof::Replayed,
        "a new proof of the first key reusing its jti"
    );
}

/// A store that cannot answer, or answers later.
#[derive(Debug)]
enum TestStore {
    Down,
    Later(Arc<MemoryReplayStore>),
}

impl ReplayStore for TestStore {
    fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck {
        match self {
            Self::Down => ReplayCheck::Ready(Err(ReplayError::Timeout)),
            Self::Later(inner) => {
                let answer = inner.check_and_record(key, expires_at_unix);
                ReplayCheck::Pending(Box::pin(answer.resolve()))
            }
        }
    }
}

#[test]
fn a_store_that_cannot_answer_refuses_with_503() {
    let config = DpopConfig::new().replay_store(TestStore::Down);
    let err = check(&config, &DpopKey::es256().proof("GET", HTU, Some(TOKEN))).unwrap_err();
    assert_eq!(err.kind(), &AuthErrorKind::ReplayCheckUnavailable);
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    // A full memory store too.
    let config = DpopConfig::new().replay_store(MemoryReplayStore::with_capacity(1));
    let key = DpopKey::es256();
    check(&config, &key.proof("GET", HTU, Some(TOKEN))).expect("room for one");
    let err = check(&config, &key.proof("GET", HTU, Some(TOKEN))).unwrap_err();
    assert_eq!(err.kind(), &AuthErrorKind::ReplayCheckUnavailable);
}

#[tokio::test]
async fn a_pending_store_is_awaited() {
    let store = Arc::new(MemoryReplayStore::new());
    let config = DpopConfig::new().replay_store(TestStore::Later(store.clone()));
    let key = DpopKey::es256();
    let proof = key.proof("GET", HTU, Some(TOKEN));
    let uri: Uri = "/orders".parse().unwrap();
    let first = config.check(&proof, &Method::GET, &uri, &host_headers(), Some(TOKEN));
    assert!(matches!(first, ProofCheck::Pending(_)));
    assert_eq!(first.resolve().await.unwrap().jkt(), key.thumbprint());
    let again = config.check(&proof, &Method::GET, &uri, &host_headers(), Some(TOKEN));
    assert_eq!(reason(again.resolve().await), InvalidDpopProof::Replayed);
    assert_eq!(store.len(), 1);
    // A refusal before the replay check is ready at once, and records nothing.
    let wrong = config.check(&proof, &Method::POST, &uri, &host_headers(), Some(TOKEN));
    assert!(matches!(wrong, ProofCheck::Ready(Err(_))));
    assert_eq!(store.len(), 1);
}

#[test]
fn refused_proofs_leave_no_record() {
    let store = Arc::new(MemoryReplayStore::new());
    let config = DpopConfig::new().shared_replay_store(store.clone());
    let key = DpopKey::es256();
    let proof = key.proof("GET", HTU, Some(TOKEN));
    assert_eq!(
        reason(check_request(
            &config,
            &proof,
            &Method::DELETE,
            "/orders",
            Some(TOKEN)
        )),
        InvalidDpopProof::WrongMethod
    );
    assert!(store.is_empty());
    check(&config, &proof).expect("still usable for its own request");
}

mod garbage {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary text never panics and is never accepted.
        #[test]
        fn arbitrary_strings(proof in ".{0,300}") {
            prop_assert!(check(&DpopConfig::new(), &proof).is_err());
        }

        /// A good proof with one character changed is refused: strict base64url (no padding,
        /// no stray trailing bits) leaves no second spelling of the same bytes.
        #[test]
        fn one_character_changed(at in 0usize..2000, c in prop::sample::select(
            vec!['A', 'z', '0', '-', '_', '.', '=', '+', '/', ' ', '~']
        )) {
            let key = DpopKey::es256();
            let proof = key.proof("GET", HTU, Some(TOKEN));
            let at = at % proof.len();
            let mut changed: Vec<char> = proof.chars().collect();
            prop_assume!(changed[at] != c);
            changed[at] = c;
            let changed: String = changed.into_iter().collect();
            prop_assert!(check(&DpopConfig::new(), &changed).is_err());
        }

        /// Arbitrary JSON headers and claims, validly signed, never panic.
        #[test]
        fn arbitrary_json(header in json_value(), claims in json_value()) {
            let key = DpopKey::es256();
            let _ = check(&DpopConfig::new(), &key.sign(&header, &claims));
            let mut h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": serde_json::to_value(key.jwk()).unwrap()});
            if let (Value::Object(h), Value::Object(extra)) = (&mut h, &header) {
                h.extend(extra.clone());
            }
            let _ = check(&DpopConfig::new(), &key.sign(&h, &claims));
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop::sample::select(vec![
                "typ",
                "alg",
                "jwk",
                "dpop+jwt",
                "ES256",
                "none",
                "jti",
                "htm",
                "htu",
                "iat",
                "ath",
                "GET",
                "https://api.example.com/orders",
                "kty",
                "EC",
                "d",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "typ", "alg", "jwk", "jti", "htm", "htu", "iat", "ath", "kty", "crv", "x",
                        "y", "n", "e"
                    ]),
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }
}
