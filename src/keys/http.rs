//! The built-in HTTPS client for JWK Sets and discovery documents (feature `http-client`):
//! hyper with rustls (aws-lc-rs, Mozilla's root certificates through `webpki-roots`).
//!
//! - HTTPS only, except for loopback hosts (`127.0.0.1`, `::1`, `localhost`), checked when the
//!   fetcher is made: a configuration error, before any network traffic.
//! - The body is capped (1 MiB by default); a connect timeout (5 s) and a total timeout for the
//!   whole exchange, redirects included (10 s).
//! - Up to 3 redirects, each to a URL that passes the same check, never from HTTPS to HTTP.
//! - The status is checked before the body is read: a `503` HTML page is
//!   "JWKS endpoint answered 503", not an invalid JWK Set. Bodies are never logged.
//! - `Cache-Control: max-age`, `Age` and `ETag` are passed on to [`RemoteJwks`], and the next
//!   fetch sends `If-None-Match`.
//!
//! No proxy support (`HTTPS_PROXY` is not read) and no private root certificates: bring your
//! own client as a [`JwksFetcher`] for those.
//!
//! ```no_run
//! use tower_token_auth::keys::RemoteJwks;
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::from_url("https://auth.example/.well-known/jwks.json")?;
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer("https://auth.example")
//!     .audience("orders")
//!     .build_with_jwks(jwks)
//!     .await?;
//! # let _ = verifier; Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::remote::{BoxError, JwksFetcher, JwksResponse, RemoteJwks};
pub(crate) use super::url::check_url;
use crate::error::ConfigError;
use crate::revocation::BoxFuture;

/// The default cap on a response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;
const USER_AGENT: &str = concat!("tower-token-auth/", env!("CARGO_PKG_VERSION"));

