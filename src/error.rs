//! Authentication failures and the RFC 6750 responses they turn into.
//!
//! Every rejection the crate makes is an [`AuthError`]. Its [`kind`](AuthError::kind) tells the
//! operator what happened (logged through `tracing`); the client only sees the RFC 6750 error
//! code and a short, fixed description. Responses are built by an [`ErrorResponder`]; the default
//! is [`Rfc6750Responder`], and any `Fn(&AuthError) -> Response<Bytes>` closure can replace it.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
}

/// The kind of an [`AuthError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carried no token at all (RFC 6750 §3.1: answer without an error code).
    MissingToken,
    /// The request is malformed (400 `invalid_request`).
    InvalidRequest(InvalidRequest),
    /// A token was presented but is not acceptable (401 `invalid_token`).
    InvalidToken(InvalidToken),
    /// The token is valid but lacks the scope a route needs (403 `insufficient_scope`).
    InsufficientScope {
        /// The scope the route requires, sent back in `WWW-Authenticate`.
        required: String,
    },
    /// The revocation store could not answer, and the layer fails closed (503).
    RevocationUnavailable,
    /// The remote JWK Set has no usable keys: not fetched yet (the key source started while
    /// the endpoint was down), or not confirmed within its maximum staleness (503).
    KeysUnavailable,
    /// The user was logged in by a remember-me cookie, and the route wants a fresh login
    /// (401 `insufficient_user_authentication`, RFC 9470).
    FreshLoginRequired,
}

/// What was malformed about a request (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders,
    /// `Authorization: Bearer` with no token after the scheme.
    EmptyBearerToken,
    /// The bearer token has characters outside RFC 6750's `b64token` syntax.
    MalformedBearerToken,
    /// A header the token is read from is not visible ASCII.
    NonAsciiHeader,
    /// The token cookie appears more than once.
    DuplicateTokenCookie,
}

/// Why a presented token was refused (401 `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Longer than the configured cap; refused before any parsing.
    TooLarge,
    /// Not a well-formed JWS compact token (segments, base64url, JSON header or claims).
    Malformed,
    /// The `kid` names no key in the key set, or the token has no `kid` and there is no
    /// default key.
    UnknownKey,
    /// The token's `alg` is not the algorithm pinned to the selected key.
    AlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway): such a token would escape a user-wide
    /// revocation, which refuses the tokens issued at or before it.
    IssuedInFuture,
    /// `iss` is not an accepted issuer.
    WrongIssuer,
    /// `aud` does not name this service.
    WrongAudience,
    /// The header `typ` is not the required one.
    WrongType,
    /// A required claim is absent.
    MissingClaim(String),
    /// A claim has the wrong JSON type or an out-of-range value, or the claims do not fit the
    /// application's claims type (one of its fields is missing or has another type). The
    /// string names the claim for the log; the response says only "missing or invalid claim".
    InvalidClaim(String),
    /// The token was revoked (its `jti`, or every token of its subject).
    Revoked,
}

impl AuthError {
    /// Creates an error of the given kind.
    pub fn new(kind: AuthErrorKind) -> Self {
        Self { kind }
    }

    /// The request carried no token.
    pub fn missing_token() -> Self {
        Self::new(AuthErrorKind::MissingToken)
    }

    /// A malformed request.
    pub fn invalid_request(reason: InvalidRequest) -> Self {
        Self::new(AuthErrorKind::InvalidRequest(reason))
    }

    /// An unacceptable token.
    pub fn invalid_token(reason: InvalidToken) -> Self {
        Self::new(AuthErrorKind::InvalidToken(reason))
    }

    /// A valid token that lacks `required` scope.
    pub fn insufficient_scope(required: impl Into<String>) -> Self {
        Self::new(AuthErrorKind::InsufficientScope {
            required: required.into(),
        })
    }

    /// The revocation store is unavailable (fail closed).
    pub fn revocation_unavailable() -> Self {
        Self::new(AuthErrorKind::RevocationUnavailable)
    }

