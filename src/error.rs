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
    /// The authentication scheme the request used, whose challenge carries the error.
    scheme: Scheme,
    /// Set by a layer that accepts DPoP: the algorithms to announce in the `DPoP` challenge
    /// (RFC 9449 §7.1), and whether `Bearer` is accepted beside it.
    dpop: Option<std::sync::Arc<DpopChallenge>>,
}

/// An HTTP authentication scheme for access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    #[default]
    Bearer,
    /// `DPoP` (RFC 9449): a token bound to a key, with a proof of possession per request.
    Dpop,
}

/// What a layer accepting DPoP announces in its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DpopChallenge {
    /// Space-separated `alg` values accepted for proofs.
    pub(crate) algs: String,
    /// Whether unbound tokens are accepted with `Bearer` too (then both challenges are sent).
    pub(crate) bearer: bool,
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
    /// The route needs a stronger or more recent authentication than the token shows (401
    /// `insufficient_user_authentication`, RFC 9470 §3): the challenge carries `acr_values`
    /// and/or `max_age` for the client to ask the authorization server for.
    StepUpRequired {
        /// Space-separated `acr` values, any of which would do.
        acr_values: Option<String>,
        /// The maximum age of the authentication, in seconds.
        max_age: Option<u64>,
    },
    /// The DPoP proof is missing, malformed or does not match the request or the token (401
    /// `invalid_dpop_proof`, RFC 9449 §7.1).
    InvalidDpopProof(InvalidDpopProof),
    /// The token introspection endpoint could not answer (503 `temporarily_unavailable`):
    /// an opaque token is never accepted unverified.
    IntrospectionUnavailable,
    /// The DPoP proof replay store could not answer (503 `temporarily_unavailable`): a proof
    /// is never accepted without its replay check.
    ReplayCheckUnavailable,
}

/// Why a DPoP proof was refused (401 `invalid_dpop_proof`, RFC 9449 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidDpopProof {
    /// `Authorization: DPoP` without a `DPoP` header.
    Missing,
    /// More than one `DPoP` header.
    Multiple,
    /// Not a JWS compact token, or its header or claims are not what RFC 9449 §4.2 requires.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is not one of the accepted asymmetric algorithms.
    AlgorithmNotAllowed,
    /// The embedded `jwk` is missing, private, or not a key of the proof's `alg`.
    BadKey,
    /// The signature does not verify with the embedded key.
    BadSignature,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URI (scheme, authority and path).
    WrongUri,
    /// `iat` is outside the accepted window.
    Stale,
    /// `ath` is missing or not the hash of the access token.
    WrongAccessTokenHash,
    /// The proof key is not the key the token is bound to (`cnf.jkt`).
    KeyMismatch,
    /// The proof's `jti` was seen before: a replayed proof.
    Replayed,
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
    /// The token introspection endpoint (RFC 7662) answered that the token is not active, or
    /// that it is not an access token.
    Inactive,
    /// A token bound to a DPoP key (`cnf.jkt`) was presented as a bearer token (RFC 9449 §7.2).
    BoundToDpopKey,
    /// `Authorization: DPoP` with a token that is not bound to a DPoP key.
    NotDpopBound,
    /// A token bound to a client certificate (`cnf.x5t#S256`, RFC 8705 §3) came without that
    /// certificate.
    CertificateMismatch,
}

