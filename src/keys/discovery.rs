//! An issuer's metadata: OpenID Connect Discovery 1.0 and RFC 8414 (feature `http-client`).
//!
//! From an issuer URL, the metadata document is fetched from, in order:
//!
//! 1. `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery §4; a trailing `/`
//!    of the issuer is dropped first);
//! 2. `{scheme}://{host}/.well-known/oauth-authorization-server{path}` (RFC 8414 §3.1: the
//!    well-known part goes between the host and the issuer's path, if any).
//!
//! The second is tried when the first answers an error status or a document that is not
//! usable metadata. The document's `issuer` must equal the configured issuer exactly (OpenID
//! Connect Discovery §4.3, RFC 8414 §3.3), or discovery fails: no fallback, no
//! normalisation. Its `jwks_uri` (required here) must be `https` like the issuer (plain `http`
//! only for loopback hosts). The signing algorithms the issuer advertises
//! (`id_token_signing_alg_values_supported`, `userinfo_…`, `introspection_…`,
//! `authorization_…`; never HMAC or `none`) decide what RSA keys published without `alg`
//! verify (RS256 when none is advertised).
//!
//! ```no_run
//! use tower_token_auth::Verifier;
//! use tower_token_auth::KeySet;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Fails when the issuer cannot be reached or its metadata is wrong.
//! let verifier = Verifier::builder(KeySet::new())
//!     .audience("orders")
//!     .discover("https://login.example.com/realms/acme")
//!     .await?;
//!
//! // Comes up while the issuer is down: tokens get 503 until its keys arrive.
//! let verifier = Verifier::builder(KeySet::new())
//!     .audience("orders")
//!     .discover_lazy("https://login.example.com/realms/acme")?;
//! # let _ = verifier; Ok(()) }
//! ```
//!
//! For control over the key source (refresh bounds, maximum staleness), build it from the
//! metadata:
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_token_auth::keys::Discovery;
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let metadata = Discovery::fetch("https://login.example.com/realms/acme").await?;
//! let jwks = metadata
//!     .remote_jwks()?
//!     .max_staleness(Duration::from_secs(6 * 3600));
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer(metadata.issuer())
//!     .audience("orders")
//!     .build_with_jwks(jwks)
//!     .await?;
//! # let _ = verifier; Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};

use http::Uri;
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::http::{HttpClient, HttpError, HttpFetcher, check_url, fetch_jwks};
use super::jwk::JwkPolicy;
use super::remote::{BoxError, JwksFetcher, JwksResponse, KeySourceError, RemoteJwks};
use crate::error::ConfigError;
use crate::revocation::BoxFuture;

/// The metadata members that list algorithms the issuer signs with (not the ones it accepts
/// from clients, such as `token_endpoint_auth_signing_alg_values_supported`).
const SIGNING_ALG_MEMBERS: &[&str] = &[
    "id_token_signing_alg_values_supported",
    "userinfo_signing_alg_values_supported",
    "introspection_signing_alg_values_supported",
    "authorization_signing_alg_values_supported",
];

/// Discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer URL is unusable (not `https`, a query or fragment, not a URL).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The issuer could not be reached (connection, TLS, timeout).
    #[error("discovery failed: {0}")]
    Fetch(#[source] HttpError),
    /// Neither metadata URL gave a usable document; says what each answered.
    #[error("no usable metadata for issuer `{issuer}`: {tried}")]
    NoMetadata {
        /// The configured issuer.
        issuer: String,
        /// Each URL tried and what was wrong with its answer.
        tried: String,
    },
    /// The document is not usable metadata (not JSON, no `issuer` or `jwks_uri`, a
    /// `jwks_uri` that is not `https`).
    #[error("invalid metadata: {0}")]
    Invalid(String),
    /// The document's `issuer` is not the configured one. The specifications forbid using
    /// such a document.
    #[error(
        "the metadata names issuer `{found}`, not the configured `{expected}`; they must be equal"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// The metadata was fine, the first fetch of its JWK Set was not.
    #[error(transparent)]
    Keys(#[from] KeySourceError),
}

/// The metadata URLs for `issuer`, in the order they are tried.
fn metadata_urls(issuer: &str) -> Result<[Uri; 2], ConfigError> {
    let uri = check_url(issuer)?;
    if uri.query().is_some() || issuer.contains('#') {
        return Err(ConfigError::new(format!(
            "issuer `{issuer}` has a query or fragment (RFC 8414 §2 forbids both)"
        )));
    }
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(ConfigError::new(format!(
            "`{issuer}` is not an absolute URL"
        )));
    };
    let oidc = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let path = uri.path().trim_end_matches('/');
    let rfc8414 = format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}");
    let parse = |url: String| {
        url.parse::<Uri>()
            .map_err(|e| ConfigError::new(format!("invalid metadata URL `{url}`: {e}")))
    };
    Ok([parse(oidc)?, parse(rfc8414)?])
}

