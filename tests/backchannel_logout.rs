//! OpenID Connect Back-Channel Logout 1.0 (`sso::BackChannelLogout`) against tokens we did not
//! mint: node `oidc-provider` (a certified OP) logging a scripted browser session out and
//! posting its real logout tokens to a receiver on 127.0.0.1, and logout tokens minted by
//! `jose` for every refusal; the store-down path (503, jti not spent) and two instances on one
//! real Redis.
//!
//! Needs node (>= 20.19) and redis-server; tests/support/oidc_provider.rs installs the npm
//! packages when missing.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use oidc_provider::{OidcProvider, OpSession, Options, RP_CLIENT, RP_SUB_CLIENT, mint};
use redis_server::RedisServer;
use serde_json::{Value, json};
use support::now_secs;
use tower::ServiceExt;
use tower_token_auth::dpop::RedisReplayStore;
use tower_token_auth::revocation::{
    BoxFuture, MemoryStore, RedisRevocationStore, RedisStoreConfig, RevocationCheck,
    RevocationError, RevocationStatus, RevocationStore, TokenRef,
};
use tower_token_auth::sso::{BACKCHANNEL_LOGOUT_EVENT, BackChannelLogout};
use tower_token_auth::{KeySet, Verifier};

const ISS: &str = "https://op.example";
const CLIENT: &str = "rp-client";

/// The claims oidc-provider puts in a logout token (lib/models/client.js `backchannelLogout`,
/// an IdToken issued with `use: 'logout'`): iss, aud, iat, exp (iat + 120), jti, sub, sid,
/// events; header `typ: logout+jwt`.
fn good_claims(jti: &str) -> Value {
    let now = now_secs();
    json!({
        "iss": ISS,
        "aud": CLIENT,
        "iat": now,
        "exp": now + 120,
        "jti": jti,
        "sub": "alice",
        "sid": format!("sid-{jti}"),
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    })
}

/// A logout token minted by jose (ES256, kid `op-1`) and the JWK Set with its public key.
fn mint_logout(claims: &Value, typ: Option<&str>) -> (String, Value) {
    let mut spec = json!({ "alg": "ES256", "kid": "op-1", "claims": claims });
    if let Some(typ) = typ {
        spec["typ"] = json!(typ);
    }
    let minted = mint("mint.mjs", &spec);
    (minted.token, minted.jwks)
}

