//! DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) at the resource server, through
//! `JwtAuthLayer` (issue #15, items 2 and 5): DPoP-bound access tokens from node
//! `oidc-provider` accepted with proofs made by `jose`, and refused when replayed, for another
//! method or URL, signed by another key, too old, or sent as a bearer token; the challenges of
//! RFC 9449 §7.1; replay detection shared by two instances through Redis.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_token_auth::dpop::{DpopConfig, RedisReplayStore};
use tower_token_auth::mtls::{CertificateBinding, ClientCertificate, certificate_thumbprint};
use tower_token_auth::testing::{DpopKey, TestKeys};
use tower_token_auth::{Claims, Confirmation, JwtAuthLayer, KeySet, Verifier};

use oidc_provider::{AUDIENCE, CLIENT_ID, CLIENT_SECRET, OidcProvider, Options, run_helper};

const ORIGIN: &str = "https://api.example";

#[derive(Debug)]
struct Seen {
    status: StatusCode,
    /// Every `WWW-Authenticate` value, in order.
    challenges: Vec<String>,
    body: String,
}

/// Sends `GET|POST ORIGIN<path>` with these headers through `layer` to a handler answering
/// the token's `sub` (or `client_id`).
async fn call(
    layer: &JwtAuthLayer,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
) -> Seen {
    call_with(layer, method, path, headers, None).await
}

async fn call_with(
    layer: &JwtAuthLayer,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    certificate: Option<ClientCertificate>,
) -> Seen {
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        let claims: Claims = Claims::from_extensions(req.extensions()).expect("claims");
        let who = claims
            .sub
            .clone()
            .or(claims.client_id.clone())
            .unwrap_or_default();
        Ok::<_, std::convert::Infallible>(Response::new(Full::from(who)))
    });
    let mut req = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let mut req = req.body(Full::default()).unwrap();
    if let Some(cert) = certificate {
        req.extensions_mut().insert(cert);
    }
    let res = ServiceBuilder::new()
        .layer(layer.clone())
        .service(echo)
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let challenges = res
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Seen {
        status,
        challenges,
        body,
    }
}

fn dpop_headers(token: &str, proof: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("DPoP {token}")),
        ("dpop", proof.to_owned()),
    ]
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn config() -> DpopConfig {
    DpopConfig::new().external_origin(ORIGIN).unwrap()
}

/// A token from the test keys bound by `cnf`.
fn bound_token(keys: &TestKeys, cnf: &Confirmation) -> String {
    keys.issuer()
        .issue_with("alice", "read", &json!({ "cnf": cnf }))
        .unwrap()
        .token
}

