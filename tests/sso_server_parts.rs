//! The authorization-server parts of `sso`: the code store (memory and a real redis-server),
//! the client registry, the signing key ring (checked by this crate's verifier and by node
//! `jose`) and the discovery document.

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
