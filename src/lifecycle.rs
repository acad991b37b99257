//! The token lifecycle: issue an access + refresh pair, refresh with rotation and reuse
//! detection, revoke (RFC 7009), log out, log out everywhere. Framework-free: the HTTP
//! endpoints in [`endpoint`](crate::endpoint) and the examples call this.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::claims::{Claims, NoCustomClaims};
use crate::issuer::{IssueError, IssuedToken, TokenIssuer};
use crate::refresh::{
    PresentedToken, RefreshRecord, RefreshStore, RefreshStoreError, Rotation, mint, new_family,
};
use crate::revocation::{RevocationError, RevocationStore, now_ms, now_secs};
use crate::verifier::Verifier;

/// An access token and the refresh token that renews it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token (a JWT with `sid` = the refresh family).
    pub access: IssuedToken,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The scope granted.
    pub scope: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access", &self.access)
            .field("refresh_token", &"REDACTED")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why a lifecycle operation failed (apart from a refused grant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Minting the access token failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The refresh store failed.
    #[error(transparent)]
    RefreshStore(#[from] RefreshStoreError),
    /// The revocation store failed.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

/// A refresh grant was refused (RFC 6749 §5.2), or the server could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// `invalid_grant`: unknown, expired, spent or revoked refresh token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// `invalid_scope`: more scope asked than the grant holds.
    #[error("requested scope exceeds the granted scope")]
    InvalidScope,
    /// A store failed: answer 503 and let the client retry.
    #[error(transparent)]
    Unavailable(#[from] LifecycleError),
}

/// Issues, refreshes and revokes tokens. Cheap to clone.
///
/// ```
/// use tower_token_auth::refresh::MemoryRefreshStore;
/// use tower_token_auth::{JwtAuthLayer, TokenLifecycle, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let layer = JwtAuthLayer::new(keys.verifier());
/// let lifecycle = TokenLifecycle::for_layer(&layer, keys.issuer(), MemoryRefreshStore::new());
///
/// let pair = lifecycle.issue_pair("alice", "read").await.unwrap();
/// let renewed = lifecycle.refresh(&pair.refresh_token, None).await.unwrap();
/// // The old refresh token is spent: presenting it again revokes the whole family.
/// assert!(lifecycle.refresh(&pair.refresh_token, None).await.is_err());
/// assert!(lifecycle.refresh(&renewed.refresh_token, None).await.is_err());
/// # }
/// ```
#[derive(Clone)]
pub struct TokenLifecycle {
    issuer: TokenIssuer,
    verifier: Verifier,
    refresh: Arc<dyn RefreshStore>,
    revocation: Arc<dyn RevocationStore>,
    refresh_ttl: Duration,
    grace: Duration,
}

impl fmt::Debug for TokenLifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLifecycle")
            .field("refresh", &self.refresh)
            .field("revocation", &self.revocation)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl TokenLifecycle {
    /// A lifecycle minting with `issuer`, verifying presented access tokens with `verifier`,
    /// and revoking in `revocation` (the store the layer checks). Refresh tokens live 14 days;
    /// no reuse grace window.
    pub fn new(
        issuer: TokenIssuer,
        verifier: Verifier,
        refresh: Arc<dyn RefreshStore>,
        revocation: Arc<dyn RevocationStore>,
    ) -> Self {
        Self {
            issuer,
            verifier,
            refresh,
            revocation,
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            grace: Duration::ZERO,
        }
    }

    /// A lifecycle sharing `layer`'s verifier and revocation store.
    pub fn for_layer<T, R: RefreshStore>(
        layer: &crate::JwtAuthLayer<T>,
        issuer: TokenIssuer,
        refresh: R,
    ) -> Self {
        Self::new(
            issuer,
            layer.verifier().clone(),
            Arc::new(refresh),
            layer.revocation_store(),
        )
    }

    /// How long a refresh token lives (default 14 days). Each rotation starts a new term.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// A window in which presenting a just-spent refresh token again is refused without
    /// revoking the family, for clients that retry a request whose answer they lost.
    /// Default: none, every reuse revokes the family (RFC 9700 §4.14.2). A few seconds at most.
    pub fn reuse_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The issuer of access tokens.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    fn access_keep_until(&self) -> u64 {
        now_secs().saturating_add(self.issuer.token_ttl().as_secs())
    }

    fn pair(
        &self,
        sub: &str,
        scope: &str,
        family: &str,
        refresh_token: String,
        refresh_expires_at: u64,
    ) -> Result<TokenPair, LifecycleError> {
        let access = self
            .issuer
            .issue_in_session(sub, scope, Some(family), &NoCustomClaims {})?;
        Ok(TokenPair {
            access,
            refresh_token,
            refresh_expires_in: refresh_expires_at.saturating_sub(now_secs()),
            scope: scope.to_owned(),
        })
    }

    /// Starts a session for `sub` (after a successful login): a new refresh family.
    pub async fn issue_pair(&self, sub: &str, scope: &str) -> Result<TokenPair, LifecycleError> {
        let family = new_family();
        let (token, hash) = mint(&family);
        let expires_at = now_secs().saturating_add(self.refresh_ttl.as_secs());
        let record = RefreshRecord {
            sub: sub.to_owned(),
            family: family.clone(),
            scope: scope.to_owned(),
            expires_at,
        };
        self.refresh.create(hash, &record).await?;
        self.pair(sub, scope, &family, token, expires_at)
    }

    /// The refresh grant: spends `refresh_token` and returns a new pair. `scope`, when given,
    /// narrows the new access token's scope; asking for more than was granted is
    /// [`GrantError::InvalidScope`].
    ///
    /// A token that was already spent revokes its whole family and every access token minted
    /// from it.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenPair, GrantError> {
        let Some(presented) = PresentedToken::parse(refresh_token) else {
            return Err(GrantError::InvalidGrant);
        };
        if let Some(asked) = scope {
            // Checked before rotating, so a refused scope does not spend the token.
            let granted = self
                .refresh
                .find(&presented, now_secs())
                .await
                .map_err(LifecycleError::from)?;
            if granted.is_some_and(|r| !is_subset(asked, &r.scope)) {
                return Err(GrantError::InvalidScope);
            }
        }
        let (successor, hash) = mint(&presented.family);
        let expires_at = now_secs().saturating_add(self.refresh_ttl.as_secs());
        let rotation = self
            .refresh
            .rotate(
                &presented,
                hash,
                expires_at,
                now_ms(),
                self.grace.as_millis() as u64,
            )
            .await
            .map_err(LifecycleError::from)?;
        match rotation {
            Rotation::Rotated(record) => {
                // Checked above; the grant cannot have changed its scope since.
                let scope = scope
                    .filter(|asked| is_subset(asked, &record.scope))
                    .unwrap_or(record.scope.as_str());
                Ok(self.pair(&record.sub, scope, &record.family, successor, expires_at)?)
            }
            Rotation::Reused { sub, family } => {
                tracing::warn!(
                    target: "tower_token_auth",
                    family = %family,
                    "refresh token reused: revoking its family and the family's access tokens"
                );
                self.revocation
                    .revoke_session(Some(&sub), &family, self.access_keep_until())
                    .await
                    .map_err(LifecycleError::from)?;
                Err(GrantError::InvalidGrant)
            }
            Rotation::WithinGrace | Rotation::Invalid => Err(GrantError::InvalidGrant),
        }
    }

    /// Ends the session of a refresh family: the family and its access tokens.
    pub async fn revoke_family(
        &self,
        sub: Option<&str>,
        family: &str,
    ) -> Result<(), LifecycleError> {
        let owner = self.refresh.revoke_family(family).await?;
        self.revocation
            .revoke_session(sub.or(owner.as_deref()), family, self.access_keep_until())
            .await?;
        Ok(())
    }

    /// RFC 7009 revocation: `token` may be a refresh token (its family and access tokens are
    /// revoked) or an access token (revoked until its `exp`). Unknown, invalid and expired
    /// tokens are ignored, as §2.2 asks. `hint` only orders the attempts.
    pub async fn revoke(&self, token: &str, hint: Option<&str>) -> Result<(), LifecycleError> {
        let as_refresh = async {
            match PresentedToken::parse(token) {
                Some(p) => match self.refresh.find(&p, now_secs()).await? {
                    Some(record) => {
                        self.revoke_family(Some(&record.sub), &record.family)
                            .await?;
                        Ok(true)
                    }
                    None => Ok(false),
                },
                None => Ok::<_, LifecycleError>(false),
            }
        };
        if hint == Some("access_token") {
            if self.revoke_access(token).await? {
                return Ok(());
            }
            as_refresh.await?;
        } else if !as_refresh.await? {
            self.revoke_access(token).await?;
        }
        Ok(())
    }

    async fn revoke_access(&self, token: &str) -> Result<bool, LifecycleError> {
        let Ok(claims) = self.verifier.verify::<NoCustomClaims>(token) else {
            return Ok(false);
        };
        self.revocation
            .revoke_token(crate::layer::token_ref(&claims))
            .await?;
        Ok(true)
    }

    /// Logout: revokes the presented access token and, when it belongs to a refresh family,
    /// that family and its other access tokens.
    pub async fn logout<T>(&self, claims: &Claims<T>) -> Result<(), LifecycleError> {
        self.revocation
            .revoke_token(crate::layer::token_ref(claims))
            .await?;
        if let Some(sid) = &claims.sid {
            self.revoke_family(claims.sub.as_deref(), sid).await?;
        }
        Ok(())
    }

    /// Log out everywhere (password change, admin action): every access token of `sub`
    /// issued until now and every refresh family of `sub`. Returns once the current second is
    /// over (at most a second), so tokens minted after it returns are not revoked.
    pub async fn logout_everywhere(&self, sub: &str) -> Result<(), LifecycleError> {
        let now = now_secs();
        // The access tokens first: they are what a thief would be using right now.
        self.revocation
            .revoke_user(sub, now, self.access_keep_until())
            .await?;
        self.refresh.revoke_user(sub).await?;
        // Whole-second `iat`: wait the second out, so a login right after this returns is
        // not caught by the revocation (see `Logout::revoke_user`).
        crate::revocation::wait_for_next_second().await;
        Ok(())
    }

    /// Verifies an access token with the lifecycle's verifier (for endpoints that take one).
    pub fn verify_access<T>(&self, token: &str) -> Option<Claims<T>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.verifier.verify(token).ok()
    }
}

/// Whether every scope in `asked` is in `granted`.
fn is_subset(asked: &str, granted: &str) -> bool {
    asked
        .split_ascii_whitespace()
        .all(|a| granted.split_ascii_whitespace().any(|g| g == a))
}
