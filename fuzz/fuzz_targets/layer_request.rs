//! Token extraction + verification through the public layer.
//!
//! Input: one flag byte, then the `Authorization` value, a NUL byte, the `Cookie` value (NUL
//! can never appear in a header value, so the split loses nothing). Flags: bit 0 prefixes
//! `Bearer ` to the `Authorization` value, bit 1 prefixes `at=` to the cookie value, bit 2
//! leaves the `Authorization` header out (so the cookie source is reached). Values that
//! `HeaderValue::from_bytes` refuses are left out.
//!
//! The fuzzer cannot produce a valid HS256 signature, so the response must never be 200; and
//! hostile input must never make the layer fail with a 5xx.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_token_auth::{AccessCookie, Algorithm, JwtAuthLayer, KeySet, Verifier, VerifyingKey};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fn layer() -> &'static JwtAuthLayer {
    static LAYER: OnceLock<JwtAuthLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        // A fixed key, so a run is reproducible from its inputs.
        let keys = KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, &[7u8; 32]).expect("key"))
            .expect("key set");
        let verifier = Verifier::builder(keys).build().expect("verifier");
        JwtAuthLayer::new(verifier)
            .with_cookie(AccessCookie::new("at"))
            .expect("cookie")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (auth, cookie) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };

    let mut req = Request::builder();
    if flags & 4 == 0 {
        let mut v = if flags & 1 != 0 { b"Bearer ".to_vec() } else { Vec::new() };
        v.extend_from_slice(auth);
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            req = req.header(header::AUTHORIZATION, v);
        }
    }
    if let Some(cookie) = cookie {
        let mut v = if flags & 2 != 0 { b"at=".to_vec() } else { Vec::new() };
        v.extend_from_slice(cookie);
        if let Ok(v) = HeaderValue::from_bytes(&v) {
            req = req.header(header::COOKIE, v);
        }
    }
    let req = req.body(Full::<Bytes>::default()).expect("request");

    let svc = ServiceBuilder::new()
        .layer(layer().clone())
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let res = runtime().block_on(svc.oneshot(req)).expect("infallible");
    let status = res.status();
    assert_ne!(status.as_u16(), 200, "a request without a valid token was let through");
    assert!(!status.is_server_error(), "hostile input caused {status}");
});
