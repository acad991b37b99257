//! The bad-input suite: every request goes through `JwtAuthLayer` with `oneshot`, and each
//! case asserts the status, the exact `WWW-Authenticate` challenge and the JSON body.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_token_auth::revocation::{
    BoxFuture, RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef,
};
use tower_token_auth::{
    AccessCookie, AuthStatus, Claims, JwtAuthLayer, KeySet, MemoryStore, Verifier, VerifyingKey,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";
const RSA_PUBLIC: &str = include_str!("keys/rs256-public.pem");
const RSA_PRIVATE: &str = include_str!("keys/rs256-private.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The key set: an HS256 key without `kid` (the default) and an RS256 key with kid `rsa`.
fn verifier() -> Verifier {
    let keys = KeySet::new()
        .with_key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .unwrap()
        .with_key(
            VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC.as_bytes())
                .unwrap()
                .with_kid("rsa"),
        )
        .unwrap();
    Verifier::builder(keys)
        .issuer("test")
        .audience("test")
        .require_claims(["exp", "sub"])
        .leeway(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "test", "aud": "test", "exp": now() + 600, "iat": now(), "jti": format!("jti-{sub}")})
}

fn hs(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn with_claim(name: &str, value: Value) -> String {
    let mut c = claims("alice");
    c[name] = value;
    hs(&c)
}

fn without_claim(name: &str) -> String {
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove(name);
    hs(&c)
}

/// Signs raw header and payload bytes with `key`, for tokens `encode` would refuse to make.
fn raw_token(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = match req.extensions().get::<Claims>() {
        Some(c) => c.sub.clone().unwrap_or_default(),
        None => format!("{:?}", req.extensions().get::<AuthStatus>()),
    };
    Ok(Response::new(Full::new(Bytes::from(who))))
}

struct Fixture {
    layer: JwtAuthLayer,
    store: MemoryStore,
}

fn fixture() -> Fixture {
    let store = MemoryStore::new();
    let layer = JwtAuthLayer::new(verifier())
        .with_cookie(AccessCookie::new("access_token"))
        .unwrap()
        .with_revocation_store(store.clone())
        .with_realm("api")
        .unwrap();
    Fixture { layer, store }
}

struct Outcome {
    status: StatusCode,
    www: Option<String>,
    body: Bytes,
}

async fn send(layer: &JwtAuthLayer, req: Request<Full<Bytes>>) -> Outcome {
    let svc = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(echo));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let www = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Outcome { status, www, body }
}

fn get() -> http::request::Builder {
    Request::builder().uri("/resource")
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    get()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

fn auth(value: &[u8]) -> Request<Full<Bytes>> {
    get()
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        )
        .body(Full::default())
        .unwrap()
}

fn cookie(value: &str) -> Request<Full<Bytes>> {
    get()
        .header(header::COOKIE, value)
        .body(Full::default())
        .unwrap()
}

