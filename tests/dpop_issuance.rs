//! DPoP binding at issuance (RFC 9449 §5, issue #15 item 3), against the memory refresh store
//! and the Redis one on a real `redis-server`: a login whose token request carried a proof
//! gets an access token with `cnf.jkt` (accepted with proofs of that key by
//! `JwtAuthLayer::with_dpop`, refused as a bearer token) and a refresh family bound to the
//! key; its refresh grant needs a proof of the same key, and a refusal does not spend the
//! refresh token. A Redis family written before the binding existed refreshes unbound.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use redis_server::RedisServer;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_token_auth::dpop::DpopConfig;
use tower_token_auth::endpoint::TokenEndpoint;
use tower_token_auth::refresh::{
    MemoryRefreshStore, PresentedToken, RedisRefreshStore, RefreshRecord, RefreshStore, TokenHash,
};
use tower_token_auth::testing::{DpopKey, TestKeys};
use tower_token_auth::{Claims, GrantError, JwtAuthLayer, TokenLifecycle, TokenPair};

const ORIGIN: &str = "https://api.example";

struct App {
    layer: JwtAuthLayer,
    lifecycle: TokenLifecycle,
    dpop: DpopConfig,
}

fn app(refresh: Arc<dyn RefreshStore>) -> App {
    let keys = TestKeys::hs256();
    let dpop = DpopConfig::new().external_origin(ORIGIN).unwrap();
    let layer = JwtAuthLayer::new(keys.verifier()).with_dpop(dpop.clone());
    let lifecycle = TokenLifecycle::for_layer(&layer, keys.issuer(), refresh);
    App {
        layer,
        lifecycle,
        dpop,
    }
}

impl App {
    /// The token endpoint's check of a proof made by `key` (no access token): its `jkt`.
    async fn token_request_jkt(&self, key: &DpopKey) -> String {
        let proof = key.proof("POST", &format!("{ORIGIN}/token"), None);
        let verified = self
            .dpop
            .check(
                &proof,
                &Method::POST,
                &Uri::from_static("/token"),
                &HeaderMap::new(),
                None,
            )
            .resolve()
            .await
            .expect("a valid token-endpoint proof");
        assert_eq!(verified.jkt(), key.thumbprint());
        verified.jkt().to_owned()
    }

    /// `GET ORIGIN/orders` through the layer with these headers.
    async fn get(&self, headers: &[(&str, String)]) -> StatusCode {
        let ok = service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
        });
        let mut req = Request::builder().method(Method::GET).uri("/orders");
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        ServiceBuilder::new()
            .layer(self.layer.clone())
            .service(ok)
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap()
            .status()
    }

    /// The access token sent with a fresh proof of `key`.
    async fn get_with_proof(&self, token: &str, key: &DpopKey) -> StatusCode {
        let proof = key.proof("GET", &format!("{ORIGIN}/orders"), Some(token));
        self.get(&[
            (header::AUTHORIZATION.as_str(), format!("DPoP {token}")),
            ("dpop", proof),
        ])
        .await
    }

    async fn get_as_bearer(&self, token: &str) -> StatusCode {
        self.get(&[(header::AUTHORIZATION.as_str(), format!("Bearer {token}"))])
            .await
    }

    fn claims(&self, pair: &TokenPair) -> Claims {
        self.lifecycle
            .verify_access(&pair.access.token)
            .expect("a valid access token")
    }

    /// `pair`'s access token is bound to `key`: accepted with its proofs, refused as bearer
    /// and with another key's proofs.
    async fn assert_bound_to(&self, pair: &TokenPair, key: &DpopKey, other: &DpopKey) {
        let claims = self.claims(pair);
        let cnf = claims.cnf.as_ref().expect("cnf");
        assert_eq!(cnf.jkt.as_deref(), Some(key.thumbprint()));
        assert_eq!(pair.jkt.as_deref(), Some(key.thumbprint()));
        assert_eq!(
            self.get_with_proof(&pair.access.token, key).await,
            StatusCode::OK
        );
        assert_eq!(
            self.get_as_bearer(&pair.access.token).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            self.get_with_proof(&pair.access.token, other).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// Bound login, refresh with the same key, refusals that do not spend the token.
async fn bound_family(app: &App) {
    let key = DpopKey::es256();
    let other = DpopKey::ed25519();
    let jkt = app.token_request_jkt(&key).await;
    let first = app
        .lifecycle
        .issue_pair_bound("alice", "read write", &jkt)
        .await
        .unwrap();
    app.assert_bound_to(&first, &key, &other).await;
    assert!(app.claims(&first).sid.is_some());

    // Another key, no proof, the plain grant: refused, and the refresh token stays current.
    let other_jkt = app.token_request_jkt(&other).await;
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&first.refresh_token, None, Some(&other_jkt))
            .await,
        Err(GrantError::InvalidDpopProof)
    ));
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&first.refresh_token, None, None)
            .await,
        Err(GrantError::InvalidDpopProof)
    ));
    assert!(matches!(
        app.lifecycle.refresh(&first.refresh_token, None).await,
        Err(GrantError::InvalidDpopProof)
    ));
    // A thumbprint of another length (compared in constant time, lengths first).
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&first.refresh_token, None, Some(&jkt[1..]))
            .await,
        Err(GrantError::InvalidDpopProof)
    ));
    // The scope is checked too (before spending), but the binding first.
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&first.refresh_token, Some("admin"), Some(&jkt))
            .await,
        Err(GrantError::InvalidScope)
    ));
    // Nothing above spent the token, or this retry would be reuse and revoke the family.
    assert_eq!(
        app.get_with_proof(&first.access.token, &key).await,
        StatusCode::OK
    );
    let again = app.token_request_jkt(&key).await;
    let second = app
        .lifecycle
        .refresh_bound(&first.refresh_token, Some("read"), Some(&again))
        .await
        .unwrap();
    assert_eq!(second.scope, "read");
    app.assert_bound_to(&second, &key, &other).await;
    assert_eq!(app.claims(&second).sid, app.claims(&first).sid);

    // The successor is bound as well.
    assert!(matches!(
        app.lifecycle.refresh(&second.refresh_token, None).await,
        Err(GrantError::InvalidDpopProof)
    ));
    let third = app
        .lifecycle
        .refresh_bound(&second.refresh_token, None, Some(&jkt))
        .await
        .unwrap();
    assert_eq!(third.scope, "read write");
    app.assert_bound_to(&third, &key, &other).await;

    // The spent token is still reuse, proof or not: the family and its tokens die.
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&first.refresh_token, None, Some(&jkt))
            .await,
        Err(GrantError::InvalidGrant)
    ));
    assert_eq!(
        app.get_with_proof(&third.access.token, &key).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(matches!(
        app.lifecycle
            .refresh_bound(&third.refresh_token, None, Some(&jkt))
            .await,
        Err(GrantError::InvalidGrant)
    ));
}

