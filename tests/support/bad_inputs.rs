//! The bad-input suite's fixture and cases, shared by `tests/layer.rs` (which checks each
//! answer) and `tests/log_hygiene.rs` (which checks the logs of the whole suite).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_token_auth::{
    AccessCookie, Authentication, JwtAuthLayer, KeySet, MemoryStore, NoCustomClaims, Verifier,
    VerifyingKey,
};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";
pub const RSA_PUBLIC: &str = include_str!("../keys/rs256-public.pem");
pub const RSA_PRIVATE: &str = include_str!("../keys/rs256-private.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The key set: an HS256 key without `kid` (the default) and an RS256 key with kid `rsa`.
pub fn verifier() -> Verifier {
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

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "test", "aud": "test", "exp": now() + 600, "iat": now(), "jti": format!("jti-{sub}")})
}

pub fn hs(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

pub fn with_claim(name: &str, value: Value) -> String {
    let mut c = claims("alice");
    c[name] = value;
    hs(&c)
}

pub fn without_claim(name: &str) -> String {
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove(name);
    hs(&c)
}

/// Signs raw header and payload bytes with `key`, for tokens `encode` would refuse to make.
pub fn raw_token(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{sig}")
}

pub fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let auth = req.extensions().get::<Authentication>();
    let who = match auth.and_then(Authentication::claims::<NoCustomClaims>) {
        Some(c) => c.sub.clone().unwrap_or_default(),
        None => format!("{:?}", auth.map(Authentication::status)),
    };
    Ok(Response::new(Full::new(Bytes::from(who))))
}

pub struct Fixture {
    pub layer: JwtAuthLayer,
    pub store: MemoryStore,
}

pub fn fixture() -> Fixture {
    let store = MemoryStore::new();
    let layer = JwtAuthLayer::new(verifier())
        .with_cookie(AccessCookie::new("access_token"))
        .unwrap()
        .with_revocation_store(store.clone())
        .with_realm("api")
        .unwrap();
    Fixture { layer, store }
}

pub struct Outcome {
    pub status: StatusCode,
    pub www: Option<String>,
    pub body: Bytes,
}

pub async fn send(layer: &JwtAuthLayer, req: Request<Full<Bytes>>) -> Outcome {
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

pub fn get() -> http::request::Builder {
    Request::builder().uri("/resource")
}

pub fn bearer(token: &str) -> Request<Full<Bytes>> {
    get()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

pub fn auth(value: &[u8]) -> Request<Full<Bytes>> {
    get()
        .header(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        )
        .body(Full::default())
        .unwrap()
}

pub fn cookie(value: &str) -> Request<Full<Bytes>> {
    get()
        .header(header::COOKIE, value)
        .body(Full::default())
        .unwrap()
}

/// What a case must answer.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// 200, and the inner service saw this subject.
    Ok(&'static str),
    /// 401 with a bare challenge: no token was found.
    NoToken,
    /// 400 invalid_request with this description.
    BadRequest(&'static str),
    /// 401 invalid_token with this description.
    BadToken(&'static str),
}

pub fn check(name: &str, out: &Outcome, expect: Expect) {
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

pub fn cases(f: &Fixture) -> Vec<(&'static str, Request<Full<Bytes>>, Expect)> {
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
            Expect::BadToken("missing or invalid claim"),
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
            Expect::BadToken("missing or invalid claim"),
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
