//! OAuth-shaped HTTP endpoints over [`TokenLifecycle`]: the refresh grant (RFC 6749 §6) and
//! token revocation (RFC 7009), as plain tower services.
//!
//! They are framework-free `Service<http::Request<B>>`s; in axum mount them with
//! `route_service`:
//!
//! ```
//! use axum::Router;
//! use tower_token_auth::endpoint::{RevocationEndpoint, TokenEndpoint};
//! use tower_token_auth::refresh::MemoryRefreshStore;
//! use tower_token_auth::{JwtAuthLayer, TokenLifecycle, testing::TestKeys};
//!
//! let keys = TestKeys::hs256();
//! let layer = JwtAuthLayer::new(keys.verifier());
//! let lifecycle = TokenLifecycle::for_layer(&layer, keys.issuer(), MemoryRefreshStore::new());
//! let app: Router = Router::new()
//!     .route_service("/token", TokenEndpoint::new(lifecycle.clone()))
//!     .route_service("/revoke", RevocationEndpoint::new(lifecycle));
//! ```
//!
//! Both accept `application/x-www-form-urlencoded` (the RFC's format) and `application/json`
//! bodies of at most 8 KiB, refuse repeated parameters, and answer with
//! `Cache-Control: no-store`. Errors are `{"error":…,"error_description":…}` with the RFC's
//! codes: `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`,
//! `invalid_dpop_proof` (400: a refresh token bound to a DPoP key, RFC 9449 §5, which this
//! endpoint does not take proofs for), and `temporarily_unavailable` (503) when a store cannot
//! answer.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::dpop::DpopConfig;
use crate::lifecycle::{GrantError, TokenLifecycle, TokenPair};
use crate::refresh::MAX_REFRESH_TOKEN_LEN;
use crate::source::AccessCookie;

/// The largest request body the endpoints read.
pub const MAX_BODY: usize = 8 * 1024;

/// An OAuth error response (RFC 6749 §5.2, RFC 7009 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: &'static str,
}

impl OAuthError {
    /// An error response: `status`, the RFC error `code` (`invalid_grant`, `invalid_client`,
    /// …) and a human-readable `description` (never a secret: it reaches the client).
    pub const fn new(status: StatusCode, code: &'static str, description: &'static str) -> Self {
        Self {
            status,
            code,
            description,
        }
    }

    fn invalid_request(description: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable description.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The response: the JSON body `{"error", "error_description"}`, `Cache-Control:
    /// no-store`, and by status `WWW-Authenticate: Bearer` (401), `Retry-After: 1` (503),
    /// `Allow: POST` (405).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut res = json_response(self.status, body.to_string());
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        res
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for OAuthError {}

const UNAVAILABLE: OAuthError = OAuthError::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "temporarily_unavailable",
    "token store unavailable, retry later",
);

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

fn append_cookies(res: &mut Response<Full<Bytes>>, cookies: [HeaderValue; 2]) {
    for v in cookies {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Request parameters: each name at most once.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// A parameter's value, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), OAuthError> {
        if self.0.insert(name, value).is_some() {
            return Err(OAuthError::invalid_request("repeated parameter"));
        }
        Ok(())
    }
}

/// Parses a form or JSON body into parameters (the part of the endpoints without I/O).
pub fn parse_params(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<Params, OAuthError> {
    let essence = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let mut params = Params::default();
    match essence.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            for (k, v) in form_urlencoded::parse(body) {
                params.insert(k.into_owned(), v.into_owned())?;
            }
        }
        Some("application/json") => {
            let mut de = serde_json::Deserializer::from_slice(body);
            de.deserialize_map(JsonParams(&mut params))
                .map_err(|_| OAuthError::invalid_request("body is not a JSON object of strings"))?;
            de.end()
                .map_err(|_| OAuthError::invalid_request("trailing data after the JSON object"))?;
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "content type must be application/x-www-form-urlencoded or application/json",
            ));
        }
    }
    Ok(params)
}

struct JsonParams<'p>(&'p mut Params);

