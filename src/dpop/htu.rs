//! The `htu` comparison: the request's URL, and both sides normalised as RFC 3986 §6.2.2
//! (syntax: case, percent-encoding, dot segments) and §6.2.3 (scheme: default port, empty
//! path) say, query and fragment dropped (RFC 9449 §4.3 step 9).

use http::{HeaderMap, Uri, header};

use crate::ConfigError;

/// The longest `htu` or request URL compared; longer ones never match.
const MAX_URL_LEN: usize = 4096;

/// Scheme and authority (and an optional path prefix) the service is reached at, as clients
/// see it: what [`DpopConfig::external_origin`](super::DpopConfig::external_origin) sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExternalOrigin {
    /// `https://host[:port]`, normalised.
    origin: String,
    /// A normalised path prefix without a trailing `/` (`""` for none).
    prefix: String,
}

impl ExternalOrigin {
    pub(crate) fn parse(origin: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| {
            ConfigError::new(format!(
                "external origin {origin:?}: {why}; expected e.g. \"https://api.example.com\" or \
                 \"https://example.com/api\""
            ))
        };
        if origin.contains(['?', '#']) {
            return Err(bad("no query or fragment allowed"));
        }
        let url = normalize(origin).ok_or_else(|| bad("not an absolute http(s) URL"))?;
        let prefix = url.path.trim_end_matches('/').to_owned();
        Ok(Self {
            origin: url.origin,
            prefix,
        })
    }
}

/// An absolute URL, normalised, without query and fragment.
#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    /// `scheme://host[:port]`: scheme and host in lower case, default port dropped.
    origin: String,
    /// Starts with `/`; unreserved characters decoded, other percent-escapes in upper case, dot
    /// segments removed.
    path: String,
}

impl Normalized {
    fn into_string(self) -> String {
        self.origin + &self.path
    }
}

/// `htu` normalised for comparison, or `None` when it is not an absolute `http`/`https` URL.
pub(crate) fn normalize_htu(htu: &str) -> Option<String> {
    normalize(htu).map(Normalized::into_string)
}

/// The URL of the request, normalised, as a client would have written it in `htu`:
///
/// - with an external origin: that origin, its path prefix, then the request's path;
/// - else, when the request target is absolute (HTTP/2, proxies' absolute-form): that URL;
/// - else `https://` and the request's single `Host` header, then the path.
///
/// `None` when there is no such URL (no or several `Host` headers, an `*` target).
pub(crate) fn request_url(
    origin: Option<&ExternalOrigin>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<String> {
    let path = uri.path();
    // Not an `*` (asterisk-form) target, nor anything else that is not an absolute path.
    if !path.starts_with('/') {
        return None;
    }
    if let Some(origin) = origin {
        let path = normalize_path(path)?;
        return Some(format!("{}{}{}", origin.origin, origin.prefix, path));
    }
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        return normalize_htu(&format!("{scheme}://{}{path}", authority.as_str()));
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next()?.to_str().ok()?;
    if hosts.next().is_some() || host.contains(['/', '?', '#', '@']) {
        return None;
    }
    normalize_htu(&format!("https://{host}{path}"))
}

fn normalize(url: &str) -> Option<Normalized> {
    if url.len() > MAX_URL_LEN || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let url = url.split('#').next()?;
    let url = url.split('?').next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    // RFC 9110 §4.2.4: no userinfo in http(s) URIs.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return None;
    }
    let host = normalize_percent(&host.to_ascii_lowercase())?;
    let mut origin = format!("{scheme}://{host}");
    match port {
        Some(port) if port != default_port => origin.push_str(&format!(":{port}")),
        _ => {}
    }
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        normalize_path(path)?
    };
    Some(Normalized { origin, path })
}

/// Host and port of an authority; the port is `None` when absent or empty (`host:`).
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// A path starting with `/`, percent-normalised, dot segments removed.
fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    Some(remove_dot_segments(&normalize_percent(path)?))
}

