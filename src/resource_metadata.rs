//! OAuth 2.0 Protected Resource Metadata (RFC 9728): what this API tells clients about itself.
//!
//! [`ProtectedResourceMetadata`] describes the resource (its identifier, the authorization
//! servers whose tokens it accepts, its scopes, how it takes bearer tokens), and
//! [`ProtectedResourceMetadata::service`] serves it as JSON at its well-known path. With
//! [`Rfc6750Responder::resource_metadata`](crate::Rfc6750Responder::resource_metadata), every
//! `WWW-Authenticate` challenge points clients at it, so a client that got a 401 can find where
//! to get a token.
//!
//! ```
//! use axum::Router;
//! use axum::routing::get;
//! use tower_token_auth::resource_metadata::ProtectedResourceMetadata;
//! use tower_token_auth::{JwtAuthLayer, Rfc6750Responder, testing::TestKeys};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let metadata = ProtectedResourceMetadata::new("https://api.example/orders")?
//!     .authorization_server("https://auth.example")
//!     .scopes(["orders:read", "orders:write"]);
//! assert_eq!(metadata.well_known_path(), "/.well-known/oauth-protected-resource/orders");
//!
//! let keys = TestKeys::hs256();
//! let auth = JwtAuthLayer::new(keys.verifier())
//!     .with_responder(Rfc6750Responder::default().resource_metadata(metadata.metadata_url())?);
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .layer(auth)
//!     .route_service(&metadata.well_known_path(), metadata.service());
//! # let _ = app; Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use serde::Serialize;
use tower_service::Service;

use crate::error::ConfigError;

/// The well-known path segment of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Protected resource metadata (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_client_certificate_bound_access_tokens: bool,
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    path: String,
}

