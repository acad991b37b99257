//! The receiver of OpenID Connect Back-Channel Logout 1.0: the provider (OP) posts a logout
//! token naming a session (`sid`) or a user (`sub`), and the service revokes it in its
//! [`RevocationStore`], so every instance refuses that session's tokens from then on.
//!
//! See [`BackChannelLogout`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::dpop::{MemoryReplayStore, ReplayStore};
use crate::error::{AuthErrorKind, InvalidToken};
use crate::lifecycle::TokenLifecycle;
use crate::revocation::{RevocationError, RevocationStore, now_secs};
use crate::sso::local_session_id;
use crate::{ClaimSet, ConfigError, Verifier};

/// The member of the `events` claim that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The largest request body the receiver reads: 16 KiB (a logout token is well under 2 KiB).
pub const MAX_LOGOUT_BODY: usize = 16 * 1024;

/// The default [`session_ttl`](BackChannelLogout::session_ttl): one day.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The default [`max_token_age`](BackChannelLogout::max_token_age): ten minutes.
pub const DEFAULT_MAX_TOKEN_AGE: Duration = Duration::from_secs(10 * 60);

/// The `Retry-After` of a 503 answer, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// A tower service receiving OpenID Connect Back-Channel Logout 1.0 requests (§2.5–2.8): the
/// provider POSTs `logout_token=<JWT>` (`application/x-www-form-urlencoded`) to the service's
/// registered `backchannel_logout_uri`, and the service ends the session the token names.
///
/// The logout token is verified by the given [`Verifier`], which must be built for the
/// provider: its issuer ([`issuer`](crate::VerifierBuilder::issuer)), the service's client_id
/// as audience ([`audience`](crate::VerifierBuilder::audience)) and the provider's JWK Set
/// (e.g. `VerifierBuilder::discover` with feature `http-client`). The
/// verifier checks the signature with the provider's keys (each key pinned to its algorithm;
/// `alg: none` never verifies), `iss`, `aud`, `exp` and an `iat` not in the future, with its
/// leeway. The receiver then checks what §2.6 adds:
///
/// - `iss`, `aud`, `iat`, `exp` and `jti` are present (`exp` is REQUIRED since errata set 1 of
///   the specification), and `iat` is at most [`max_token_age`](Self::max_token_age) old;
/// - the header `typ`, when present, is `logout+jwt` (or `application/logout+jwt`). The
///   specification says logout tokens SHOULD be explicitly typed (§2.4), not that they must
///   be, so an untyped token is accepted unless [`require_typ`](Self::require_typ) is set;
///   any other `typ` (`JWT`, `at+jwt`, …) is refused;
/// - `events` is a JSON object with the member [`BACKCHANNEL_LOGOUT_EVENT`], whose value is a
///   JSON object;
/// - there is a `sid` or a `sub` (or both), and no `nonce` (not even `null`);
/// - the `jti` was not accepted before (replay, see below).
///
/// On a valid token, it revokes in the [`RevocationStore`]: with a `sid`,
/// [`revoke_session`](RevocationStore::revoke_session)`(sub, sid, now + session_ttl)`; with a
/// `sub` alone (every session of the user), [`revoke_user`](RevocationStore::revoke_user)`(sub,
/// now, now + session_ttl)`, every token of that user issued up to now. The session tokens the
/// service checks must therefore carry the provider's `sid` (or `sub`).
///
/// # Answers
///
/// - 200 with `Cache-Control: no-store` and no body once the store reported the revocation done;
/// - 400 `{"error":"invalid_request","error_description":…}` for a request or token that is not
///   a valid logout token (a short fixed description, never key or store details);
/// - 405 (with `Allow: POST`) for another method, 400 for another content type, 413 for a body
///   over [`MAX_LOGOUT_BODY`];
/// - 501 `server_error` when the store cannot revoke sessions or users at all
///   ([`RevocationError::Unsupported`]): this logout does not apply to it;
/// - 503 `temporarily_unavailable` with `Retry-After` when the revocation store, the replay
///   store or the provider's keys are unavailable: it fails closed, the provider retries.
///
/// # Replay
///
/// The `jti` is recorded in the [`ReplayStore`] (by default a [`MemoryReplayStore`] of this
/// process; give every instance one shared store, e.g.
/// [`RedisReplayStore`](crate::dpop::RedisReplayStore), with
/// [`replay_store`](Self::replay_store)), keyed by the SHA-256 of the issuer and the `jti`,
/// until the token's `exp` (at most `iat + max_token_age`) plus the verifier's leeway.
///
/// It is recorded *after* the revocation succeeded: a delivery that got 503 leaves the `jti`
/// unspent, so the provider's retry of the same token is accepted. A second delivery of a
/// token already accepted gets 400; the revocation it asks for is applied again before the
/// replay is seen, which is harmless for a `sid` (the same session is revoked again) and, for
/// a `sub`-only token, revokes that user's tokens issued up to the replay (within the token's
/// short lifetime).
///
/// # Example
///
/// ```no_run
/// use axum::Router;
/// use tower_token_auth::dpop::RedisReplayStore;
/// use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
/// use tower_token_auth::sso::BackChannelLogout;
/// use tower_token_auth::{KeySet, Verifier};
/// # async fn run(jwks: tower_token_auth::keys::RemoteJwks) -> Result<(), Box<dyn std::error::Error>> {
///
/// // The provider's logout tokens: its issuer, this service's client_id, its JWK Set.
/// let verifier = Verifier::builder(KeySet::new())
///     .issuer("https://login.example")
///     .audience("orders-web")
///     .build_with_jwks(jwks)
///     .await?;
/// let store = RedisRevocationStore::connect("redis://127.0.0.1/", RedisStoreConfig::default()).await?;
/// let replay = RedisReplayStore::connect("redis://127.0.0.1/", "orders:", std::time::Duration::from_secs(1))?;
/// let logout = BackChannelLogout::new(verifier, store)?
///     .replay_store(replay)
///     .session_ttl(std::time::Duration::from_secs(12 * 60 * 60));
/// let app: Router = Router::new().route_service("/oidc/backchannel-logout", logout);
/// # let _ = app; Ok(()) }
/// ```
#[derive(Clone)]
pub struct BackChannelLogout {
    verifier: Verifier,
    store: Arc<dyn RevocationStore>,
    replay: Arc<dyn ReplayStore>,
    session_ttl: Duration,
    max_token_age: Duration,
    require_typ: bool,
    leeway: Duration,
    local_sessions: Option<TokenLifecycle>,
}

