//! Typed claims: the registered JWT claims plus the application's own.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::authentication::Authentication;
use crate::error::{AuthError, InvalidToken};
use crate::revocation::TokenRef;

/// The claims of a verified token: a shared handle to its [`ClaimSet<T>`], read through
/// `Deref` (`claims.sub`, `claims.has_scope("read")`, `claims.custom.tenant`).
///
/// Cloning is a reference-count increment: [`JwtAuthLayer`](crate::JwtAuthLayer) shares one
/// claims set between the verified-token cache, the request and every extractor, so taking
/// `Claims<T>` in an axum handler (feature `axum`) copies nothing. It serializes as the claims
/// set itself (`Json(claims)` answers the token's claims), and assigning a field
/// (`claims.sub = Some(..)`, for tests and for code that builds claims) copies the set first
/// when it is shared.
///
/// Code without axum reads it with [`Claims::from_extensions`].
///
/// ```
/// use serde::Deserialize;
/// use tower_token_auth::Claims;
///
/// #[derive(Clone, Deserialize)]
/// struct Tenant {
///     tenant: String,
/// }
///
/// let json = r#"{"sub":"alice","exp":2000000000,"scope":"read write","tenant":"acme"}"#;
/// let claims: Claims<Tenant> = serde_json::from_str(json).unwrap();
/// assert_eq!(claims.sub.as_deref(), Some("alice"));
/// assert!(claims.has_scope("write"));
/// assert_eq!(claims.custom.tenant, "acme");
/// ```
pub struct Claims<T = NoCustomClaims>(Arc<ClaimSet<T>>);

impl<T> Clone for Claims<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::ops::Deref for Claims<T> {
    type Target = ClaimSet<T>;

    fn deref(&self) -> &ClaimSet<T> {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Claims<T> {
    /// Copies the claims set first when it is shared (`Arc::make_mut`).
    fn deref_mut(&mut self) -> &mut ClaimSet<T> {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: fmt::Debug> fmt::Debug for Claims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Claims<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Serialize> Serialize for Claims<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Claims<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ClaimSet::deserialize(d).map(Self::from)
    }
}

impl<T> From<ClaimSet<T>> for Claims<T> {
    fn from(set: ClaimSet<T>) -> Self {
        Self(Arc::new(set))
    }
}

impl<T> From<Arc<ClaimSet<T>>> for Claims<T> {
    fn from(set: Arc<ClaimSet<T>>) -> Self {
        Self(set)
    }
}

impl<T> Claims<T> {
    /// Claims with only the application's own part set; assign the registered ones as
    /// needed (`claims.sub = Some(..)`). For tests and for code that builds claims itself.
    pub fn new(custom: T) -> Self {
        ClaimSet::new(custom).into()
    }

    /// The shared claims set.
    pub fn shared(&self) -> &Arc<ClaimSet<T>> {
        &self.0
    }

    /// The shared claims set, taken out of the handle.
    pub(crate) fn into_shared(self) -> Arc<ClaimSet<T>> {
        self.0
    }

    /// The claims set, copied only when it is shared.
    pub fn into_claim_set(self) -> ClaimSet<T>
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.0)
    }
}

impl<T: Send + Sync + 'static> Claims<T> {
    /// The claims [`JwtAuthLayer`](crate::JwtAuthLayer) (or
    /// [`RememberMeLayer`](crate::remember_me::RememberMeLayer)) put into these request
    /// extensions, when the request is authenticated and the layer decodes `T`. What the axum
    /// extractor reads; for tower and hyper services.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        extensions.get::<Authentication>()?.claims()
    }
}

