//! The authorization-server parts of `sso`: the code store (memory and a real redis-server),
//! the client registry, the signing key ring (checked by this crate's verifier and by node
//! `jose`), the discovery document and the back-channel logout sender.
//!
//! Needs the `redis` and `http-client` features (`cargo test --features testing,redis,http-client
//! --test sso_server_parts`); without them it compiles to nothing.
#![cfg(all(feature = "redis", feature = "http-client"))]

#[path = "support/oidc_provider.rs"]
mod oidc_provider;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::Arc;
use std::time::Duration;

use tower_token_auth::sso::code::{
    AuthorizationCodeStore, CodeGrant, CodeHash, IssuedRef, MarkIssued, MemoryCodeStore,
    Redemption, RedisCodeStore, Refusal, s256_challenge,
};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CLIENT: &str = "orders";
const REDIRECT: &str = "https://orders.example/callback";

fn grant() -> CodeGrant {
    CodeGrant::new(CLIENT, REDIRECT, s256_challenge(VERIFIER), "alice", "sid-1")
        .expect("valid grant")
        .scope("orders")
        .nonce("n-1")
        .auth_time(1_700_000_000)
}

async fn redeem(store: &dyn AuthorizationCodeStore, code: &str) -> Redemption {
    store
        .redeem(code, CLIENT, REDIRECT, VERIFIER)
        .await
        .expect("store answers")
}