impl fmt::Debug for BackChannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackChannelLogout")
            .field("verifier", &self.verifier)
            .field("store", &self.store)
            .field("replay", &self.replay)
            .field("session_ttl", &self.session_ttl)
            .field("max_token_age", &self.max_token_age)
            .field("require_typ", &self.require_typ)
            .field("local_sessions", &self.local_sessions)
            .finish()
    }
}

impl BackChannelLogout {
    /// A receiver verifying logout tokens with `verifier` (built for the provider: its
    /// issuer, this service's client_id as audience, its keys) and revoking in `store`, with
    /// an in-memory replay store, a one-day [`session_ttl`](Self::session_ttl), a ten-minute
    /// [`max_token_age`](Self::max_token_age) and the verifier's leeway.
    ///
    /// Fails when `verifier` does not pin an issuer and an audience: it would accept logout
    /// tokens of any provider, or meant for any client.
    pub fn new<S: RevocationStore>(verifier: Verifier, store: S) -> Result<Self, ConfigError> {
        Self::with_shared_store(verifier, Arc::new(store))
    }

    /// [`new`](Self::new) with a store shared with other parts (e.g. the one
    /// [`JwtAuthLayer::revocation_store`](crate::JwtAuthLayer::revocation_store) checks).
    pub fn with_shared_store(
        verifier: Verifier,
        store: Arc<dyn RevocationStore>,
    ) -> Result<Self, ConfigError> {
        if !verifier.pins_issuer_and_audience() {
            return Err(ConfigError::new(
                "a back-channel logout verifier needs the provider's issuer and the client_id as audience",
            ));
        }
        let leeway = verifier.leeway();
        Ok(Self {
            verifier,
            store,
            replay: Arc::new(MemoryReplayStore::new()),
            session_ttl: DEFAULT_SESSION_TTL,
            max_token_age: DEFAULT_MAX_TOKEN_AGE,
            require_typ: false,
            // The replay record outlives `exp` by it.
            leeway,
            local_sessions: None,
        })
    }

