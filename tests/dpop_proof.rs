//! DPoP proofs (RFC 9449) judged by a third party: proofs made by node `jose`
//! (tests/oidc/dpop_proof.mjs) pass `DpopConfig::check` with the thumbprint jose computes, and
//! each defect jose is made to put in one is refused with its reason; proofs of
//! `testing::DpopKey` pass jose's `jwtVerify` with `EmbeddedJWK`, as node oidc-provider checks
//! them. Then the Redis replay store against a real `redis-server`: shared by two instances,
//! failing closed while Redis is down, working again once it is back; and on a Redis Cluster.
//!
//! Needs node (>= 20.19) for the jose tests (tests/support/oidc_provider.rs installs the npm
//! packages when missing) and `redis-server` for the Redis one.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;
#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

use http::{HeaderMap, Method, Uri, header};
use serde_json::{Value, json};
use tower_token_auth::dpop::{DpopConfig, ProofCheck, VerifiedProof};
use tower_token_auth::testing::DpopKey;
use tower_token_auth::{AuthError, AuthErrorKind, InvalidDpopProof};

use oidc_provider::run_helper;

const HTU: &str = "https://api.example.test/orders";
const TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

/// The request every proof is checked against: `GET /orders?page=2`, `Host: api.example.test`,
/// presenting [`TOKEN`].
fn request() -> (Method, Uri, HeaderMap) {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, "api.example.test".parse().unwrap());
    (Method::GET, "/orders?page=2".parse().unwrap(), headers)
}

async fn check(config: &DpopConfig, proof: &str) -> Result<VerifiedProof, AuthError> {
    let (method, uri, headers) = request();
    config
        .check(proof, &method, &uri, &headers, Some(TOKEN))
        .resolve()
        .await
}

fn kind(result: Result<VerifiedProof, AuthError>) -> AuthErrorKind {
    match result {
        Ok(proof) => panic!("accepted: {proof:?}"),
        Err(e) => e.kind().clone(),
    }
}

/// What dpop_proof.mjs made: a key's thumbprint (by jose) and its proofs.
struct Made {
    jkt: String,
    proofs: Vec<String>,
}

fn jose_proofs(alg: &str, proofs: Value) -> Made {
    let out = run_helper("dpop_proof.mjs", &json!({"alg": alg, "proofs": proofs}))
        .unwrap_or_else(|e| panic!("dpop_proof.mjs {alg}: {e}"));
    Made {
        jkt: out["jkt"].as_str().expect("jkt").to_owned(),
        proofs: out["proofs"]
            .as_array()
            .expect("proofs")
            .iter()
            .map(|p| p.as_str().expect("a proof").to_owned())
            .collect(),
    }
}

