//! The bad-input suite: every request goes through `JwtAuthLayer` with `oneshot`, and each
//! case asserts the status, the exact `WWW-Authenticate` challenge and the JSON body.

#[path = "support/bad_inputs.rs"]
mod bad_inputs;

use bad_inputs::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_token_auth::revocation::{
    BoxFuture, RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef,
};
use tower_token_auth::{Claims, JwtAuthLayer, KeySet, Verifier, VerifyingKey};

#[tokio::test]
async fn bad_input_table() {
    let f = fixture();
    let cases = cases(&f);
    assert!(cases.len() >= 30, "the issue asks for at least 30 cases");
    for (name, req, expect) in cases {
        let out = send(&f.layer, req).await;
        check(name, &out, expect);
    }
}

#[tokio::test]
async fn optional_mode() {
    let f = fixture();
    let layer = f.layer.clone().optional();
    let out = send(&layer, get().body(Full::default()).unwrap()).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(&out.body[..], b"Some(Anonymous)");
    let out = send(&layer, bearer("abc.def.ghi")).await;
    check(
        "optional, bad token",
        &out,
        Expect::BadToken("malformed token"),
    );
    let out = send(&layer, bearer(&with_claim("exp", json!(now() - 100)))).await;
    check("optional, expired", &out, Expect::BadToken("token expired"));
    let out = send(&layer, bearer(&hs(&claims("alice")))).await;
    check("optional, valid", &out, Expect::Ok("alice"));
}

fn preflight() -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/resource")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn cors_preflight_needs_a_token_unless_allowed() {
    let f = fixture();
    // By default a preflight is a request without a token: the inner service never sees it.
    check(
        "preflight, default",
        &send(&f.layer, preflight()).await,
        Expect::NoToken,
    );
    let open = f.layer.clone().allow_cors_preflight(true);
    let out = send(&open, preflight()).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(&out.body[..], b"Some(Preflight)");
    // A plain OPTIONS is not a preflight.
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/resource")
        .body(Full::default())
        .unwrap();
    check("plain OPTIONS", &send(&open, plain).await, Expect::NoToken);
}

/// The scope guard lets through exactly the preflights the auth layer let through.
#[tokio::test]
async fn scope_guard_agrees_with_the_auth_layer_on_preflights() {
    use tower_token_auth::RequireScopeLayer;
    let via = |layer: JwtAuthLayer, req: Request<Full<Bytes>>| async move {
        let svc = tower::ServiceBuilder::new()
            .layer(layer)
            .layer(RequireScopeLayer::new("admin").unwrap())
            .service(service_fn(echo));
        svc.oneshot(req).await.unwrap().status()
    };
    let f = fixture();
    assert_eq!(
        via(f.layer.clone(), preflight()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        via(f.layer.clone().allow_cors_preflight(true), preflight()).await,
        StatusCode::OK
    );
    // A forged status cannot come from the client: without a token it is still refused.
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/resource")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        via(f.layer.clone().allow_cors_preflight(true), plain).await,
        StatusCode::UNAUTHORIZED
    );
}

/// A token issued in the future (beyond the leeway) would escape user-wide revocation.
#[tokio::test]
async fn iat_in_the_future_is_refused_beyond_the_leeway() {
    let f = fixture();
    // The fixture's leeway is 5 s.
    check(
        "iat within the leeway",
        &send(&f.layer, bearer(&with_claim("iat", json!(now() + 2)))).await,
        Expect::Ok("alice"),
    );
    for iat in [now() + 60, now() + 365 * 24 * 3600, u64::MAX / 2] {
        check(
            "iat in the future",
            &send(&f.layer, bearer(&with_claim("iat", json!(iat)))).await,
            Expect::BadToken("token issued in the future"),
        );
    }
    // The refusal comes before the revocation check, so a user-wide revocation cannot be
    // dodged by a token stamped after it.
    f.store.revoke_user_now("alice", now(), now() + 600);
    check(
        "future iat after a user revocation",
        &send(&f.layer, bearer(&with_claim("iat", json!(now() + 3600)))).await,
        Expect::BadToken("token issued in the future"),
    );
}

/// A store that counts checks and answers with a configurable outcome, possibly after I/O.
#[derive(Debug)]
struct ProbeStore {
    checks: AtomicUsize,
    answer: Mutex<Result<RevocationStatus, ()>>,
    pending: bool,
}

impl ProbeStore {
    fn new(answer: Result<RevocationStatus, ()>, pending: bool) -> Arc<Self> {
        Arc::new(Self {
            checks: AtomicUsize::new(0),
            answer: Mutex::new(answer),
            pending,
        })
    }
}