/// An issuer's metadata, as far as verifying its tokens needs it.
#[derive(Clone)]
pub struct Discovery {
    issuer: String,
    jwks_uri: Uri,
    signing_algorithms: Vec<Algorithm>,
    introspection_endpoint: Option<Uri>,
    authorization_endpoint: Option<Uri>,
    token_endpoint: Option<Uri>,
    end_session_endpoint: Option<Uri>,
    client: Option<HttpClient>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &self.issuer)
            .field("jwks_uri", &self.jwks_uri)
            .field("signing_algorithms", &self.signing_algorithms)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Fetches `issuer`'s metadata with the built-in HTTPS client: OpenID Connect discovery,
    /// then RFC 8414 (see the [module docs](self)).
    pub async fn fetch(issuer: &str) -> Result<Self, DiscoveryError> {
        Self::fetch_with(&HttpClient::new()?, issuer).await
    }

    pub(crate) async fn fetch_with(
        client: &HttpClient,
        issuer: &str,
    ) -> Result<Self, DiscoveryError> {
        let mut tried = Vec::new();
        for url in metadata_urls(issuer)? {
            match client
                .get(&url, "discovery endpoint", "application/json", None)
                .await
            {
                Ok(fetched) => match Self::from_json(issuer, &fetched.body) {
                    Ok(mut found) => {
                        found.client = Some(client.clone());
                        return Ok(found);
                    }
                    Err(e @ DiscoveryError::IssuerMismatch { .. }) => return Err(e),
                    Err(e) => tried.push(format!("{url}: {e}")),
                },
                Err(e @ HttpError::Status { .. }) => tried.push(e.to_string()),
                // The other URL is on the same host: it would fail the same way.
                Err(e) => return Err(DiscoveryError::Fetch(e)),
            }
        }
        Err(DiscoveryError::NoMetadata {
            issuer: issuer.to_owned(),
            tried: tried.join("; "),
        })
    }

    /// Reads a metadata document fetched for `issuer` (by a client of the application's own,
    /// for instance), with the same checks as [`fetch`](Self::fetch).
    ///
    /// ```
    /// use tower_token_auth::keys::{Discovery, DiscoveryError};
    ///
    /// let doc = br#"{"issuer":"https://auth.example","jwks_uri":"https://auth.example/jwks",
    ///               "id_token_signing_alg_values_supported":["PS256","HS256","none"]}"#;
    /// let metadata = Discovery::from_json("https://auth.example", doc)?;
    /// assert_eq!(metadata.jwks_uri(), "https://auth.example/jwks");
    /// assert_eq!(metadata.signing_algorithms(), [tower_token_auth::Algorithm::PS256]);
    /// assert!(matches!(
    ///     Discovery::from_json("https://auth.example/", doc),
    ///     Err(DiscoveryError::IssuerMismatch { .. })
    /// ));
    /// # Ok::<_, DiscoveryError>(())
    /// ```
    pub fn from_json(issuer: &str, json: &[u8]) -> Result<Self, DiscoveryError> {
        let doc: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| DiscoveryError::Invalid(format!("not JSON: {e}")))?;
        let member = |name: &str| doc.get(name).and_then(serde_json::Value::as_str);
        let found =
            member("issuer").ok_or_else(|| DiscoveryError::Invalid("no `issuer`".into()))?;
        if found != issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: found.to_owned(),
            });
        }
        let jwks_uri =
            member("jwks_uri").ok_or_else(|| DiscoveryError::Invalid("no `jwks_uri`".into()))?;
        let jwks_uri =
            check_url(jwks_uri).map_err(|e| DiscoveryError::Invalid(format!("jwks_uri: {e}")))?;
        let mut signing_algorithms = Vec::new();
        for name in SIGNING_ALG_MEMBERS {
            let listed = doc.get(*name).and_then(serde_json::Value::as_array);
            for alg in listed.into_iter().flatten().filter_map(|v| v.as_str()) {
                // Unknown names, `none` and HMAC (a shared secret, never in a public key set)
                // are left out.
                if let Ok(alg) = Algorithm::from_str(alg)
                    && alg.family() != AlgorithmFamily::Hmac
                    && !signing_algorithms.contains(&alg)
                {
                    signing_algorithms.push(alg);
                }
            }
        }
        // RFC 8414 §2: optional; checked like jwks_uri when present.
        let introspection_endpoint = member("introspection_endpoint")
            .map(check_url)
            .transpose()
            .map_err(|e| DiscoveryError::Invalid(format!("introspection_endpoint: {e}")))?;
        // The endpoints a relying party sends browsers to (or posts codes to): optional in
        // the document, checked like jwks_uri when present.
        let endpoint = |name: &str| {
            member(name)
                .map(check_url)
                .transpose()
                .map_err(|e| DiscoveryError::Invalid(format!("{name}: {e}")))
        };
        Ok(Self {
            issuer: found.to_owned(),
            jwks_uri,
            signing_algorithms,
            introspection_endpoint,
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            end_session_endpoint: endpoint("end_session_endpoint")?,
            client: None,
        })
    }

    /// The authorization endpoint (RFC 6749 §3.1), when the metadata names one.
    pub fn authorization_endpoint(&self) -> Option<&Uri> {
        self.authorization_endpoint.as_ref()
    }

    /// The token endpoint (RFC 6749 §3.2), when the metadata names one.
    pub fn token_endpoint(&self) -> Option<&Uri> {
        self.token_endpoint.as_ref()
    }

    /// The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0 §2.1), when the
    /// metadata names one.
    pub fn end_session_endpoint(&self) -> Option<&Uri> {
        self.end_session_endpoint.as_ref()
    }

    /// The token introspection endpoint (RFC 7662), when the metadata names one.
    pub fn introspection_endpoint(&self) -> Option<&Uri> {
        self.introspection_endpoint.as_ref()
    }

    /// The built-in HTTP client this metadata was fetched with, to reuse its pool.
    pub(crate) fn http_client(&self) -> Option<&HttpClient> {
        self.client.as_ref()
    }

    /// The issuer, equal to the configured one.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the issuer publishes its JWK Set.
    pub fn jwks_uri(&self) -> &Uri {
        &self.jwks_uri
    }

    /// The asymmetric algorithms the issuer says it signs with, in the document's order.
    pub fn signing_algorithms(&self) -> &[Algorithm] {
        &self.signing_algorithms
    }

    /// The policy for the issuer's JWK Set: asymmetric keys only; RSA keys without `alg`
    /// verify the advertised RSA algorithms (RS256 when none is advertised).
    pub fn jwk_policy(&self) -> JwkPolicy {
        policy_for(&self.signing_algorithms)
    }

    /// A key source for the issuer's JWK Set, over the built-in HTTPS client, with
    /// [`jwk_policy`](Self::jwk_policy).
    pub fn remote_jwks(&self) -> Result<RemoteJwks, ConfigError> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => HttpClient::new()?,
        };
        let fetcher = HttpFetcher::with_client(self.jwks_uri.clone(), client);
        Ok(RemoteJwks::new(fetcher).policy(self.jwk_policy()))
    }

    fn rsa_algorithms(&self) -> Option<Vec<Algorithm>> {
        rsa_among(&self.signing_algorithms)
    }
}