    /// Where accepted `jti`s are remembered; share one store between every instance
    /// ([`RedisReplayStore`](crate::dpop::RedisReplayStore)). Its keys are SHA-256 digests
    /// under a tag of their own, so a store shared with DPoP proofs mixes nothing up.
    pub fn replay_store<R: ReplayStore>(mut self, replay: R) -> Self {
        self.replay = Arc::new(replay);
        self
    }

    /// How long a revocation is kept: the longest lifetime of the tokens or sessions the
    /// service issues (default one day). Every token of the session (or user) issued before
    /// the logout has expired by then.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl;
        self
    }

    /// Logout tokens issued (`iat`) longer ago than this, beyond the leeway, are refused
    /// (default ten minutes; providers are told to use lifetimes of at most two). This bounds
    /// how long a `jti` must be remembered whatever the token's `exp`.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = age;
        self
    }

    /// Refuse logout tokens without a header `typ` (`logout+jwt` is always required when a
    /// `typ` is present). Off by default: §2.4 says logout tokens SHOULD be typed.
    pub fn require_typ(mut self, require: bool) -> Self {
        self.require_typ = require;
        self
    }

    /// Also end the local sessions `OidcCallback` (feature `http-client`) started with
    /// `lifecycle`: a logout token with `sid` revokes the refresh family
    /// [`local_session_id`]`(iss, sid)` and its access tokens
    /// ([`TokenLifecycle::revoke_family`]), one with `sub` only every session of that user
    /// ([`TokenLifecycle::logout_everywhere`]). Refresh then stops working too. Done after
    /// the revocation in the store and before the `jti` is recorded; a failure answers 503,
    /// so the provider's retry finishes it.
    pub fn end_local_sessions(mut self, lifecycle: TokenLifecycle) -> Self {
        self.local_sessions = Some(lifecycle);
        self
    }

    /// Handles one request: what the [`Service`](tower_service::Service) implementation runs.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.process(req).await {
            Ok(()) => {
                let mut res = Response::new(Full::default());
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            Err(e) => e.response(),
        }
    }

    async fn process<B>(&self, req: Request<B>) -> Result<(), Refusal>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let token = read_logout_token(req).await?;
        let claims = self.validate(&token).await?;
        let now = now_secs();
        let keep_until = now.saturating_add(self.session_ttl.as_secs());
        let store = &self.store;
        let revoked = match (claims.sid.as_deref(), claims.sub.as_deref()) {
            (Some(sid), sub) => store.revoke_session(sub, sid, keep_until).await,
            (None, Some(sub)) => store.revoke_user(sub, now, keep_until).await,
            (None, None) => return Err(Refusal::invalid("logout token has neither sid nor sub")),
        };
        if let Err(e) = revoked {
            return Err(match e {
                RevocationError::Unsupported(_) | RevocationError::NotRevocable(_) => {
                    tracing::warn!(target: "tower_token_auth", error = %e,
                        "back-channel logout: the revocation store cannot end sessions");
                    Refusal::UNSUPPORTED
                }
                _ => {
                    tracing::warn!(target: "tower_token_auth", error = %e,
                        "back-channel logout: revocation failed");
                    Refusal::UNAVAILABLE
                }
            });
        }
        if let Some(lifecycle) = &self.local_sessions {
            let iss = claims.iss.as_deref().unwrap_or_default();
            let ended = match (claims.sid.as_deref(), claims.sub.as_deref()) {
                (Some(sid), sub) => {
                    lifecycle
                        .revoke_family(sub, &local_session_id(iss, sid))
                        .await
                }
                (None, Some(sub)) => lifecycle.logout_everywhere(sub).await,
                (None, None) => Ok(()),
            };
            if let Err(e) = ended {
                tracing::warn!(target: "tower_token_auth", error = %e,
                    "back-channel logout: ending the local sessions failed");
                return Err(Refusal::UNAVAILABLE);
            }
        }
        // After the revocation: a delivery answered 503 leaves its jti unspent for the retry.
        let (iss, jti, iat, exp) = (
            claims.iss.as_deref().unwrap_or_default(),
            claims.jti.as_deref().unwrap_or_default(),
            claims.iat.unwrap_or_default(),
            claims.exp.unwrap_or_default(),
        );
        let until = exp
            .min(iat.saturating_add(self.max_token_age.as_secs()))
            .saturating_add(self.leeway.as_secs());
        match self
            .replay
            .check_and_record(&jti_key(iss, jti), until)
            .resolve()
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::invalid("logout token replayed")),
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e,
                    "back-channel logout: replay store failed");
                Err(Refusal::UNAVAILABLE)
            }
        }
    }

    /// Verifies the token and checks what a logout token needs beyond a verified JWT.
    async fn validate(&self, token: &str) -> Result<ClaimSet<LogoutClaims>, Refusal> {
        let claims = match self
            .verifier
            .verification::<LogoutClaims>(token)
            .wait()
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                return Err(match e.kind() {
                    AuthErrorKind::InvalidToken(reason) => Refusal::invalid(describe(reason)),
                    _ if e.status() == StatusCode::SERVICE_UNAVAILABLE => Refusal::UNAVAILABLE,
                    _ => Refusal::invalid("invalid logout token"),
                });
            }
        };
        // Verified, so the header parses.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Refusal::invalid("malformed logout token"))?;
        match header.typ.as_deref() {
            Some(typ) => {
                let typ = typ.strip_prefix("application/").unwrap_or(typ);
                if !typ.eq_ignore_ascii_case("logout+jwt") {
                    return Err(Refusal::invalid("logout token typ must be logout+jwt"));
                }
            }
            None if self.require_typ => {
                return Err(Refusal::invalid("logout token typ must be logout+jwt"));
            }
            None => {}
        }
        let claims = claims.into_claim_set();
        let missing = |present: bool, what: &'static str| {
            if present {
                Ok(())
            } else {
                Err(Refusal::invalid(what))
            }
        };
        missing(claims.iss.is_some(), "logout token has no iss")?;
        missing(claims.aud.is_some(), "logout token has no aud")?;
        missing(claims.exp.is_some(), "logout token has no exp")?;
        missing(
            claims.jti.as_deref().is_some_and(|j| !j.is_empty()),
            "logout token has no jti",
        )?;
        let Some(iat) = claims.iat else {
            return Err(Refusal::invalid("logout token has no iat"));
        };
        let oldest = now_secs()
            .saturating_sub(self.max_token_age.as_secs())
            .saturating_sub(self.leeway.as_secs());
        missing(iat >= oldest, "logout token too old")?;
        missing(!claims.custom.nonce, "logout token must not have a nonce")?;
        let event_ok = claims
            .custom
            .events
            .as_ref()
            .and_then(|events| events.as_object())
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(serde_json::Value::is_object);
        missing(event_ok, "logout token has no back-channel logout event")?;
        let non_empty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        missing(
            non_empty(&claims.sid) || non_empty(&claims.sub),
            "logout token has neither sid nor sub",
        )?;
        if claims.sid.as_deref() == Some("") || claims.sub.as_deref() == Some("") {
            return Err(Refusal::invalid("logout token has an empty sid or sub"));
        }
        Ok(claims)
    }
}

