//! [`DpopKey`]: a client's DPoP key for tests, making proofs (exported as
//! `testing::DpopKey`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::proof::alg_name;
use super::{access_token_hash, jwk_thumbprint};
use crate::Confirmation;

const ES256_PRIVATE: &str = include_str!("../testing/es256-private.pem");

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7), before its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A DPoP client key for tests: makes proofs for requests, and knows its thumbprint (the
/// `cnf.jkt` of tokens bound to it).
///
/// ```
/// use tower_token_auth::testing::DpopKey;
///
/// let key = DpopKey::es256();
/// let proof = key.proof("GET", "https://api.example.com/orders", Some("access-token"));
/// assert_eq!(proof.split('.').count(), 3);
/// // Another key, with another thumbprint.
/// assert_ne!(DpopKey::ed25519().thumbprint(), key.thumbprint());
/// ```
///
/// Never use these keys outside tests: the ES256 one is published in this crate's source.
#[derive(Clone)]
pub struct DpopKey {
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
    jwk_json: Value,
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// The crate's fixed, published ES256 test key (the pair `testing::TestKeys::es256` signs
    /// tokens with).
    pub fn es256() -> Self {
        let key = EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes()).expect("the test ES256 key");
        Self::from_key(key, Algorithm::ES256)
    }

    /// A new random Ed25519 (EdDSA) key: every call gives another key.
    pub fn ed25519() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        Self::from_key(EncodingKey::from_ed_der(&der), Algorithm::EdDSA)
    }

    fn from_key(key: EncodingKey, alg: Algorithm) -> Self {
        crate::crypto::ensure_provider();
        // The keys are built above from constants or well-formed DER: a failure is a bug.
        let jwk = Jwk::from_encoding_key(&key, alg).expect("public JWK of a test key");
        let jwk_json = serde_json::to_value(&jwk).expect("JWK as JSON");
        let thumbprint = jwk_thumbprint(&jwk).expect("thumbprint of a test key");
        Self {
            alg,
            key,
            jwk,
            jwk_json,
            thumbprint,
        }
    }

    /// The algorithm proofs are signed with (ES256 or EdDSA).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key, as proofs embed it.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The RFC 7638 thumbprint of the public key: the `cnf.jkt` of tokens bound to it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The confirmation claim of a token bound to this key.
    pub fn confirmation(&self) -> Confirmation {
        Confirmation::dpop(&self.thumbprint)
    }

    /// A fresh proof (random `jti`, `iat` now) for a request with `method` to `htu`; with
    /// `ath` when an access token is given (a resource server request).
    pub fn proof(&self, method: impl AsRef<str>, htu: &str, access_token: Option<&str>) -> String {
        self.proof_with(method, htu, access_token, |_, _| {})
    }

    /// [`proof`](Self::proof), with its header and claims changed by `edit` before signing
    /// (to test refusals: an old `iat`, a reused `jti`, another `typ`, another key's `jwk`…).
    ///
    /// ```
    /// use tower_token_auth::testing::DpopKey;
    ///
    /// let key = DpopKey::es256();
    /// let old = key.proof_with("GET", "https://api.example.com/", None, |header, claims| {
    ///     header.insert("typ".into(), "jwt".into());
    ///     claims.insert("iat".into(), 1_000_000_000.into());
    /// });
    /// # let _ = old;
    /// ```
    pub fn proof_with(
        &self,
        method: impl AsRef<str>,
        htu: &str,
        access_token: Option<&str>,
        edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    ) -> String {
        let Value::Object(mut header) = json!({
            "typ": "dpop+jwt",
            "alg": alg_name(self.alg).expect("ES256 or EdDSA"),
            "jwk": self.jwk_json,
        }) else {
            unreachable!("an object literal")
        };
        let Value::Object(mut claims) = json!({
            "jti": crate::issuer::random_id::<16>(),
            "htm": method.as_ref(),
            "htu": htu,
            "iat": crate::revocation::now_secs(),
        }) else {
            unreachable!("an object literal")
        };
        if let Some(token) = access_token {
            claims.insert("ath".into(), access_token_hash(token).into());
        }
        edit(&mut header, &mut claims);
        self.sign(&Value::Object(header), &Value::Object(claims))
    }

    /// A compact JWS of `header` and `claims` exactly as given, signed with this key and its
    /// algorithm (whatever `header` says).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_text(&header.to_string(), &claims.to_string())
    }

    /// A compact JWS of two JSON texts exactly as written (e.g. with a member twice).
    pub(crate) fn sign_text(&self, header: &str, claims: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, self.alg).expect("signing");
        format!("{message}.{signature}")
    }
}
