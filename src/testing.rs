//! Helpers for applications' own tests (feature `testing`): a key pair or secret, a matching
//! verifier and issuer, and one-line token minting.
//!
//! ```
//! use tower_token_auth::testing::TestKeys;
//!
//! let keys = TestKeys::hs256();
//! let token = keys.mint("alice", "read write");
//! let claims = keys.verifier().verify::<tower_token_auth::NoCustomClaims>(&token).unwrap();
//! assert_eq!(claims.sub.as_deref(), Some("alice"));
//! ```
//!
//! Never use these keys outside tests: the ES256 pair is published in this crate's source.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::issuer::{SigningKey, TokenIssuer};
use crate::keys::{KeySet, VerifyingKey};
use crate::verifier::Verifier;

/// The issuer and audience the test keys put in and expect of every token.
pub const TEST_ISSUER: &str = "tower-token-auth-test";

const ES256_PRIVATE: &str = include_str!("testing/es256-private.pem");
const ES256_PUBLIC: &str = include_str!("testing/es256-public.pem");

/// A signing key and the key set that verifies it, with `iss` = `aud` = [`TEST_ISSUER`].
#[derive(Debug, Clone)]
pub struct TestKeys {
    keys: KeySet,
    issuer: TokenIssuer,
}

impl TestKeys {
    /// A random HS256 secret (kid `test-hs256`).
    pub fn hs256() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::from_keys(
            VerifyingKey::hmac(Algorithm::HS256, &secret),
            SigningKey::hmac(Algorithm::HS256, &secret),
            "test-hs256",
        )
    }

    /// A fixed, published ES256 key pair (kid `test-es256`).
    pub fn es256() -> Self {
        Self::from_keys(
            VerifyingKey::ec_pem(Algorithm::ES256, ES256_PUBLIC.as_bytes()),
            SigningKey::ec_pem(Algorithm::ES256, ES256_PRIVATE.as_bytes()),
            "test-es256",
        )
    }

    fn from_keys(
        verifying: Result<VerifyingKey, crate::ConfigError>,
        signing: Result<SigningKey, crate::ConfigError>,
        kid: &str,
    ) -> Self {
        // The inputs are constants of this module; failing here is a bug in the crate.
        let verifying = verifying.expect("test verifying key").with_kid(kid);
        let signing = signing.expect("test signing key").with_kid(kid);
        let keys = KeySet::new().with_key(verifying).expect("one key");
        let issuer = TokenIssuer::new(signing)
            .issuer(TEST_ISSUER)
            .audience(TEST_ISSUER)
            .ttl(Duration::from_secs(600));
        Self { keys, issuer }
    }

    /// The key set that verifies these keys' tokens.
    pub fn key_set(&self) -> KeySet {
        self.keys.clone()
    }

    /// A verifier requiring `iss`, `aud`, `exp` and `sub`.
    pub fn verifier(&self) -> Verifier {
        Verifier::builder(self.key_set())
            .issuer(TEST_ISSUER)
            .audience(TEST_ISSUER)
            .require_claims(["exp", "sub"])
            .build()
            .expect("valid test verifier")
    }

    /// An issuer of 10-minute tokens with these keys.
    pub fn issuer(&self) -> TokenIssuer {
        self.issuer.clone()
    }

    /// A valid token for `sub` with the space-delimited `scope`.
    pub fn mint(&self, sub: &str, scope: &str) -> String {
        self.issuer
            .issue(sub, scope)
            .expect("signing a test token")
            .token
    }
}

/// A DPoP client key making proofs (RFC 9449), for tests of resource servers and token
/// endpoints that accept DPoP: see [`crate::dpop`].
pub use crate::dpop::test_key::DpopKey;
