//! The JWT profile for OAuth 2.0 access tokens (RFC 9068).
//!
//! [`Verifier::rfc9068`] configures a verifier the way RFC 9068 §4 validates an access token:
//! the header `typ` must be `at+jwt` (or `application/at+jwt`), `iss` must equal the issuer
//! exactly, `aud` must name this resource, and `exp`, `sub`, `iat` and `jti` must be present
//! (§2.2). [`AccessToken`] is the custom-claims type carrying the rest: `client_id` (required),
//! `auth_time`, `acr`, and the SCIM-style `groups`, `roles` and `entitlements` (§2.2.3.1).
//! `amr` is read through [`ClaimSet::amr`](crate::ClaimSet::amr), like every token's.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode, header};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_auth::rfc9068::AccessToken;
//! use tower_token_auth::{Algorithm, Claims, JwtAuthLayer, KeySet, SigningKey, TokenIssuer, Verifier, VerifyingKey};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32];
//! let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &secret)?)?;
//! let verifier = Verifier::rfc9068(keys, "https://auth.example", "https://api.example").build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(verifier).for_claims::<AccessToken>())
//!     .service(service_fn(|req: Request<String>| async move {
//!         let claims = Claims::<AccessToken>::from_extensions(req.extensions()).unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(claims.custom.client_id.clone()))
//!     }));
//!
//! // An issuer of RFC 9068 tokens (usually the identity provider).
//! let token = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret)?)
//!     .issuer("https://auth.example")
//!     .audience("https://api.example")
//!     .typ("at+jwt")
//!     .issue_with("alice", "orders:read", &serde_json::json!({"client_id": "web"}))?
//!     .token;
//! let req = Request::builder()
//!     .header(header::AUTHORIZATION, format!("Bearer {token}"))
//!     .body(String::new())?;
//! let res = svc.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = http_body_util::BodyExt::collect(res.into_body()).await?.to_bytes();
//! assert_eq!(body, "web");
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::keys::KeySet;
use crate::verifier::{Verifier, VerifierBuilder};

/// The claims RFC 9068 adds to the registered ones: use as `Claims<AccessToken>`.
///
/// A token without `client_id` is refused (401 `invalid_token`, "missing or invalid claim").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessToken {
    /// The OAuth client the token was issued to (§2.2).
    pub client_id: String,
    /// When the user last authenticated, seconds since the Unix epoch (§2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Authentication context class reference (§2.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Groups the subject belongs to (§2.2.3.1, SCIM `groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Roles of the subject (§2.2.3.1, SCIM `roles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Entitlements of the subject (§2.2.3.1, SCIM `entitlements`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
}

impl AccessToken {
    /// Claims for `client_id`, the optional ones empty (for issuing such tokens).
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            auth_time: None,
            acr: None,
            groups: Vec::new(),
            roles: Vec::new(),
            entitlements: Vec::new(),
        }
    }

    /// Whether `role` is among the token's roles.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether `group` is among the token's groups.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

impl Verifier {
    /// A builder for RFC 9068 access tokens from `issuer` for the resource `audience`: `typ`
    /// `at+jwt` required, `iss` and `aud` checked, `exp`, `sub`, `iat` and `jti` required.
    /// Decode with [`AccessToken`] as the claims type to require and read `client_id`.
    /// Further builder calls (leeway, more audiences, the verified-token cache) still apply.
    pub fn rfc9068(
        keys: KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> VerifierBuilder {
        Verifier::builder(keys)
            .issuer(issuer)
            .audience(audience)
            .require_typ("at+jwt")
            .require_claims(["exp", "sub", "iat", "jti"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Claims, SigningKey, TokenIssuer, VerifyingKey};

    const SECRET: &[u8] = &[9; 32];

    fn verifier() -> Verifier {
        let keys = KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .unwrap();
        Verifier::rfc9068(keys, "https://as", "https://rs")
            .build()
            .unwrap()
    }

    fn issuer(typ: Option<&str>) -> TokenIssuer {
        let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .issuer("https://as")
            .audience("https://rs");
        match typ {
            Some(t) => issuer.typ(t),
            None => issuer,
        }
    }

    fn verify(token: &str) -> Result<Claims<AccessToken>, String> {
        verifier()
            .verify::<AccessToken>(token)
            .map_err(|e| e.description().to_owned())
    }

    #[test]
    fn the_profile() {
        let full = serde_json::json!({
            "client_id": "web", "auth_time": 1_700_000_000u64, "acr": "phr",
            "groups": ["staff"], "roles": ["admin"], "entitlements": ["beta"],
        });
        let token = issuer(Some("at+jwt"))
            .issue_with("alice", "read", &full)
            .unwrap()
            .token;
        let claims = verify(&token).unwrap();
        assert_eq!(claims.custom.client_id, "web");
        assert_eq!(claims.custom.auth_time, Some(1_700_000_000));
        assert_eq!(claims.custom.acr.as_deref(), Some("phr"));
        assert!(claims.custom.has_role("admin") && claims.custom.in_group("staff"));
        assert_eq!(claims.custom.entitlements, ["beta"]);

        let minimal = serde_json::json!({"client_id": "web"});
        for (name, typ, extra, want) in [
            (
                "application/at+jwt",
                Some("application/at+jwt"),
                minimal.clone(),
                Ok(()),
            ),
            ("typ AT+JWT", Some("AT+JWT"), minimal.clone(), Ok(())),
            (
                "typ JWT",
                Some("JWT"),
                minimal.clone(),
                Err("invalid token type"),
            ),
            (
                "no client_id",
                Some("at+jwt"),
                serde_json::json!({}),
                Err("missing or invalid claim"),
            ),
            (
                "client_id a number",
                Some("at+jwt"),
                serde_json::json!({"client_id": 7}),
                Err("missing or invalid claim"),
            ),
        ] {
            let token = issuer(typ)
                .issue_with("alice", "read", &extra)
                .unwrap()
                .token;
            let got = verify(&token).map(|_| ());
            assert_eq!(got, want.map_err(str::to_owned), "{name}");
        }
    }

    #[test]
    fn wrong_issuer_and_audience_are_refused() {
        let other = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .issuer("https://as/")
            .audience("https://rs")
            .typ("at+jwt");
        let token = other
            .issue_with("alice", "read", &serde_json::json!({"client_id": "web"}))
            .unwrap()
            .token;
        assert_eq!(verify(&token).unwrap_err(), "invalid issuer");
        let other = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, SECRET).unwrap())
            .issuer("https://as")
            .audience("https://elsewhere")
            .typ("at+jwt");
        let token = other
            .issue_with("alice", "read", &serde_json::json!({"client_id": "web"}))
            .unwrap()
            .token;
        assert_eq!(verify(&token).unwrap_err(), "invalid audience");
    }
}