fn rsa_among(algs: &[Algorithm]) -> Option<Vec<Algorithm>> {
    let rsa: Vec<Algorithm> = algs
        .iter()
        .copied()
        .filter(|a| a.family() == AlgorithmFamily::Rsa)
        .collect();
    (!rsa.is_empty()).then_some(rsa)
}

fn policy_for(algs: &[Algorithm]) -> JwkPolicy {
    let policy = JwkPolicy::new().without_symmetric_keys();
    match rsa_among(algs) {
        Some(rsa) => policy.rsa_algorithms(rsa),
        None => policy,
    }
}

/// A fetcher that discovers the issuer's `jwks_uri` on its first successful fetch, then
/// fetches the JWK Set from there.
struct IssuerFetcher(Arc<Issuer>);

struct Issuer {
    issuer: String,
    client: HttpClient,
    found: Mutex<Option<(Uri, Option<Vec<Algorithm>>)>>,
}

impl JwksFetcher for IssuerFetcher {
    fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>> {
        let document = self.fetch_document(None);
        Box::pin(async move { Ok(document.await?.body().unwrap_or_default().to_owned()) })
    }

    fn fetch_document(
        &self,
        if_none_match: Option<&str>,
    ) -> BoxFuture<'static, Result<JwksResponse, BoxError>> {
        let this = Arc::clone(&self.0);
        let if_none_match = if_none_match.map(str::to_owned);
        Box::pin(async move {
            let found = this.found.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (jwks_uri, rsa) = match found {
                Some(found) => found,
                None => {
                    let metadata = Discovery::fetch_with(&this.client, &this.issuer).await?;
                    let found = (metadata.jwks_uri.clone(), metadata.rsa_algorithms());
                    *this.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(found.clone());
                    found
                }
            };
            let mut response =
                fetch_jwks(&this.client, &jwks_uri, if_none_match.as_deref()).await?;
            response.rsa_algorithms = rsa;
            Ok(response)
        })
    }
}

