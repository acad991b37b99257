//! Runs the real `remember_me` example binary and attacks what users copy from it over HTTP on
//! 127.0.0.1: open redirects through the post-login target, a planted remember-me cookie kept
//! across a login (cookie fixation), and user names that forge log lines.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use support::{ChildGuard, Http, Resp, free_port};

const SECRET: &str = "remember-me-example-test-secret-0123456789";
const FORM: &str = "application/x-www-form-urlencoded";
/// What a same-origin browser form sends; the example's CSRF layer refuses POSTs without it.
const SAME_ORIGIN: (&str, &str) = ("sec-fetch-site", "same-origin");

struct Example {
    // Dropped first: the guard kills the child.
    child: ChildGuard,
    base: String,
    http: Http,
}

impl Example {
    async fn start() -> Self {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let bind = addr.to_string();
        let mut child = ChildGuard::spawn_example(
            "remember_me",
            &[
                ("BIND", bind.as_str()),
                ("JWT_SECRET", SECRET),
                ("COOKIE_SECURE", "0"),
                ("REMEMBER_GRACE_SECS", "1"),
            ],
        );
        let http = Http::new();
        // Start-up hashes the demo passwords with Argon2.
        child
            .wait_ready(&http, addr, "/health", Duration::from_secs(20))
            .await;
        Self {
            child,
            base: format!("http://{addr}"),
            http,
        }
    }

    /// `POST /login` with `fields`, sending `cookie` (a `Cookie` header value) if any.
    async fn login(&self, fields: &[(&str, &str)], cookie: Option<&str>) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut headers = vec![SAME_ORIGIN];
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        self.http
            .send_with(
                Method::POST,
                &format!("{}/login", self.base),
                &headers,
                Some((FORM, body)),
            )
            .await
    }

    async fn get(&self, path_and_query: &str, cookie: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        self.http
            .send_with(
                Method::GET,
                &format!("{}{path_and_query}", self.base),
                &headers,
                None,
            )
            .await
    }

    /// The attacker's own remember-me cookie (bob's account), to plant in a victim's browser.
    async fn plant(&self) -> String {
        let fields = [
            ("username", "bob"),
            ("password", "bob-password"),
            ("remember", "on"),
        ];
        let res = self.login(&fields, None).await;
        set_cookie_pair(&res, "remember_me").expect("the attacker's remember-me cookie")
    }

    /// Waits until the example's log holds `needle`, and returns the log.
    async fn log_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.child.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The raw `Location` header (it may hold bytes `to_str` refuses, like a tab).
fn location(res: &Resp) -> String {
    let value = res.headers.get("location").expect("a Location header");
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// `name=value` of the `Set-Cookie` for `name`, if the response sets one.
fn set_cookie_pair(res: &Resp, name: &str) -> Option<String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// Targets that leave the site in some browser, or are not plain paths: every one must land
/// on `/`. Browsers drop tabs and newlines inside URLs (`/\t/evil.example` is
/// `//evil.example`) and read `\` as `/`.
const FOREIGN_TARGETS: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/\x0b/evil.example",
    "/\x00/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " /evil",
    "",
];

