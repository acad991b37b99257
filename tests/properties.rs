//! Property tests over hostile input: any bytes in the places a client controls never panic
//! and never authenticate; any single-byte change to a valid token or cookie is refused;
//! cookie formats round-trip for any user name.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use proptest::prelude::*;
use tower::{ServiceExt, service_fn};
use tower_token_auth::endpoint::parse_params;
use tower_token_auth::remember_me::{
    AutoLogin, MemoryRememberMeStore, RememberMe, StaticUsers, UserRecord,
};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, JwtAuthLayer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn status(
    rt: &tokio::runtime::Runtime,
    layer: &JwtAuthLayer,
    name: header::HeaderName,
    value: HeaderValue,
) -> StatusCode {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let req = Request::builder()
        .header(name, value)
        .body(Full::default())
        .unwrap();
    rt.block_on(svc.oneshot(req)).unwrap().status()
}

/// Header values a client can send: any bytes but NUL, CR and LF (the `http` crate's rule).
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("header byte", |b| *b != 0 && *b != b'\r' && *b != b'\n'),
        0..600,
    )
}

fn refused(s: StatusCode) -> bool {
    matches!(s, StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_authorization_header_is_refused_without_panic(bytes in header_bytes(), bearer in any::<bool>()) {
        let rt = runtime();
        let keys = TestKeys::hs256();
        let layer = JwtAuthLayer::new(keys.verifier());
        let mut value = if bearer { b"Bearer ".to_vec() } else { Vec::new() };
        value.extend_from_slice(&bytes);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            prop_assert!(refused(status(&rt, &layer, header::AUTHORIZATION, v)));
        }
    }

    #[test]
    fn any_cookie_header_is_refused_without_panic(bytes in header_bytes(), prefix in any::<bool>()) {
        let rt = runtime();
        let keys = TestKeys::hs256();
        let layer = JwtAuthLayer::new(keys.verifier()).with_cookie(AccessCookie::new("at")).unwrap();
        let mut value = if prefix { b"a=b; at=".to_vec() } else { Vec::new() };
        value.extend_from_slice(&bytes);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            prop_assert!(refused(status(&rt, &layer, header::COOKIE, v)));
        }
    }

    #[test]
    fn any_single_byte_change_to_a_token_is_refused(index in any::<prop::sample::Index>(), replacement in 0x21u8..0x7f) {
        let rt = runtime();
        let keys = TestKeys::hs256();
        let layer = JwtAuthLayer::new(keys.verifier());
        let token = keys.mint("alice", "read");
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let value = HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &bytes].concat()).unwrap();
        prop_assert!(refused(status(&rt, &layer, header::AUTHORIZATION, value)));
        let ok = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        prop_assert_eq!(status(&rt, &layer, header::AUTHORIZATION, ok), StatusCode::OK);
    }

    #[test]
    fn token_request_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), json in any::<bool>()) {
        let ct = HeaderValue::from_static(if json { "application/json" } else { "application/x-www-form-urlencoded" });
        let _ = parse_params(Some(&ct), &body);
    }

    #[test]
    fn remember_me_cookies_round_trip_any_user_name(name in "\\PC{1,40}", signed in any::<bool>()) {
        let rt = runtime();
        let user = UserRecord::new(&name, "v1", "read");
        let users = StaticUsers::new([user.clone()]);
        let remember_me = if signed {
            RememberMe::signed(&[3u8; 32], users).unwrap()
        } else {
            RememberMe::persistent(MemoryRememberMeStore::new(), users)
        };
        let set_cookie = rt.block_on(remember_me.remember(&user, None)).unwrap();
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut headers = http::HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        match rt.block_on(remember_me.auto_login(&headers)).unwrap() {
            AutoLogin::LoggedIn { claims, .. } => prop_assert_eq!(claims.sub.as_deref(), Some(name.as_str())),
            other => prop_assert!(false, "not logged in: {:?}", other),
        }
    }

    #[test]
    fn any_single_byte_change_to_a_remember_me_cookie_is_refused(index in any::<prop::sample::Index>(), replacement in 0x21u8..0x7f, signed in any::<bool>()) {
        let rt = runtime();
        let user = UserRecord::new("alice", "v1", "read");
        let users = StaticUsers::new([user.clone()]);
        let remember_me = if signed {
            RememberMe::signed(&[3u8; 32], users).unwrap()
        } else {
            RememberMe::persistent(MemoryRememberMeStore::new(), users)
        };
        let set_cookie = rt.block_on(remember_me.remember(&user, None)).unwrap();
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
        let (name, value) = pair.split_once('=').unwrap();
        let mut bytes = value.as_bytes().to_vec();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != replacement && replacement != b';' && replacement != b',');
        bytes[i] = replacement;
        let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
        let mut headers = http::HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&tampered).unwrap());
        let outcome = rt.block_on(remember_me.auto_login(&headers)).unwrap();
        prop_assert!(!matches!(outcome, AutoLogin::LoggedIn { .. }), "tampered cookie logged in");
    }
}
