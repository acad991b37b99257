//! Token verification: size cap, key selection by `kid`, pinned algorithm, signature, and the
//! time, issuer, audience and required-claim checks (the signature through `jsonwebtoken`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, decode_header};
use serde::de::DeserializeOwned;

use crate::claims::{ClaimSet, Claims, NoCustomClaims, Registered, check_times, scopes_from_claim};
use crate::error::{AuthError, AuthErrorKind, ConfigError, InvalidToken};
use crate::introspection::{Answer, Introspector, inactive, is_opaque};
use crate::keys::remote::{KeySourceError, RemoteJwks, RemoteKeys};
use crate::keys::{KeyHandle, KeySet, VerifyingKey};
use crate::revocation::{BoxFuture, now_secs};
use crate::token_cache::{Lookup, TokenCache};

/// A verification that finished now, or that needs I/O first (a JWK Set refetch for a `kid` the
/// keys do not have yet; later, introspection). The common case, keys at hand, is `Ready`
/// with no allocation; callers that can wait (the layer, the gateway) await `Pending`.
#[must_use]
pub enum Verification<T> {
    /// The answer.
    Ready(Result<Claims<T>, AuthError>),
    /// The answer once the I/O is done.
    Pending(BoxFuture<'static, Result<Claims<T>, AuthError>>),
}

impl<T> fmt::Debug for Verification<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(&r.as_ref().err()).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

impl<T> Verification<T> {
    /// Waits for the answer.
    pub async fn wait(self) -> Result<Claims<T>, AuthError> {
        match self {
            Self::Ready(r) => r,
            Self::Pending(f) => f.await,
        }
    }
}

/// The default cap on a token's length, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Claims the verifier can require. `exp` is required unless removed with
/// [`VerifierBuilder::require_claims`].
const KNOWN_CLAIMS: &[&str] = &[
    "exp", "nbf", "iat", "sub", "iss", "aud", "jti", "scope", "sid",
];

/// Verifies JWTs against a [`KeySet`]. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::Algorithm;
/// use tower_token_auth::{KeySet, Verifier, VerifyingKey};
///
/// let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &[7u8; 32])?)?;
/// let verifier = Verifier::builder(keys)
///     .issuer("https://auth.example")
///     .audience("orders")
///     .leeway(Duration::from_secs(30))
///     .require_claims(["exp", "sub", "jti"])
///     .build()?;
/// assert!(verifier.verify::<tower_token_auth::NoCustomClaims>("not.a.token").is_err());
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    keys: KeyHandle,
    params: Params,
    remote: Option<Arc<RemoteKeys>>,
    max_token_len: usize,
    require_iat: bool,
    require_jti: bool,
    require_scope: bool,
    require_sid: bool,
    typ: Option<String>,
    /// Read the scopes from this claim instead of `scope` (e.g. `scp`).
    scope_claim: Option<Box<str>>,
    cache: Option<TokenCache>,
    /// For an issuer router ([`Verifier::for_issuers`]): each issuer's own verifier.
    route: Option<std::collections::HashMap<String, Verifier>>,
    /// For an issuer router: the issuer's verifier that introspects opaque tokens, if one does.
    route_opaque: Option<Verifier>,
    /// Tokens introspected (RFC 7662) instead of verified with keys: opaque ones, or all.
    introspector: Option<(Introspector, Introspect)>,
}

/// Which tokens a verifier with an [`Introspector`] introspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Introspect {
    /// Tokens that are not a compact JWS; JWTs are verified with the keys.
    Opaque,
    /// Every token.
    All,
}

/// What every `Validation` is made of.
#[derive(Debug, Clone)]
struct Params {
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    required: Vec<String>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.inner.keys)
            .field("max_token_len", &self.inner.max_token_len)
            .field("typ", &self.inner.typ)
            .field("cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    keys: KeySet,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Duration,
    required: Vec<String>,
    max_token_len: usize,
    typ: Option<String>,
    cache_bytes: Option<usize>,
    remote: Option<RemoteJwks>,
    handle: Option<KeyHandle>,
    scope_claim: Option<String>,
    introspector: Option<(Introspector, Introspect)>,
}