/// An unbound family refreshed with a proof stays unbound; its new access token is bound to
/// that request's key.
async fn unbound_family(app: &App) {
    let key = DpopKey::es256();
    let other = DpopKey::ed25519();
    let first = app.lifecycle.issue_pair("bob", "read").await.unwrap();
    assert!(first.jkt.is_none());
    assert!(app.claims(&first).cnf.is_none());
    assert_eq!(app.get_as_bearer(&first.access.token).await, StatusCode::OK);

    let jkt = app.token_request_jkt(&key).await;
    let second = app
        .lifecycle
        .refresh_bound(&first.refresh_token, None, Some(&jkt))
        .await
        .unwrap();
    app.assert_bound_to(&second, &key, &other).await;
    // The family did not become bound: the plain grant still works.
    let third = app
        .lifecycle
        .refresh(&second.refresh_token, None)
        .await
        .unwrap();
    assert!(third.jkt.is_none());
    assert_eq!(app.get_as_bearer(&third.access.token).await, StatusCode::OK);
}

#[tokio::test]
async fn memory_store() {
    let app = app(Arc::new(MemoryRefreshStore::new()));
    bound_family(&app).await;
    unbound_family(&app).await;
}

/// `RefreshRecord::with_jkt`, kept by the memory store as given.
#[tokio::test]
async fn records_carry_their_binding() {
    assert!(RefreshRecord::new("carol", "f", "read", 1, 0).jkt.is_none());
    let family = format!("{:C>22}", "rec");
    let token = format!("{family}.{:D>43}", "s");
    let presented = PresentedToken::parse(&token).unwrap();
    let record = RefreshRecord::new("carol", family, "read", now_secs() + 60, 0).with_jkt("k");
    assert_eq!(record.jkt.as_deref(), Some("k"));
    let store = MemoryRefreshStore::new();
    store.create(presented.hash, &record).await.unwrap();
    let found = store.find(&presented, now_secs()).await.unwrap().unwrap();
    assert_eq!(found.record, record);
}

const PREFIX: &str = "tta-dpop-test:";

