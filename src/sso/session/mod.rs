//! The provider's SSO sessions: who signed in at the provider, since when, and which clients
//! and refresh-token families they signed in to, named by the browser's cookie.
//!
//! A session is started with a password (or any login) and lives for the store's
//! `session_ttl`; [`SsoSessionStore::start`] answers it with the cookie value
//! `<sid>.<secret>` (22 + 43 characters of base64url, 128 + 256 random bits). The store
//! keeps only the SHA-256 of the secret; [`SsoSessionStore::by_cookie`] compares it in
//! constant time and answers `None` for anything malformed, unknown, expired or ended.
//!
//! Every client the session signs in to ([`add_client`](SsoSessionStore::add_client)) and
//! every refresh-token family it starts ([`add_family`](SsoSessionStore::add_family)) is
//! recorded, so that [`end`](SsoSessionStore::end) answers what to revoke and whom to tell;
//! a family also records its owner ([`family_owner`](SsoSessionStore::family_owner)): the
//! session and the client it was issued to. Both answer `false` once the session has ended:
//! the caller revokes what it just issued (fail closed).
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth::sso::session::{MemorySsoSessionStore, SsoSessionStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemorySsoSessionStore::new(Duration::from_secs(8 * 3600));
//! let (session, cookie) = store.start("alice").await?;
//! assert!(store.add_client(&session.sid, "orders").await?);
//! let found = store.by_cookie(&cookie).await?.expect("live");
//! assert!(found.clients.contains("orders"));
//! let ended = store.end(&session.sid).await?.expect("was live");
//! assert_eq!(ended.sub, "alice");
//! assert!(store.by_cookie(&cookie).await?.is_none());
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::revocation::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisSsoSessionStore;
pub use memory::MemorySsoSessionStore;

/// The length of a session id in a cookie (16 random bytes, base64url).
const SID_LEN: usize = 22;
/// The length of a cookie secret (32 random bytes, base64url).
const SECRET_LEN: usize = 43;

/// One SSO session, as the store has it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SsoSession {
    /// The session id (`sid` of the tokens issued in it).
    pub sid: String,
    /// The user.
    pub sub: String,
    /// The SHA-256 (lowercase hex) of the cookie secret.
    pub secret_hash: String,
    /// When the user authenticated (Unix seconds).
    pub auth_time: u64,
    /// When the session ends (Unix seconds).
    pub expires_at: u64,
    /// The clients the session signed in to.
    pub clients: BTreeSet<String>,
    /// The refresh-token families started in the session.
    pub families: BTreeSet<String>,
}

impl SsoSession {
    /// Seconds left until the session ends at `now` (Unix seconds); 0 once ended.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// Whether the cookie secret `secret` is this session's (constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let hash = sha256_hex(secret);
        hash.as_bytes().ct_eq(self.secret_hash.as_bytes()).into()
    }
}

/// Who a refresh-token family belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilyOwner {
    /// The SSO session that started it.
    pub sid: String,
    /// The client it was issued to.
    pub client_id: String,
}

/// A session store failed: answer `503`, decide nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SsoSessionError {
    /// The backend failed (connection refused, reset, error reply).
    #[error("SSO session store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer within the operation timeout.
    #[error("SSO session store timed out")]
    Timeout,
}

/// Where the provider's SSO sessions are kept. Implementations answer `None` / `false` for
/// what is unknown, expired or ended, and an error only when they cannot tell.
pub trait SsoSessionStore: Send + Sync {
    /// How long a session lives from its start.
    fn session_ttl(&self) -> Duration;

    /// Stores `session` (new, no clients or families yet) until its `expires_at`.
    fn insert<'a>(&'a self, session: &'a SsoSession) -> BoxFuture<'a, Result<(), SsoSessionError>>;

    /// The live session `sid`.
    fn get<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>>;

    /// Records that session `sid` signed in to `client_id`; `false` when it is not live.
    fn add_client<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>>;

    /// Records refresh family `family`, issued to `client_id`, in session `sid` (its owner
    /// first); `false` when the session is not live.
    fn add_family<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
        family: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>>;

    /// The session and client refresh family `family` was issued in and to.
    fn family_owner<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<FamilyOwner>, SsoSessionError>>;

    /// Ends session `sid` (atomically taken and deleted): what it held, if the store still
    /// had it (expired or not: its families and clients are still to be revoked and told).
    fn end<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>>;

    /// Starts a session for `sub`: the session and its cookie value `<sid>.<secret>`.
    fn start<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<(SsoSession, String), SsoSessionError>> {
        Box::pin(async move {
            let (sid, secret, now) = (random_id::<16>(), random_id::<32>(), now_secs());
            let session = SsoSession {
                sid: sid.clone(),
                sub: sub.to_owned(),
                secret_hash: sha256_hex(&secret),
                auth_time: now,
                expires_at: now.saturating_add(self.session_ttl().as_secs()),
                clients: BTreeSet::new(),
                families: BTreeSet::new(),
            };
            self.insert(&session).await?;
            Ok((session, format!("{sid}.{secret}")))
        })
    }

    /// The live session a cookie value `<sid>.<secret>` names; `None` for anything else.
    fn by_cookie<'a>(
        &'a self,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>> {
        Box::pin(async move {
            let Some((sid, secret)) = value.split_once('.') else {
                return Ok(None);
            };
            if !is_b64url(sid, SID_LEN) || !is_b64url(secret, SECRET_LEN) {
                return Ok(None);
            }
            let session = self.get(sid).await?;
            Ok(session.filter(|s| s.secret_matches(secret)))
        })
    }
}

fn random_id<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(input: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(input.as_bytes()) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn is_b64url(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn now_secs() -> u64 {
    crate::revocation::now_ms() / 1000
}