impl<'de> Visitor<'de> for JsonParams<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((k, v)) = map.next_entry::<String, String>()? {
            self.0
                .insert(k, v)
                .map_err(|_| serde::de::Error::custom("repeated parameter"))?;
        }
        Ok(())
    }
}

async fn read_params<B>(req: Request<B>) -> Result<(HeaderMap, Params), OAuthError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() != Method::POST {
        return Err(OAuthError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use POST",
        ));
    }
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| OAuthError::invalid_request("request body unreadable or larger than 8 KiB"))?
        .to_bytes();
    let params = parse_params(parts.headers.get(header::CONTENT_TYPE), &body)?;
    Ok((parts.headers, params))
}

/// Cookie delivery for browser apps: the access token in one cookie, the refresh token in
/// another scoped to the refresh endpoint's path. Both HttpOnly, Secure and SameSite=Lax by
/// default (see [`AccessCookie`]); the refresh token then never reaches JavaScript.
///
/// Cookie-authenticated unsafe requests need CSRF protection: put tower-http's `CsrfLayer`
/// (Sec-Fetch-Site / Origin checks) in front of the routes, as `examples/quickstart.rs` does.
#[derive(Debug, Clone)]
pub struct TokenCookies {
    access: AccessCookie,
    refresh: AccessCookie,
}

impl TokenCookies {
    /// `access_token` on `/`, `refresh_token` on `refresh_path`, both with secure defaults.
    pub fn new(refresh_path: &str) -> Self {
        Self {
            access: AccessCookie::new("access_token"),
            refresh: AccessCookie::new("refresh_token").path(refresh_path),
        }
    }

    /// Replaces both cookies' settings (names, paths, `Secure`…).
    pub fn with_cookies(access: AccessCookie, refresh: AccessCookie) -> Self {
        Self { access, refresh }
    }

    /// Turns `Secure` off on both, for plain-HTTP localhost only.
    pub fn insecure_for_localhost(mut self) -> Self {
        self.access = self.access.secure(false);
        self.refresh = self.refresh.secure(false);
        self
    }

    /// The access cookie's settings (give them to `JwtAuthLayer::with_cookie`).
    pub fn access(&self) -> &AccessCookie {
        &self.access
    }

    /// `Set-Cookie` values delivering `pair`.
    pub fn set(&self, pair: &TokenPair) -> [HeaderValue; 2] {
        [
            self.access.set_cookie(
                &pair.access.token,
                Duration::from_secs(pair.access.expires_in),
            ),
            self.refresh.set_cookie(
                &pair.refresh_token,
                Duration::from_secs(pair.refresh_expires_in),
            ),
        ]
    }

    /// `Set-Cookie` values deleting both cookies.
    pub fn clear(&self) -> [HeaderValue; 2] {
        [self.access.removal_cookie(), self.refresh.removal_cookie()]
    }

    pub(crate) fn refresh_from(&self, headers: &HeaderMap) -> Option<String> {
        crate::source::extract(
            headers,
            &[crate::source::TokenSource::Cookie(
                self.refresh.name().to_owned(),
            )],
            MAX_REFRESH_TOKEN_LEN,
        )
        .ok()
        .flatten()
        .map(str::to_owned)
    }
}

/// The token endpoint for the refresh grant (RFC 6749 §6):
/// `grant_type=refresh_token&refresh_token=…[&scope=…]` → `{"access_token","token_type",
/// "expires_in","refresh_token","scope"}`.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    lifecycle: TokenLifecycle,
    cookies: Option<TokenCookies>,
    dpop: Option<std::sync::Arc<DpopConfig>>,
}

impl TokenEndpoint {
    /// An endpoint over `lifecycle`.
    pub fn new(lifecycle: TokenLifecycle) -> Self {
        Self {
            lifecycle,
            cookies: None,
            dpop: None,
        }
    }

