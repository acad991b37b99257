//! Several issuers in one layer: each token goes to its issuer's verifier (keys, audience,
//! rules), picked by its unverified `iss` and then verified in full.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use tower::{ServiceExt, service_fn};
use tower_token_auth::keys::{BoxError, JwkPolicy, RemoteJwks};
use tower_token_auth::{
    Algorithm, JwtAuthLayer, KeySet, SigningKey, TokenIssuer, Verifier, VerifyingKey,
};

const ACME: &str = "https://acme.auth.example";
const GLOBEX: &str = "https://login.globex.example";

fn secret(name: &str) -> Vec<u8> {
    format!("{name}-secret-of-at-least-thirty-two-bytes").into_bytes()
}

fn issuer(iss: &str, key: &str, aud: &str) -> TokenIssuer {
    TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, &secret(key))
            .unwrap()
            .with_kid(key),
    )
    .issuer(iss)
    .audience(aud)
}

fn verifier(iss: &str, key: &str, aud: &str) -> Verifier {
    let keys = KeySet::new()
        .with_key(
            VerifyingKey::hmac(Algorithm::HS256, &secret(key))
                .unwrap()
                .with_kid(key),
        )
        .unwrap();
    Verifier::builder(keys)
        .issuer(iss)
        .audience(aud)
        .build()
        .unwrap()
}

async fn call(layer: &JwtAuthLayer, token: &str) -> (StatusCode, String) {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let claims: tower_token_auth::Claims =
                tower_token_auth::Claims::from_extensions(req.extensions()).unwrap();
            let who = format!(
                "{} from {}",
                claims.sub.as_deref().unwrap_or(""),
                claims.iss.as_deref().unwrap_or("")
            );
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(who))))
        }));
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let www = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    match www {
        Some(www) if status != StatusCode::OK => (status, www),
        _ => (status, String::from_utf8(body.to_vec()).unwrap()),
    }
}

fn refused(description: &str) -> (StatusCode, String) {
    (
        StatusCode::UNAUTHORIZED,
        format!(r#"Bearer error="invalid_token", error_description="{description}""#),
    )
}

#[tokio::test]
async fn each_token_goes_to_its_issuer() {
    let router = Verifier::for_issuers([
        verifier(ACME, "acme", "orders"),
        verifier(GLOBEX, "globex", "orders-eu"),
    ])
    .unwrap();
    let layer = JwtAuthLayer::new(router);
    let acme = issuer(ACME, "acme", "orders");
    let globex = issuer(GLOBEX, "globex", "orders-eu");
    let ok = |who: &str| (StatusCode::OK, who.to_owned());
    for (name, token, want) in [
        (
            "acme token",
            acme.issue("alice", "").unwrap().token,
            ok("alice from https://acme.auth.example"),
        ),
        (
            "globex token",
            globex.issue("bob", "").unwrap().token,
            ok("bob from https://login.globex.example"),
        ),
        (
            "claims acme, signed with globex's key",
            issuer(ACME, "globex", "orders")
                .issue("mallory", "")
                .unwrap()
                .token,
            refused("unknown signing key"),
        ),
        (
            "claims acme, globex's kid, acme's secret",
            TokenIssuer::new(
                SigningKey::hmac(Algorithm::HS256, &secret("acme"))
                    .unwrap()
                    .with_kid("globex"),
            )
            .issuer(ACME)
            .audience("orders")
            .issue("mallory", "")
            .unwrap()
            .token,
            refused("unknown signing key"),
        ),
        (
            "acme token for globex's audience",
            issuer(ACME, "acme", "orders-eu")
                .issue("alice", "")
                .unwrap()
                .token,
            refused("invalid audience"),
        ),
        (
            "unknown issuer",
            issuer("https://evil.example", "acme", "orders")
                .issue("mallory", "")
                .unwrap()
                .token,
            refused("invalid issuer"),
        ),
        (
            "no issuer",
            TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret("acme")).unwrap())
                .audience("orders")
                .issue("mallory", "")
                .unwrap()
                .token,
            refused("invalid issuer"),
        ),
        (
            "issuer with a trailing slash",
            issuer("https://acme.auth.example/", "acme", "orders")
                .issue("alice", "")
                .unwrap()
                .token,
            refused("invalid issuer"),
        ),
        (
            "payload not JSON",
            format!(
                "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
                URL_SAFE_NO_PAD.encode("nope")
            ),
            refused("malformed token"),
        ),
    ] {
        assert_eq!(call(&layer, &token).await, want, "{name}");
    }
}

#[test]
fn the_router_is_configured_strictly() {
    let two = Verifier::builder(
        KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, &[1; 32]).unwrap())
            .unwrap(),
    )
    .issuer(ACME)
    .issuer(GLOBEX)
    .build()
    .unwrap();
    assert!(Verifier::for_issuers([two]).is_err(), "one issuer each");
    let none = Verifier::builder(
        KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, &[1; 32]).unwrap())
            .unwrap(),
    )
    .build()
    .unwrap();
    assert!(Verifier::for_issuers([none]).is_err());
    assert!(
        Verifier::for_issuers([verifier(ACME, "a", "x"), verifier(ACME, "b", "y")]).is_err(),
        "an issuer listed twice"
    );
    assert!(Verifier::for_issuers(Vec::<Verifier>::new()).is_err());
    let router = Verifier::for_issuers([verifier(ACME, "a", "x")]).unwrap();
    assert!(Verifier::for_issuers([router]).is_err(), "no nesting");
}

/// An issuer whose keys come from a remote JWK Set rotates without refusals behind the router.
#[tokio::test]
async fn a_remote_issuer_rotates_behind_the_router() {
    let jwks = Arc::new(Mutex::new(String::new()));
    let publish = |kids: &[&str]| {
        let keys: Vec<String> = kids
            .iter()
            .map(|k| {
                format!(
                    r#"{{"kty":"oct","kid":"{k}","alg":"HS256","k":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(secret(k))
                )
            })
            .collect();
        *jwks.lock().unwrap() = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
    };
    publish(&["g1"]);
    let served = jwks.clone();
    let source = RemoteJwks::new(move || {
        let served = served.clone();
        async move { Ok::<_, BoxError>(served.lock().unwrap().clone()) }
    })
    .policy(JwkPolicy::new())
    .min_refetch_interval(Duration::from_secs(60));
    let remote = Verifier::builder(KeySet::new())
        .issuer(GLOBEX)
        .audience("orders")
        .build_with_jwks(source)
        .await
        .unwrap();
    let layer = JwtAuthLayer::new(
        Verifier::for_issuers([verifier(ACME, "acme", "orders"), remote]).unwrap(),
    );
    publish(&["g1", "g2"]);
    let token = issuer(GLOBEX, "g2", "orders")
        .issue("bob", "")
        .unwrap()
        .token;
    assert_eq!(
        call(&layer, &token).await,
        (
            StatusCode::OK,
            "bob from https://login.globex.example".into()
        )
    );
    let acme = issuer(ACME, "acme", "orders")
        .issue("alice", "")
        .unwrap()
        .token;
    assert_eq!(call(&layer, &acme).await.0, StatusCode::OK);
}