/// The conformance suite, run once per store.
macro_rules! code_store_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn single_use_and_replay_names_what_was_issued() {
                let (store, _guard) = $make(Duration::from_secs(60));
                let code = store.issue(&grant()).await.unwrap();
                let Redemption::Redeemed(got) = redeem(&*store, &code).await else {
                    panic!("first redemption must win");
                };
                assert_eq!(got, grant());
                let issued = IssuedRef::new().family("fam-1").jti("at-1").expires_at(99);
                assert_eq!(
                    store
                        .mark_issued(CodeHash::of(&code), &issued)
                        .await
                        .unwrap(),
                    MarkIssued::Recorded
                );
                for _ in 0..2 {
                    match redeem(&*store, &code).await {
                        Redemption::Replayed {
                            session,
                            sub,
                            client_id,
                            issued: Some(i),
                        } => {
                            assert_eq!((session.as_str(), sub.as_str()), ("sid-1", "alice"));
                            assert_eq!(client_id, CLIENT);
                            assert_eq!(i, issued);
                        }
                        other => panic!("replay: {other:?}"),
                    }
                }
                assert_eq!(redeem(&*store, "no-such-code").await, Redemption::Unknown);
                assert_eq!(redeem(&*store, "").await, Redemption::Unknown);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_mismatch_refuses_and_burns_the_code() {
                let (store, _guard) = $make(Duration::from_secs(60));
                let wrong_verifier = "x".repeat(43);
                let cases: [(&str, &str, &str, Refusal); 5] = [
                    ("members", REDIRECT, VERIFIER, Refusal::ClientMismatch),
                    (
                        CLIENT,
                        "https://orders.example/callback/",
                        VERIFIER,
                        Refusal::RedirectUriMismatch,
                    ),
                    (CLIENT, REDIRECT, &wrong_verifier, Refusal::PkceFailed),
                    // Too short for RFC 7636, though its hash might match a challenge.
                    (CLIENT, REDIRECT, "short", Refusal::PkceFailed),
                    (CLIENT, REDIRECT, &VERIFIER[..42], Refusal::PkceFailed),
                ];
                for (client, redirect, verifier, reason) in cases {
                    let code = store.issue(&grant()).await.unwrap();
                    let got = store
                        .redeem(&code, client, redirect, verifier)
                        .await
                        .unwrap();
                    assert_eq!(
                        got,
                        Redemption::Refused { reason },
                        "{client} {redirect} {verifier}"
                    );
                    // Burned: the right parameters come too late.
                    match redeem(&*store, &code).await {
                        Redemption::Replayed { issued: None, .. } => {}
                        other => panic!("after a refusal: {other:?}"),
                    }
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn fifty_concurrent_redemptions_one_winner() {
                let (store, _guard) = $make(Duration::from_secs(60));
                for _round in 0..3 {
                    let code = store.issue(&grant()).await.unwrap();
                    let barrier = Arc::new(tokio::sync::Barrier::new(50));
                    let tasks: Vec<_> = (0..50)
                        .map(|_| {
                            let store = store.clone();
                            let code = code.clone();
                            let barrier = barrier.clone();
                            tokio::spawn(async move {
                                barrier.wait().await;
                                store.redeem(&code, CLIENT, REDIRECT, VERIFIER).await
                            })
                        })
                        .collect();
                    let (mut won, mut replayed) = (0, 0);
                    for t in tasks {
                        match t.await.unwrap().unwrap() {
                            Redemption::Redeemed(_) => won += 1,
                            Redemption::Replayed { .. } => replayed += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                    assert_eq!((won, replayed), (1, 49));
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_replay_before_mark_issued_is_reported_to_the_issuer() {
                let (store, _guard) = $make(Duration::from_secs(60));
                let code = store.issue(&grant()).await.unwrap();
                assert!(matches!(
                    redeem(&*store, &code).await,
                    Redemption::Redeemed(_)
                ));
                assert!(matches!(
                    redeem(&*store, &code).await,
                    Redemption::Replayed { issued: None, .. }
                ));
                let issued = IssuedRef::new().sid("sid-1").jti("at-1");
                assert_eq!(
                    store
                        .mark_issued(CodeHash::of(&code), &issued)
                        .await
                        .unwrap(),
                    MarkIssued::Replayed
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn an_expired_code_is_unknown() {
                let (store, _guard) = $make(Duration::from_millis(150));
                let code = store.issue(&grant()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
                assert_eq!(redeem(&*store, &code).await, Redemption::Unknown);
            }
        }
    };
}

fn memory(ttl: Duration) -> (Arc<dyn AuthorizationCodeStore>, ()) {
    (Arc::new(MemoryCodeStore::new().with_code_ttl(ttl)), ())
}

fn redis(ttl: Duration) -> (Arc<dyn AuthorizationCodeStore>, redis_server::RedisServer) {
    let server = redis_server::RedisServer::start();
    let store = RedisCodeStore::connect(&server.url(), "tta-test:", Duration::from_secs(2))
        .expect("client")
        .with_code_ttl(ttl);
    (Arc::new(store), server)
}

code_store_tests!(memory_store, memory);
code_store_tests!(redis_store, redis);

#[tokio::test]
async fn redis_down_is_a_transient_error_not_a_decision() {
    let mut server = redis_server::RedisServer::start();
    let store = RedisCodeStore::connect(&server.url(), "tta-test:", Duration::from_millis(300))
        .expect("client");
    let code = store.issue(&grant()).await.unwrap();
    server.kill();
    let err = store
        .redeem(&code, CLIENT, REDIRECT, VERIFIER)
        .await
        .expect_err("no answer without Redis");
    assert!(err.is_transient(), "{err}");
    let err = store
        .issue(&grant())
        .await
        .expect_err("no code without Redis");
    assert!(err.is_transient(), "{err}");
}

mod clients {
    use tower_token_auth::sso::clients::{
        ClientRegistry, RedirectError, RegisteredClient, check_redirect_uri,
    };

    fn registry() -> ClientRegistry {
        ClientRegistry::new()
            .with_client(
                RegisteredClient::new("orders")
                    .unwrap()
                    .redirect_uri("https://orders.example/callback")
                    .unwrap()
                    .redirect_uri("http://127.0.0.1:8080/cb")
                    .unwrap(),
            )
            .unwrap()
    }

    #[test]
    fn only_the_exact_uri_is_accepted() {
        let clients = registry();
        for ok in [
            "https://orders.example/callback",
            "http://127.0.0.1:8080/cb",
        ] {
            assert!(clients.redirect_uri("orders", ok).is_ok(), "{ok}");
        }
        let near_misses = [
            "https://orders.example/callback/",
            "https://orders.example/callbackx",
            "https://orders.example/Callback",
            "https://ORDERS.example/callback",
            "https://Orders.Example/callback",
            "HTTPS://orders.example/callback",
            "https://orders.example./callback",
            "https://orders.example/callback?",
            "https://orders.example/callback?x=1",
            "https://orders.example/callback?next=https://evil.example",
            "https://orders.example/callback#",
            "https://orders.example/callback#x",
            "https://orders.example%2Fcallback",
            "https://orders.example/callback%2F",
            "https://orders.example/%63allback",
            "https://orders.example%2fcallback",
            "https://orders.example//callback",
            "https://orders.example/./callback",
            "https://orders.example/x/../callback",
            "https://orders.example:443/callback",
            "https://orders.example:8443/callback",
            "https://user@orders.example/callback",
            "https://orders.example@evil.example/callback",
            "https://orders.example.evil.example/callback",
            "https://evil.example/https://orders.example/callback",
            "http://orders.example/callback",
            " https://orders.example/callback",
            "https://orders.example/callback ",
            "https://orders.example/callback\n",
            "http://127.0.0.1:8081/cb",
            "http://127.0.0.1/cb",
            "http://localhost:8080/cb",
            "http://[::1]:8080/cb",
            "http://127.0.0.1:8080/cb/",
            "http://127.0.0.1:08080/cb",
            "",
        ];
        for uri in near_misses {
            assert_eq!(
                clients.redirect_uri("orders", uri).err(),
                Some(RedirectError::UnregisteredRedirectUri),
                "{uri:?} must be refused"
            );
        }
        assert_eq!(
            clients
                .redirect_uri("Orders", "https://orders.example/callback")
                .err(),
            Some(RedirectError::UnknownClient)
        );
    }

    #[test]
    fn post_logout_redirect_uris_match_exactly() {
        let client = RegisteredClient::new("rp")
            .unwrap()
            .post_logout_redirect_uri("https://rp.example/signed-out")
            .unwrap();
        assert!(client.allows_post_logout_redirect_uri("https://rp.example/signed-out"));
        for no in ["https://rp.example/signed-out/", "https://rp.example/", ""] {
            assert!(!client.allows_post_logout_redirect_uri(no), "{no}");
        }
        for bad in [
            "https://rp.example/x#f",
            "http://rp.example/x",
            "https://u@rp.example/",
        ] {
            assert!(
                RegisteredClient::new("rp")
                    .unwrap()
                    .post_logout_redirect_uri(bad)
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unsafe_uris_cannot_be_registered() {
        let refused = [
            "https://orders.example/callback#",
            "https://orders.example/callback#frag",
            "https://user@orders.example/callback",
            "https://user:pass@orders.example/callback",
            "http://orders.example/callback",
            "http://10.0.0.1/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/cb",
            "HTTPS://orders.example/callback",
            "https:///callback",
            "https://",
            "//orders.example/callback",
            "/callback",
            "javascript:alert(1)",
            "com.example.app:/callback",
            "https://orders.example/call back",
            "https://orders.example/caf\u{e9}",
            "",
        ];
        for uri in refused {
            assert!(check_redirect_uri(uri).is_err(), "{uri:?} must be refused");
            assert!(
                RegisteredClient::new("c")
                    .unwrap()
                    .redirect_uri(uri)
                    .is_err(),
                "{uri:?}"
            );
        }
        for ok in [
            "https://orders.example/callback?tenant=a",
            "https://orders.example:8443/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:9000/cb",
            "http://localhost:3000/cb",
        ] {
            check_redirect_uri(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert!(RegisteredClient::new("").is_err());
        assert!(RegisteredClient::new("a b").is_err());
        // A client without redirect URI, or twice, is refused.
        assert!(
            ClientRegistry::new()
                .with_client(RegisteredClient::new("c").unwrap())
                .is_err()
        );
        assert!(
            registry()
                .with_client(
                    RegisteredClient::new("orders")
                        .unwrap()
                        .redirect_uri("https://x.example/cb")
                        .unwrap()
                )
                .is_err()
        );
        assert!(
            RegisteredClient::new("c")
                .unwrap()
                .backchannel_logout_uri("https://c.example/bcl#x")
                .is_err()
        );
    }
}

mod key_ring {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use http::{Request, header};
    use serde_json::json;
    use tower::ServiceExt as _;
    use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
    use tower_token_auth::{KeySet, TokenIssuer, Verifier};

    use crate::oidc_provider::run_helper;

    const ES256_PEM: &[u8] = include_bytes!("../src/testing/es256-private.pem");
    const ED25519_PEM: &[u8] = include_bytes!("keys/ed25519-private.pem");

    struct FakeClock(Arc<AtomicU64>);
    impl FakeClock {
        fn set(&self, t: u64) {
            self.0.store(t, Ordering::SeqCst);
        }
    }

    fn ring(ahead: u64) -> (SigningKeyRing, FakeClock, u64) {
        let t0 = crate::support::now_secs();
        let now = Arc::new(AtomicU64::new(t0));
        let clock = now.clone();
        let ring = SigningKeyRing::new(RingKey::from_pem(ES256_PEM).unwrap())
            .publish_ahead(Duration::from_secs(ahead))
            .max_token_lifetime(Duration::from_secs(600))
            .leeway(Duration::from_secs(60))
            .with_clock(move || clock.load(Ordering::SeqCst));
        (ring, FakeClock(now), t0)
    }

    fn verifier(jwks_json: &str) -> Verifier {
        Verifier::builder(KeySet::from_jwks_json(jwks_json).unwrap())
            .issuer("https://auth.example")
            .audience("orders")
            .build()
            .unwrap()
    }

    fn mint(ring: &SigningKeyRing) -> String {
        TokenIssuer::new(ring.signing_key())
            .issuer("https://auth.example")
            .audience("orders")
            .ttl(Duration::from_secs(600))
            .issue("alice", "orders")
            .unwrap()
            .token
    }

    fn kid_of(token: &str) -> String {
        jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
    }

    #[test]
    fn a_cached_jwk_set_never_meets_an_unknown_kid() {
        let (ring, clock, t0) = ring(300);
        let first = ring.current_kid();
        let old_token = mint(&ring);

        // A verifier that cached the set just before the rotation: its cache (max-age =
        // publish_ahead) runs out before the new key signs.
        clock.set(t0 + 5);
        let before = ring.jwks_json();
        let cached_until = t0 + 5 + ring.cache_max_age().as_secs();

        clock.set(t0 + 10);
        let next = RingKey::generate_ed25519().unwrap();
        let next_kid = next.kid().to_owned();
        let signs_from = ring.rotate(next).unwrap();
        assert_eq!(signs_from, t0 + 310);
        assert!(
            cached_until <= signs_from,
            "a cache outlives the publication lead"
        );
        assert!(
            verifier(&before)
                .verify::<serde_json::Value>(&old_token)
                .is_ok()
        );

        // Every set fetched after the rotation, before the switch, verifies the new key's
        // tokens once it signs.
        let during: Vec<String> = [t0 + 10, t0 + 200, t0 + 309]
            .iter()
            .map(|&t| {
                clock.set(t);
                assert_eq!(ring.current_kid(), first, "not signing before {signs_from}");
                assert_eq!(ring.published_kids(), [first.clone(), next_kid.clone()]);
                ring.jwks_json()
            })
            .collect();
        for t in [signs_from, signs_from + 1, signs_from + 299] {
            clock.set(t);
            assert_eq!(ring.current_kid(), next_kid);
            let token = mint(&ring);
            assert_eq!(kid_of(&token), next_kid);
            for set in &during {
                verifier(set)
                    .verify::<serde_json::Value>(&token)
                    .expect("a cached set knows the new kid");
                verifier(set)
                    .verify::<serde_json::Value>(&old_token)
                    .expect("and still the old one");
            }
        }

        // The retired key stays published until its last token expired (600 s + 60 s leeway
        // after it stopped signing), then disappears.
        clock.set(signs_from + 660);
        assert_eq!(ring.published_kids(), [first.clone(), next_kid.clone()]);
        verifier(&ring.jwks_json())
            .verify::<serde_json::Value>(&old_token)
            .expect("retired key still published");
        clock.set(signs_from + 661);
        assert_eq!(ring.published_kids(), [next_kid.as_str()]);
        // A rotation purges it for good, and a kid cannot come back.
        ring.rotate(RingKey::generate_ed25519().unwrap()).unwrap();
        assert_eq!(ring.published_kids().len(), 2);
        assert!(ring.rotate(RingKey::from_pem(ES256_PEM).unwrap()).is_ok());
        let dup = RingKey::from_pem(ES256_PEM).unwrap();
        assert!(ring.rotate(dup).is_err(), "duplicate kid");
    }

    #[test]
    fn publish_ahead_zero_signs_at_once() {
        let (ring, _clock, _t0) = ring(0);
        let next = RingKey::from_pem(ED25519_PEM).unwrap();
        let kid = next.kid().to_owned();
        ring.rotate(next).unwrap();
        assert_eq!(ring.current_kid(), kid);
        assert_eq!(
            ring.algorithms(),
            [
                tower_token_auth::Algorithm::ES256,
                tower_token_auth::Algorithm::EdDSA
            ]
        );
    }

    #[test]
    fn the_published_jwks_members() {
        let (ring, _clock, _t0) = ring(300);
        ring.rotate(RingKey::from_pem(ED25519_PEM).unwrap())
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        let keys = doc["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for (key, alg) in keys.iter().zip(["ES256", "EdDSA"]) {
            assert_eq!(key["alg"], alg);
            assert_eq!(key["use"], "sig");
            assert!(key["kid"].as_str().is_some_and(|k| k.len() == 43));
            assert!(key.get("d").is_none(), "no private member: {key}");
        }
        assert!(RingKey::from_pem(b"not a key").is_err());
        let rsa = include_bytes!("keys/rs256-private.pem");
        assert!(RingKey::from_pem(rsa).is_err(), "RSA is not offered");
    }

    #[tokio::test]
    async fn the_jwks_service() {
        let (ring, _clock, _t0) = ring(120);
        let res = ring
            .jwks_service()
            .oneshot(Request::get("/jwks").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "public, max-age=120");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        assert_eq!(body.to_bytes(), ring.jwks_json().as_bytes());
        let res = ring
            .jwks_service()
            .oneshot(Request::post("/jwks").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
    }

    #[test]
    fn jose_verifies_the_rings_tokens() {
        for pem in [ES256_PEM, ED25519_PEM] {
            let ring = SigningKeyRing::new(RingKey::from_pem(pem).unwrap());
            let token = mint(&ring);
            let jwks: serde_json::Value = serde_json::from_str(&ring.jwks_json()).unwrap();
            let out = run_helper(
                "verify.mjs",
                &json!({"token": token, "jwks": jwks, "issuer": "https://auth.example", "audience": "orders"}),
            )
            .unwrap_or_else(|e| panic!("jose refused the ring's token: {e}"));
            assert_eq!(out["payload"]["sub"], "alice");
            assert_eq!(out["header"]["kid"], ring.current_kid());
        }
    }
}

mod discovery_document {
    use std::time::Duration;

    use axum::Router;
    use http::Request;
    use tower::ServiceExt as _;
    use tower_token_auth::keys::{Discovery, DiscoveryError};
    use tower_token_auth::sso::discovery_document::ProviderMetadata;
    use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
    use tower_token_auth::{Algorithm, KeySet, TokenIssuer, Verifier};

    fn ring() -> SigningKeyRing {
        SigningKeyRing::new(
            RingKey::from_pem(include_bytes!("../src/testing/es256-private.pem")).unwrap(),
        )
    }

    #[test]
    fn the_document_parses_as_metadata() {
        let ring = ring();
        ring.rotate(RingKey::generate_ed25519().unwrap()).unwrap();
        let issuer = "https://auth.example/tenant-a";
        let metadata = ProviderMetadata::new(issuer)
            .unwrap()
            .signing_algorithms_of(&ring);
        let json = metadata.to_json();
        let found = Discovery::from_json(issuer, json.as_bytes()).expect("the crate's parser");
        assert_eq!(found.issuer(), issuer);
        assert_eq!(
            found.jwks_uri(),
            "https://auth.example/tenant-a/.well-known/jwks.json"
        );
        assert_eq!(
            found.signing_algorithms(),
            [Algorithm::ES256, Algorithm::EdDSA]
        );
        // No trailing-slash mismatch: the document names the issuer exactly.
        assert!(matches!(
            Discovery::from_json(&format!("{issuer}/"), json.as_bytes()),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        for (member, value) in [
            (
                "authorization_endpoint",
                "https://auth.example/tenant-a/authorize",
            ),
            ("token_endpoint", "https://auth.example/tenant-a/token"),
            (
                "end_session_endpoint",
                "https://auth.example/tenant-a/logout",
            ),
            (
                "revocation_endpoint",
                "https://auth.example/tenant-a/revoke",
            ),
        ] {
            assert_eq!(doc[member], value, "{member}");
        }
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        assert_eq!(doc["backchannel_logout_supported"], true);
        assert_eq!(doc["backchannel_logout_session_supported"], true);
        assert!(
            doc["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&"authorization_code".into())
        );
        assert!(doc["token_endpoint_auth_methods_supported"].is_array());

        for bad in [
            "https://auth.example/",
            "http://auth.example",
            "https://auth.example?x=1",
            "https://auth.example#x",
            "auth.example",
        ] {
            assert!(ProviderMetadata::new(bad).is_err(), "{bad}");
        }
        assert!(ProviderMetadata::new("http://127.0.0.1:8080").is_ok());
        assert!(metadata.clone().member("issuer", "x".into()).is_err());
        assert!(
            metadata
                .member("ui_locales_supported", serde_json::json!(["en"]))
                .is_ok()
        );
    }

    /// Served over HTTP beside the ring's JWK Set, the metadata is all the crate's verifier
    /// needs (`Verifier::discover`), and the ring's tokens verify.
    #[tokio::test]
    async fn served_and_discovered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let ring = ring();
        let metadata = ProviderMetadata::new(&issuer)
            .unwrap()
            .signing_algorithms_of(&ring);
        let res = metadata
            .service()
            .oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        let app = Router::new()
            .route_service(ProviderMetadata::WELL_KNOWN_PATH, metadata.service())
            .route_service("/.well-known/jwks.json", ring.jwks_service());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let verifier = Verifier::builder(KeySet::new())
            .issuer(&issuer)
            .audience("orders")
            .discover(&issuer)
            .await
            .expect("discovery");
        let token = TokenIssuer::new(ring.signing_key())
            .issuer(&issuer)
            .audience("orders")
            .ttl(Duration::from_secs(60))
            .issue("alice", "")
            .unwrap()
            .token;
        let claims = verifier
            .verify::<serde_json::Value>(&token)
            .expect("verified");
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        server.abort();
    }
}

mod logout_sender {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Form, State};
    use axum::routing::post;
    use http::StatusCode;
    use tower_token_auth::Verifier;
    use tower_token_auth::sso::clients::RegisteredClient;
    use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
    use tower_token_auth::sso::logout_sender::{BACKCHANNEL_LOGOUT_EVENT, BackchannelLogoutSender};

    #[derive(Clone)]
    struct Rp {
        verifier: Arc<Verifier>,
        hits: Arc<AtomicUsize>,
    }

    #[derive(serde::Deserialize)]
    struct LogoutForm {
        logout_token: String,
    }

    async fn receive(State(rp): State<Rp>, Form(f): Form<LogoutForm>) -> StatusCode {
        let n = rp.hits.fetch_add(1, Ordering::SeqCst);
        let claims = rp
            .verifier
            .verify::<serde_json::Value>(&f.logout_token)
            .expect("a valid logout token");
        let extra = &claims.custom;
        assert_eq!(
            extra["events"][BACKCHANNEL_LOGOUT_EVENT],
            serde_json::json!({})
        );
        assert!(extra.get("nonce").is_none());
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        assert_eq!(claims.sid.as_deref(), Some("sid-1"));
        // The first two attempts meet an outage.
        if n < 2 {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        }
    }

    #[tokio::test]
    async fn every_client_is_told_with_retries() {
        let ring = SigningKeyRing::new(RingKey::generate_ed25519().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = "https://auth.example";
        let verifier = Verifier::builder(ring.key_set().unwrap())
            .issuer(issuer)
            .audience("orders")
            .require_typ("logout+jwt")
            .build()
            .unwrap();
        let rp = Rp {
            verifier: Arc::new(verifier),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/orders/bcl", post(receive))
            .route("/members/bcl", post(|| async { StatusCode::BAD_REQUEST }))
            .with_state(rp.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let client = |id: &str, path: Option<&str>| {
            let c = RegisteredClient::new(id)
                .unwrap()
                .redirect_uri(format!("{base}/{id}/cb").replace("http://", "https://"))
                .unwrap();
            match path {
                Some(p) => c.backchannel_logout_uri(format!("{base}{p}")).unwrap(),
                None => c,
            }
        };
        let clients = [
            client("orders", Some("/orders/bcl")),
            client("members", Some("/members/bcl")),
            client("static", None),
            // Nobody listens there: connection refused, retried, reported.
            client("gone", Some("/gone"))
                .backchannel_logout_uri(format!(
                    "http://127.0.0.1:{}/bcl",
                    crate::support::free_port()
                ))
                .unwrap(),
        ];
        let sender = BackchannelLogoutSender::new(issuer, ring)
            .unwrap()
            .timeout(Duration::from_secs(2))
            .retries(2, Duration::from_millis(20));
        let report = sender.send_logout(clients.iter(), "alice", "sid-1").await;
        assert_eq!(report.delivered, ["orders"]);
        assert_eq!(rp.hits.load(Ordering::SeqCst), 3, "two retries after 503");
        let failed: Vec<&str> = report.failed.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(failed, ["gone", "members"], "{:?}", report.failed);
        assert!(report.failed[1].1.contains("400"), "{:?}", report.failed);
        assert_eq!(report.skipped, ["static"]);
        assert!(!report.all_delivered());
        server.abort();
    }
}

mod authorization_request {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256, Sha512};
    use tower_token_auth::revocation::{RevocationCheck, RevocationStatus, TokenRef};
    use tower_token_auth::sso::clients::{ClientRegistry, RedirectError, RegisteredClient};
    use tower_token_auth::sso::code::{AuthorizationRequest, AuthorizeError, IssuedRef};
    use tower_token_auth::sso::key_ring::RingKey;
    use tower_token_auth::{MemoryStore, RevocationStore, SigningKey};

    use super::{CLIENT, REDIRECT, VERIFIER, grant, support};

    fn clients() -> ClientRegistry {
        let client = RegisteredClient::new(CLIENT)
            .unwrap()
            .redirect_uri(REDIRECT);
        ClientRegistry::new().with_client(client.unwrap()).unwrap()
    }

    fn request() -> AuthorizationRequest {
        let mut req = AuthorizationRequest::default();
        req.response_type = Some("code".into());
        req.client_id = Some(CLIENT.into());
        req.redirect_uri = Some(REDIRECT.into());
        req.state = Some("/me?a=1&b".into());
        req.code_challenge = Some(tower_token_auth::sso::code::s256_challenge(VERIFIER));
        req.code_challenge_method = Some("S256".into());
        req.nonce = Some("n-1".into());
        req.scope = Some("openid offline_access".into());
        req
    }

    fn redirect_error(req: &AuthorizationRequest) -> (&'static str, String) {
        match req.check(&clients()) {
            Err(AuthorizeError::Redirect { error, location }) => (error, location),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_good_request_gets_a_grant_and_a_code_redirect() {
        let req = request();
        req.check(&clients()).unwrap();
        let grant = req.grant("alice", "sid-1").unwrap();
        assert_eq!(grant.nonce.as_deref(), Some("n-1"));
        assert!(grant.has_scope("openid") && grant.has_scope("offline_access"));
        assert!(!grant.has_scope("open"));
        assert_eq!(
            req.code_redirect("c0de"),
            format!("{REDIRECT}?code=c0de&state=%2Fme%3Fa%3D1%26b")
        );
    }

    #[test]
    fn unknown_clients_and_redirect_uris_are_never_redirected_to() {
        for (client, uri) in [
            ("evil", REDIRECT),
            (CLIENT, "https://evil.example/cb"),
            ("", ""),
        ] {
            let mut req = request();
            req.client_id = Some(client.into());
            req.redirect_uri = Some(uri.into());
            let refused = req.check(&clients()).unwrap_err();
            assert!(
                matches!(refused, AuthorizeError::NoRedirect(_)),
                "{refused:?}"
            );
        }
        let mut req = request();
        req.redirect_uri = None;
        assert_eq!(
            req.check(&clients()),
            Err(AuthorizeError::NoRedirect(
                RedirectError::UnregisteredRedirectUri
            ))
        );
    }

    #[test]
    fn other_refusals_go_back_to_the_client_with_an_error() {
        let mut no_pkce = request();
        no_pkce.code_challenge = None;
        let (error, location) = redirect_error(&no_pkce);
        assert_eq!(error, "invalid_request");
        assert!(location.starts_with(&format!("{REDIRECT}?error=invalid_request&state=")));
        let mut plain = request();
        plain.code_challenge_method = Some("plain".into());
        assert_eq!(redirect_error(&plain).0, "invalid_request");
        let mut token = request();
        token.response_type = Some("token".into());
        assert_eq!(redirect_error(&token).0, "unsupported_response_type");
        // An overlong state is not echoed.
        let mut long = request();
        long.state = Some("s".repeat(3000));
        let (error, location) = redirect_error(&long);
        assert_eq!(error, "invalid_request");
        assert_eq!(location, format!("{REDIRECT}?error=invalid_request"));
    }

    #[test]
    fn the_id_token_binds_the_access_token_with_the_keys_hash() {
        let es256 = SigningKey::ec_pem(
            jsonwebtoken::Algorithm::ES256,
            include_bytes!("../src/testing/es256-private.pem"),
        )
        .unwrap();
        let eddsa = RingKey::generate_ed25519().unwrap();
        let ring = tower_token_auth::sso::key_ring::SigningKeyRing::new(eddsa);
        let access = "an-access-token";
        let half = |digest: &[u8]| URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]);
        for (key, at_hash) in [
            (es256, half(&Sha256::digest(access))),
            (ring.signing_key(), half(&Sha512::digest(access))),
        ] {
            let ttl = std::time::Duration::from_secs(60);
            let token = grant()
                .id_token(key, "https://auth.example", access, ttl)
                .unwrap();
            let mut parts = token.split('.');
            let header: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                    .unwrap();
            let claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(header["typ"], "JWT");
            assert_eq!(claims["at_hash"], at_hash.as_str(), "{header}");
            assert_eq!(claims["iss"], "https://auth.example");
            assert_eq!(
                (&claims["aud"], &claims["azp"]),
                (&CLIENT.into(), &CLIENT.into())
            );
            assert_eq!(
                (&claims["sub"], &claims["sid"]),
                (&"alice".into(), &"sid-1".into())
            );
            assert_eq!(claims["nonce"], "n-1");
            assert_eq!(claims["auth_time"], 1_700_000_000);
            assert!(claims.get("scope").is_none());
        }
    }

    async fn revoked(store: &MemoryStore, token: TokenRef<'_>) -> bool {
        let status = match store.check(&token) {
            RevocationCheck::Ready(status) => status,
            RevocationCheck::Pending(pending) => pending.await,
        };
        status.unwrap() == RevocationStatus::Revoked
    }

    #[tokio::test]
    async fn revoking_what_a_code_issued_spares_the_sso_session() {
        let store = MemoryStore::new();
        let now = support::now_secs();
        let issued = IssuedRef::new()
            .sid("sid-1")
            .jti("at-1")
            .family("fam-1")
            .expires_at(now + 60);
        issued.revoke(&store, "alice", now + 60).await.unwrap();
        let token = |jti, sid| {
            TokenRef::new()
                .jti(jti)
                .sub("alice")
                .sid(sid)
                .iat(now)
                .exp(now + 60)
        };
        assert!(revoked(&store, token("at-1", "sid-1")).await);
        assert!(revoked(&store, token("at-2", "fam-1")).await);
        assert!(!revoked(&store, token("at-3", "sid-1")).await);
    }
}

mod sso_session {
    use std::sync::Arc;
    use std::time::Duration;

    use tower_token_auth::sso::session::{
        MemorySsoSessionStore, RedisSsoSessionStore, SsoSessionError, SsoSessionStore,
    };

    use super::redis_server;

    const TTL: Duration = Duration::from_secs(3600);

    macro_rules! session_store_tests {
        ($name:ident, $make:expr) => {
            mod $name {
                use super::*;

                #[tokio::test]
                async fn the_cookie_names_the_session_and_nothing_else_does() {
                    let (store, _guard) = $make(TTL);
                    let (session, cookie) = store.start("alice").await.unwrap();
                    assert_eq!(session.sub, "alice");
                    assert!(session.clients.is_empty() && session.families.is_empty());
                    let found = store.by_cookie(&cookie).await.unwrap().expect("live");
                    assert_eq!(found, session);
                    let (sid, secret) = cookie.split_once('.').unwrap();
                    assert_eq!((sid.len(), secret.len()), (22, 43));
                    let mut wrong = secret.to_owned().into_bytes();
                    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
                    let wrong = format!("{sid}.{}", String::from_utf8(wrong).unwrap());
                    let long = format!("{cookie}x");
                    for bad in ["", ".", sid, &wrong, &long, &format!("{sid}.{sid}"), "a.b"] {
                        assert_eq!(store.by_cookie(bad).await.unwrap(), None, "{bad:?}");
                    }
                    let other = format!("{}.{secret}", "A".repeat(22));
                    assert_eq!(store.by_cookie(&other).await.unwrap(), None);
                }

                #[tokio::test]
                async fn clients_and_families_are_recorded_until_the_end() {
                    let (store, _guard) = $make(TTL);
                    let (session, cookie) = store.start("alice").await.unwrap();
                    let sid = session.sid.as_str();
                    assert!(store.add_client(sid, "orders").await.unwrap());
                    assert!(store.add_client(sid, "members").await.unwrap());
                    assert!(store.add_family(sid, "orders", "fam-1").await.unwrap());
                    let owner = store.family_owner("fam-1").await.unwrap().expect("owner");
                    assert_eq!(
                        (owner.sid.as_str(), owner.client_id.as_str()),
                        (sid, "orders")
                    );
                    assert_eq!(store.family_owner("fam-2").await.unwrap(), None);
                    let live = store.get(sid).await.unwrap().expect("live");
                    assert_eq!(live.clients, ["members", "orders"].map(String::from).into());
                    assert_eq!(live.families, ["fam-1".to_owned()].into());

                    let ended = store.end(sid).await.unwrap().expect("was there");
                    assert_eq!(ended.families, live.families);
                    assert_eq!(ended.clients, live.clients);
                    assert_eq!(store.get(sid).await.unwrap(), None);
                    assert_eq!(store.by_cookie(&cookie).await.unwrap(), None);
                    assert_eq!(store.end(sid).await.unwrap(), None);
                    // An ended session is never brought back (fail closed).
                    assert!(!store.add_client(sid, "orders").await.unwrap());
                    assert!(!store.add_family(sid, "orders", "fam-3").await.unwrap());
                    assert_eq!(store.get(sid).await.unwrap(), None);
                    assert!(!store.add_client("unknown", "orders").await.unwrap());
                }

                #[tokio::test]
                async fn a_session_expires() {
                    let (store, _guard) = $make(Duration::from_secs(1));
                    let (session, cookie) = store.start("bob").await.unwrap();
                    assert!(session.remaining(session.auth_time) >= 1);
                    tokio::time::sleep(Duration::from_millis(2100)).await;
                    assert_eq!(store.by_cookie(&cookie).await.unwrap(), None);
                    assert!(!store.add_client(&session.sid, "orders").await.unwrap());
                }
            }
        };
    }

    fn memory(ttl: Duration) -> (Arc<dyn SsoSessionStore>, ()) {
        (Arc::new(MemorySsoSessionStore::new(ttl)), ())
    }

    fn redis(ttl: Duration) -> (Arc<dyn SsoSessionStore>, redis_server::RedisServer) {
        let server = redis_server::RedisServer::start();
        let store =
            RedisSsoSessionStore::connect(&server.url(), "tta-test:", ttl, Duration::from_secs(2))
                .expect("client");
        (Arc::new(store), server)
    }

    session_store_tests!(memory_store, memory);
    session_store_tests!(redis_store, redis);

    #[tokio::test]
    async fn redis_down_is_an_error_not_a_decision() {
        let mut server = redis_server::RedisServer::start();
        let store = RedisSsoSessionStore::connect(
            &server.url(),
            "tta-test:",
            TTL,
            Duration::from_millis(300),
        )
        .expect("client");
        let (session, cookie) = store.start("alice").await.unwrap();
        server.kill();
        let down = |e: SsoSessionError| {
            matches!(
                e,
                SsoSessionError::Unavailable(_) | SsoSessionError::Timeout
            )
        };
        assert!(down(store.by_cookie(&cookie).await.unwrap_err()));
        assert!(down(
            store.add_client(&session.sid, "orders").await.unwrap_err()
        ));
        assert!(down(store.end(&session.sid).await.unwrap_err()));
        assert!(down(store.start("bob").await.unwrap_err()));
    }
}

mod oauth_error {
    use http::{StatusCode, header};
    use http_body_util::BodyExt;
    use tower_token_auth::endpoint::OAuthError;

    #[tokio::test]
    async fn a_public_oauth_error_answers_rfc_6749_json_with_its_headers() {
        let e = OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert_eq!(e.description(), "unknown client");
        let res = e.response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let want =
            serde_json::json!({ "error": "invalid_client", "error_description": "unknown client" });
        assert_eq!(body, want);

        let busy = OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "x",
        );
        let res = busy.response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert!(!res.headers().contains_key(header::WWW_AUTHENTICATE));
        let bad = OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", "x").response();
        assert!(!bad.headers().contains_key(header::RETRY_AFTER));
    }
}

mod token_grants {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use http::StatusCode;
    use tower_token_auth::refresh::MemoryRefreshStore;
    use tower_token_auth::revocation::MemoryStore;
    use tower_token_auth::sso::code::{AuthorizationCodeStore, CodeGrant, MemoryCodeStore};
    use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
    use tower_token_auth::sso::session::{MemorySsoSessionStore, SsoSessionStore};
    use tower_token_auth::sso::token_endpoint::{BoxError, TokenError, TokenGrants};
    use tower_token_auth::{NoCustomClaims, Verifier};

    use super::{CLIENT, REDIRECT, VERIFIER};
    use tower_token_auth::sso::code::s256_challenge;

    const ISSUER: &str = "https://sso.example";

    struct Setup {
        grants: TokenGrants,
        codes: Arc<MemoryCodeStore>,
        sessions: Arc<MemorySsoSessionStore>,
        verifier: Verifier,
    }

    fn setup() -> Setup {
        let ring = SigningKeyRing::new(RingKey::generate_ed25519().unwrap());
        let verifier = Verifier::builder(ring.key_set().unwrap())
            .issuer(ISSUER)
            .audience(CLIENT)
            .audience("members")
            .require_typ("at+jwt")
            .build()
            .unwrap();
        let codes = Arc::new(MemoryCodeStore::new());
        let sessions = Arc::new(MemorySsoSessionStore::new(Duration::from_secs(3600)));
        let stores = (
            Arc::new(MemoryRefreshStore::new()) as _,
            Arc::new(MemoryStore::new()) as _,
        );
        let grants = TokenGrants::new(
            ISSUER,
            ring,
            verifier.clone(),
            codes.clone(),
            sessions.clone(),
            stores,
        )
        .access_ttl(Duration::from_secs(300));
        Setup {
            grants,
            codes,
            sessions,
            verifier,
        }
    }

    fn params(code: &str) -> HashMap<String, String> {
        [
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    }

    async fn scope(_: String) -> Result<String, BoxError> {
        Ok("orders".to_owned())
    }

    fn refused(r: Result<serde_json::Value, TokenError>) -> (StatusCode, &'static str) {
        match r {
            Err(TokenError::Refused(e)) => (e.status(), e.code()),
            other => panic!("not refused: {other:?}"),
        }
    }

    async fn code_for(s: &Setup, sid: &str, scope: &str) -> String {
        let grant = CodeGrant::new(CLIENT, REDIRECT, s256_challenge(VERIFIER), "alice", sid)
            .unwrap()
            .scope(scope)
            .nonce("n-1");
        s.codes.issue(&grant).await.unwrap()
    }

    #[tokio::test]
    async fn a_code_gives_tokens_once_and_a_replay_revokes_them() {
        let s = setup();
        let (session, _) = s.sessions.start("alice").await.unwrap();
        let code = code_for(&s, &session.sid, "openid offline_access").await;
        let body = s
            .grants
            .code_grant(CLIENT, &params(&code), scope)
            .await
            .unwrap();
        assert_eq!(body["scope"], "orders");
        assert!(body["id_token"].is_string());
        let access = body["access_token"].as_str().unwrap();
        let claims = s.verifier.verify::<NoCustomClaims>(access).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("alice"));
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let family = refresh.split('.').next().unwrap();
        let live = s.sessions.get(&session.sid).await.unwrap().unwrap();
        assert!(live.families.contains(family));

        // The family is the client's: another client is refused.
        let other = s.grants.refresh_grant("members", &refresh).await;
        assert_eq!(refused(other), (StatusCode::BAD_REQUEST, "invalid_grant"));
        let rotated = s.grants.refresh_grant(CLIENT, &refresh).await.unwrap();
        let refresh = rotated["refresh_token"].as_str().unwrap().to_owned();

        let again = s.grants.code_grant(CLIENT, &params(&code), scope).await;
        assert_eq!(refused(again), (StatusCode::BAD_REQUEST, "invalid_grant"));
        let revoked = s.grants.refresh_grant(CLIENT, &refresh).await;
        assert_eq!(refused(revoked), (StatusCode::BAD_REQUEST, "invalid_grant"));
    }

    #[tokio::test]
    async fn ending_a_session_revokes_its_tokens_and_families_and_names_its_clients() {
        let s = setup();
        let (session, _) = s.sessions.start("alice").await.unwrap();
        s.sessions.add_client(&session.sid, CLIENT).await.unwrap();
        let code = code_for(&s, &session.sid, "offline_access").await;
        let body = s
            .grants
            .code_grant(CLIENT, &params(&code), scope)
            .await
            .unwrap();
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let family = refresh.split('.').next().unwrap();
        assert_eq!(s.grants.sso_session_of(family).await.unwrap(), session.sid);
        assert_eq!(s.grants.sso_session_of("other").await.unwrap(), "other");

        let clients = s.grants.end_session("alice", &session.sid).await.unwrap();
        assert_eq!(clients, [CLIENT.to_owned()].into());
        let r = s.grants.refresh_grant(CLIENT, &refresh).await;
        assert_eq!(refused(r), (StatusCode::BAD_REQUEST, "invalid_grant"));
        assert_eq!(s.sessions.get(&session.sid).await.unwrap(), None);
        // Ending it again revokes again, and names nobody.
        let clients = s.grants.end_session("alice", &session.sid).await.unwrap();
        assert!(clients.is_empty());
    }

    #[tokio::test]
    async fn no_tokens_for_an_ended_session_or_an_incomplete_request() {
        let s = setup();
        let (session, _) = s.sessions.start("alice").await.unwrap();
        let code = code_for(&s, &session.sid, "openid").await;
        s.sessions.end(&session.sid).await.unwrap();
        let r = s.grants.code_grant(CLIENT, &params(&code), scope).await;
        assert_eq!(refused(r), (StatusCode::BAD_REQUEST, "invalid_grant"));

        let (session, _) = s.sessions.start("alice").await.unwrap();
        let code = code_for(&s, &session.sid, "openid").await;
        let mut p = params(&code);
        p.remove("code_verifier");
        let r = s.grants.code_grant(CLIENT, &p, scope).await;
        assert_eq!(refused(r), (StatusCode::BAD_REQUEST, "invalid_request"));
        let r = s
            .grants
            .code_grant(CLIENT, &params("nonsense"), scope)
            .await;
        assert_eq!(refused(r), (StatusCode::BAD_REQUEST, "invalid_grant"));
        let r = s.grants.refresh_grant(CLIENT, "").await;
        assert_eq!(refused(r), (StatusCode::BAD_REQUEST, "invalid_grant"));

        // Without offline_access: an access token only, never outliving the SSO session.
        let body = s
            .grants
            .code_grant(CLIENT, &params(&code), scope)
            .await
            .unwrap();
        assert!(body.get("refresh_token").is_none());
        assert!(body["expires_in"].as_u64().unwrap() <= 300);
    }
}

mod end_session {
    use std::collections::HashMap;

    use tower_token_auth::sso::clients::{ClientRegistry, RegisteredClient};
    use tower_token_auth::sso::end_session::{hinted_session, post_logout_redirect};
    use tower_token_auth::sso::key_ring::{RingKey, SigningKeyRing};
    use tower_token_auth::{NoCustomClaims, TokenIssuer, Verifier};

    const ISSUER: &str = "https://sso.example";

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_hint_counts_only_verified_and_for_its_client() {
        let ring = SigningKeyRing::new(RingKey::generate_ed25519().unwrap());
        let verifier = Verifier::builder(ring.key_set().unwrap())
            .issuer(ISSUER)
            .audience("orders")
            .audience("members")
            .require_typ("JWT")
            .build()
            .unwrap();
        let issuer = TokenIssuer::new(ring.signing_key()).issuer(ISSUER);
        let none = NoCustomClaims {};
        let id_token = issuer.clone().audience("orders").typ("JWT");
        let id_token = id_token
            .issue_in_session("alice", "", Some("sid-1"), &none)
            .unwrap();
        let hint = id_token.token.as_str();
        let found = hinted_session(
            &verifier,
            &params(&[("id_token_hint", hint), ("client_id", "orders")]),
        );
        assert_eq!(found, Some(("alice".to_owned(), "sid-1".to_owned())));
        let other = params(&[("id_token_hint", hint), ("client_id", "members")]);
        assert_eq!(hinted_session(&verifier, &other), None);
        assert_eq!(
            hinted_session(&verifier, &params(&[("client_id", "orders")])),
            None
        );
        let garbage = params(&[("id_token_hint", "a.b.c"), ("client_id", "orders")]);
        assert_eq!(hinted_session(&verifier, &garbage), None);
        let access = issuer.audience("orders").typ("at+jwt");
        let access = access
            .issue_in_session("alice", "", Some("sid-1"), &none)
            .unwrap();
        let access = params(&[("id_token_hint", &access.token), ("client_id", "orders")]);
        assert_eq!(
            hinted_session(&verifier, &access),
            None,
            "an access token is no hint"
        );
    }

    #[test]
    fn the_browser_goes_back_only_to_a_registered_uri() {
        let mut clients = ClientRegistry::new();
        let client = RegisteredClient::new("orders").unwrap();
        let client = client
            .redirect_uri("https://orders.example/callback")
            .unwrap();
        let client = client
            .post_logout_redirect_uri("https://orders.example/bye")
            .unwrap();
        clients.insert(client).unwrap();
        let uri = "https://orders.example/bye";
        let p = params(&[
            ("client_id", "orders"),
            ("post_logout_redirect_uri", uri),
            ("state", "s 1"),
        ]);
        assert_eq!(
            post_logout_redirect(&clients, &p).as_deref(),
            Some("https://orders.example/bye?state=s+1")
        );
        let p = params(&[("client_id", "orders"), ("post_logout_redirect_uri", uri)]);
        assert_eq!(
            post_logout_redirect(&clients, &p).as_deref(),
            Some("https://orders.example/bye?")
        );
        for bad in [
            params(&[("client_id", "members"), ("post_logout_redirect_uri", uri)]),
            params(&[("post_logout_redirect_uri", uri)]),
            params(&[
                ("client_id", "orders"),
                ("post_logout_redirect_uri", "https://orders.example/bye/"),
            ]),
            params(&[("client_id", "orders")]),
        ] {
            assert_eq!(post_logout_redirect(&clients, &bad), None, "{bad:?}");
        }
    }
}

mod client_spec {
    use tower_token_auth::sso::clients::ClientRegistry;

    #[test]
    fn a_one_line_list_registers_clients_and_refuses_what_it_cannot_read() {
        let spec = " orders=http://127.0.0.1:4001/callback;backchannel_logout_uri=http://127.0.0.1:4001/bc,\
                    ,members=http://127.0.0.1:4002/callback;post_logout_redirect_uri=http://127.0.0.1:4002/ ";
        let clients = ClientRegistry::from_spec(spec).unwrap();
        let orders = clients.get("orders").expect("orders");
        assert!(orders.allows_redirect_uri("http://127.0.0.1:4001/callback"));
        let members = clients.get("members").expect("members");
        assert!(members.allows_post_logout_redirect_uri("http://127.0.0.1:4002/"));
        assert!(!orders.allows_post_logout_redirect_uri("http://127.0.0.1:4002/"));
        assert!(
            ClientRegistry::from_spec("")
                .unwrap()
                .get("orders")
                .is_none()
        );
        for bad in [
            "orders",
            "orders=not a uri",
            "orders=http://127.0.0.1:4001/callback;colour=blue",
            "orders=http://127.0.0.1:4001/callback;backchannel_logout_uri",
            "orders=http://127.0.0.1:4001/cb,orders=http://127.0.0.1:4001/cb",
        ] {
            assert!(ClientRegistry::from_spec(bad).is_err(), "{bad:?}");
        }
    }
}