impl VerifierBuilder {
    /// Accept tokens from this issuer (`iss` becomes required). May be called repeatedly.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// Accept tokens meant for this audience (`aud` becomes required). May be called
    /// repeatedly. Without any audience, tokens that carry an `aud` claim are refused
    /// (RFC 7519 §4.1.3).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s, at most five minutes:
    /// [`RECORD_GRACE`](crate::revocation::RECORD_GRACE), how long revocations outlive `exp`).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The claims a token must carry, replacing the default (`exp`). Known names: `exp`,
    /// `nbf`, `iat`, `sub`, `iss`, `aud`, `jti`, `scope`, `sid`.
    pub fn require_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Tokens longer than `len` bytes are refused before any parsing (default 8 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Require the JOSE header `typ` to be this value, e.g. `at+jwt` for RFC 9068 access
    /// tokens (compared case-insensitively, with or without the `application/` prefix).
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Read the token's scopes from claim `name` instead of `scope`: `scp` for Okta and
    /// Entra ID access tokens. The claim may be a space-separated string or a JSON array of
    /// strings; [`ClaimSet::scope`](crate::ClaimSet::scope) (and so [`has_scope`](crate::ClaimSet::has_scope),
    /// [`require_scope`](crate::ClaimSet::require_scope) and
    /// [`RequireScopeLayer`](crate::RequireScopeLayer)) then holds its scopes, and a `scope`
    /// claim in the token is ignored. `require_claims(["scope"])` requires this claim.
    ///
    /// ```
    /// # use tower_token_auth::{KeySet, Verifier, VerifyingKey, Algorithm};
    /// # let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &[7u8; 32])?)?;
    /// let verifier = Verifier::builder(keys)
    ///     .issuer("https://login.example/tenant/v2.0")
    ///     .audience("api://orders")
    ///     .scope_claim("scp")
    ///     .build()?;
    /// # let _ = verifier;
    /// # Ok::<_, tower_token_auth::ConfigError>(())
    /// ```
    ///
    /// Fails at [`build`](Self::build) when `name` is empty or another registered claim
    /// (`sub`, `exp`, `aud`, …).
    pub fn scope_claim(mut self, name: impl Into<String>) -> Self {
        self.scope_claim = Some(name.into());
        self
    }

    /// Remember verified tokens, up to `max_bytes` of memory (token length plus 256 bytes
    /// each), so a token seen before skips signature verification. `exp` and `nbf` are still
    /// checked on every request, and the layer still checks revocation. This makes RS256,
    /// ES256 and EdDSA cost about as much as a hash lookup on repeat requests. Off by default;
    /// 16 MiB holds some 40 000 typical tokens.
    pub fn verified_token_cache(mut self, max_bytes: usize) -> Self {
        self.cache_bytes = Some(max_bytes);
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        self.validate_keys()?;
        // Revocation records outlive their token's `exp` by RECORD_GRACE: a longer leeway
        // would admit revoked tokens once their record is gone.
        if self.leeway > crate::revocation::RECORD_GRACE {
            return Err(ConfigError::new(
                "leeway above five minutes (revocation::RECORD_GRACE)",
            ));
        }
        if self.max_token_len == 0 {
            return Err(ConfigError::new("max_token_len must be positive"));
        }
        let mut required = self.required;
        for claim in &required {
            if !KNOWN_CLAIMS.contains(&claim.as_str()) {
                return Err(ConfigError::new(format!(
                    "unknown claim `{claim}` in require_claims"
                )));
            }
        }
        if !self.issuers.is_empty() {
            required.push("iss".into());
        }
        if !self.audiences.is_empty() {
            required.push("aud".into());
        }
        let scope_claim = match self.scope_claim.as_deref() {
            None | Some("scope") => None,
            Some("") => return Err(ConfigError::new("scope_claim is empty")),
            Some(name) if KNOWN_CLAIMS.contains(&name) || name == "amr" => {
                return Err(ConfigError::new(format!(
                    "scope_claim `{name}` is a registered claim, not a scope claim"
                )));
            }
            Some(name) => Some(Box::from(name)),
        };
        let has = |c: &str| required.iter().any(|r| r == c);
        let (require_iat, require_jti, require_scope, require_sid) =
            (has("iat"), has("jti"), has("scope"), has("sid"));
        let params = Params {
            issuers: self.issuers,
            audiences: self.audiences,
            leeway: self.leeway,
            required,
        };
        let handle = match self.handle {
            Some(handle) => handle,
            None => KeyHandle::new(self.keys.clone()),
        };
        let remote = self
            .remote
            .map(|source| RemoteKeys::new(source, handle.clone(), self.keys));
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: handle,
                params,
                remote,
                max_token_len: self.max_token_len,
                require_iat,
                require_jti,
                require_scope,
                require_sid,
                typ: self.typ,
                scope_claim,
                cache: self
                    .cache_bytes
                    .map(|bytes| TokenCache::new(bytes, self.leeway.as_secs())),
                route: None,
                route_opaque: None,
                introspector: self.introspector,
            }),
        })
    }

    /// Read the keys through `handle`, shared with whatever feeds it, instead of a handle of
    /// the verifier's own over the builder's keys (which are then ignored).
    pub fn key_handle(mut self, handle: KeyHandle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Builds a verifier whose keys come from a remote JWK Set, beside the static keys given
    /// to [`Verifier::builder`] (a static key wins over a fetched one with the same `kid`):
    /// fetched now (an error if that fails), refreshed in the background (needs a Tokio
    /// runtime), refetched for unknown `kid`s.
    pub async fn build_with_jwks(mut self, source: RemoteJwks) -> Result<Verifier, KeySourceError> {
        self.remote = Some(source);
        let verifier = self.build()?;
        if let Some(remote) = &verifier.inner.remote {
            remote.refresh().await?;
            RemoteKeys::spawn_refresh_loop(remote);
        }
        Ok(verifier)
    }

    /// Like [`build_with_jwks`](Self::build_with_jwks), but without waiting for the first
    /// fetch, so the application comes up while the JWK Set endpoint is down: fetched at once
    /// in the background and retried with backoff until it succeeds. Until then, a token that
    /// needs a remote key gets 503 `temporarily_unavailable` with `Retry-After`
    /// ([`AuthErrorKind::KeysUnavailable`]); static keys verify from the start. Must be called
    /// within a Tokio runtime.
    pub fn build_with_jwks_lazy(mut self, source: RemoteJwks) -> Result<Verifier, ConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::new(
                "build_with_jwks_lazy needs a Tokio runtime to fetch in the background",
            ));
        }
        self.remote = Some(source);
        let verifier = self.build()?;
        if let Some(remote) = &verifier.inner.remote {
            RemoteKeys::spawn_refresh_loop(remote);
        }
        Ok(verifier)
    }

    /// Opaque tokens (anything but a compact JWS) are verified by `introspector` (RFC 7662,
    /// see [`introspection`](crate::introspection)); JWTs are still verified with the keys.
    /// The verifier's rules (issuer, audience, required claims, times, scope claim) apply
    /// to the introspection answer as to a JWT's claims. With no keys at all, every JWT is
    /// refused ("unknown signing key").
    pub fn introspect_opaque_tokens(mut self, introspector: Introspector) -> Self {
        self.introspector = Some((introspector, Introspect::Opaque));
        self
    }

    /// Every token is verified by `introspector`, JWTs too (for an authorization server
    /// whose JWT access tokens must be checked for revocation there); the keys are not used.
    pub fn introspect_all_tokens(mut self, introspector: Introspector) -> Self {
        self.introspector = Some((introspector, Introspect::All));
        self
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        if self.introspector.is_some() {
            return Ok(());
        }
        if self.keys.is_empty() && self.remote.is_none() {
            return Err(ConfigError::new("the key set is empty"));
        }
        Ok(())
    }
}

