//! RFC 9470 step-up authentication: [`StepUpRequirement`] (how strong and how recent the
//! user's login must be) and [`StepUpLayer`], the guard that demands it of a route behind
//! [`JwtAuthLayer`](crate::JwtAuthLayer).
//!
//! A token that falls short is answered with 401 and
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication", …, acr_values="…",
//! max_age="…"`: the client sends the user back to the authorization server with those
//! parameters and retries with the new token. See `docs/step-up.md`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::authentication::Authentication;
use crate::body::AuthBody;
use crate::claims::{AuthStatus, ClaimSet, NoCustomClaims};
use crate::error::{
    AuthError, AuthErrorKind, ConfigError, ErrorResponder, Rfc6750Responder, check_quoted_param,
    log_rejection,
};
use crate::future::ResponseFuture;
use crate::revocation::now_secs;

/// The leeway for an `auth_time` ahead of this server's clock, unless
/// [`with_leeway`](StepUpRequirement::with_leeway) says otherwise.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// What a route demands of the user's authentication (RFC 9470): an authentication context
/// class (`acr`) among the accepted ones, a maximum age of the authentication (`auth_time`),
/// or both.
///
/// [`StepUpLayer`] checks it for every request of a route; handlers call
/// [`check`](Self::check) themselves where the demand depends on the request (an amount, a
/// resource). A failed check is a 401 `insufficient_user_authentication` [`AuthError`]
/// whose challenge carries every parameter of the requirement (`acr_values`, `max_age`), so
/// that one new login satisfies all of it.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::{ClaimSet, StepUpRequirement};
///
/// let mfa = StepUpRequirement::acr_values("urn:example:mfa urn:example:hwk")?
///     .with_max_age(Duration::from_secs(300))?;
///
/// let mut claims = ClaimSet::new(tower_token_auth::NoCustomClaims {});
/// claims.acr = Some("urn:example:mfa".into());
/// claims.auth_time = Some(1_700_000_000);
/// assert!(mfa.check(&claims, 1_700_000_300).is_ok());
/// assert!(mfa.check(&claims, 1_700_000_301).is_err()); // too old
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpRequirement {
    /// The accepted `acr` values, space-separated (as sent in `acr_values`).
    acr_values: Option<Box<str>>,
    /// Seconds.
    max_age: Option<u64>,
    /// Seconds an `auth_time` may lie ahead of the clock.
    leeway: u64,
}

impl StepUpRequirement {
    /// Requires the token's `acr` to be one of `values`, space-separated (RFC 9470 §4: any one
    /// of them satisfies the route), e.g. `"urn:example:mfa"` or
    /// `"phr phrh"`. Values are compared exactly, case included.
    ///
    /// Fails when no value is given or when a value cannot stand in a quoted header
    /// parameter (visible ASCII without `"` or `\`).
    pub fn acr_values(values: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            acr_values: Some(normalize_acr_values(values)?),
            max_age: None,
            leeway: DEFAULT_LEEWAY.as_secs(),
        })
    }

    /// Requires the user to have authenticated at most `max_age` ago: the token must carry
    /// `auth_time`, and `now - auth_time` may not exceed `max_age` (whole seconds, as it is
    /// sent in `max_age`).
    ///
    /// Fails when `max_age` is under one second: the user could never log in quickly enough.
    pub fn max_age(max_age: Duration) -> Result<Self, ConfigError> {
        Ok(Self {
            acr_values: None,
            max_age: Some(check_max_age(max_age)?),
            leeway: DEFAULT_LEEWAY.as_secs(),
        })
    }

    /// The same, also requiring one of the space-separated `acr` `values` (see
    /// [`acr_values`](Self::acr_values)); replaces values given before.
    pub fn with_acr_values(mut self, values: &str) -> Result<Self, ConfigError> {
        self.acr_values = Some(normalize_acr_values(values)?);
        Ok(self)
    }

    /// The same, also requiring an authentication at most `max_age` old (see
    /// [`max_age`](Self::max_age)); replaces a maximum age given before.
    pub fn with_max_age(mut self, max_age: Duration) -> Result<Self, ConfigError> {
        self.max_age = Some(check_max_age(max_age)?);
        Ok(self)
    }

    /// How far `auth_time` may lie ahead of this server's clock (clock skew with the
    /// authorization server) before the token is refused; 30 s unless set. A later
    /// `auth_time` is refused whatever the requirement: the token would pass a maximum age
    /// for longer than it should. Fails above one day.
    ///
    /// The maximum age itself gets no leeway.
    pub fn with_leeway(mut self, leeway: Duration) -> Result<Self, ConfigError> {
        if leeway > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new("step-up leeway above one day"));
        }
        self.leeway = leeway.as_secs();
        Ok(self)
    }

    /// The accepted `acr` values, space-separated, as the challenge sends them.
    pub fn required_acr_values(&self) -> Option<&str> {
        self.acr_values.as_deref()
    }

    /// The maximum age of the authentication, in whole seconds.
    pub fn required_max_age(&self) -> Option<Duration> {
        self.max_age.map(Duration::from_secs)
    }

    /// `Ok` when `claims` meet the requirement at `now` (seconds since the Unix epoch), else
    /// a 401 `insufficient_user_authentication` error
    /// ([`AuthErrorKind::StepUpRequired`]) carrying this requirement's `acr_values` and
    /// `max_age`. Why the token fell short is logged (`tracing`, debug), not sent.
    ///
    /// The `acr` must be one of the accepted values; for a maximum age, `auth_time` must be
    /// present, not after `now` plus the leeway, and at most `max_age` before `now`.
    pub fn check<T>(&self, claims: &ClaimSet<T>, now: u64) -> Result<(), AuthError> {
        match self.shortfall(claims.acr.as_deref(), claims.auth_time, now) {
            None => Ok(()),
            Some(reason) => {
                tracing::debug!(target: "tower_token_auth", reason, "step-up required");
                Err(self.error())
            }
        }
    }

    /// [`check`](Self::check) at the current time of the system clock.
    pub fn check_now<T>(&self, claims: &ClaimSet<T>) -> Result<(), AuthError> {
        self.check(claims, now_secs())
    }

    /// The error a token falling short of this requirement gets.
    fn error(&self) -> AuthError {
        AuthError::new(AuthErrorKind::StepUpRequired {
            acr_values: self.acr_values.as_deref().map(str::to_owned),
            max_age: self.max_age,
        })
    }

    /// Why a token with `acr` and `auth_time` does not meet the requirement at `now`.
    fn shortfall(
        &self,
        acr: Option<&str>,
        auth_time: Option<u64>,
        now: u64,
    ) -> Option<&'static str> {
        if let Some(accepted) = &self.acr_values {
            match acr {
                None => return Some("token has no acr"),
                Some(acr) if !accepted.split(' ').any(|a| a == acr) => {
                    return Some("token's acr is not an accepted one");
                }
                Some(_) => {}
            }
        }
        if let Some(max_age) = self.max_age {
            let Some(auth_time) = auth_time else {
                return Some("token has no auth_time");
            };
            if auth_time > now.saturating_add(self.leeway) {
                return Some("token's auth_time is in the future");
            }
            if now.saturating_sub(auth_time) > max_age {
                return Some("authentication older than max_age");
            }
        }
        None
    }
}