/// A fetch over HTTP failed. Carried as the source of a
/// [`KeySourceError::Fetch`](super::KeySourceError::Fetch) or a discovery error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The endpoint answered with a status other than success (or `304` to a conditional
    /// request). The body was not read.
    #[error("{what} answered {} ({url})", status.as_u16())]
    Status {
        /// Which endpoint: "JWKS endpoint", "discovery endpoint".
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The status it answered.
        status: StatusCode,
    },
    /// The body is longer than the cap.
    #[error("{what} answered a body over the {limit}-byte limit ({url})")]
    TooLarge {
        /// Which endpoint.
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The whole exchange took longer than the timeout.
    #[error("{what} did not answer within {timeout:?} ({url})")]
    Timeout {
        /// Which endpoint.
        what: &'static str,
        /// The URL asked.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Connecting, TLS, or reading the response failed.
    #[error("{what} could not be reached ({url}): {detail}")]
    Transport {
        /// Which endpoint.
        what: &'static str,
        /// The URL asked.
        url: String,
        /// What failed, with its causes.
        detail: String,
    },
    /// A redirect that is not followed: too many, no usable `Location`, or to a URL that is
    /// not allowed (plain HTTP to a host that is not loopback, HTTPS to HTTP).
    #[error("{what} redirected {detail} ({url})")]
    Redirect {
        /// Which endpoint.
        what: &'static str,
        /// The URL asked.
        url: String,
        /// Why it was not followed.
        detail: String,
    },
}

/// Where a redirect from `from` to `location` leads, if it may be followed.
fn redirect_target(from: &Uri, location: Option<&HeaderValue>) -> Result<Uri, String> {
    let location = location
        .and_then(|l| l.to_str().ok())
        .ok_or("without a usable Location")?;
    let target = if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = from.clone().into_parts();
        parts.path_and_query = Some(
            location
                .parse()
                .map_err(|_| format!("to an invalid Location `{location}`"))?,
        );
        Uri::from_parts(parts).map_err(|_| format!("to an invalid Location `{location}`"))?
    } else {
        check_url(location).map_err(|e| format!("to a URL that is not allowed: {e}"))?
    };
    if from.scheme_str() == Some("https") && target.scheme_str() != Some("https") {
        return Err(format!("from https to `{location}`"));
    }
    Ok(target)
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// One answer: status, headers and the (capped) body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// The shared HTTP client and its limits. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_body: usize,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub(crate) fn new() -> Result<Self, ConfigError> {
        Ok(Self {
            client: Self::client(DEFAULT_CONNECT_TIMEOUT)?,
            max_body: DEFAULT_MAX_BODY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    fn client(
        connect_timeout: Duration,
    ) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, ConfigError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        // The provider is given, not the process default: an application may have installed
        // another one, or several crates may enable rustls features that make the default
        // ambiguous.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| ConfigError::new(format!("TLS configuration: {e}")))?
            // The scheme is checked before any request (check_url): http only to loopback.
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https))
    }

    pub(crate) fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    pub(crate) fn set_connect_timeout(&mut self, timeout: Duration) -> Result<(), ConfigError> {
        self.client = Self::client(timeout)?;
        self.connect_timeout = timeout;
        Ok(())
    }

    /// GETs `url` (following allowed redirects) within the total timeout.
    pub(crate) async fn get(
        &self,
        url: &Uri,
        what: &'static str,
        accept: &'static str,
        if_none_match: Option<&str>,
    ) -> Result<Fetched, HttpError> {
        let exchange = self.get_following(url, what, accept, if_none_match);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                what,
                url: url.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    /// POSTs a form to `url` within the total timeout; no redirects are followed (a token
    /// or a client secret is never sent on to another URL). The answer's status is returned
    /// as it is, with the (capped) body: the caller decides what a status means.
    pub(crate) async fn post_form(
        &self,
        url: &Uri,
        what: &'static str,
        headers: HeaderMap,
        body: String,
    ) -> Result<Fetched, HttpError> {
        let exchange = async {
            let transport = |detail: String| HttpError::Transport {
                what,
                url: url.to_string(),
                detail,
            };
            let mut request = Request::post(url.clone())
                .header(header::ACCEPT, "application/json")
                .header(header::USER_AGENT, USER_AGENT)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| transport(e.to_string()))?;
            request.headers_mut().extend(headers);
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(chain(&e)))?;
            self.read(url, what, response).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                what,
                url: url.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    /// Reads a response's body within the cap.
    async fn read(
        &self,
        url: &Uri,
        what: &'static str,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Fetched, HttpError> {
        let status = response.status();
        let too_large = || HttpError::TooLarge {
            what,
            url: url.to_string(),
            limit: self.max_body,
        };
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_body as u64) {
            return Err(too_large());
        }
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    HttpError::Transport {
                        what,
                        url: url.to_string(),
                        detail: format!("reading the body: {}", chain(&*e)),
                    }
                }
            })?
            .to_bytes();
        Ok(Fetched {
            status,
            headers: parts.headers,
            body,
        })
    }

    async fn get_following(
        &self,
        url: &Uri,
        what: &'static str,
        accept: &'static str,
        if_none_match: Option<&str>,
    ) -> Result<Fetched, HttpError> {
        // An ETag that is not a valid header value is not sent back.
        let if_none_match = if_none_match.and_then(|tag| HeaderValue::from_str(tag).ok());
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let transport = |detail: String| HttpError::Transport {
                what,
                url: url.to_string(),
                detail,
            };
            let mut request = Request::get(url.clone())
                .header(header::ACCEPT, accept)
                .header(header::USER_AGENT, USER_AGENT);
            if let Some(tag) = &if_none_match {
                request = request.header(header::IF_NONE_MATCH, tag.clone());
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| transport(e.to_string()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(chain(&e)))?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = redirect_target(&url, response.headers().get(header::LOCATION))
                    .map_err(|detail| HttpError::Redirect {
                        what,
                        url: url.to_string(),
                        detail,
                    })?;
                url = next;
                continue;
            }
            let not_modified = status == StatusCode::NOT_MODIFIED && if_none_match.is_some();
            if !status.is_success() && !not_modified {
                return Err(HttpError::Status {
                    what,
                    url: url.to_string(),
                    status,
                });
            }
            return self.read(&url, what, response).await;
        }
        Err(HttpError::Redirect {
            what,
            url: url.to_string(),
            detail: format!("more than {MAX_REDIRECTS} times"),
        })
    }
}