/// RFC 3986 §6.2.2.1–2: percent-escapes of unreserved characters decoded, the others in upper
/// case. `None` for a `%` not followed by two hex digits.
fn normalize_percent(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            let value = (hi * 16 + lo) as u8;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else {
                out.push('%');
                out.push(hex[0].to_ascii_uppercase() as char);
                out.push(hex[1].to_ascii_uppercase() as char);
            }
            i += 3;
        } else {
            // Only ASCII reaches here (checked by the callers or by `http::Uri`).
            out.push(b as char);
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments resolved, never above the root.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "." | ".." => {
                if segment == ".." {
                    out.pop();
                }
                // A trailing `.` or `..` leaves a trailing `/`.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_urls_normalise_alike() {
        let cases = [
            (
                "https://api.example.com/orders",
                "https://api.example.com/orders",
            ),
            (
                "HTTPS://API.Example.COM/orders",
                "https://api.example.com/orders",
            ),
            (
                "https://api.example.com:443/orders",
                "https://api.example.com/orders",
            ),
            (
                "http://api.example.com:80/orders",
                "http://api.example.com/orders",
            ),
            (
                "https://api.example.com:/orders",
                "https://api.example.com/orders",
            ),
            (
                "https://api.example.com:8443/orders",
                "https://api.example.com:8443/orders",
            ),
            (
                "https://api.example.com:08443/orders",
                "https://api.example.com:8443/orders",
            ),
            ("http://api.example.com:443/", "http://api.example.com:443/"),
            ("https://api.example.com", "https://api.example.com/"),
            (
                "https://api.example.com/orders?x=1#frag",
                "https://api.example.com/orders",
            ),
            (
                "https://api.example.com/orders#frag?x",
                "https://api.example.com/orders",
            ),
            (
                "https://api.example.com/%7euser/%2fa%2Fb",
                "https://api.example.com/~user/%2Fa%2Fb",
            ),
            (
                "https://api.example.com/a/./b/../c",
                "https://api.example.com/a/c",
            ),
            (
                "https://api.example.com/a/%2E%2E/c",
                "https://api.example.com/c",
            ),
            ("https://api.example.com/a/..", "https://api.example.com/"),
            (
                "https://api.example.com/../../x",
                "https://api.example.com/x",
            ),
            ("https://api.example.com/a/.", "https://api.example.com/a/"),
            (
                "https://api.example.com/a//b/",
                "https://api.example.com/a//b/",
            ),
            ("https://[::1]:443/x", "https://[::1]/x"),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
            (
                "https://Case.example/Path/CASE",
                "https://case.example/Path/CASE",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_htu(input).as_deref(), Some(want), "{input}");
            // Normalised once is normalised: the claim check takes an `htu` equal to the
            // normalised request URL as it is.
            assert_eq!(normalize_htu(want).as_deref(), Some(want), "{want}");
        }
    }

    #[test]
    fn non_urls_do_not_normalise() {
        for input in [
            "",
            "/orders",
            "api.example.com/orders",
            "ftp://api.example.com/x",
            "https:///x",
            "https://user@api.example.com/x",
            "https://api.example.com:99999/x",
            "https://api.example.com:44a/x",
            "https://api.example.com/%zz",
            "https://api.example.com/%4",
            "https://api.example.com/a b",
            "https://api.example.com/é",
            "https://[::1/x",
            "https://[::1]x/",
        ] {
            assert_eq!(normalize_htu(input), None, "{input:?}");
        }
        assert_eq!(
            normalize_htu(&format!("https://a.example/{}", "a".repeat(5000))),
            None
        );
    }

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for host in hosts {
            h.append(header::HOST, host.parse().unwrap());
        }
        h
    }

    #[test]
    fn request_url_from_host_header_or_absolute_target() {
        let uri: Uri = "/orders/1?expand=items".parse().unwrap();
        assert_eq!(
            request_url(None, &uri, &headers(&["API.example.com:443"])).as_deref(),
            Some("https://api.example.com/orders/1")
        );
        assert_eq!(request_url(None, &uri, &headers(&[])), None);
        assert_eq!(
            request_url(None, &uri, &headers(&["a.example", "b.example"])),
            None
        );
        assert_eq!(request_url(None, &uri, &headers(&["a.example/x"])), None);

        let absolute: Uri = "http://api.example.com:8080/orders/1?x".parse().unwrap();
        assert_eq!(
            request_url(None, &absolute, &headers(&["ignored.example"])).as_deref(),
            Some("http://api.example.com:8080/orders/1")
        );
        let star: Uri = "*".parse().unwrap();
        assert_eq!(request_url(None, &star, &headers(&["a.example"])), None);
    }

    #[test]
    fn external_origin_wins_and_prefixes_the_path() {
        let origin = ExternalOrigin::parse("https://Example.com:443/api/").unwrap();
        let uri: Uri = "http://internal:8080/orders/../items?x".parse().unwrap();
        assert_eq!(
            request_url(Some(&origin), &uri, &headers(&["internal:8080"])).as_deref(),
            Some("https://example.com/api/items")
        );
        let bare = ExternalOrigin::parse("https://example.com").unwrap();
        let uri: Uri = "/orders".parse().unwrap();
        assert_eq!(
            request_url(Some(&bare), &uri, &headers(&[])).as_deref(),
            Some("https://example.com/orders")
        );
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/?x",
            "https://u@example.com",
        ] {
            assert!(ExternalOrigin::parse(bad).is_err(), "{bad}");
        }
    }
}