/// The claims of a logout token beyond the registered ones.
#[derive(Debug, Clone, Deserialize)]
struct LogoutClaims {
    #[serde(default)]
    events: Option<serde_json::Value>,
    /// Whether a `nonce` member is present at all (even `null`).
    #[serde(default, deserialize_with = "present")]
    nonce: bool,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// The replay key of a logout token: SHA-256 over a tag, the issuer and the `jti`.
fn jti_key(iss: &str, jti: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"tower-token-auth backchannel-logout jti\0");
    hash.update(iss.as_bytes());
    hash.update([0]);
    hash.update(jti.as_bytes());
    hash.finalize().into()
}

fn describe(reason: &InvalidToken) -> &'static str {
    match reason {
        InvalidToken::TooLarge => "logout token too large",
        InvalidToken::Malformed => "malformed logout token",
        InvalidToken::UnknownKey | InvalidToken::AlgorithmMismatch | InvalidToken::BadSignature => {
            "logout token signature invalid"
        }
        InvalidToken::Expired => "logout token expired",
        InvalidToken::NotYetValid => "logout token not yet valid",
        InvalidToken::IssuedInFuture => "logout token issued in the future",
        InvalidToken::WrongIssuer => "logout token issuer invalid",
        InvalidToken::WrongAudience => "logout token audience invalid",
        InvalidToken::WrongType => "logout token typ must be logout+jwt",
        InvalidToken::MissingClaim(_) | InvalidToken::InvalidClaim(_) => {
            "logout token claim missing or invalid"
        }
        _ => "invalid logout token",
    }
}

