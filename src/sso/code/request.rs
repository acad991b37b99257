//! The authorization request (RFC 6749 §4.1.1, PKCE RFC 7636 §4.3, OpenID Connect Core
//! §3.1.2.1) and the OpenID Connect ID token of a redeemed code (Core §3.1.3.6).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::{CodeGrant, is_valid_challenge};
use crate::error::ConfigError;
use crate::issuer::{IssueError, SigningKey, TokenIssuer};
use crate::sso::clients::{ClientRegistry, RedirectError};

/// The longest `state`, `nonce` or `scope` an [`AuthorizationRequest`] accepts, in bytes.
pub const MAX_REQUEST_PARAM: usize = 2048;

/// The parameters of an authorization request, as the query of `/authorize` (or a login
/// form repeating them) carries them; other parameters are ignored. Check it with
/// [`check`](Self::check) before anything else.
///
/// ```
/// use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
/// use tower_token_auth::sso::code::{AuthorizationRequest, AuthorizeError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clients = ClientRegistry::new()
///     .with_client(RegisteredClient::new("orders")?.redirect_uri("https://orders.example/cb")?)?;
/// let mut req = AuthorizationRequest::default();
/// req.client_id = Some("orders".into());
/// req.redirect_uri = Some("https://orders.example/cb".into());
/// req.state = Some("xyz".into());
/// // No PKCE: back to the client with an error.
/// match req.check(&clients) {
///     Err(AuthorizeError::Redirect { error, location }) => {
///         assert_eq!(error, "invalid_request");
///         assert_eq!(location, "https://orders.example/cb?error=invalid_request&state=xyz");
///     }
///     other => panic!("{other:?}"),
/// }
/// req.response_type = Some("code".into());
/// req.code_challenge = Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into());
/// req.code_challenge_method = Some("S256".into());
/// req.check(&clients)?;
/// let grant = req.grant("alice", "sid-1")?;
/// assert_eq!(req.code_redirect("c0de"), "https://orders.example/cb?code=c0de&state=xyz");
/// # let _ = grant; Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// A registered client.
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs, byte for byte.
    pub redirect_uri: Option<String>,
    /// Echoed back to the client.
    pub state: Option<String>,
    /// The PKCE `S256` challenge: required.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// The OpenID Connect `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The scope asked for (`openid`: an ID token too).
    pub scope: Option<String>,
}

/// Why an [`AuthorizationRequest`] was refused (RFC 6749 §4.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// Unknown client, or a redirect URI that is not one of its registered ones: tell the
    /// user with a page, and redirect nowhere (an open redirector would hand codes to whoever
    /// wrote the link).
    #[error(transparent)]
    NoRedirect(#[from] RedirectError),
    /// Anything else: send the browser to `location`, the client's redirect URI with `error`
    /// (and `state`, unless it was the problem).
    #[error("authorization request refused: {error}")]
    Redirect {
        /// The RFC 6749 §4.1.2.1 error code.
        error: &'static str,
        /// Where to redirect the browser.
        location: String,
    },
}

fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(name, value);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", query.finish())
}

fn param(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

impl AuthorizationRequest {
    /// Checks the client and redirect URI first ([`AuthorizeError::NoRedirect`]), then the
    /// rest ([`AuthorizeError::Redirect`]): `state`, `nonce` and `scope` at most
    /// [`MAX_REQUEST_PARAM`] bytes (an overlong `state` is not echoed), a PKCE `S256`
    /// challenge (required of every client, OAuth 2.1), `response_type=code`.
    pub fn check(&self, clients: &ClientRegistry) -> Result<(), AuthorizeError> {
        let client = param(&self.client_id);
        if let Err(e) = clients.redirect_uri(client, param(&self.redirect_uri)) {
            tracing::info!(client_id = ?client, reason = %e, "authorization request refused");
            return Err(e.into());
        }
        let too_long = |v: &Option<String>| param(v).len() > MAX_REQUEST_PARAM;
        let state = if too_long(&self.state) {
            ""
        } else {
            param(&self.state)
        };
        let malformed = too_long(&self.state) || too_long(&self.nonce) || too_long(&self.scope);
        let pkce = self.code_challenge_method.as_deref() == Some("S256")
            && is_valid_challenge(param(&self.code_challenge));
        let error = if malformed || !pkce {
            "invalid_request"
        } else if self.response_type.as_deref() != Some("code") {
            "unsupported_response_type"
        } else {
            return Ok(());
        };
        tracing::info!(client_id = ?client, error, "authorization request refused");
        let location = with_query(
            param(&self.redirect_uri),
            &[("error", error), ("state", state)],
        );
        Err(AuthorizeError::Redirect { error, location })
    }

    /// The grant a code for this (checked) request stands for: `sub` signed in, in SSO
    /// session `session`, with the request's scope and nonce.
    pub fn grant(&self, sub: &str, session: &str) -> Result<CodeGrant, ConfigError> {
        let grant = CodeGrant::new(
            param(&self.client_id),
            param(&self.redirect_uri),
            param(&self.code_challenge),
            sub,
            session,
        )?;
        let grant = grant.scope(param(&self.scope));
        Ok(match self.nonce.as_deref().filter(|n| !n.is_empty()) {
            Some(nonce) => grant.nonce(nonce),
            None => grant,
        })
    }

    /// Where to send the browser with `code`: the redirect URI with `code` and `state`.
    pub fn code_redirect(&self, code: &str) -> String {
        with_query(
            param(&self.redirect_uri),
            &[("code", code), ("state", param(&self.state))],
        )
    }
}

impl CodeGrant {
    /// Whether the grant's scope has `scope` (`openid`: answer with an ID token too).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }

    /// The OpenID Connect ID token of this grant (Core §2, §3.1.3.6), signed with `key`
    /// (`typ` `JWT`): `iss`, `sub`, `aud` = `azp` = the client, `iat`, `exp` (`ttl` from now),
    /// `jti`, `sid` = the SSO session, `auth_time` and `nonce` when the grant has them, and
    /// `at_hash` of `access_token`: the left half of its hash with the hash of the key's
    /// algorithm (SHA-512 for EdDSA, as the OpenID certification suite and openid-client
    /// compute it).
    pub fn id_token(
        &self,
        key: SigningKey,
        issuer: &str,
        access_token: &str,
        ttl: Duration,
    ) -> Result<String, IssueError> {
        let digest = match key.algorithm() {
            Algorithm::ES384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::HS384 => {
                Sha384::digest(access_token).to_vec()
            }
            Algorithm::EdDSA | Algorithm::RS512 | Algorithm::PS512 | Algorithm::HS512 => {
                Sha512::digest(access_token).to_vec()
            }
            _ => Sha256::digest(access_token).to_vec(),
        };
        let mut claims = Map::new();
        let at_hash = URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]);
        claims.insert("at_hash".into(), at_hash.into());
        claims.insert("azp".into(), self.client_id.clone().into());
        if let Some(auth_time) = self.auth_time {
            claims.insert("auth_time".into(), auth_time.into());
        }
        if let Some(nonce) = &self.nonce {
            claims.insert("nonce".into(), Value::from(nonce.as_str()));
        }
        TokenIssuer::new(key)
            .issuer(issuer)
            .audience(&self.client_id)
            .ttl(ttl)
            .issue_in_session(&self.sub, "", Some(&self.session), &claims)
            .map(|issued| issued.token)
    }
}