/// Space-separated `acr` values, checked and joined with single spaces.
fn normalize_acr_values(values: &str) -> Result<Box<str>, ConfigError> {
    check_quoted_param("acr_values", values)?;
    let joined = values
        .split_ascii_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        return Err(ConfigError::new("acr_values is empty"));
    }
    Ok(joined.into())
}

fn check_max_age(max_age: Duration) -> Result<u64, ConfigError> {
    match max_age.as_secs() {
        0 => Err(ConfigError::new("max_age under one second")),
        secs => Ok(secs),
    }
}

/// Requires a strong or recent enough login for the routes it wraps (RFC 9470): answers 401
/// `insufficient_user_authentication` with `acr_values` / `max_age` in the challenge when the
/// token falls short of its [`StepUpRequirement`], and 401 (as
/// [`RequireScopeLayer`](crate::RequireScopeLayer) does) when the request is not
/// authenticated at all. Place it inside [`JwtAuthLayer`](crate::JwtAuthLayer), with the same
/// claims type `T` ([`for_claims`](Self::for_claims)).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::post};
/// use tower_token_auth::{JwtAuthLayer, StepUpLayer, StepUpRequirement, testing::TestKeys};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// let keys = TestKeys::hs256();
/// let app: Router = Router::new()
///     .route("/transfer", post(|| async { "sent" }))
///     // A multi-factor login at most five minutes old.
///     .route_layer(StepUpLayer::new(
///         StepUpRequirement::acr_values("urn:example:mfa")?
///             .with_max_age(Duration::from_secs(300))?,
///     ))
///     .route_layer(JwtAuthLayer::new(keys.verifier()));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub struct StepUpLayer<T = NoCustomClaims> {
    requirement: Arc<StepUpRequirement>,
    responder: Arc<dyn ErrorResponder>,
    _claims: PhantomData<fn() -> T>,
}

impl<T> Clone for StepUpLayer<T> {
    fn clone(&self) -> Self {
        Self {
            requirement: self.requirement.clone(),
            responder: self.responder.clone(),
            _claims: PhantomData,
        }
    }
}

impl<T> fmt::Debug for StepUpLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUpLayer")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl StepUpLayer<NoCustomClaims> {
    /// A guard demanding `requirement` of every request.
    pub fn new(requirement: StepUpRequirement) -> Self {
        Self {
            requirement: Arc::new(requirement),
            responder: Arc::new(Rfc6750Responder::default()),
            _claims: PhantomData,
        }
    }
}

impl<T> StepUpLayer<T> {
    /// Look for `Claims<U>` (the type given to `JwtAuthLayer::for_claims`).
    pub fn for_claims<U>(self) -> StepUpLayer<U> {
        StepUpLayer {
            requirement: self.requirement,
            responder: self.responder,
            _claims: PhantomData,
        }
    }

