//! Opaque tokens verified by RFC 7662 introspection (issue #15, item 1), against node
//! `oidc-provider` (tests/oidc/provider.mjs: `resource=urn:tta:opaque[:TTL]` gives an opaque
//! access token): the three client authentication methods, JWTs and opaque tokens in one layer,
//! the cache (hits, expiry, negative answers), one request in flight per token, the endpoint
//! down (503) and back, and revocation winning over a cached answer.
//!
//! Answers a real provider does not give (a refresh token's answer without `token_type`, members
//! of the wrong type) are checked with a transport of the test's own at the end.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_token_auth::introspection::{
    ClientAuth, HttpTransport, IntrospectionRequest, IntrospectionResponse, IntrospectionTransport,
    Introspector, IntrospectorBuilder,
};
use tower_token_auth::keys::discovery::Discovery;
use tower_token_auth::{Algorithm, Claims, JwtAuthLayer, KeySet, SigningKey, Verifier};

use oidc_provider::{AUDIENCE, OidcProvider, Options};

const RS_PRIVATE_PEM: &[u8] = include_bytes!("../src/testing/es256-private.pem");

/// What the protected service answered.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    www_authenticate: String,
    retry_after: Option<String>,
    /// `{"client_id", "scope", "jti"}` of the claims (200 only).
    body: serde_json::Value,
}

