//! The authorization server's OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3),
//! served at `{issuer}/.well-known/openid-configuration`.
//!
//! [`ProviderMetadata::new`] fills in the endpoints below the issuer (`/authorize`, `/token`,
//! `/.well-known/jwks.json`, `/logout`, `/revoke`), the code flow with PKCE `S256` only, and
//! back-channel logout with `sid`; each is replaceable. The issuer is kept exactly as given
//! and must be the `iss` of every token: it is refused with a trailing `/`, so the metadata
//! URL, the document's `issuer` and the tokens cannot differ by one.
//!
//! ```
//! use tower_token_auth::sso::discovery_document::ProviderMetadata;
//! use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let ring = SigningKeyRing::new(RingKey::generate_ed25519()?);
//! let metadata = ProviderMetadata::new("https://auth.example")?.signing_algorithms_of(&ring);
//! assert_eq!(metadata.well_known_url(), "https://auth.example/.well-known/openid-configuration");
//! let doc: serde_json::Value = serde_json::from_str(&metadata.to_json()).unwrap();
//! assert_eq!(doc["token_endpoint"], "https://auth.example/token");
//! assert_eq!(doc["id_token_signing_alg_values_supported"][0], "EdDSA");
//! // Mount `metadata.service()` at ProviderMetadata::WELL_KNOWN_PATH.
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use serde::Serialize;
use serde_json::{Map, Value};
use tower_service::Service;

use super::key_ring::SigningKeyRing;
use crate::error::ConfigError;

/// `https`, or `http` to a loopback host; absolute, no fragment; a query only when allowed.
fn check_url(what: &str, url: &str, query_allowed: bool) -> Result<(), ConfigError> {
    let refuse = |why: &str| Err(ConfigError::new(format!("{what} `{url}` {why}")));
    if url.contains('#') {
        return refuse("has a fragment");
    }
    let Ok(uri) = url.parse::<Uri>() else {
        return refuse("is not a URL");
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return refuse("is not an absolute URL");
    };
    if authority.as_str().contains('@') {
        return refuse("has userinfo");
    }
    let host = authority.host();
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
    if scheme != "https" && !(scheme == "http" && loopback) {
        return refuse("must use https (http only for loopback)");
    }
    if !query_allowed && uri.query().is_some() {
        return refuse("must have no query");
    }
    Ok(())
}

/// OpenID Provider Metadata; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    response_types_supported: Vec<String>,
    response_modes_supported: Vec<String>,
    grant_types_supported: Vec<String>,
    code_challenge_methods_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    id_token_signing_alg_values_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    claims_supported: Vec<String>,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

fn alg_name(alg: Algorithm) -> String {
    // `Algorithm`'s Serialize is its JOSE name ("ES256", "EdDSA").
    serde_json::to_value(alg)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{alg:?}"))
}

impl ProviderMetadata {
    /// Where OpenID Connect discovery looks, below the issuer.
    pub const WELL_KNOWN_PATH: &'static str = "/.well-known/openid-configuration";

    /// Metadata for `issuer`: `https` (plain `http` only to `127.0.0.1`, `[::1]`,
    /// `localhost`), no query, fragment or trailing `/`. Endpoints default to paths below it;
    /// `id_token_signing_alg_values_supported` is empty until
    /// [`signing_algorithms_of`](Self::signing_algorithms_of) or
    /// [`signing_algorithms`](Self::signing_algorithms).
    pub fn new(issuer: impl Into<String>) -> Result<Self, ConfigError> {
        let issuer = issuer.into();
        check_url("issuer", &issuer, false)?;
        if issuer.ends_with('/') {
            return Err(ConfigError::new(format!(
                "issuer `{issuer}` ends with `/`: drop it, the tokens' `iss` and the metadata must match byte for byte"
            )));
        }
        let at = |path: &str| format!("{issuer}{path}");
        Ok(Self {
            authorization_endpoint: at("/authorize"),
            token_endpoint: at("/token"),
            jwks_uri: at("/.well-known/jwks.json"),
            end_session_endpoint: Some(at("/logout")),
            revocation_endpoint: Some(at("/revoke")),
            userinfo_endpoint: None,
            scopes_supported: strings(["openid"]),
            response_types_supported: strings(["code"]),
            response_modes_supported: strings(["query"]),
            grant_types_supported: strings(["authorization_code", "refresh_token"]),
            code_challenge_methods_supported: strings(["S256"]),
            subject_types_supported: strings(["public"]),
            id_token_signing_alg_values_supported: Vec::new(),
            token_endpoint_auth_methods_supported: strings(["none"]),
            claims_supported: Vec::new(),
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
            extra: Map::new(),
            issuer,
        })
    }