/// Reads the one `logout_token` parameter of a form POST.
async fn read_logout_token<B>(req: Request<B>) -> Result<String, Refusal>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != Method::POST {
        return Err(Refusal::METHOD);
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Refusal::invalid(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_LOGOUT_BODY as u64) {
        return Err(Refusal::TOO_LARGE);
    }
    let body = match Limited::new(req.into_body(), MAX_LOGOUT_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(Refusal::TOO_LARGE),
        Err(_) => return Err(Refusal::invalid("request body unreadable")),
    };
    let mut token = None;
    for (name, value) in form_urlencoded::parse(&body) {
        if name == "logout_token" {
            if token.is_some() {
                return Err(Refusal::invalid("logout_token given more than once"));
            }
            token = Some(value.into_owned());
        }
    }
    match token {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(Refusal::invalid("missing logout_token")),
    }
}

/// A refused request: status, error code and a fixed description.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
}

impl Refusal {
    const METHOD: Self = Self {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "invalid_request",
        description: "use POST",
    };
    const TOO_LARGE: Self = Self {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "invalid_request",
        description: "request body larger than 16 KiB",
    };
    const UNSUPPORTED: Self = Self {
        status: StatusCode::NOT_IMPLEMENTED,
        code: "server_error",
        description: "this service cannot end the sessions a logout token names",
    };
    const UNAVAILABLE: Self = Self {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "temporarily_unavailable",
        description: "logout cannot be processed now, retry later",
    };

    const fn invalid(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            description,
        }
    }

    fn response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        res
    }
}

crate::handler_service::handler_service!(BackChannelLogout, read_body);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_keys_separate_issuers_and_jtis() {
        assert_eq!(jti_key("a", "b"), jti_key("a", "b"));
        assert_ne!(jti_key("a", "b"), jti_key("a", "c"));
        assert_ne!(jti_key("ab", "c"), jti_key("a", "bc"));
    }

    #[test]
    fn nonce_presence() {
        let c: LogoutClaims = serde_json::from_str(r#"{"nonce":null}"#).unwrap();
        assert!(c.nonce);
        let c: LogoutClaims = serde_json::from_str(r#"{"events":{}}"#).unwrap();
        assert!(!c.nonce);
    }
}
