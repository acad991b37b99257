//! The token lifecycle: issue an access + refresh pair, refresh with rotation and reuse
//! detection, revoke (RFC 7009), log out, log out everywhere. Framework-free: the HTTP
//! endpoints in [`endpoint`](crate::endpoint) and the examples call this.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::claims::{Claims, Confirmation, NoCustomClaims};
use crate::issuer::{IssueError, IssuedToken, TokenIssuer};
use crate::refresh::{
    PresentedToken, RefreshRecord, RefreshStore, RefreshStoreError, Rotation, mint, new_family,
};
use crate::revocation::{
    RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef, now_ms, now_secs,
};
use crate::verifier::Verifier;

/// An access token and the refresh token that renews it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (a JWT with `sid` = the refresh family).
    pub access: IssuedToken,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The scope granted.
    pub scope: String,
    /// The RFC 7638 thumbprint of the DPoP key the access token is bound to (its
    /// `cnf.jkt`), if it is: answer `"token_type": "DPoP"` (RFC 9449 §5), else `Bearer`.
    pub jkt: Option<String>,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access", &self.access)
            .field("refresh_token", &"REDACTED")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("scope", &self.scope)
            .field("jkt", &self.jkt)
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
    /// The user's sessions were ended ("log out everywhere") at or after the moment this
    /// login's credentials were checked: the session was not started. Answer as to a wrong
    /// password (401); the user logs in again.
    #[error("the user's sessions were ended while this login was in progress")]
    SessionsEnded,
    /// A family id given to
    /// [`issue_pair_in_session`](TokenLifecycle::issue_pair_in_session) does not have the
    /// syntax of a family id (22 base64url characters).
    #[error("invalid refresh family id")]
    InvalidFamily,
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
    /// `invalid_dpop_proof` (RFC 9449 §5): the refresh token's family is bound to a DPoP key
    /// and the request carried no proof made with that key. The refresh token is not spent:
    /// the client can send the request again with the right proof.
    #[error("the refresh token is bound to another DPoP key")]
    InvalidDpopProof,
    /// A store failed: answer 503 and let the client retry.
    #[error(transparent)]
    Unavailable(#[from] LifecycleError),
}

