//! One request decision, whichever way the key was found: every case of the table runs through
//! the synchronous path (static keys) and through the unknown-`kid` refetch path (a remote JWK
//! Set that gains the token's key only after the layer first looked), in each mode, and both
//! must give the same answer.

#[path = "support/bad_inputs.rs"]
mod bad_inputs;

use bad_inputs::{Expect, check, cookie, get, now, send};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower_token_auth::keys::{BoxError, JwkPolicy, RemoteJwks};
use tower_token_auth::{AccessCookie, JwtAuthLayer, KeySet, MemoryStore, Verifier, VerifyingKey};

const KEY: &[u8] = b"k1-secret-of-at-least-32-bytes-long!";
const OLD_KEY: &[u8] = b"k0-secret-of-at-least-32-bytes-long!";
const WRONG_KEY: &[u8] = b"not-the-k1-secret-but-as-long-as-it";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySource {
    /// The token's key is configured up front: the synchronous path.
    Static,
    /// The key appears in the remote JWK Set after the first fetch: the refetch path.
    Refetched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
    LenientCookies,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Bearer,
    Cookie,
    Nothing,
}

fn jwk(kid: &str, secret: &[u8]) -> String {
    format!(
        r#"{{"kty":"oct","kid":"{kid}","alg":"HS256","k":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(secret)
    )
}

/// A JWK Set server in memory: what it serves can change, and it counts fetches.
#[derive(Clone, Default)]
struct Jwks {
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Jwks {
    fn serve(&self, keys: &[String]) {
        *self.body.lock().unwrap() = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
    }

    fn source(&self) -> RemoteJwks {
        let this = self.clone();
        RemoteJwks::new(move || {
            let this = this.clone();
            async move {
                this.fetches.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(this.body.lock().unwrap().clone())
            }
        })
        .min_refetch_interval(Duration::ZERO)
        // The table signs with HMAC keys, which a remote set carries only when allowed.
        .policy(JwkPolicy::new())
    }
}

fn builder(keys: KeySet) -> tower_token_auth::VerifierBuilder {
    Verifier::builder(keys)
        .issuer("test")
        .audience("test")
        .require_claims(["exp", "sub"])
        .leeway(Duration::from_secs(5))
}

/// A fresh layer (so the refetch path is taken again) and, for the remote source, its server.
async fn layer(keys: KeySource, mode: Mode, store: &MemoryStore) -> (JwtAuthLayer, Option<Jwks>) {
    let (verifier, jwks) = match keys {
        KeySource::Static => {
            let keys = KeySet::new()
                .with_key(
                    VerifyingKey::hmac(Algorithm::HS256, KEY)
                        .unwrap()
                        .with_kid("k1"),
                )
                .unwrap();
            (builder(keys).build().unwrap(), None)
        }
        KeySource::Refetched => {
            let jwks = Jwks::default();
            jwks.serve(&[jwk("k0", OLD_KEY)]);
            let verifier = builder(KeySet::new())
                .build_with_jwks(jwks.source())
                .await
                .unwrap();
            assert_eq!(verifier.kids(), ["k0"]);
            // The key rotates in at the identity provider after the layer's first fetch.
            jwks.serve(&[jwk("k0", OLD_KEY), jwk("k1", KEY)]);
            (verifier, Some(jwks))
        }
    };
    let layer = JwtAuthLayer::new(verifier)
        .with_cookie(AccessCookie::new("access_token"))
        .unwrap()
        .with_revocation_store(store.clone())
        .with_realm("api")
        .unwrap();
    let layer = match mode {
        Mode::Required => layer,
        Mode::Optional => layer.optional(),
        Mode::LenientCookies => layer.optional_ignoring_bad_cookies(),
    };
    (layer, jwks)
}

fn mint(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "test", "aud": "test", "exp": now() + 600, "iat": now(), "jti": format!("jti-{sub}")})
}

fn with(name: &str, value: Value) -> Value {
    let mut c = claims("alice");
    c[name] = value;
    c
}

