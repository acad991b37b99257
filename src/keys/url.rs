//! Which URLs the crate sends requests to: `https`, or plain `http` to a loopback host only.

use std::net::IpAddr;

use http::Uri;

use crate::error::ConfigError;

/// `url` as a URL this crate may fetch: `https`, or `http` to a loopback host; no user
/// information.
pub(crate) fn check_url(url: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConfigError::new(format!("invalid URL `{url}`: {e}")))?;
    let Some(authority) = uri.authority() else {
        return Err(ConfigError::new(format!("`{url}` is not an absolute URL")));
    };
    if authority.as_str().contains('@') {
        return Err(ConfigError::new(format!(
            "`{url}`: credentials in a URL are not supported"
        )));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if is_loopback(authority.host()) => Ok(uri),
        Some("http") => Err(ConfigError::new(format!(
            "`{url}` must use https (plain http is allowed only for 127.0.0.1, ::1 and localhost)"
        ))),
        _ => Err(ConfigError::new(format!("`{url}` is not an https URL"))),
    }
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
