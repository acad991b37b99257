//! Remember-me logins, Spring Security style, without Spring's weak points.
//!
//! When a request is not authenticated and carries a remember-me cookie, [`RememberMeLayer`]
//! logs the user in: it loads the user through the application's [`UserStore`] (disabled,
//! locked or missing users are refused), puts [`Claims`] marked as remembered
//! ([`ClaimSet::is_remembered`](crate::ClaimSet::is_remembered), `amr` = [`REMEMBER_ME_AMR`]) and
//! [`AuthStatus::Remembered`](crate::AuthStatus::Remembered) into the request, and optionally
//! mints a fresh access-token cookie so the following requests are plain JWT requests.
//! Sensitive routes call [`ClaimSet::require_fresh_login`](crate::ClaimSet::require_fresh_login) to demand the password again.
//!
//! Two modes:
//!
//! - **Signed** (stateless): the cookie is base64url of `username:expiry:signature`, the
//!   signature an HMAC-SHA256 over the username, the expiry and the user's
//!   [credential version](UserRecord::credential_version) with a server key, compared in
//!   constant time. Changing the password (the credential version) voids every cookie of the
//!   user. Not MD5, and no password in the signature input.
//! - **Persistent**: the cookie is base64url of `series:token`, 128 random bits each. The
//!   [`RememberMeStore`] keeps the series with the SHA-256 of the token (never the token), and
//!   the token changes on every auto-login. A known series with a wrong token means the cookie
//!   was copied: every remembered login of that user is deleted, every access token of the user
//!   issued until then is revoked (when auto-login mints them, see
//!   [`RememberMe::mint_access_tokens`]; opt out with
//!   [`RememberMe::keep_access_tokens_on_theft`]) and a warning logged. A token
//!   rotated away less than the grace window ago (default 5 s: parallel requests, restored
//!   tabs) is accepted without a second rotation and without a theft alarm, the false alarm
//!   Spring users have reported since 2015.
//!
//! ```
//! use std::sync::Arc;
//! use tower_token_auth::remember_me::{MemoryRememberMeStore, RememberMe, StaticUsers, UserRecord};
//!
//! let users = StaticUsers::new([UserRecord::new("alice", "v1", "read")]);
//! let remember_me = RememberMe::persistent(MemoryRememberMeStore::new(), users);
//! let layer = remember_me.layer(); // inside JwtAuthLayer::optional(), outside the routes
//! # let _ = layer;
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::claims::{ClaimSet, Claims, NoCustomClaims, REMEMBER_ME_AMR};
use crate::error::ConfigError;
use crate::issuer::{IssueError, TokenIssuer, random_id};
use crate::revocation::{BoxFuture, RevocationError, RevocationStore, now_ms, now_secs};
use crate::source::{AccessCookie, TokenSource, extract};

mod layer;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
mod store;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisRememberMeStore;
pub use layer::{RememberMeLayer, RememberMeService};
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::SqlRememberMeStore;
pub use store::{
    Device, MemoryRememberMeStore, RememberMeStore, RememberMeStoreError, SeriesCheck, SeriesRecord,
};

/// The longest remember-me cookie value read, in bytes.
const MAX_COOKIE_LEN: usize = 1024;

/// What the application's user store says of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user name (the `sub` of minted tokens).
    pub username: String,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Whether the account is locked.
    pub locked: bool,
    /// Changes whenever the password changes (a counter, or a hash of the password hash):
    /// signed cookies made before a change stop working.
    pub credential_version: String,
    /// The scopes to grant a remembered login.
    pub scope: String,
}

impl UserRecord {
    /// An enabled, unlocked user.
    pub fn new(username: &str, credential_version: &str, scope: &str) -> Self {
        Self {
            username: username.to_owned(),
            enabled: true,
            locked: false,
            credential_version: credential_version.to_owned(),
            scope: scope.to_owned(),
        }
    }
}

/// The user store failed.
#[derive(Debug, thiserror::Error)]
#[error("user store unavailable: {0}")]
pub struct UserStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The application's users, as remember-me needs them.
pub trait UserStore: Send + Sync + 'static {
    /// The user called `username`, if any.
    fn load_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, UserStoreError>>;
}

