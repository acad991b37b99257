//! Where a token is read from: the `Authorization: Bearer` header and/or a named cookie.
//!
//! Sources are tried in the configured order and the first one that is *present* decides:
//! a bad token in the first source is refused even if a later source holds a good one. The
//! query string is never read (RFC 6750 §2.3 is a leak into logs and `Referer`).

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue, header};

use crate::error::{AuthError, ConfigError, InvalidRequest, InvalidToken};

/// One place a token can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1). Exactly one
    /// `Authorization` header is allowed; another scheme (e.g. `Basic`) counts as no token.
    AuthorizationBearer,
    /// A cookie with this name. The cookie must appear once.
    Cookie(String),
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1), with its proof in the `DPoP` header.
    /// Added by [`JwtAuthLayer::with_dpop`](crate::JwtAuthLayer::with_dpop), which checks the
    /// proof; another scheme counts as no token.
    AuthorizationDpop,
}

/// Settings of the access-token cookie: read by the layer, written at login, cleared at logout.
///
/// Secure defaults: `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`.
///
/// ```
/// use tower_token_auth::AccessCookie;
///
/// let cookie = AccessCookie::new("access_token").secure(false); // plain-HTTP localhost only
/// let set = cookie.set_cookie("eyJ...", std::time::Duration::from_secs(900));
/// assert!(set.to_str().unwrap().starts_with("access_token=eyJ...; HttpOnly; SameSite=Lax; Path=/; Max-Age=900"));
/// let clear = cookie.removal_cookie();
/// assert!(clear.to_str().unwrap().contains("Max-Age=0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCookie {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    same_site: SameSite,
}

impl AccessCookie {
    /// A cookie named `name`, with secure defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            path: "/".into(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
        }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether to set `Secure` (default true; turn off only for plain-HTTP localhost).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: host-only).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The cookie's `SameSite` (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    fn build(&self, value: String, max_age: Duration) -> HeaderValue {
        let mut c = Cookie::build((self.name.clone(), value))
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.clone())
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ));
        if let Some(d) = &self.domain {
            c = c.domain(d.clone());
        }
        // Names, paths and tokens are visible ASCII; a value that is not still must not panic.
        HeaderValue::from_str(&c.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value carrying `token` for `max_age`.
    pub fn set_cookie(&self, token: &str, max_age: Duration) -> HeaderValue {
        self.build(token.to_owned(), max_age)
    }

    /// A `Set-Cookie` value that deletes the cookie (same attributes, empty value, `Max-Age=0`).
    pub fn removal_cookie(&self) -> HeaderValue {
        self.build(String::new(), Duration::ZERO)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(format!(
                "invalid cookie name `{}`",
                self.name
            )))
        }
    }
}

/// Finds the token in `headers`, trying `sources` in order.
///
/// `Ok(None)`: no source was present. `max_len` bounds the token; longer ones are refused
/// before anything else is done with them.
pub(crate) fn extract<'h>(
    headers: &'h HeaderMap,
    sources: &[TokenSource],
    max_len: usize,
) -> Result<Option<&'h str>, AuthError> {
    Ok(extract_with_source(headers, sources, max_len)?.map(|(token, _)| token))
}

/// Like [`extract`], also telling which source the token came from.
pub(crate) fn extract_with_source<'h, 's>(
    headers: &'h HeaderMap,
    sources: &'s [TokenSource],
    max_len: usize,
) -> Result<Option<(&'h str, &'s TokenSource)>, AuthError> {
    for source in sources {
        let found = match source {
            TokenSource::AuthorizationBearer => authorization(headers, b"bearer", max_len)?,
            TokenSource::AuthorizationDpop => authorization(headers, b"dpop", max_len)?,
            TokenSource::Cookie(name) => cookie(headers, name, max_len)?,
        };
        if let Some(token) = found {
            return Ok(Some((token, source)));
        }
    }
    Ok(None)
}

