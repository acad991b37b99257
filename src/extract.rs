//! Axum extractors (feature `axum`).
//!
//! - [`Claims<T>`]: the verified claims; 401 when the request is anonymous.
//! - `Option<Claims<T>>`: `None` for anonymous requests (optional mode).
//! - [`AuthStatus`]: how the request passed (authenticated, anonymous, remembered…).
//! - [`Logout`](crate::Logout): the layer's logout handle, bound to its revocation store and
//!   access cookie.
//! - [`Authentication`]: all of the above, as the layer inserted it.
//!
//! They read the one [`Authentication`] the layer puts into the request and copy nothing:
//! `Claims<T>` shares the claims set with the layer (and its verified-token cache).
//!
//! They need [`JwtAuthLayer`](crate::JwtAuthLayer) on the route; without it (or, for
//! `Claims<T>`, with another claims type `T` than the layer's) they answer 500 and say so,
//! since that is a programming error, not an authentication decision.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::authentication::Authentication;
use crate::claims::{AuthStatus, Claims};
use crate::error::AuthError;
use crate::logout::Logout;
use crate::revocation::RevocationError;

/// Rejection of the claims extractors.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request is not authenticated (optional mode without a token).
    Unauthenticated(AuthError),
    /// No `JwtAuthLayer` ran for this route, or it decodes another claims type than the
    /// handler asks for (the type the handler asked for, as `std::any::type_name` writes it).
    MissingLayer(&'static str),
    /// No `JwtAuthLayer` ran for this route: the extractor named (`AuthStatus`, `Logout`,
    /// `Authentication`) has nothing to read.
    NoLayer(&'static str),
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(e) => e.into_response(),
            Self::MissingLayer(claims_type) => {
                tracing::error!(target: "tower_token_auth", claims_type, "Claims<T> extractor without a JwtAuthLayer for the same T");
                let body = format!(
                    "Claims<{claims_type}> is not in the request: no JwtAuthLayer ran for this route, \
                     or it decodes another claims type. A handler taking Claims<{claims_type}> needs \
                     JwtAuthLayer::new(verifier).for_claims::<{claims_type}>() on its route \
                     (a plain Claims needs a layer without for_claims).\n"
                );
                (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
            }
            Self::NoLayer(extractor) => {
                tracing::error!(target: "tower_token_auth", extractor, "extractor without a JwtAuthLayer");
                let body = format!(
                    "{extractor} is not in the request: no JwtAuthLayer ran for this route. \
                     Put JwtAuthLayer on it (Router::route_layer).\n"
                );
                (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
            }
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.to_response(None).map(axum_core::body::Body::from)
    }
}

impl IntoResponse for crate::endpoint::OAuthError {
    fn into_response(self) -> Response {
        self.response().map(axum_core::body::Body::new)
    }
}

impl IntoResponse for RevocationError {
    /// `NotRevocable` and `Unsupported` answer 400 `invalid_request`; backend failures 503
    /// `temporarily_unavailable` with `Retry-After: 1`. The body carries a fixed description;
    /// the backend's error goes to the log only.
    fn into_response(self) -> Response {
        tracing::warn!(target: "tower_token_auth", error = %self, "revocation failed");
        let (status, code, description) = match self {
            RevocationError::NotRevocable("jti") => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token cannot be revoked: it has no jti",
            ),
            RevocationError::NotRevocable(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token cannot be revoked individually",
            ),
            RevocationError::Unsupported(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "revocation not supported here",
            ),
            _ => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "revocation store unavailable, retry later",
            ),
        };
        json_error(status, code, description)
    }
}

/// A JSON OAuth-style error body, `no-store`, and `Retry-After: 1` on a 503.
fn json_error(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut res = (status, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    res
}

impl IntoResponse for crate::lifecycle::LifecycleError {
    /// [`SessionsEnded`](crate::lifecycle::LifecycleError::SessionsEnded) answers 401
    /// `invalid_grant` (log in again); a store or the issuer failing answers 503
    /// `temporarily_unavailable` with a fixed description, the detail in the log.
    fn into_response(self) -> Response {
        if matches!(self, crate::lifecycle::LifecycleError::SessionsEnded) {
            tracing::info!(target: "tower_token_auth", "login refused: the user's sessions were ended meanwhile");
            return json_error(StatusCode::UNAUTHORIZED, "invalid_grant", "log in again");
        }
        tracing::warn!(target: "tower_token_auth", error = %self, "token lifecycle operation failed");
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "token store unavailable, retry later",
        )
    }
}

fn lookup<T: Send + Sync + 'static>(parts: &Parts) -> Result<Option<Claims<T>>, ClaimsRejection> {
    let missing = || ClaimsRejection::MissingLayer(std::any::type_name::<T>());
    let auth = parts
        .extensions
        .get::<Authentication>()
        .ok_or_else(missing)?;
    // Another T than the layer's, with claims or without: a configuration error either way.
    if !auth.decodes::<T>() {
        return Err(missing());
    }
    // None for anonymous requests and preflights, the only ones without claims.
    Ok(auth.claims::<T>())
}

fn authentication<'p>(
    parts: &'p Parts,
    extractor: &'static str,
) -> Result<&'p Authentication, ClaimsRejection> {
    parts
        .extensions
        .get::<Authentication>()
        .ok_or(ClaimsRejection::NoLayer(extractor))
}

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        lookup(parts)?.ok_or_else(|| ClaimsRejection::Unauthenticated(AuthError::missing_token()))
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        lookup(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authentication {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authentication(parts, "Authentication").cloned()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthStatus {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authentication(parts, "AuthStatus").map(Authentication::status)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Logout {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authentication(parts, "Logout")?
            .logout()
            .cloned()
            .ok_or(ClaimsRejection::NoLayer("Logout"))
    }
}
