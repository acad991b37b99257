//! The axum side: `Claims<T>` and `Option<Claims<T>>` extractors, the scope guard on a
//! router, and what happens when the layer is missing.

#[path = "support/log_capture.rs"]
mod log_capture;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AuthError, Claims, JwtAuthLayer, RequireScopeLayer};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tenant {
    tenant: String,
}

async fn call(
    app: &Router,
    token: Option<&str>,
    uri: &str,
) -> (StatusCode, String, Option<String>) {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let www = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), www)
}

#[tokio::test]
async fn typed_custom_claims() {
    let keys = TestKeys::hs256();
    let app = Router::new()
        .route(
            "/t",
            get(|c: Claims<Tenant>| async move {
                format!("{} of {}", c.sub.clone().unwrap(), c.custom.tenant)
            }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    let token = keys
        .issuer()
        .issue_with(
            "alice",
            "read",
            &Tenant {
                tenant: "acme".into(),
            },
        )
        .unwrap()
        .token;
    assert_eq!(call(&app, Some(&token), "/t").await.1, "alice of acme");
    // The whole Authentication, as the layer inserted it.
    let shared = Router::new()
        .route(
            "/s",
            get(|auth: tower_token_auth::Authentication| async move {
                let c: Claims<Tenant> = auth.claims().expect("claims of the layer's type");
                c.custom.tenant.clone()
            }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    assert_eq!(call(&shared, Some(&token), "/s").await.1, "acme");
    // A token without the application's required claim is refused as invalid.
    let plain = keys.mint("alice", "read");
    let (status, _, www) = call(&app, Some(&plain), "/t").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www.unwrap().contains(r#"error="invalid_token""#));
}

/// A verified token whose claims lack a field of the application's type is a claim problem,
/// not a malformed token; which field goes to the log, not to the client.
#[tokio::test(flavor = "current_thread")]
async fn missing_custom_claim_is_named_in_the_log_only() {
    let (logs, _guard) = log_capture::Capture::start();
    let keys = TestKeys::hs256();
    let app = Router::new()
        .route(
            "/t",
            get(|c: Claims<Tenant>| async move { c.custom.tenant.clone() }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    let plain = keys.mint("alice", "read");
    let (status, body, www) = call(&app, Some(&plain), "/t").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="missing or invalid claim""#)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"error": "invalid_token", "error_description": "missing or invalid claim"})
    );
    assert!(
        !body.contains("tenant"),
        "the claim's name stays out of the body"
    );
    let log = logs.text();
    assert!(
        log.contains("InvalidClaim") && log.contains("missing field") && log.contains("tenant"),
        "the log names the claim: {log}"
    );
    // The wrong type for the field is the same answer.
    let wrong = keys
        .issuer()
        .issue_with("alice", "read", &serde_json::json!({"tenant": 42}))
        .unwrap()
        .token;
    let (status, body, _) = call(&app, Some(&wrong), "/t").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("missing or invalid claim"), "{body}");
}

#[tokio::test]
async fn optional_claims_extractor() {
    let keys = TestKeys::es256();
    let app = Router::new()
        .route(
            "/hello",
            get(|c: Option<Claims>| async move {
                match c {
                    Some(c) => format!("hello {}", c.sub.clone().unwrap()),
                    None => "hello stranger".to_owned(),
                }
            }),
        )
        .route(
            "/strict",
            get(|c: Claims| async move { c.sub.clone().unwrap() }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()).optional());
    assert_eq!(call(&app, None, "/hello").await.1, "hello stranger");
    let token = keys.mint("bob", "");
    assert_eq!(call(&app, Some(&token), "/hello").await.1, "hello bob");
    let (status, _, _) = call(&app, Some("garbage.token.here"), "/hello").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a bad token is refused even in optional mode"
    );
    // The strict extractor on an optional route answers 401 with a bare challenge.
    let (status, _, www) = call(&app, None, "/strict").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn scope_guard_and_handler_check() {
    let keys = TestKeys::hs256();
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .layer(RequireScopeLayer::new("admin").unwrap())
        .route(
            "/write",
            get(|c: Claims| async move { c.require_scope("write").map(|()| "written") }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()))
        .route("/health", get(|| async { "ok" }));
    let reader = keys.mint("alice", "read");
    let admin = keys.mint("root", "read write admin");
    let (status, body, www) = call(&app, Some(&reader), "/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        www.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="insufficient scope", scope="admin""#
        )
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
        "insufficient_scope"
    );
    assert_eq!(call(&app, Some(&admin), "/admin").await.0, StatusCode::OK);
    assert_eq!(
        call(&app, Some(&reader), "/write").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&app, Some(&admin), "/write").await.1, "written");
    assert_eq!(call(&app, None, "/admin").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, None, "/health").await.1, "ok");
}

#[tokio::test]
async fn missing_layer_is_reported_not_hidden() {
    let app = Router::new().route(
        "/me",
        get(|c: Claims| async move { c.sub.clone().unwrap_or_default() }),
    );
    let (status, body, _) = call(&app, None, "/me").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("JwtAuthLayer"), "{body}");

    // Layer for one claims type, extractor for another: also a configuration error.
    let keys = TestKeys::hs256();
    let app = Router::new()
        .route(
            "/t",
            get(|c: Claims<Tenant>| async move { c.custom.tenant.clone() }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()));
    let (status, body, _) = call(&app, Some(&keys.mint("a", "")), "/t").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The body names the type and the fix.
    assert!(
        body.contains("Claims<axum::Tenant>") && body.contains(".for_claims::<axum::Tenant>()"),
        "{body}"
    );

    // The other way round: a plain Claims behind a for_claims::<Tenant>() layer.
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    let token = keys
        .issuer()
        .issue_with(
            "a",
            "",
            &Tenant {
                tenant: "acme".into(),
            },
        )
        .unwrap()
        .token;
    let (status, body, _) = call(&app, Some(&token), "/me").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("Claims<tower_token_auth::claims::NoCustomClaims>")
            && body.contains("a plain Claims needs a layer without for_claims"),
        "{body}"
    );
}

