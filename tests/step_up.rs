//! RFC 9470 step-up authentication: `StepUpLayer` on axum routes behind `JwtAuthLayer`, and
//! `StepUpRequirement::check` in a handler. Every refusal's `WWW-Authenticate` challenge is
//! parsed and compared whole.
//!
//! The third-party case mints with node `jose` and PyJWT (tests/oidc), as tests/idp.rs does.

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{
    AuthError, Claims, JwtAuthLayer, KeySet, Rfc6750Responder, StepUpLayer, StepUpRequirement,
    Verifier,
};

use oidc_provider::mint;
use support::now_secs;

const MFA: &str = "urn:example:mfa";
const DESCRIPTION: &str = "a stronger or more recent login is required";

/// `acr` `urn:example:mfa` and a login at most 300 s old.
fn mfa_recent() -> StepUpRequirement {
    StepUpRequirement::acr_values(MFA)
        .unwrap()
        .with_max_age(Duration::from_secs(300))
        .unwrap()
}

/// `/transfer` demands [`mfa_recent`], `/recent` a login at most 60 s old, `/export` checks
/// [`mfa_recent`] in its handler; all behind `auth`.
fn app(auth: JwtAuthLayer) -> Router {
    let transfer = Router::new()
        .route("/transfer", get(|| async { "sent" }))
        .route_layer(StepUpLayer::new(mfa_recent()));
    let recent = Router::new()
        .route("/recent", get(|| async { "recent enough" }))
        .route_layer(StepUpLayer::new(
            StepUpRequirement::max_age(Duration::from_secs(60)).unwrap(),
        ));
    let export = Router::new().route(
        "/export",
        get(|claims: Claims| async move {
            mfa_recent().check_now(&claims)?;
            Ok::<_, AuthError>("exported")
        }),
    );
    transfer.merge(recent).merge(export).route_layer(auth)
}

/// What came back, the challenge parsed.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    /// The scheme and its parameters in order, when there is a `WWW-Authenticate`.
    challenge: Option<(String, Vec<(String, String)>)>,
    cache_control: Option<String>,
    body: Bytes,
}

impl Seen {
    async fn from<B>(res: Response<B>) -> Self
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let status = res.status();
        let mut challenges = res.headers().get_all(header::WWW_AUTHENTICATE).iter();
        let challenge = challenges
            .next()
            .map(|v| parse_challenge(v.to_str().unwrap()));
        assert!(challenges.next().is_none(), "one challenge only");
        let cache_control = res
            .headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Self {
            status,
            challenge,
            cache_control,
            body,
        }
    }

    fn ok(&self, body: &str) {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        assert_eq!(self.body, body.as_bytes(), "{self:?}");
    }

    /// 401 `insufficient_user_authentication` with exactly these step-up parameters after
    /// `error` and `error_description`, and the JSON body.
    fn step_up(&self, acr_values: Option<&str>, max_age: Option<u64>) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        let mut want = vec![
            param("error", "insufficient_user_authentication"),
            param("error_description", DESCRIPTION),
        ];
        if let Some(acr) = acr_values {
            want.push(param("acr_values", acr));
        }
        if let Some(age) = max_age {
            want.push(param("max_age", &age.to_string()));
        }
        assert_eq!(self.challenge, Some(("Bearer".into(), want)), "{self:?}");
        assert_eq!(self.cache_control.as_deref(), Some("no-store"));
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        assert_eq!(
            body,
            json!({"error": "insufficient_user_authentication", "error_description": DESCRIPTION})
        );
    }

    /// 401 with a bare `Bearer` challenge (RFC 6750 §3.1: no credentials, no error code).
    fn unauthenticated(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(self.challenge, Some(("Bearer".into(), vec![])), "{self:?}");
    }
}

fn param(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// One challenge (RFC 9110 §11.2): `scheme [param *("," param)]`, each value a token or a
/// quoted-string (unescaped here). Panics on anything else, trailing text included.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    assert!(
        !scheme.is_empty() && scheme.chars().all(is_tchar),
        "{header}"
    );
    let mut params = Vec::new();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("no `=` in {header}"));
        let name = rest[..eq].trim_start_matches([' ', ',']).trim();
        assert!(name.chars().all(is_tchar) && !name.is_empty(), "{header}");
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => out.push(chars.next().expect("escape").1),
                    Some((i, '"')) => break i,
                    Some((_, c)) => out.push(c),
                    None => panic!("unterminated quoted-string in {header}"),
                }
            };
            value = out;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            assert!(value.chars().all(is_tchar), "{header}");
            rest = &rest[end..];
        }
        params.push((name.to_owned(), value));
        // Between parameters: optional spaces, one comma, optional spaces.
        let after = rest.trim_start_matches(' ');
        rest = match after.strip_prefix(',') {
            Some(next) => {
                assert!(!next.trim().is_empty(), "trailing comma in {header}");
                next
            }
            None => {
                assert!(after.is_empty(), "junk after a parameter in {header}");
                after
            }
        };
    }
    (scheme.to_owned(), params)
}

