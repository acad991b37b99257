//! Helpers shared by the `sso_auth` and `sso_service` examples (included with `#[path]`,
//! next to `examples/shared`).
// Each binary uses part of this module.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use crate::shared::{env_or, esc};

use anyhow::bail;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tower_http::csrf::{CsrfLayer, ProtectionError};

const PAGE: &str = include_str!("page.html");

/// `name` as a number, or `default`.
pub(crate) fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    let v = env_or(name, &default.to_string())?;
    v.parse()
        .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a whole number"))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `N` random bytes from the OS-seeded CSPRNG, base64url without padding.
pub(crate) fn random_id<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, base64url without padding (PKCE S256, RFC 7636 §4.2).
pub(crate) fn sha256_b64(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()))
}

/// SHA-256, lowercase hex: how one-time secrets are named in Redis (never in clear).
pub(crate) fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` is base64url without padding, `min..=max` characters long.
pub(crate) fn is_b64url(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Fills `{{name}}` placeholders in one pass (a value is never scanned for placeholders).
/// Values are inserted as they are: escape text with [`esc`] first.
pub(crate) fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                match vars.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// An HTML response with headers that keep it out of frames and caches and allow no script.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // No `form-action`: browsers apply it to the redirect that follows a form post too.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// A page of `examples/sso/page.html`: `title` is text, `body_html` is trusted HTML.
pub(crate) fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    html(
        status,
        fill(PAGE, &[("title", &esc(title)), ("body", body_html)]),
    )
}

/// A redirect (302 Found, or 303 See Other after a form post).
pub(crate) fn redirect(status: StatusCode, location: &str) -> Response {
    let mut res = status.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            tracing::error!("redirect target is not a valid header value");
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// The value of cookie `name`, when the request carries it exactly once.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for c in cookie::Cookie::split_parse(value).flatten() {
            if c.name() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(c.value().to_owned());
            }
        }
    }
    found
}

/// The token of `Authorization: Bearer <token>`, if that is the (single) header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token.trim())
}

/// Runs `fut` for at most `limit`.
pub(crate) async fn bounded<T, E: Into<anyhow::Error>>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|e| e.into().context(what.to_owned())),
        Err(_) => bail!("{what}: timed out after {limit:?}"),
    }
}

/// `base` with `params` appended as a URL-encoded query.
pub(crate) fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", query.finish())
}

/// tower-http's CSRF check (`Sec-Fetch-Site`, `Origin`), answering with a page.
pub(crate) fn csrf_layer() -> CsrfLayer<fn(ProtectionError) -> Response> {
    CsrfLayer::new().with_rejection_response(csrf_refusal as fn(ProtectionError) -> Response)
}

fn csrf_refusal(e: ProtectionError) -> Response {
    tracing::info!(reason = %e, "cross-site request refused");
    page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "<p>Cross-site requests are not accepted here.</p>",
    )
}