/// Issues, refreshes and revokes tokens. Cheap to clone.
///
/// Every operation is safe to retry: each step is idempotent, and the steps run in an order
/// where a failure half-way never locks the caller out of its retry (the step that makes the
/// presented token refused comes last). An operation that returned `Ok` is durable in the
/// stores; one that returned an error may have done part of its work, and sending it again
/// finishes it.
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
        jkt: Option<&str>,
    ) -> Result<TokenPair, LifecycleError> {
        let access = match jkt {
            Some(jkt) => self.issuer.issue_in_session(
                sub,
                scope,
                Some(family),
                &serde_json::json!({ "cnf": Confirmation::dpop(jkt) }),
            )?,
            None => self
                .issuer
                .issue_in_session(sub, scope, Some(family), &NoCustomClaims {})?,
        };
        Ok(TokenPair {
            access,
            refresh_token,
            refresh_expires_in: refresh_expires_at.saturating_sub(now_secs()),
            scope: scope.to_owned(),
            jkt: jkt.map(str::to_owned),
        })
    }

    /// Starts a session for `sub` (after a successful login): a new refresh family. Same as
    /// [`issue_pair_authenticated_at`](Self::issue_pair_authenticated_at) with the current
    /// time.
    pub async fn issue_pair(&self, sub: &str, scope: &str) -> Result<TokenPair, LifecycleError> {
        self.issue_pair_authenticated_at(sub, scope, now_secs())
            .await
    }

    /// Starts a session for `sub` whose credentials were checked at `authenticated_at` (Unix
    /// seconds; take it *before* reading the password hash). A
    /// [`logout_everywhere`](Self::logout_everywhere) of `sub` at or after that instant —
    /// a password change racing this login — ends this session too: the new family and its
    /// access token are refused everywhere, and when the revocation is already known this
    /// returns [`LifecycleError::SessionsEnded`].
    pub async fn issue_pair_authenticated_at(
        &self,
        sub: &str,
        scope: &str,
        authenticated_at: u64,
    ) -> Result<TokenPair, LifecycleError> {
        self.start_session(sub, scope, authenticated_at, None, None)
            .await
    }

    /// [`issue_pair_authenticated_at`](Self::issue_pair_authenticated_at) in the refresh
    /// family `family` chosen by the caller instead of a random one: a session another party
    /// can name later, such as [`sso::local_session_id`](crate::sso::local_session_id) of a
    /// provider's session, which its back-channel logout ends. The family must have the
    /// syntax of the families this crate makes (22 base64url characters, 128 bits), else
    /// [`LifecycleError::InvalidFamily`]. A family that was revoked stays revoked: a session
    /// started in it is refused ([`LifecycleError::SessionsEnded`]).
    pub async fn issue_pair_in_session(
        &self,
        sub: &str,
        scope: &str,
        authenticated_at: u64,
        family: &str,
    ) -> Result<TokenPair, LifecycleError> {
        if !is_family_id(family) {
            return Err(LifecycleError::InvalidFamily);
        }
        self.start_session(sub, scope, authenticated_at, None, Some(family))
            .await
    }

    /// Starts a session for `sub` whose token request carried a valid DPoP proof (RFC 9449
    /// §5) made with the key of thumbprint `jkt` ([`VerifiedProof::jkt`] of
    /// [`DpopConfig::check`] with no access token): the access token carries
    /// `"cnf": {"jkt": …}` and the refresh family is bound to the key, so every refresh needs
    /// a proof made with it (see [`refresh_bound`](Self::refresh_bound)). Same as
    /// [`issue_pair_bound_authenticated_at`](Self::issue_pair_bound_authenticated_at) with the
    /// current time.
    ///
    /// [`VerifiedProof::jkt`]: crate::dpop::VerifiedProof::jkt
    /// [`DpopConfig::check`]: crate::dpop::DpopConfig::check
    pub async fn issue_pair_bound(
        &self,
        sub: &str,
        scope: &str,
        jkt: &str,
    ) -> Result<TokenPair, LifecycleError> {
        self.issue_pair_bound_authenticated_at(sub, scope, jkt, now_secs())
            .await
    }

    /// [`issue_pair_bound`](Self::issue_pair_bound) for credentials checked at
    /// `authenticated_at`, with the guarantees of
    /// [`issue_pair_authenticated_at`](Self::issue_pair_authenticated_at).
    pub async fn issue_pair_bound_authenticated_at(
        &self,
        sub: &str,
        scope: &str,
        jkt: &str,
        authenticated_at: u64,
    ) -> Result<TokenPair, LifecycleError> {
        self.start_session(sub, scope, authenticated_at, Some(jkt), None)
            .await
    }

    async fn start_session(
        &self,
        sub: &str,
        scope: &str,
        authenticated_at: u64,
        jkt: Option<&str>,
        family: Option<&str>,
    ) -> Result<TokenPair, LifecycleError> {
        let family = family.map_or_else(new_family, str::to_owned);
        let (token, hash) = mint(&family);
        let now = now_secs();
        let expires_at = now.saturating_add(self.refresh_ttl.as_secs());
        let mut record = RefreshRecord::new(
            sub,
            family.clone(),
            scope,
            expires_at,
            authenticated_at.min(now),
        );
        record.jkt = jkt.map(str::to_owned);
        self.refresh.create(hash, &record).await?;
        // Minted before the check: a user revocation made after the check has an instant at
        // or after this token's `iat`, so it covers the token.
        let pair = self.pair(sub, scope, &family, token, expires_at, jkt)?;
        if self.session_revoked(&record).await? {
            if let Err(e) = self.refresh.revoke_family(&family).await {
                tracing::warn!(target: "tower_token_auth", error = %e, "could not revoke a family started after its user's sessions were ended (it is refused anyway)");
            }
            return Err(LifecycleError::SessionsEnded);
        }
        Ok(pair)
    }

    /// Whether the session of `record` (its family, as `sid`) or every session of its user
    /// since the family began was revoked.
    async fn session_revoked(&self, record: &RefreshRecord) -> Result<bool, RevocationError> {
        // A family stands for every access token minted from it: the oldest was issued when
        // the family was created.
        let probe = TokenRef::new()
            .jti(None)
            .sub(record.sub.as_str())
            .sid(record.family.as_str())
            .iat(Some(record.created_at))
            .exp(Some(record.expires_at));
        let status = match self.revocation.check(&probe) {
            RevocationCheck::Ready(status) => status,
            RevocationCheck::Pending(check) => check.await,
        }?;
        Ok(status == RevocationStatus::Revoked)
    }

    /// The refresh grant: spends `refresh_token` and returns a new pair. `scope`, when given,
    /// narrows the new access token's scope; asking for more than was granted is
    /// [`GrantError::InvalidScope`].
    ///
    /// A token that was already spent revokes its whole family and every access token minted
    /// from it. A family whose user was logged out everywhere since it began refreshes
    /// nothing.
    ///
    /// The request carries no DPoP proof: a family bound to a DPoP key (begun with
    /// [`issue_pair_bound`](Self::issue_pair_bound)) is refused with
    /// [`GrantError::InvalidDpopProof`]. Same as [`refresh_bound`](Self::refresh_bound) with
    /// no proof.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenPair, GrantError> {
        self.refresh_bound(refresh_token, scope, None).await
    }

    /// Whether `refresh_token` is a current token (known, not spent, not expired): what the
    /// token endpoint asks before it records a DPoP proof, so that junk grants cannot fill the
    /// replay store.
    pub(crate) async fn is_current(&self, refresh_token: &str) -> Result<bool, LifecycleError> {
        let Some(presented) = PresentedToken::parse(refresh_token) else {
            return Ok(false);
        };
        Ok(self.refresh.find(&presented, now_secs()).await?.is_some())
    }

    /// The refresh grant of a request that may carry a DPoP proof (RFC 9449 §5): `proof_jkt`
    /// is the thumbprint of its key ([`VerifiedProof::jkt`] of [`DpopConfig::check`] with no
    /// access token), `None` without a proof. Otherwise as [`refresh`](Self::refresh).
    ///
    /// - A family bound to a key refreshes only with a proof of that key (compared in
    ///   constant time); anything else is [`GrantError::InvalidDpopProof`], checked before
    ///   the token is spent, so the client can retry with the right proof. The new access
    ///   token is bound to the same key.
    /// - A family that is not bound stays unbound: RFC 9449 §5 binds refresh tokens at the
    ///   grant that issues them, and a confidential client may use a new DPoP key on every
    ///   refresh. The new access token is bound to the proof's key when there is one.
    ///
    /// [`VerifiedProof::jkt`]: crate::dpop::VerifiedProof::jkt
    /// [`DpopConfig::check`]: crate::dpop::DpopConfig::check
    pub async fn refresh_bound(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
        proof_jkt: Option<&str>,
    ) -> Result<TokenPair, GrantError> {
        let Some(presented) = PresentedToken::parse(refresh_token) else {
            return Err(GrantError::InvalidGrant);
        };
        // Checked before rotating, so a refused scope or proof does not spend the token. A
        // family's binding never changes, so what is read here still holds at the rotation.
        let current = self
            .refresh
            .find(&presented, now_secs())
            .await
            .map_err(LifecycleError::from)?;
        if let Some(found) = &current {
            // A revoked family is refused by the rotation, which also completes the revocation
            // of its access tokens (and spends nothing).
            if !found.family_revoked && !proves_binding(found.record.jkt.as_deref(), proof_jkt) {
                return Err(GrantError::InvalidDpopProof);
            }
            if scope.is_some_and(|asked| !is_subset(asked, &found.record.scope)) {
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
                // Checked above, unless the token was not current then (and so not rotated
                // now); checked again all the same, failing closed.
                if !proves_binding(record.jkt.as_deref(), proof_jkt) {
                    return Err(GrantError::InvalidDpopProof);
                }
                // Checked above; the grant cannot have changed its scope since.
                let scope = scope
                    .filter(|asked| is_subset(asked, &record.scope))
                    .unwrap_or(record.scope.as_str());
                // A bound family's key, which is the proof's; else the proof's key, if any.
                let jkt = record.jkt.as_deref().or(proof_jkt);
                let pair = self.pair(
                    &record.sub,
                    scope,
                    &record.family,
                    successor,
                    expires_at,
                    jkt,
                )?;
                // After minting, as at login: see `issue_pair_authenticated_at`.
                if self
                    .session_revoked(&record)
                    .await
                    .map_err(LifecycleError::from)?
                {
                    return Err(GrantError::InvalidGrant);
                }
                Ok(pair)
            }
            Rotation::Reused(record) => {
                tracing::warn!(
                    target: "tower_token_auth",
                    family = %record.family,
                    "refresh token reused: revoking its family and the family's access tokens"
                );
                self.revoke_family_tokens(&record, None).await?;
                Err(GrantError::InvalidGrant)
            }
            Rotation::FamilyRevoked(record) => {
                // The family is dead; make sure its access tokens are too (an earlier
                // revocation of them may have failed after the family was marked).
                self.revoke_family_tokens(&record, None).await?;
                Err(GrantError::InvalidGrant)
            }
            Rotation::WithinGrace | Rotation::Invalid => Err(GrantError::InvalidGrant),
        }
    }

    /// Revokes the access tokens of `record`'s family (its `sid`), kept at least until
    /// `token_exp`. Always written, even when the session already reads as revoked: a
    /// revocation found in the store may be one whose publication failed, and writing it again
    /// is what makes it reach every instance.
    async fn revoke_family_tokens(
        &self,
        record: &RefreshRecord,
        token_exp: Option<u64>,
    ) -> Result<(), LifecycleError> {
        let until = self.access_keep_until().max(token_exp.unwrap_or(0));
        self.revocation
            .revoke_session(Some(&record.sub), &record.family, until)
            .await?;
        Ok(())
    }

    /// Ends the session of a refresh family: the family, then its access tokens.
    pub async fn revoke_family(
        &self,
        sub: Option<&str>,
        family: &str,
    ) -> Result<(), LifecycleError> {
        self.end_session(sub, family, None).await
    }

    /// The family first, its access tokens last: until the last step succeeded the caller's
    /// access token still works, so the caller can retry the whole operation.
    async fn end_session(
        &self,
        sub: Option<&str>,
        family: &str,
        token_exp: Option<u64>,
    ) -> Result<(), LifecycleError> {
        let owner = self.refresh.revoke_family(family).await?;
        let until = self.access_keep_until().max(token_exp.unwrap_or(0));
        self.revocation
            .revoke_session(sub.or(owner.as_deref()), family, until)
            .await?;
        Ok(())
    }

    /// RFC 7009 revocation: `token` may be a refresh token (its family and access tokens are
    /// revoked) or an access token (revoked until its `exp`). Unknown, invalid and expired
    /// tokens are ignored, as §2.2 asks. `hint` only orders the attempts.
    ///
    /// A refresh token whose family is already revoked is revoked again, so a revocation that
    /// failed half-way is completed by sending the same request again.
    pub async fn revoke(&self, token: &str, hint: Option<&str>) -> Result<(), LifecycleError> {
        let as_refresh = async {
            match PresentedToken::parse(token) {
                Some(p) => match self.refresh.find(&p, now_secs()).await? {
                    Some(found) => {
                        let record = found.record;
                        self.end_session(Some(&record.sub), &record.family, None)
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
        self.revocation.revoke_token(claims.token_ref()).await?;
        Ok(true)
    }

    /// Logout: ends the session of the presented access token — its refresh family and every
    /// access token minted from it, this one included — or, for a token outside any session
    /// (no `sid`), revokes that token.
    pub async fn logout<T>(&self, claims: &Claims<T>) -> Result<(), LifecycleError> {
        match &claims.sid {
            // The session's revocation covers this token (kept until its `exp` at least).
            Some(sid) => {
                self.end_session(claims.sub.as_deref(), sid, claims.exp)
                    .await
            }
            None => {
                self.revocation.revoke_token(claims.token_ref()).await?;
                Ok(())
            }
        }
    }

    /// Log out everywhere (password change, admin action): every access token of `sub`
    /// issued until now and every refresh family of `sub` begun until now, including logins
    /// still in flight (see [`issue_pair_authenticated_at`](Self::issue_pair_authenticated_at)).
    /// Returns once the current second is over (at most a second), so tokens minted after it
    /// returns are not revoked.
    pub async fn logout_everywhere(&self, sub: &str) -> Result<(), LifecycleError> {
        let now = now_secs();
        // The families it can see now (fast path for refreshes). The user revocation below
        // covers the others: a refresh checks it against its family's start.
        self.refresh.revoke_user(sub).await?;
        // Last, because from here on the caller's own token is refused (a retry would not get
        // through). Kept as long as a family begun before `now` can live without a refresh,
        // which is refused from now on.
        let keep = self.refresh_ttl.max(self.issuer.token_ttl()).as_secs();
        let mut before = now;
        loop {
            self.revocation
                .revoke_user(sub, before, now.saturating_add(keep))
                .await?;
            // A login racing this one may have minted its access token after `before` was
            // read but before the write was visible to its check. Its `iat` is at most the
            // second the write finished in: if that second is later, cover it too.
            let finished = now_secs();
            if finished <= before {
                break;
            }
            before = finished;
        }
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

/// Whether a request with a proof of `proof_jkt` (if any) may refresh a family bound to
/// `bound` (if any). Constant time in the thumbprints' contents.
fn proves_binding(bound: Option<&str>, proof_jkt: Option<&str>) -> bool {
    match (bound, proof_jkt) {
        (None, _) => true,
        (Some(bound), Some(proof)) => bool::from(bound.as_bytes().ct_eq(proof.as_bytes())),
        (Some(_), None) => false,
    }
}

/// Whether `family` has the syntax of the family ids `new_family` makes (and
/// `PresentedToken::parse` accepts): 22 base64url characters, 128 bits.
fn is_family_id(family: &str) -> bool {
    family.len() == 22
        && family
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether every scope in `asked` is in `granted`.
fn is_subset(asked: &str, granted: &str) -> bool {
    asked
        .split_ascii_whitespace()
        .all(|a| granted.split_ascii_whitespace().any(|g| g == a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh::MemoryRefreshStore;
    use crate::{Algorithm, KeySet, SigningKey, VerifyingKey};

    #[tokio::test]
    async fn sessions_in_a_given_family() {
        let secret = [9u8; 32];
        let keys = KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, &secret).unwrap())
            .unwrap();
        let verifier = Verifier::builder(keys).build().unwrap();
        let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret).unwrap());
        let layer = crate::JwtAuthLayer::new(verifier);
        let lifecycle = TokenLifecycle::for_layer(&layer, issuer, MemoryRefreshStore::new());
        for bad in [
            "",
            "short",
            "a.b",
            &"a".repeat(23),
            "aaaaaaaaaaaaaaaaaaaaa+",
        ] {
            assert!(matches!(
                lifecycle
                    .issue_pair_in_session("alice", "", now_secs(), bad)
                    .await,
                Err(LifecycleError::InvalidFamily)
            ));
        }
        let family = crate::sso::local_session_id("https://op.example", "sid-1");
        let pair = lifecycle
            .issue_pair_in_session("alice", "read", now_secs(), &family)
            .await
            .unwrap();
        assert!(pair.refresh_token.starts_with(&format!("{family}.")));
        let claims = lifecycle
            .verify_access::<NoCustomClaims>(&pair.access.token)
            .unwrap();
        assert_eq!(claims.sid.as_deref(), Some(family.as_str()));
        // Ended, the family stays ended: a new session in it is refused.
        lifecycle
            .revoke_family(Some("alice"), &family)
            .await
            .unwrap();
        assert!(lifecycle.refresh(&pair.refresh_token, None).await.is_err());
        assert!(matches!(
            lifecycle
                .issue_pair_in_session("alice", "read", now_secs(), &family)
                .await,
            Err(LifecycleError::SessionsEnded)
        ));
    }
}