/// A JWT Claims Set (RFC 7519 §2): the registered claims (RFC 7519 §4.1, plus OAuth `scope`,
/// OpenID Connect `sid` and RFC 8176 `amr`) and the application's own claims `T`, flattened
/// into the same JSON object.
///
/// Verified tokens come as [`Claims<T>`], a cheap shared handle that derefs to this: read the
/// fields through it (`claims.sub`, `claims.custom.tenant`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
#[non_exhaustive]
pub struct ClaimSet<T = NoCustomClaims> {
    /// Subject: the user or client the token speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Token id, what revocation of a single token uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: one string or an array of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiry, seconds since the Unix epoch. A NumericDate with a fraction (RFC 7519 §2, e.g.
    /// Python's `time.time()`) is rounded down: a token never lives longer than it says.
    #[serde(
        default,
        deserialize_with = "numeric_date::exp",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<u64>,
    /// Not before, seconds since the Unix epoch; a fraction is rounded up (never valid
    /// earlier than it says).
    #[serde(
        default,
        deserialize_with = "numeric_date::nbf",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch; a fraction is rounded down, as issuers writing
    /// whole seconds do, so a revocation at that second still covers the token.
    #[serde(
        default,
        deserialize_with = "numeric_date::iat",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<u64>,
    /// Space-delimited scopes (RFC 6749 §3.3). Tokens may carry them as a string or as a JSON
    /// array of strings (some providers do); an array is joined with spaces here. The claim is
    /// `scope` unless the verifier reads another one
    /// ([`VerifierBuilder::scope_claim`](crate::VerifierBuilder::scope_claim), e.g. `scp`).
    #[serde(
        default,
        deserialize_with = "deserialize_scope",
        skip_serializing_if = "Option::is_none"
    )]
    pub scope: Option<String>,
    /// Session id (OpenID Connect `sid`): the refresh-token family this access token was
    /// minted from, so revoking the family revokes its access tokens too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Authentication methods (RFC 8176 `amr`). Tokens minted by a remember-me auto-login carry
    /// [`REMEMBER_ME_AMR`]; see [`is_remembered`](Self::is_remembered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Authentication context class reference (OpenID Connect `acr`): how strongly the user
    /// was authenticated, what [`StepUpLayer`](crate::StepUpLayer) checks (RFC 9470).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// When the user last authenticated (OpenID Connect `auth_time`), seconds since the Unix
    /// epoch; a fraction is rounded down (the authentication never counts as more recent than
    /// it was).
    #[serde(
        default,
        deserialize_with = "numeric_date::iat",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth_time: Option<u64>,
    /// The OAuth client the token was issued to (RFC 9068 / RFC 7662 `client_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Confirmation (RFC 7800 `cnf`): the key the token is bound to, a DPoP key (RFC 9449
    /// `jkt`) or a client certificate (RFC 8705 `x5t#S256`). A bound token is accepted only
    /// with proof of that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The application's own claims.
    #[serde(flatten)]
    pub custom: T,
}

/// The confirmation claim (RFC 7800 `cnf`) of a sender-constrained token: the thumbprint of
/// the key the token is bound to. Members this crate does not check (`jwk`, `kid`, …) are
/// ignored, so a token bound by one of them alone is treated as unbound.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Confirmation {
    /// RFC 9449 §6: the base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 §3.1: the base64url SHA-256 of the DER client certificate.
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Bound to the DPoP key with this RFC 7638 thumbprint.
    pub fn dpop(jkt: impl Into<String>) -> Self {
        Self {
            jkt: Some(jkt.into()),
            x5t_s256: None,
        }
    }

    /// Bound to the client certificate with this base64url SHA-256 thumbprint.
    pub fn certificate(x5t_s256: impl Into<String>) -> Self {
        Self {
            jkt: None,
            x5t_s256: Some(x5t_s256.into()),
        }
    }
}