    /// Accept DPoP proofs (RFC 9449 §5): a request with one `DPoP` header has its proof
    /// checked by `dpop` (no `ath` at the token endpoint; `htm`/`htu` against this request,
    /// replay refused) and refreshes with
    /// [`TokenLifecycle::refresh_bound`]: a family bound to a key needs a proof by that key.
    /// A bad proof, or more than one, is 400 `invalid_dpop_proof` and spends nothing.
    /// The proof is checked only when the refresh token is current, so grants with junk
    /// tokens never fill the replay store; a spent token goes on to reuse detection as
    /// always. Without this, every family bound to a key is refused here.
    pub fn with_dpop(mut self, dpop: DpopConfig) -> Self {
        self.dpop = Some(std::sync::Arc::new(dpop));
        self
    }

    /// The key thumbprint of the request's DPoP proof: `Ok(None)` without a proof (or
    /// without DPoP configured), the error response for a bad one.
    async fn proof_jkt(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Response<Full<Bytes>>> {
        let Some(dpop) = &self.dpop else {
            return Ok(None);
        };
        let refuse = |description: &'static str| {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description).response()
        };
        let mut values = headers.get_all("dpop").iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Ok(None),
            (Some(v), None) => v,
            (Some(_), Some(_)) => return Err(refuse("more than one DPoP proof")),
        };
        let proof = value.to_str().map_err(|_| refuse("malformed DPoP proof"))?;
        match dpop
            .check(proof, method, uri, headers, None)
            .resolve()
            .await
        {
            Ok(verified) => Ok(Some(verified.jkt().to_owned())),
            Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(target: "tower_token_auth", error = %e, "DPoP replay check failed");
                Err(UNAVAILABLE.response())
            }
            Err(e) => Err(refuse(e.description())),
        }
    }

    /// Cookie mode: read the refresh token from its cookie when the body has none, deliver
    /// the new pair in cookies (the refresh token is then left out of the JSON), and clear
    /// them when the grant is refused.
    pub fn with_cookies(mut self, cookies: TokenCookies) -> Self {
        self.cookies = Some(cookies);
        self
    }

    async fn handle<B>(self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let (headers, params) = match read_params(req).await {
            Ok(p) => p,
            Err(e) => return e.response(),
        };
        match params.get("grant_type") {
            None | Some("") => {
                return OAuthError::invalid_request("missing grant_type").response();
            }
            Some("refresh_token") => {}
            Some(_) => {
                return OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only the refresh_token grant is supported here",
                )
                .response();
            }
        }
        let token = match params.get("refresh_token") {
            Some(t) if !t.is_empty() => Some(t.to_owned()),
            _ => self.cookies.as_ref().and_then(|c| c.refresh_from(&headers)),
        };
        let Some(token) = token else {
            return OAuthError::invalid_request("missing refresh_token").response();
        };
        let invalid_grant = |cookies: &Option<TokenCookies>| {
            let mut res = OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "refresh token invalid, expired, spent or revoked",
            )
            .response();
            if let Some(c) = cookies {
                append_cookies(&mut res, c.clear());
            }
            res
        };
        // The proof is checked (and its jti recorded) only for a current refresh token: junk
        // grants never reach the replay store. A spent or unknown token goes on without one,
        // so reuse detection still runs and revokes a spent token's family.
        let current = match self.dpop.is_some() && headers.contains_key("dpop") {
            true => match self.lifecycle.is_current(&token).await {
                Ok(current) => current,
                Err(e) => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "refresh grant failed");
                    return UNAVAILABLE.response();
                }
            },
            false => false,
        };
        let jkt = if current {
            match self.proof_jkt(&method, &uri, &headers).await {
                Ok(jkt) => jkt,
                Err(response) => return response,
            }
        } else {
            None
        };
        let grant = self
            .lifecycle
            .refresh_bound(&token, params.get("scope"), jkt.as_deref())
            .await;
        match grant {
            Ok(pair) => {
                let mut body = serde_json::json!({
                    "access_token": pair.access.token,
                    "token_type": if pair.jkt.is_some() { "DPoP" } else { "Bearer" },
                    "expires_in": pair.access.expires_in,
                    "scope": pair.scope,
                });
                if self.cookies.is_none() {
                    body["refresh_token"] = pair.refresh_token.clone().into();
                }
                let mut res = json_response(StatusCode::OK, body.to_string());
                if let Some(c) = &self.cookies {
                    append_cookies(&mut res, c.set(&pair));
                }
                res
            }
            Err(GrantError::InvalidGrant) => invalid_grant(&self.cookies),
            Err(GrantError::InvalidScope) => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "requested scope exceeds the granted scope",
            )
            .response(),
            // RFC 9449 §5. The refresh token is not spent: its cookies stay.
            Err(GrantError::InvalidDpopProof) => OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "the refresh token is bound to a DPoP key and the request has no proof of it",
            )
            .response(),
            Err(GrantError::Unavailable(e)) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "refresh grant failed");
                UNAVAILABLE.response()
            }
        }
    }
}