impl Verifier {
    /// Starts a builder over `keys`, with a 30 s leeway, `exp` required and an 8 KiB cap.
    pub fn builder(keys: KeySet) -> VerifierBuilder {
        VerifierBuilder {
            keys,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            required: vec!["exp".into()],
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            typ: None,
            cache_bytes: None,
            remote: None,
            handle: None,
            scope_claim: None,
            introspector: None,
        }
    }

    /// A verifier for tokens of several issuers (multi-tenant services, or a move from one
    /// identity provider to another): each token goes to the verifier of the issuer its `iss`
    /// names, with that issuer's own keys, audience and rules. The `iss` is read before
    /// verification only to pick the verifier, which then checks it like any claim; a token
    /// naming no listed issuer is refused (401 `invalid_token`, "invalid issuer").
    ///
    /// Each verifier must accept exactly one issuer ([`VerifierBuilder::issuer`] called once),
    /// and no two the same one.
    ///
    /// ```
    /// use jsonwebtoken::Algorithm;
    /// use tower_token_auth::{KeySet, Verifier, VerifyingKey};
    ///
    /// let keys = |b| KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &[b; 32]).unwrap()).unwrap();
    /// let acme = Verifier::builder(keys(1)).issuer("https://acme.auth.example").audience("api").build()?;
    /// let globex = Verifier::builder(keys(2)).issuer("https://login.globex.example").audience("api").build()?;
    /// let verifier = Verifier::for_issuers([acme, globex])?;
    /// # let _ = verifier;
    /// # Ok::<_, tower_token_auth::ConfigError>(())
    /// ```
    pub fn for_issuers<I: IntoIterator<Item = Verifier>>(
        verifiers: I,
    ) -> Result<Verifier, ConfigError> {
        let mut route = std::collections::HashMap::new();
        let mut max_token_len = 0;
        for v in verifiers {
            if v.inner.route.is_some() {
                return Err(ConfigError::new("issuer routers cannot be nested"));
            }
            let [issuer] = v.inner.params.issuers.as_slice() else {
                return Err(ConfigError::new(
                    "each verifier of an issuer router must accept exactly one issuer",
                ));
            };
            max_token_len = max_token_len.max(v.inner.max_token_len);
            if route.insert(issuer.clone(), v.clone()).is_some() {
                return Err(ConfigError::new(format!("issuer `{issuer}` listed twice")));
            }
        }
        if route.is_empty() {
            return Err(ConfigError::new(
                "an issuer router needs at least one verifier",
            ));
        }
        // An opaque token names no issuer: at most one issuer may introspect them.
        let mut introspecting = route.values().filter(|v| v.inner.introspector.is_some());
        let route_opaque = introspecting.next().cloned();
        if introspecting.next().is_some() {
            return Err(ConfigError::new(
                "only one verifier of an issuer router may introspect tokens (an opaque token names no issuer)",
            ));
        }
        let params = Params {
            issuers: route.keys().cloned().collect(),
            audiences: Vec::new(),
            leeway: Duration::ZERO,
            required: Vec::new(),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: KeyHandle::new(KeySet::new()),
                params,
                remote: None,
                max_token_len,
                require_iat: false,
                require_jti: false,
                require_scope: false,
                require_sid: false,
                typ: None,
                cache: None,
                scope_claim: None,
                route: Some(route),
                route_opaque,
                introspector: None,
            }),
        })
    }

    /// For an issuer router: the verifier of the issuer `token` names, read unverified.
    fn route(&self, token: &str) -> Result<Option<&Verifier>, AuthError> {
        let Some(route) = &self.inner.route else {
            return Ok(None);
        };
        if let Some(v) = &self.inner.route_opaque
            && is_opaque(token)
        {
            return Ok(Some(v));
        }
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let payload = payload_bytes(token)
            .ok_or_else(|| AuthError::invalid_token(InvalidToken::Malformed))?;
        let iss = serde_json::from_slice::<Iss>(&payload)
            .map_err(|_| AuthError::invalid_token(InvalidToken::Malformed))?
            .iss;
        iss.and_then(|iss| route.get(&iss))
            .map(Some)
            .ok_or_else(|| AuthError::invalid_token(InvalidToken::WrongIssuer))
    }

    /// The configured cap on a token's length.
    pub fn max_token_len(&self) -> usize {
        self.inner.max_token_len
    }

    /// Verifies `token` and returns its claims.
    ///
    /// Checks, in order: length cap, header, key by `kid`, the key's pinned algorithm, `typ`,
    /// signature, `exp`/`nbf` with leeway, `iss`, `aud`, `iat` not in the future (beyond the
    /// leeway), and the required claims. NumericDates may have fractions (`exp` counts as the
    /// whole second before it, `nbf` as the one after); scopes may be a string or an array, in
    /// `scope` or the [configured claim](VerifierBuilder::scope_claim). Revocation is
    /// not checked here; [`JwtAuthLayer`](crate::JwtAuthLayer) does it after these pass.
    ///
    /// With the [verified-token cache](VerifierBuilder::verified_token_cache), a token verified
    /// before is answered from the cache after its `exp` and `nbf` are checked again.
    pub fn verify<T>(&self, token: &str) -> Result<Claims<T>, AuthError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.verify_shared(token)
    }

    /// Verifies `token`, waiting for the keys when it needs to: a token naming a `kid` the
    /// keys lack, with a remote JWK Set, waits for the (single-flight, rate-limited) refetch
    /// and is verified again with what it brought. Every other answer is `Ready`. This is what
    /// [`JwtAuthLayer`](crate::JwtAuthLayer) calls.
    pub fn verification<T>(&self, token: &str) -> Verification<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if token.len() > self.inner.max_token_len {
            return Verification::Ready(Err(AuthError::invalid_token(InvalidToken::TooLarge)));
        }
        match self.route(token) {
            Ok(Some(verifier)) => return verifier.verification(token),
            Ok(None) => {}
            Err(e) => return Verification::Ready(Err(e)),
        }
        if let Some(introspector) = self.introspects(token) {
            return self.introspection(introspector, token);
        }
        match self.verify_shared::<T>(token) {
            Err(e)
                if matches!(
                    e.kind(),
                    AuthErrorKind::InvalidToken(InvalidToken::UnknownKey)
                ) && self.has_remote_keys() =>
            {
                let this = self.clone();
                let token = token.to_owned();
                Verification::Pending(Box::pin(async move {
                    // Without a refetch (rate limit, failed fetch), verifying again finds the
                    // key still unknown: the same answer as with static keys.
                    let _ = this.refetch_for_unknown_kid(&token).await;
                    this.verify_shared::<T>(&token)
                }))
            }
            answer => Verification::Ready(answer),
        }
    }

    /// [`verify`](Self::verify): the claims, shared with the verified-token cache.
    fn verify_shared<T>(&self, token: &str) -> Result<Claims<T>, AuthError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        if token.len() > inner.max_token_len {
            return Err(AuthError::invalid_token(InvalidToken::TooLarge));
        }
        if let Some(verifier) = self.route(token)? {
            return verifier.verify_shared(token);
        }
        if let Some(introspector) = self.introspects(token) {
            // No waiting here: the cached answer, or "cannot check now".
            let now = now_secs();
            return match introspector.cached(&Introspector::key(token), now) {
                Some(answer) => self.claims_of_answer(answer, now),
                None => Err(AuthError::new(AuthErrorKind::IntrospectionUnavailable)),
            };
        }
        let Some(cache) = &inner.cache else {
            return self
                .verify_with(&inner.keys.load().keys, token, now_secs())
                .map(Claims::from);
        };
        let now = now_secs();
        // The keys first: the claims are cached under the generation they were verified with.
        let keys = inner.keys.load();
        if let Lookup::Hit(hit) = cache.get::<T>(token, now, keys.generation) {
            return hit;
        }
        let claims = Arc::new(self.verify_with::<T>(&keys.keys, token, now)?);
        cache.insert(token, &claims, now, keys.generation);
        Ok(Claims::from(claims))
    }

    /// The introspector that verifies `token`, if this verifier introspects it.
    fn introspects(&self, token: &str) -> Option<&Introspector> {
        match &self.inner.introspector {
            Some((i, Introspect::All)) => Some(i),
            Some((i, Introspect::Opaque)) if is_opaque(token) => Some(i),
            _ => None,
        }
    }

    /// Verification by introspection: a cached answer now, else one request (shared by
    /// every request waiting for the same token).
    fn introspection<T>(&self, introspector: &Introspector, token: &str) -> Verification<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let key = Introspector::key(token);
        let now = now_secs();
        if let Some(answer) = introspector.cached(&key, now) {
            return Verification::Ready(self.claims_of_answer(answer, now));
        }
        let this = self.clone();
        let introspector = introspector.clone();
        let token = token.to_owned();
        Verification::Pending(Box::pin(async move {
            let answer = introspector.answer(&token, key).await?;
            this.claims_of_answer(answer, now_secs())
        }))
    }

    /// The claims of an introspection answer, checked with this verifier's rules.
    fn claims_of_answer<T>(&self, answer: Answer, now: u64) -> Result<Claims<T>, AuthError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let active = match answer {
            Answer::Active(active) => active,
            Answer::Inactive => return Err(inactive()),
            Answer::Invalid(why) => {
                return Err(AuthError::invalid_token(InvalidToken::InvalidClaim(
                    why.to_string(),
                )));
            }
        };
        // Times on every use; issuer and audience are the same each time and cheap.
        self.validate(&active.registered, now)?;
        if let Some(typed) = active.typed.get()
            && let Ok(claims) = typed.clone().downcast::<ClaimSet<T>>()
        {
            return Ok(Claims::from(claims));
        }
        let custom = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<NoCustomClaims>() {
            serde_json::from_slice::<T>(b"{}")
        } else {
            serde_json::from_slice::<T>(&active.body)
        }
        .map_err(|e| AuthError::invalid_token(InvalidToken::InvalidClaim(e.to_string())))?;
        let claims =
            Arc::new(self.complete(active.registered.clone(), custom, &active.body, now)?);
        // The first claims type asking keeps its claims with the answer.
        let _ = active.typed.set(claims.clone());
        Ok(Claims::from(claims))
    }

    /// Replaces the keys (an application rotating its own keys, for instance). The
    /// verified-token cache follows: tokens verified with keys that changed are verified
    /// again; publishing the same keys again changes nothing. An issuer router has no keys of
    /// its own: set them on each issuer's verifier.
    pub fn set_keys(&self, keys: &KeySet) {
        self.inner.keys.publish(keys.clone());
    }

    /// The handle this verifier reads its keys through (for an issuer router, an empty one:
    /// each issuer's verifier has its own).
    pub fn key_handle(&self) -> &KeyHandle {
        &self.inner.keys
    }

    /// The `kid`s of the keys in use (the key without `kid` is not listed); for an issuer
    /// router, those of every issuer.
    pub fn kids(&self) -> Vec<String> {
        match &self.inner.route {
            Some(route) => {
                let mut kids: Vec<String> = route.values().flat_map(Verifier::kids).collect();
                kids.sort();
                kids
            }
            None => self.inner.keys.kids(),
        }
    }

    /// Fetches the remote JWK Set now and uses it; returns whether the keys changed. On error
    /// the current keys stay. Does nothing for a verifier with static keys only; an issuer
    /// router refreshes every issuer's.
    pub async fn refresh_keys(&self) -> Result<bool, KeySourceError> {
        if let Some(route) = &self.inner.route {
            let mut changed = false;
            for v in route.values() {
                changed |= Box::pin(v.refresh_keys()).await?;
            }
            return Ok(changed);
        }
        match &self.inner.remote {
            Some(remote) => remote.refresh().await,
            None => Ok(false),
        }
    }

    /// Whether every token must name a configured issuer and audience (an issuer router pins
    /// them per issuer).
    pub(crate) fn pins_issuer_and_audience(&self) -> bool {
        match &self.inner.route {
            Some(route) => route.values().all(Verifier::pins_issuer_and_audience),
            None => {
                !self.inner.params.issuers.is_empty() && !self.inner.params.audiences.is_empty()
            }
        }
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (the largest of an issuer router's).
    pub(crate) fn leeway(&self) -> Duration {
        match &self.inner.route {
            Some(route) => route
                .values()
                .map(Verifier::leeway)
                .max()
                .unwrap_or(self.inner.params.leeway),
            None => self.inner.params.leeway,
        }
    }

    /// Whether the keys come (also) from a remote JWK Set.
    pub(crate) fn has_remote_keys(&self) -> bool {
        match &self.inner.route {
            Some(route) => route.values().any(Verifier::has_remote_keys),
            None => self.inner.remote.is_some(),
        }
    }

    /// For a token whose `kid` is unknown: waits for the refetch in flight or starts one
    /// (rate-limited). Returns whether it is worth verifying again.
    pub(crate) async fn refetch_for_unknown_kid(&self, token: &str) -> bool {
        if let Ok(Some(verifier)) = self.route(token) {
            return Box::pin(verifier.refetch_for_unknown_kid(token)).await;
        }
        let Some(remote) = &self.inner.remote else {
            return false;
        };
        let kid = decode_header(token).ok().and_then(|h| h.kid);
        remote.refetch_for_unknown_kid(kid.as_deref()).await
    }

    /// Bytes held by the verified-token cache (0 without one; for an issuer router, the sum
    /// of every issuer's).
    pub fn cached_bytes(&self) -> usize {
        match &self.inner.route {
            Some(route) => route.values().map(Verifier::cached_bytes).sum(),
            None => self.inner.cache.as_ref().map_or(0, TokenCache::bytes),
        }
    }

    fn verify_with<T: DeserializeOwned + 'static>(
        &self,
        keys: &KeySet,
        token: &str,
        now: u64,
    ) -> Result<ClaimSet<T>, AuthError> {
        // The header is parsed once, here; jsonwebtoken's `decode` would parse it twice and
        // read the claims twice (once for its own checks), which the registered claims
        // below make unnecessary.
        let (key, alg) = self.select(keys, token)?;
        let malformed = || AuthError::invalid_token(InvalidToken::Malformed);
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (_, payload) = message.rsplit_once('.').ok_or_else(malformed)?;
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.key, alg) {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::invalid_token(InvalidToken::BadSignature)),
            Err(e) => return Err(map_error(token, e.into_kind())),
        }
        let payload = decode_segment(payload).ok_or_else(malformed)?;
        let registered = serde_json::from_slice::<Registered>(&payload)
            .map_err(|e| map_error(token, ErrorKind::Json(Arc::new(e))))?;
        self.validate(&registered, now)?;
        let custom = custom_claims::<T>(token, &payload)?;
        self.complete(registered, custom, &payload, now)
    }

    /// The claims set of claims that passed [`validate`](Self::validate): the scope from
    /// the configured claim, `iat` not in the future, and the claims required besides those
    /// `validate` checks.
    fn complete<T>(
        &self,
        registered: Registered,
        custom: T,
        payload: &[u8],
        now: u64,
    ) -> Result<ClaimSet<T>, AuthError> {
        let inner = &*self.inner;
        let mut claims = registered.with(custom);
        let leeway = inner.params.leeway.as_secs();
        if let Some(name) = &inner.scope_claim {
            claims.scope = scopes_from_claim(payload, name)
                .map_err(|why| AuthError::invalid_token(InvalidToken::InvalidClaim(why)))?;
        }
        // A token "issued" later than now (beyond the leeway) would outlive a user-wide
        // revocation, which refuses tokens issued at or before its instant (RFC 8725 §3.10).
        let latest = now.saturating_add(leeway);
        if claims.iat.is_some_and(|iat| iat > latest) {
            return Err(AuthError::invalid_token(InvalidToken::IssuedInFuture));
        }
        for (required, present, name) in [
            (inner.require_iat, claims.iat.is_some(), "iat"),
            (inner.require_jti, claims.jti.is_some(), "jti"),
            (
                inner.require_scope,
                claims.scope.is_some(),
                inner.scope_claim.as_deref().unwrap_or("scope"),
            ),
            (inner.require_sid, claims.sid.is_some(), "sid"),
        ] {
            if required && !present {
                return Err(AuthError::invalid_token(InvalidToken::MissingClaim(
                    name.into(),
                )));
            }
        }
        Ok(claims)
    }

    /// The checks of the registered claims, in the order and with the answers of
    /// jsonwebtoken's own validation (which `decode` would run on a second read of the
    /// claims): the required claims present, `exp` and `nbf` with the leeway (on the whole
    /// seconds `ClaimSet` holds: `exp` rounded down, `nbf` up, as the verified-token cache
    /// checks them), `iss` one of the issuers, and `aud`, when present, naming one of the
    /// audiences (so never passing a verifier without audiences).
    fn validate(&self, claims: &Registered, now: u64) -> Result<(), AuthError> {
        let params = &self.inner.params;
        for name in &params.required {
            let present = match name.as_str() {
                "exp" => claims.exp.is_some(),
                "nbf" => claims.nbf.is_some(),
                "sub" => claims.sub.is_some(),
                "iss" => claims.iss.is_some(),
                "aud" => claims.aud.is_some(),
                // iat, jti, scope, sid: checked after, on the claims set.
                _ => continue,
            };
            if !present {
                return Err(AuthError::invalid_token(InvalidToken::MissingClaim(
                    name.clone(),
                )));
            }
        }
        check_times(claims.exp, claims.nbf, now, params.leeway.as_secs())?;
        if let Some(iss) = &claims.iss
            && !params.issuers.is_empty()
            && !params.issuers.iter().any(|i| i == iss)
        {
            return Err(AuthError::invalid_token(InvalidToken::WrongIssuer));
        }
        let audience_ok = match &claims.aud {
            None => true,
            // Without a configured audience, a token with an `aud` claim (even `[]`) is not
            // for this verifier.
            Some(aud) => params.audiences.iter().any(|a| aud.contains(a)),
        };
        if !audience_ok {
            return Err(AuthError::invalid_token(InvalidToken::WrongAudience));
        }
        Ok(())
    }

    /// Parses the header and picks the key: by `kid` (or the one fitting key for a token
    /// without), an algorithm the key allows, `crit`, `typ`.
    fn select<'k>(
        &self,
        keys: &'k KeySet,
        token: &str,
    ) -> Result<(&'k VerifyingKey, Algorithm), AuthError> {
        let header =
            decode_header(token).map_err(|_| AuthError::invalid_token(InvalidToken::Malformed))?;
        let key = match header.kid.as_deref() {
            Some(kid) => keys.get(Some(kid)),
            None => keys.for_token_without_kid(header.alg),
        }
        .ok_or_else(|| self.unknown_key())?;
        if !key.allows(header.alg) {
            return Err(AuthError::invalid_token(InvalidToken::AlgorithmMismatch));
        }
        self.check_header(&header)?;
        Ok((key, header.alg))
    }

    /// No key for the token: unknown, or, while the remote JWK Set has no usable keys (not
    /// fetched yet, or past its maximum staleness), unavailable (503).
    fn unknown_key(&self) -> AuthError {
        match &self.inner.remote {
            Some(remote) if !remote.usable() => AuthError::new(AuthErrorKind::KeysUnavailable),
            _ => AuthError::invalid_token(InvalidToken::UnknownKey),
        }
    }

    fn check_header(&self, header: &jsonwebtoken::Header) -> Result<(), AuthError> {
        // No extension this verifier understands may be marked critical (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err(AuthError::invalid_token(InvalidToken::Malformed));
        }
        if let Some(want) = &self.inner.typ {
            let ok = header.typ.as_deref().is_some_and(|t| {
                let t = t.strip_prefix("application/").unwrap_or(t);
                t.eq_ignore_ascii_case(want)
            });
            if !ok {
                return Err(AuthError::invalid_token(InvalidToken::WrongType));
            }
        }
        Ok(())
    }
}