#[tokio::test]
async fn redirect_targets_off_the_site_are_refused() {
    let ex = Example::start().await;
    let mut access = None;
    for target in FOREIGN_TARGETS {
        let res = ex
            .login(
                &[
                    ("username", "alice"),
                    ("password", "alice-password"),
                    ("next", target),
                ],
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{target:?}: {res:?}");
        assert_eq!(location(&res), "/", "POST /login next={target:?}");
        access = set_cookie_pair(&res, "access_token");
    }
    // A logged-in browser sent on from GET /login?next=… (the target percent-encoded in the
    // query, as a link would carry it).
    let access = access.expect("an access cookie");
    for target in FOREIGN_TARGETS {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", target)
            .finish();
        let res = ex.get(&format!("/login?{query}"), Some(&access)).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{target:?}: {res:?}");
        assert_eq!(location(&res), "/", "GET /login?{query}");
    }
    // The literal form of the report: a TAB written as %09 in the link.
    let res = ex.get("/login?next=/%09/evil.example", Some(&access)).await;
    assert_eq!(location(&res), "/", "{res:?}");
    // Plain local paths still work.
    for target in ["/settings", "/settings?tab=devices", "/a/b%20c"] {
        let res = ex
            .login(
                &[
                    ("username", "alice"),
                    ("password", "alice-password"),
                    ("next", target),
                ],
                None,
            )
            .await;
        assert_eq!(location(&res), target, "{res:?}");
    }
}

/// The attacker logs in to their own account with "remember me" and plants that cookie in the
/// victim's browser. The victim's password login must drop it: otherwise, once the victim's
/// access token expires, the planted cookie logs the victim in as the attacker.
#[tokio::test]
async fn login_replaces_a_planted_remember_me_cookie() {
    let ex = Example::start().await;
    for remember in [false, true] {
        let planted = ex.plant().await;
        // The planted cookie works on its own (the attacker's account).
        let res = ex.get("/", Some(&planted)).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "planted cookie logs in: {res:?}"
        );
        let mut fields = vec![("username", "alice"), ("password", "alice-password")];
        if remember {
            fields.push(("remember", "on"));
        }
        // The planted cookie was just rotated; plant the fresh one.
        let planted = set_cookie_pair(&res, "remember_me").unwrap_or(planted);
        let res = ex.login(&fields, Some(&planted)).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
        let replaced = set_cookie_pair(&res, "remember_me")
            .unwrap_or_else(|| panic!("remember={remember}: the planted cookie is left: {res:?}"));
        assert_ne!(replaced, planted, "remember={remember}");
        if remember {
            // The victim's own remembered login.
            let res = ex.get("/", Some(&replaced)).await;
            let body = String::from_utf8_lossy(&res.body);
            assert!(body.contains("id=\"who\">alice<"), "{body}");
        } else {
            assert_eq!(replaced, "remember_me=", "deleted: {res:?}");
        }
        // The planted series is gone: it authenticates nobody any more.
        let res = ex.get("/", Some(&planted)).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "remember={remember}: {res:?}"
        );
        assert_eq!(location(&res), "/login");
    }
}

/// Confirming the password (a logged-in user, no "remember me" box) keeps the browser's own
/// remember-me cookie, and deletes a planted one.
#[tokio::test]
async fn password_confirmation_keeps_only_the_users_own_cookie() {
    let ex = Example::start().await;
    let remember = [
        ("username", "alice"),
        ("password", "alice-password"),
        ("remember", "on"),
    ];
    let res = ex.login(&remember, None).await;
    let access = set_cookie_pair(&res, "access_token").expect("an access cookie");
    let own = set_cookie_pair(&res, "remember_me").expect("a remember-me cookie");
    let confirm = [("username", "alice"), ("password", "alice-password")];

    let res = ex.login(&confirm, Some(&format!("{access}; {own}"))).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    assert_eq!(set_cookie_pair(&res, "remember_me"), None, "kept: {res:?}");
    // The login replaced (and revoked) the previous access token.
    let access = set_cookie_pair(&res, "access_token").expect("a new access cookie");
    let res = ex.get("/", Some(&own)).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "the own cookie still logs in: {res:?}"
    );

    let planted = ex.plant().await;
    let res = ex
        .login(&confirm, Some(&format!("{access}; {planted}")))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{res:?}");
    assert_eq!(
        set_cookie_pair(&res, "remember_me").as_deref(),
        Some("remember_me="),
        "the planted cookie is deleted: {res:?}"
    );
    let res = ex.get("/", Some(&planted)).await;
    assert_eq!(
        location(&res),
        "/login",
        "the planted series is gone: {res:?}"
    );
}

/// A user name with a newline is logged escaped, on one line: it cannot start a line of its
/// own that reads like a real log entry.
#[tokio::test]
async fn user_names_do_not_forge_log_lines() {
    let ex = Example::start().await;
    let forged = "FORGED INFO remember_me: logged in with the password username=\"alice\"";
    let username = format!("mallory\n{forged}\r\n{forged}");
    let res = ex
        .login(
            &[("username", username.as_str()), ("password", "wrong")],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let log = ex.log_with("login refused").await;
    assert!(
        !log.lines().any(|l| l.trim_start().starts_with("FORGED")),
        "a forged log line:\n{log}"
    );
    assert!(log.contains(r"mallory\nFORGED"), "escaped:\n{log}");
}