#[tokio::test]
async fn auth_error_into_response() {
    use axum::response::IntoResponse;
    let res = AuthError::insufficient_scope("x").into_response();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
}

/// `AuthStatus`, `Logout` and `Authentication` are extractors too, reading the one value the
/// layer inserted: a handler logs out with the layer's own store, no state needed.
#[tokio::test]
async fn status_logout_and_authentication_extractors() {
    use tower_token_auth::{AuthStatus, Authentication, Logout};

    let keys = TestKeys::hs256();
    let layer = JwtAuthLayer::new(keys.verifier()).optional();
    let app = Router::new()
        .route(
            "/status",
            get(|s: AuthStatus| async move { format!("{s:?}") }),
        )
        .route(
            "/logout",
            get(|claims: Claims, logout: Logout| async move {
                logout.revoke(&claims).await.unwrap();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/auth",
            get(|auth: Authentication| async move {
                let claims: Option<Claims> = auth.claims();
                format!(
                    "{:?} {:?}",
                    auth.status(),
                    claims.and_then(|c| c.sub.clone())
                )
            }),
        )
        .route_layer(layer);
    let token = keys.mint("alice", "read");
    assert_eq!(call(&app, None, "/status").await.1, "Anonymous");
    assert_eq!(call(&app, Some(&token), "/status").await.1, "Authenticated");
    assert_eq!(
        call(&app, Some(&token), "/auth").await.1,
        r#"Authenticated Some("alice")"#
    );
    assert_eq!(call(&app, None, "/auth").await.1, "Anonymous None");
    // The Logout extractor revokes in the layer's store: the token is refused afterwards.
    assert_eq!(
        call(&app, Some(&token), "/logout").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, Some(&token), "/status").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Without the layer each says which extractor found nothing, and how to fix it.
    let bare = Router::new()
        .route(
            "/status",
            get(|s: AuthStatus| async move { format!("{s:?}") }),
        )
        .route("/logout", get(|_: Logout| async { "" }));
    for (uri, name) in [("/status", "AuthStatus"), ("/logout", "Logout")] {
        let (status, body, _) = call(&bare, None, uri).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.starts_with(&format!("{name} is not in the request"))
                && body.contains("JwtAuthLayer"),
            "{body}"
        );
    }
}

/// Behind an optional layer for `Claims` (no custom claims), a handler asking for
/// `Option<Claims<Tenant>>` is a configuration error even when the request is anonymous: it
/// would otherwise always see `None` and pass for logged out.
#[tokio::test]
async fn wrong_claims_type_is_reported_for_anonymous_requests_too() {
    let keys = TestKeys::hs256();
    let app = Router::new()
        .route(
            "/t",
            get(|c: Option<Claims<Tenant>>| async move { format!("{}", c.is_some()) }),
        )
        .route_layer(JwtAuthLayer::new(keys.verifier()).optional());
    let (status, body, _) = call(&app, None, "/t").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains(".for_claims::<axum::Tenant>()"), "{body}");
}

/// Taking `Claims` copies nothing: with the verified-token cache, every request's extractor
/// hands out the cache's own claims set.
#[tokio::test]
async fn the_claims_extractor_shares_the_cached_claims() {
    use std::sync::{Arc, Mutex};
    use tower_token_auth::{KeySet, Verifier, VerifyingKey};

    let secret = [9u8; 32];
    let verifier = Verifier::builder(
        KeySet::new()
            .with_key(VerifyingKey::hmac(tower_token_auth::Algorithm::HS256, &secret).unwrap())
            .unwrap(),
    )
    .verified_token_cache(1 << 20)
    .build()
    .unwrap();
    let token = tower_token_auth::TokenIssuer::new(
        tower_token_auth::SigningKey::hmac(tower_token_auth::Algorithm::HS256, &secret).unwrap(),
    )
    .issue("alice", "read")
    .unwrap()
    .token;
    let seen: Arc<Mutex<Vec<Claims>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/me",
            get(move |c: Claims| {
                let record = record.clone();
                async move {
                    let sub = c.sub.clone().unwrap_or_default();
                    record.lock().unwrap().push(c);
                    sub
                }
            }),
        )
        .route_layer(JwtAuthLayer::new(verifier));
    for _ in 0..3 {
        assert_eq!(call(&app, Some(&token), "/me").await.1, "alice");
    }
    let seen = seen.lock().unwrap();
    assert!(Arc::ptr_eq(seen[0].shared(), seen[1].shared()));
    assert!(Arc::ptr_eq(seen[1].shared(), seen[2].shared()));
}