fn verifier(jwks: &Value) -> Verifier {
    let keys = KeySet::from_jwks_json(&jwks.to_string()).expect("jose's JWK Set");
    Verifier::builder(keys)
        .issuer(ISS)
        .audience(CLIENT)
        .build()
        .expect("verifier")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn send(svc: &BackChannelLogout, req: Request<Full<Bytes>>) -> Answer {
    let res = svc.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

fn form(body: String) -> Request<Full<Bytes>> {
    Request::post("/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::from(body))
        .expect("request")
}

async fn deliver(svc: &BackChannelLogout, token: &str) -> Answer {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish();
    send(svc, form(body)).await
}

fn assert_refused(answer: &Answer, case: &str) {
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "{case}: {:?}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(body["error"], "invalid_request", "{case}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(why(case)),
        "{case}: refused for another reason: {description}"
    );
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store", "{case}");
}

/// What the refusal of each case says (a fixed description, never key or store details).
fn why(case: &str) -> &'static str {
    match case {
        "wrong iss" => "issuer invalid",
        "wrong aud" => "audience invalid",
        "typ JWT" | "typ at+jwt" | "untyped with require_typ" => "typ must be logout+jwt",
        "nonce present" | "nonce null" => "nonce",
        c if c.starts_with("event") => "no back-channel logout event",
        "neither sid nor sub" => "neither sid nor sub",
        "jti missing" => "no jti",
        "iat missing" => "no iat",
        "exp missing" => "claim missing",
        "expired" => "expired",
        "iat far in the future" => "in the future",
        "iat too old (long exp)" => "too old",
        "bad signature" => "signature invalid",
        "alg none" => "malformed",
        "JSON body" => "content type",
        "no logout_token" => "missing logout_token",
        "repeated logout_token" => "more than once",
        c if c.contains("replay") => "replayed",
        _ => panic!("no expected reason for {case}"),
    }
}

/// The receiver over `store`, verifying with `jwks`.
fn receiver(jwks: &Value, store: &Arc<MemoryStore>) -> BackChannelLogout {
    BackChannelLogout::with_shared_store(verifier(jwks), store.clone()).unwrap()
}

/// 1. The real OP: a browser session logged in at oidc-provider (dev interactions) to two
/// clients, then logged out at its end-session endpoint; the OP posts its logout tokens to the
/// receivers on 127.0.0.1, which revoke the session (`sid`) and the user (`sub` only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_op_logout_revokes_the_session() {
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bcl_uri = format!("http://127.0.0.1:{port}/bcl");
    let provider = OidcProvider::start(Options {
        backchannel_logout_uri: Some(bcl_uri),
        ..Options::default()
    });
    let store = Arc::new(MemoryStore::new());
    let receiver_for = async |client_id: &str| {
        let verifier = Verifier::builder(KeySet::new())
            .issuer(provider.issuer())
            .audience(client_id)
            .build_with_jwks(provider.jwks_source("/jwks"))
            .await
            .expect("the provider's JWK Set");
        BackChannelLogout::with_shared_store(verifier, store.clone()).unwrap()
    };
    let statuses = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = |svc: BackChannelLogout| {
        let statuses = statuses.clone();
        tower::service_fn(move |req: Request<axum::body::Body>| {
            let (svc, statuses) = (svc.clone(), statuses.clone());
            async move {
                let res = svc.handle(req).await;
                statuses.lock().unwrap().push(res.status());
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    let app = axum::Router::new()
        .route_service("/bcl", record(receiver_for(RP_CLIENT.0).await))
        .route_service("/bcl/sub", record(receiver_for(RP_SUB_CLIENT.0).await));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut browser = OpSession::new(&provider);
    let id_token = browser.authorize(RP_CLIENT, "alice").await;
    let sid = id_token["sid"]
        .as_str()
        .expect("the ID token of a client requiring sessions has a sid")
        .to_owned();
    assert_eq!(id_token["sub"], "alice");
    let sub_only = browser.authorize(RP_SUB_CLIENT, "alice").await;
    assert!(sub_only.get("sid").is_none(), "{sub_only}");
    let before = now_secs() - 1;
    assert!(!store.is_revoked(&TokenRef::new().sid(sid.as_str())));
    assert!(!store.is_revoked(&TokenRef::new().sub("alice").iat(before)));

    browser.logout(RP_CLIENT.0).await;
    assert_eq!(
        *statuses.lock().unwrap(),
        [StatusCode::OK, StatusCode::OK],
        "the OP delivered both logout tokens; log:\n{}",
        provider.log()
    );
    let log = provider.log();
    assert!(log.contains("backchannel.success tta-rp\n"), "{log}");
    assert!(log.contains("backchannel.success tta-rp-sub"), "{log}");
    assert!(!log.contains("backchannel.error"), "{log}");
    // The sid token revoked the session (a token of it, without sub, is refused); the sub-only
    // token revoked every token of alice issued before the logout.
    assert!(store.is_revoked(&TokenRef::new().sid(sid.as_str())));
    assert!(!store.is_revoked(&TokenRef::new().sid("another-session")));
    assert!(store.is_revoked(&TokenRef::new().sub("alice").iat(before)));
    assert!(!store.is_revoked(&TokenRef::new().sub("bob").iat(before)));
    server.abort();
    eprintln!(
        "real OP back-channel logout: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A token oidc-provider would send (the claims above) is accepted, once.
#[tokio::test]
async fn jose_token_accepted_then_replay_refused() {
    let (token, jwks) = mint_logout(&good_claims("j-ok"), Some("logout+jwt"));
    let store = Arc::new(MemoryStore::new());
    let svc = receiver(&jwks, &store);
    let first = deliver(&svc, &token).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.headers[header::CACHE_CONTROL], "no-store");
    assert!(first.body.is_empty());
    assert!(store.is_revoked(&TokenRef::new().sid("sid-j-ok")));
    // A second delivery of the same token is a replay.
    assert_refused(&deliver(&svc, &token).await, "replayed jti");
}

/// Untyped tokens are accepted (§2.4: SHOULD be typed) unless typ is required; `sub` alone
/// revokes the user.
#[tokio::test]
async fn untyped_token_and_sub_only() {
    let mut claims = good_claims("j-untyped");
    claims.as_object_mut().unwrap().remove("sid");
    let (token, jwks) = mint_logout(&claims, None);
    let store = Arc::new(MemoryStore::new());
    let strict = receiver(&jwks, &store).require_typ(true);
    assert_refused(&deliver(&strict, &token).await, "untyped with require_typ");
    assert_eq!(store.len(), 0);
    let svc = receiver(&jwks, &store);
    let answer = deliver(&svc, &token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let earlier = now_secs() - 5;
    assert!(store.is_revoked(&TokenRef::new().sub("alice").iat(earlier)));
    assert!(!store.is_revoked(&TokenRef::new().sub("bob").iat(earlier)));
}

/// 2. Every kind of invalid logout token is refused with 400 and revokes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_refused_without_revocation() {
    let now = now_secs();
    type Edit = fn(&mut serde_json::Map<String, Value>, u64);
    let cases: &[(&str, Option<&str>, Edit)] = &[
        ("wrong iss", Some("logout+jwt"), |c, _| {
            c.insert("iss".into(), json!("https://evil.example"));
        }),
        ("wrong aud", Some("logout+jwt"), |c, _| {
            c.insert("aud".into(), json!("another-client"));
        }),
        ("typ JWT", Some("JWT"), |_, _| {}),
        ("typ at+jwt", Some("at+jwt"), |_, _| {}),
        ("nonce present", Some("logout+jwt"), |c, _| {
            c.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
        }),
        ("nonce null", Some("logout+jwt"), |c, _| {
            c.insert("nonce".into(), Value::Null);
        }),
        ("events missing", Some("logout+jwt"), |c, _| {
            c.remove("events");
        }),
        ("events wrong member", Some("logout+jwt"), |c, _| {
            c.insert(
                "events".into(),
                json!({ "http://schemas.openid.net/event/other": {} }),
            );
        }),
        ("event member not an object", Some("logout+jwt"), |c, _| {
            c.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: "yes" }));
        }),
        ("events an array", Some("logout+jwt"), |c, _| {
            c.insert("events".into(), json!([BACKCHANNEL_LOGOUT_EVENT]));
        }),
        ("neither sid nor sub", Some("logout+jwt"), |c, _| {
            c.remove("sid");
            c.remove("sub");
        }),
        ("jti missing", Some("logout+jwt"), |c, _| {
            c.remove("jti");
        }),
        ("iat missing", Some("logout+jwt"), |c, _| {
            c.remove("iat");
        }),
        ("exp missing", Some("logout+jwt"), |c, _| {
            c.remove("exp");
        }),
        ("expired", Some("logout+jwt"), |c, now| {
            c.insert("iat".into(), json!(now - 600));
            c.insert("exp".into(), json!(now - 300));
        }),
        ("iat far in the future", Some("logout+jwt"), |c, now| {
            c.insert("iat".into(), json!(now + 3600));
            c.insert("exp".into(), json!(now + 3720));
        }),
        ("iat too old (long exp)", Some("logout+jwt"), |c, now| {
            c.insert("iat".into(), json!(now - 3600));
            c.insert("exp".into(), json!(now + 3600));
        }),
    ];
    for (i, (case, typ, edit)) in cases.iter().enumerate() {
        let mut claims = good_claims(&format!("j-bad-{i}"));
        edit(claims.as_object_mut().unwrap(), now);
        let (token, jwks) = mint_logout(&claims, *typ);
        let store = Arc::new(MemoryStore::new());
        let answer = deliver(&receiver(&jwks, &store), &token).await;
        assert_refused(&answer, case);
        assert_eq!(store.len(), 0, "{case}: nothing revoked");
    }

    // Bad signature: a token signed by another key with the same kid.
    let (token, _) = mint_logout(&good_claims("j-sig"), Some("logout+jwt"));
    let (_, other_jwks) = mint_logout(&good_claims("j-sig-other"), Some("logout+jwt"));
    let store = Arc::new(MemoryStore::new());
    let svc = receiver(&other_jwks, &store);
    assert_refused(&deliver(&svc, &token).await, "bad signature");
    // alg none, with claims that are otherwise right.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"logout+jwt","kid":"op-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good_claims("j-none").to_string());
    assert_refused(
        &deliver(&svc, &format!("{header}.{payload}.")).await,
        "alg none",
    );
    assert_eq!(store.len(), 0, "nothing revoked");

    // Requests that are not a logout delivery.
    let get = Request::get("/backchannel-logout")
        .body(Full::default())
        .unwrap();
    let answer = send(&svc, get).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers[header::ALLOW], "POST");
    let json_body = Request::post("/backchannel-logout")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::from(r#"{"logout_token":"x"}"#))
        .unwrap();
    assert_refused(&send(&svc, json_body).await, "JSON body");
    let huge = format!("logout_token={}", "a".repeat(17 * 1024));
    assert_eq!(
        send(&svc, form(huge)).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_refused(&send(&svc, form(String::new())).await, "no logout_token");
    assert_refused(
        &send(&svc, form("logout_token=a&logout_token=b".into())).await,
        "repeated logout_token",
    );
    assert_eq!(store.len(), 0, "nothing revoked");
}

/// A revocation store that can be taken down.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
}

impl Flaky {
    fn fail(&self) -> Option<RevocationError> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| RevocationError::Unavailable("store down (test)".into()))
    }
}

