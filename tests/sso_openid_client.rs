//! The `sso_auth` example as an OpenID Provider, judged by a certified relying party: node
//! `openid-client` (v6) discovers it, builds the authorization request (PKCE S256, state,
//! nonce), exchanges the code and validates the ID token with its own checks, refreshes, and
//! builds the RP-initiated logout URL; `jose` verifies the access and ID tokens through the
//! discovered `jwks_uri`. The user signs in through the login form with this test's browser
//! (a cookie jar); the relying party's back-channel logout endpoint is a listener here.
//!
//! Needs redis-server and node (tests/oidc, `npm ci` on first use), and the example binaries
//! (`cargo build --all-features --examples`).

#[path = "support/oidc_provider.rs"]
mod oidc_provider;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/sso.rs"]
mod sso;
mod support;

use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Form, Router};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use oidc_provider::run_helper;
use sso::{ADMIN_TOKEN, Browser, Options, Stack, form_fields, jwt_claims, query_param, sign_in};

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Runs one op of tests/oidc/openid_client.mjs, off the async threads.
async fn rp(input: Value) -> Value {
    let op = input["op"].clone();
    tokio::task::spawn_blocking(move || run_helper("openid_client.mjs", &input))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("openid-client {op}: {e}"))
}

/// A back-channel logout endpoint: every `logout_token` POSTed to it.
async fn backchannel_receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/backchannel",
        post(
            move |Form(form): Form<std::collections::HashMap<String, String>>| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(form.get("logout_token").cloned().unwrap_or_default());
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// Signs `user` in through the login page `url` leads to; returns the callback URL the
/// browser is sent to (not followed: the relying party is node, not a server).
async fn log_in(browser: &mut Browser, auth: &str, url: &str, user: &str, cb: &str) -> String {
    let login = browser.open(url).await;
    assert_eq!(login.status(), StatusCode::OK, "{login:#?}");
    let mut fields = form_fields(&login.body());
    assert_eq!(fields["client_id"], "rp");
    fields.insert("username".into(), user.into());
    fields.insert("password".into(), format!("{user}-password"));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let same_origin = [("origin", auth), ("sec-fetch-site", "same-origin")];
    let url = format!("{auth}/login");
    let res = browser
        .fetch(Method::POST, &url, Some(&form), &same_origin)
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    let callback = res.header("location").to_owned();
    assert!(callback.starts_with(&format!("{cb}?code=")), "{callback}");
    callback
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_refreshes_and_logs_out() {
    let started = Instant::now();
    let (backchannel, mut logout_tokens) = backchannel_receiver().await;
    let rp_port = support::free_port();
    let redirect_uri = format!("http://127.0.0.1:{rp_port}/cb");
    let post_logout = format!("http://127.0.0.1:{rp_port}/signed-out");
    let stack = Stack::start(Options {
        extra_clients: Some(format!(
            "rp={redirect_uri};backchannel_logout_uri={backchannel};post_logout_redirect_uri={post_logout}"
        )),
        ..Options::default()
    })
    .await;
    let auth = stack.auth_url.clone();

    // Discovery: the issuer is exactly PUBLIC_URL.
    let doc = stack
        .http
        .send(
            Method::GET,
            &format!("{auth}/.well-known/openid-configuration"),
            None,
            None,
        )
        .await
        .json();
    assert_eq!(doc["issuer"], auth.as_str());
    assert_eq!(doc["end_session_endpoint"], format!("{auth}/logout"));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));

    // openid-client builds the authorization request.
    let start = rp(json!({
        "op": "authorize", "issuer": auth, "client_id": "rp",
        "redirect_uri": redirect_uri, "scope": "openid offline_access",
    }))
    .await;
    let url = start["url"].as_str().unwrap();
    assert_eq!(
        query_param(url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(url, "nonce").as_deref(),
        start["nonce"].as_str()
    );

    // The user signs in through the login form; the browser is sent to the RP's callback.
    let mut browser = Browser::new();
    let callback = log_in(&mut browser, &auth, url, "alice", &redirect_uri).await;
    let sso_cookie = browser.cookie(&auth, "sso_session").unwrap();
    let sid = sso_cookie.split_once('.').unwrap().0.to_owned();

    // openid-client exchanges the code and validates the ID token; jose verifies both tokens.
    let tokens = rp(json!({
        "op": "callback", "issuer": auth, "client_id": "rp", "callback_url": callback,
        "code_verifier": start["code_verifier"], "state": start["state"],
        "nonce": start["nonce"], "post_logout_redirect_uri": post_logout,
    }))
    .await;
    let id = &tokens["id_claims"];
    assert_eq!(id["iss"], auth.as_str());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], "rp");
    assert_eq!(id["azp"], "rp");
    assert_eq!(id["nonce"], start["nonce"]);
    assert_eq!(id["sid"], sid.as_str());
    assert!(id["auth_time"].as_u64().unwrap() <= id["iat"].as_u64().unwrap());
    assert!(id["exp"].as_u64().unwrap() > id["iat"].as_u64().unwrap());
    assert_eq!(tokens["at_hash_ok"], true, "{tokens:#}");
    assert_eq!(tokens["id_verified"]["sub"], "alice");
    let access = &tokens["access_claims"];
    assert_eq!(
        (&access["iss"], &access["aud"], &access["sub"]),
        (&json!(auth), &json!("rp"), &json!("alice"))
    );
    assert_eq!(access["scope"], "orders members");
    assert_eq!(tokens["access_header"]["typ"], "at+jwt");
    assert_eq!(tokens["token_type"], "bearer");
    let first_refresh = tokens["refresh_token"].as_str().expect("a refresh token");

    // Refresh: a new pair; the spent refresh token is refused, and its reuse kills the
    // family, so the refresh token just issued is refused too (RFC 9700 §4.14.2).
    let refresh = |token: &str| {
        rp(json!({ "op": "refresh", "issuer": auth, "client_id": "rp",
            "refresh_token": token, "audience": "rp" }))
    };
    let renewed = refresh(first_refresh).await;
    assert_eq!(renewed["access_claims"]["sub"], "alice", "{renewed:#}");
    assert_eq!(renewed["has_id_token"], false);
    let second_refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    let renewed = refresh(&second_refresh).await;
    let third_refresh = renewed["refresh_token"].as_str().unwrap().to_owned();
    // Another client cannot use it.
    let stolen = rp(
        json!({ "op": "refresh", "issuer": auth, "client_id": "orders",
        "refresh_token": third_refresh, "audience": "orders" }),
    )
    .await;
    assert_eq!(stolen["error"], "invalid_grant", "{stolen:#}");
    let reused = refresh(&second_refresh).await;
    assert_eq!(reused["error"], "invalid_grant", "{reused:#}");
    let after_reuse = refresh(&third_refresh).await;
    assert_eq!(after_reuse["error"], "invalid_grant", "{after_reuse:#}");

    // The same SSO session at orders (no password), and a fresh refresh family for the RP.
    let orders = browser.open(&format!("{}/me", stack.orders_url)).await;
    assert_eq!(orders.status(), StatusCode::OK, "{orders:#?}");
    let orders_token = browser.cookie(&stack.orders_url, "orders_session").unwrap();
    let again = rp(json!({
        "op": "authorize", "issuer": auth, "client_id": "rp",
        "redirect_uri": redirect_uri, "scope": "openid offline_access",
    }))
    .await;
    let res = browser
        .fetch(Method::GET, again["url"].as_str().unwrap(), None, &[])
        .await;
    assert_eq!(res.status, StatusCode::FOUND, "signed in already: {res:?}");
    let tokens = rp(json!({
        "op": "callback", "issuer": auth, "client_id": "rp",
        "callback_url": res.header("location"), "code_verifier": again["code_verifier"],
        "state": again["state"], "nonce": again["nonce"], "post_logout_redirect_uri": post_logout,
    }))
    .await;
    assert_eq!(tokens["id_claims"]["sid"], sid.as_str());
    let live_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // RP-initiated logout with openid-client's end-session URL: the session ends everywhere,
    // the browser goes to the registered post-logout URI with the state.
    let end_session_url = tokens["end_session_url"].as_str().unwrap();
    assert!(
        end_session_url.starts_with(&format!("{auth}/logout?")),
        "{end_session_url}"
    );
    let res = browser.fetch(Method::GET, end_session_url, None, &[]).await;
    assert!(res.status.is_redirection(), "{res:?}");
    assert_eq!(
        res.header("location"),
        format!("{post_logout}?state=signed-out-state")
    );
    let home = browser.open(&format!("{auth}/")).await;
    assert!(home.body().contains("Not signed in"), "{}", home.body());
    stack.until_refused("orders", &orders_token).await;
    let refused = refresh(&live_refresh).await;
    assert_eq!(refused["error"], "invalid_grant", "{refused:#}");

    // Back-channel logout: the RP (and only it: orders registered no endpoint) is told.
    let logout_token = tokio::time::timeout(Duration::from_secs(5), logout_tokens.recv())
        .await
        .expect("no back-channel logout within 5 s")
        .unwrap();
    let verified = rp(
        json!({ "op": "verify", "issuer": auth, "token": logout_token,
        "audience": "rp", "typ": "logout+jwt" }),
    )
    .await;
    let claims = &verified["payload"];
    assert_eq!(
        (&claims["sub"], &claims["sid"]),
        (&json!("alice"), &json!(sid))
    );
    assert!(claims["events"][BACKCHANNEL_EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none());
    assert_eq!(jwt_claims(&logout_token)["aud"], "rp");

    // Without an id_token_hint the user is asked first; an unregistered post-logout URI is
    // never redirected to.
    let mut bob = Browser::new();
    sign_in(&mut bob, &stack, "orders", "bob").await;
    let evil = "https://evil.example/";
    let url = format!(
        "{auth}/logout?client_id=rp&post_logout_redirect_uri={}&state=x",
        form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
    );
    let ask = bob.fetch(Method::GET, &url, None, &[]).await;
    assert_eq!(ask.status, StatusCode::OK);
    let body = String::from_utf8_lossy(&ask.body).into_owned();
    assert!(body.contains(r#"action="/logout""#), "{body}");
    let home = bob.open(&format!("{auth}/")).await;
    assert!(home.body().contains("Signed in as"), "not signed out yet");
    let fields = form_fields(&body);
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = bob.submit(&format!("{auth}/logout"), &form).await;
    assert_eq!(out.status(), StatusCode::OK, "{out:#?}");
    assert!(out.body().contains("signed out of every service"));
    assert!(out.hops.iter().all(|h| !h.url.contains("evil.example")));

    // After a key rotation the ID tokens are EdDSA (at_hash with SHA-512): accepted too.
    let rotation = stack.admin("rotate-key", ADMIN_TOKEN, None).await.json();
    let signs_from = rotation["signs_from"].as_u64().unwrap();
    while support::now_secs() < signs_from {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = rp(json!({
        "op": "authorize", "issuer": auth, "client_id": "rp",
        "redirect_uri": redirect_uri, "scope": "openid",
    }))
    .await;
    let url = start["url"].as_str().unwrap();
    let callback = log_in(&mut Browser::new(), &auth, url, "alice", &redirect_uri).await;
    let tokens = rp(json!({
        "op": "callback", "issuer": auth, "client_id": "rp", "callback_url": callback,
        "code_verifier": start["code_verifier"], "state": start["state"],
        "nonce": start["nonce"], "post_logout_redirect_uri": post_logout,
    }))
    .await;
    assert_eq!(tokens["id_header"]["alg"], "EdDSA", "{tokens:#}");
    assert_eq!(tokens["id_header"]["kid"], rotation["kid"]);
    assert_eq!(tokens["at_hash_ok"], true);
    assert!(
        tokens.get("refresh_token").is_none_or(Value::is_null),
        "no offline_access"
    );
    eprintln!(
        "openid-client accepted the provider; {:?} in all",
        started.elapsed()
    );
}