    /// What went wrong.
    pub fn kind(&self) -> &AuthErrorKind {
        &self.kind
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            AuthErrorKind::MissingToken
            | AuthErrorKind::InvalidToken(_)
            | AuthErrorKind::FreshLoginRequired => StatusCode::UNAUTHORIZED,
            AuthErrorKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthErrorKind::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthErrorKind::RevocationUnavailable | AuthErrorKind::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The RFC 6750 error code, or `None` when no token was sent.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            AuthErrorKind::MissingToken => None,
            AuthErrorKind::InvalidRequest(_) => Some("invalid_request"),
            AuthErrorKind::InvalidToken(_) => Some("invalid_token"),
            AuthErrorKind::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthErrorKind::RevocationUnavailable | AuthErrorKind::KeysUnavailable => {
                Some("temporarily_unavailable")
            }
            AuthErrorKind::FreshLoginRequired => Some("insufficient_user_authentication"),
        }
    }

    /// A short, fixed description safe to show a client. It never contains token material.
    pub fn description(&self) -> &'static str {
        match &self.kind {
            AuthErrorKind::MissingToken => "authentication required",
            AuthErrorKind::InvalidRequest(r) => match r {
                InvalidRequest::MultipleAuthorizationHeaders => "multiple Authorization headers",
                InvalidRequest::EmptyBearerToken => "empty bearer token",
                InvalidRequest::MalformedBearerToken => "malformed bearer token",
                InvalidRequest::NonAsciiHeader => "header is not visible ASCII",
                InvalidRequest::DuplicateTokenCookie => "token cookie sent more than once",
            },
            AuthErrorKind::InvalidToken(r) => match r {
                InvalidToken::TooLarge => "token too large",
                InvalidToken::Malformed => "malformed token",
                InvalidToken::UnknownKey => "unknown signing key",
                InvalidToken::AlgorithmMismatch => "algorithm not allowed",
                InvalidToken::BadSignature => "invalid signature",
                InvalidToken::Expired => "token expired",
                InvalidToken::NotYetValid => "token not yet valid",
                InvalidToken::IssuedInFuture => "token issued in the future",
                InvalidToken::WrongIssuer => "invalid issuer",
                InvalidToken::WrongAudience => "invalid audience",
                InvalidToken::WrongType => "invalid token type",
                InvalidToken::MissingClaim(_) => "missing required claim",
                InvalidToken::InvalidClaim(_) => "missing or invalid claim",
                InvalidToken::Revoked => "token revoked",
            },
            AuthErrorKind::InsufficientScope { .. } => "insufficient scope",
            AuthErrorKind::RevocationUnavailable => "token status cannot be checked, retry later",
            AuthErrorKind::KeysUnavailable => "signing keys unavailable, retry later",
            AuthErrorKind::FreshLoginRequired => "log in again with your password",
        }
    }

    /// The default RFC 6750 response: status, `WWW-Authenticate`, `Cache-Control: no-store`
    /// and a JSON body `{"error":…,"error_description":…}`.
    ///
    /// `realm` is quoted into the challenge when given; it must be visible ASCII without `"`
    /// or `\` (checked when the responder is built).
    pub fn to_response(&self, realm: Option<&str>) -> Response<Bytes> {
        self.challenge_response(realm, None)
    }

    /// [`to_response`](Self::to_response), with `resource_metadata="…"` (RFC 9728 §5.1) in the
    /// challenge when given: where a client finds this resource's metadata and so its
    /// authorization servers. Both values must be visible ASCII without `"` or `\`.
    pub fn challenge_response(
        &self,
        realm: Option<&str>,
        resource_metadata: Option<&str>,
    ) -> Response<Bytes> {
        let mut challenge = String::from("Bearer");
        let mut sep = " ";
        let mut param = |challenge: &mut String, name: &str, value: &str| {
            challenge.push_str(sep);
            challenge.push_str(name);
            challenge.push_str("=\"");
            challenge.push_str(value);
            challenge.push('"');
            sep = ", ";
        };
        if let Some(realm) = realm {
            param(&mut challenge, "realm", realm);
        }
        if let Some(code) = self.error_code() {
            param(&mut challenge, "error", code);
            param(&mut challenge, "error_description", self.description());
        }
        if let AuthErrorKind::InsufficientScope { required } = &self.kind {
            param(&mut challenge, "scope", required);
        }
        if let Some(url) = resource_metadata {
            param(&mut challenge, "resource_metadata", url);
        }

        let body = serde_json::json!({
            "error": self.error_code().unwrap_or("unauthorized"),
            "error_description": self.description(),
        });
        let mut response = Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Realm and scope are validated as header-safe when configured; a failure here can only
        // come from a scope string, so fall back to a challenge without parameters.
        let challenge = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        headers.insert(header::WWW_AUTHENTICATE, challenge);
        if matches!(
            self.kind,
            AuthErrorKind::RevocationUnavailable | AuthErrorKind::KeysUnavailable
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AuthErrorKind::InvalidToken(InvalidToken::MissingClaim(c)) => {
                write!(f, "missing required claim `{c}`")
            }
            AuthErrorKind::InvalidToken(InvalidToken::InvalidClaim(c)) => {
                write!(f, "missing or invalid claim: {c}")
            }
            AuthErrorKind::InsufficientScope { required } => {
                write!(f, "insufficient scope, `{required}` required")
            }
            _ => f.write_str(self.description()),
        }
    }
}