/// A fixed [`UserStore`] (tests, demos). Clones share the map; [`update`](Self::update)
/// replaces a user.
#[derive(Debug, Clone, Default)]
pub struct StaticUsers {
    users: Arc<std::sync::RwLock<HashMap<String, UserRecord>>>,
}

impl StaticUsers {
    /// A store holding `users`.
    pub fn new(users: impl IntoIterator<Item = UserRecord>) -> Self {
        let map = users.into_iter().map(|u| (u.username.clone(), u)).collect();
        Self {
            users: Arc::new(std::sync::RwLock::new(map)),
        }
    }

    /// Adds or replaces a user.
    pub fn update(&self, user: UserRecord) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.username.clone(), user);
    }
}

impl UserStore for StaticUsers {
    fn load_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserRecord>, UserStoreError>> {
        let user = self
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(username)
            .cloned();
        Box::pin(std::future::ready(Ok(user)))
    }
}

#[derive(Clone)]
enum Mode {
    Signed {
        key: Arc<zeroize::Zeroizing<Vec<u8>>>,
    },
    Persistent {
        store: Arc<dyn RememberMeStore>,
    },
}

/// Why a remember-me operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RememberMeError {
    /// The remember-me store failed.
    #[error(transparent)]
    Store(#[from] RememberMeStoreError),
    /// The user store failed.
    #[error(transparent)]
    Users(#[from] UserStoreError),
    /// Minting the access token failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A stolen cookie was detected, but the user's access tokens could not be revoked. The
    /// layer answers 503; presenting the same cookie again retries (the store keeps the theft
    /// marker until the revocation went through).
    #[error(
        "could not revoke the access tokens of a user whose remember-me cookie was stolen: {0}"
    )]
    TheftRevocation(#[source] RevocationError),
}

/// Why an auto-login was refused (logged, never shown to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The cookie does not decode.
    Malformed,
    /// The signed cookie's expiry has passed.
    Expired,
    /// The signature does not match (tampered, or the password changed).
    BadSignature,
    /// Unknown or expired series.
    UnknownSeries,
    /// A copied cookie: every remembered login of the user was removed.
    Theft,
    /// No such user.
    UnknownUser,
    /// The account is disabled or locked.
    AccountDisabled,
}

/// The result of [`RememberMe::auto_login`].
#[derive(Debug)]
#[non_exhaustive]
pub enum AutoLogin {
    /// No remember-me cookie.
    NoCookie,
    /// The user is logged in. `set_cookies` must be sent back (rotated remember-me cookie,
    /// fresh access token).
    LoggedIn {
        /// The principal, marked as remembered.
        claims: Claims,
        /// `Set-Cookie` values for the response.
        set_cookies: Vec<HeaderValue>,
    },
    /// Refused: send `clear_cookie` back so the browser forgets the cookie.
    Refused {
        /// Why.
        reason: Refusal,
        /// `Set-Cookie` deleting the remember-me cookie.
        clear_cookie: HeaderValue,
    },
}

/// Remember-me configuration and the operations around it: auto-login (what the layer
/// runs), and the login, logout and device helpers. Cheap to clone.
#[derive(Clone)]
pub struct RememberMe {
    mode: Mode,
    users: Arc<dyn UserStore>,
    cookie: AccessCookie,
    ttl: Duration,
    grace: Duration,
    access: Option<MintAccess>,
    reject_on_failure: bool,
}

/// What auto-login needs to mint access tokens, and to revoke them on theft.
#[derive(Clone)]
struct MintAccess {
    issuer: TokenIssuer,
    cookie: AccessCookie,
    revocation: Arc<dyn RevocationStore>,
    revoke_on_theft: bool,
}

