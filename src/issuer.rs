//! Minting access tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header, encode};
use rand::RngCore;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::claims::Audience;
use crate::crypto::ensure_provider;
use crate::error::ConfigError;
use crate::keys::min_hmac_len;
use crate::revocation::now_secs;

/// A private key (or HMAC secret) pinned to one algorithm, for signing.
#[derive(Clone)]
pub struct SigningKey {
    kid: Option<String>,
    alg: Algorithm,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"REDACTED")
            .finish()
    }
}

fn family(alg: Algorithm, want: AlgorithmFamily) -> Result<(), ConfigError> {
    if alg.family() == want {
        Ok(())
    } else {
        Err(ConfigError::new(format!(
            "algorithm {alg:?} does not fit a {want:?} key"
        )))
    }
}

impl SigningKey {
    /// An HMAC secret (HS256/384/512), at least as long as the hash output.
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        family(alg, AlgorithmFamily::Hmac)?;
        if secret.len() < min_hmac_len(alg) {
            return Err(ConfigError::new(format!(
                "an {alg:?} secret needs at least {} bytes",
                min_hmac_len(alg)
            )));
        }
        Ok(Self {
            kid: None,
            alg,
            key: EncodingKey::from_secret(secret),
        })
    }

    /// An RSA private key in PEM (RS*/PS*).
    pub fn rsa_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        family(alg, AlgorithmFamily::Rsa)?;
        let key = EncodingKey::from_rsa_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid RSA private key PEM: {e}")))?;
        Ok(Self {
            kid: None,
            alg,
            key,
        })
    }

    /// An EC private key in PKCS#8 PEM (ES256/ES384).
    pub fn ec_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        family(alg, AlgorithmFamily::Ec)?;
        let key = EncodingKey::from_ec_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid EC private key PEM: {e}")))?;
        Ok(Self {
            kid: None,
            alg,
            key,
        })
    }

    /// An Ed25519 private key in PKCS#8 PEM (EdDSA).
    pub fn ed_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        ensure_provider();
        let key = EncodingKey::from_ed_pem(pem)
            .map_err(|e| ConfigError::new(format!("invalid Ed25519 private key PEM: {e}")))?;
        Ok(Self {
            kid: None,
            alg: Algorithm::EdDSA,
            key,
        })
    }

    /// Sets the `kid` written into each token's header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `claims` as a compact JWS with this key's algorithm and `kid`, and `typ`
    /// when given (client assertions, DPoP proofs, logout tokens).
    pub(crate) fn sign<C: Serialize>(
        &self,
        claims: &C,
        typ: Option<&str>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = self.kid.clone();
        header.typ = typ.map(str::to_owned);
        encode(&header, claims, &self.key)
    }
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The custom claims did not serialize to a JSON object.
    #[error("custom claims must serialize to a JSON object")]
    NotAnObject,
    /// The custom claims tried to set a registered claim the issuer controls.
    #[error("custom claims may not set the registered claim `{0}`")]
    ReservedClaim(String),
    /// Serialization or signing failed.
    #[error("could not sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// Serializing the custom claims failed.
    #[error("could not serialize claims: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A freshly minted access token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`: 128 random bits, base64url.
    pub jti: String,
    /// Its `iat`.
    pub issued_at: u64,
    /// Its `exp`.
    pub expires_at: u64,
    /// Seconds from `iat` to `exp`, for an OAuth `expires_in`.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"REDACTED")
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

const RESERVED: &[&str] = &[
    "sub", "jti", "iss", "aud", "exp", "nbf", "iat", "scope", "sid",
];

/// Mints access tokens: random `jti`, `iat`, `exp` from a TTL, `iss`, `aud`, `sub`, `scope`
/// and the application's own claims. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::Algorithm;
/// use tower_token_auth::{SigningKey, TokenIssuer};
///
/// let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &[7u8; 32])?)
///     .issuer("quickstart")
///     .audience("quickstart")
///     .ttl(Duration::from_secs(15 * 60));
/// let issued = issuer.issue("alice", "read write").unwrap();
/// assert_eq!(issued.expires_in, 900);
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    inner: Arc<IssuerConfig>,
}

#[derive(Clone, Debug)]
struct IssuerConfig {
    key: SigningKey,
    header: Header,
    iss: Option<String>,
    aud: Option<Audience>,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `key`, 15-minute tokens, no `iss` or `aud`.
    pub fn new(key: SigningKey) -> Self {
        let mut header = Header::new(key.alg);
        header.kid = key.kid.clone();
        Self {
            inner: Arc::new(IssuerConfig {
                key,
                header,
                iss: None,
                aud: None,
                ttl: Duration::from_secs(15 * 60),
            }),
        }
    }

    fn config(&mut self) -> &mut IssuerConfig {
        Arc::make_mut(&mut self.inner)
    }

    /// The `iss` of every token.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.config().iss = Some(iss.into());
        self
    }

    /// The `aud` of every token (call again to add audiences).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        let aud = aud.into();
        let c = self.config();
        c.aud = Some(match c.aud.take() {
            None => Audience::One(aud),
            Some(Audience::One(a)) => Audience::Many(vec![a, aud]),
            Some(Audience::Many(mut all)) => {
                all.push(aud);
                Audience::Many(all)
            }
        });
        self
    }

    /// Lifetime of each token (default 15 minutes).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config().ttl = ttl;
        self
    }

    /// The JOSE header `typ` (e.g. `at+jwt`, RFC 9068; default `JWT`).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.config().header.typ = Some(typ.into());
        self
    }

    /// The configured lifetime.
    pub fn token_ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Mints a token for `sub` with space-delimited `scope` (empty: no `scope` claim).
    pub fn issue(&self, sub: &str, scope: &str) -> Result<IssuedToken, IssueError> {
        self.issue_with(sub, scope, &Map::new())
    }

    /// Mints a token carrying the application's own claims too. `custom` must serialize to a
    /// JSON object and may not set registered claims.
    pub fn issue_with<C: Serialize>(
        &self,
        sub: &str,
        scope: &str,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        self.issue_in_session(sub, scope, None, custom)
    }

    /// Mints a token that belongs to session `sid` (a refresh-token family): revoking the
    /// session revokes the token.
    pub fn issue_in_session<C: Serialize>(
        &self,
        sub: &str,
        scope: &str,
        sid: Option<&str>,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        let c = &*self.inner;
        let mut claims = match serde_json::to_value(custom)? {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err(IssueError::NotAnObject),
        };
        if let Some(k) = claims.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(IssueError::ReservedClaim(k.clone()));
        }
        let now = now_secs();
        let exp = now.saturating_add(c.ttl.as_secs());
        let jti = random_id::<16>();
        claims.insert("sub".into(), sub.into());
        claims.insert("jti".into(), jti.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), exp.into());
        if let Some(iss) = &c.iss {
            claims.insert("iss".into(), iss.clone().into());
        }
        if let Some(aud) = &c.aud {
            claims.insert("aud".into(), serde_json::to_value(aud)?);
        }
        if !scope.is_empty() {
            claims.insert("scope".into(), scope.into());
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), sid.into());
        }
        let token = encode(&c.header, &claims, &c.key.key)?;
        Ok(IssuedToken {
            token,
            jti,
            issued_at: now,
            expires_at: exp,
            expires_in: exp - now,
        })
    }
}

/// `N` random bytes from the thread-local CSPRNG, base64url without padding.
pub(crate) fn random_id<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
