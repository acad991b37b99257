//! Typed claims: the registered JWT claims plus the application's own.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::AuthError;
use crate::revocation::TokenRef;

/// The claims of a verified token: the registered ones (RFC 7519 §4.1, plus OAuth `scope`)
/// and the application's own claims `T`, flattened into the same JSON object.
///
/// [`JwtAuthLayer`](crate::JwtAuthLayer) inserts an `Arc<Claims<T>>` into the request
/// extensions (shared with the verified-token cache, so a cached token costs no copy); axum
/// handlers take `Claims<T>` as an extractor (feature `axum`), other code reads
/// `req.extensions().get::<Arc<Claims<T>>>()`.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct Claims<T = NoCustomClaims> {
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
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Space-delimited scopes (RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Session id (OpenID Connect `sid`): the refresh-token family this access token was
    /// minted from, so revoking the family revokes its access tokens too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Authentication methods (RFC 8176 `amr`). Tokens minted by a remember-me auto-login carry
    /// [`REMEMBER_ME_AMR`]; see [`is_remembered`](Self::is_remembered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The application's own claims.
    #[serde(flatten)]
    pub custom: T,
}

impl<T> Claims<T> {
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

/// How the request passed [`JwtAuthLayer`](crate::JwtAuthLayer); inserted into the
/// extensions of every request the layer lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStatus {
    /// A verified, unrevoked token: `Claims<T>` is in the extensions too.
    Authenticated,
    /// Optional mode, and the request carried no token.
    Anonymous,
    /// A CORS preflight, passed without authentication because the layer was built with
    /// [`allow_cors_preflight(true)`](crate::JwtAuthLayer::allow_cors_preflight).
    Preflight,
    /// Logged in by [`RememberMeLayer`](crate::remember_me::RememberMeLayer) from a
    /// remember-me cookie: `Claims<T>` is in the extensions, with
    /// [`is_remembered`](Claims::is_remembered) true.
    Remembered,
}

/// No application claims: the default `T` of [`Claims`]. Unknown claims are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCustomClaims {}

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
        let c: Claims = serde_json::from_str(r#"{"aud":"a"}"#).unwrap();
        assert!(c.aud.unwrap().contains("a"));
        let c: Claims = serde_json::from_str(r#"{"aud":["a","b"]}"#).unwrap();
        assert!(c.aud.unwrap().contains("b"));
        assert!(serde_json::from_str::<Claims>(r#"{"aud":3}"#).is_err());
    }

    #[test]
    fn scope_checks() {
        let c: Claims = serde_json::from_str(r#"{"scope":"read  write"}"#).unwrap();
        assert!(c.require_scope("read write").is_ok());
        assert!(c.require_scope("admin").is_err());
        assert!(!c.has_scope("rea"));
    }

    #[test]
    fn round_trip_with_custom_claims() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Extra {
            tenant: String,
        }
        let c = Claims {
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
            custom: Extra { tenant: "t".into() },
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"sub":"u","aud":["x"],"exp":5,"tenant":"t"}"#);
        assert_eq!(serde_json::from_str::<Claims<Extra>>(&json).unwrap(), c);
    }
}