impl RemoteJwks {
    /// A source for `issuer`'s JWK Set that discovers its `jwks_uri` (see
    /// [`Discovery`]) at its first fetch, so it can be built while the issuer is down (with
    /// [`VerifierBuilder::build_with_jwks_lazy`](crate::VerifierBuilder::build_with_jwks_lazy)). RSA keys without `alg` verify the
    /// algorithms the metadata advertises unless a [`policy`](Self::policy) is set. Fails
    /// (without any network traffic) on an issuer URL that is not `https` (plain `http` only
    /// to 127.0.0.1, ::1 or localhost).
    pub fn from_issuer(issuer: &str) -> Result<Self, ConfigError> {
        metadata_urls(issuer)?;
        let fetcher = IssuerFetcher(Arc::new(Issuer {
            issuer: issuer.to_owned(),
            client: HttpClient::new()?,
            found: Mutex::new(None),
        }));
        Ok(Self::new(fetcher))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_follow_both_specs() {
        let cases = [
            (
                "https://auth.example",
                "https://auth.example/.well-known/openid-configuration",
                "https://auth.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://auth.example/",
                "https://auth.example/.well-known/openid-configuration",
                "https://auth.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://auth.example:8443/realms/acme",
                "https://auth.example:8443/realms/acme/.well-known/openid-configuration",
                "https://auth.example:8443/.well-known/oauth-authorization-server/realms/acme",
            ),
            (
                "https://auth.example/tenant/v2.0/",
                "https://auth.example/tenant/v2.0/.well-known/openid-configuration",
                "https://auth.example/.well-known/oauth-authorization-server/tenant/v2.0",
            ),
        ];
        for (issuer, oidc, rfc8414) in cases {
            let [a, b] = metadata_urls(issuer).unwrap();
            assert_eq!(
                (a.to_string(), b.to_string()),
                (oidc.into(), rfc8414.into())
            );
        }
        for bad in [
            "http://auth.example",
            "https://auth.example/?tenant=1",
            "https://auth.example/#x",
            "auth.example",
        ] {
            assert!(metadata_urls(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_documents() {
        let issuer = "https://auth.example";
        let read = |doc: &str| Discovery::from_json(issuer, doc.as_bytes());
        let ok = read(
            r#"{"issuer":"https://auth.example","jwks_uri":"https://keys.example/jwks",
                "id_token_signing_alg_values_supported":["RS256","ES256","HS512"],
                "userinfo_signing_alg_values_supported":["PS256","RS256","none","XX1"],
                "token_endpoint_auth_signing_alg_values_supported":["RS512"]}"#,
        )
        .unwrap();
        use Algorithm::*;
        assert_eq!(ok.signing_algorithms(), [RS256, ES256, PS256]);
        assert_eq!(ok.rsa_algorithms(), Some(vec![RS256, PS256]));
        assert_eq!(
            ok.jwk_policy(),
            JwkPolicy::new()
                .without_symmetric_keys()
                .rsa_algorithms([RS256, PS256])
        );
        let plain = read(r#"{"issuer":"https://auth.example","jwks_uri":"https://a/j"}"#).unwrap();
        assert_eq!(
            plain.jwk_policy(),
            JwkPolicy::new().without_symmetric_keys()
        );
        for (doc, want) in [
            ("<html>", "not JSON"),
            (r#"{"jwks_uri":"https://a/j"}"#, "no `issuer`"),
            (r#"{"issuer":"https://auth.example"}"#, "no `jwks_uri`"),
            (
                r#"{"issuer":"https://auth.example","jwks_uri":"http://a.example/j"}"#,
                "must use https",
            ),
        ] {
            let err = read(doc).unwrap_err().to_string();
            assert!(err.contains(want), "{doc}: {err}");
        }
        for other in [
            "https://auth.example/",
            "https://AUTH.example",
            "https://evil.example",
        ] {
            let doc = format!(r#"{{"issuer":"{other}","jwks_uri":"https://a/j"}}"#);
            assert!(
                matches!(read(&doc), Err(DiscoveryError::IssuerMismatch { .. })),
                "{other}"
            );
        }
    }
}
