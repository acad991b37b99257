//! Tokens from identity providers we did not write (issue #12): node `oidc-provider` (the
//! certified OpenID provider) issuing JWT access tokens, and tokens minted by `jose` and PyJWT,
//! verified through [`JwtAuthLayer`] with keys from the provider's JWK Set; and the reverse, our
//! tokens verified by `jose` and PyJWT.
//!
//! Needs node (>= 20.19) and python3; tests/support/oidc_provider.rs installs the npm packages
//! (tests/oidc) and PyJWT when missing, as scripts/test.sh does. Tests marked `#[ignore]` name
//! the item of issue #12 they wait for; run them with `cargo test --test idp -- --ignored`.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_token_auth::{
    Algorithm, Claims, JwtAuthLayer, KeySet, RequireScopeLayer, SigningKey, TokenIssuer, Verifier,
    VerifierBuilder,
};

use oidc_provider::{AUDIENCE, CLIENT_ID, OidcProvider, Options, http_jwks_source, mint};
use support::now_secs;

/// The algorithms the provider signs access tokens with (provider.mjs keys).
const PROVIDER_ALGS: &[&str] = &["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// What the protected service saw.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    www_authenticate: String,
    retry_after: Option<String>,
    /// The handler's echo of the claims: `{"sub": …, "scopes": […]}` (200 only).
    body: serde_json::Value,
}

/// Sends `token` through `layer` (and a [`RequireScopeLayer`] for `scope`, if given) to a
/// handler that echoes the verified claims.
async fn call(layer: &JwtAuthLayer, scope: Option<&str>, token: &str) -> Seen {
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        let claims: Claims =
            Claims::from_extensions(req.extensions()).expect("the layer inserts the claims");
        let body = json!({
            "sub": claims.sub,
            "scopes": claims.scopes().collect::<Vec<_>>(),
        });
        Ok::<_, std::convert::Infallible>(Response::new(Full::from(body.to_string())))
    });
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    match scope {
        Some(scope) => {
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .layer(RequireScopeLayer::new(scope).unwrap())
                .service(echo);
            seen(svc.oneshot(req).await.unwrap()).await
        }
        None => {
            let svc = ServiceBuilder::new().layer(layer.clone()).service(echo);
            seen(svc.oneshot(req).await.unwrap()).await
        }
    }
}

async fn seen<B>(res: Response<B>) -> Seen
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    let header = |name: header::HeaderName| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let www_authenticate = header(header::WWW_AUTHENTICATE).unwrap_or_default();
    let retry_after = header(header::RETRY_AFTER);
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body = if status == StatusCode::OK {
        serde_json::from_slice(&bytes).unwrap()
    } else {
        serde_json::Value::Null
    };
    Seen {
        status,
        www_authenticate,
        retry_after,
        body,
    }
}

/// A verifier for the provider's access tokens (RFC 9068: `typ` `at+jwt`), before its keys.
fn provider_verifier(provider: &OidcProvider) -> VerifierBuilder {
    Verifier::builder(KeySet::new())
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .require_typ("at+jwt")
        .verified_token_cache(1 << 20)
}

/// The layer over the provider's JWK Set at `path`, fetched now.
async fn provider_layer(provider: &OidcProvider, path: &str) -> (Verifier, JwtAuthLayer) {
    let verifier = provider_verifier(provider)
        .build_with_jwks(provider.jwks_source(path))
        .await
        .unwrap_or_else(|e| panic!("JWK Set at {path}: {e}; log:\n{}", provider.log()));
    (verifier.clone(), JwtAuthLayer::new(verifier))
}

/// `token` with one character of its signature changed.
fn tampered(token: &str) -> String {
    let sig_start = token.rfind('.').unwrap() + 1;
    // The middle of the signature: every bit of that character is signature, not padding.
    let at = sig_start + (token.len() - sig_start) / 2;
    let old = token.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    let mut out = token.to_owned();
    out.replace_range(at..=at, &new.to_string());
    out
}

