//! [`Authentication`]: the one value the authentication layers put into a request.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use crate::claims::{AuthStatus, ClaimSet, Claims};
use crate::error::{AuthError, DpopChallenge, Scheme};
use crate::logout::Logout;

/// What [`JwtAuthLayer`](crate::JwtAuthLayer) (or
/// [`RememberMeLayer`](crate::remember_me::RememberMeLayer)) established for a request: its
/// [`AuthStatus`], the verified claims when there are some, and the [`Logout`] of the layer's
/// revocation store. The layers insert this one value into the request extensions of every
/// request they let through; it is what the [`Claims`], [`AuthStatus`] and [`Logout`] axum
/// extractors read (feature `axum`).
///
/// Cloning it is two reference-count increments: the claims are shared with the
/// verified-token cache, the logout handle with the layer.
///
/// ```
/// use http::{Request, Response, StatusCode, header};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_token_auth::{AuthStatus, Authentication, Claims, JwtAuthLayer, testing::TestKeys};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let keys = TestKeys::hs256();
/// let svc = ServiceBuilder::new()
///     .layer(JwtAuthLayer::new(keys.verifier()))
///     .service(service_fn(|req: Request<String>| async move {
///         let auth = req.extensions().get::<Authentication>().unwrap();
///         assert_eq!(auth.status(), AuthStatus::Authenticated);
///         let claims: Claims = auth.claims().unwrap();
///         Ok::<_, std::convert::Infallible>(Response::new(format!("hi {}", claims.sub.as_deref().unwrap_or(""))))
///     }));
///
/// let req = Request::builder()
///     .header(header::AUTHORIZATION, format!("Bearer {}", keys.mint("alice", "read")))
///     .body(String::new())
///     .unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), StatusCode::OK);
/// # }
/// ```
#[derive(Clone)]
pub struct Authentication {
    status: AuthStatus,
    /// An `Arc<ClaimSet<T>>` of the layer's `T`.
    claims: Option<Arc<dyn Any + Send + Sync>>,
    /// `ClaimSet<T>` of the layer that decided, with claims or without.
    claims_type: TypeId,
    logout: Option<Arc<Logout>>,
    /// The scheme the request used, and the DPoP challenge of a layer accepting DPoP: what
    /// guards behind the layer (scope, step-up) put on their own challenges.
    scheme: Scheme,
    dpop: Option<Arc<DpopChallenge>>,
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authentication")
            .field("status", &self.status)
            .field("claims", &self.claims.as_ref().map(|_| ".."))
            .field("logout", &self.logout)
            .finish()
    }
}

impl Authentication {
    /// A request that passed without claims (anonymous, or a CORS preflight), through a
    /// layer decoding `T`.
    pub(crate) fn without_claims<T: 'static>(
        status: AuthStatus,
        logout: Option<Arc<Logout>>,
    ) -> Self {
        Self {
            status,
            claims: None,
            claims_type: TypeId::of::<ClaimSet<T>>(),
            logout,
            scheme: Scheme::Bearer,
            dpop: None,
        }
    }

    /// A request with verified claims (authenticated, or remembered).
    pub(crate) fn with_claims<T: Send + Sync + 'static>(
        status: AuthStatus,
        claims: Claims<T>,
        logout: Option<Arc<Logout>>,
    ) -> Self {
        Self {
            status,
            claims: Some(claims.into_shared()),
            claims_type: TypeId::of::<ClaimSet<T>>(),
            logout,
            scheme: Scheme::Bearer,
            dpop: None,
        }
    }

    /// The same, as a layer that read `scheme` and announces `dpop` in its challenges.
    pub(crate) fn with_challenge(
        mut self,
        scheme: Scheme,
        dpop: Option<&Arc<DpopChallenge>>,
    ) -> Self {
        self.scheme = scheme;
        self.dpop = dpop.cloned();
        self
    }

    /// `error` as the layer that let this request through would answer it: on the challenge
    /// of the scheme the request used, beside a `DPoP` challenge when DPoP is accepted.
    pub(crate) fn decorate(&self, error: AuthError) -> AuthError {
        error.with_scheme(self.scheme).with_dpop(self.dpop.as_ref())
    }

    /// An authenticated request with these claims, as the layer would mark it: for tests of
    /// handlers that take the extractors without running the layer, and for other
    /// authentication layers. No logout handle (add one with
    /// [`with_logout`](Self::with_logout)).
    pub fn authenticated<T: Send + Sync + 'static>(claims: Claims<T>) -> Self {
        Self::with_claims(AuthStatus::Authenticated, claims, None)
    }

    /// An anonymous request (no token, optional mode), as a layer decoding `T` would mark it.
    pub fn anonymous<T: 'static>() -> Self {
        Self::without_claims::<T>(AuthStatus::Anonymous, None)
    }

    /// The same, with `logout` as its logout handle.
    pub fn with_logout(mut self, logout: Logout) -> Self {
        self.logout = Some(Arc::new(logout));
        self
    }

    /// How the request passed the layer.
    pub fn status(&self) -> AuthStatus {
        self.status
    }

    /// The verified claims, when the request has some and the layer decodes `T` (`None` for
    /// anonymous requests and preflights, and for another `T` than the layer's).
    pub fn claims<T: Send + Sync + 'static>(&self) -> Option<Claims<T>> {
        let claims = self.claims.clone()?;
        claims.downcast::<ClaimSet<T>>().ok().map(Claims::from)
    }

    /// The verified claims set, borrowed (as [`claims`](Self::claims), without the handle).
    pub fn claim_set<T: Send + Sync + 'static>(&self) -> Option<&ClaimSet<T>> {
        self.claims.as_deref()?.downcast_ref::<ClaimSet<T>>()
    }

    /// What a guard behind the authentication layer (scope, step-up) decides for a request
    /// carrying `auth`: `check` on its claims of type `T`; a preflight the layer let through
    /// (`allow_cors_preflight(true)`) carries no token by design and passes; anything else
    /// is unauthenticated (401). A refusal goes on the challenge of the scheme the request
    /// used (RFC 9449 §7.1).
    pub(crate) fn guard<T: Send + Sync + 'static>(
        auth: Option<&Self>,
        check: impl FnOnce(&ClaimSet<T>) -> Result<(), AuthError>,
    ) -> Result<(), AuthError> {
        let outcome = match auth.and_then(Self::claim_set::<T>) {
            Some(claims) => check(claims),
            None if auth.is_some_and(|a| a.status == AuthStatus::Preflight) => Ok(()),
            None => Err(AuthError::missing_token()),
        };
        outcome.map_err(|e| match auth {
            Some(auth) => auth.decorate(e),
            None => e,
        })
    }

    /// Whether the layer that decided decodes `T`.
    pub(crate) fn decodes<T: 'static>(&self) -> bool {
        self.claims_type == TypeId::of::<ClaimSet<T>>()
    }

    /// The [`Logout`] bound to the layer's revocation store and access cookie, for handlers
    /// that end the session.
    pub fn logout(&self) -> Option<&Logout> {
        self.logout.as_deref()
    }

    /// The logout handle, shared.
    pub(crate) fn shared_logout(&self) -> Option<Arc<Logout>> {
        self.logout.clone()
    }
}
