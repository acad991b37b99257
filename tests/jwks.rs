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
use tower_token_auth::keys::{BoxError, JwkPolicy, RemoteJwks};
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
        // These tests sign with HMAC keys, which a remote set carries only when allowed.
        .policy(JwkPolicy::new())
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
    // The first unknown kid refetches once (a rotation may just have happened); the other
    // 199 within the interval do not.
    for i in 0..200 {
        let forged = server.mint(&format!("made-up-{i}"), "mallory");
        assert_eq!(status(&layer, &forged).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.fetches(), 2, "rate-limited");
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

/// A key rotation at the provider refuses nobody: every request carrying the new `kid` waits
/// for the one refetch in flight and then verifies (it used to be one 200 and 19 401s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_a_new_kid_wait_for_one_refetch() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    // The default refetch interval (10 s): the rate limit must not refuse the waiters.
    let v = verifier(&server, server.source()).await;
    let layer = JwtAuthLayer::new(v.clone());
    assert_eq!(server.fetches(), 1);
    server.publish(&["k1", "k2"]);
    let new = server.mint("k2", "alice");
    let requests = (0..20).map(|_| {
        let (layer, new) = (layer.clone(), new.clone());
        tokio::spawn(async move { status(&layer, &new).await })
    });
    let requests: Vec<_> = requests.collect();
    for answer in requests {
        assert_eq!(answer.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.fetches(), 2, "one refetch for all twenty");
}

/// A refresh that brings the same keys keeps the verified-token cache; new key material
/// empties it.
#[tokio::test]
async fn the_cache_survives_refreshes_that_change_nothing() {
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(&server, server.source()).await;
    let layer = JwtAuthLayer::new(v.clone());
    let token = server.mint("k1", "alice");
    assert_eq!(status(&layer, &token).await, StatusCode::OK);
    let cached = v.cached_bytes();
    assert!(cached > 0);
    let generation = v.key_handle().generation();
    for _ in 0..3 {
        assert!(!v.refresh_keys().await.unwrap(), "same keys: no change");
    }
    assert_eq!(v.key_handle().generation(), generation);
    assert_eq!(v.cached_bytes(), cached, "the cache was kept");
    // New material under the same kid is a change, and the token is verified again.
    *server.jwks.lock().unwrap() = format!(
        r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{}"}}]}}"#,
        URL_SAFE_NO_PAD.encode(secret("rotated-k1"))
    );
    assert!(v.refresh_keys().await.unwrap());
    assert_eq!(status(&layer, &token).await, StatusCode::UNAUTHORIZED);
}

/// Static keys and a remote JWK Set together: both verify, and a fetched key cannot replace a
/// static one with the same `kid`.
#[tokio::test]
async fn static_and_remote_keys_combine() {
    let server = AuthServer::default();
    server.publish(&["k1", "local"]);
    let local = SigningKey::hmac(Algorithm::HS256, b"the-local-secret-of-32-bytes-long")
        .unwrap()
        .with_kid("local");
    let static_keys = KeySet::new()
        .with_key(
            tower_token_auth::VerifyingKey::hmac(
                Algorithm::HS256,
                b"the-local-secret-of-32-bytes-long",
            )
            .unwrap()
            .with_kid("local"),
        )
        .unwrap();
    let v = Verifier::builder(static_keys)
        .issuer("sso")
        .build_with_jwks(server.source())
        .await
        .unwrap();
    let layer = JwtAuthLayer::new(v.clone());
    assert_eq!(v.kids(), ["k1", "local"]);
    let remote_token = server.mint("k1", "alice");
    let local_token = TokenIssuer::new(local)
        .issuer("sso")
        .issue("bob", "read")
        .unwrap()
        .token;
    assert_eq!(status(&layer, &remote_token).await, StatusCode::OK);
    assert_eq!(status(&layer, &local_token).await, StatusCode::OK);
    // The provider's "local" key (another secret) did not replace ours.
    let forged = server.mint("local", "mallory");
    assert_eq!(status(&layer, &forged).await, StatusCode::UNAUTHORIZED);
}

/// One unusable key never fails the set, at the start or at a refresh.
#[tokio::test]
async fn unusable_keys_beside_good_ones_are_skipped() {
    let server = AuthServer::default();
    let unusable = [
        r#"{"kty":"EC","kid":"p521","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}"#,
        r#"{"kty":"OKP","kid":"ed448","crv":"Ed448","x":"X9dEm1m0Yf0s54fsYWrUah2hNCSFpw4fig6nXYDpZ3jt8SR2m0bHBhvWeD3x5Q9s0foavq_oJWGA"}"#,
        r#"{"kty":"AKP","kid":"mldsa","alg":"ML-DSA-44","pub":"AAAA"}"#,
        r#"{"kty":"RSA","kid":"enc","use":"enc","alg":"RSA-OAEP","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#,
        r#"{"kty":"oct","kid":"no-alg","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#,
        r#"{"kty":"weird"}"#,
    ];
    let set = |good: &[&str]| {
        let mut keys: Vec<String> = unusable.iter().map(|k| (*k).to_owned()).collect();
        keys.extend(good.iter().map(|k| jwk(k)));
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    };
    *server.jwks.lock().unwrap() = set(&["k1"]);
    let v = verifier(&server, server.source()).await;
    assert_eq!(v.kids(), ["k1"]);
    let layer = JwtAuthLayer::new(v.clone());
    assert_eq!(
        status(&layer, &server.mint("k1", "alice")).await,
        StatusCode::OK
    );
    *server.jwks.lock().unwrap() = set(&["k1", "k2"]);
    assert!(v.refresh_keys().await.unwrap());
    assert_eq!(v.kids(), ["k1", "k2"]);
    assert_eq!(
        status(&layer, &server.mint("k2", "alice")).await,
        StatusCode::OK
    );
}

/// RSA keys without `alg` (Entra ID, Cognito, Ping): RS256 by default, PS256 when allowed,
/// never an algorithm outside the list or of another key type.
#[tokio::test]
async fn rsa_keys_without_alg_verify_the_allowed_rsa_algorithms() {
    const PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
    let jwk: serde_json::Value =
        serde_json::from_str(include_str!("keys/rs256-public.jwk.json")).unwrap();
    let mut jwk = jwk.as_object().unwrap().clone();
    jwk.insert("kid".into(), "entra".into());
    let doc = serde_json::json!({ "keys": [jwk] }).to_string();
    let mint = |alg: Algorithm| {
        TokenIssuer::new(SigningKey::rsa_pem(alg, PRIVATE).unwrap().with_kid("entra"))
            .issuer("sso")
            .issue("alice", "read")
            .unwrap()
            .token
    };
    let fetcher = move || {
        let doc = doc.clone();
        async move { Ok::<_, BoxError>(doc) }
    };
    let build = |source: RemoteJwks| async move {
        Verifier::builder(KeySet::new())
            .issuer("sso")
            .build_with_jwks(source)
            .await
            .unwrap()
    };
    let default = JwtAuthLayer::new(build(RemoteJwks::new(fetcher.clone())).await);
    assert_eq!(
        status(&default, &mint(Algorithm::RS256)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&default, &mint(Algorithm::PS256)).await,
        StatusCode::UNAUTHORIZED,
        "PS256 only when allowed"
    );
    let allowed = JwtAuthLayer::new(
        build(
            RemoteJwks::new(fetcher.clone())
                .policy(JwkPolicy::new().algorithms([Algorithm::RS256, Algorithm::PS256])),
        )
        .await,
    );
    assert_eq!(
        status(&allowed, &mint(Algorithm::RS256)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&allowed, &mint(Algorithm::PS256)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&allowed, &mint(Algorithm::RS512)).await,
        StatusCode::UNAUTHORIZED
    );
    // A token claiming HS256 with the RSA key's bytes as the secret (the classic confusion).
    let n = jwk["n"].as_str().unwrap();
    let confused = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, n.as_bytes())
            .unwrap()
            .with_kid("entra"),
    )
    .issuer("sso")
    .issue("mallory", "admin")
    .unwrap()
    .token;
    assert_eq!(status(&allowed, &confused).await, StatusCode::UNAUTHORIZED);
    // A token without `kid` verifies when exactly one key fits.
    let no_kid = TokenIssuer::new(SigningKey::rsa_pem(Algorithm::RS256, PRIVATE).unwrap())
        .issuer("sso")
        .issue("alice", "read")
        .unwrap()
        .token;
    assert_eq!(status(&allowed, &no_kid).await, StatusCode::OK);
}

/// The verification seam: ready when the keys are at hand, pending (and then verified) when a
/// new `kid` needs the JWK Set refetched.
#[tokio::test]
async fn verification_is_ready_or_waits_for_the_keys() {
    use tower_token_auth::{NoCustomClaims, Verification};
    let server = AuthServer::default();
    server.publish(&["k1"]);
    let v = verifier(&server, server.source()).await;
    let known = server.mint("k1", "alice");
    assert!(matches!(
        v.verification::<NoCustomClaims>(&known),
        Verification::Ready(Ok(_))
    ));
    assert!(matches!(
        v.verification::<NoCustomClaims>("not.a.token"),
        Verification::Ready(Err(_))
    ));
    server.publish(&["k1", "k2"]);
    let rotated = server.mint("k2", "bob");
    let pending = v.verification::<NoCustomClaims>(&rotated);
    assert!(matches!(pending, Verification::Pending(_)), "{pending:?}");
    let claims = pending.wait().await.unwrap();
    assert_eq!(claims.sub.as_deref(), Some("bob"));
    assert_eq!(server.fetches(), 2);
}