/// The registered claims alone, what the verifier reads of every token: a struct without the
/// flattened `T`, so serde skips the claims it does not name instead of buffering them.
#[derive(Clone, Deserialize)]
pub(crate) struct Registered {
    // The fields and deserializers of `ClaimSet`, which the unit test
    // `registered_claims_read_as_the_claim_set_does` holds to the same answers.
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) jti: Option<String>,
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<Audience>,
    #[serde(default, deserialize_with = "numeric_date::exp")]
    pub(crate) exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date::nbf")]
    pub(crate) nbf: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date::iat")]
    pub(crate) iat: Option<u64>,
    #[serde(default, deserialize_with = "deserialize_scope")]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) sid: Option<String>,
    #[serde(default)]
    pub(crate) amr: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) acr: Option<String>,
    #[serde(default, deserialize_with = "numeric_date::iat")]
    pub(crate) auth_time: Option<u64>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) cnf: Option<Confirmation>,
}

impl Registered {
    /// The claims set of these registered claims and the application's `custom` ones.
    pub(crate) fn with<T>(self, custom: T) -> ClaimSet<T> {
        ClaimSet {
            sub: self.sub,
            jti: self.jti,
            iss: self.iss,
            aud: self.aud,
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            scope: self.scope,
            sid: self.sid,
            amr: self.amr,
            acr: self.acr,
            auth_time: self.auth_time,
            client_id: self.client_id,
            cnf: self.cnf,
            custom,
        }
    }
}

impl<T> ClaimSet<T> {
    /// Claims with only the application's own part set; assign the registered ones as
    /// needed (`claims.sub = Some(..)`). For tests and for code that builds claims itself.
    pub fn new(custom: T) -> Self {
        Self {
            sub: None,
            jti: None,
            iss: None,
            aud: None,
            exp: None,
            nbf: None,
            iat: None,
            scope: None,
            sid: None,
            amr: None,
            acr: None,
            auth_time: None,
            client_id: None,
            cnf: None,
            custom,
        }
    }

    /// The identifiers a revocation store checks and records.
    pub(crate) fn token_ref(&self) -> TokenRef<'_> {
        TokenRef::new()
            .jti(self.jti.as_deref())
            .sub(self.sub.as_deref())
            .iat(self.iat)
            .exp(self.exp)
            .sid(self.sid.as_deref())
            .iss(self.iss.as_deref())
    }

    /// The scopes, split on whitespace.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace()
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the login behind this token came from a remember-me cookie rather than the
    /// user's credentials.
    pub fn is_remembered(&self) -> bool {
        self.amr
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == REMEMBER_ME_AMR))
    }

    /// `Ok` unless the login came from a remember-me cookie: then a 401
    /// `insufficient_user_authentication` error, for routes that want the password again.
    pub fn require_fresh_login(&self) -> Result<(), AuthError> {
        if self.is_remembered() {
            Err(AuthError::new(
                crate::error::AuthErrorKind::FreshLoginRequired,
            ))
        } else {
            Ok(())
        }
    }

    /// `Ok` when the token grants every space-separated scope in `required`, else a 403
    /// `insufficient_scope` error naming `required`.
    pub fn require_scope(&self, required: &str) -> Result<(), AuthError> {
        if required.split_ascii_whitespace().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(required))
        }
    }
}

/// The `amr` value marking tokens minted by a remember-me auto-login.
pub const REMEMBER_ME_AMR: &str = "remember-me";

/// How the request passed [`JwtAuthLayer`](crate::JwtAuthLayer): part of the
/// [`Authentication`] the layer puts into every request it lets through
/// ([`Authentication::status`]; an axum extractor too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStatus {
    /// A verified, unrevoked token: the [`Authentication`] carries its `Claims<T>`.
    Authenticated,
    /// Optional mode, and the request carried no token.
    Anonymous,
    /// A CORS preflight, passed without authentication because the layer was built with
    /// [`allow_cors_preflight(true)`](crate::JwtAuthLayer::allow_cors_preflight).
    Preflight,
    /// Logged in by [`RememberMeLayer`](crate::remember_me::RememberMeLayer) from a
    /// remember-me cookie: the [`Authentication`] carries `Claims`, with
    /// [`is_remembered`](ClaimSet::is_remembered) true.
    Remembered,
}

