//! The relying-party parts of `sso::login` (OidcLoginLayer, OidcCallback, OidcLogout,
//! BackChannelLogout::end_local_sessions) against node `oidc-provider`, a certified OpenID
//! provider: a browser scripted over HTTP with a cookie jar per site, logging in at the
//! provider through its dev interactions.
//!
//! Needs node (>= 20.19); tests/support/oidc_provider.rs installs the npm packages when
//! missing.

#![cfg(all(feature = "http-client", feature = "axum"))]

mod support;

#[path = "support/oidc_provider.rs"]
mod oidc_provider;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use oidc_provider::{LoginClient, OidcProvider, OpSession, Options, authorization_requests};
use sha2::Sha256;
use support::{Http, Resp};
use tower_token_auth::endpoint::TokenCookies;
use tower_token_auth::keys::Discovery;
use tower_token_auth::refresh::MemoryRefreshStore;
use tower_token_auth::sso::{
    BackChannelLogout, OidcCallback, OidcClient, OidcLoginLayer, OidcLogout,
};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, Claims, JwtAuthLayer, KeySet, TokenLifecycle, Verifier};

const STATE_SECRET: [u8; 32] = [42; 32];

/// One service (relying party) on 127.0.0.1.
struct Rp {
    base: String,
    client_id: String,
    at: String,
    rt: String,
    state: String,
}

impl Rp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The provider and two services registered at it.
struct Stack {
    op: OidcProvider,
    rps: Vec<Rp>,
}

async fn handler(claims: Claims) -> String {
    format!("hello {}", claims.sub.as_deref().unwrap_or(""))
}

impl Stack {
    async fn start(access_ttl: Duration) -> Self {
        let mut listeners = Vec::new();
        let mut clients = Vec::new();
        for name in ["a", "b"] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
            clients.push(LoginClient {
                client_id: format!("svc-{name}"),
                client_secret: format!("svc-{name}-secret"),
                redirect_uri: format!("{base}/callback"),
                post_logout_redirect_uri: format!("{base}/"),
                backchannel_logout_uri: format!("{base}/backchannel-logout"),
            });
            listeners.push((name, base, listener));
        }
        let op = OidcProvider::start(Options {
            login_clients: clients.clone(),
            ..Options::default()
        });
        let discovery = Discovery::fetch(&op.issuer()).await.expect("discovery");
        let mut rps = Vec::new();
        for ((name, base, listener), registered) in listeners.into_iter().zip(clients) {
            let op_tokens = Verifier::builder(KeySet::new())
                .issuer(discovery.issuer())
                .audience(&registered.client_id)
                .build_with_jwks(discovery.remote_jwks().unwrap())
                .await
                .expect("the provider's keys");
            let rp = Rp {
                base: base.clone(),
                client_id: registered.client_id.clone(),
                at: format!("{name}_at"),
                rt: format!("{name}_rt"),
                state: format!("{name}_login"),
            };
            let client = OidcClient::new(
                &discovery,
                &registered.client_id,
                &registered.redirect_uri,
                op_tokens.clone(),
                &STATE_SECRET,
            )
            .unwrap()
            .client_secret(&registered.client_secret)
            .insecure_http()
            .state_cookie_name(&rp.state)
            .unwrap()
            .post_logout_redirect_uri(&registered.post_logout_redirect_uri)
            .unwrap();
            // The service's own tokens.
            let local = format!("https://svc-{name}.test");
            let keys = TestKeys::hs256();
            let issuer = keys
                .issuer()
                .issuer(&local)
                .audience(&local)
                .ttl(access_ttl);
            let verifier = Verifier::builder(keys.key_set())
                .issuer(&local)
                .audience(&local)
                .leeway(Duration::ZERO)
                .build()
                .unwrap();
            let cookies = TokenCookies::with_cookies(
                AccessCookie::new(&rp.at).secure(false),
                AccessCookie::new(&rp.rt).secure(false),
            );
            let auth = JwtAuthLayer::new(verifier)
                .with_cookie(cookies.access().clone())
                .unwrap();
            let lifecycle = TokenLifecycle::for_layer(&auth, issuer, MemoryRefreshStore::new());
            let backchannel =
                BackChannelLogout::with_shared_store(op_tokens, auth.revocation_store())
                    .unwrap()
                    .end_local_sessions(lifecycle.clone());
            let app: Router = Router::new()
                .route("/", get(handler))
                .route("/page", get(handler))
                .route("/api", post(handler))
                .fallback(handler)
                .layer(auth)
                .layer(OidcLoginLayer::new(
                    client.clone(),
                    lifecycle.clone(),
                    cookies.clone(),
                ))
                .route_service(
                    "/callback",
                    OidcCallback::new(client.clone(), lifecycle.clone(), cookies.clone()),
                )
                .route_service("/logout", OidcLogout::new(client, lifecycle, cookies))
                .route_service("/backchannel-logout", backchannel);
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            rps.push(rp);
        }
        Self { op, rps }
    }
}

