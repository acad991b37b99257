//! The authorization server's signing keys: rotated without a verifier ever meeting an
//! unknown `kid`.
//!
//! [`SigningKeyRing`] holds three kinds of key, all in the published JWK Set:
//!
//! - the **current** key, which signs;
//! - **next** keys, added by [`rotate`](SigningKeyRing::rotate): published at once, signing
//!   only after `publish_ahead` (default 5 minutes), the longest a verifier may cache the JWK
//!   Set (the [service](SigningKeyRing::jwks_service) says `Cache-Control: max-age` of
//!   `publish_ahead`), so every cache has picked the key up before the first token it signs;
//! - **retired** keys, superseded by a newer one: published until every token they signed has
//!   expired (`max_token_lifetime` + `leeway`), then dropped.
//!
//! Time comes from a clock (Unix seconds), the system's unless
//! [`with_clock`](SigningKeyRing::with_clock) gives another, so tests need not wait minutes.
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth::TokenIssuer;
//! use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let ring = SigningKeyRing::new(RingKey::generate_ed25519()?)
//!     .publish_ahead(Duration::from_secs(300))
//!     .max_token_lifetime(Duration::from_secs(3600));
//! let first = ring.current_kid();
//! ring.rotate(RingKey::generate_ed25519()?)?;
//! // Published now, signing in five minutes.
//! assert_eq!(ring.published_kids().len(), 2);
//! assert_eq!(ring.current_kid(), first);
//! let token = TokenIssuer::new(ring.signing_key()).issue("alice", "").unwrap();
//! # let _ = token; Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::RngCore;
use tower_service::Service;
use zeroize::Zeroize;

use crate::error::ConfigError;
use crate::issuer::SigningKey;
use crate::keys::KeySet;

/// The default `publish_ahead`: 5 minutes.
pub const DEFAULT_PUBLISH_AHEAD: Duration = Duration::from_secs(300);
/// The default longest lifetime of a token the ring signs: 1 hour.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The default clock leeway of verifiers: 5 minutes (the most this crate's verifier allows).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(300);

/// PKCS#8 v1 header of an Ed25519 private key; the 32-byte seed follows (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// One signing key of the ring and its public JWK (`kid` = RFC 7638 thumbprint, `alg`,
/// `use: sig`).
#[derive(Clone)]
pub struct RingKey {
    signing: SigningKey,
    jwk: Jwk,
    kid: String,
}

impl fmt::Debug for RingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingKey")
            .field("kid", &self.kid)
            .field("alg", &self.signing.algorithm())
            .finish_non_exhaustive()
    }
}

impl RingKey {
    /// A key from a PKCS#8 PEM private key: P-256 (ES256) or Ed25519 (EdDSA).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        // Building the SigningKey first also installs the crypto provider.
        let (signing, encoding, alg) = match SigningKey::ec_pem(Algorithm::ES256, pem) {
            Ok(key) => (key, EncodingKey::from_ec_pem(pem), Algorithm::ES256),
            Err(_) => match SigningKey::ed_pem(pem) {
                Ok(key) => (key, EncodingKey::from_ed_pem(pem), Algorithm::EdDSA),
                Err(_) => {
                    return Err(ConfigError::new(
                        "not a PKCS#8 PEM P-256 (ES256) or Ed25519 (EdDSA) private key",
                    ));
                }
            },
        };
        let encoding = encoding.map_err(|e| ConfigError::new(format!("private key: {e}")))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, alg)
            .map_err(|e| ConfigError::new(format!("public key of a {alg:?} key: {e}")))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| ConfigError::new(format!("JWK thumbprint: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            signing: signing.with_kid(kid.clone()),
            jwk,
            kid,
        })
    }

    /// A new random Ed25519 key (EdDSA).
    pub fn generate_ed25519() -> Result<Self, ConfigError> {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        der.extend_from_slice(&seed);
        seed.zeroize();
        let mut pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        der.zeroize();
        let key = Self::from_pem(pem.as_bytes());
        pem.zeroize();
        key
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.signing.algorithm()
    }

    /// Its public JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }
}

#[derive(Debug)]
struct Entry {
    key: RingKey,
    /// When it starts signing (Unix seconds).
    signs_from: u64,
}

/// A clock: Unix seconds.
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The signing keys of an authorization server, rotated ahead of use; see the
/// [module docs](self). Cheap to clone: clones share the keys.
#[derive(Clone)]
pub struct SigningKeyRing {
    /// Sorted by `signs_from`, oldest first.
    entries: Arc<RwLock<Vec<Entry>>>,
    publish_ahead: Duration,
    max_token_lifetime: Duration,
    leeway: Duration,
    clock: Clock,
}