/// A [`JwksFetcher`] over the built-in HTTPS client: what [`RemoteJwks::from_url`] uses.
/// Sends `If-None-Match` when it has an `ETag`, and reports `Cache-Control` to the source.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_token_auth::keys::{HttpFetcher, RemoteJwks};
///
/// # fn run() -> Result<(), tower_token_auth::ConfigError> {
/// let fetcher = HttpFetcher::new("https://auth.example/.well-known/jwks.json")?
///     .max_body_bytes(256 * 1024)
///     .timeout(Duration::from_secs(5));
/// let jwks = RemoteJwks::new(fetcher);
/// # let _ = jwks; Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpFetcher {
    url: Uri,
    client: HttpClient,
}

impl fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("url", &self.url)
            .field("client", &self.client)
            .finish()
    }
}

const JWKS_ACCEPT: &str = "application/jwk-set+json, application/json";

impl HttpFetcher {
    /// A fetcher for the JWK Set at `url`. Fails (without any network traffic) on a URL that
    /// is not `https` (plain `http` only to 127.0.0.1, ::1 or localhost).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            url: check_url(url)?,
            client: HttpClient::new()?,
        })
    }

    pub(crate) fn with_client(url: Uri, client: HttpClient) -> Self {
        Self { url, client }
    }

    /// Refuse response bodies longer than `bytes` (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.client.max_body = bytes;
        self
    }

    /// The most one exchange may take, redirects and body included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.timeout = timeout;
        self
    }

    /// The most connecting (TCP) may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        self.client.set_connect_timeout(timeout)?;
        Ok(self)
    }

    /// The URL fetched.
    pub fn url(&self) -> &Uri {
        &self.url
    }
}

/// Fetches the JWK Set at `url` with `client`.
pub(crate) async fn fetch_jwks(
    client: &HttpClient,
    url: &Uri,
    if_none_match: Option<&str>,
) -> Result<JwksResponse, BoxError> {
    let fetched = client
        .get(url, "JWKS endpoint", JWKS_ACCEPT, if_none_match)
        .await?;
    if fetched.status == StatusCode::NOT_MODIFIED {
        return Ok(JwksResponse::not_modified().with_cache_headers(&fetched.headers));
    }
    let body = String::from_utf8(fetched.body.to_vec())
        .map_err(|_| format!("JWKS endpoint answered a body that is not UTF-8 ({url})"))?;
    Ok(JwksResponse::document(body).with_cache_headers(&fetched.headers))
}

impl JwksFetcher for HttpFetcher {
    fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>> {
        let document = self.fetch_document(None);
        Box::pin(async move {
            let response = document.await?;
            Ok(response.body().unwrap_or_default().to_owned())
        })
    }

    fn fetch_document(
        &self,
        if_none_match: Option<&str>,
    ) -> BoxFuture<'static, Result<JwksResponse, BoxError>> {
        let (client, url) = (self.client.clone(), self.url.clone());
        let if_none_match = if_none_match.map(str::to_owned);
        Box::pin(async move { fetch_jwks(&client, &url, if_none_match.as_deref()).await })
    }
}

impl RemoteJwks {
    /// A source fetching the JWK Set at `url` with the built-in HTTPS client (feature
    /// `http-client`; see [`HttpFetcher`] for its limits). Fails (without any network traffic)
    /// on a URL that is not `https` (plain `http` only to 127.0.0.1, ::1 or localhost).
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Ok(Self::new(HttpFetcher::new(url)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_required_except_loopback() {
        for ok in [
            "https://auth.example/jwks",
            "https://10.0.0.1:8443/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.1.2.3/jwks",
            "http://[::1]:8080/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST:1/jwks",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.example/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "ftp://auth.example/jwks",
            "/jwks",
            "https://user:pw@auth.example/jwks",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects() {
        let from: Uri = "https://a.example/x".parse().unwrap();
        let to = |l: &str| redirect_target(&from, Some(&HeaderValue::from_str(l).unwrap()));
        assert_eq!(to("/y?z=1").unwrap(), "https://a.example/y?z=1");
        assert_eq!(to("https://b.example/j").unwrap(), "https://b.example/j");
        assert!(to("http://127.0.0.1/j").is_err(), "https to http");
        assert!(to("http://b.example/j").is_err());
        assert!(to("//b.example/j").is_err());
        assert!(redirect_target(&from, None).is_err());
        let local: Uri = "http://127.0.0.1:1/x".parse().unwrap();
        let loc = HeaderValue::from_static("/y");
        assert_eq!(
            redirect_target(&local, Some(&loc)).unwrap(),
            "http://127.0.0.1:1/y"
        );
    }
}