#[tokio::test]
async fn dpop_bound_tokens_with_our_own_proofs_and_every_refusal() {
    let keys = TestKeys::hs256();
    let layer = JwtAuthLayer::new(keys.verifier()).with_dpop(config());
    for key in [DpopKey::es256(), DpopKey::ed25519()] {
        let token = bound_token(&keys, &key.confirmation());
        let url = format!("{ORIGIN}/orders");
        let proof = key.proof("GET", &url, Some(&token));
        let seen = call(
            &layer,
            Method::GET,
            "/orders",
            &dpop_headers(&token, &proof),
        )
        .await;
        assert_eq!(
            seen.status,
            StatusCode::OK,
            "{:?}: {seen:?}",
            key.algorithm()
        );
        assert_eq!(seen.body, "alice");

        let refused = |seen: &Seen, why: &str| {
            assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{why}: {seen:?}");
            // RFC 9449 §7.1: the DPoP challenge carries the error and the algorithms; the
            // Bearer challenge beside it says only that bearer tokens are accepted too.
            assert_eq!(seen.challenges.len(), 2, "{why}: {seen:?}");
            assert_eq!(seen.challenges[0], "Bearer", "{why}");
            assert!(
                seen.challenges[1].starts_with("DPoP error=\"invalid_dpop_proof\""),
                "{why}: {seen:?}"
            );
            assert!(
                seen.challenges[1].contains("algs=\"ES256 ES384 EdDSA PS256 RS256\""),
                "{why}: {seen:?}"
            );
        };
        // The same proof again.
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &proof),
            )
            .await,
            "replayed",
        );
        let other_method = key.proof("POST", &url, Some(&token));
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &other_method),
            )
            .await,
            "method",
        );
        let other_url = key.proof("GET", &format!("{ORIGIN}/admin"), Some(&token));
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &other_url),
            )
            .await,
            "url",
        );
        let other_host = key.proof("GET", "https://evil.example/orders", Some(&token));
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &other_host),
            )
            .await,
            "host",
        );
        let no_ath = key.proof("GET", &url, None);
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &no_ath),
            )
            .await,
            "no ath",
        );
        let old = key.proof_with("GET", &url, Some(&token), |_, claims| {
            claims.insert("iat".into(), json!(support::now_secs() - 600));
        });
        refused(
            &call(&layer, Method::GET, "/orders", &dpop_headers(&token, &old)).await,
            "old iat",
        );
        let other = if key.algorithm() == tower_token_auth::Algorithm::ES256 {
            DpopKey::ed25519()
        } else {
            DpopKey::es256()
        };
        let by_other_key = other.proof("GET", &url, Some(&token));
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &by_other_key),
            )
            .await,
            "other key",
        );
        refused(
            &call(
                &layer,
                Method::GET,
                "/orders",
                &bearer_with_dpop_scheme_without_proof(&token),
            )
            .await,
            "no proof",
        );

        // The bound token as a bearer token: refused on the Bearer challenge.
        let seen = call(&layer, Method::GET, "/orders", &bearer(&token)).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
        assert!(
            seen.challenges[0].starts_with("Bearer error=\"invalid_token\""),
            "{seen:?}"
        );
        assert!(
            seen.challenges[0].contains("DPoP-bound token used as a bearer token"),
            "{seen:?}"
        );
        assert!(seen.challenges[1].starts_with("DPoP algs="), "{seen:?}");
    }

    // An unbound token is a bearer token: fine as Bearer, refused as DPoP.
    let plain = keys.mint("bob", "read");
    assert_eq!(
        call(&layer, Method::GET, "/orders", &bearer(&plain))
            .await
            .status,
        StatusCode::OK
    );
    let key = DpopKey::es256();
    let proof = key.proof("GET", &format!("{ORIGIN}/orders"), Some(&plain));
    let seen = call(
        &layer,
        Method::GET,
        "/orders",
        &dpop_headers(&plain, &proof),
    )
    .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert!(
        seen.challenges[1].contains("not bound to a DPoP key"),
        "{seen:?}"
    );

    // No token at all: both challenges, no error.
    let seen = call(&layer, Method::GET, "/orders", &[]).await;
    assert_eq!(
        seen.challenges,
        ["Bearer", "DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\""]
    );
}

fn bearer_with_dpop_scheme_without_proof(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("DPoP {token}"))]
}

#[tokio::test]
async fn require_dpop_refuses_bearer_tokens_and_a_layer_without_dpop_refuses_bound_ones() {
    let keys = TestKeys::hs256();
    let key = DpopKey::es256();
    let bound = bound_token(&keys, &key.confirmation());
    let plain = keys.mint("bob", "read");

    let only = JwtAuthLayer::new(keys.verifier()).require_dpop(config());
    let seen = call(&only, Method::GET, "/orders", &bearer(&plain)).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.challenges,
        ["DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\""],
        "{seen:?}"
    );
    let proof = key.proof("GET", &format!("{ORIGIN}/orders"), Some(&bound));
    assert_eq!(
        call(&only, Method::GET, "/orders", &dpop_headers(&bound, &proof))
            .await
            .status,
        StatusCode::OK
    );

    // A layer that knows nothing of DPoP still never takes a bound token as a bearer token.
    let unaware = JwtAuthLayer::new(keys.verifier());
    let seen = call(&unaware, Method::GET, "/orders", &bearer(&bound)).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert!(seen.challenges[0].contains("DPoP-bound token"), "{seen:?}");
    // Nor reads the DPoP scheme at all.
    let seen = call(
        &unaware,
        Method::GET,
        "/orders",
        &dpop_headers(&bound, &proof),
    )
    .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.challenges, ["Bearer"]);
}