/// Whether `host` is a loopback name or address.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` as (origin, path): https (http only on loopback), a host, no fragment.
fn split_url(what: &str, url: &str) -> Result<(String, String), ConfigError> {
    if url.contains('#') {
        return Err(ConfigError::new(format!("{what} must have no fragment")));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| ConfigError::new(format!("{what} is not a URL: {e}")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(ConfigError::new(format!("{what} must be an absolute URL")));
    };
    match scheme {
        "https" => {}
        "http" if is_loopback(authority.host()) => {}
        _ => {
            return Err(ConfigError::new(format!(
                "{what} must use https (http only for loopback)"
            )));
        }
    }
    if uri.query().is_some() {
        return Err(ConfigError::new(format!("{what} must have no query")));
    }
    let path = uri.path().trim_end_matches('/').to_owned();
    Ok((format!("{scheme}://{authority}"), path))
}

impl ProtectedResourceMetadata {
    /// Metadata for the resource identified by `resource`: an https URL (http only for
    /// loopback hosts) without query or fragment. Bearer tokens are taken in the
    /// `Authorization` header (`bearer_methods_supported: ["header"]`).
    pub fn new(resource: impl Into<String>) -> Result<Self, ConfigError> {
        let resource = resource.into();
        let (origin, path) = split_url("resource", &resource)?;
        Ok(Self {
            resource,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: None,
            resource_documentation: None,
            jwks_uri: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            tls_client_certificate_bound_access_tokens: false,
            origin,
            path,
        })
    }

    /// Adds an authorization server (its issuer identifier) whose tokens this resource
    /// accepts.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes this resource understands.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How clients may send bearer tokens (`header`, `body`, `query`; default `header`).
    /// Say `[]` for none (e.g. only DPoP or cookies).
    pub fn bearer_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name for the resource.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// Where developers read about the resource.
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource's own JWK Set, if it signs anything (e.g. responses).
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// The resource accepts DPoP (RFC 9728 §2 `dpop_signing_alg_values_supported`, from the
    /// algorithms `dpop` accepts), and, when `required` (a layer built with
    /// [`require_dpop`](crate::JwtAuthLayer::require_dpop)), only DPoP-bound tokens
    /// (`dpop_bound_access_tokens_required`).
    pub fn dpop(mut self, dpop: &crate::dpop::DpopConfig, required: bool) -> Self {
        self.dpop_signing_alg_values_supported =
            dpop.algs_param().split(' ').map(str::to_owned).collect();
        self.dpop_bound_access_tokens_required = required;
        self
    }

    /// The resource accepts certificate-bound tokens (RFC 9728 §2
    /// `tls_client_certificate_bound_access_tokens`, RFC 8705).
    pub fn certificate_bound_tokens(mut self) -> Self {
        self.tls_client_certificate_bound_access_tokens = true;
        self
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path to serve the metadata at (RFC 9728 §3.1): the well-known segment inserted
    /// before the resource's path, `/.well-known/oauth-protected-resource` for a resource
    /// without one.
    pub fn well_known_path(&self) -> String {
        format!("{WELL_KNOWN}{}", self.path)
    }

    /// The full URL of the metadata, for `resource_metadata="…"` in challenges.
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.origin, self.well_known_path())
    }

    /// The metadata document.
    pub fn to_json(&self) -> String {
        // Strings and lists of strings only: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A service answering `GET`/`HEAD` with the document (200, `application/json`) and other
    /// methods with 405. Mount it at [`well_known_path`](Self::well_known_path), outside any
    /// authentication layer.
    pub fn service(&self) -> MetadataService {
        MetadataService {
            body: Bytes::from(self.to_json()),
        }
    }
}

/// Serves a [`ProtectedResourceMetadata`] document; see
/// [`ProtectedResourceMetadata::service`].
#[derive(Debug, Clone)]
pub struct MetadataService {
    body: Bytes,
}

impl<B> Service<Request<B>> for MetadataService {
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
            HeaderValue::from_static("public, max-age=3600"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode, header};

    #[test]
    fn paths_and_urls() {
        for (resource, path, url) in [
            (
                "https://api.example",
                "/.well-known/oauth-protected-resource",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/",
                "/.well-known/oauth-protected-resource",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example:8443/v1/orders",
                "/.well-known/oauth-protected-resource/v1/orders",
                "https://api.example:8443/.well-known/oauth-protected-resource/v1/orders",
            ),
            (
                "http://127.0.0.1:8080",
                "/.well-known/oauth-protected-resource",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
            ),
        ] {
            let m = ProtectedResourceMetadata::new(resource).unwrap();
            assert_eq!(m.well_known_path(), path, "{resource}");
            assert_eq!(m.metadata_url(), url, "{resource}");
        }
        for bad in [
            "http://api.example",
            "https://api.example/#frag",
            "https://api.example/?q=1",
            "/relative",
            "ftp://api.example",
            "not a url",
        ] {
            assert!(ProtectedResourceMetadata::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_document() {
        let m = ProtectedResourceMetadata::new("https://api.example")
            .unwrap()
            .authorization_server("https://auth.example")
            .scopes(["read"])
            .resource_name("Orders");
        let doc: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://api.example",
                "authorization_servers": ["https://auth.example"],
                "scopes_supported": ["read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Orders",
            })
        );
    }

    #[test]
    fn dpop_and_certificate_members() {
        let m = ProtectedResourceMetadata::new("https://api.example")
            .unwrap()
            .dpop(&crate::dpop::DpopConfig::new(), true)
            .certificate_bound_tokens();
        let doc: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://api.example",
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
                "dpop_bound_access_tokens_required": true,
                "tls_client_certificate_bound_access_tokens": true,
            })
        );
    }

    #[tokio::test]
    async fn the_service_and_the_challenge() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let m = ProtectedResourceMetadata::new("https://api.example/orders")
            .unwrap()
            .authorization_server("https://auth.example");
        let call = |method: Method| {
            let svc = m.service();
            async move {
                let req = Request::builder().method(method).body(()).unwrap();
                svc.oneshot(req).await.unwrap()
            }
        };
        let res = call(Method::GET).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, m.to_json());
        assert_eq!(call(Method::HEAD).await.status(), StatusCode::OK);
        let res = call(Method::POST).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");

        use crate::{AuthError, ErrorResponder, Rfc6750Responder};
        let responder = Rfc6750Responder::with_realm("api")
            .unwrap()
            .resource_metadata(m.metadata_url())
            .unwrap();
        let res = responder.respond(&AuthError::missing_token());
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="api", resource_metadata="https://api.example/.well-known/oauth-protected-resource/orders""#
        );
        let res = responder.respond(&AuthError::insufficient_scope("admin"));
        assert!(
            res.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with(r#"scope="admin", resource_metadata="https://api.example/.well-known/oauth-protected-resource/orders""#)
        );
        assert!(
            Rfc6750Responder::default()
                .resource_metadata("a\"b")
                .is_err()
        );
    }
}
