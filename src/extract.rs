//! Axum extractors (feature `axum`).
//!
//! - [`Claims<T>`]: the verified claims; 401 when the request is anonymous.
//! - `Option<Claims<T>>`: `None` for anonymous requests (optional mode).
//!
//! They copy the claims out of the request. To share them instead, take
//! `axum::Extension<Arc<Claims<T>>>`, which is what the layer inserts.
//!
//! Both need [`JwtAuthLayer`](crate::JwtAuthLayer) on the route; without it (or with another
//! claims type `T` than the layer's) they answer 500 and say so, since that is a programming
//! error, not an authentication decision.

use std::sync::Arc;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::claims::{AuthStatus, Claims};
use crate::error::AuthError;
use crate::revocation::RevocationError;

/// Rejection of the claims extractors.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The request is not authenticated (optional mode without a token).
    Unauthenticated(AuthError),
    /// No `JwtAuthLayer` ran for this route, or it decodes another claims type.
    MissingLayer,
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(e) => e.into_response(),
            Self::MissingLayer => {
                tracing::error!(target: "tower_token_auth", "Claims<T> extractor used without a JwtAuthLayer for the same T");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Missing request extension: Claims<T>. Is JwtAuthLayer (with the same claims type) installed on this route?",
                )
                    .into_response()
            }
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.to_response(None).map(axum_core::body::Body::from)
    }
}

impl IntoResponse for RevocationError {
    /// `NotRevocable` answers 400 `invalid_request`; backend failures 503.
    fn into_response(self) -> Response {
        let (status, code) = match self {
            RevocationError::NotRevocable(_) | RevocationError::Unsupported(_) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            _ => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        };
        tracing::warn!(target: "tower_token_auth", error = %self, "revocation failed");
        let body = serde_json::json!({ "error": code, "error_description": self.to_string() });
        let mut res = (status, body.to_string()).into_response();
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res
    }
}

impl IntoResponse for crate::lifecycle::LifecycleError {
    /// A store or the issuer failed: 503 `temporarily_unavailable`, the detail in the log.
    fn into_response(self) -> Response {
        tracing::warn!(target: "tower_token_auth", error = %self, "token lifecycle operation failed");
        let body = serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "token store unavailable, retry later",
        });
        let mut res = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        res
    }
}

fn lookup<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
) -> Result<Option<Claims<T>>, ClaimsRejection> {
    if let Some(claims) = parts.extensions.get::<Arc<Claims<T>>>() {
        return Ok(Some(Claims::clone(claims)));
    }
    match parts.extensions.get::<AuthStatus>() {
        Some(AuthStatus::Anonymous | AuthStatus::Preflight) => Ok(None),
        // Authenticated without our T, or no layer at all.
        _ => Err(ClaimsRejection::MissingLayer),
    }
}

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        lookup(parts)?.ok_or_else(|| ClaimsRejection::Unauthenticated(AuthError::missing_token()))
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        lookup(parts)
    }
}
