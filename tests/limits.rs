//! Resource limits: 10 000 hostile requests (unknown `kid`s, oversize and deeply nested
//! headers, thousands of cookies, junk tokens) leave every cache within its cap and the
//! process's memory bounded.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::{ServiceExt, service_fn};
use tower_token_auth::testing::{TEST_ISSUER, TestKeys};
use tower_token_auth::{AccessCookie, JwtAuthLayer, MemoryStore, Verifier};

/// Resident set size of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn hostile(i: usize) -> (header::HeaderName, String) {
    let junk_sig = "c2lnbmF0dXJl";
    match i % 6 {
        // A distinct unknown kid every time.
        0 => {
            let h = B64.encode(format!(r#"{{"alg":"HS256","kid":"kid-{i}"}}"#));
            let p = B64.encode(r#"{"sub":"x","exp":9999999999}"#);
            (header::AUTHORIZATION, format!("Bearer {h}.{p}.{junk_sig}"))
        }
        // A header segment nested thousands deep, just under the size cap.
        1 => {
            let depth = 2500;
            let h = B64.encode(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
            (header::AUTHORIZATION, format!("Bearer {h}.e30.{junk_sig}"))
        }
        // Over the size cap.
        2 => (
            header::AUTHORIZATION,
            format!("Bearer {}", "A".repeat(9000)),
        ),
        // Thousands of cookies.
        3 => {
            let cookies: Vec<String> = (0..3000).map(|c| format!("c{c}=v{i}")).collect();
            (header::COOKIE, cookies.join("; "))
        }
        // A huge claims payload with junk signature.
        4 => {
            let h = B64.encode(r#"{"alg":"HS256"}"#);
            let p = B64.encode(format!(r#"{{"sub":"{}"}}"#, "x".repeat(5000)));
            (header::AUTHORIZATION, format!("Bearer {h}.{p}.{junk_sig}"))
        }
        // Random-looking junk.
        _ => (header::AUTHORIZATION, format!("Bearer {i:x}.{i:o}.{i}")),
    }
}

#[tokio::test]
async fn ten_thousand_hostile_requests_stay_bounded() {
    let keys = TestKeys::hs256();
    let cache_cap = 256 * 1024;
    let verifier = Verifier::builder(keys.key_set())
        .issuer(TEST_ISSUER)
        .audience(TEST_ISSUER)
        .verified_token_cache(cache_cap)
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let layer = JwtAuthLayer::new(verifier.clone())
        .with_cookie(AccessCookie::new("at"))
        .unwrap()
        .with_revocation_store(store.clone());
    let svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));

    // Warm up allocator and runtime before measuring.
    for i in 0..600 {
        let (name, value) = hostile(i);
        let req = Request::builder()
            .header(name, value)
            .body(Full::default())
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    let before = rss();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..10_000 {
        let (name, value) = hostile(i);
        let req = Request::builder()
            .header(name, value)
            .body(Full::default())
            .unwrap();
        let t = Instant::now();
        let status = svc.clone().oneshot(req).await.unwrap().status();
        slowest = slowest.max(t.elapsed());
        assert!(
            matches!(status, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST),
            "request {i}: {status}"
        );
    }
    let grown = rss().saturating_sub(before);
    eprintln!(
        "10 000 hostile requests in {:?} (slowest {slowest:?}); RSS grew {} KiB",
        start.elapsed(),
        grown / 1024
    );
    assert_eq!(verifier.cached_bytes(), 0, "nothing unverified is cached");
    assert!(store.is_empty(), "nothing reached the revocation store");
    assert!(grown < 32 * 1024 * 1024, "RSS grew {grown} bytes");

    // Valid tokens fill the cache only up to its cap.
    for i in 0..5_000 {
        let token = keys.mint(&format!("user{i}"), "read");
        let req = Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        assert_eq!(
            svc.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
        assert!(verifier.cached_bytes() <= cache_cap);
    }
}