/// jose's proofs for [`request`], good and with one defect each, and what each must yield.
fn cases() -> Vec<(&'static str, Value, Option<InvalidDpopProof>)> {
    use InvalidDpopProof::*;
    let good = json!({"htm": "GET", "htu": HTU, "access_token": TOKEN});
    let with = |extra: Value| {
        let mut spec = good.clone();
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    vec![
        ("good", good.clone(), None),
        ("the same proof again", Value::Null, Some(Replayed)),
        (
            "another method",
            with(json!({"htm": "POST"})),
            Some(WrongMethod),
        ),
        (
            "another URL",
            with(json!({"htu": "https://api.example.test/admin"})),
            Some(WrongUri),
        ),
        (
            "another host",
            with(json!({"htu": "https://other.example.test/orders"})),
            Some(WrongUri),
        ),
        (
            "URL written differently",
            with(json!({"htu": "HTTPS://API.example.test:443/orders?page=1"})),
            None,
        ),
        (
            "signed by another key than its jwk",
            with(json!({"tamper": "other_key"})),
            Some(BadSignature),
        ),
        (
            "an hour old",
            with(json!({"iat_offset": -3600})),
            Some(Stale),
        ),
        (
            "a minute ahead",
            with(json!({"iat_offset": 60})),
            Some(Stale),
        ),
        (
            "ath of another token",
            with(json!({"access_token": "another-token"})),
            Some(WrongAccessTokenHash),
        ),
        (
            "no ath",
            json!({"htm": "GET", "htu": HTU}),
            Some(WrongAccessTokenHash),
        ),
        ("typ jwt", with(json!({"typ": "jwt"})), Some(WrongType)),
        (
            "private jwk",
            with(json!({"tamper": "private_jwk"})),
            Some(BadKey),
        ),
        (
            "alg HS256",
            with(json!({"tamper": "hs256"})),
            Some(AlgorithmNotAllowed),
        ),
        (
            "alg none",
            with(json!({"tamper": "none"})),
            Some(AlgorithmNotAllowed),
        ),
    ]
}

/// For each algorithm jose signs proofs with, its good proofs pass with jose's thumbprint and
/// each defect is refused with its reason.
#[tokio::test]
async fn jose_proofs_pass_and_defects_are_refused() {
    let cases = cases();
    // "The same proof again" reuses the proof before it: jose makes one proof fewer.
    let specs: Vec<Value> = cases
        .iter()
        .filter(|(_, spec, _)| !spec.is_null())
        .map(|(_, spec, _)| spec.clone())
        .collect();
    for alg in ["ES256", "ES384", "PS256", "RS256", "EdDSA"] {
        let made = jose_proofs(alg, Value::Array(specs.clone()));
        let config = DpopConfig::new();
        let mut proofs = made.proofs.iter();
        let mut last = String::new();
        for (name, spec, want) in &cases {
            let proof = if spec.is_null() {
                last.clone()
            } else {
                proofs.next().expect("one proof per spec").clone()
            };
            let got = check(&config, &proof).await;
            match want {
                None => {
                    let verified = got.unwrap_or_else(|e| panic!("{alg} {name}: refused: {e:?}"));
                    assert_eq!(verified.jkt(), made.jkt, "{alg} {name}: jose's thumbprint");
                    assert_eq!(
                        tower_token_auth::dpop::jwk_thumbprint(verified.jwk()).unwrap(),
                        made.jkt
                    );
                }
                Some(reason) => assert_eq!(
                    kind(got),
                    AuthErrorKind::InvalidDpopProof(*reason),
                    "{alg} {name}"
                ),
            }
            last = proof;
        }
    }
}

/// jose proofs refused for an algorithm left out of the configuration.
#[tokio::test]
async fn configured_algorithms_only() {
    let config = DpopConfig::new()
        .algorithms([tower_token_auth::Algorithm::ES256])
        .unwrap();
    let good = json!([{"htm": "GET", "htu": HTU, "access_token": TOKEN}]);
    let es256 = jose_proofs("ES256", good.clone());
    check(&config, &es256.proofs[0]).await.expect("ES256");
    for alg in ["RS256", "EdDSA"] {
        let made = jose_proofs(alg, good.clone());
        assert_eq!(
            kind(check(&config, &made.proofs[0]).await),
            AuthErrorKind::InvalidDpopProof(InvalidDpopProof::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

/// The test helper's proofs are what jose (as node oidc-provider uses it) accepts, with the
/// thumbprint jose computes.
#[test]
fn jose_accepts_test_key_proofs() {
    let keys = [DpopKey::es256(), DpopKey::ed25519()];
    let list: Vec<Value> = keys
        .iter()
        .map(|k| json!({"proof": k.proof("GET", HTU, Some(TOKEN)), "htm": "GET", "htu": HTU, "access_token": TOKEN}))
        .chain([json!({
            "proof": keys[0].proof("GET", HTU, Some("another-token")),
            "htm": "GET", "htu": HTU, "access_token": TOKEN
        })])
        .collect();
    let out = run_helper("dpop_proof.mjs", &json!({"verify": list})).expect("dpop_proof.mjs");
    let results = out["results"].as_array().expect("results");
    for (key, result) in keys.iter().zip(results) {
        assert_eq!(result["ok"], true, "{key:?}: {result}");
        assert_eq!(result["jkt"], key.thumbprint(), "{key:?}");
    }
    // The judge can fail: a proof for another token is refused.
    assert_eq!(results[2]["ok"], false, "{}", results[2]);
}

#[cfg(feature = "redis")]
mod redis {
    use std::time::{Duration, Instant};

    use super::*;
    use redis_server::{RedisCluster, RedisServer};
    use tower_token_auth::dpop::RedisReplayStore;

    const OP_TIMEOUT: Duration = Duration::from_millis(500);

    fn instance(server: &RedisServer) -> DpopConfig {
        let store =
            RedisReplayStore::connect(&server.url(), "tta-test:", OP_TIMEOUT).expect("a Redis URL");
        DpopConfig::new().replay_store(store)
    }

    /// Two instances on one Redis: a proof accepted by either is refused by both; each check
    /// is pending (a round trip); the record expires with the proof's `iat` window.
    #[tokio::test]
    async fn instances_share_replay_detection() {
        let server = RedisServer::start();
        let (a, b) = (instance(&server), instance(&server));
        let key = DpopKey::es256();
        let replayed = AuthErrorKind::InvalidDpopProof(InvalidDpopProof::Replayed);

        let proof = key.proof("GET", HTU, Some(TOKEN));
        let (method, uri, headers) = request();
        let pending = a.check(&proof, &method, &uri, &headers, Some(TOKEN));
        assert!(matches!(pending, ProofCheck::Pending(_)), "{pending:?}");
        assert_eq!(pending.resolve().await.unwrap().jkt(), key.thumbprint());
        assert_eq!(kind(check(&b, &proof).await), replayed, "replayed to b");
        assert_eq!(kind(check(&a, &proof).await), replayed, "replayed to a");

        let second = key.proof("GET", HTU, Some(TOKEN));
        check(&b, &second).await.expect("a new proof, at b");
        assert_eq!(kind(check(&a, &second).await), replayed);

        // Concurrent first uses of one proof: exactly one passes.
        let third = key.proof("GET", HTU, Some(TOKEN));
        let (ra, rb) = tokio::join!(check(&a, &third), check(&b, &third));
        assert_eq!(
            [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{ra:?} {rb:?}"
        );

        // One key per proof, living until the end of its iat window (60 s by default).
        let keys = server
            .cli(&["--scan", "--pattern", "tta-test:dpop:*"])
            .unwrap();
        let keys: Vec<&str> = keys.lines().collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        for k in keys {
            let ttl: i64 = server.cli(&["PTTL", k]).unwrap().trim().parse().unwrap();
            assert!((55_000..=62_000).contains(&ttl), "{k}: PTTL {ttl}");
        }
    }

    /// Redis down: refused with 503, never accepted; back: the same proof (never recorded)
    /// passes, and is a replay after that.
    #[tokio::test]
    async fn redis_down_fails_closed_then_recovers() {
        let mut server = RedisServer::start();
        let config = instance(&server);
        let key = DpopKey::es256();
        check(&config, &key.proof("GET", HTU, Some(TOKEN)))
            .await
            .expect("Redis up");

        server.kill();
        let proof = key.proof("GET", HTU, Some(TOKEN));
        for _ in 0..3 {
            let started = Instant::now();
            let err = check(&config, &proof).await.unwrap_err();
            assert_eq!(err.kind(), &AuthErrorKind::ReplayCheckUnavailable);
            assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "answered in {:?}",
                started.elapsed()
            );
        }

        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match check(&config, &proof).await {
                Ok(verified) => {
                    assert_eq!(verified.jkt(), key.thumbprint());
                    break;
                }
                Err(e) => {
                    assert_eq!(e.kind(), &AuthErrorKind::ReplayCheckUnavailable, "{e:?}");
                    assert!(Instant::now() < deadline, "Redis back, still {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert_eq!(
            kind(check(&config, &proof).await),
            AuthErrorKind::InvalidDpopProof(InvalidDpopProof::Replayed)
        );
    }

    /// On a Redis Cluster: proofs (their keys on every node's slots) accepted once across two
    /// instances that know different seed nodes.
    #[tokio::test]
    async fn cluster_instances_share_replay_detection() {
        let cluster = RedisCluster::start();
        let urls = cluster.urls();
        let nodes: Vec<&str> = urls.iter().map(String::as_str).collect();
        let connect = |seeds: &'static [usize]| {
            let seeds: Vec<&str> = seeds.iter().map(|i| nodes[*i]).collect();
            async move {
                let store = RedisReplayStore::connect_cluster(&seeds, "tta-test:", OP_TIMEOUT)
                    .await
                    .expect("the cluster");
                DpopConfig::new().replay_store(store)
            }
        };
        let (a, b) = (connect(&[0]).await, connect(&[1, 2]).await);
        let key = DpopKey::ed25519();
        for i in 0..20 {
            let proof = key.proof("GET", HTU, Some(TOKEN));
            let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            check(first, &proof).await.expect("first use");
            assert_eq!(
                kind(check(second, &proof).await),
                AuthErrorKind::InvalidDpopProof(InvalidDpopProof::Replayed),
                "proof {i}"
            );
        }
        let held: usize = cluster
            .nodes
            .iter()
            .map(|n| n.cli(&["DBSIZE"]).unwrap().trim().parse::<usize>().unwrap())
            .sum();
        assert_eq!(held, 20);
    }
}