/// No application claims: the default `T` of [`Claims`]. Unknown claims are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCustomClaims {}

/// Whether `exp` and `nbf` (seconds) admit a token at `now`, with `leeway` seconds of clock
/// skew: the check on every request, verified or answered from the verified-token cache.
pub(crate) fn check_times(
    exp: Option<u64>,
    nbf: Option<u64>,
    now: u64,
    leeway: u64,
) -> Result<(), AuthError> {
    if exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
        return Err(AuthError::invalid_token(InvalidToken::Expired));
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(AuthError::invalid_token(InvalidToken::NotYetValid));
    }
    Ok(())
}

/// `exp`, `nbf` and `iat` as RFC 7519 NumericDates: non-negative JSON numbers, fractions
/// allowed. Errors name the claim (logged; the client sees a fixed text).
mod numeric_date {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, Visitor};

    #[derive(Clone, Copy)]
    enum Round {
        Down,
        Up,
    }

    struct NumericDate {
        claim: &'static str,
        round: Round,
    }

    impl NumericDate {
        fn invalid<E: de::Error>(&self) -> E {
            E::custom(format_args!(
                "`{}` must be a NumericDate (non-negative seconds since the epoch)",
                self.claim
            ))
        }
    }

    impl<'de> Visitor<'de> for NumericDate {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "`{}` as a NumericDate", self.claim)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v).map(Some).map_err(|_| self.invalid())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // The same range jsonwebtoken accepts for exp/nbf.
            if !(v.is_finite() && v >= 0.0 && v < u64::MAX as f64) {
                return Err(self.invalid());
            }
            let whole = match self.round {
                Round::Down => v.floor(),
                Round::Up => v.ceil(),
            };
            Ok(Some(whole as u64))
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.invalid())
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.invalid())
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.invalid())
        }

        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.invalid())
        }
    }

    fn read<'de, D: Deserializer<'de>>(
        d: D,
        claim: &'static str,
        round: Round,
    ) -> Result<Option<u64>, D::Error> {
        d.deserialize_option(NumericDate { claim, round })
    }

    pub(super) fn exp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, "exp", Round::Down)
    }

    pub(super) fn nbf<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, "nbf", Round::Up)
    }

    pub(super) fn iat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        read(d, "iat", Round::Down)
    }
}

/// Scopes as a space-separated string or a JSON array of scope tokens, joined with spaces.
/// `claim` names the claim in errors.
struct ScopeVisitor<'a> {
    claim: &'a str,
}

impl<'de> Visitor<'de> for ScopeVisitor<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` as a space-separated string or an array of strings",
            self.claim
        )
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut joined = String::new();
        while let Some(scope) = seq.next_element_seed(ScopeElement { claim: self.claim })? {
            // One element, one scope token (RFC 6749 §3.3): "read write" in an array would
            // otherwise grant two scopes.
            if scope.is_empty() || scope.contains(|c: char| c.is_ascii_whitespace()) {
                return Err(de::Error::custom(format_args!(
                    "`{}` array elements must be single scopes, without spaces",
                    self.claim
                )));
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(&scope);
        }
        Ok(Some(joined))
    }
}

/// One element of a scope array: a string, or an error naming the claim.
struct ScopeElement<'a> {
    claim: &'a str,
}

impl<'de> Visitor<'de> for ScopeElement<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` array elements as strings", self.claim)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.to_owned())
    }
}

impl<'de> de::DeserializeSeed<'de> for ScopeElement<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::DeserializeSeed<'de> for ScopeVisitor<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

fn deserialize_scope<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(ScopeVisitor { claim: "scope" })
}