#[tokio::test]
async fn certificate_bound_tokens_need_their_certificate() {
    let keys = TestKeys::hs256();
    let der = |pem: &str| {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    };
    let cert1 = der(include_str!("keys/client-cert-1.pem"));
    let cert2 = der(include_str!("keys/client-cert-2.pem"));
    let token = bound_token(
        &keys,
        &Confirmation::certificate(certificate_thumbprint(&cert1)),
    );

    let layer = JwtAuthLayer::new(keys.verifier())
        .with_certificate_binding(CertificateBinding::from_extension());
    let ok = call_with(
        &layer,
        Method::GET,
        "/",
        &bearer(&token),
        Some(ClientCertificate(Bytes::from(cert1.clone()))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    for (why, cert) in [
        (
            "another certificate",
            Some(ClientCertificate(Bytes::from(cert2))),
        ),
        ("no certificate", None),
    ] {
        let seen = call_with(&layer, Method::GET, "/", &bearer(&token), cert).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{why}: {seen:?}");
        assert!(
            seen.challenges[0].contains("client certificate"),
            "{why}: {seen:?}"
        );
    }
    // A layer that cannot see certificates refuses the bound token (fail closed).
    let unaware = JwtAuthLayer::new(keys.verifier());
    let seen = call_with(
        &unaware,
        Method::GET,
        "/",
        &bearer(&token),
        Some(ClientCertificate(Bytes::from(cert1))),
    )
    .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
}

#[tokio::test]
async fn replayed_proofs_are_refused_by_every_instance_through_redis() {
    let redis = redis_server::RedisServer::start();
    let keys = TestKeys::hs256();
    let instance = || {
        let store =
            RedisReplayStore::connect(&redis.url(), "tta-dpop-test", Duration::from_secs(1))
                .unwrap();
        JwtAuthLayer::new(keys.verifier()).with_dpop(config().replay_store(store))
    };
    let (a, b) = (instance(), instance());
    let key = DpopKey::es256();
    let token = bound_token(&keys, &key.confirmation());
    let proof = key.proof("GET", &format!("{ORIGIN}/orders"), Some(&token));
    assert_eq!(
        call(&a, Method::GET, "/orders", &dpop_headers(&token, &proof))
            .await
            .status,
        StatusCode::OK
    );
    let seen = call(&b, Method::GET, "/orders", &dpop_headers(&token, &proof)).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert!(seen.challenges[1].contains("replayed"), "{seen:?}");
}

/// A DPoP proof made by jose with the key `private_jwk` (or a new key of `alg`).
fn jose_proof(
    key: Option<&Value>,
    alg: &str,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
) -> Value {
    let mut spec = json!({ "htm": htm, "htu": htu });
    if let Some(token) = access_token {
        spec["access_token"] = json!(token);
    }
    let mut input = json!({ "alg": alg, "proofs": [spec] });
    if let Some(key) = key {
        input["private_jwk"] = key.clone();
    }
    run_helper("dpop_proof.mjs", &input).unwrap()
}

#[tokio::test]
async fn dpop_bound_tokens_from_oidc_provider_with_proofs_made_by_jose() {
    let provider = OidcProvider::start(Options::default());
    let verifier = Verifier::builder(KeySet::new())
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .build_with_jwks(provider.jwks_source("/jwks"))
        .await
        .unwrap();
    let layer = JwtAuthLayer::new(verifier).with_dpop(config());
    let http = support::Http::new();

    for alg in ["ES256", "EdDSA"] {
        // The token request carries a proof (RFC 9449 §5): the provider binds the token.
        let made = jose_proof(None, alg, "POST", &provider.url("/token"), None);
        let key = made["private_jwk"].clone();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("client_secret", CLIENT_SECRET)
            .append_pair("scope", "read")
            .append_pair("resource", "urn:tta:ES256")
            .finish();
        let res = http
            .send_with(
                Method::POST,
                &provider.url("/token"),
                &[("dpop", made["proofs"][0].as_str().unwrap())],
                Some(("application/x-www-form-urlencoded", form)),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "{alg}: {}\n{}",
            String::from_utf8_lossy(&res.body),
            provider.log()
        );
        let body = res.json();
        assert_eq!(body["token_type"], "DPoP", "{alg}: {body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        let claims: Value = {
            use base64::Engine as _;
            let payload = token.split('.').nth(1).unwrap();
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            claims["cnf"]["jkt"], made["jkt"],
            "{alg}: the provider bound the token to jose's key"
        );

        let url = format!("{ORIGIN}/orders");
        let proof = jose_proof(Some(&key), alg, "GET", &url, Some(&token))["proofs"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let seen = call(
            &layer,
            Method::GET,
            "/orders",
            &dpop_headers(&token, &proof),
        )
        .await;
        assert_eq!(seen.status, StatusCode::OK, "{alg}: {seen:?}");
        assert_eq!(seen.body, CLIENT_ID);

        let refused = |seen: Seen, why: &str| {
            assert_eq!(
                seen.status,
                StatusCode::UNAUTHORIZED,
                "{alg} {why}: {seen:?}"
            );
        };
        refused(
            call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &proof),
            )
            .await,
            "replayed",
        );
        let post = jose_proof(Some(&key), alg, "POST", &url, Some(&token))["proofs"][0]
            .as_str()
            .unwrap()
            .to_owned();
        refused(
            call(&layer, Method::GET, "/orders", &dpop_headers(&token, &post)).await,
            "other method",
        );
        let elsewhere = jose_proof(
            Some(&key),
            alg,
            "GET",
            &format!("{ORIGIN}/other"),
            Some(&token),
        )["proofs"][0]
            .as_str()
            .unwrap()
            .to_owned();
        refused(
            call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &elsewhere),
            )
            .await,
            "other URL",
        );
        let stranger = jose_proof(None, alg, "GET", &url, Some(&token))["proofs"][0]
            .as_str()
            .unwrap()
            .to_owned();
        refused(
            call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, &stranger),
            )
            .await,
            "other key",
        );
        let mut old_spec =
            json!({ "htm": "GET", "htu": url, "access_token": token, "iat_offset": -600 });
        old_spec["jti"] = json!(format!("old-{alg}"));
        let old = run_helper(
            "dpop_proof.mjs",
            &json!({ "alg": alg, "private_jwk": key, "proofs": [old_spec] }),
        )
        .unwrap();
        refused(
            call(
                &layer,
                Method::GET,
                "/orders",
                &dpop_headers(&token, old["proofs"][0].as_str().unwrap()),
            )
            .await,
            "old iat",
        );
        refused(
            call(&layer, Method::GET, "/orders", &bearer(&token)).await,
            "as a bearer token",
        );
    }
}

