//! Authorization codes (RFC 6749 §4.1, PKCE RFC 7636): one-time, short-lived, bound to the
//! request that produced them.
//!
//! A code is 256 random bits handed to the browser once; the store keeps only its SHA-256
//! ([`CodeHash`]) with the [`CodeGrant`] it stands for: client, redirect URI, PKCE `S256`
//! challenge, OpenID Connect `nonce`, user, SSO session, scope and `auth_time`.
//!
//! [`AuthorizationCodeStore::redeem`] is single use, atomically: of any number of concurrent
//! redemptions of one code, exactly one takes it. That one is checked (client, redirect URI
//! byte for byte, PKCE verifier) and answers [`Redemption::Redeemed`] or, on any mismatch,
//! [`Redemption::Refused`]: the code is burned either way (RFC 9700 §4.1.1, OAuth 2.1
//! §4.1.3). Every later redemption answers [`Redemption::Replayed`] with the session and
//! what the first one produced ([`IssuedRef`], recorded with
//! [`mark_issued`](AuthorizationCodeStore::mark_issued)), so the caller can revoke it (RFC
//! 6749 §4.1.2). Spent codes are remembered for
//! [`replay_window`](AuthorizationCodeStore::replay_window) after their redemption (at least
//! until their own expiry).
//!
//! Before a code is issued, [`AuthorizationRequest::check`] checks the request that asks for
//! it (client and redirect URI against the [`ClientRegistry`](crate::sso::clients::ClientRegistry),
//! PKCE `S256`, `response_type`) and tells which refusals redirect and which must not; after
//! it is redeemed, [`CodeGrant::id_token`] mints the OpenID Connect ID token.
//!
//! Store errors ([`CodeStoreError`]) never decide anything: a caller answers
//! `503 temporarily_unavailable` when [`is_transient`](CodeStoreError::is_transient), and
//! refuses the code otherwise.
//!
//! ```
//! use tower_token_auth::sso::code::{
//!     AuthorizationCodeStore, CodeGrant, CodeHash, IssuedRef, MarkIssued, MemoryCodeStore, Redemption,
//!     s256_challenge,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryCodeStore::new();
//! let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
//! let grant = CodeGrant::new("orders", "https://orders.example/cb", s256_challenge(verifier), "alice", "sid-1")?
//!     .scope("orders")
//!     .nonce("n-0S6_WzA2Mj");
//! let code = store.issue(&grant).await?;
//!
//! let Redemption::Redeemed(grant) = store.redeem(&code, "orders", "https://orders.example/cb", verifier).await? else {
//!     panic!("the first redemption wins");
//! };
//! // ... mint tokens for grant.sub in session grant.session, then:
//! let issued = IssuedRef::new().family("fam-1").jti("at-1");
//! assert_eq!(store.mark_issued(CodeHash::of(&code), &issued).await?, MarkIssued::Recorded);
//!
//! match store.redeem(&code, "orders", "https://orders.example/cb", verifier).await? {
//!     Redemption::Replayed { session, issued, .. } => {
//!         assert_eq!(session, "sid-1");
//!         assert_eq!(issued.unwrap().family.as_deref(), Some("fam-1")); // revoke it
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ConfigError;
use crate::revocation::BoxFuture;

mod memory;
mod pkce;
#[cfg(feature = "redis")]
mod redis;
mod request;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisCodeStore;
pub use memory::MemoryCodeStore;
pub use pkce::{is_valid_challenge, is_valid_verifier, s256_challenge, verify_s256};
pub use request::{AuthorizationRequest, AuthorizeError, MAX_REQUEST_PARAM};

/// The default lifetime of a code: 60 seconds (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);

/// The default time a spent code is remembered after its redemption, so that a replay is
/// recognised (and what was issued for it revoked): 10 minutes.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// The longest code [`redeem`](AuthorizationCodeStore::redeem) looks up; longer ones are
/// unknown without being hashed.
const MAX_CODE_LEN: usize = 512;

/// The SHA-256 of a code: all a store keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    /// The hash of `code`.
    pub fn of(code: &str) -> Self {
        Self(Sha256::digest(code.as_bytes()).into())
    }

    /// The hash as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines; the hash is not a secret, but short.
        write!(f, "CodeHash({}…)", &self.to_hex()[..12])
    }
}