impl RevocationStore for ProbeStore {
    fn check(&self, _token: &TokenRef<'_>) -> RevocationCheck {
        self.checks.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answer
            .lock()
            .unwrap()
            .map_err(|()| RevocationError::Timeout);
        if self.pending {
            RevocationCheck::Pending(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                answer
            }))
        } else {
            RevocationCheck::Ready(answer)
        }
    }
    fn revoke_token<'a>(&'a self, _: TokenRef<'a>) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async { Ok(()) })
    }
    fn revoke_user<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn store_is_not_consulted_for_tokens_that_fail_verification() {
    let store = ProbeStore::new(Ok(RevocationStatus::Active), false);
    let layer = JwtAuthLayer::new(verifier()).with_shared_revocation_store(store.clone());
    let forged = hs(&claims("alice")).replace('.', ".x");
    for req in [
        bearer(&forged),
        bearer(&with_claim("exp", json!(now() - 100))),
        bearer(&with_claim("iss", json!("evil"))),
        bearer(&without_claim("sub")),
    ] {
        assert_eq!(send(&layer, req).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(store.checks.load(Ordering::SeqCst), 0);
    assert_eq!(
        send(&layer, bearer(&hs(&claims("alice")))).await.status,
        StatusCode::OK
    );
    assert_eq!(store.checks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn remote_store_answers_are_awaited() {
    for (answer, status) in [
        (Ok(RevocationStatus::Active), StatusCode::OK),
        (Ok(RevocationStatus::Revoked), StatusCode::UNAUTHORIZED),
        (Err(()), StatusCode::SERVICE_UNAVAILABLE),
    ] {
        for pending in [false, true] {
            let store = ProbeStore::new(answer, pending);
            let layer = JwtAuthLayer::new(verifier()).with_shared_revocation_store(store.clone());
            let svc = tower::ServiceBuilder::new()
                .layer(layer)
                .service(service_fn(echo));
            let res = svc.oneshot(bearer(&hs(&claims("alice")))).await.unwrap();
            assert_eq!(res.status(), status, "{answer:?} pending={pending}");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(res.headers()[header::RETRY_AFTER], "1");
                let body: Value =
                    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
                        .unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
            }
        }
    }
}

#[tokio::test]
async fn logout_revokes_and_clears_the_cookie() {
    let f = fixture();
    let token = hs(&claims("dave"));
    assert_eq!(send(&f.layer, bearer(&token)).await.status, StatusCode::OK);
    let claims: Claims = f.layer.verifier().verify(&token).unwrap();
    let logout = f.layer.logout();
    logout.revoke(&claims).await.unwrap();
    check(
        "after logout",
        &send(&f.layer, bearer(&token)).await,
        Expect::BadToken("token revoked"),
    );
    let removal = logout.removal_cookie().unwrap();
    let removal = removal.to_str().unwrap();
    assert!(removal.starts_with("access_token=;"), "{removal}");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(
        removal.contains("HttpOnly") && removal.contains("Secure") && removal.contains("Path=/")
    );
}

#[tokio::test]
async fn logout_everywhere_revokes_older_tokens_only() {
    let f = fixture();
    let old = hs(&claims("erin"));
    f.layer
        .logout()
        .revoke_user("erin", Duration::from_secs(3600))
        .await
        .unwrap();
    check(
        "old token",
        &send(&f.layer, bearer(&old)).await,
        Expect::BadToken("token revoked"),
    );
    // revoke_user returns once the revocation's second is over: a token minted now is newer.
    check(
        "newer token",
        &send(&f.layer, bearer(&hs(&claims("erin")))).await,
        Expect::Ok("erin"),
    );
    // A token without iat cannot prove it is newer.
    let mut no_iat = claims("erin");
    no_iat.as_object_mut().unwrap().remove("iat");
    check(
        "no iat, signed",
        &send(&f.layer, bearer(&hs(&no_iat))).await,
        Expect::BadToken("token revoked"),
    );
}

#[tokio::test]
async fn custom_responder_replaces_the_body() {
    let layer = JwtAuthLayer::new(verifier()).with_responder(|e: &tower_token_auth::AuthError| {
        let mut res = e.to_response(None);
        *res.body_mut() = Bytes::from_static(b"nope");
        res
    });
    let out = send(&layer, bearer("abc")).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(&out.body[..], b"nope");
    assert!(out.www.unwrap().contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn lenient_cookie_mode_treats_bad_cookies_as_no_token() {
    let f = fixture();
    let layer = f.layer.clone().optional_ignoring_bad_cookies();
    let expired = with_claim("exp", json!(now() - 100));
    let anonymous =
        |out: &Outcome| out.status == StatusCode::OK && &out.body[..] == b"Some(Anonymous)";
    assert!(anonymous(
        &send(&layer, cookie(&format!("access_token={expired}"))).await
    ));
    assert!(anonymous(
        &send(&layer, cookie("access_token=abc.def.ghi")).await
    ));
    // Revoked (user revoked): also no token from a cookie...
    let mallory = hs(&claims("mallory"));
    f.store.revoke_user_now("mallory", now(), now() + 600);
    assert!(anonymous(
        &send(&layer, cookie(&format!("access_token={mallory}"))).await
    ));
    // ...but a bearer token is still judged.
    check(
        "bearer, lenient",
        &send(&layer, bearer(&expired)).await,
        Expect::BadToken("token expired"),
    );
    check(
        "bearer revoked, lenient",
        &send(&layer, bearer(&mallory)).await,
        Expect::BadToken("token revoked"),
    );
    let valid = hs(&claims("alice"));
    check(
        "cookie, lenient",
        &send(&layer, cookie(&format!("access_token={valid}"))).await,
        Expect::Ok("alice"),
    );
}

/// A key set with one key takes a shorter path through the verifier: it must refuse the same
/// tokens for the same reasons.
#[tokio::test]
async fn single_key_verifier_gives_the_same_answers() {
    let keys = KeySet::new()
        .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .unwrap();
    let verifier = Verifier::builder(keys)
        .issuer("test")
        .audience("test")
        .require_claims(["exp", "sub"])
        .leeway(Duration::from_secs(5))
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(verifier).with_realm("api").unwrap();
    let f = fixture();
    let multi: Vec<_> = cases(&f)
        .into_iter()
        // Cases about the RSA key or cookies need the two-key fixture.
        .filter(|(name, _, _)| {
            !name.contains("RS256") && !name.contains("cookie") && !name.contains("revoked")
        })
        .collect();
    assert!(multi.len() >= 30);
    for (name, req, expect) in multi {
        let expect = match name {
            // With no RSA key, the RSA kid is just unknown.
            "HS256 keyed with the RS256 public key" => Expect::BadToken("unknown signing key"),
            _ => expect,
        };
        check(name, &send(&layer, req).await, expect);
    }
}

/// Every request the layer lets through carries exactly one value from it, an
/// `Authentication`, whatever path it took: verified now or after a pending revocation check,
/// anonymous, a revoked cookie in lenient mode, a preflight.
#[tokio::test]
async fn one_value_per_request_on_every_path() {
    use tower_token_auth::{AuthStatus, Authentication};

    async fn inspect(
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
        let auth = req.extensions().get::<Authentication>();
        let seen = format!(
            "{} {:?} {:?} {}",
            req.extensions().len(),
            auth.map(Authentication::status),
            auth.and_then(Authentication::claims::<tower_token_auth::NoCustomClaims>)
                .and_then(|c| c.sub.clone()),
            auth.is_some_and(|a| a.logout().is_some()),
        );
        Ok(http::Response::new(Full::from(seen)))
    }
    async fn seen(layer: JwtAuthLayer, req: Request<Full<Bytes>>) -> String {
        let svc = tower::ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(inspect));
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }
    let alice = hs(&claims("alice"));
    let authenticated = format!(
        "1 Some({:?}) Some(\"alice\") true",
        AuthStatus::Authenticated
    );
    let anonymous = format!("1 Some({:?}) None true", AuthStatus::Anonymous);

    let layer = JwtAuthLayer::new(verifier());
    assert_eq!(seen(layer.clone(), bearer(&alice)).await, authenticated);
    // The revocation check answered later (a remote store).
    let pending = ProbeStore::new(Ok(RevocationStatus::Active), true);
    let remote = layer.clone().with_shared_revocation_store(pending);
    assert_eq!(seen(remote, bearer(&alice)).await, authenticated);
    // No token, optional mode.
    let optional = layer.clone().optional();
    let none = Request::builder().body(Full::<Bytes>::default()).unwrap();
    assert_eq!(seen(optional, none).await, anonymous);
    // A revoked cookie in lenient mode passes as anonymous.
    let f = fixture();
    let lenient = f.layer.clone().optional_ignoring_bad_cookies();
    let mallory = hs(&claims("mallory"));
    f.store.revoke_user_now("mallory", now(), now() + 600);
    let revoked_cookie = cookie(&format!("access_token={mallory}"));
    assert_eq!(seen(lenient, revoked_cookie).await, anonymous);
    // An allowed preflight.
    let preflights = layer.allow_cors_preflight(true);
    assert_eq!(
        seen(preflights, preflight()).await,
        format!("1 Some({:?}) None true", AuthStatus::Preflight)
    );
}

/// A revoked token stays refused for as long as the verifier's leeway still admits it after
/// its `exp`: the store keeps the revocation past `exp` (the fixture's leeway is 5 s).
#[tokio::test]
async fn revoked_token_is_refused_within_the_leeway_after_exp() {
    let f = fixture();
    let mut c = claims("alice");
    let exp = now() + 1;
    c["exp"] = json!(exp);
    c["jti"] = json!("leeway-jti");
    let token = hs(&c);
    check(
        "valid",
        &send(&f.layer, bearer(&token)).await,
        Expect::Ok("alice"),
    );
    f.store.revoke_token_now("leeway-jti", exp);
    // Past exp, within the leeway: the verifier still admits the token, the store must not.
    while now() <= exp + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check(
        "revoked, past exp, within the leeway",
        &send(&f.layer, bearer(&token)).await,
        Expect::BadToken("token revoked"),
    );
}