#[tokio::test]
async fn proofs_are_recorded_only_for_tokens_that_verify() {
    use std::sync::Arc;
    use tower_token_auth::dpop::MemoryReplayStore;

    let keys = TestKeys::hs256();
    let store = Arc::new(MemoryReplayStore::new());
    let layer = JwtAuthLayer::new(keys.verifier()).with_dpop(config().replay_store(store.clone()));
    let key = DpopKey::es256();
    let token = bound_token(&keys, &key.confirmation());
    let forged = {
        let (rest, _) = token.rsplit_once('.').unwrap();
        format!("{rest}.AAAA{}", &token[token.len() - 10..])
    };
    let url = format!("{ORIGIN}/orders");
    // A valid proof for the forged token: refused for the token, and nothing recorded, so
    // nobody without a valid token can fill the replay store.
    let proof = key.proof("GET", &url, Some(&forged));
    let seen = call(
        &layer,
        Method::GET,
        "/orders",
        &dpop_headers(&forged, &proof),
    )
    .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert!(
        seen.challenges[1].starts_with("DPoP error=\"invalid_token\""),
        "{seen:?}"
    );
    assert_eq!(store.len(), 0);
    let proof = key.proof("GET", &url, Some(&token));
    assert_eq!(
        call(
            &layer,
            Method::GET,
            "/orders",
            &dpop_headers(&token, &proof)
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn guards_answer_on_the_scheme_the_request_used() {
    use tower_token_auth::RequireScopeLayer;

    let keys = TestKeys::hs256();
    let key = DpopKey::es256();
    let token = bound_token(&keys, &key.confirmation());
    let svc = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(keys.verifier()).with_dpop(config()))
        .layer(RequireScopeLayer::new("admin").unwrap())
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::from("admin")))
        }));
    let proof = key.proof("GET", &format!("{ORIGIN}/admin"), Some(&token));
    let req = Request::builder()
        .uri("/admin")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Full::default())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenges: Vec<_> = res
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(challenges[0], "Bearer", "{challenges:?}");
    assert!(
        challenges[1].starts_with("DPoP error=\"insufficient_scope\"")
            && challenges[1].contains("scope=\"admin\""),
        "{challenges:?}"
    );

    // A bearer token lacking the scope: the error on the Bearer challenge.
    let req = Request::builder()
        .uri("/admin")
        .header(
            "authorization",
            format!("Bearer {}", keys.mint("bob", "read")),
        )
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let first = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        first.starts_with("Bearer error=\"insufficient_scope\""),
        "{first}"
    );
}