impl fmt::Debug for RememberMe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::Signed { .. } => "signed (key REDACTED)",
            Mode::Persistent { .. } => "persistent",
        };
        f.debug_struct("RememberMe")
            .field("mode", &mode)
            .field("cookie", &self.cookie)
            .field("ttl", &self.ttl)
            .field("grace", &self.grace)
            .field("mints_access_tokens", &self.access.is_some())
            .field("reject_on_failure", &self.reject_on_failure)
            .field(
                "revokes_access_tokens_on_theft",
                &self.access.as_ref().is_some_and(|a| a.revoke_on_theft),
            )
            .finish()
    }
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl RememberMe {
    fn with_mode(mode: Mode, users: Arc<dyn UserStore>) -> Self {
        Self {
            mode,
            users,
            cookie: AccessCookie::new("remember_me"),
            ttl: Duration::from_secs(14 * 24 * 3600),
            grace: Duration::from_secs(5),
            access: None,
            reject_on_failure: false,
        }
    }

    /// Signed (stateless) mode with an HMAC-SHA256 `key` of at least 32 bytes.
    pub fn signed<U: UserStore>(key: &[u8], users: U) -> Result<Self, ConfigError> {
        if key.len() < 32 {
            return Err(ConfigError::new(
                "the remember-me key needs at least 32 bytes",
            ));
        }
        Ok(Self::with_mode(
            Mode::Signed {
                key: Arc::new(zeroize::Zeroizing::new(key.to_vec())),
            },
            Arc::new(users),
        ))
    }

    /// Persistent mode over `store`.
    pub fn persistent<S: RememberMeStore, U: UserStore>(store: S, users: U) -> Self {
        Self::with_mode(
            Mode::Persistent {
                store: Arc::new(store),
            },
            Arc::new(users),
        )
    }

    /// The cookie's settings (default `remember_me`, HttpOnly, Secure, SameSite=Lax, Path=/).
    pub fn cookie(mut self, cookie: AccessCookie) -> Self {
        self.cookie = cookie;
        self
    }

    /// How long a remembered login lasts (default 14 days).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Persistent mode: how long a token rotated away is still accepted (default 5 s; zero
    /// turns the window off, so any replay counts as theft).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Mint an access token for each auto-login and set it in `access_cookie`, so the next
    /// requests are plain JWT requests. The token carries `amr: ["remember-me"]`.
    ///
    /// `revocation` is the store the [`JwtAuthLayer`](crate::JwtAuthLayer) checks. When a
    /// stolen cookie is detected (persistent mode), every access token of the user issued up
    /// to that instant is revoked in it: the thief may hold one minted from the stolen cookie,
    /// and which of the two browsers is the thief's cannot be told, so the legitimate user's
    /// tokens go too and they log in again with the password. The response to the request
    /// that revealed the theft comes once the revocation succeeded (and the clock is past its
    /// second, so a login right after it is not caught); if it fails, the answer is 503 and
    /// presenting the cookie again retries. [`keep_access_tokens_on_theft`] turns this off.
    ///
    /// [`keep_access_tokens_on_theft`]: Self::keep_access_tokens_on_theft
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_token_auth::remember_me::{MemoryRememberMeStore, RememberMe, StaticUsers};
    /// use tower_token_auth::{AccessCookie, MemoryStore, testing::TestKeys};
    ///
    /// let keys = TestKeys::hs256();
    /// let revocation = Arc::new(MemoryStore::new()); // also given to the JwtAuthLayer
    /// let remember_me = RememberMe::persistent(MemoryRememberMeStore::new(), StaticUsers::default())
    ///     .mint_access_tokens(keys.issuer(), AccessCookie::new("access_token"), revocation);
    /// # let _ = remember_me;
    /// ```
    pub fn mint_access_tokens(
        mut self,
        issuer: TokenIssuer,
        access_cookie: AccessCookie,
        revocation: Arc<dyn RevocationStore>,
    ) -> Self {
        self.access = Some(MintAccess {
            issuer,
            cookie: access_cookie,
            revocation,
            revoke_on_theft: true,
        });
        self
    }

    /// Opt out of revoking the user's access tokens when a stolen cookie is detected (see
    /// [`mint_access_tokens`](Self::mint_access_tokens)): only the remembered logins are
    /// deleted, and an access token the thief minted from the stolen cookie keeps working
    /// until it expires. Use it only when something else ends those tokens.
    pub fn keep_access_tokens_on_theft(mut self) -> Self {
        if let Some(access) = &mut self.access {
            access.revoke_on_theft = false;
        }
        self
    }

    /// Answer 401 when a remember-me cookie is refused, instead of continuing
    /// unauthenticated (the default).
    pub fn reject_on_failure(mut self, reject: bool) -> Self {
        self.reject_on_failure = reject;
        self
    }

    /// The layer running auto-login with this configuration.
    pub fn layer(&self) -> RememberMeLayer {
        RememberMeLayer::new(self.clone())
    }

    pub(crate) fn rejects_on_failure(&self) -> bool {
        self.reject_on_failure
    }

    fn set_cookie(&self, value: &str) -> HeaderValue {
        self.cookie.set_cookie(value, self.ttl)
    }

    /// `Set-Cookie` deleting the remember-me cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie.removal_cookie()
    }

    fn cookie_value<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        extract(
            headers,
            &[TokenSource::Cookie(self.cookie.name().to_owned())],
            MAX_COOKIE_LEN,
        )
        .ok()
        .flatten()
    }

    fn signature(key: &[u8], username: &str, expiry: u64, version: &str) -> Vec<u8> {
        // HMAC accepts keys of any length, and the constructor checked ours.
        let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        // Length-prefixed, so no two (username, version) pairs share an input.
        mac.update(
            format!(
                "{}:{username}:{expiry}:{}:{version}",
                username.len(),
                version.len()
            )
            .as_bytes(),
        );
        mac.finalize().into_bytes().to_vec()
    }

    /// Login helper: call after a successful password login with the "remember me" box
    /// ticked. Returns the `Set-Cookie` value to send.
    pub async fn remember(
        &self,
        user: &UserRecord,
        user_agent: Option<&str>,
    ) -> Result<HeaderValue, RememberMeError> {
        let now = now_secs();
        let expires_at = now.saturating_add(self.ttl.as_secs());
        let value = match &self.mode {
            Mode::Signed { key } => {
                let sig =
                    Self::signature(key, &user.username, expires_at, &user.credential_version);
                URL_SAFE_NO_PAD.encode(format!(
                    "{}:{expires_at}:{}",
                    user.username,
                    URL_SAFE_NO_PAD.encode(sig)
                ))
            }
            Mode::Persistent { store } => {
                let series = random_id::<16>();
                let token = random_id::<16>();
                store
                    .create(
                        &series,
                        SeriesRecord {
                            username: user.username.clone(),
                            token_hash: sha256(&token),
                            previous_hash: None,
                            rotated_at_ms: now_ms(),
                            created: now,
                            last_used: now,
                            expires_at,
                            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
                        },
                    )
                    .await?;
                URL_SAFE_NO_PAD.encode(format!("{series}:{token}"))
            }
        };
        Ok(self.set_cookie(&value))
    }

    /// Logout helper: forgets this browser's remembered login (persistent mode deletes the
    /// series) and returns the `Set-Cookie` that deletes the cookie.
    pub async fn forget(&self, headers: &HeaderMap) -> Result<HeaderValue, RememberMeError> {
        if let (Mode::Persistent { store }, Some(value)) = (&self.mode, self.cookie_value(headers))
            && let Some((series, _)) = decode_pair(value)
        {
            store.delete(&series).await?;
        }
        Ok(self.clear_cookie())
    }

    /// Whether the request's remember-me cookie is a remembered login of `username`, without
    /// logging in or rotating anything: in persistent mode its series is one of the user's live
    /// series, in signed mode its signature is valid for the user. For a login handler that
    /// keeps the cookie only when it is the user's own: a cookie planted by someone else (their
    /// own account's: login fixation) must be forgotten and replaced or deleted.
    pub async fn is_cookie_of(
        &self,
        headers: &HeaderMap,
        username: &str,
    ) -> Result<bool, RememberMeError> {
        let Some(value) = self.cookie_value(headers) else {
            return Ok(false);
        };
        match &self.mode {
            Mode::Persistent { store } => {
                let Some((series, _)) = decode_pair(value) else {
                    return Ok(false);
                };
                Ok(store
                    .devices(username)
                    .await?
                    .iter()
                    .any(|d| d.series == series))
            }
            Mode::Signed { key } => {
                let Some((name, expiry, sig)) = decode_signed(value) else {
                    return Ok(false);
                };
                if name != username || expiry < now_secs() {
                    return Ok(false);
                }
                let Some(user) = self.users.load_user(username).await? else {
                    return Ok(false);
                };
                let expected = Self::signature(key, username, expiry, &user.credential_version);
                Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
                    &expected[..],
                    &sig[..],
                )))
            }
        }
    }

    /// Persistent mode: the user's remembered devices (empty in signed mode).
    pub async fn devices(&self, username: &str) -> Result<Vec<Device>, RememberMeError> {
        match &self.mode {
            Mode::Persistent { store } => Ok(store.devices(username).await?),
            Mode::Signed { .. } => Ok(Vec::new()),
        }
    }

    /// Persistent mode: revokes one remembered device of `username`.
    pub async fn revoke_device(
        &self,
        username: &str,
        series: &str,
    ) -> Result<bool, RememberMeError> {
        let Mode::Persistent { store } = &self.mode else {
            return Ok(false);
        };
        let owned = store
            .devices(username)
            .await?
            .iter()
            .any(|d| d.series == series);
        if owned {
            store.delete(series).await?;
        }
        Ok(owned)
    }

    /// Persistent mode: forgets every remembered login of `username` (password change,
    /// "log out everywhere"). Signed cookies die with the credential version instead.
    pub async fn forget_user(&self, username: &str) -> Result<usize, RememberMeError> {
        match &self.mode {
            Mode::Persistent { store } => Ok(store.delete_user(username).await?),
            Mode::Signed { .. } => Ok(0),
        }
    }

    /// Revokes the user's access tokens issued up to the theft (unless opted out), then
    /// removes the theft marker. Repeating it is harmless: the instant stays the same.
    async fn after_theft(
        &self,
        store: &dyn RememberMeStore,
        series: &str,
        username: &str,
        detected_at_ms: u64,
    ) -> Result<(), RememberMeError> {
        if let Some(access) = self.access.as_ref().filter(|a| a.revoke_on_theft) {
            let before = detected_at_ms / 1000;
            let keep_until = now_secs()
                .max(before)
                .saturating_add(access.issuer.token_ttl().as_secs())
                .saturating_add(1);
            if let Err(e) = access
                .revocation
                .revoke_user(username, before, keep_until)
                .await
            {
                tracing::warn!(
                    target: "tower_token_auth",
                    user = ?username,
                    error = %e,
                    "could not revoke the access tokens of a user whose remember-me cookie was stolen; answering 503"
                );
                return Err(RememberMeError::TheftRevocation(e));
            }
            // A token minted later in the revoked second would be refused.
            if now_secs() <= before {
                crate::revocation::wait_for_next_second().await;
            }
        }
        // Best effort: a marker left behind only repeats the steps above, then expires.
        if let Err(e) = store.delete(series).await {
            tracing::debug!(target: "tower_token_auth", error = %e, "could not remove a remember-me theft marker");
        }
        Ok(())
    }

    /// The auto-login the layer runs: checks the cookie in `headers`, loads the user, rotates
    /// (persistent mode) and mints an access token (when configured).
    pub async fn auto_login(&self, headers: &HeaderMap) -> Result<AutoLogin, RememberMeError> {
        let Some(value) = self.cookie_value(headers) else {
            return Ok(AutoLogin::NoCookie);
        };
        let refused = |reason| {
            tracing::debug!(target: "tower_token_auth", ?reason, "remember-me cookie refused");
            Ok(AutoLogin::Refused {
                reason,
                clear_cookie: self.clear_cookie(),
            })
        };
        let mut set_cookies = Vec::new();
        let user = match &self.mode {
            Mode::Signed { key } => {
                let Some((username, expiry, sig)) = decode_signed(value) else {
                    return refused(Refusal::Malformed);
                };
                if expiry < now_secs() {
                    return refused(Refusal::Expired);
                }
                let Some(user) = self.users.load_user(&username).await? else {
                    return refused(Refusal::UnknownUser);
                };
                let expected = Self::signature(key, &username, expiry, &user.credential_version);
                if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &sig[..])) {
                    return refused(Refusal::BadSignature);
                }
                user
            }
            Mode::Persistent { store } => {
                let Some((series, token)) = decode_pair(value) else {
                    return refused(Refusal::Malformed);
                };
                let next = random_id::<16>();
                let check = store
                    .check_and_rotate(
                        &series,
                        sha256(&token),
                        sha256(&next),
                        now_ms(),
                        self.grace.as_millis() as u64,
                    )
                    .await?;
                let username = match check {
                    SeriesCheck::Rotated { username } => {
                        set_cookies.push(
                            self.set_cookie(&URL_SAFE_NO_PAD.encode(format!("{series}:{next}"))),
                        );
                        username
                    }
                    SeriesCheck::WithinGrace { username } => username,
                    SeriesCheck::Theft {
                        username,
                        detected_at_ms,
                    } => {
                        tracing::warn!(
                            target: "tower_token_auth",
                            user = ?username,
                            detected_at_ms,
                            "remember-me cookie theft detected: every remembered login of the user was removed"
                        );
                        self.after_theft(store.as_ref(), &series, &username, detected_at_ms)
                            .await?;
                        return refused(Refusal::Theft);
                    }
                    SeriesCheck::Invalid => return refused(Refusal::UnknownSeries),
                };
                let Some(user) = self.users.load_user(&username).await? else {
                    return refused(Refusal::UnknownUser);
                };
                user
            }
        };
        if !user.enabled || user.locked {
            return refused(Refusal::AccountDisabled);
        }
        let claims = match &self.access {
            Some(MintAccess { issuer, cookie, .. }) => {
                let issued = issuer.issue_with(
                    &user.username,
                    &user.scope,
                    &json!({ "amr": [REMEMBER_ME_AMR] }),
                )?;
                set_cookies
                    .push(cookie.set_cookie(&issued.token, Duration::from_secs(issued.expires_in)));
                remembered_claims(
                    &user,
                    Some(issued.jti),
                    Some(issued.issued_at),
                    Some(issued.expires_at),
                )
            }
            None => remembered_claims(&user, None, Some(now_secs()), None),
        };
        Ok(AutoLogin::LoggedIn {
            claims,
            set_cookies,
        })
    }
}