/// The revocation endpoint (RFC 7009): `token=…[&token_type_hint=access_token|refresh_token]`,
/// as a form or as JSON → 200 with an empty body (no content type) whether or not the token
/// was known.
#[derive(Debug, Clone)]
pub struct RevocationEndpoint {
    lifecycle: TokenLifecycle,
    cookies: Option<TokenCookies>,
}

impl RevocationEndpoint {
    /// An endpoint over `lifecycle`.
    pub fn new(lifecycle: TokenLifecycle) -> Self {
        Self {
            lifecycle,
            cookies: None,
        }
    }

    /// Cookie mode: without a `token` parameter, revoke the refresh token from its cookie (a
    /// browser's logout after its access token expired), and delete both cookies. The refresh
    /// cookie's path must cover this endpoint (e.g. refresh cookie on `/token`, this endpoint
    /// at `/token/revoke`).
    pub fn with_cookies(mut self, cookies: TokenCookies) -> Self {
        self.cookies = Some(cookies);
        self
    }

    async fn handle<B>(self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (headers, params) = match read_params(req).await {
            Ok(p) => p,
            Err(e) => return e.response(),
        };
        let token = match params.get("token").filter(|t| !t.is_empty()) {
            Some(t) => Some(t.to_owned()),
            None => self.cookies.as_ref().and_then(|c| c.refresh_from(&headers)),
        };
        let Some(token) = token else {
            return OAuthError::invalid_request("missing token").response();
        };
        match self
            .lifecycle
            .revoke(&token, params.get("token_type_hint"))
            .await
        {
            Ok(()) => {
                // RFC 7009 §2.2: 200, and the client ignores the body; send none, and so no
                // content type either.
                let mut res = json_response(StatusCode::OK, String::new());
                res.headers_mut().remove(header::CONTENT_TYPE);
                if let Some(c) = &self.cookies {
                    append_cookies(&mut res, c.clear());
                }
                res
            }
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "revocation failed");
                UNAVAILABLE.response()
            }
        }
    }
}

crate::handler_service::handler_service!(TokenEndpoint, read_body);
crate::handler_service::handler_service!(RevocationEndpoint, read_body);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ct: &'static str, body: &[u8]) -> Result<Params, OAuthError> {
        parse_params(Some(&HeaderValue::from_static(ct)), body)
    }

    #[test]
    fn form_and_json() {
        let p = parse("application/x-www-form-urlencoded", b"a=1&b=x%20y").unwrap();
        assert_eq!((p.get("a"), p.get("b")), (Some("1"), Some("x y")));
        let p = parse("application/json; charset=utf-8", br#"{"a":"1"}"#).unwrap();
        assert_eq!(p.get("a"), Some("1"));
    }

    #[test]
    fn refusals() {
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        assert!(parse(form, b"a=1&a=2").is_err());
        assert!(parse(json, br#"{"a":"1","a":"2"}"#).is_err());
        assert!(parse(json, br#"{"a":1}"#).is_err());
        assert!(parse(json, br#"["a"]"#).is_err());
        assert!(parse(json, br#"{"a":"1"} x"#).is_err());
        assert!(parse("text/plain", b"a=1").is_err());
        assert!(parse_params(None, b"a=1").is_err());
    }
}
