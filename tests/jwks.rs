//! Keys from a remote JWK Set: fetched at start, rotated without restart, one rate-limited
//! refetch for unknown `kid`s, last good keys kept on failure, cache emptied on change.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::{ServiceExt, service_fn};
use tower_token_auth::jwks::{BoxError, RemoteJwks};
use tower_token_auth::{
    Algorithm, AuthErrorKind, InvalidToken, JwtAuthLayer, KeySet, NoCustomClaims, SigningKey,
    TokenIssuer, Verifier,
};

/// A fake auth server: its JWK Set can be changed, made to fail, and counts fetches.
#[derive(Clone, Default)]
struct AuthServer {
    jwks: Arc<Mutex<String>>,
    failing: Arc<AtomicBool>,
    fetches: Arc<AtomicUsize>,
}

fn secret(kid: &str) -> Vec<u8> {
    format!("{kid}-secret-of-at-least-32-bytes-long").into_bytes()
}

fn jwk(kid: &str) -> String {
    format!(
        r#"{{"kty":"oct","kid":"{kid}","alg":"HS256","k":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(secret(kid))
    )
}

impl AuthServer {
    fn publish(&self, kids: &[&str]) {
        let keys: Vec<String> = kids.iter().map(|k| jwk(k)).collect();
        *self.jwks.lock().unwrap() = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
    }

    fn source(&self) -> RemoteJwks {
        let this = self.clone();
        RemoteJwks::new(move || {
            let this = this.clone();
            async move {
                this.fetches.fetch_add(1, Ordering::SeqCst);
                if this.failing.load(Ordering::SeqCst) {
                    return Err::<String, BoxError>("auth server answered 500".into());
                }
                Ok(this.jwks.lock().unwrap().clone())
            }
        })
    }

    fn mint(&self, kid: &str, sub: &str) -> String {
        let key = SigningKey::hmac(Algorithm::HS256, &secret(kid))
            .unwrap()
            .with_kid(kid);
        TokenIssuer::new(key)
            .issuer("sso")
            .issue(sub, "read")
            .unwrap()
            .token
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn verifier(server: &AuthServer, source: RemoteJwks) -> Verifier {
    let _ = server;
    Verifier::builder(KeySet::new())
        .issuer("sso")
        .verified_token_cache(1 << 20)
        .build_with_jwks(source)
        .await
        .unwrap()
}

async fn status(layer: &JwtAuthLayer, token: &str) -> StatusCode {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    svc.oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn rotation_without_restart() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(
        &server,
        server.source().min_refetch_interval(Duration::ZERO),
    )
    .await;
    let layer = JwtAuthLayer::new(v.clone());
    let old = server.mint("k1", "alice");
    assert_eq!(status(&layer, &old).await, StatusCode::OK);
    assert_eq!(server.fetches(), 1, "fetched at start");

    // The auth server rotates: k2 signs new tokens, k1 still listed until its tokens expire.
    server.publish(&["k1", "k2"]);
    let new = server.mint("k2", "alice");
    assert_eq!(
        status(&layer, &new).await,
        StatusCode::OK,
        "unknown kid → one refetch → accepted"
    );
    assert_eq!(server.fetches(), 2);
    assert_eq!(
        status(&layer, &old).await,
        StatusCode::OK,
        "old tokens keep working"
    );
    assert_eq!(v.kids(), ["k1", "k2"]);

    // k1 retired: its tokens stop working, even though the verified-token cache held one.
    server.publish(&["k2"]);
    v.refresh_keys().await.unwrap();
    assert_eq!(status(&layer, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&layer, &new).await, StatusCode::OK);
}

#[tokio::test]
async fn unknown_kid_floods_are_rate_limited() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(
        &server,
        server
            .source()
            .min_refetch_interval(Duration::from_secs(60)),
    )
    .await;
    let layer = JwtAuthLayer::new(v);
    // Just fetched at start: within the interval, no refetch at all.
    for i in 0..200 {
        let forged = server.mint(&format!("made-up-{i}"), "mallory");
        assert_eq!(status(&layer, &forged).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.fetches(), 1, "rate-limited");
}

#[tokio::test]
async fn failed_fetches_keep_the_last_good_keys() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(
        &server,
        server.source().min_refetch_interval(Duration::ZERO),
    )
    .await;
    server.failing.store(true, Ordering::SeqCst);
    assert!(v.refresh_keys().await.is_err());
    let token = server.mint("k1", "alice");
    assert_eq!(
        v.verify::<NoCustomClaims>(&token).unwrap().sub.as_deref(),
        Some("alice")
    );
    // An empty or broken set is refused too.
    server.failing.store(false, Ordering::SeqCst);
    *server.jwks.lock().unwrap() = r#"{"keys":[]}"#.into();
    assert!(v.refresh_keys().await.is_err());
    *server.jwks.lock().unwrap() = "<html>500</html>".into();
    assert!(v.refresh_keys().await.is_err());
    assert!(v.verify::<NoCustomClaims>(&token).is_ok());
    assert_eq!(v.kids(), ["k1"]);
}

#[tokio::test]
async fn background_refresh_picks_up_new_keys() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(
        &server,
        server.source().refresh_every(Duration::from_millis(100)),
    )
    .await;
    server.publish(&["k1", "k2"]);
    // Refreshed every 100 ms: give a busy machine a few seconds, without a refetch trigger.
    let start = std::time::Instant::now();
    while v.kids() != ["k1", "k2"] {
        assert!(start.elapsed() < Duration::from_secs(5), "not refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.fetches() >= 2);
    let err = v
        .verify::<NoCustomClaims>(&server.mint("k3", "x"))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &AuthErrorKind::InvalidToken(InvalidToken::UnknownKey)
    );
}

#[tokio::test]
async fn the_first_fetch_must_succeed() {
    let server = AuthServer::default();
    server.failing.store(true, Ordering::SeqCst);
    let built = Verifier::builder(KeySet::new())
        .build_with_jwks(server.source())
        .await;
    assert!(built.is_err());
}