/// What an authorization code stands for, fixed when it is issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CodeGrant {
    /// The client the code was issued to.
    pub client_id: String,
    /// The `redirect_uri` of the authorization request; the token request must repeat it
    /// byte for byte.
    pub redirect_uri: String,
    /// The PKCE `S256` `code_challenge` (43 characters of base64url).
    pub code_challenge: String,
    /// The OpenID Connect `nonce` of the request, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The user.
    pub sub: String,
    /// The SSO session (`sid`) the user signed in with.
    pub session: String,
    /// The granted scope, space-delimited.
    #[serde(default)]
    pub scope: String,
    /// When the user authenticated (Unix seconds), for the ID token's `auth_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
}

fn non_empty(what: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(format!("{what} must not be empty")))
    } else {
        Ok(value)
    }
}

impl CodeGrant {
    /// A grant for `sub` in SSO session `session`, to `client_id` at `redirect_uri`, bound to
    /// a PKCE `S256` challenge. Fails when a value is empty or the challenge is not a
    /// SHA-256 in base64url (the `plain` method is not supported).
    pub fn new(
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
        code_challenge: impl Into<String>,
        sub: impl Into<String>,
        session: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let code_challenge = code_challenge.into();
        if !is_valid_challenge(&code_challenge) {
            return Err(ConfigError::new(
                "code_challenge must be an S256 challenge: 43 characters of base64url",
            ));
        }
        Ok(Self {
            client_id: non_empty("client_id", client_id.into())?,
            redirect_uri: non_empty("redirect_uri", redirect_uri.into())?,
            code_challenge,
            nonce: None,
            sub: non_empty("sub", sub.into())?,
            session: non_empty("session", session.into())?,
            scope: String::new(),
            auth_time: None,
        })
    }

    /// With the request's OpenID Connect `nonce`.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }

    /// With the granted scope (space-delimited).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// With the time the user authenticated (Unix seconds).
    pub fn auth_time(mut self, auth_time: u64) -> Self {
        self.auth_time = Some(auth_time);
        self
    }
}

/// What the caller issued for a redeemed code: revoked when the code is replayed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IssuedRef {
    /// The refresh-token family started for the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The `sid` the tokens carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The `jti`s of the access and ID tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jtis: Vec<String>,
    /// The latest `exp` of those tokens (Unix seconds): how long a revocation must last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl IssuedRef {
    /// Nothing issued yet; add what was with the methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// With the refresh-token family.
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    /// With the tokens' `sid`.
    pub fn sid(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// With one more token `jti`.
    pub fn jti(mut self, jti: impl Into<String>) -> Self {
        self.jtis.push(jti.into());
        self
    }

    /// With the latest `exp` of the tokens.
    pub fn expires_at(mut self, exp: u64) -> Self {
        self.expires_at = Some(exp);
        self
    }

    /// Revokes what was issued, in the store every resource server checks: each token by
    /// `jti` (until its `exp`), and the refresh family's session (its `sid` in the access
    /// tokens it mints; a family whose session is revoked refreshes nothing), until
    /// `keep_until`. The SSO session itself (`sid`) is left alone: the code, not the
    /// session, was stolen. Call it on [`Redemption::Replayed`] and [`MarkIssued::Replayed`].
    pub async fn revoke(
        &self,
        store: &dyn crate::RevocationStore,
        sub: &str,
        keep_until: u64,
    ) -> Result<(), crate::RevocationError> {
        tracing::warn!(
            sub,
            "authorization code replayed: revoking what it was exchanged for"
        );
        let exp = self.expires_at.unwrap_or(keep_until);
        for jti in &self.jtis {
            let token = crate::revocation::TokenRef::new()
                .jti(jti.as_str())
                .sub(sub)
                .exp(exp);
            store.revoke_token(token).await?;
        }
        if let Some(family) = &self.family {
            store.revoke_session(Some(sub), family, keep_until).await?;
        }
        Ok(())
    }
}