impl fmt::Debug for SigningKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRing")
            .field("published", &self.published_kids())
            .field("current", &self.current_kid())
            .field("publish_ahead", &self.publish_ahead)
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRing {
    /// A ring whose first key signs at once.
    pub fn new(first: RingKey) -> Self {
        Self {
            entries: Arc::new(RwLock::new(vec![Entry {
                key: first,
                signs_from: 0,
            }])),
            publish_ahead: DEFAULT_PUBLISH_AHEAD,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            leeway: DEFAULT_LEEWAY,
            clock: Arc::new(crate::revocation::now_secs),
        }
    }

    /// How long a rotated-in key is published before it signs (default 5 minutes; zero
    /// allowed): at least the JWK Set cache lifetime of every verifier. Also the `max-age`
    /// the [service](Self::jwks_service) sends.
    pub fn publish_ahead(mut self, ahead: Duration) -> Self {
        self.publish_ahead = ahead;
        self
    }

    /// The longest lifetime of any token the ring signs (default 1 hour): a retired key
    /// stays published this long (plus the leeway) after it stopped signing.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// The clock leeway verifiers allow past `exp` (default 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads time from `clock` (Unix seconds) instead of the system clock.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        // Every update is a single push or retain: a poisoned lock still holds a valid ring.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of the key signing at `now`: the last one whose `signs_from` has come.
    fn current_index(entries: &[Entry], now: u64) -> usize {
        entries
            .iter()
            .rposition(|e| e.signs_from <= now)
            .unwrap_or(0)
    }

    /// Whether entry `i` is still published at `now`.
    fn is_published(&self, entries: &[Entry], i: usize, now: u64) -> bool {
        let current = Self::current_index(entries, now);
        if i >= current {
            return true;
        }
        // Retired when its successor started signing.
        let retired_at = entries[i + 1].signs_from;
        let keep = self
            .max_token_lifetime
            .saturating_add(self.leeway)
            .as_secs();
        retired_at.saturating_add(keep) >= now
    }

    /// Adds `key`: published now, signing from `now + publish_ahead` (returned, Unix
    /// seconds). Retired keys whose tokens have all expired are dropped. Fails on a `kid`
    /// the ring already holds.
    pub fn rotate(&self, key: RingKey) -> Result<u64, ConfigError> {
        let now = self.now();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.iter().any(|e| e.key.kid == key.kid) {
            return Err(ConfigError::new(format!(
                "the key ring already holds kid `{}`",
                key.kid
            )));
        }
        let keep: Vec<bool> = (0..entries.len())
            .map(|i| self.is_published(&entries, i, now))
            .collect();
        let mut flags = keep.into_iter();
        entries.retain(|_| flags.next().unwrap_or(true));
        let last = entries.last().map_or(0, |e| e.signs_from);
        // Never before a key already scheduled: the order of rotations is the order of use.
        let signs_from = now.saturating_add(self.publish_ahead.as_secs()).max(last);
        tracing::info!(kid = %key.kid, signs_from, "signing key published");
        entries.push(Entry { key, signs_from });
        Ok(signs_from)
    }

    /// The key to sign with now.
    pub fn signing_key(&self) -> SigningKey {
        let entries = self.read();
        entries[Self::current_index(&entries, self.now())]
            .key
            .signing
            .clone()
    }

    /// The `kid` of the key signing now.
    pub fn current_kid(&self) -> String {
        let entries = self.read();
        entries[Self::current_index(&entries, self.now())]
            .key
            .kid
            .clone()
    }

    fn published(&self) -> Vec<Jwk> {
        let now = self.now();
        let entries = self.read();
        (0..entries.len())
            .filter(|&i| self.is_published(&entries, i, now))
            .map(|i| entries[i].key.jwk.clone())
            .collect()
    }

    /// The `kid`s in the published JWK Set, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.published()
            .into_iter()
            .filter_map(|j| j.common.key_id)
            .collect()
    }

    /// The published JWK Set: current, next and not yet expired retired keys.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.published(),
        }
    }

    /// The published JWK Set as JSON, the document of the `jwks_uri`.
    pub fn jwks_json(&self) -> String {
        // Public JWKs of EC and OKP keys: strings only, serialization cannot fail.
        serde_json::to_string(&self.jwks()).unwrap_or_else(|_| r#"{"keys":[]}"#.to_owned())
    }

    /// The published keys as a [`KeySet`], for the server's own verifier (its logout and
    /// introspection endpoints).
    pub fn key_set(&self) -> Result<KeySet, ConfigError> {
        KeySet::from_jwks(&self.jwks())
    }

    /// The algorithms of the published keys, for the discovery document's
    /// `id_token_signing_alg_values_supported`.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let entries = self.read();
        let now = self.now();
        let mut algs = Vec::new();
        for i in (0..entries.len()).filter(|&i| self.is_published(&entries, i, now)) {
            let alg = entries[i].key.algorithm();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }

    /// The `max-age` the JWK Set is served with: `publish_ahead`.
    pub fn cache_max_age(&self) -> Duration {
        self.publish_ahead
    }

    /// A service answering `GET`/`HEAD` with the JWK Set (`application/json`,
    /// `Cache-Control: public, max-age=<publish_ahead>`), other methods with 405. Mount it at
    /// the `jwks_uri`.
    pub fn jwks_service(&self) -> JwksService {
        JwksService { ring: self.clone() }
    }
}

/// Serves a [`SigningKeyRing`]'s JWK Set; see [`SigningKeyRing::jwks_service`].
#[derive(Clone, Debug)]
pub struct JwksService {
    ring: SigningKeyRing,
}

impl<B> Service<Request<B>> for JwksService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let max_age = format!("public, max-age={}", self.ring.cache_max_age().as_secs());
        let cache_control = HeaderValue::from_str(&max_age)
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache"));
        ready(Ok(crate::json_document::json_document_response(
            req.method(),
            || Bytes::from(self.ring.jwks_json()),
            cache_control,
        )))
    }
}