/// The scopes in claim `name` of a claims set (JSON object), for a verifier configured to read
/// them from a claim other than `scope` (e.g. `scp`). `None` when the claim is absent or
/// `null`; an error (naming the claim) when it has another shape or appears twice.
pub(crate) fn scopes_from_claim(payload: &[u8], name: &str) -> Result<Option<String>, String> {
    struct Seed<'a>(&'a str);

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of claims")
        }

        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found: Option<Option<String>> = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key != self.0 {
                    map.next_value::<de::IgnoredAny>()?;
                } else if found.is_some() {
                    return Err(de::Error::custom(format_args!(
                        "duplicate claim `{}`",
                        self.0
                    )));
                } else {
                    found = Some(map.next_value_seed(ScopeVisitor { claim: self.0 })?);
                }
            }
            Ok(found.flatten())
        }
    }

    let mut de = serde_json::Deserializer::from_slice(payload);
    de.deserialize_map(Seed(name)).map_err(|e| e.to_string())
}

/// The `aud` claim: a single string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `"aud": "api"`
    One(String),
    /// `"aud": ["api", "web"]`
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `audience`.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(a) => s.serialize_str(a),
            Self::Many(all) => all.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::new();
                while let Some(a) = seq.next_element::<String>()? {
                    all.push(a);
                }
                Ok(Audience::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_forms() {
        let c: ClaimSet = serde_json::from_str(r#"{"aud":"a"}"#).unwrap();
        assert!(c.aud.as_ref().unwrap().contains("a"));
        let c: ClaimSet = serde_json::from_str(r#"{"aud":["a","b"]}"#).unwrap();
        assert!(c.aud.as_ref().unwrap().contains("b"));
        assert!(serde_json::from_str::<ClaimSet>(r#"{"aud":3}"#).is_err());
    }

    #[test]
    fn scope_checks() {
        let c: ClaimSet = serde_json::from_str(r#"{"scope":"read  write"}"#).unwrap();
        assert!(c.require_scope("read write").is_ok());
        assert!(c.require_scope("admin").is_err());
        assert!(!c.has_scope("rea"));
    }

    /// `Ok(value)` or the error text, for one claim of a one-claim payload.
    fn one<F>(json: &str, field: F) -> Result<Option<u64>, String>
    where
        F: Fn(ClaimSet) -> Option<u64>,
    {
        serde_json::from_str::<ClaimSet>(json)
            .map(field)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numeric_dates() {
        // (json value, exp, nbf, iat): Some(n) accepted as n, None refused.
        type Row = (&'static str, Option<u64>, Option<u64>, Option<u64>);
        let table: &[Row] = &[
            (
                "1700000000",
                Some(1_700_000_000),
                Some(1_700_000_000),
                Some(1_700_000_000),
            ),
            (
                "1700000000.0",
                Some(1_700_000_000),
                Some(1_700_000_000),
                Some(1_700_000_000),
            ),
            // Python's time.time(): exp and iat round down, nbf up.
            (
                "1700000000.25",
                Some(1_700_000_000),
                Some(1_700_000_001),
                Some(1_700_000_000),
            ),
            (
                "1700000000.999",
                Some(1_700_000_000),
                Some(1_700_000_001),
                Some(1_700_000_000),
            ),
            (
                "1.7e9",
                Some(1_700_000_000),
                Some(1_700_000_000),
                Some(1_700_000_000),
            ),
            ("0", Some(0), Some(0), Some(0)),
            ("0.5", Some(0), Some(1), Some(0)),
            ("-1", None, None, None),
            ("-0.5", None, None, None),
            ("1e300", None, None, None),
            (
                "18446744073709551615",
                Some(u64::MAX),
                Some(u64::MAX),
                Some(u64::MAX),
            ),
            (r#""1700000000""#, None, None, None),
            ("true", None, None, None),
            ("[1700000000]", None, None, None),
            (r#"{"t":1}"#, None, None, None),
        ];
        for &(value, exp, nbf, iat) in table {
            for (claim, want) in [("exp", exp), ("nbf", nbf), ("iat", iat)] {
                let json = format!(r#"{{"{claim}":{value}}}"#);
                let got = match claim {
                    "exp" => one(&json, |c| c.exp),
                    "nbf" => one(&json, |c| c.nbf),
                    _ => one(&json, |c| c.iat),
                };
                match (want, got) {
                    (Some(w), Ok(g)) => assert_eq!(g, Some(w), "{json}"),
                    (None, Err(e)) => assert!(e.contains(&format!("`{claim}`")), "{json}: {e}"),
                    (w, g) => panic!("{json}: want {w:?}, got {g:?}"),
                }
            }
        }
        // Absent or null: no claim.
        let c: ClaimSet = serde_json::from_str(r#"{"exp":null,"nbf":null}"#).unwrap();
        assert_eq!((c.exp, c.nbf, c.iat), (None, None, None));
        // Written back as whole seconds.
        let c: ClaimSet = serde_json::from_str(r#"{"exp":5.5,"nbf":4.5}"#).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"exp":5,"nbf":5}"#);
    }

    #[test]
    fn time_window() {
        // (exp, nbf, now, leeway, expected)
        use crate::error::AuthErrorKind::InvalidToken as T;
        let expired = Some(T(InvalidToken::Expired));
        let early = Some(T(InvalidToken::NotYetValid));
        let table = [
            (Some(100), None, 100, 0, None),
            (Some(100), None, 101, 0, expired.clone()),
            (Some(100), None, 130, 30, None),
            (Some(100), None, 131, 30, expired.clone()),
            (None, Some(100), 100, 0, None),
            (None, Some(101), 100, 0, early.clone()),
            (None, Some(130), 100, 30, None),
            (None, Some(131), 100, 30, early.clone()),
            (Some(u64::MAX), Some(0), u64::MAX, u64::MAX, None),
            (None, None, 0, 0, None),
        ];
        for (exp, nbf, now, leeway, want) in table {
            let got = check_times(exp, nbf, now, leeway)
                .err()
                .map(|e| e.kind().clone());
            assert_eq!(
                got, want,
                "exp {exp:?} nbf {nbf:?} now {now} leeway {leeway}"
            );
        }
    }

    #[test]
    fn scope_shapes() {
        // (json value of `scope`, scopes, or None when refused)
        let table: &[(&str, Option<Option<&str>>)] = &[
            (r#""read write""#, Some(Some("read write"))),
            (r#""""#, Some(Some(""))),
            (r#"["read","write"]"#, Some(Some("read write"))),
            (r#"["read"]"#, Some(Some("read"))),
            ("[]", Some(Some(""))),
            ("null", Some(None)),
            // One array element is one scope: no smuggling two in one.
            (r#"["read write"]"#, None),
            (r#"["read",""]"#, None),
            (r#"["read",1]"#, None),
            (r#"[["read"]]"#, None),
            ("7", None),
            (r#"{"read":true}"#, None),
        ];
        for &(value, want) in table {
            let json = format!(r#"{{"scope":{value}}}"#);
            let got = serde_json::from_str::<ClaimSet>(&json).map(|c| c.scope);
            match (want, got) {
                (Some(w), Ok(g)) => assert_eq!(g.as_deref(), w, "{json}"),
                (None, Err(e)) => assert!(e.to_string().contains("scope"), "{json}: {e}"),
                (w, g) => panic!("{json}: want {w:?}, got {g:?}"),
            }
            // The same shapes in another claim, read by name.
            let payload = format!(r#"{{"sub":"u","scope":"other","scp":{value},"x":[1,{{}}]}}"#);
            match (want, scopes_from_claim(payload.as_bytes(), "scp")) {
                (Some(w), Ok(g)) => assert_eq!(g.as_deref(), w, "{payload}"),
                (None, Err(e)) => assert!(e.contains("`scp`"), "{payload}: {e}"),
                (w, g) => panic!("{payload}: want {w:?}, got {g:?}"),
            }
        }
        let c: ClaimSet = serde_json::from_str(r#"{"scope":["read","write"]}"#).unwrap();
        assert!(c.has_scope("write") && c.require_scope("write read").is_ok());
        assert!(c.require_scope("admin").is_err());
        assert_eq!(scopes_from_claim(br#"{"scope":"a"}"#, "scp"), Ok(None));
        let twice = scopes_from_claim(br#"{"scp":"a","scp":"b"}"#, "scp").unwrap_err();
        assert!(twice.contains("duplicate claim `scp`"), "{twice}");
        assert!(scopes_from_claim(b"[1]", "scp").is_err());
    }

    #[test]
    fn round_trip_with_custom_claims() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Extra {
            tenant: String,
        }
        let c = ClaimSet {
            sub: Some("u".into()),
            jti: None,
            iss: None,
            aud: Some(Audience::Many(vec!["x".into()])),
            exp: Some(5),
            nbf: None,
            iat: None,
            scope: None,
            sid: None,
            amr: None,
            acr: None,
            auth_time: None,
            client_id: None,
            cnf: None,
            custom: Extra { tenant: "t".into() },
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"sub":"u","aud":["x"],"exp":5,"tenant":"t"}"#);
        assert_eq!(serde_json::from_str::<ClaimSet<Extra>>(&json).unwrap(), c);
        // The handle serializes and deserializes as the claims set itself.
        let handle = Claims::from(c.clone());
        assert_eq!(serde_json::to_string(&handle).unwrap(), json);
        assert_eq!(
            serde_json::from_str::<Claims<Extra>>(&json).unwrap(),
            handle
        );
        // Writing through a shared handle copies the set; the other handle keeps its value.
        let mut copy = handle.clone();
        copy.sub = Some("v".into());
        assert_eq!(handle.sub.as_deref(), Some("u"));
        assert_eq!(copy.sub.as_deref(), Some("v"));
        assert_eq!(copy.clone().into_claim_set().custom, c.custom);
    }

    /// What the verifier reads (`Registered`, then `T` on its own) answers as the claims set
    /// read in one pass does, for every registered claim and shape the tests above use.
    #[test]
    fn registered_claims_read_as_the_claim_set_does() {
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        struct Extra {
            tenant: String,
        }
        let payloads = [
            r#"{"sub":"u","jti":"j","iss":"i","aud":"a","exp":5.5,"nbf":4.5,"iat":3.9,"scope":["read","write"],"sid":"s","amr":["pwd"],"tenant":"t","x":[1,{"y":null}]}"#,
            r#"{"acr":"urn:mace:incommon:iap:silver","auth_time":7.7,"client_id":"c","cnf":{"jkt":"k","x5t#S256":"x","jwk":{}},"tenant":"t"}"#,
            r#"{"cnf":{},"auth_time":null,"tenant":"t"}"#,
            r#"{"aud":["a","b"],"scope":"read  write","tenant":"t"}"#,
            r#"{"exp":null,"nbf":null,"iat":null,"scope":null,"tenant":"t"}"#,
            r#"{"tenant":"t"}"#,
        ];
        for json in payloads {
            let one_pass: ClaimSet<Extra> = serde_json::from_str(json).unwrap();
            let registered: Registered = serde_json::from_str(json).unwrap();
            let custom: Extra = serde_json::from_str(json).unwrap();
            assert_eq!(registered.with(custom), one_pass, "{json}");
        }
        for bad in [
            r#"{"exp":"1"}"#,
            r#"{"nbf":-1}"#,
            r#"{"iat":true}"#,
            r#"{"scope":["a b"]}"#,
            r#"{"aud":3}"#,
            r#"{"sub":1}"#,
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"amr":"pwd"}"#,
        ] {
            assert!(serde_json::from_str::<ClaimSet>(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<Registered>(bad).is_err(), "{bad}");
        }
    }
}