async fn send(app: &Router, method: Method, uri: &str, token: Option<&str>) -> Seen {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    Seen::from(res).await
}

async fn get_with(app: &Router, uri: &str, token: &str) -> Seen {
    send(app, Method::GET, uri, Some(token)).await
}

/// A test token for alice carrying `extra` (`acr`, `auth_time`) beside the usual claims.
fn token(keys: &TestKeys, extra: Value) -> String {
    keys.issuer()
        .issue_with("alice", "read", &extra)
        .unwrap()
        .token
}

#[test]
fn the_challenge_parser_is_strict() {
    assert_eq!(
        parse_challenge(r#"Bearer realm="a \"b\", c", max_age=5"#),
        (
            "Bearer".into(),
            vec![param("realm", r#"a "b", c"#), param("max_age", "5")]
        )
    );
    for bad in [
        r#"Bearer error="x"junk"#,
        r#"Bearer error="x","#,
        r#"Bearer error="x"#,
        "Bearer error",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_challenge(bad)).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn acr_and_max_age_route() {
    let keys = TestKeys::hs256();
    let app = app(JwtAuthLayer::new(keys.verifier()));
    let now = now_secs();
    let cases = [
        ("both met", json!({"acr": MFA, "auth_time": now - 10}), true),
        (
            "nearly max_age",
            json!({"acr": MFA, "auth_time": now - 290}),
            true,
        ),
        (
            "wrong acr",
            json!({"acr": "urn:example:pwd", "auth_time": now - 10}),
            false,
        ),
        (
            "acr differs in case",
            json!({"acr": "URN:EXAMPLE:MFA", "auth_time": now - 10}),
            false,
        ),
        (
            "old auth_time",
            json!({"acr": MFA, "auth_time": now - 3600}),
            false,
        ),
        ("no auth_time", json!({"acr": MFA}), false),
        ("no acr", json!({"auth_time": now - 10}), false),
        ("both missing", json!({}), false),
        (
            "both wrong",
            json!({"acr": "urn:example:pwd", "auth_time": now - 3600}),
            false,
        ),
        (
            "auth_time far ahead",
            json!({"acr": MFA, "auth_time": now + 3600}),
            false,
        ),
    ];
    for (name, extra, passes) in cases {
        let token = token(&keys, extra);
        for (uri, body) in [("/transfer", "sent"), ("/export", "exported")] {
            let seen = get_with(&app, uri, &token).await;
            if passes {
                seen.ok(body);
            } else {
                // The challenge names the route's whole requirement, so that one new login
                // meets all of it, whichever part this token missed.
                seen.step_up(Some(MFA), Some(300));
            }
            eprintln!("{name} {uri}: {:?}", seen.status);
        }
    }
}

#[tokio::test]
async fn max_age_only_route() {
    let keys = TestKeys::hs256();
    let app = app(JwtAuthLayer::new(keys.verifier()));
    let now = now_secs();
    // No acr demanded: any acr, or none, will do.
    for extra in [
        json!({"auth_time": now - 5}),
        json!({"auth_time": now - 5, "acr": "urn:example:pwd"}),
        json!({"auth_time": now + 10}), // within the 30 s leeway
    ] {
        get_with(&app, "/recent", &token(&keys, extra))
            .await
            .ok("recent enough");
    }
    for extra in [
        json!({"auth_time": now - 61}),
        json!({"acr": MFA}),
        json!({"auth_time": now + 120}),
    ] {
        get_with(&app, "/recent", &token(&keys, extra.clone()))
            .await
            .step_up(None, Some(60));
    }
}

#[tokio::test]
async fn unauthenticated_requests_get_a_bare_challenge() {
    let keys = TestKeys::hs256();
    // Optional mode lets anonymous requests through to the guard, which refuses them.
    let app = app(JwtAuthLayer::new(keys.verifier()).optional());
    send(&app, Method::GET, "/transfer", None)
        .await
        .unauthenticated();
    send(&app, Method::GET, "/recent", None)
        .await
        .unauthenticated();
    // No authentication layer at all: refused the same way.
    let bare = Router::new()
        .route("/transfer", get(|| async { "sent" }))
        .route_layer(StepUpLayer::new(mfa_recent()));
    send(&bare, Method::GET, "/transfer", None)
        .await
        .unauthenticated();
    // A forged token is the authentication layer's business: invalid_token, not step-up.
    let seen = get_with(&app, "/transfer", "abc.def.ghi").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    let (_, params) = seen.challenge.unwrap();
    assert_eq!(params[0], param("error", "invalid_token"));
}

#[tokio::test]
async fn preflights_pass_as_the_auth_layer_decides() {
    let keys = TestKeys::hs256();
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/transfer")
            .header(header::ORIGIN, "https://app.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    let guarded = |auth: JwtAuthLayer| {
        Router::new()
            .route("/transfer", axum::routing::any(|| async { "sent" }))
            .route_layer(StepUpLayer::new(mfa_recent()))
            .route_layer(auth)
    };
    let allowing = guarded(JwtAuthLayer::new(keys.verifier()).allow_cors_preflight(true));
    let res = allowing.clone().oneshot(preflight()).await.unwrap();
    Seen::from(res).await.ok("sent");
    // A plain OPTIONS is no preflight, and without a token it is refused.
    send(&allowing, Method::OPTIONS, "/transfer", None)
        .await
        .unauthenticated();
    let refusing = guarded(JwtAuthLayer::new(keys.verifier()));
    let res = refusing.oneshot(preflight()).await.unwrap();
    Seen::from(res).await.unauthenticated();
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tenant {
    tenant: String,
}

#[tokio::test]
async fn custom_claims_and_responders() {
    let keys = TestKeys::hs256();
    let now = now_secs();
    let token = |acr: &str| {
        let extra = json!({"tenant": "acme", "acr": acr, "auth_time": now - 1});
        keys.issuer()
            .issue_with("alice", "read", &extra)
            .unwrap()
            .token
    };
    let app = Router::new()
        .route(
            "/t",
            get(|c: Claims<Tenant>| async move { c.custom.tenant.clone() }),
        )
        .route_layer(
            StepUpLayer::new(mfa_recent())
                .for_claims::<Tenant>()
                .with_responder(Rfc6750Responder::with_realm("bank").unwrap()),
        )
        .route_layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    get_with(&app, "/t", &token(MFA)).await.ok("acme");
    let seen = get_with(&app, "/t", &token("urn:example:pwd")).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.challenge.unwrap().1,
        vec![
            param("realm", "bank"),
            param("error", "insufficient_user_authentication"),
            param("error_description", DESCRIPTION),
            param("acr_values", MFA),
            param("max_age", "300"),
        ]
    );

    // A guard looking for other claims than the authentication layer decodes finds none.
    let mismatched = Router::new()
        .route("/t", get(|| async { "unreachable" }))
        .route_layer(StepUpLayer::new(mfa_recent()))
        .route_layer(JwtAuthLayer::new(keys.verifier()).for_claims::<Tenant>());
    get_with(&mismatched, "/t", &token(MFA))
        .await
        .unauthenticated();

    // A closure responder sees the step-up error and its parameters.
    let app = Router::new()
        .route("/t", get(|| async { "ok" }))
        .route_layer(
            StepUpLayer::new(mfa_recent()).with_responder(|e: &AuthError| {
                let mut res = e.to_response(None);
                *res.body_mut() = Bytes::from(format!("{:?}", e.kind()));
                res
            }),
        )
        .route_layer(JwtAuthLayer::new(keys.verifier()));
    let seen = get_with(&app, "/t", &keys.mint("alice", "read")).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.body,
        r#"StepUpRequired { acr_values: Some("urn:example:mfa"), max_age: Some(300) }"#
    );
}

/// Tokens of issuers we did not write: `acr` and `auth_time` (a fraction from jose, as a
/// JavaScript issuer may write it) read as the guard needs them.
#[tokio::test]
async fn third_party_tokens() {
    let now = now_secs() as f64;
    for script in ["mint.mjs", "mint_pyjwt.py"] {
        let mint_with = |acr: &str, auth_time: f64| {
            mint(
                script,
                &json!({"alg": "ES256", "kid": "third", "claims": {
                    "sub": "alice", "iss": "third-party", "aud": "svc",
                    "iat": now, "exp": now + 600.0, "acr": acr, "auth_time": auth_time,
                }}),
            )
        };
        // One key per mint: each case gets the router of its own key set.
        let route = |jwks: &Value| {
            let keys = KeySet::from_jwks_json(&jwks.to_string()).unwrap();
            let verifier = Verifier::builder(keys)
                .issuer("third-party")
                .audience("svc")
                .build()
                .unwrap();
            app(JwtAuthLayer::new(verifier))
        };
        let minted = mint_with(MFA, now - 60.5);
        let app = route(&minted.jwks);
        get_with(&app, "/transfer", &minted.token).await.ok("sent");
        get_with(&app, "/export", &minted.token)
            .await
            .ok("exported");
        let minted = mint_with(MFA, now - 400.25);
        get_with(&route(&minted.jwks), "/transfer", &minted.token)
            .await
            .step_up(Some(MFA), Some(300));
        let minted = mint_with("urn:example:pwd", now - 1.0);
        get_with(&route(&minted.jwks), "/transfer", &minted.token)
            .await
            .step_up(Some(MFA), Some(300));
        eprintln!("{script}: ok");
    }
}