/// A browser's cookies for one site (paths ignored: every cookie goes everywhere).
#[derive(Default, Clone)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, res: &Resp) {
        for c in res.set_cookies() {
            let pair = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let gone = value.is_empty() || c.contains("Max-Age=0");
            if gone {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    async fn send(&mut self, method: Method, url: &str, extra: &[(&str, &str)]) -> Resp {
        let cookie = self.header();
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if !cookie.is_empty() {
            headers.push(("cookie", &cookie));
        }
        let res = Http::new().send_with(method, url, &headers, None).await;
        self.absorb(&res);
        res
    }
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The login-state cookie's payload (signed, not encrypted).
fn state_payload(value: &str) -> serde_json::Value {
    let payload = value.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A login-state cookie signed with the test's secret, as the service signs them.
fn forge_state(payload: &serde_json::Value) -> String {
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&STATE_SECRET).unwrap();
    mac.update(b"tower-token-auth oidc login-state v1\0");
    mac.update(payload.as_bytes());
    format!(
        "{payload}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A JWT's claims, unverified.
fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Starts a login at `rp` for `path`: the 302 to the provider.
async fn start_login(rp: &Rp, jar: &mut Jar, path: &str) -> String {
    let res = jar.send(Method::GET, &rp.url(path), &[]).await;
    assert_eq!(res.status, StatusCode::FOUND, "{path}: {res:?}");
    res.header("location").to_owned()
}

/// Starts a login at `rp` for `path` and follows it through the provider: the callback URL
/// (not yet visited).
async fn login_at_op(rp: &Rp, jar: &mut Jar, op: &mut OpSession<'_>, path: &str) -> String {
    let location = start_login(rp, jar, path).await;
    op.follow_login(&location, &rp.url("/callback"), "alice")
        .await
}

/// A whole login: the page `path` answers 200 afterwards.
async fn full_login(rp: &Rp, jar: &mut Jar, op: &mut OpSession<'_>, path: &str) {
    let callback = login_at_op(rp, jar, op, path).await;
    let res = jar.send(Method::GET, &callback, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "callback: {res:?}");
    assert_eq!(res.header("location"), path);
    let page = jar.send(Method::GET, &rp.url(path), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert_eq!(&page.body[..], b"hello alice");
}

fn sets_session(res: &Resp, rp: &Rp) -> bool {
    res.set_cookies().iter().any(|c| {
        (c.starts_with(&format!("{}=", rp.at)) || c.starts_with(&format!("{}=", rp.rt)))
            && !c.contains("Max-Age=0")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_requests_go_to_the_provider_and_api_calls_get_401() {
    let stack = Stack::start(Duration::from_secs(600)).await;
    let rp = &stack.rps[0];
    let mut jar = Jar::default();
    let location = start_login(rp, &mut jar, "/page?x=1&y=two%20words").await;
    assert!(location.starts_with(&stack.op.url("/auth?")), "{location}");
    let q = query_of(&location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], rp.client_id);
    assert_eq!(q["redirect_uri"], rp.url("/callback"));
    assert_eq!(q["scope"], "openid");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22);
    let state = jar.get(&rp.state).expect("login-state cookie").to_owned();
    let payload = state_payload(&state);
    assert_eq!(payload["s"], q["state"]);
    assert_eq!(payload["n"], q["nonce"]);
    assert_eq!(payload["r"], "/page?x=1&y=two%20words");
    // The challenge is the S256 of the verifier kept in the cookie (RFC 7636 §4.2).
    assert_eq!(
        tower_token_auth::sso::code::s256_challenge(payload["v"].as_str().unwrap()),
        q["code_challenge"]
    );

    // Off-site return paths become `/`.
    for path in ["//evil.example/x", "//evil"] {
        let mut jar = Jar::default();
        start_login(rp, &mut jar, path).await;
        assert_eq!(
            state_payload(jar.get(&rp.state).unwrap())["r"],
            "/",
            "{path}"
        );
    }

    // An API call and a POST keep their RFC 6750 401.
    let http = Http::new();
    let api = http
        .send_with(
            Method::GET,
            &rp.url("/page"),
            &[("authorization", "Bearer junk")],
            None,
        )
        .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert!(api.www_authenticate().starts_with("Bearer"), "{api:?}");
    assert!(api.www_authenticate().contains("invalid_token"), "{api:?}");
    assert!(api.headers.get("location").is_none());
    let post = http
        .send_with(Method::POST, &rp.url("/api"), &[], None)
        .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert!(post.www_authenticate().starts_with("Bearer"), "{post:?}");
    assert!(post.headers.get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_login_returns_to_the_page() {
    let started = Instant::now();
    let stack = Stack::start(Duration::from_secs(600)).await;
    let rp = &stack.rps[0];
    let mut op = OpSession::new(&stack.op);
    let mut jar = Jar::default();
    full_login(rp, &mut jar, &mut op, "/page?x=1&y=two%20words").await;
    // The session's cookies: HttpOnly, SameSite=Lax; the login-state cookie is cleared.
    assert!(jar.get(&rp.state).is_none());
    assert!(jar.get(&rp.at).is_some() && jar.get(&rp.rt).is_some());

    // A second login from another browser, SSO at the provider, for an off-site path: `/`.
    let mut jar2 = Jar::default();
    let callback = login_at_op(rp, &mut jar2, &mut op, "//evil.example/x").await;
    let res = jar2.send(Method::GET, &callback, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), "/");
    let set = res.set_cookie(&rp.at);
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    // Both local sessions live in the family named by the provider's session (`sid`):
    // local_session_id(iss, sid), the same for both logins of this provider session.
    jar2.absorb(&res);
    let sid = |jar: &Jar| jwt_claims(jar.get(&rp.at).unwrap())["sid"].clone();
    assert_eq!(sid(&jar).as_str().map(str::len), Some(22));
    assert_eq!(sid(&jar), sid(&jar2));
    eprintln!("full login: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_attacks_are_refused() {
    let stack = Stack::start(Duration::from_secs(600)).await;
    let rp = &stack.rps[0];
    let mut op = OpSession::new(&stack.op);

    // State mismatch.
    let mut jar = Jar::default();
    let callback = login_at_op(rp, &mut jar, &mut op, "/page").await;
    let mut q = query_of(&callback);
    let wrong = format!("{}?code={}&state=other", rp.url("/callback"), q["code"]);
    let res = jar.clone().send(Method::GET, &wrong, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "state mismatch");
    assert!(!sets_session(&res, rp));

    // No login-state cookie.
    let res = Jar::default().send(Method::GET, &callback, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "no cookie");
    assert!(!sets_session(&res, rp));

    // Tampered cookie: the return path changed, the MAC kept.
    let original = jar.get(&rp.state).unwrap().to_owned();
    let mut payload = state_payload(&original);
    payload["r"] = "/admin".into();
    let tag = original.split('.').nth(1).unwrap();
    let tampered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload.to_string()));
    let mut evil = jar.clone();
    evil.0.insert(rp.state.clone(), tampered);
    let res = evil.send(Method::GET, &callback, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "tampered cookie");
    assert!(!sets_session(&res, rp));

    // The real callback works once; replayed (the code is single use), it is refused.
    let mut replay = jar.clone();
    let res = jar.send(Method::GET, &callback, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    assert!(sets_session(&res, rp));
    let res = replay.send(Method::GET, &callback, &[]).await;
    assert_eq!(
        res.status,
        StatusCode::BAD_REQUEST,
        "replayed code: {res:?}"
    );
    assert!(!sets_session(&res, rp));

    // A second login's cookie with the first login's code: the provider refuses the code
    // (PKCE: the verifier is the second login's).
    let mut first = Jar::default();
    let first_callback = login_at_op(rp, &mut first, &mut op, "/page").await;
    let first_state = state_payload(first.get(&rp.state).unwrap());
    let mut second = Jar::default();
    start_login(rp, &mut second, "/page").await;
    let second_state = state_payload(second.get(&rp.state).unwrap());
    q = query_of(&first_callback);
    let mixed = format!(
        "{}?code={}&state={}",
        rp.url("/callback"),
        q["code"],
        second_state["s"].as_str().unwrap()
    );
    let res = second.clone().send(Method::GET, &mixed, &[]).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "mixed logins: {res:?}");
    assert!(!sets_session(&res, rp));

    // The first login's state and verifier with the second login's nonce (a cookie signed
    // with the service's secret): the code is exchanged, the ID token's nonce is refused.
    let mut forged = first_state.clone();
    forged["n"] = second_state["n"].clone();
    let mut jar = Jar::default();
    jar.0.insert(rp.state.clone(), forge_state(&forged));
    let res = jar.send(Method::GET, &first_callback, &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "wrong nonce: {res:?}");
    assert!(!sets_session(&res, rp));

    // `?error=` from the provider: a page, no redirect.
    let res = Jar::default()
        .send(
            Method::GET,
            &rp.url("/callback?error=access_denied&state=x"),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(res.headers.get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_refresh_and_reuse_detection() {
    let stack = Stack::start(Duration::from_secs(2)).await;
    let rp = &stack.rps[0];
    let mut op = OpSession::new(&stack.op);
    let mut jar = Jar::default();
    full_login(rp, &mut jar, &mut op, "/page").await;
    let before = authorization_requests(&stack.op.log());
    let old = jar.clone();
    tokio::time::sleep(Duration::from_millis(3100)).await;

    // Expired access token, refresh cookie: 303 to the same page with new cookies.
    let res = jar.send(Method::GET, &rp.url("/page?k=v"), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    assert_eq!(res.header("location"), "/page?k=v");
    assert_ne!(jar.get(&rp.rt), old.get(&rp.rt));
    let page = jar.send(Method::GET, &rp.url("/page?k=v"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        authorization_requests(&stack.op.log()),
        before,
        "no new authorization at the provider"
    );
    let new_at = jar.get(&rp.at).unwrap().to_owned();
    let bearer = format!("Bearer {new_at}");
    let http = Http::new();
    let ok = http
        .send_with(
            Method::GET,
            &rp.url("/page"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    // The old refresh token again: reuse, the family is revoked.
    let res = old.clone().send(Method::GET, &rp.url("/page"), &[]).await;
    assert_eq!(res.status, StatusCode::FOUND, "reuse falls back to a login");
    assert!(res.header("location").starts_with(&stack.op.url("/auth?")));
    assert!(!sets_session(&res, rp));
    let refused = http
        .send_with(
            Method::GET,
            &rp.url("/page"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "the session's access token is revoked"
    );
    // The current refresh cookie no longer refreshes either.
    let mut only_refresh = Jar::default();
    only_refresh
        .0
        .insert(rp.rt.clone(), jar.get(&rp.rt).unwrap().to_owned());
    let res = only_refresh.send(Method::GET, &rp.url("/page"), &[]).await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert!(!sets_session(&res, rp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout() {
    let stack = Stack::start(Duration::from_secs(600)).await;
    let rp = &stack.rps[0];
    let mut op = OpSession::new(&stack.op);
    let mut jar = Jar::default();
    full_login(rp, &mut jar, &mut op, "/page").await;
    let at = jar.get(&rp.at).unwrap().to_owned();
    let rt = jar.get(&rp.rt).unwrap().to_owned();

    // Cross-site: refused, nothing ends.
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let res = jar
            .clone()
            .send(Method::POST, &rp.url("/logout"), &headers)
            .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    let res = jar.clone().send(Method::GET, &rp.url("/logout"), &[]).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        jar.send(Method::GET, &rp.url("/page"), &[]).await.status,
        StatusCode::OK
    );

    let origin = rp.base.clone();
    let res = jar
        .send(
            Method::POST,
            &rp.url("/logout"),
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    let location = res.header("location");
    assert!(
        location.starts_with(&stack.op.url("/session/end?")),
        "{location}"
    );
    let q = query_of(location);
    assert_eq!(q["client_id"], rp.client_id);
    assert_eq!(q["post_logout_redirect_uri"], rp.url("/"));
    assert!(
        jar.get(&rp.at).is_none() && jar.get(&rp.rt).is_none(),
        "cookies cleared"
    );
    // The provider accepts the request (its logout confirmation page).
    let page = Http::new().send(Method::GET, location, None, None).await;
    assert_eq!(page.status, StatusCode::OK, "end-session page: {page:?}");

    let bearer = format!("Bearer {at}");
    let refused = Http::new()
        .send_with(
            Method::GET,
            &rp.url("/page"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let mut stale = Jar::default();
    stale.0.insert(rp.rt.clone(), rt);
    let res = stale.send(Method::GET, &rp.url("/page"), &[]).await;
    assert_eq!(
        res.status,
        StatusCode::FOUND,
        "the refresh token no longer refreshes"
    );
    assert!(!sets_session(&res, rp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_ends_the_sessions_at_both_services() {
    let started = Instant::now();
    let stack = Stack::start(Duration::from_secs(600)).await;
    let mut op = OpSession::new(&stack.op);
    let mut jars = vec![Jar::default(), Jar::default()];
    for (rp, jar) in stack.rps.iter().zip(&mut jars) {
        full_login(rp, jar, &mut op, "/page").await;
    }
    let saved: Vec<(String, String)> = stack
        .rps
        .iter()
        .zip(&jars)
        .map(|(rp, jar)| {
            (
                jar.get(&rp.at).unwrap().to_owned(),
                jar.get(&rp.rt).unwrap().to_owned(),
            )
        })
        .collect();

    op.logout(&stack.rps[0].client_id).await;
    let log = stack.op.log();
    for rp in &stack.rps {
        assert!(
            log.contains(&format!("backchannel.success {}", rp.client_id)),
            "the provider delivered to {}: {log}",
            rp.client_id
        );
    }
    for (rp, (at, rt)) in stack.rps.iter().zip(saved) {
        let bearer = format!("Bearer {at}");
        let res = Http::new()
            .send_with(
                Method::GET,
                &rp.url("/page"),
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "{}: access token",
            rp.client_id
        );
        let mut stale = Jar::default();
        stale.0.insert(rp.rt.clone(), rt);
        let res = stale.send(Method::GET, &rp.url("/page"), &[]).await;
        assert_eq!(
            res.status,
            StatusCode::FOUND,
            "{}: refresh token",
            rp.client_id
        );
        assert!(!sets_session(&res, rp));
    }
    eprintln!(
        "back-channel logout at two services: {:?}",
        started.elapsed()
    );
}