    /// Replace the error responses (e.g. an [`Rfc6750Responder`] with the realm the
    /// authentication layer uses).
    pub fn with_responder<R: ErrorResponder>(mut self, responder: R) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// What the guard demands.
    pub fn requirement(&self) -> &StepUpRequirement {
        &self.requirement
    }
}

impl<S, T> Layer<S> for StepUpLayer<T> {
    type Service = StepUp<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        StepUp {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service built by [`StepUpLayer`].
pub struct StepUp<S, T = NoCustomClaims> {
    inner: S,
    layer: StepUpLayer<T>,
}

impl<S: Clone, T> Clone for StepUp<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for StepUp<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUp")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for StepUp<S, T>
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
        // Such a request has no claims of type `T` (and is refused below).
        if auth.is_some_and(|a| !a.decodes::<T>() && a.status() != AuthStatus::Preflight) {
            tracing::warn!(
                target: "tower_token_auth",
                "StepUpLayer looks for other claims than the authentication layer \
                 decodes: give both the same type (`for_claims`)"
            );
        }
        let outcome =
            Authentication::guard::<T>(auth, |claims| self.layer.requirement.check_now(claims));
        match outcome {
            Ok(()) => ResponseFuture::calling(self.inner.call(req)),
            Err(e) => {
                log_rejection(&e);
                ResponseFuture::rejected(self.layer.responder.respond(&e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(acr: Option<&str>, auth_time: Option<u64>) -> ClaimSet {
        let mut c = ClaimSet::new(NoCustomClaims {});
        c.acr = acr.map(str::to_owned);
        c.auth_time = auth_time;
        c
    }

    #[test]
    fn configuration_is_checked() {
        for bad in ["", "   ", "\t", "mfa\tpwd", "a\"b", "a\\b", "é", "a\nb"] {
            assert!(StepUpRequirement::acr_values(bad).is_err(), "{bad:?}");
            let max = StepUpRequirement::max_age(Duration::from_secs(60)).unwrap();
            assert!(max.with_acr_values(bad).is_err(), "{bad:?}");
        }
        let r = StepUpRequirement::acr_values("  urn:a   urn:b ").unwrap();
        assert_eq!(r.required_acr_values(), Some("urn:a urn:b"));
        assert_eq!(r.required_max_age(), None);
        assert!(StepUpRequirement::max_age(Duration::ZERO).is_err());
        assert!(StepUpRequirement::max_age(Duration::from_millis(999)).is_err());
        let r = StepUpRequirement::max_age(Duration::from_millis(1500)).unwrap();
        assert_eq!(r.required_max_age(), Some(Duration::from_secs(1)));
        assert!(r.clone().with_leeway(Duration::from_secs(86_401)).is_err());
        assert!(r.with_leeway(Duration::from_secs(86_400)).is_ok());
    }

    #[test]
    fn checks() {
        let now = 1_000_000;
        let acr = StepUpRequirement::acr_values("urn:mfa urn:hwk").unwrap();
        let age = StepUpRequirement::max_age(Duration::from_secs(300)).unwrap();
        let both = acr.clone().with_max_age(Duration::from_secs(300)).unwrap();
        let no_leeway = age.clone().with_leeway(Duration::ZERO).unwrap();
        // (requirement, acr, auth_time, passes)
        let table: &[(&StepUpRequirement, Option<&str>, Option<u64>, bool)] = &[
            (&acr, Some("urn:mfa"), None, true),
            (&acr, Some("urn:hwk"), None, true),
            (&acr, Some("urn:pwd"), None, false),
            (&acr, Some("URN:MFA"), None, false),
            (&acr, Some("urn:mfa urn:hwk"), None, false),
            (&acr, Some(""), None, false),
            (&acr, None, Some(now), false),
            (&age, None, Some(now), true),
            (&age, None, Some(now - 300), true),
            (&age, None, Some(now - 301), false),
            (&age, None, Some(0), false),
            (&age, None, None, false),
            (&age, None, Some(now + 30), true),
            (&age, None, Some(now + 31), false),
            (&age, None, Some(u64::MAX), false),
            (&no_leeway, None, Some(now), true),
            (&no_leeway, None, Some(now + 1), false),
            (&both, Some("urn:mfa"), Some(now - 10), true),
            (&both, Some("urn:pwd"), Some(now - 10), false),
            (&both, Some("urn:mfa"), Some(now - 1000), false),
            (&both, Some("urn:mfa"), None, false),
            (&both, None, None, false),
        ];
        for &(req, token_acr, auth_time, passes) in table {
            let got = req.check(&claims(token_acr, auth_time), now);
            assert_eq!(
                got.is_ok(),
                passes,
                "{req:?} acr {token_acr:?} auth_time {auth_time:?}"
            );
            if let Err(e) = got {
                // The challenge names the whole requirement, whatever part failed.
                assert_eq!(
                    e.kind(),
                    &AuthErrorKind::StepUpRequired {
                        acr_values: req.required_acr_values().map(str::to_owned),
                        max_age: req.required_max_age().map(|d| d.as_secs()),
                    }
                );
            }
        }
        // A clock before auth_time by less than the leeway, at the epoch's edge: no overflow.
        assert!(age.check(&claims(None, Some(5)), 0).is_ok());
    }
}