impl std::error::Error for AuthError {}

/// Logs why a request was refused: the reason only, never the token (a bearer credential).
pub(crate) fn log_rejection(error: &AuthError) {
    tracing::debug!(
        target: "tower_token_auth",
        status = error.status().as_u16(),
        reason = ?error.kind(),
        "request not authenticated"
    );
}

/// Builds the response for a rejected request.
///
/// Implemented for [`Rfc6750Responder`] (the default) and for any
/// `Fn(&AuthError) -> Response<Bytes> + Send + Sync + 'static` closure.
///
/// ```
/// use bytes::Bytes;
/// use http::{Response, StatusCode};
/// use tower_token_auth::{AuthError, JwtAuthLayer, testing::TestKeys};
///
/// let keys = TestKeys::hs256();
/// let layer = JwtAuthLayer::new(keys.verifier()).with_responder(|err: &AuthError| {
///     let mut res = err.to_response(Some("api"));
///     // Same status and headers, plain-text body.
///     *res.body_mut() = Bytes::from(err.description());
///     res
/// });
/// # let _ = layer;
/// ```
pub trait ErrorResponder: Send + Sync + 'static {
    /// The response for `error`.
    fn respond(&self, error: &AuthError) -> Response<Bytes>;
}

impl<F> ErrorResponder for F
where
    F: Fn(&AuthError) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, error: &AuthError) -> Response<Bytes> {
        self(error)
    }
}

/// The default [`ErrorResponder`]: RFC 6750 `WWW-Authenticate` challenge and JSON body.
///
/// ```
/// use tower_token_auth::Rfc6750Responder;
///
/// let responder = Rfc6750Responder::with_realm("orders")?
///     .resource_metadata("https://api.example/.well-known/oauth-protected-resource")?;
/// # let _ = responder;
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Rfc6750Responder {
    realm: Option<String>,
    resource_metadata: Option<String>,
}

impl Rfc6750Responder {
    /// A responder whose challenges carry `realm="…"`.
    ///
    /// Fails when `realm` has characters that cannot stand in a quoted header parameter.
    pub fn with_realm(realm: impl Into<String>) -> Result<Self, ConfigError> {
        let realm = realm.into();
        check_quoted_param("realm", &realm)?;
        Ok(Self {
            realm: Some(realm),
            resource_metadata: None,
        })
    }

    /// Challenges also carry `resource_metadata="…"` (RFC 9728 §5.1), e.g.
    /// [`ProtectedResourceMetadata::metadata_url`](crate::resource_metadata::ProtectedResourceMetadata::metadata_url).
    ///
    /// Fails when `url` has characters that cannot stand in a quoted header parameter.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_quoted_param("resource_metadata", &url)?;
        self.resource_metadata = Some(url);
        Ok(self)
    }
}

impl ErrorResponder for Rfc6750Responder {
    fn respond(&self, error: &AuthError) -> Response<Bytes> {
        error.challenge_response(self.realm.as_deref(), self.resource_metadata.as_deref())
    }
}

/// A configuration mistake, reported when a layer, key or store is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl ConfigError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

pub(crate) fn check_quoted_param(name: &str, value: &str) -> Result<(), ConfigError> {
    if value
        .bytes()
        .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(ConfigError::new(format!(
            "{name} must be visible ASCII without '\"' or '\\'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_has_no_error_code() {
        let res = AuthError::missing_token().to_response(Some("api"));
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="api""#
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let res = AuthError::insufficient_scope("admin").to_response(None);
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin""#
        );
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let res = AuthError::revocation_unavailable().to_response(None);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn realm_is_checked() {
        assert!(Rfc6750Responder::with_realm("my \"api\"").is_err());
        assert!(Rfc6750Responder::with_realm("my api").is_ok());
    }
}