/// Why the first redemption of a code was refused. The code is burned all the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The code was issued to another client.
    ClientMismatch,
    /// The `redirect_uri` is not the authorization request's, byte for byte.
    RedirectUriMismatch,
    /// The `code_verifier` is malformed (RFC 7636 §4.1) or does not match the challenge.
    PkceFailed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ClientMismatch => "the code was issued to another client",
            Self::RedirectUriMismatch => "redirect_uri differs from the authorization request's",
            Self::PkceFailed => "code_verifier does not match the code_challenge",
        })
    }
}

/// The outcome of [`redeem`](AuthorizationCodeStore::redeem).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redemption {
    /// The first, valid redemption: issue tokens for this grant, then call
    /// [`mark_issued`](AuthorizationCodeStore::mark_issued).
    Redeemed(CodeGrant),
    /// The first redemption, with a mismatch: answer `invalid_grant`. The code is burned.
    Refused {
        /// What did not match.
        reason: Refusal,
    },
    /// The code was redeemed before: answer `invalid_grant` and revoke what the first
    /// redemption produced (RFC 6749 §4.1.2).
    Replayed {
        /// The SSO session the code belonged to.
        session: String,
        /// The user.
        sub: String,
        /// The client the code was issued to.
        client_id: String,
        /// What the first redemption issued, if it was recorded yet (`None`: the first
        /// redemption was refused, or has not called `mark_issued` yet; that call then
        /// answers [`MarkIssued::Replayed`]).
        issued: Option<IssuedRef>,
    },
    /// No such code: never issued, or expired (or its spent record forgotten). Answer
    /// `invalid_grant`.
    Unknown,
}

/// The outcome of [`mark_issued`](AuthorizationCodeStore::mark_issued).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarkIssued {
    /// Recorded: a later replay will name it.
    Recorded,
    /// The code was replayed while the tokens were being issued: revoke them now.
    Replayed,
}

/// A code store could not answer. It decided nothing: see
/// [`is_transient`](Self::is_transient).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeStoreError {
    /// The backend failed (connection refused, reset, error reply).
    #[error("authorization-code store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer within the operation timeout.
    #[error("authorization-code store timed out")]
    Timeout,
    /// A stored record could not be read (written by an incompatible version, or altered).
    #[error("authorization-code record unreadable: {0}")]
    Corrupt(String),
}

impl CodeStoreError {
    /// Whether trying again later may succeed: answer `503` (`temporarily_unavailable`),
    /// never `invalid_grant` (the code may be good) nor a token. A record that is not
    /// transient (corrupt) is refused with `invalid_grant`.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout)
    }
}

/// What one atomic [`take`](AuthorizationCodeStore::take) found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Taken {
    /// This call spent the code: it alone decides the redemption.
    First(CodeGrant),
    /// The code was spent by an earlier call.
    Spent {
        /// The grant it stood for.
        grant: CodeGrant,
        /// What the first redemption recorded, if anything yet.
        issued: Option<IssuedRef>,
    },
    /// No such code.
    Unknown,
}