fn redis_store(redis: &RedisServer) -> Arc<dyn RefreshStore> {
    Arc::new(RedisRefreshStore::connect(&redis.url(), PREFIX, Duration::from_secs(2)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_binding() {
    let redis = RedisServer::start();
    let app = app(redis_store(&redis));
    bound_family(&app).await;
    unbound_family(&app).await;
    // A second instance on the same Redis sees the binding.
    let other_instance = TokenLifecycle::new(
        app.lifecycle.issuer().clone(),
        TestKeys::hs256().verifier(),
        redis_store(&redis),
        Arc::new(tower_token_auth::revocation::MemoryStore::new()),
    );
    let key = DpopKey::es256();
    let pair = app
        .lifecycle
        .issue_pair_bound("dave", "read", key.thumbprint())
        .await
        .unwrap();
    assert!(matches!(
        other_instance.refresh(&pair.refresh_token, None).await,
        Err(GrantError::InvalidDpopProof)
    ));
    let renewed = other_instance
        .refresh_bound(&pair.refresh_token, None, Some(key.thumbprint()))
        .await
        .unwrap();
    assert_eq!(renewed.jkt.as_deref(), Some(key.thumbprint()));
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A family and its token as the Redis store wrote them before families had a `jkt`: still
/// refreshed, unbound (and bound access tokens only when the request has a proof).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_record_written_before_the_binding_refreshes_unbound() {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let redis = RedisServer::start();
    let app = app(redis_store(&redis));
    let key = DpopKey::es256();
    let other = DpopKey::ed25519();
    for with_proof in [false, true] {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let family = format!("{:A>22}", format!("old{n}"));
        let token = format!("{family}.{:B>43}", format!("s{n}"));
        let hash = TokenHash::of(&token).to_hex();
        let exp = (now_secs() + 600).to_string();
        let created = now_secs().to_string();
        let token_key = format!("{PREFIX}{{f:{family}}}:rt:{hash}");
        let family_key = format!("{PREFIX}{{f:{family}}}:fam");
        let user_key = format!("{PREFIX}{{u:erin}}:fams");
        for cmd in [
            vec![
                "HSET", &token_key, "sub", "erin", "scope", "read", "exp", &exp,
            ],
            vec!["EXPIREAT", &token_key, &exp],
            vec![
                "HSET",
                &family_key,
                "revoked",
                "0",
                "sub",
                "erin",
                "exp",
                &exp,
                "created",
                &created,
            ],
            vec!["EXPIREAT", &family_key, &exp],
            vec!["SADD", &user_key, &family],
        ] {
            redis.cli(&cmd).expect("redis-cli");
        }
        let pair = if with_proof {
            let jkt = app.token_request_jkt(&key).await;
            let pair = app
                .lifecycle
                .refresh_bound(&token, None, Some(&jkt))
                .await
                .unwrap();
            app.assert_bound_to(&pair, &key, &other).await;
            pair
        } else {
            let pair = app.lifecycle.refresh(&token, None).await.unwrap();
            assert!(pair.jkt.is_none());
            assert_eq!(app.get_as_bearer(&pair.access.token).await, StatusCode::OK);
            pair
        };
        assert_eq!(app.claims(&pair).sub.as_deref(), Some("erin"));
        // Still unbound: the successor refreshes without a proof.
        let next = app
            .lifecycle
            .refresh(&pair.refresh_token, None)
            .await
            .unwrap();
        assert!(next.jkt.is_none());
        // Rotation wrote no `jkt` into the old family.
        let fields = redis.cli(&["HKEYS", &family_key]).unwrap();
        assert!(!fields.contains("jkt"), "{fields}");
    }
}

/// `TokenEndpoint` without `with_dpop` takes no proofs: a bound family gets 400 `invalid_dpop_proof` and its
/// refresh token stays current; an unbound one still gets `token_type` `Bearer`.
#[tokio::test]
async fn token_endpoint_refuses_bound_families() {
    let app = app(Arc::new(MemoryRefreshStore::new()));
    let endpoint = TokenEndpoint::new(app.lifecycle.clone());
    let grant = |refresh_token: String| {
        let endpoint = endpoint.clone();
        async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(format!(
                    "grant_type=refresh_token&refresh_token={refresh_token}"
                ))))
                .unwrap();
            let res = endpoint.oneshot(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (status, json)
        }
    };
    let key = DpopKey::es256();
    let bound = app
        .lifecycle
        .issue_pair_bound("alice", "read", key.thumbprint())
        .await
        .unwrap();
    let (status, json) = grant(bound.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_dpop_proof");
    app.lifecycle
        .refresh_bound(&bound.refresh_token, None, Some(key.thumbprint()))
        .await
        .expect("not spent by the refusal");

    let plain = app.lifecycle.issue_pair("bob", "read").await.unwrap();
    let (status, json) = grant(plain.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["token_type"], "Bearer");
}

/// A revoked bound family presented without a proof is refused as revoked (`invalid_grant`),
/// not for the missing proof.
#[tokio::test]
async fn revoked_bound_family_is_invalid_grant() {
    let app = app(Arc::new(MemoryRefreshStore::new()));
    let key = DpopKey::es256();
    let pair = app
        .lifecycle
        .issue_pair_bound("alice", "read", key.thumbprint())
        .await
        .unwrap();
    let sid = app.claims(&pair).sid.clone().unwrap();
    app.lifecycle
        .revoke_family(Some("alice"), &sid)
        .await
        .unwrap();
    for proof in [None, Some(key.thumbprint())] {
        assert!(matches!(
            app.lifecycle
                .refresh_bound(&pair.refresh_token, None, proof)
                .await,
            Err(GrantError::InvalidGrant)
        ));
    }
}

/// `TokenEndpoint::with_dpop`: the refresh grant of a bound family with a proof by its key in
/// the `DPoP` header gets a new bound pair (`token_type` `DPoP`) whose access token passes the
/// layer; without a proof, with another key's, a replayed one or two of them, 400
/// `invalid_dpop_proof` and nothing spent.
#[tokio::test]
async fn token_endpoint_with_dpop_checks_the_proof() {
    let app = app(Arc::new(MemoryRefreshStore::new()));
    let endpoint = TokenEndpoint::new(app.lifecycle.clone()).with_dpop(app.dpop.clone());
    let grant = |refresh_token: String, proofs: Vec<String>| {
        let endpoint = endpoint.clone();
        async move {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            for proof in proofs {
                req = req.header("dpop", proof);
            }
            let req = req
                .body(Full::new(Bytes::from(format!(
                    "grant_type=refresh_token&refresh_token={refresh_token}"
                ))))
                .unwrap();
            let res = endpoint.oneshot(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            (status, json)
        }
    };
    let key = DpopKey::es256();
    let other = DpopKey::ed25519();
    let url = format!("{ORIGIN}/token");
    let bound = app
        .lifecycle
        .issue_pair_bound("alice", "read", key.thumbprint())
        .await
        .unwrap();
    let refused = |(status, json): (StatusCode, serde_json::Value), why: &str| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {json}");
        assert_eq!(json["error"], "invalid_dpop_proof", "{why}: {json}");
    };
    refused(grant(bound.refresh_token.clone(), vec![]).await, "no proof");
    refused(
        grant(
            bound.refresh_token.clone(),
            vec![other.proof("POST", &url, None)],
        )
        .await,
        "another key",
    );
    refused(
        grant(
            bound.refresh_token.clone(),
            vec![key.proof("POST", &url, None), key.proof("POST", &url, None)],
        )
        .await,
        "two proofs",
    );
    refused(
        grant(
            bound.refresh_token.clone(),
            vec![key.proof("GET", &url, None)],
        )
        .await,
        "another method",
    );
    let proof = key.proof("POST", &url, None);
    let (status, json) = grant(bound.refresh_token.clone(), vec![proof.clone()]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["token_type"], "DPoP");
    let next = json["refresh_token"].as_str().unwrap().to_owned();
    // The same proof again: replayed.
    refused(grant(next.clone(), vec![proof]).await, "replayed");
    let (status, json) = grant(next, vec![key.proof("POST", &url, None)]).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

/// Junk grants never reach the replay store: the proof of a grant whose refresh token is not
/// current is not recorded (a spent token still revokes its family, proof or not).
#[tokio::test]
async fn token_endpoint_records_proofs_only_for_current_tokens() {
    use tower_token_auth::dpop::MemoryReplayStore;

    let app = app(Arc::new(MemoryRefreshStore::new()));
    let store = Arc::new(MemoryReplayStore::new());
    let endpoint = TokenEndpoint::new(app.lifecycle.clone())
        .with_dpop(app.dpop.clone().replay_store(store.clone()));
    let key = DpopKey::es256();
    let url = format!("{ORIGIN}/token");
    let grant = |refresh_token: String| {
        let endpoint = endpoint.clone();
        let proof = key.proof("POST", &url, None);
        async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("dpop", proof)
                .body(Full::new(Bytes::from(format!(
                    "grant_type=refresh_token&refresh_token={refresh_token}"
                ))))
                .unwrap();
            let res = endpoint.oneshot(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    for junk in [
        "not-a-token",
        "rt1.AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
    ] {
        let (status, json) = grant(junk.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert_eq!(json["error"], "invalid_grant", "{json}");
    }
    assert_eq!(store.len(), 0, "no proof recorded for junk grants");

    let pair = app
        .lifecycle
        .issue_pair_bound("alice", "read", key.thumbprint())
        .await
        .unwrap();
    let (status, json) = grant(pair.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(store.len(), 1);
    // The spent token again, with a good proof: reuse, the family is revoked; nothing recorded.
    let (status, json) = grant(pair.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_grant");
    assert_eq!(store.len(), 1);
}
