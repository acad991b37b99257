//! The token endpoint's grants for an OpenID Provider: the authorization-code grant (RFC 6749
//! §4.1.3, PKCE, OpenID Connect Core §3.1.3) joining the [code store](crate::sso::code), the
//! [SSO sessions](crate::sso::session) and [`TokenLifecycle`], and the refresh grant, each
//! refresh family kept to the client it was issued to.
//!
//! [`TokenGrants::code_grant`] redeems the code (single use: a replay revokes what the first
//! redemption produced), refuses it once the SSO session has ended, and mints an access token
//! (never outliving the SSO session) or, with `offline_access`, a refresh-token family
//! recorded in the session, plus the ID token with `openid`. What it issued is recorded with
//! the code; a replay that came meanwhile, or a session that ended meanwhile, revokes it and
//! refuses (fail closed). Store failures are [`TokenError::Unavailable`] (answer 503), never
//! a decision.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::endpoint::OAuthError;
use crate::lifecycle::{GrantError, TokenLifecycle};
use crate::refresh::RefreshStore;
use crate::revocation::RevocationStore;
use crate::sso::code::{AuthorizationCodeStore, CodeHash, IssuedRef, MarkIssued, Redemption};
use crate::sso::key_ring::SigningKeyRing;
use crate::sso::session::SsoSessionStore;
use crate::{NoCustomClaims, TokenIssuer, Verifier};

/// A boxed error of a store or a signer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a grant was not answered with tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Refused: answer this OAuth error (RFC 6749 §5.2).
    #[error("{0}")]
    Refused(OAuthError),
    /// A store or the signer failed: answer 503 `temporarily_unavailable`.
    #[error("token endpoint unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

fn refused(code: &'static str, description: &'static str) -> TokenError {
    TokenError::Refused(OAuthError::new(StatusCode::BAD_REQUEST, code, description))
}

fn invalid_grant(description: &'static str) -> TokenError {
    refused("invalid_grant", description)
}

fn down(e: impl Into<BoxError>) -> TokenError {
    TokenError::Unavailable(e.into())
}

/// The provider's grants: its issuer URL, signing keys, verifier of its own access tokens,
/// and stores. Access tokens are `at+jwt` for the client (`aud`); refresh tokens live as long
/// as an SSO session ([`SsoSessionStore::session_ttl`]).
#[derive(Clone)]
pub struct TokenGrants {
    issuer: String,
    ring: SigningKeyRing,
    verifier: Verifier,
    codes: Arc<dyn AuthorizationCodeStore>,
    sessions: Arc<dyn SsoSessionStore>,
    refresh: Arc<dyn RefreshStore>,
    revocation: Arc<dyn RevocationStore>,
    access_ttl: Duration,
    leeway: Duration,
}

