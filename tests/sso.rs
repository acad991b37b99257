//! Single sign-on end to end: a real Redis, the `sso_auth` server and the `sso_service` binary
//! run twice (`orders`, `members`), driven over HTTP by a browser with a cookie jar that
//! follows redirects by hand. Everything on 127.0.0.1; every process is killed on drop.
//!
//! Needs redis-server (`scripts/test.sh` installs it). The example binaries come from
//! `cargo build --all-features --examples` (or a plain `cargo test --all-features`, which
//! builds them); `cargo test --test sso` alone does not rebuild them.

#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/sso.rs"]
mod sso;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use tower_token_auth::sso::local_session_id;

use sso::{
    ADMIN_TOKEN, Browser, Options, Stack, form_fields, jwt_claims, jwt_header, query_param,
    sign_in, with_param,
};
use support::now_secs;

/// The login page's fields, with a user name and password filled in.
fn login_form(
    fields: &BTreeMap<String, String>,
    user: &str,
    password: &str,
) -> Vec<(String, String)> {
    let mut f = fields.clone();
    f.insert("username".into(), user.into());
    f.insert("password".into(), password.into());
    f.into_iter().collect()
}

fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Sign in once at `orders`, use `members` without a password, sign out at `members`: both
/// services refuse the session's tokens at once, and the next visit asks for the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sign_in_for_every_service_and_one_sign_out() {
    let stack = Stack::start(Options::default()).await;
    let mut browser = Browser::new();
    let auth = stack.auth_url.clone();

    // Not signed in: orders sends the browser to the login page; `state` is the page asked for.
    let login = browser
        .open(&format!("{}/me?tab=recent", stack.orders_url))
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(
        login.url.starts_with(&format!("{auth}/authorize?")),
        "{}",
        login.url
    );
    assert_eq!(
        query_param(&login.url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let fields = form_fields(&login.body());
    assert_eq!(fields["client_id"], "orders");
    assert_eq!(fields["redirect_uri"], stack.callback("orders"));
    // `state` and `nonce` are random; the page asked for travels in the signed login-state
    // cookie, not through the provider.
    assert_eq!(fields["state"].len(), 22, "{fields:?}");
    assert!(!fields["nonce"].is_empty(), "{fields:?}");
    assert!(
        login.hops[0]
            .set_cookies
            .iter()
            .any(|c| c.starts_with("orders_login=") && c.contains("HttpOnly")),
        "{:?}",
        login.hops[0].set_cookies
    );
    // A wrong password: the login page again (401), no SSO cookie.
    let wrong = login_form(&fields, "alice", "not-her-password");
    let refused = browser
        .submit(&format!("{auth}/login"), &refs(&wrong))
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.body().contains("Wrong user name or password"));
    assert_eq!(browser.cookie(&auth, "sso_session"), None);
    // A user name with a newline is logged escaped: it cannot forge a line of the log.
    let forging = login_form(&fields, "mallory\nFORGED INFO sso_auth: admin", "x");
    let refused = browser
        .submit(&format!("{auth}/login"), &refs(&forging))
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let log = stack.auth.log();
    assert!(log.contains(r"mallory\nFORGED"), "logged escaped:\n{log}");
    assert!(
        !log.lines().any(|l| l.trim_start().starts_with("FORGED")),
        "a forged log line:\n{log}"
    );

    // The right one: back at orders, on the page first asked for.
    let right = login_form(&fields, "alice", "alice-password");
    let me = browser
        .submit(&format!("{auth}/login"), &refs(&right))
        .await;
    assert_eq!(me.status(), StatusCode::OK, "{me:#?}");
    assert_eq!(me.url, format!("{}/me?tab=recent", stack.orders_url));
    let claims = me.resp.json();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "orders");
    // The service's own session: its issuer, the scope the provider granted the user.
    assert_eq!(claims["iss"], stack.orders_url.as_str());
    assert_eq!(claims["scope"], "orders members");
    let sid = claims["sid"].as_str().expect("sid").to_owned();
    for name in ["sso_session", "orders_session", "orders_refresh"] {
        let set = me.set_cookie(name).expect("Set-Cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
    }
    let orders_token = browser
        .cookie(&stack.orders_url, "orders_session")
        .expect("orders cookie");
    let header = jwt_header(&orders_token);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    // The SSO cookie is `<sid>.<secret>`; the local session is named after the sid (hashed),
    // the secret is what counts.
    let sso_cookie = browser.cookie(&auth, "sso_session").expect("SSO cookie");
    let (cookie_sid, secret) = sso_cookie.split_once('.').expect("sid.secret");
    assert_eq!(
        (local_session_id(&auth, cookie_sid), secret.len()),
        (sid.clone(), 43)
    );
    browser.put_cookie(&auth, "sso_session", &format!("{sid}.{}", "A".repeat(43)));
    let home = browser.open(&format!("{auth}/")).await;
    assert!(home.body().contains("Not signed in"), "{}", home.body());
    browser.put_cookie(&auth, "sso_session", &sso_cookie);
    let home = browser.open(&format!("{auth}/")).await;
    assert!(
        home.body().contains("Signed in as <strong>alice</strong>"),
        "{}",
        home.body()
    );

    // Members: no password asked, the auth server sends the browser straight back.
    let members = browser.open(&format!("{}/me", stack.members_url)).await;
    assert_eq!(members.status(), StatusCode::OK, "{members:#?}");
    assert!(
        !members.saw_page_at(&auth),
        "a page was shown at the auth server: {members:#?}"
    );
    let statuses: Vec<u16> = members.hops.iter().map(|h| h.status.as_u16()).collect();
    assert_eq!(statuses, [302, 302, 303, 200], "{members:#?}");
    let m = members.resp.json();
    assert_eq!(
        (m["sub"].as_str(), m["aud"].as_str()),
        (Some("alice"), Some("members"))
    );
    assert_eq!(
        m["sid"].as_str(),
        Some(sid.as_str()),
        "one SSO session, one sid"
    );
    let members_token = browser
        .cookie(&stack.members_url, "members_session")
        .expect("members cookie");
    // Audience-bound: the orders token is no good at members, and the other way round.
    assert_eq!(
        stack.me_with("members", &orders_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        stack.me_with("orders", &members_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        stack.me_with("orders", &orders_token).await.status,
        StatusCode::OK
    );

    // The auth server knows which services this sign-in reached.
    let home = browser.open(&format!("{auth}/")).await;
    assert!(home.body().contains("members, orders"), "{}", home.body());

    // Sign out at members: its session ends, the browser goes to the provider, which asks.
    let out = browser
        .submit(&format!("{}/logout", stack.members_url), &[])
        .await;
    assert_eq!(out.status(), StatusCode::OK);
    assert!(
        out.url
            .starts_with(&format!("{auth}/logout?client_id=members")),
        "{out:#?}"
    );
    assert!(out.body().contains("Sign out of every service?"));
    stack.until_refused("members", &members_token).await;
    let confirm: Vec<(String, String)> = form_fields(&out.body()).into_iter().collect();
    let out = browser
        .submit(&format!("{auth}/logout"), &refs(&confirm))
        .await;
    assert_eq!(out.status(), StatusCode::OK);
    assert!(
        out.body().contains("signed out of every service"),
        "{}",
        out.body()
    );
    let started = Instant::now();
    let at_orders = stack.until_refused("orders", &orders_token).await;
    let at_members = stack.until_refused("members", &members_token).await;
    eprintln!(
        "after sign-out: (requests until refused, time) orders {at_orders:?}, members {at_members:?}; {:?} in all",
        started.elapsed()
    );

    // The browser still holds its orders cookies: the session is refused, its refresh too
    // (the back-channel logout ended it), the browser is sent to the auth server, and this
    // time the password is asked again (the SSO session is gone).
    assert!(
        browser
            .cookie(&stack.orders_url, "orders_session")
            .is_some()
    );
    let again = browser.open(&format!("{}/me", stack.orders_url)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(
        again.url.starts_with(&format!("{auth}/authorize?")),
        "{}",
        again.url
    );
    assert!(again.body().contains(r#"name="password""#));
    assert_eq!(again.hops[0].status, StatusCode::FOUND);
    assert!(
        again.hops[0]
            .set_cookies
            .iter()
            .any(|c| c.starts_with("orders_session=;")),
        "the stale token cookie is cleared: {:?}",
        again.hops[0].set_cookies
    );
    // The provider cleared the SSO cookie; put back, it names a session that is gone.
    assert_eq!(browser.cookie(&auth, "sso_session"), None);
    browser.put_cookie(&auth, "sso_session", &sso_cookie);
    let home = browser.open(&format!("{auth}/")).await;
    assert!(home.body().contains("Not signed in"), "{}", home.body());
}

/// An admin changes a user's permissions: every service refuses the user's current tokens at
/// once; the SSO session gets new tokens with the new scope, without a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_change_reaches_every_service_at_once() {
    let stack = Stack::start(Options::default()).await;
    let mut alice = Browser::new();
    sign_in(&mut alice, &stack, "orders", "alice").await;
    let members = alice.open(&format!("{}/me", stack.members_url)).await;
    assert_eq!(members.status(), StatusCode::OK);
    let orders_token = alice.cookie(&stack.orders_url, "orders_session").unwrap();
    let members_token = alice.cookie(&stack.members_url, "members_session").unwrap();
    let mut bob = Browser::new();
    sign_in(&mut bob, &stack, "orders", "bob").await;
    let bob_token = bob.cookie(&stack.orders_url, "orders_session").unwrap();

    // Only with the admin token.
    let change = json!({ "user": "alice", "scope": "orders" });
    for token in ["", "wrong", &orders_token] {
        let res = stack.admin("permissions", token, Some(&change)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{res:?}");
    }
    assert_eq!(
        stack.me_with("orders", &orders_token).await.status,
        StatusCode::OK
    );

    let res = stack.admin("permissions", ADMIN_TOKEN, Some(&change)).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let revoked_before = res.json()["revoked_issued_before"].as_u64().unwrap();
    let at_orders = stack.until_refused("orders", &orders_token).await;
    let at_members = stack.until_refused("members", &members_token).await;
    eprintln!(
        "after the permission change: (requests until refused, time) orders {at_orders:?}, members {at_members:?}"
    );
    // Bob's tokens are not affected.
    assert_eq!(
        stack.me_with("orders", &bob_token).await.status,
        StatusCode::OK
    );

    // Alice's browser: sent to the auth server and back, no password, the new scope.
    let me = alice.open(&format!("{}/me", stack.orders_url)).await;
    assert_eq!(me.status(), StatusCode::OK, "{me:#?}");
    assert!(!me.saw_page_at(&stack.auth_url), "{me:#?}");
    let claims = me.resp.json();
    assert_eq!(claims["scope"], "orders");
    assert!(claims["iat"].as_u64().unwrap() > revoked_before);
    // At members the new token lacks the `members` scope: 403.
    let members = alice.open(&format!("{}/me", stack.members_url)).await;
    assert_eq!(members.status(), StatusCode::FORBIDDEN, "{members:#?}");
    assert!(
        members
            .resp
            .www_authenticate()
            .contains("insufficient_scope")
    );
    let token = alice.cookie(&stack.members_url, "members_session").unwrap();
    assert_eq!(jwt_claims(&token)["scope"], "orders");

    // Unknown users and malformed scopes are refused.
    let res = stack
        .admin(
            "permissions",
            ADMIN_TOKEN,
            Some(&json!({ "user": "mallory", "scope": "orders" })),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = stack
        .admin(
            "permissions",
            ADMIN_TOKEN,
            Some(&json!({ "user": "bob", "scope": "a\"b" })),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
}

/// Whether the shared revocation store refuses the provider's access token `token`.
async fn revoked_in_store(stack: &Stack, token: &str) -> bool {
    use tower_token_auth::revocation::{
        RedisRevocationStore, RedisStoreConfig, RevocationCheck, RevocationStatus, RevocationStore,
        TokenRef,
    };
    let store = RedisRevocationStore::connect(&stack.redis.url(), RedisStoreConfig::default())
        .await
        .unwrap();
    let c = jwt_claims(token);
    let probe = TokenRef::new()
        .jti(c["jti"].as_str())
        .sub(c["sub"].as_str())
        .sid(c["sid"].as_str())
        .iat(c["iat"].as_u64())
        .exp(c["exp"].as_u64());
    let status = match store.check(&probe) {
        RevocationCheck::Ready(status) => status,
        RevocationCheck::Pending(check) => check.await,
    };
    status.unwrap() == RevocationStatus::Revoked
}

/// A code for `client` from `browser`'s SSO session, exchanged as that client: the provider's
/// token response.
async fn provider_tokens(stack: &Stack, browser: &mut Browser, client: &str) -> serde_json::Value {
    let (verifier, challenge) = pkce_pair();
    let redirect_uri = stack.callback(client);
    let url = authorize_url(
        stack,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", &redirect_uri),
            ("scope", "openid"),
            ("nonce", "n"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let res = browser.fetch(Method::GET, &url, None, &[]).await;
    assert_eq!(res.status, StatusCode::FOUND, "{res:?}");
    let code = query_param(res.header("location"), "code").expect("a code");
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("client_id", client)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("code_verifier", &verifier)
        .finish();
    let res = stack
        .http
        .send_raw(
            Method::POST,
            &format!("{}/token", stack.auth_url),
            "application/x-www-form-urlencoded",
            &form,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    res.json()
}

fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

fn authorize_url(stack: &Stack, params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("{}/authorize?{}", stack.auth_url, s.finish())
}

/// Client allowlist, exact redirect URIs, local `state` only, single-use codes bound to their
/// client, redirect URI and PKCE verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_and_token_refuse_what_they_must() {
    let stack = Stack::start(Options::default()).await;
    let mut browser = Browser::new();
    // Signed in: refusals below are not just "show the login page".
    sign_in(&mut browser, &stack, "orders", "alice").await;
    let (_, challenge) = pkce_pair();
    let orders_cb = stack.callback("orders");
    let members_cb = stack.callback("members");
    let authorize = |client: &str, redirect_uri: Option<&str>, challenge: &str| {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", client),
            ("state", "/"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(r) = redirect_uri {
            p.push(("redirect_uri", r));
        }
        authorize_url(&stack, &p)
    };

    // Unknown client: a page, no redirect.
    for client in ["evil", "Orders", "orders ", ""] {
        let res = browser
            .fetch(
                Method::GET,
                &authorize(client, Some(&orders_cb), &challenge),
                None,
                &[],
            )
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "client {client:?}");
        assert_eq!(res.header("location"), "");
    }
    // A redirect URI that is not exactly the registered one: a page, no redirect, no code.
    let port = stack.orders_url.rsplit(':').next().unwrap().to_owned();
    let variants = [
        format!("{orders_cb}/"),
        format!("{orders_cb}x"),
        format!("{orders_cb}?next=1"),
        format!("{orders_cb}#frag"),
        format!("{orders_cb}/../callback"),
        format!("{orders_cb}%2F"),
        orders_cb.replace("/callback", "/Callback"),
        orders_cb.replace("/callback", "/call"),
        orders_cb.replace("/callback", "/"),
        stack.orders_url.clone(),
        orders_cb.replace("http://", "https://"),
        format!("http://localhost:{port}/callback"),
        format!("http://127.0.0.1.evil.example:{port}/callback"),
        format!("http://evil.example/{orders_cb}"),
        "https://evil.example/callback".into(),
        members_cb.clone(),
        format!(" {orders_cb}"),
        String::new(),
    ];
    for uri in variants.iter().map(|u| Some(u.as_str())).chain([None]) {
        let res = browser
            .fetch(
                Method::GET,
                &authorize("orders", uri, &challenge),
                None,
                &[],
            )
            .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "redirect_uri {uri:?}");
        assert_eq!(res.header("location"), "", "redirect_uri {uri:?}");
        assert!(!String::from_utf8_lossy(&res.body).contains("code="));
    }
    // The same checks guard the login form.
    let mut other = Browser::new();
    let form = [
        ("username", "alice"),
        ("password", "alice-password"),
        ("client_id", "orders"),
        ("redirect_uri", "https://evil.example/callback"),
        ("state", "/"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let res = other
        .fetch(
            Method::POST,
            &format!("{}/login", stack.auth_url),
            Some(&form),
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.header("location"), "");
    assert_eq!(other.cookie(&stack.auth_url, "sso_session"), None);
    // A login form posted from another site is refused (login CSRF).
    let mut form = form;
    form[3].1 = &orders_cb;
    let res = other
        .fetch(
            Method::POST,
            &format!("{}/login", stack.auth_url),
            Some(&form),
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(other.cookie(&stack.auth_url, "sso_session"), None);
    // Without PKCE: sent back to the (registered) client with an error, no code.
    let no_pkce = authorize_url(
        &stack,
        &[
            ("response_type", "code"),
            ("client_id", "orders"),
            ("redirect_uri", &orders_cb),
            ("state", "/x"),
        ],
    );
    let res = browser.fetch(Method::GET, &no_pkce, None, &[]).await;
    assert_eq!(res.status, StatusCode::FOUND);
    let location = res.header("location");
    assert!(location.starts_with(&format!("{orders_cb}?")), "{location}");
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(location, "code"), None);
    // The login page escapes what it echoes.
    let evil_state = r#""><script>alert(1)</script>"#;
    let url = with_param(
        &authorize("orders", Some(&orders_cb), &challenge),
        "state",
        evil_state,
    );
    let res = other.fetch(Method::GET, &url, None, &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let body = String::from_utf8_lossy(&res.body);
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&quot;&gt;&lt;script&gt;"), "{body}");
    assert_eq!(form_fields(&body)["state"], evil_state);

    // `state` is random and bound to the login-state cookie: a swapped one is refused, never
    // followed. The page the browser returns to is the one it asked for, a local path.
    for state in ["https://evil.example/", "//evil.example", "/me", "x"] {
        browser.forget(&stack.orders_url, "orders_session");
        browser.forget(&stack.orders_url, "orders_refresh");
        let start = browser
            .fetch(Method::GET, &format!("{}/me", stack.orders_url), None, &[])
            .await;
        assert_eq!(start.status, StatusCode::FOUND);
        let url = with_param(start.header("location"), "state", state);
        let res = browser.fetch(Method::GET, &url, None, &[]).await;
        assert_eq!(res.status, StatusCode::FOUND, "state {state:?}");
        let callback = res.header("location").to_owned();
        assert!(
            callback.starts_with(&format!("{orders_cb}?code=")),
            "{callback}"
        );
        let res = browser.fetch(Method::GET, &callback, None, &[]).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "state {state:?}: {res:?}"
        );
        assert_eq!(res.header("location"), "", "state {state:?}");
        assert_eq!(browser.cookie(&stack.orders_url, "orders_session"), None);
    }
    for path in ["/me?tab=1", "/?a=//evil.example&b=/d//e"] {
        browser.forget(&stack.orders_url, "orders_session");
        browser.forget(&stack.orders_url, "orders_refresh");
        let page = browser.open(&format!("{}{path}", stack.orders_url)).await;
        assert_eq!(page.status(), StatusCode::OK, "{page:#?}");
        assert_eq!(page.url, format!("{}{path}", stack.orders_url));
    }

    // Codes: acting as the orders client itself.
    let new_code = async |browser: &mut Browser, challenge: &str| -> String {
        let res = browser
            .fetch(
                Method::GET,
                &authorize("orders", Some(&orders_cb), challenge),
                None,
                &[],
            )
            .await;
        assert_eq!(res.status, StatusCode::FOUND, "{res:?}");
        query_param(res.header("location"), "code").expect("a code")
    };
    let exchange = async |code: &str, client: &str, redirect_uri: &str, verifier: &str| {
        stack
            .http
            .send_raw(
                Method::POST,
                &format!("{}/token", stack.auth_url),
                "application/x-www-form-urlencoded",
                &form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "authorization_code")
                    .append_pair("code", code)
                    .append_pair("client_id", client)
                    .append_pair("redirect_uri", redirect_uri)
                    .append_pair("code_verifier", verifier)
                    .finish(),
            )
            .await
    };
    let (verifier, challenge) = pkce_pair();
    let code = new_code(&mut browser, &challenge).await;
    let first = exchange(&code, "orders", &orders_cb, &verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(first.header("cache-control"), "no-store");
    let token = first.json()["access_token"].as_str().unwrap().to_owned();
    // The provider's access token is no session at the service (its own tokens only).
    assert_eq!(
        stack.me_with("orders", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(!revoked_in_store(&stack, &token).await);
    // Single use: the second exchange is refused, and the token of the first is revoked in
    // the shared store (the code may have been stolen, RFC 6749 §4.1.2).
    let second = exchange(&code, "orders", &orders_cb, &verifier).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST, "{second:?}");
    assert_eq!(second.json()["error"], "invalid_grant");
    let deadline = Instant::now() + sso::PROPAGATION;
    while !revoked_in_store(&stack, &token).await {
        assert!(Instant::now() < deadline, "the first token is not revoked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Bound to its client, redirect URI and verifier; a failed attempt burns it.
    let (verifier, challenge) = pkce_pair();
    let (other_verifier, _) = pkce_pair();
    let attempts: [(&str, &str, &str); 3] = [
        ("members", &members_cb, &verifier),
        ("orders", &format!("{orders_cb}/"), &verifier),
        ("orders", &orders_cb, &other_verifier),
    ];
    for (client, redirect_uri, v) in attempts {
        let code = new_code(&mut browser, &challenge).await;
        let res = exchange(&code, client, redirect_uri, v).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{client} {redirect_uri}: {res:?}"
        );
        assert_eq!(res.json()["error"], "invalid_grant");
        let res = exchange(&code, "orders", &orders_cb, &verifier).await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "a refused code stays spent"
        );
    }
    let res = exchange("made-up", "orders", &orders_cb, &verifier).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    let res = exchange("made-up", "evil", &orders_cb, &verifier).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["error"], "invalid_client");
}

/// Rotate the signing key on the auth server: the new key is published at once and signs
/// only once the services have fetched it (their periodic refresh; the unknown-`kid` refetch is
/// held off here, so it cannot save the day), so no sign-in is refused across the rotation:
/// the services verify ID tokens with the new key without a restart. The old key leaves the
/// JWK Set once no token it signed can be valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_without_restart() {
    let mut stack = Stack::start(Options {
        access_ttl_secs: 6,
        clock_skew_secs: 0,
        publish_ahead_secs: 3,
        jwks_refresh_secs: 1,
        jwks_min_refetch_ms: 60_000,
        ..Options::default()
    })
    .await;
    let mut alice = Browser::new();
    sign_in(&mut alice, &stack, "orders", "alice").await;
    let session = alice.cookie(&stack.orders_url, "orders_session").unwrap();
    let id_token = provider_tokens(&stack, &mut alice, "orders").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = jwt_header(&id_token)["kid"].as_str().unwrap().to_owned();
    assert_eq!(stack.published_kids().await, std::slice::from_ref(&old_kid));

    let res = stack.admin("rotate-key", "wrong", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = stack.admin("rotate-key", ADMIN_TOKEN, None).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let rotation = res.json();
    let new_kid = rotation["kid"].as_str().unwrap().to_owned();
    let signs_from = rotation["signs_from"].as_u64().unwrap();
    assert_eq!(rotation["previous_kid"].as_str(), Some(old_kid.as_str()));
    assert_ne!(new_kid, old_kid);
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(stack.published_kids().await, both);

    // Across the rotation, fresh sign-ins from the SSO session at both services: every one
    // straight through (no bounce back to the auth server), until both have signed in with an
    // ID token of the new key (the provider's tokens are watched directly, as a client).
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut fresh, mut after_new_key) = (0, BTreeMap::new());
    while after_new_key.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no sign-in with the new key after 15 s"
        );
        let tokens = provider_tokens(&stack, &mut alice, "members").await;
        let header = jwt_header(tokens["id_token"].as_str().unwrap());
        let new_key = header["kid"] == new_kid.as_str();
        if new_key {
            assert!(
                now_secs() >= signs_from,
                "the new key signed before its time"
            );
            assert_eq!(header["alg"], "EdDSA");
        } else {
            assert_eq!(header["kid"], old_kid.as_str());
        }
        for service in ["orders", "members"] {
            alice.forget(stack.service(service), &format!("{service}_session"));
            alice.forget(stack.service(service), &format!("{service}_refresh"));
            let me = alice.open(&format!("{}/me", stack.service(service))).await;
            let statuses: Vec<u16> = me.hops.iter().map(|h| h.status.as_u16()).collect();
            assert_eq!(statuses, [302, 302, 303, 200], "{service}: {me:#?}");
            fresh += 1;
            if new_key {
                after_new_key.insert(service, ());
            }
        }
        // The session started before the rotation is not affected.
        let res = stack.me_with("orders", &session).await;
        assert_eq!(res.status, StatusCode::OK, "{res:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("across the rotation: {fresh} fresh sign-ins, none refused");

    // A new sign-in, accepted by the running services.
    let mut bob = Browser::new();
    sign_in(&mut bob, &stack, "orders", "bob").await;
    assert!(stack.orders.try_exit().is_none() && stack.members.try_exit().is_none());

    // The old key is no longer published once what it signed has expired; sign-ins go on.
    let published_until = rotation["previous_published_until"].as_u64().unwrap();
    while now_secs() <= published_until + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stack.published_kids().await, std::slice::from_ref(&new_kid));
    let mut carol = Browser::new();
    sign_in(&mut carol, &stack, "members", "alice").await;
}