/// The application's claims `T` of a token whose signature and registered claims passed: read
/// from the payload on their own, so the registered claims are not deserialized twice and a
/// large token's other claims are skipped, not buffered. Nothing to read for
/// [`NoCustomClaims`].
fn custom_claims<T: DeserializeOwned + 'static>(
    token: &str,
    payload: &[u8],
) -> Result<T, AuthError> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<NoCustomClaims>() {
        return serde_json::from_slice(b"{}")
            .map_err(|_| AuthError::invalid_token(InvalidToken::Malformed));
    }
    serde_json::from_slice(payload).map_err(|e| map_error(token, ErrorKind::Json(Arc::new(e))))
}

/// Whether the token's payload is a JSON object (RFC 7519 §7.2: the claims set must be one).
/// Only asked on the error path, to tell a malformed token from claims of another shape.
fn payload_is_object(token: &str) -> bool {
    payload_bytes(token)
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.is_object())
}

/// The decoded payload (second segment) of a compact JWS, if it is base64url.
fn payload_bytes(token: &str) -> Option<Vec<u8>> {
    decode_segment(token.split('.').nth(1)?)
}

/// A base64url segment (no padding, as RFC 7515 §2 writes them, and as jsonwebtoken reads
/// them), decoded.
fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

fn map_error(token: &str, kind: ErrorKind) -> AuthError {
    let reason = match kind {
        ErrorKind::InvalidSignature => InvalidToken::BadSignature,
        ErrorKind::ExpiredSignature => InvalidToken::Expired,
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidToken::WrongIssuer,
        ErrorKind::InvalidAudience => InvalidToken::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            InvalidToken::AlgorithmMismatch
        }
        ErrorKind::MissingRequiredClaim(c) => InvalidToken::MissingClaim(c),
        ErrorKind::InvalidClaimFormat(c) => InvalidToken::InvalidClaim(c),
        // Well-formed JSON that does not fit the claims type (a field of the application's
        // claims missing or of another type): a claim problem, not a malformed token. The
        // field is named in the error's `Display` (logged), never in the response.
        // A member named twice stays a malformed token (RFC 7519 §4: names must be unique).
        ErrorKind::Json(e)
            if e.classify() == serde_json::error::Category::Data
                && !e.to_string().starts_with("duplicate field")
                && payload_is_object(token) =>
        {
            InvalidToken::InvalidClaim(e.to_string())
        }
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => {
            tracing::warn!(target: "tower_token_auth", "key could not verify a token: {kind:?}");
            InvalidToken::BadSignature
        }
        _ => InvalidToken::Malformed,
    };
    AuthError::invalid_token(reason)
}

