//! The refresh-grant body parser: `endpoint::parse_params` on arbitrary bytes. The first
//! input byte picks the content type (even: form, odd: JSON; bit 1 adds a `charset`
//! parameter), the rest is the body. It may refuse the body; it must never panic.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_token_auth::endpoint::parse_params;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match (selector & 1, selector & 2) {
        (0, 0) => "application/x-www-form-urlencoded",
        (0, _) => "application/x-www-form-urlencoded; charset=UTF-8",
        (_, 0) => "application/json",
        _ => "Application/JSON; charset=utf-8",
    };
    let content_type = HeaderValue::from_static(content_type);
    if let Ok(params) = parse_params(Some(&content_type), body) {
        // Reading the parsed parameters must work for the ones the grant uses.
        let _ = params.get("grant_type");
        let _ = params.get("refresh_token");
    }
});