/// The token of `Authorization: <scheme> <token>` (`scheme` in lower case, matched without
/// regard to case).
fn authorization<'h>(
    headers: &'h HeaderMap,
    scheme: &[u8],
    max_len: usize,
) -> Result<Option<&'h str>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(
            InvalidRequest::MultipleAuthorizationHeaders,
        ));
    }
    let bytes = value.as_bytes();
    let is_scheme = bytes.len() >= scheme.len()
        && bytes[..scheme.len()].eq_ignore_ascii_case(scheme)
        && bytes.get(scheme.len()).is_none_or(|&b| b == b' ');
    if !is_scheme {
        // Another scheme (Basic, Digest...) is not a token of this one.
        return Ok(None);
    }
    let rest = &bytes[scheme.len()..];
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(AuthError::invalid_request(InvalidRequest::EmptyBearerToken));
    }
    if token.len() > max_len {
        return Err(AuthError::invalid_token(InvalidToken::TooLarge));
    }
    // The b64token syntax is checked only if the token fails verification
    // (`bearer_syntax_error`): a token that verifies has the syntax, and the check is not free.
    match std::str::from_utf8(token) {
        Ok(token) => Ok(Some(token)),
        Err(_) => Err(AuthError::invalid_request(InvalidRequest::NonAsciiHeader)),
    }
}

/// For a bearer token that failed verification: the 400 `invalid_request` it deserves when it
/// is not even RFC 6750 `b64token` syntax (rather than a 401 for a bad token).
pub(crate) fn bearer_syntax_error(token: &str) -> Option<AuthError> {
    (!is_b64token(token.as_bytes())).then(|| {
        AuthError::invalid_request(if token.is_ascii() {
            InvalidRequest::MalformedBearerToken
        } else {
            InvalidRequest::NonAsciiHeader
        })
    })
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    const ALLOWED: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] =
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            b += 1;
        }
        table
    };
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0 && token[..body_end].iter().all(|&b| ALLOWED[usize::from(b)])
}

fn cookie<'h>(
    headers: &'h HeaderMap,
    name: &str,
    max_len: usize,
) -> Result<Option<&'h str>, AuthError> {
    let mut found: Option<&'h str> = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else {
            return Err(AuthError::invalid_request(InvalidRequest::NonAsciiHeader));
        };
        for parsed in Cookie::split_parse(value) {
            // Other applications' malformed cookies are not ours to judge.
            let Ok(c) = parsed else { continue };
            if c.name_raw() != Some(name) {
                continue;
            }
            if found.is_some() {
                return Err(AuthError::invalid_request(
                    InvalidRequest::DuplicateTokenCookie,
                ));
            }
            let v = c.value_raw().unwrap_or("");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.len() > max_len {
                return Err(AuthError::invalid_token(InvalidToken::TooLarge));
            }
            found = Some(v);
        }
    }
    // An empty cookie (as left by some logouts) is no token.
    Ok(found.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    const BOTH: &[TokenSource] = &[TokenSource::AuthorizationBearer];

    #[test]
    fn bearer_forms() {
        let ok = |v: &[u8]| {
            extract(&headers(&[("authorization", v)]), BOTH, 100)
                .unwrap()
                .map(str::to_owned)
        };
        assert_eq!(ok(b"Bearer abc.def.ghi").as_deref(), Some("abc.def.ghi"));
        assert_eq!(ok(b"bEaReR   abc ").as_deref(), Some("abc"));
        assert_eq!(ok(b"Basic dXNlcjpwYXNz"), None);
        assert_eq!(ok(b"Bearerabc"), None);
        let err = |v: &[u8]| extract(&headers(&[("authorization", v)]), BOTH, 100).unwrap_err();
        assert_eq!(
            err(b"Bearer").kind(),
            &crate::AuthErrorKind::InvalidRequest(InvalidRequest::EmptyBearerToken)
        );
        let syntax = |t: &str| bearer_syntax_error(t).map(|e| e.kind().clone());
        let malformed = Some(crate::AuthErrorKind::InvalidRequest(
            InvalidRequest::MalformedBearerToken,
        ));
        assert_eq!(syntax("a b"), malformed);
        assert_eq!(syntax("==="), malformed);
        assert_eq!(syntax("a$b"), malformed);
        assert_eq!(syntax("abc.DEF-_~+/=="), None);
        assert_eq!(
            err(b"Bearer \xff\xfe").kind(),
            &crate::AuthErrorKind::InvalidRequest(InvalidRequest::NonAsciiHeader)
        );
    }

    #[test]
    fn cookie_forms() {
        let src = [TokenSource::Cookie("at".into())];
        let get =
            |v: &[u8]| extract(&headers(&[("cookie", v)]), &src, 100).map(|t| t.map(str::to_owned));
        assert_eq!(get(b"a=1; at=tok; b=2").unwrap().as_deref(), Some("tok"));
        assert_eq!(get(b"a=1; att=tok").unwrap(), None);
        assert_eq!(get(b"at=").unwrap(), None);
        assert!(get(b"at=1; at=2").is_err());
    }
}
