//! The verified-token cache: hits skip verification but not the time checks or revocation,
//! other bytes never hit, and memory stays under the configured bound.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tower::{ServiceExt, service_fn};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{
    AuthErrorKind, Claims, InvalidToken, JwtAuthLayer, KeySet, NoCustomClaims, Verifier,
    VerifyingKey,
};

type Svc = tower::util::BoxCloneSyncService<
    Request<Full<Bytes>>,
    Response<tower_token_auth::AuthBody<Full<Bytes>>>,
    std::convert::Infallible,
>;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn cached_verifier(max_bytes: usize) -> Verifier {
    let keys = KeySet::new()
        .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .unwrap();
    Verifier::builder(keys)
        .leeway(Duration::ZERO)
        .verified_token_cache(max_bytes)
        .build()
        .unwrap()
}

fn token(sub: &str, exp: u64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp, "jti": sub}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn reason(r: Result<Claims, tower_token_auth::AuthError>) -> InvalidToken {
    match r.unwrap_err().kind() {
        AuthErrorKind::InvalidToken(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hits_are_rechecked_for_expiry() {
    let v = cached_verifier(1 << 20);
    let t = token("alice", now() + 1);
    assert_eq!(
        v.verify::<NoCustomClaims>(&t).unwrap().sub.as_deref(),
        Some("alice")
    );
    assert!(v.cached_bytes() > 0, "the token is cached");
    assert!(v.verify::<NoCustomClaims>(&t).is_ok(), "a hit");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(reason(v.verify(&t)), InvalidToken::Expired);
}

#[test]
fn other_bytes_never_hit() {
    let v = cached_verifier(1 << 20);
    let t = token("alice", now() + 600);
    v.verify::<NoCustomClaims>(&t).unwrap();
    // Same header and payload, another signature: a different key, verified for real.
    let mut forged = t.clone();
    forged.pop();
    // The last of the 43 base64url characters of an HS256 signature carries 4 bits and 2 zero
    // bits: 'A' and 'E' both keep it canonical ('B' would make it malformed, not forged).
    forged.push(if t.ends_with('A') { 'E' } else { 'A' });
    assert_eq!(reason(v.verify(&forged)), InvalidToken::BadSignature);
    // A prefix of the cached token is not the cached token.
    assert!(v.verify::<NoCustomClaims>(&t[..t.len() - 1]).is_err());
}

#[test]
fn memory_stays_bounded() {
    let bound = 64 * 1024;
    let v = cached_verifier(bound);
    for i in 0..10_000 {
        v.verify::<NoCustomClaims>(&token(&format!("user{i}"), now() + 600))
            .unwrap();
        assert!(v.cached_bytes() <= bound, "{} > {bound}", v.cached_bytes());
    }
    assert!(
        v.cached_bytes() > bound / 4,
        "the cache is used, not just cleared"
    );
}

#[test]
fn another_claims_type_is_verified_again() {
    #[derive(Clone, serde::Deserialize)]
    struct WithJti {
        #[allow(dead_code)]
        extra: Option<String>,
    }
    let v = cached_verifier(1 << 20);
    let t = token("alice", now() + 600);
    v.verify::<NoCustomClaims>(&t).unwrap();
    assert_eq!(
        v.verify::<WithJti>(&t).unwrap().sub.as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn revocation_is_still_checked_on_hits() {
    let keys = TestKeys::es256();
    let verifier = Verifier::builder(keys.key_set())
        .issuer(tower_token_auth::testing::TEST_ISSUER)
        .audience(tower_token_auth::testing::TEST_ISSUER)
        .verified_token_cache(1 << 20)
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(verifier);
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let t = keys.mint("alice", "read");
    let svc = tower::util::BoxCloneSyncService::new(svc);
    let send = |svc: Svc| {
        let req = Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        async move { svc.oneshot(req).await.unwrap().status() }
    };
    assert_eq!(send(svc.clone()).await, StatusCode::OK);
    assert_eq!(send(svc.clone()).await, StatusCode::OK);
    let claims: Claims = layer.verifier().verify(&t).unwrap();
    layer.logout().revoke(&claims).await.unwrap();
    assert_eq!(send(svc).await, StatusCode::UNAUTHORIZED);
}

/// On a hit the request's `Claims` is the cache's own claims set, shared, not cloned; so is
/// what the extractor and `Authentication::claims` hand out.
#[tokio::test]
async fn hits_share_the_cached_claims() {
    use std::sync::{Arc, Mutex};

    let seen: Arc<Mutex<Vec<Claims>>> = Arc::default();
    let record = seen.clone();
    let svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(cached_verifier(1 << 20)))
        .service(service_fn(move |r: Request<Full<Bytes>>| {
            let record = record.clone();
            async move {
                let claims = Claims::from_extensions(r.extensions()).expect("claims");
                let again = r.extensions().get::<tower_token_auth::Authentication>();
                let again: Claims = again.expect("authentication").claims().unwrap();
                assert!(Arc::ptr_eq(claims.shared(), again.shared()));
                record.lock().unwrap().push(claims);
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }
        }));
    let t = token("alice", now() + 600);
    for _ in 0..3 {
        let req = Request::builder()
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        assert_eq!(
            svc.clone().oneshot(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].sub.as_deref(), Some("alice"));
    // The first request verified and cached; the next two got that same allocation.
    assert!(Arc::ptr_eq(seen[0].shared(), seen[1].shared()));
    assert!(Arc::ptr_eq(seen[1].shared(), seen[2].shared()));
}