impl RevocationStore for Flaky {
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
        self.inner.check(token)
    }
    fn revoke_token<'a>(&'a self, t: TokenRef<'a>) -> BoxFuture<'a, Result<(), RevocationError>> {
        match self.fail() {
            Some(e) => Box::pin(async { Err(e) }),
            None => self.inner.revoke_token(t),
        }
    }
    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        before: u64,
        until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        match self.fail() {
            Some(e) => Box::pin(async { Err(e) }),
            None => self.inner.revoke_user(sub, before, until),
        }
    }
    fn revoke_session<'a>(
        &'a self,
        sub: Option<&'a str>,
        sid: &'a str,
        until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        match self.fail() {
            Some(e) => Box::pin(async { Err(e) }),
            None => self.inner.revoke_session(sub, sid, until),
        }
    }
}

/// 3. The store down: 503 with Retry-After, and the jti not spent: the OP's retry of the same
/// token after the store recovers is accepted (then a further delivery is a replay).
#[tokio::test]
async fn store_down_is_503_and_the_retry_succeeds() {
    let (token, jwks) = mint_logout(&good_claims("j-down"), Some("logout+jwt"));
    let store = Arc::new(Flaky::default());
    let svc = BackChannelLogout::with_shared_store(verifier(&jwks), store.clone()).unwrap();
    store.down.store(true, Ordering::SeqCst);
    let answer = deliver(&svc, &token).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[header::RETRY_AFTER], "1");
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
    assert!(!store.inner.is_revoked(&TokenRef::new().sid("sid-j-down")));
    store.down.store(false, Ordering::SeqCst);
    let retry = deliver(&svc, &token).await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    assert!(store.inner.is_revoked(&TokenRef::new().sid("sid-j-down")));
    assert_refused(&deliver(&svc, &token).await, "replay after the retry");
}