impl std::fmt::Debug for TokenGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrants")
            .field("issuer", &self.issuer)
            .field("access_ttl", &self.access_ttl)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl TokenGrants {
    /// The grants of provider `issuer`; access tokens live 5 minutes, leeway 30 s.
    pub fn new(
        issuer: &str,
        ring: SigningKeyRing,
        verifier: Verifier,
        codes: Arc<dyn AuthorizationCodeStore>,
        sessions: Arc<dyn SsoSessionStore>,
        stores: (Arc<dyn RefreshStore>, Arc<dyn RevocationStore>),
    ) -> Self {
        Self {
            issuer: issuer.to_owned(),
            ring,
            verifier,
            codes,
            sessions,
            refresh: stores.0,
            revocation: stores.1,
            access_ttl: Duration::from_secs(300),
            leeway: Duration::from_secs(30),
        }
    }

    /// How long access tokens (and ID tokens) live.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The verifiers' clock leeway: revocations are kept that much longer than a token lives.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Until when (Unix seconds) a revocation made now must be kept: every token issued
    /// before it has expired by then.
    pub fn revoke_until(&self) -> u64 {
        now_secs() + self.access_ttl.as_secs() + self.leeway.as_secs()
    }

    /// Access tokens for `client`, signed with the ring's current key.
    pub fn issuer_for(&self, client: &str) -> TokenIssuer {
        let issuer = TokenIssuer::new(self.ring.signing_key()).issuer(&self.issuer);
        issuer.audience(client).ttl(self.access_ttl).typ("at+jwt")
    }

    /// Refresh tokens of `client` (`""`: to revoke only): rotated at every use, a reuse
    /// revokes the family; they live as long as an SSO session.
    pub fn lifecycle(&self, client: &str) -> TokenLifecycle {
        let (refresh, revocation) = (self.refresh.clone(), self.revocation.clone());
        let lifecycle = TokenLifecycle::new(
            self.issuer_for(client),
            self.verifier.clone(),
            refresh,
            revocation,
        );
        lifecycle.refresh_ttl(self.sessions.session_ttl())
    }

    /// Ends SSO session `sid` of `sub` everywhere: it is taken from the store, and its
    /// tokens and those of every refresh family it started are revoked in the store every
    /// service checks (the session id is revoked even when the store no longer had it).
    /// Answers the clients it signed in to, to be told (back-channel logout).
    pub async fn end_session(&self, sub: &str, sid: &str) -> Result<BTreeSet<String>, TokenError> {
        let session = self.sessions.end(sid).await.map_err(down)?;
        let (families, clients) = session.map(|s| (s.families, s.clients)).unwrap_or_default();
        let until = self.revoke_until();
        for sid in families.iter().map(String::as_str).chain([sid]) {
            let revoked = self.revocation.revoke_session(Some(sub), sid, until).await;
            revoked.map_err(down)?;
        }
        tracing::info!(sub, sid, "SSO session ended");
        Ok(clients)
    }

    /// The SSO session an access token's `sid` belongs to: a refreshed token's `sid` is its
    /// refresh family's, owned by the session that started it; any other is the session's.
    pub async fn sso_session_of(&self, sid: &str) -> Result<String, TokenError> {
        let owner = self.sessions.family_owner(sid).await.map_err(down)?;
        Ok(owner.map_or_else(|| sid.to_owned(), |o| o.sid))
    }

    /// Revokes what a code produced and refuses the grant.
    async fn revoke(&self, sub: &str, issued: &IssuedRef, why: &'static str) -> TokenError {
        match issued
            .revoke(&*self.revocation, sub, self.revoke_until())
            .await
        {
            Ok(()) => invalid_grant(why),
            Err(e) => down(e),
        }
    }

    /// The authorization-code grant for `client` (authenticated by the caller, or public and
    /// proven by PKCE), from the token request's parameters `code`, `redirect_uri` and
    /// `code_verifier`; `scope_of` answers the user's scope (the provider's policy). The
    /// token response's JSON body.
    pub async fn code_grant<F, Fut>(
        &self,
        client: &str,
        params: &HashMap<String, String>,
        scope_of: F,
    ) -> Result<Value, TokenError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<String, BoxError>>,
    {
        let p = |name: &str| params.get(name).map_or("", String::as_str);
        let (code, uri, verifier) = (p("code"), p("redirect_uri"), p("code_verifier"));
        if code.is_empty() || uri.is_empty() || verifier.is_empty() {
            let text = "code, redirect_uri and code_verifier are required";
            return Err(refused("invalid_request", text));
        }
        let redemption = self.codes.redeem(code, client, uri, verifier).await;
        let grant = match redemption.map_err(down)? {
            Redemption::Redeemed(grant) => grant,
            Redemption::Replayed {
                sub,
                issued: Some(issued),
                ..
            } => {
                return Err(self
                    .revoke(&sub, &issued, "the code was used already")
                    .await);
            }
            _ => return Err(invalid_grant("unknown, expired, used or mismatched code")),
        };
        let (sub, sid) = (grant.sub.as_str(), grant.session.as_str());
        let Some(session) = self.sessions.get(sid).await.map_err(down)? else {
            return Err(invalid_grant("the SSO session has ended"));
        };
        let scope = scope_of(sub.to_owned())
            .await
            .map_err(TokenError::Unavailable)?;
        let mut body = json!({ "token_type": "Bearer", "scope": scope });
        let mut issued = IssuedRef::new().sid(sid);
        let access = if grant.has_scope("offline_access") {
            let pair = self.lifecycle(client).issue_pair(sub, &scope).await;
            let pair = pair.map_err(down)?;
            let family = pair.refresh_token.split('.').next().unwrap_or_default();
            issued = issued.family(family);
            if !self
                .sessions
                .add_family(sid, client, family)
                .await
                .map_err(down)?
            {
                return Err(self.revoke(sub, &issued, "the SSO session has ended").await);
            }
            body["refresh_token"] = pair.refresh_token.as_str().into();
            pair.access
        } else {
            // Never outliving the SSO session.
            let ttl = self.access_ttl.as_secs().min(session.remaining(now_secs()));
            let issuer = self.issuer_for(client).ttl(Duration::from_secs(ttl.max(1)));
            let none = NoCustomClaims {};
            let access = issuer.issue_in_session(sub, &scope, Some(sid), &none);
            let access = access.map_err(down)?;
            issued = issued.jti(&access.jti).expires_at(access.expires_at);
            access
        };
        if grant.has_scope("openid") {
            let key = self.ring.signing_key();
            let id_token = grant.id_token(key, &self.issuer, &access.token, self.access_ttl);
            body["id_token"] = id_token.map_err(down)?.into();
        }
        let marked = self.codes.mark_issued(CodeHash::of(code), &issued).await;
        if marked.map_err(down)? == MarkIssued::Replayed {
            return Err(self.revoke(sub, &issued, "the code was used already").await);
        }
        tracing::info!(sub, sid, client, "tokens issued");
        body["expires_in"] = access.expires_in.into();
        body["access_token"] = access.token.into();
        Ok(body)
    }

    /// The refresh grant (rotation by [`TokenLifecycle`]), only for the client the family
    /// was issued to. The token response's JSON body.
    pub async fn refresh_grant(&self, client: &str, token: &str) -> Result<Value, TokenError> {
        let family = token.split('.').next().unwrap_or_default();
        let owner = self.sessions.family_owner(family).await.map_err(down)?;
        if owner.is_none_or(|o| o.client_id != client) {
            return Err(invalid_grant("unknown refresh token, or another client's"));
        }
        let pair = match self.lifecycle(client).refresh(token, None).await {
            Ok(pair) => pair,
            Err(GrantError::Unavailable(e)) => return Err(down(e)),
            Err(_) => return Err(invalid_grant("invalid, spent or revoked refresh token")),
        };
        let (access, refresh_token) = (pair.access, pair.refresh_token);
        Ok(
            json!({ "access_token": access.token, "token_type": "Bearer", "scope": pair.scope,
            "expires_in": access.expires_in, "refresh_token": refresh_token }),
        )
    }
}

fn now_secs() -> u64 {
    crate::revocation::now_ms() / 1000
}