fn assert_invalid_token(seen: &Seen, what: &str) {
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{what}: {seen:?}");
    assert!(
        seen.www_authenticate.contains(r#"error="invalid_token""#),
        "{what}: {seen:?}"
    );
}

#[tokio::test]
async fn provider_access_tokens_verify_for_every_algorithm() {
    let provider = OidcProvider::start(Options::default());
    let (_verifier, layer) = provider_layer(&provider, "/jwks").await;
    for alg in PROVIDER_ALGS {
        let token = provider
            .access_token(&format!("urn:tta:{alg}"), "read write")
            .await;
        let seen = call(&layer, Some("write"), &token).await;
        assert_eq!(seen.status, StatusCode::OK, "{alg}: {seen:?}");
        assert_eq!(seen.body["sub"], CLIENT_ID, "{alg}");
        assert_eq!(seen.body["scopes"], json!(["read", "write"]), "{alg}");
        assert_invalid_token(&call(&layer, None, &tampered(&token)).await, alg);
        // The verified-token cache answers the second time; the signature is still the one.
        assert_eq!(call(&layer, None, &token).await.status, StatusCode::OK);
        let narrow = provider
            .access_token(&format!("urn:tta:{alg}"), "read")
            .await;
        assert_eq!(
            call(&layer, Some("write"), &narrow).await.status,
            StatusCode::FORBIDDEN,
            "{alg}: scope read only"
        );
    }
}

#[tokio::test]
async fn hand_written_discovery_finds_the_issuer_and_jwks_uri() {
    // What a user writes today without #12 item 1: read the discovery document, check its
    // issuer, fetch its jwks_uri.
    let provider = OidcProvider::start(Options::default());
    let doc = support::Http::new()
        .send(
            http::Method::GET,
            &provider.url("/.well-known/openid-configuration"),
            None,
            None,
        )
        .await
        .json();
    assert_eq!(doc["issuer"], provider.issuer(), "exact issuer match");
    let jwks_uri = doc["jwks_uri"].as_str().unwrap().to_owned();
    assert!(jwks_uri.starts_with(&provider.issuer()), "{jwks_uri}");
    let verifier = provider_verifier(&provider)
        .build_with_jwks(http_jwks_source(jwks_uri))
        .await
        .unwrap();
    let token = provider.access_token("urn:tta:ES256", "read").await;
    let layer = JwtAuthLayer::new(verifier);
    assert_eq!(call(&layer, None, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rsa_keys_published_without_alg_verify() {
    let provider = OidcProvider::start(Options {
        rsa_no_alg: true,
        ..Options::default()
    });
    // The RSA algorithms the provider says it signs with (its discovery document's
    // `*_signing_alg_values_supported`) decide what an RSA key without `alg` verifies.
    let source = provider.jwks_source("/jwks").policy(
        tower_token_auth::keys::JwkPolicy::new()
            .algorithms([
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ])
            .without_symmetric_keys(),
    );
    let verifier = provider_verifier(&provider)
        .build_with_jwks(source)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", provider.log()));
    let layer = JwtAuthLayer::new(verifier);
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = provider
            .access_token(&format!("urn:tta:{alg}"), "read")
            .await;
        let seen = call(&layer, None, &token).await;
        assert_eq!(seen.status, StatusCode::OK, "{alg}: {seen:?}");
        assert_invalid_token(&call(&layer, None, &tampered(&token)).await, alg);
    }
}

/// Unusable keys a provider may publish beside its good ones (keys.mjs `unusableJwk`).
const UNUSABLE: &[&str] = &["p521", "ed448", "akp", "rsa-oaep", "ed25519-alg"];

#[tokio::test]
async fn an_unusable_key_beside_good_ones_is_skipped() {
    let provider = OidcProvider::start(Options::default());
    let token = provider.access_token("urn:tta:ES256", "read").await;
    let mut failures = Vec::new();
    for kind in UNUSABLE {
        let built = provider_verifier(&provider)
            .build_with_jwks(provider.jwks_source(&format!("/test/jwks?extra={kind}")))
            .await;
        match built {
            Ok(verifier) => {
                let seen = call(&JwtAuthLayer::new(verifier), None, &token).await;
                if seen.status != StatusCode::OK {
                    failures.push(format!("{kind}: {seen:?}"));
                }
            }
            Err(e) => failures.push(format!("{kind}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn an_encryption_key_beside_good_ones_is_skipped() {
    // `use: enc` keys are skipped today already.
    let provider = OidcProvider::start(Options::default());
    let (verifier, layer) = provider_layer(&provider, "/test/jwks?extra=rsa-enc").await;
    assert!(!verifier.kids().contains(&"x-rsa-enc".to_owned()));
    let token = provider.access_token("urn:tta:RS256", "read").await;
    assert_eq!(call(&layer, None, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_published_symmetric_key_never_verifies() {
    // Whoever can read a JWK Set can sign with an `oct` key in it.
    let provider = OidcProvider::start(Options::default());
    let (_verifier, layer) = provider_layer(&provider, "/test/jwks?extra=oct").await;
    let oct = support::Http::new()
        .send(
            http::Method::GET,
            &provider.url("/test/unusable?kind=oct"),
            None,
            None,
        )
        .await
        .json();
    let secret = URL_SAFE_NO_PAD.decode(oct["k"].as_str().unwrap()).unwrap();
    let forged = TokenIssuer::new(
        SigningKey::hmac(Algorithm::HS256, &secret)
            .unwrap()
            .with_kid("x-oct"),
    )
    .issuer(provider.issuer())
    .audience(AUDIENCE)
    .typ("at+jwt")
    .issue("mallory", "read write")
    .unwrap()
    .token;
    assert_invalid_token(
        &call(&layer, None, &forged).await,
        "forged with the oct key",
    );
}

#[tokio::test]
async fn provider_claim_shapes_verify() {
    // Fractional NumericDates, `scope` as an array, `scp` as a string (Entra ID) or an array
    // (Okta): issue #12 item 4.
    let provider = OidcProvider::start(Options::default());
    for (shape, scope_claim) in [
        ("fractional", None),
        ("scope-array", None),
        ("scp-string", Some("scp")),
        ("scp-array", Some("scp")),
    ] {
        let mut builder = provider_verifier(&provider);
        if let Some(name) = scope_claim {
            builder = builder.scope_claim(name);
        }
        let verifier = builder
            .build_with_jwks(provider.jwks_source("/jwks"))
            .await
            .unwrap();
        let layer = JwtAuthLayer::new(verifier);
        let token = provider
            .access_token(&format!("urn:tta:RS256:{shape}"), "read write")
            .await;
        let seen = call(&layer, Some("write"), &token).await;
        assert_eq!(seen.status, StatusCode::OK, "{shape}: {seen:?}");
        assert_eq!(seen.body["scopes"], json!(["read", "write"]), "{shape}");
        let seen = call(&layer, Some("admin"), &token).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN, "{shape}: {seen:?}");
    }
}

/// A layer over the JWK Set a helper printed, fetched as a static document.
fn layer_for(jwks: &serde_json::Value, issuer: &str, audience: &str) -> JwtAuthLayer {
    let keys = KeySet::from_jwks_json(&jwks.to_string()).unwrap();
    JwtAuthLayer::new(
        Verifier::builder(keys)
            .issuer(issuer)
            .audience(audience)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn jose_and_pyjwt_tokens_verify() {
    let now = now_secs();
    let claims = json!({
        "sub": "alice", "iss": "third-party", "aud": "svc", "scope": "read",
        "iat": now, "exp": now + 600,
    });
    for script in ["mint.mjs", "mint_pyjwt.py"] {
        for alg in PROVIDER_ALGS {
            let minted = mint(
                script,
                &json!({"alg": alg, "kid": format!("{alg}-1"), "claims": claims}),
            );
            let layer = layer_for(&minted.jwks, "third-party", "svc");
            let seen = call(&layer, Some("read"), &minted.token).await;
            assert_eq!(seen.status, StatusCode::OK, "{script} {alg}: {seen:?}");
            assert_eq!(seen.body["sub"], "alice");
            assert_invalid_token(
                &call(&layer, None, &tampered(&minted.token)).await,
                &format!("{script} {alg} tampered"),
            );
        }
    }
}

#[tokio::test]
async fn pyjwt_float_times_verify() {
    // time.time() NumericDates (RFC 7519 §2 allows fractions): issue #12 item 4.
    let minted = mint(
        "mint_pyjwt.py",
        &json!({"alg": "ES256", "kid": "py", "ttl": 600,
                "claims": {"sub": "alice", "iss": "python", "aud": "svc"}}),
    );
    let payload = jwt_payload(&minted.token);
    assert!(
        payload["exp"].is_f64(),
        "PyJWT wrote a float exp: {payload}"
    );
    let layer = layer_for(&minted.jwks, "python", "svc");
    let seen = call(&layer, None, &minted.token).await;
    assert_eq!(seen.status, StatusCode::OK, "{payload}: {seen:?}");

    // Expired by a fraction past the leeway: refused as expired, float or not.
    let now = now_secs() as f64;
    let minted = mint(
        "mint.mjs",
        &json!({"alg": "EdDSA", "kid": "jose", "claims": {
            "sub": "alice", "iss": "python", "aud": "svc",
            "iat": now - 900.5, "exp": now - 60.5,
        }}),
    );
    let layer = layer_for(&minted.jwks, "python", "svc");
    let seen = call(&layer, None, &minted.token).await;
    assert_invalid_token(&seen, "expired float exp");
    assert!(seen.www_authenticate.contains("token expired"), "{seen:?}");
}

fn jwt_payload(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Our signing keys (tests/keys), each with its public JWK as we would publish it.
fn our_keys() -> Vec<(SigningKey, Jwk)> {
    let rsa = include_str!("keys/rs256-private.pem").as_bytes();
    let ec = include_str!("../src/testing/es256-private.pem").as_bytes();
    let ed = include_str!("keys/ed25519-private.pem").as_bytes();
    let keys = [
        (
            SigningKey::rsa_pem(Algorithm::RS256, rsa).unwrap(),
            Algorithm::RS256,
            "ours-rs256",
        ),
        (
            SigningKey::rsa_pem(Algorithm::PS256, rsa).unwrap(),
            Algorithm::PS256,
            "ours-ps256",
        ),
        (
            SigningKey::ec_pem(Algorithm::ES256, ec).unwrap(),
            Algorithm::ES256,
            "ours-es256",
        ),
        (
            SigningKey::ed_pem(ed).unwrap(),
            Algorithm::EdDSA,
            "ours-eddsa",
        ),
    ];
    // The crate has no JWK Set publisher yet: build the JWKs with jsonwebtoken, as
    // examples/sso_auth.rs does. (Building the SigningKeys installed the crypto provider.)
    keys.into_iter()
        .map(|(key, alg, kid)| {
            let encoding = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(ec),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(ed),
                _ => EncodingKey::from_rsa_pem(rsa),
            }
            .unwrap();
            let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
            jwk.common.key_id = Some(kid.into());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            (key.with_kid(kid), jwk)
        })
        .collect()
}

#[tokio::test]
async fn our_tokens_verify_in_jose_and_pyjwt() {
    let keys = our_keys();
    let jwks = JwkSet {
        keys: keys.iter().map(|(_, jwk)| jwk.clone()).collect(),
    };
    let jwks = serde_json::to_value(&jwks).unwrap();
    // Our own verifier reads the set we publish, too.
    let layer = layer_for(&jwks, "tta", "svc");
    for (key, _) in keys {
        let alg = key.algorithm();
        let issued = TokenIssuer::new(key)
            .issuer("tta")
            .audience("svc")
            .typ("at+jwt")
            .issue("alice", "read write")
            .unwrap();
        assert_eq!(
            call(&layer, None, &issued.token).await.status,
            StatusCode::OK,
            "{alg:?} in our verifier"
        );
        for script in ["verify.mjs", "verify_pyjwt.py"] {
            let input =
                json!({"token": issued.token, "jwks": jwks, "issuer": "tta", "audience": "svc"});
            let out = oidc_provider::run_helper(script, &input)
                .unwrap_or_else(|e| panic!("{script} refused our {alg:?} token: {e}"));
            let claims = out.get("payload").unwrap_or(&out);
            assert_eq!(claims["sub"], "alice", "{script} {alg:?}: {out}");
            assert_eq!(claims["jti"], issued.jti, "{script} {alg:?}");
            let input = json!({"token": tampered(&issued.token), "jwks": jwks, "issuer": "tta", "audience": "svc"});
            assert!(
                oidc_provider::run_helper(script, &input).is_err(),
                "{script} accepted a tampered {alg:?} token"
            );
        }
    }
}

#[tokio::test]
async fn rotation_at_the_provider_without_restarting_the_app() {
    let mut provider = OidcProvider::start(Options::default());
    let verifier = provider_verifier(&provider)
        .build_with_jwks(
            provider
                .jwks_source("/jwks")
                .min_refetch_interval(Duration::ZERO),
        )
        .await
        .unwrap();
    let layer = JwtAuthLayer::new(verifier.clone());
    let old = provider.access_token("urn:tta:ES256", "read").await;
    assert_eq!(call(&layer, None, &old).await.status, StatusCode::OK);

    // The provider publishes generation 2 and signs with it; generation 1 stays published.
    provider.restart_with(Options {
        generations: vec![1, 2],
        ..Options::default()
    });
    let new = provider.access_token("urn:tta:ES256", "read").await;
    assert_ne!(jwt_kid(&new), jwt_kid(&old));
    let seen = call(&layer, None, &new).await;
    assert_eq!(
        seen.status,
        StatusCode::OK,
        "unknown kid → refetch: {seen:?}"
    );
    assert_eq!(call(&layer, None, &old).await.status, StatusCode::OK);

    // Generation 1 retired: its tokens stop working once the keys are refreshed.
    provider.restart_with(Options {
        generations: vec![2],
        ..Options::default()
    });
    assert!(verifier.refresh_keys().await.unwrap(), "keys changed");
    assert_invalid_token(&call(&layer, None, &old).await, "retired key");
    assert_eq!(call(&layer, None, &new).await.status, StatusCode::OK);
}

fn jwt_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn concurrent_requests_with_a_new_kid_all_pass() {
    let mut provider = OidcProvider::start(Options::default());
    let interval = Duration::from_secs(1);
    let built = Instant::now();
    let verifier = provider_verifier(&provider)
        .build_with_jwks(provider.jwks_source("/jwks").min_refetch_interval(interval))
        .await
        .unwrap();
    let layer = JwtAuthLayer::new(verifier);
    provider.restart_with(Options {
        generations: vec![1, 2],
        ..Options::default()
    });
    let new = provider.access_token("urn:tta:RS256", "read").await;
    // Past the rate limit of the start-up fetch: one refetch is allowed now.
    tokio::time::sleep(interval.saturating_sub(built.elapsed()) + Duration::from_millis(100)).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let layer = layer.clone();
        let token = new.clone();
        requests.spawn(async move { call(&layer, None, &token).await.status });
    }
    let statuses: Vec<StatusCode> = requests.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "all 20 must pass: {statuses:?}"
    );
}

#[tokio::test]
async fn keys_survive_a_provider_outage() {
    let mut provider = OidcProvider::start(Options::default());
    let (verifier, layer) = provider_layer(&provider, "/jwks").await;
    let token = provider.access_token("urn:tta:EdDSA", "read").await;
    provider.kill();
    assert!(verifier.refresh_keys().await.is_err(), "provider down");
    assert_eq!(call(&layer, None, &token).await.status, StatusCode::OK);
    provider.restart();
    assert!(!verifier.refresh_keys().await.unwrap(), "same keys again");
    assert_eq!(call(&layer, None, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn provider_down_at_start_then_up() {
    let mut provider = OidcProvider::not_started(Options::default());
    let verifier = provider_verifier(&provider)
        .build_with_jwks_lazy(
            provider
                .jwks_source("/jwks")
                .refresh_every(Duration::from_millis(200))
                .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
                .min_refetch_interval(Duration::from_millis(200)),
        )
        .expect("the app comes up while its provider is down");
    let layer = JwtAuthLayer::new(verifier);
    let placeholder = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImcxLXJzMjU2In0.e30.c2ln";
    let seen = call(&layer, None, placeholder).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
    assert!(seen.retry_after.is_some(), "{seen:?}");
    provider.restart();
    let token = provider.access_token("urn:tta:RS256", "read").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = call(&layer, None, &token).await;
        if seen.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never verified: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole set-up a new user writes: an issuer URL and an audience. Discovery finds the JWK
/// Set, and the provider's advertised signing algorithms decide what its RSA keys without `alg`
/// verify (PS256 here, with no policy written by hand).
#[cfg(feature = "http-client")]
#[tokio::test]
async fn built_in_discovery_is_the_whole_set_up() {
    let provider = OidcProvider::start(Options {
        rsa_no_alg: true,
        ..Options::default()
    });
    let verifier = Verifier::builder(KeySet::new())
        .audience(AUDIENCE)
        .require_typ("at+jwt")
        .discover(&provider.issuer())
        .await
        .unwrap_or_else(|e| panic!("discovery: {e}; log:\n{}", provider.log()));
    let layer = JwtAuthLayer::new(verifier);
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let token = provider
            .access_token(&format!("urn:tta:{alg}"), "read")
            .await;
        let seen = call(&layer, None, &token).await;
        assert_eq!(seen.status, StatusCode::OK, "{alg}: {seen:?}");
        assert_invalid_token(&call(&layer, None, &tampered(&token)).await, alg);
    }
    // The issuer must match the discovery document exactly.
    let wrong = Verifier::builder(KeySet::new())
        .audience(AUDIENCE)
        .discover(&format!("{}/", provider.issuer()))
        .await;
    assert!(wrong.is_err(), "a trailing slash is another issuer");
}