async fn call(layer: &JwtAuthLayer, token: &str) -> Seen {
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        let claims: Claims = Claims::from_extensions(req.extensions()).expect("claims inserted");
        let body =
            json!({ "client_id": claims.client_id, "scope": claims.scope, "jti": claims.jti });
        Ok::<_, std::convert::Infallible>(Response::new(Full::from(body.to_string())))
    });
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(echo)
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let header = |name| {
        res.headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let www_authenticate = header(header::WWW_AUTHENTICATE).unwrap_or_default();
    let retry_after = header(header::RETRY_AFTER);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
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

/// The built-in HTTP transport, counting the requests it sends.
#[derive(Clone)]
struct Counting {
    inner: HttpTransport,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn new() -> Self {
        Self {
            inner: HttpTransport::new().unwrap(),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl IntrospectionTransport for Counting {
    fn send(
        &self,
        request: IntrospectionRequest,
    ) -> tower_token_auth::revocation::BoxFuture<
        'static,
        Result<IntrospectionResponse, tower_token_auth::keys::BoxError>,
    > {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.send(request)
    }
}

async fn discovered(provider: &OidcProvider, auth: ClientAuth) -> IntrospectorBuilder {
    let metadata = Discovery::fetch(&provider.issuer()).await.unwrap();
    assert_eq!(
        metadata.introspection_endpoint().map(|u| u.to_string()),
        Some(provider.url("/token/introspection"))
    );
    Introspector::from_discovery(&metadata, auth).unwrap()
}

/// A layer introspecting opaque tokens (and verifying the provider's JWTs with its keys).
async fn layer(provider: &OidcProvider, introspector: Introspector) -> JwtAuthLayer {
    let verifier = Verifier::builder(KeySet::new())
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .leeway(Duration::ZERO)
        .introspect_opaque_tokens(introspector)
        .build_with_jwks(provider.jwks_source("/jwks"))
        .await
        .unwrap();
    JwtAuthLayer::new(verifier)
}

fn rs_key() -> SigningKey {
    SigningKey::ec_pem(Algorithm::ES256, RS_PRIVATE_PEM).unwrap()
}

#[tokio::test]
async fn opaque_tokens_pass_with_every_client_authentication_and_jwts_beside_them() {
    let provider = OidcProvider::start(Options::default());
    let methods = [
        (
            "client_secret_basic",
            ClientAuth::secret_basic("tta-client", "tta-secret"),
        ),
        (
            "client_secret_post",
            ClientAuth::secret_post("tta-rs-post", "tta-rs-secret"),
        ),
        (
            "private_key_jwt",
            ClientAuth::private_key_jwt("tta-rs-jwt", rs_key()),
        ),
    ];
    for (name, auth) in methods {
        let counting = Counting::new();
        let introspector = discovered(&provider, auth)
            .await
            .transport(counting.clone())
            .build()
            .unwrap();
        let layer = layer(&provider, introspector).await;
        let opaque = provider.access_token("urn:tta:opaque", "read").await;
        assert!(!opaque.contains('.'), "an opaque token: {opaque}");
        let seen = call(&layer, &opaque).await;
        assert_eq!(
            seen.status,
            StatusCode::OK,
            "{name}: {seen:?}\n{}",
            provider.log()
        );
        assert_eq!(seen.body["client_id"], "tta-client", "{name}");
        assert_eq!(seen.body["scope"], "read", "{name}");
        // oidc-provider leaves jti out for opaque tokens: the crate names it by the hash.
        assert!(
            seen.body["jti"].as_str().unwrap().starts_with("sha256:"),
            "{name}"
        );
        assert_eq!(counting.calls(), 1, "{name}");

        // A JWT from the same provider is verified with its keys, not introspected.
        let jwt = provider.access_token("urn:tta:ES256", "read").await;
        assert_eq!(call(&layer, &jwt).await.status, StatusCode::OK, "{name}");
        assert_eq!(counting.calls(), 1, "{name}: the JWT was not introspected");
    }

    // Wrong client credentials: the endpoint refuses us, so nothing can be verified (503,
    // never an accept).
    let introspector = discovered(&provider, ClientAuth::secret_post("tta-rs-post", "wrong"))
        .await
        .build()
        .unwrap();
    let layer = layer(&provider, introspector).await;
    let opaque = provider.access_token("urn:tta:opaque", "read").await;
    let seen = call(&layer, &opaque).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
    assert!(
        seen.www_authenticate.contains("temporarily_unavailable"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn one_request_in_flight_per_token_and_cache_hits_after() {
    let provider = OidcProvider::start(Options::default());
    let counting = Counting::new();
    let introspector = discovered(
        &provider,
        ClientAuth::secret_basic("tta-client", "tta-secret"),
    )
    .await
    .transport(counting.clone())
    .build()
    .unwrap();
    let layer = layer(&provider, introspector.clone()).await;
    let token = provider.access_token("urn:tta:opaque", "read").await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (layer, token) = (layer.clone(), token.clone());
        tasks.spawn(async move { call(&layer, &token).await.status });
    }
    let statuses = tasks.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        counting.calls(),
        1,
        "1,000 concurrent requests, one introspection"
    );

    for _ in 0..100 {
        assert_eq!(call(&layer, &token).await.status, StatusCode::OK);
    }
    assert_eq!(counting.calls(), 1, "later requests hit the cache");
    assert_eq!(introspector.cached_entries(), 1);

    // A second token is a second request.
    let other = provider.access_token("urn:tta:opaque", "read").await;
    assert_eq!(call(&layer, &other).await.status, StatusCode::OK);
    assert_eq!(counting.calls(), 2);
}

#[tokio::test]
async fn inactive_answers_are_cached_briefly_and_expired_tokens_refused() {
    let provider = OidcProvider::start(Options::default());
    let counting = Counting::new();
    let introspector = discovered(
        &provider,
        ClientAuth::secret_basic("tta-client", "tta-secret"),
    )
    .await
    .transport(counting.clone())
    .negative_cache_ttl(Duration::from_secs(1))
    .build()
    .unwrap();
    let layer = layer(&provider, introspector).await;

    // A token the provider never issued.
    let unknown = "Zm9yZ2VkLW9wYXF1ZS10b2tlbi0xMjM0NTY3ODkwMTIzNDU2";
    for _ in 0..5 {
        let seen = call(&layer, unknown).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
        assert!(
            seen.www_authenticate.contains("error=\"invalid_token\""),
            "{seen:?}"
        );
        assert!(seen.www_authenticate.contains("not active"), "{seen:?}");
    }
    assert_eq!(counting.calls(), 1, "the inactive answer is cached");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(call(&layer, unknown).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        counting.calls(),
        2,
        "and asked again once the negative TTL passed"
    );

    // A token living 2 s: accepted from the cache, refused once its exp has passed.
    let short = provider.access_token("urn:tta:opaque:2", "read").await;
    assert_eq!(call(&layer, &short).await.status, StatusCode::OK);
    assert_eq!(call(&layer, &short).await.status, StatusCode::OK);
    assert_eq!(counting.calls(), 3);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let seen = call(&layer, &short).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
}

#[tokio::test]
async fn endpoint_down_is_503_and_never_an_accept_then_recovers() {
    let mut provider = OidcProvider::start(Options::default());
    let introspector = discovered(
        &provider,
        ClientAuth::secret_basic("tta-client", "tta-secret"),
    )
    .await
    .build()
    .unwrap();
    let layer = layer(&provider, introspector).await;
    let cached = provider.access_token("urn:tta:opaque", "read").await;
    assert_eq!(call(&layer, &cached).await.status, StatusCode::OK);
    let fresh = provider.access_token("urn:tta:opaque", "read").await;

    provider.kill();
    let seen = call(&layer, &fresh).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
    assert!(
        seen.www_authenticate
            .contains("error=\"temporarily_unavailable\""),
        "{seen:?}"
    );
    assert_eq!(seen.retry_after.as_deref(), Some("1"));
    // Garbage is not accepted either: it cannot be checked.
    assert_eq!(
        call(&layer, "bm90LWEtdG9rZW4").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // A token whose active answer is cached still passes until the answer ends.
    assert_eq!(call(&layer, &cached).await.status, StatusCode::OK);

    // Back up (its in-memory store starts empty: the old tokens are gone there).
    provider.restart();
    let after = provider.access_token("urn:tta:opaque", "read").await;
    assert_eq!(call(&layer, &after).await.status, StatusCode::OK);
    let seen = call(&layer, &fresh).await;
    assert_eq!(
        seen.status,
        StatusCode::UNAUTHORIZED,
        "forgotten by the provider: {seen:?}"
    );
}

#[tokio::test]
async fn revocation_wins_over_a_cached_active_answer() {
    let provider = OidcProvider::start(Options::default());
    let counting = Counting::new();
    let introspector = discovered(
        &provider,
        ClientAuth::secret_basic("tta-client", "tta-secret"),
    )
    .await
    .transport(counting.clone())
    .build()
    .unwrap();
    let layer = layer(&provider, introspector.clone()).await;
    let token = provider.access_token("urn:tta:opaque", "read").await;
    assert_eq!(call(&layer, &token).await.status, StatusCode::OK);

    // What a logout handler does with the request's claims.
    let claims: Claims = layer.verifier().verification(&token).wait().await.unwrap();
    layer.logout().revoke(&claims).await.unwrap();
    let seen = call(&layer, &token).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert!(seen.www_authenticate.contains("token revoked"), "{seen:?}");
    assert_eq!(
        counting.calls(),
        1,
        "answered from the cache, refused by the store"
    );
}

/// A transport answering `body` to every request, counting them.
fn answering(body: serde_json::Value, calls: Arc<AtomicUsize>) -> impl IntrospectionTransport {
    move |request: IntrospectionRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        async move {
            assert!(request.body.contains("token_type_hint=access_token"));
            Ok(IntrospectionResponse::new(
                StatusCode::OK,
                Bytes::from(body.to_string()),
            ))
        }
    }
}

async fn answered(body: serde_json::Value, accept_missing_type: bool) -> (Seen, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let introspector = Introspector::builder(
        "http://127.0.0.1:9/introspect",
        ClientAuth::secret_basic("rs", "secret"),
    )
    .unwrap()
    .transport(answering(body, calls.clone()))
    .accept_missing_token_type(accept_missing_type)
    .build()
    .unwrap();
    let verifier = Verifier::builder(KeySet::new())
        .issuer("https://as.example")
        .audience("api")
        .introspect_all_tokens(introspector)
        .build()
        .unwrap();
    let seen = call(&JwtAuthLayer::new(verifier), "opaque-token").await;
    (seen, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn answers_the_layer_refuses() {
    let exp = support::now_secs() + 600;
    let good = json!({"active": true, "token_type": "Bearer", "iss": "https://as.example", "aud": "api", "exp": exp});
    assert_eq!(answered(good.clone(), false).await.0.status, StatusCode::OK);
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for (why, body, status) in [
        (
            "a refresh token's answer (no token_type)",
            without("token_type"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another token type",
            with("token_type", json!("refresh_token")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "inactive",
            with("active", json!(false)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another issuer",
            with("iss", json!("https://evil.example")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another audience",
            with("aud", json!("other")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            with("exp", json!(exp - 700)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no exp (required by default)",
            without("exp"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "exp of the wrong type",
            with("exp", json!("soon")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "active of the wrong type",
            with("active", json!("true")),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "not an introspection answer",
            json!(["active"]),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let (seen, calls) = answered(body, false).await;
        assert_eq!(seen.status, status, "{why}: {seen:?}");
        assert_eq!(calls, 1, "{why}");
    }
    // Opted in: an answer without token_type is an access token.
    let (seen, _) = answered(without("token_type"), true).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
}

#[test]
fn configuration_errors() {
    let auth = || ClientAuth::secret_basic("rs", "secret");
    assert!(Introspector::builder("http://as.example/introspect", auth()).is_err());
    assert!(Introspector::builder("https://user:pw@as.example/introspect", auth()).is_err());
    assert!(Introspector::builder("not a url", auth()).is_err());
    assert!(
        Introspector::builder("https://as.example/i", ClientAuth::secret_basic("", "s"))
            .unwrap()
            .build()
            .is_err()
    );
    let hmac = SigningKey::hmac(Algorithm::HS256, &[7u8; 32]).unwrap();
    assert!(
        Introspector::builder(
            "https://as.example/i",
            ClientAuth::private_key_jwt("rs", hmac)
        )
        .unwrap()
        .build()
        .is_err()
    );
    assert!(
        Introspector::builder("https://as.example/i", auth())
            .unwrap()
            .max_cache_entries(0)
            .build()
            .is_err()
    );
}