/// What a case must answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200, and the inner service saw this subject.
    Ok(&'static str),
    /// 401 with a bare challenge: no token was found.
    NoToken,
    /// 400 invalid_request with this description.
    BadRequest(&'static str),
    /// 401 invalid_token with this description.
    BadToken(&'static str),
}

fn check(name: &str, out: &Outcome, expect: Expect) {
    let body: Option<Value> = serde_json::from_slice(&out.body).ok();
    let (status, www, error, desc) = match expect {
        Expect::Ok(sub) => {
            assert_eq!(out.status, StatusCode::OK, "{name}: status");
            assert_eq!(out.www, None, "{name}: no challenge on success");
            assert_eq!(
                &out.body[..],
                sub.as_bytes(),
                "{name}: subject seen by the service"
            );
            return;
        }
        Expect::NoToken => (
            StatusCode::UNAUTHORIZED,
            r#"Bearer realm="api""#.to_owned(),
            "unauthorized",
            "authentication required",
        ),
        Expect::BadRequest(d) => (
            StatusCode::BAD_REQUEST,
            format!(r#"Bearer realm="api", error="invalid_request", error_description="{d}""#),
            "invalid_request",
            d,
        ),
        Expect::BadToken(d) => (
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer realm="api", error="invalid_token", error_description="{d}""#),
            "invalid_token",
            d,
        ),
    };
    assert_eq!(out.status, status, "{name}: status");
    assert_eq!(
        out.www.as_deref(),
        Some(www.as_str()),
        "{name}: WWW-Authenticate"
    );
    let body = body.unwrap_or_else(|| panic!("{name}: JSON body"));
    assert_eq!(
        body,
        json!({"error": error, "error_description": desc}),
        "{name}: body"
    );
}

fn cases(f: &Fixture) -> Vec<(&'static str, Request<Full<Bytes>>, Expect)> {
    let valid = hs(&claims("alice"));
    let bob = hs(&claims("bob"));
    let mut tampered = valid.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let header_b64 = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);

    // Revoke one token by jti, and every token of `mallory` issued until now.
    let revoked_claims = claims("carol");
    f.store.revoke_token_now("jti-carol", now() + 600);
    let revoked = hs(&revoked_claims);
    let mallory = hs(&claims("mallory"));
    f.store.revoke_user_now("mallory", now(), now() + 600);

    let mut huge_kid = Header::new(Algorithm::HS256);
    huge_kid.kid = Some("../../../etc/passwd".into());
    let kid_path = jsonwebtoken::encode(
        &huge_kid,
        &claims("alice"),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let mut unknown = Header::new(Algorithm::HS256);
    unknown.kid = Some("nope".into());
    let unknown_kid = jsonwebtoken::encode(
        &unknown,
        &claims("alice"),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    // Algorithm confusion: HS256 keyed with the RS256 public key, sent with the RSA key's kid.
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("rsa".into());
    let confusion = jsonwebtoken::encode(
        &confused,
        &claims("alice"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims("alice").to_string())
    );
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(OTHER_SECRET),
    )
    .unwrap();
    let oversize = with_claim("pad", Value::String("x".repeat(9000)));

    vec![
        ("valid bearer", bearer(&valid), Expect::Ok("alice")),
        (
            "valid RS256 with kid",
            bearer(&rs256(&claims("rita"))),
            Expect::Ok("rita"),
        ),
        (
            "lowercase scheme",
            auth(format!("bearer {valid}").as_bytes()),
            Expect::Ok("alice"),
        ),
        (
            "uppercase scheme",
            auth(format!("BEARER {valid}").as_bytes()),
            Expect::Ok("alice"),
        ),
        (
            "missing header",
            get().body(Full::default()).unwrap(),
            Expect::NoToken,
        ),
        (
            "Bearer with nothing after",
            auth(b"Bearer"),
            Expect::BadRequest("empty bearer token"),
        ),
        (
            "Bearer with spaces only",
            auth(b"Bearer    "),
            Expect::BadRequest("empty bearer token"),
        ),
        (
            "Basic scheme",
            auth(b"Basic YWxpY2U6cGFzcw=="),
            Expect::NoToken,
        ),
        (
            "two Authorization headers",
            get()
                .header(header::AUTHORIZATION, format!("Bearer {valid}"))
                .header(header::AUTHORIZATION, format!("Bearer {valid}"))
                .body(Full::default())
                .unwrap(),
            Expect::BadRequest("multiple Authorization headers"),
        ),
        (
            "token only in the query string",
            Request::builder()
                .uri(format!("/resource?access_token={valid}"))
                .body(Full::default())
                .unwrap(),
            Expect::NoToken,
        ),
        (
            "alg none",
            bearer(&none),
            Expect::BadToken("malformed token"),
        ),
        (
            "HS256 keyed with the RS256 public key",
            bearer(&confusion),
            Expect::BadToken("algorithm not allowed"),
        ),
        (
            "unknown kid",
            bearer(&unknown_kid),
            Expect::BadToken("unknown signing key"),
        ),
        (
            "kid with path characters",
            bearer(&kid_path),
            Expect::BadToken("unknown signing key"),
        ),
        (
            "bad signature",
            bearer(&tampered),
            Expect::BadToken("invalid signature"),
        ),
        (
            "signed with another secret",
            bearer(&other_key),
            Expect::BadToken("invalid signature"),
        ),
        (
            "truncated signature",
            bearer(&valid[..valid.len() - 3]),
            Expect::BadToken("invalid signature"),
        ),
        (
            "truncated into the payload",
            bearer(&valid[..valid.len() - 60]),
            Expect::BadToken("malformed token"),
        ),
        (
            "two segments",
            bearer(valid.rsplit_once('.').unwrap().0),
            Expect::BadToken("malformed token"),
        ),
        (
            "characters outside b64token",
            auth(b"Bearer abc$.def%.ghi"),
            Expect::BadRequest("malformed bearer token"),
        ),
        (
            "b64token but not base64url",
            bearer("a+b/.c+d/.e+f/"),
            Expect::BadToken("malformed token"),
        ),
        (
            "header segment not JSON",
            bearer(&format!("{}.{}.sig", B64.encode("hello"), B64.encode("{}"))),
            Expect::BadToken("malformed token"),
        ),
        (
            "payload an array",
            bearer(&raw_token(br#"{"alg":"HS256"}"#, b"[1,2,3]", SECRET)),
            Expect::BadToken("malformed token"),
        ),
        (
            "payload not JSON",
            bearer(&raw_token(br#"{"alg":"HS256"}"#, b"hello", SECRET)),
            Expect::BadToken("malformed token"),
        ),
        (
            "payload with a duplicate sub",
            bearer(&raw_token(
                br#"{"alg":"HS256"}"#,
                format!(
                    r#"{{"sub":"alice","sub":"admin","iss":"test","aud":"test","exp":{}}}"#,
                    now() + 60
                )
                .as_bytes(),
                SECRET,
            )),
            Expect::BadToken("malformed token"),
        ),
        (
            "expired",
            bearer(&with_claim("exp", json!(now() - 60))),
            Expect::BadToken("token expired"),
        ),
        (
            "nbf in the future",
            bearer(&with_claim("nbf", json!(now() + 600))),
            Expect::BadToken("token not yet valid"),
        ),
        (
            "wrong iss",
            bearer(&with_claim("iss", json!("evil"))),
            Expect::BadToken("invalid issuer"),
        ),
        (
            "wrong aud",
            bearer(&with_claim("aud", json!("other-service"))),
            Expect::BadToken("invalid audience"),
        ),
        (
            "aud array without us",
            bearer(&with_claim("aud", json!(["a", "b"]))),
            Expect::BadToken("invalid audience"),
        ),
        (
            "aud array with us",
            bearer(&with_claim("aud", json!(["a", "test"]))),
            Expect::Ok("alice"),
        ),
        (
            "missing sub",
            bearer(&without_claim("sub")),
            Expect::BadToken("missing required claim"),
        ),
        (
            "missing exp",
            bearer(&without_claim("exp")),
            Expect::BadToken("missing required claim"),
        ),
        (
            "missing iss",
            bearer(&without_claim("iss")),
            Expect::BadToken("missing required claim"),
        ),
        (
            "exp as a string",
            bearer(&with_claim("exp", json!("tomorrow"))),
            Expect::BadToken("malformed token"),
        ),
        (
            "exp a huge number",
            bearer(&raw_token(
                br#"{"alg":"HS256"}"#,
                br#"{"sub":"alice","iss":"test","aud":"test","exp":1e400}"#,
                SECRET,
            )),
            Expect::BadToken("malformed token"),
        ),
        (
            "exp negative",
            bearer(&with_claim("exp", json!(-1))),
            Expect::BadToken("malformed token"),
        ),
        (
            "oversize token",
            bearer(&oversize),
            Expect::BadToken("token too large"),
        ),
        (
            "non-UTF-8 header bytes",
            auth(b"Bearer \xc3\x28abc"),
            Expect::BadRequest("header is not visible ASCII"),
        ),
        (
            "revoked jti",
            bearer(&revoked),
            Expect::BadToken("token revoked"),
        ),
        (
            "user revoked after issue",
            bearer(&mallory),
            Expect::BadToken("token revoked"),
        ),
        (
            "valid cookie",
            cookie(&format!("theme=dark; access_token={valid}")),
            Expect::Ok("alice"),
        ),
        ("empty cookie", cookie("access_token="), Expect::NoToken),
        (
            "bad cookie",
            cookie("access_token=abc.def.ghi"),
            Expect::BadToken("malformed token"),
        ),
        (
            "duplicate cookie",
            cookie(&format!("access_token={valid}; access_token={bob}")),
            Expect::BadRequest("token cookie sent more than once"),
        ),
        (
            "header and cookie: the header wins (good header)",
            get()
                .header(header::AUTHORIZATION, format!("Bearer {valid}"))
                .header(header::COOKIE, format!("access_token={bob}"))
                .body(Full::default())
                .unwrap(),
            Expect::Ok("alice"),
        ),
        (
            "header and cookie: the header wins (bad header)",
            get()
                .header(header::AUTHORIZATION, "Bearer abc.def.ghi")
                .header(header::COOKIE, format!("access_token={bob}"))
                .body(Full::default())
                .unwrap(),
            Expect::BadToken("malformed token"),
        ),
        (
            "unknown typ header is fine without require_typ",
            bearer(&raw_token(
                br#"{"alg":"HS256","typ":"whatever"}"#,
                claims("tom").to_string().as_bytes(),
                SECRET,
            )),
            Expect::Ok("tom"),
        ),
        (
            "crit header refused",
            bearer(&raw_token(
                br#"{"alg":"HS256","crit":["exp"]}"#,
                claims("alice").to_string().as_bytes(),
                SECRET,
            )),
            Expect::BadToken("malformed token"),
        ),
        (
            "header only, empty parts",
            bearer(&format!("{header_b64}..")),
            Expect::BadToken("invalid signature"),
        ),
    ]
}

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

#[tokio::test]
async fn cors_preflight_passes_unless_disabled() {
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/resource")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Full::default())
            .unwrap()
    };
    let f = fixture();
    let out = send(&f.layer, preflight()).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(&out.body[..], b"Some(Preflight)");
    // A plain OPTIONS is not a preflight.
    let plain = Request::builder()
        .method(Method::OPTIONS)
        .uri("/resource")
        .body(Full::default())
        .unwrap();
    check(
        "plain OPTIONS",
        &send(&f.layer, plain).await,
        Expect::NoToken,
    );
    let strict = f.layer.clone().allow_cors_preflight(false);
    check(
        "preflight, disabled",
        &send(&strict, preflight()).await,
        Expect::NoToken,
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
    // Tokens are dated to the second: one issued in a later second is accepted.
    let mut fresh = claims("erin");
    fresh["iat"] = json!(now() + 1);
    check(
        "newer token",
        &send(&f.layer, bearer(&hs(&fresh))).await,
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