    /// The issuer, exactly as configured.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn well_known_url(&self) -> String {
        format!("{}{}", self.issuer, Self::WELL_KNOWN_PATH)
    }

    /// The `authorization_endpoint` (a query is allowed, a fragment is not).
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_url("authorization_endpoint", &url, true)?;
        self.authorization_endpoint = url;
        Ok(self)
    }

    /// The `token_endpoint`.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_url("token_endpoint", &url, true)?;
        self.token_endpoint = url;
        Ok(self)
    }

    /// The `jwks_uri`.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        check_url("jwks_uri", &url, true)?;
        self.jwks_uri = url;
        Ok(self)
    }

    /// The `end_session_endpoint` (RP-initiated logout); `None` leaves it out.
    pub fn end_session_endpoint(mut self, url: Option<String>) -> Result<Self, ConfigError> {
        if let Some(url) = &url {
            check_url("end_session_endpoint", url, true)?;
        }
        self.end_session_endpoint = url;
        Ok(self)
    }

    /// The `revocation_endpoint` (RFC 7009); `None` leaves it out.
    pub fn revocation_endpoint(mut self, url: Option<String>) -> Result<Self, ConfigError> {
        if let Some(url) = &url {
            check_url("revocation_endpoint", url, true)?;
        }
        self.revocation_endpoint = url;
        Ok(self)
    }

    /// The `userinfo_endpoint`; `None` (the default) leaves it out.
    pub fn userinfo_endpoint(mut self, url: Option<String>) -> Result<Self, ConfigError> {
        if let Some(url) = &url {
            check_url("userinfo_endpoint", url, true)?;
        }
        self.userinfo_endpoint = url;
        Ok(self)
    }

    /// `id_token_signing_alg_values_supported` from the algorithms of the ring's published
    /// keys (call again after a rotation to another algorithm).
    pub fn signing_algorithms_of(self, ring: &SigningKeyRing) -> Self {
        self.signing_algorithms(ring.algorithms())
    }

    /// `id_token_signing_alg_values_supported`.
    pub fn signing_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.id_token_signing_alg_values_supported = algs.into_iter().map(alg_name).collect();
        self
    }

    /// `scopes_supported` (default `["openid"]`).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = strings(scopes);
        self
    }

    /// `grant_types_supported` (default `authorization_code`, `refresh_token`).
    pub fn grant_types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, grants: I) -> Self {
        self.grant_types_supported = strings(grants);
        self
    }

    /// `token_endpoint_auth_methods_supported` (default `["none"]`: public clients with
    /// PKCE).
    pub fn token_endpoint_auth_methods<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        methods: I,
    ) -> Self {
        self.token_endpoint_auth_methods_supported = strings(methods);
        self
    }

    /// `claims_supported` (default: left out).
    pub fn claims<I: IntoIterator<Item = S>, S: Into<String>>(mut self, claims: I) -> Self {
        self.claims_supported = strings(claims);
        self
    }

    /// `backchannel_logout_supported` and `backchannel_logout_session_supported` (default
    /// both `true`).
    pub fn backchannel_logout(mut self, supported: bool, session_supported: bool) -> Self {
        self.backchannel_logout_supported = supported;
        self.backchannel_logout_session_supported = supported && session_supported;
        self
    }

    /// Another member. A name the document already has is refused, so the metadata cannot
    /// contradict itself.
    pub fn member(mut self, name: impl Into<String>, value: Value) -> Result<Self, ConfigError> {
        let name = name.into();
        let taken = serde_json::to_value(&self)
            .ok()
            .and_then(|doc| doc.get(&name).map(|_| ()))
            .is_some();
        if taken || self.extra.contains_key(&name) {
            return Err(ConfigError::new(format!(
                "metadata member `{name}` is already set"
            )));
        }
        self.extra.insert(name, value);
        Ok(self)
    }

    /// The document as JSON.
    pub fn to_json(&self) -> String {
        // Strings, booleans and JSON values: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A service answering `GET`/`HEAD` with the document (`application/json`,
    /// `Cache-Control: public, max-age=300`), other methods with 405. Mount it at
    /// [`WELL_KNOWN_PATH`](Self::WELL_KNOWN_PATH).
    pub fn service(&self) -> ProviderMetadataService {
        ProviderMetadataService {
            body: Bytes::from(self.to_json()),
        }
    }
}

/// Serves a [`ProviderMetadata`] document; see [`ProviderMetadata::service`].
#[derive(Clone, Debug)]
pub struct ProviderMetadataService {
    body: Bytes,
}

impl<B> Service<Request<B>> for ProviderMetadataService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(crate::json_document::json_document_response(
            req.method(),
            || self.body.clone(),
            HeaderValue::from_static("public, max-age=300"),
        )))
    }
}