fn request(carrier: Carrier, token: &str) -> Request<Full<Bytes>> {
    match carrier {
        Carrier::Bearer => get()
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap(),
        Carrier::Cookie => cookie(&format!("access_token={token}")),
        Carrier::Nothing => get().body(Full::default()).unwrap(),
    }
}

const ANONYMOUS: Expect = Expect::Ok("Some(Anonymous)");

/// What a refused token answers: refused in the strict modes, no token for a cookie in
/// lenient mode.
fn refused(mode: Mode, carrier: Carrier, description: &'static str) -> Expect {
    if mode == Mode::LenientCookies && carrier == Carrier::Cookie {
        ANONYMOUS
    } else {
        Expect::BadToken(description)
    }
}

/// What a token case answers, by mode and carrier.
type Expected = fn(Mode, Carrier) -> Expect;

#[tokio::test]
async fn one_decision_on_the_synchronous_and_the_refetch_path() {
    // The test signs with jsonwebtoken before the crate builds a key (and installs its provider).
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let store = MemoryStore::new();
    store.revoke_user_now("mallory", now(), now() + 600);
    let valid = mint("k1", KEY, &claims("alice"));
    let tokens: Vec<(&str, String, Expected)> = vec![
        ("valid", valid.clone(), |_, _| Expect::Ok("alice")),
        (
            "expired",
            mint("k1", KEY, &with("exp", json!(now() - 100))),
            |m, c| refused(m, c, "token expired"),
        ),
        (
            "revoked user",
            mint("k1", KEY, &claims("mallory")),
            |m, c| refused(m, c, "token revoked"),
        ),
        (
            "bad signature",
            mint("k1", WRONG_KEY, &claims("alice")),
            |m, c| refused(m, c, "invalid signature"),
        ),
        (
            "wrong issuer",
            mint("k1", KEY, &with("iss", json!("elsewhere"))),
            |m, c| refused(m, c, "invalid issuer"),
        ),
        (
            "issued in the future",
            mint("k1", KEY, &with("iat", json!(now() + 3600))),
            |m, c| refused(m, c, "token issued in the future"),
        ),
        (
            "kid never published",
            mint("k9", KEY, &claims("alice")),
            |m, c| refused(m, c, "unknown signing key"),
        ),
        // Outside RFC 6750's b64token syntax: a bearer token is a malformed request (400),
        // a cookie (whose syntax is the cookie's) is a bad token.
        ("not b64token", format!("{valid}!"), |m, c| match c {
            Carrier::Bearer => Expect::BadRequest("malformed bearer token"),
            _ => refused(m, c, "malformed token"),
        }),
    ];
    let mut ran = 0;
    for mode in [Mode::Required, Mode::Optional, Mode::LenientCookies] {
        for carrier in [Carrier::Bearer, Carrier::Cookie] {
            for (name, token, expect) in &tokens {
                let mut answers = Vec::new();
                for keys in [KeySource::Static, KeySource::Refetched] {
                    let (layer, jwks) = layer(keys, mode, &store).await;
                    let out = send(&layer, request(carrier, token)).await;
                    let case = format!("{name}, {carrier:?}, {mode:?}, {keys:?} keys");
                    check(&case, &out, expect(mode, carrier));
                    if let Some(jwks) = jwks {
                        // The case really went through the refetch path.
                        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2, "{case}: fetches");
                    }
                    answers.push((out.status, out.www, out.body));
                    ran += 1;
                }
                assert_eq!(
                    answers[0], answers[1],
                    "{name}, {carrier:?}, {mode:?}: both paths answer alike"
                );
            }
        }
        // No token at all: the mode decides, on both key sources.
        for keys in [KeySource::Static, KeySource::Refetched] {
            let (layer, _) = layer(keys, mode, &store).await;
            let out = send(&layer, request(Carrier::Nothing, "")).await;
            let expect = match mode {
                Mode::Required => Expect::NoToken,
                _ => ANONYMOUS,
            };
            check(&format!("no token, {mode:?}, {keys:?} keys"), &out, expect);
        }
    }
    assert_eq!(ran, 3 * 2 * 8 * 2);
}