async fn status_of(store: &RedisRevocationStore, token: &TokenRef<'_>) -> RevocationStatus {
    match store.check(token) {
        RevocationCheck::Ready(r) => r.expect("check"),
        RevocationCheck::Pending(f) => f.await.expect("check"),
    }
}

/// 4. Two instances on one real Redis: the logout delivered to one is seen by the other's
/// revocation store, and the same token delivered to the other is a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis() {
    let server = RedisServer::start();
    let url = server.url();
    let (token, jwks) = mint_logout(&good_claims("j-redis"), Some("logout+jwt"));
    let config = || RedisStoreConfig::default().op_timeout(Duration::from_secs(2));
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisRevocationStore::connect(&url, config()).await.unwrap();
        assert!(store.wait_live(Duration::from_secs(10)).await, "live");
        let replay = RedisReplayStore::connect(&url, "tta:", Duration::from_secs(2)).unwrap();
        let svc = BackChannelLogout::new(verifier(&jwks), store.clone())
            .unwrap()
            .replay_store(replay);
        instances.push((svc, store));
    }
    let session = TokenRef::new().sid("sid-j-redis").sub("alice");
    assert_eq!(
        status_of(&instances[1].1, &session).await,
        RevocationStatus::Active
    );
    let answer = deliver(&instances[0].0, &token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_of(&instances[1].1, &session).await != RevocationStatus::Revoked {
        assert!(
            Instant::now() < deadline,
            "the other instance never saw the logout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_refused(
        &deliver(&instances[1].0, &token).await,
        "replay at the other instance",
    );
    let other = TokenRef::new().sid("another-session").sub("alice");
    assert_eq!(
        status_of(&instances[1].1, &other).await,
        RevocationStatus::Active
    );
}

/// A verifier that does not pin the provider's issuer and the client_id would take logout
/// tokens of any provider, or meant for any client: the receiver refuses to be built on it.
#[test]
fn a_verifier_without_issuer_or_audience_is_refused() {
    let keys = || {
        KeySet::new()
            .with_key(
                tower_token_auth::VerifyingKey::hmac(
                    jsonwebtoken::Algorithm::HS256,
                    b"0123456789abcdef0123456789abcdef",
                )
                .unwrap(),
            )
            .unwrap()
    };
    let no_issuer = Verifier::builder(keys()).audience(CLIENT).build().unwrap();
    let no_audience = Verifier::builder(keys()).issuer(ISS).build().unwrap();
    for v in [no_issuer, no_audience] {
        assert!(BackChannelLogout::new(v, tower_token_auth::MemoryStore::new()).is_err());
    }
    let pinned = Verifier::builder(keys())
        .issuer(ISS)
        .audience(CLIENT)
        .build()
        .unwrap();
    assert!(BackChannelLogout::new(pinned, tower_token_auth::MemoryStore::new()).is_ok());
}