fn remembered_claims(
    user: &UserRecord,
    jti: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
) -> Claims {
    Claims::from(ClaimSet {
        sub: Some(user.username.clone()),
        jti,
        iss: None,
        aud: None,
        exp,
        nbf: None,
        iat,
        scope: (!user.scope.is_empty()).then(|| user.scope.clone()),
        sid: None,
        amr: Some(vec![REMEMBER_ME_AMR.to_owned()]),
        acr: None,
        auth_time: None,
        client_id: None,
        cnf: None,
        custom: NoCustomClaims {},
    })
}

fn decode_b64(value: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    String::from_utf8(bytes).ok()
}

/// `username:expiry:signature` (the username may contain `:`).
fn decode_signed(value: &str) -> Option<(String, u64, Vec<u8>)> {
    let text = decode_b64(value)?;
    let mut parts = text.rsplitn(3, ':');
    let sig = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let expiry = parts.next()?.parse().ok()?;
    let username = parts.next()?;
    (!username.is_empty() && sig.len() == 32).then(|| (username.to_owned(), expiry, sig))
}

/// `series:token`.
fn decode_pair(value: &str) -> Option<(String, String)> {
    let text = decode_b64(value)?;
    let (series, token) = text.split_once(':')?;
    let ok = |s: &str| {
        s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(series) && ok(token)).then(|| (series.to_owned(), token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_round_trip_and_tampering() {
        let key = [7u8; 32];
        let sig = RememberMe::signature(&key, "a:b", 99, "v1");
        let value = URL_SAFE_NO_PAD.encode(format!("a:b:99:{}", URL_SAFE_NO_PAD.encode(&sig)));
        let (u, e, s) = decode_signed(&value).unwrap();
        assert_eq!((u.as_str(), e, s), ("a:b", 99, sig.clone()));
        assert_ne!(RememberMe::signature(&key, "a:b", 99, "v2"), sig);
        assert_ne!(
            RememberMe::signature(&key, "a", 99, "b:v1"),
            RememberMe::signature(&key, "a:b", 99, "v1")
        );
        assert!(decode_signed("!!!").is_none());
        assert!(decode_signed(&URL_SAFE_NO_PAD.encode(":99:AAAA")).is_none());
    }

    #[test]
    fn pair_round_trip() {
        let (s, t) = (random_id::<16>(), random_id::<16>());
        let value = URL_SAFE_NO_PAD.encode(format!("{s}:{t}"));
        assert_eq!(decode_pair(&value), Some((s, t)));
        assert!(decode_pair(&URL_SAFE_NO_PAD.encode("a:b")).is_none());
    }
}