impl AuthError {
    /// Creates an error of the given kind.
    pub fn new(kind: AuthErrorKind) -> Self {
        Self {
            kind,
            scheme: Scheme::Bearer,
            dpop: None,
        }
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
            | AuthErrorKind::FreshLoginRequired
            | AuthErrorKind::StepUpRequired { .. }
            | AuthErrorKind::InvalidDpopProof(_) => StatusCode::UNAUTHORIZED,
            AuthErrorKind::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthErrorKind::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthErrorKind::RevocationUnavailable
            | AuthErrorKind::KeysUnavailable
            | AuthErrorKind::IntrospectionUnavailable
            | AuthErrorKind::ReplayCheckUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 error code, or `None` when no token was sent.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            AuthErrorKind::MissingToken => None,
            AuthErrorKind::InvalidRequest(_) => Some("invalid_request"),
            AuthErrorKind::InvalidToken(_) => Some("invalid_token"),
            AuthErrorKind::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthErrorKind::RevocationUnavailable
            | AuthErrorKind::KeysUnavailable
            | AuthErrorKind::IntrospectionUnavailable
            | AuthErrorKind::ReplayCheckUnavailable => Some("temporarily_unavailable"),
            AuthErrorKind::FreshLoginRequired | AuthErrorKind::StepUpRequired { .. } => {
                Some("insufficient_user_authentication")
            }
            AuthErrorKind::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
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
                InvalidToken::Inactive => "token not active",
                InvalidToken::BoundToDpopKey => "DPoP-bound token used as a bearer token",
                InvalidToken::NotDpopBound => "token not bound to a DPoP key",
                InvalidToken::CertificateMismatch => "token bound to another client certificate",
            },
            AuthErrorKind::InsufficientScope { .. } => "insufficient scope",
            AuthErrorKind::RevocationUnavailable => "token status cannot be checked, retry later",
            AuthErrorKind::KeysUnavailable => "signing keys unavailable, retry later",
            AuthErrorKind::FreshLoginRequired => "log in again with your password",
            AuthErrorKind::StepUpRequired { .. } => "a stronger or more recent login is required",
            AuthErrorKind::InvalidDpopProof(r) => match r {
                InvalidDpopProof::Missing => "DPoP proof missing",
                InvalidDpopProof::Multiple => "more than one DPoP proof",
                InvalidDpopProof::Malformed => "malformed DPoP proof",
                InvalidDpopProof::WrongType => "DPoP proof typ must be dpop+jwt",
                InvalidDpopProof::AlgorithmNotAllowed => "DPoP proof algorithm not allowed",
                InvalidDpopProof::BadKey => "DPoP proof key unusable",
                InvalidDpopProof::BadSignature => "DPoP proof signature invalid",
                InvalidDpopProof::WrongMethod => "DPoP proof htm does not match the request",
                InvalidDpopProof::WrongUri => "DPoP proof htu does not match the request",
                InvalidDpopProof::Stale => "DPoP proof iat outside the accepted window",
                InvalidDpopProof::WrongAccessTokenHash => "DPoP proof ath does not match the token",
                InvalidDpopProof::KeyMismatch => "DPoP proof key is not the token's key",
                InvalidDpopProof::Replayed => "DPoP proof replayed",
            },
            AuthErrorKind::IntrospectionUnavailable => {
                "token status cannot be checked, retry later"
            }
            AuthErrorKind::ReplayCheckUnavailable => "DPoP proof cannot be checked, retry later",
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
        let dpop = self.dpop.as_deref();
        // The error goes on the challenge of the scheme the request used (RFC 9449 §7.1);
        // the other scheme's challenge only says it is accepted.
        let error_on_dpop = dpop.is_some_and(|d| {
            !d.bearer
                || self.scheme == Scheme::Dpop
                || matches!(self.kind, AuthErrorKind::InvalidDpopProof(_))
        });
        let mut challenges = Vec::with_capacity(2);
        if dpop.is_none_or(|d| d.bearer) {
            challenges.push(self.challenge(
                "Bearer",
                !error_on_dpop,
                realm,
                resource_metadata,
                None,
            ));
        }
        if let Some(d) = dpop {
            challenges.push(self.challenge(
                "DPoP",
                error_on_dpop,
                realm,
                resource_metadata,
                Some(&d.algs),
            ));
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
        for challenge in challenges {
            headers.append(header::WWW_AUTHENTICATE, challenge);
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl AuthError {
    /// The scheme the refused request used (`Bearer` unless it sent `Authorization: DPoP`).
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub(crate) fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    pub(crate) fn with_dpop(mut self, dpop: Option<&std::sync::Arc<DpopChallenge>>) -> Self {
        self.dpop = dpop.cloned();
        self
    }

    /// One challenge of `scheme`, with this error's parameters when `with_error`.
    fn challenge(
        &self,
        scheme: &'static str,
        with_error: bool,
        realm: Option<&str>,
        resource_metadata: Option<&str>,
        algs: Option<&str>,
    ) -> HeaderValue {
        let mut challenge = String::from(scheme);
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
        if with_error && let Some(code) = self.error_code() {
            param(&mut challenge, "error", code);
            param(&mut challenge, "error_description", self.description());
            match &self.kind {
                AuthErrorKind::InsufficientScope { required } => {
                    param(&mut challenge, "scope", required);
                }
                AuthErrorKind::StepUpRequired {
                    acr_values,
                    max_age,
                } => {
                    if let Some(acr) = acr_values {
                        param(&mut challenge, "acr_values", acr);
                    }
                    if let Some(age) = max_age {
                        param(&mut challenge, "max_age", &age.to_string());
                    }
                }
                _ => {}
            }
        }
        if let Some(url) = resource_metadata {
            param(&mut challenge, "resource_metadata", url);
        }
        if let Some(algs) = algs {
            param(&mut challenge, "algs", algs);
        }
        // Realm, scope and acr values are validated as header-safe when configured; a failure
        // here can only come from a scope string, so fall back to the bare scheme.
        HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static(scheme))
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