/// Where authorization codes live: the memory store for one instance, Redis for several.
///
/// Implementations provide the four storage operations; [`issue`](Self::issue) and
/// [`redeem`](Self::redeem) are built on them and should not be overridden.
pub trait AuthorizationCodeStore: Send + Sync + 'static {
    /// How long a code is valid after it is issued.
    fn code_ttl(&self) -> Duration;

    /// How long a spent code is remembered after its redemption (at least until its expiry).
    fn replay_window(&self) -> Duration;

    /// Stores a new code's grant until `expires_at_ms` (Unix milliseconds).
    fn insert<'a>(
        &'a self,
        hash: CodeHash,
        grant: &'a CodeGrant,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<(), CodeStoreError>>;

    /// Spends the code atomically: of concurrent calls, exactly one gets [`Taken::First`].
    /// `attempt` is unique per call, so that a call retried after a lost reply still
    /// recognises its own spend. The spent record is kept until at least `keep_until_ms`.
    fn take<'a>(
        &'a self,
        hash: CodeHash,
        attempt: &'a str,
        keep_until_ms: u64,
    ) -> BoxFuture<'a, Result<Taken, CodeStoreError>>;

    /// Records what was issued for a redeemed code. Answers [`MarkIssued::Replayed`] when a
    /// replay came in first (its caller found nothing to revoke).
    fn mark_issued<'a>(
        &'a self,
        hash: CodeHash,
        issued: &'a IssuedRef,
    ) -> BoxFuture<'a, Result<MarkIssued, CodeStoreError>>;

    /// Mints a new code for `grant` (256 random bits, base64url), stores its hash for
    /// [`code_ttl`](Self::code_ttl), and returns it: send it to the browser, then forget it.
    fn issue<'a>(&'a self, grant: &'a CodeGrant) -> BoxFuture<'a, Result<String, CodeStoreError>> {
        Box::pin(async move {
            let code = crate::issuer::random_id::<32>();
            let ttl_ms = u64::try_from(self.code_ttl().as_millis()).unwrap_or(u64::MAX);
            let expires = crate::revocation::now_ms().saturating_add(ttl_ms.max(1));
            self.insert(CodeHash::of(&code), grant, expires).await?;
            Ok(code)
        })
    }

    /// Redeems `code` at the token endpoint: single use, bound to `client_id`,
    /// `redirect_uri` (byte for byte) and the PKCE `code_verifier`. See [`Redemption`].
    fn redeem<'a>(
        &'a self,
        code: &'a str,
        client_id: &'a str,
        redirect_uri: &'a str,
        code_verifier: &'a str,
    ) -> BoxFuture<'a, Result<Redemption, CodeStoreError>> {
        Box::pin(async move {
            if code.is_empty() || code.len() > MAX_CODE_LEN {
                return Ok(Redemption::Unknown);
            }
            let attempt = crate::issuer::random_id::<12>();
            let window = u64::try_from(self.replay_window().as_millis()).unwrap_or(u64::MAX);
            let keep_until = crate::revocation::now_ms().saturating_add(window);
            match self.take(CodeHash::of(code), &attempt, keep_until).await? {
                Taken::Unknown => Ok(Redemption::Unknown),
                Taken::Spent { grant, issued } => Ok(Redemption::Replayed {
                    session: grant.session,
                    sub: grant.sub,
                    client_id: grant.client_id,
                    issued,
                }),
                Taken::First(grant) => Ok(check(grant, client_id, redirect_uri, code_verifier)),
            }
        })
    }
}

/// The checks of the first redemption, all evaluated (no early exit on the first mismatch).
fn check(grant: CodeGrant, client_id: &str, redirect_uri: &str, verifier: &str) -> Redemption {
    let client_ok = grant.client_id == client_id;
    let redirect_ok = grant.redirect_uri == redirect_uri;
    let pkce_ok = verify_s256(verifier, &grant.code_challenge);
    let reason = if !client_ok {
        Refusal::ClientMismatch
    } else if !redirect_ok {
        Refusal::RedirectUriMismatch
    } else if !pkce_ok {
        Refusal::PkceFailed
    } else {
        return Redemption::Redeemed(grant);
    };
    tracing::info!(client_id = %grant.client_id, %reason, "authorization code refused and burned");
    Redemption::Refused { reason }
}

impl<S: AuthorizationCodeStore + ?Sized> AuthorizationCodeStore for std::sync::Arc<S> {
    fn code_ttl(&self) -> Duration {
        (**self).code_ttl()
    }
    fn replay_window(&self) -> Duration {
        (**self).replay_window()
    }
    fn insert<'a>(
        &'a self,
        hash: CodeHash,
        grant: &'a CodeGrant,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<(), CodeStoreError>> {
        (**self).insert(hash, grant, expires_at_ms)
    }
    fn take<'a>(
        &'a self,
        hash: CodeHash,
        attempt: &'a str,
        keep_until_ms: u64,
    ) -> BoxFuture<'a, Result<Taken, CodeStoreError>> {
        (**self).take(hash, attempt, keep_until_ms)
    }
    fn mark_issued<'a>(
        &'a self,
        hash: CodeHash,
        issued: &'a IssuedRef,
    ) -> BoxFuture<'a, Result<MarkIssued, CodeStoreError>> {
        (**self).mark_issued(hash, issued)
    }
}
