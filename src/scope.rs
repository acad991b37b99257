//! [`RequireScopeLayer`]: a 403 `insufficient_scope` guard behind [`JwtAuthLayer`](crate::JwtAuthLayer).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::authentication::Authentication;
use crate::body::AuthBody;
use crate::claims::NoCustomClaims;
use crate::error::{
    ConfigError, ErrorResponder, Rfc6750Responder, check_quoted_param, log_rejection,
};
use crate::future::ResponseFuture;

/// Requires the token's `scope` to include every space-separated scope given; answers 403
/// with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` otherwise, and 401
/// when the request is not authenticated at all. Place it inside [`JwtAuthLayer`](crate::JwtAuthLayer)
/// (with the same claims type `T`).
///
/// ```
/// use axum::{Router, routing::get};
/// use tower_token_auth::{JwtAuthLayer, RequireScopeLayer, testing::TestKeys};
///
/// let keys = TestKeys::hs256();
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "admin area" }))
///     .layer(RequireScopeLayer::new("admin").unwrap())
///     .layer(JwtAuthLayer::new(keys.verifier()));
/// ```
pub struct RequireScopeLayer<T = NoCustomClaims> {
    required: Arc<str>,
    responder: Arc<dyn ErrorResponder>,
    _claims: PhantomData<fn() -> T>,
}

impl<T> Clone for RequireScopeLayer<T> {
    fn clone(&self) -> Self {
        Self {
            required: self.required.clone(),
            responder: self.responder.clone(),
            _claims: PhantomData,
        }
    }
}

impl<T> fmt::Debug for RequireScopeLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeLayer")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl RequireScopeLayer<NoCustomClaims> {
    /// Requires `scope` (space-separated for several). Fails when it is empty or cannot stand
    /// in a header.
    pub fn new(scope: &str) -> Result<Self, ConfigError> {
        if scope.split_ascii_whitespace().next().is_none() {
            return Err(ConfigError::new("required scope is empty"));
        }
        check_quoted_param("scope", scope)?;
        Ok(Self {
            required: scope.into(),
            responder: Arc::new(Rfc6750Responder::default()),
            _claims: PhantomData,
        })
    }
}

impl<T> RequireScopeLayer<T> {
    /// Look for `Claims<U>` (the type given to `JwtAuthLayer::for_claims`).
    pub fn for_claims<U>(self) -> RequireScopeLayer<U> {
        RequireScopeLayer {
            required: self.required,
            responder: self.responder,
            _claims: PhantomData,
        }
    }

    /// Replace the error responses.
    pub fn with_responder<R: ErrorResponder>(mut self, responder: R) -> Self {
        self.responder = Arc::new(responder);
        self
    }
}

impl<S, T> Layer<S> for RequireScopeLayer<T> {
    type Service = RequireScope<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`RequireScopeLayer`].
pub struct RequireScope<S, T = NoCustomClaims> {
    inner: S,
    layer: RequireScopeLayer<T>,
}

impl<S: Clone, T> Clone for RequireScope<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for RequireScope<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    T: Send + Sync + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let auth = req.extensions().get::<Authentication>();
        let outcome =
            Authentication::guard::<T>(auth, |claims| claims.require_scope(&self.layer.required));
        match outcome {
            Ok(()) => ResponseFuture::calling(self.inner.call(req)),
            Err(e) => {
                log_rejection(&e);
                ResponseFuture::rejected(self.layer.responder.respond(&e))
            }
        }
    }
}