/// Discovery (feature `http-client`): the verifier reads `keys`, never the other way round.
#[cfg(feature = "http-client")]
impl VerifierBuilder {
    /// Discovers `issuer` ([`Discovery::fetch`](crate::keys::Discovery::fetch)), accepts tokens from it (as
    /// [`issuer`](Self::issuer)) and builds with its JWK Set (as
    /// [`build_with_jwks`](Self::build_with_jwks)): fails if the issuer cannot be reached,
    /// its metadata names another issuer, or its JWK Set has no usable key.
    ///
    /// ```no_run
    /// use tower_token_auth::{KeySet, Verifier};
    ///
    /// # async fn run() -> Result<(), tower_token_auth::keys::DiscoveryError> {
    /// let verifier = Verifier::builder(KeySet::new())
    ///     .audience("api://orders")
    ///     .discover("https://login.microsoftonline.com/TENANT/v2.0")
    ///     .await?;
    /// # let _ = verifier; Ok(()) }
    /// ```
    pub async fn discover(self, issuer: &str) -> Result<Verifier, crate::keys::DiscoveryError> {
        let metadata = crate::keys::Discovery::fetch(issuer).await?;
        let jwks = metadata.remote_jwks()?;
        Ok(self.issuer(metadata.issuer()).build_with_jwks(jwks).await?)
    }

    /// Like [`discover`](Self::discover), but comes up without waiting for the issuer
    /// ([`RemoteJwks::from_issuer`] and [`build_with_jwks_lazy`](Self::build_with_jwks_lazy)):
    /// discovery and the first JWK Set fetch happen in the background, retried with backoff;
    /// until they succeed, tokens get 503 `temporarily_unavailable`. Fails only on an unusable
    /// issuer URL or outside a Tokio runtime.
    pub fn discover_lazy(self, issuer: &str) -> Result<Verifier, ConfigError> {
        let jwks = RemoteJwks::from_issuer(issuer)?;
        self.issuer(issuer).build_with_jwks_lazy(jwks)
    }
}
