//! Helpers for the single sign-on tests: the stack (Redis, the `sso_auth` server, the
//! `sso_service` binary as `orders` and `members`), a browser with a cookie jar that follows
//! redirects by hand, and JWT peeking. Everything on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode, Uri};
use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::support::{ChildGuard, Http, Resp, free_port};

/// The auth server's `ADMIN_TOKEN` in tests.
pub const ADMIN_TOKEN: &str = "sso-test-admin-token-0123456789";
/// How long a revocation may take to reach another service (pub/sub on loopback takes
/// milliseconds; the bound only keeps a failing test from hanging).
pub const PROPAGATION: Duration = Duration::from_secs(2);
const READY: Duration = Duration::from_secs(30);

/// Settings that differ between tests.
#[derive(Debug, Clone)]
pub struct Options {
    pub access_ttl_secs: u64,
    pub clock_skew_secs: u64,
    /// The auth server's `KEY_PUBLISH_AHEAD_SECS`: a rotated-in key signs this long after it
    /// is published.
    pub publish_ahead_secs: u64,
    /// The services' `JWKS_REFRESH_SECS` (their periodic JWK Set fetch).
    pub jwks_refresh_secs: u64,
    /// The services' `JWKS_MIN_REFETCH_MS` (their fetch for an unknown `kid`).
    pub jwks_min_refetch_ms: u64,
    /// Extra `CLIENTS` entries of the auth server (`id=uri;…`), after orders and members.
    pub extra_clients: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            access_ttl_secs: 300,
            clock_skew_secs: 30,
            publish_ahead_secs: 2,
            jwks_refresh_secs: 60,
            // Tests rotate keys right after start-up: allow the unknown-kid refetch soon after
            // the first fetch.
            jwks_min_refetch_ms: 200,
            extra_clients: None,
        }
    }
}

/// Redis, the auth server and two services. Fields drop in order: services first.
pub struct Stack {
    pub orders: ChildGuard,
    pub members: ChildGuard,
    pub auth: ChildGuard,
    pub redis: RedisServer,
    pub auth_url: String,
    pub orders_url: String,
    pub members_url: String,
    pub http: Http,
}

impl Stack {
    pub async fn start(options: Options) -> Self {
        let redis = RedisServer::start();
        let http = Http::new();
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (auth_addr, orders_addr, members_addr) =
            (addr(free_port()), addr(free_port()), addr(free_port()));
        let auth_url = format!("http://{auth_addr}");
        let orders_url = format!("http://{orders_addr}");
        let members_url = format!("http://{members_addr}");
        let client = |name: &str, url: &str| {
            format!("{name}={url}/callback;backchannel_logout_uri={url}/backchannel-logout")
        };
        let mut clients = format!(
            "{},{}",
            client("orders", &orders_url),
            client("members", &members_url)
        );
        if let Some(extra) = &options.extra_clients {
            clients = format!("{clients},{extra}");
        }
        let key = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing/es256-private.pem");
        let ttl = options.access_ttl_secs.to_string();
        let skew = options.clock_skew_secs.to_string();
        let ahead = options.publish_ahead_secs.to_string();
        let refresh = options.jwks_refresh_secs.to_string();
        let refetch = options.jwks_min_refetch_ms.to_string();
        let redis_url = redis.url();

        let mut auth = ChildGuard::spawn_example(
            "sso_auth",
            &[
                ("BIND", &auth_addr.to_string()),
                ("CLIENTS", &clients),
                ("REDIS_URL", &redis_url),
                ("SIGNING_KEY", key),
                ("ADMIN_TOKEN", ADMIN_TOKEN),
                ("ACCESS_TTL_SECS", &ttl),
                ("CLOCK_SKEW_SECS", &skew),
                ("KEY_PUBLISH_AHEAD_SECS", &ahead),
            ],
        );
        auth.wait_ready(&http, auth_addr, "/health", READY).await;
        let service = |name: &str, bind: SocketAddr| {
            ChildGuard::spawn_example(
                "sso_service",
                &[
                    ("SERVICE", name),
                    ("BIND", &bind.to_string()),
                    ("AUTH_URL", &auth_url),
                    ("REDIS_URL", &redis_url),
                    ("CLOCK_SKEW_SECS", &skew),
                    ("JWKS_REFRESH_SECS", &refresh),
                    ("JWKS_MIN_REFETCH_MS", &refetch),
                ],
            )
        };
        let mut orders = service("orders", orders_addr);
        let mut members = service("members", members_addr);
        orders
            .wait_ready(&http, orders_addr, "/health", READY)
            .await;
        members
            .wait_ready(&http, members_addr, "/health", READY)
            .await;
        Self {
            orders,
            members,
            auth,
            redis,
            auth_url,
            orders_url,
            members_url,
            http,
        }
    }

    /// The base URL of service `name`.
    pub fn service(&self, name: &str) -> &str {
        match name {
            "orders" => &self.orders_url,
            "members" => &self.members_url,
            other => panic!("no service {other}"),
        }
    }

    /// The registered redirect URI of service `name`.
    pub fn callback(&self, name: &str) -> String {
        format!("{}/callback", self.service(name))
    }

    /// `POST <auth>/admin/<path>` with the given bearer token and JSON body.
    pub async fn admin(&self, path: &str, token: &str, body: Option<&Value>) -> Resp {
        self.http
            .send(
                Method::POST,
                &format!("{}/admin/{path}", self.auth_url),
                Some(token),
                body,
            )
            .await
    }

    /// The auth server's JWK Set `kid`s, sorted.
    pub async fn published_kids(&self) -> Vec<String> {
        let res = self
            .http
            .send(
                Method::GET,
                &format!("{}/.well-known/jwks.json", self.auth_url),
                None,
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        let mut kids: Vec<String> = res.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// `GET <service>/me` with `token` as a bearer token.
    pub async fn me_with(&self, service: &str, token: &str) -> Resp {
        self.http
            .send(
                Method::GET,
                &format!("{}/me", self.service(service)),
                Some(token),
                None,
            )
            .await
    }

    /// Polls `service` with `token` until it answers 401; panics after [`PROPAGATION`].
    /// Returns how many requests it took (1: the first one was refused) and how long.
    pub async fn until_refused(&self, service: &str, token: &str) -> (usize, Duration) {
        let start = Instant::now();
        let mut requests = 0;
        loop {
            let res = self.me_with(service, token).await;
            requests += 1;
            if res.status == StatusCode::UNAUTHORIZED {
                assert!(res.www_authenticate().contains("invalid_token"), "{res:?}");
                return (requests, start.elapsed());
            }
            assert!(
                start.elapsed() < PROPAGATION,
                "{service} still answers {} to a revoked token after {PROPAGATION:?}",
                res.status
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A stored cookie. Browsers keep cookies per host, not per port (RFC 6265 §8.5), so this jar
/// does too: the auth server and both services, all on 127.0.0.1, see each other's cookies,
/// which is why each uses its own names.
#[derive(Debug, Clone)]
struct JarCookie {
    host: String,
    name: String,
    value: String,
    path: String,
    expires: Option<Instant>,
}

/// One request of a navigation.
#[derive(Debug, Clone)]
pub struct Hop {
    pub method: Method,
    pub url: String,
    pub status: StatusCode,
    pub set_cookies: Vec<String>,
}

/// Where a navigation ended.
#[derive(Debug)]
pub struct Page {
    pub resp: Resp,
    /// The URL of the last request.
    pub url: String,
    /// Every request made, the last one included.
    pub hops: Vec<Hop>,
}

impl Page {
    pub fn status(&self) -> StatusCode {
        self.resp.status
    }

    pub fn body(&self) -> String {
        String::from_utf8_lossy(&self.resp.body).into_owned()
    }

    /// Whether some request of the navigation got a 200 page from `origin` (e.g. a login page).
    pub fn saw_page_at(&self, origin: &str) -> bool {
        self.hops
            .iter()
            .any(|h| h.url.starts_with(origin) && h.status == StatusCode::OK)
    }

    /// The `Set-Cookie` of cookie `name` sent during the navigation, the last one.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.hops
            .iter()
            .flat_map(|h| h.set_cookies.iter())
            .rfind(|c| c.starts_with(&prefix))
            .cloned()
    }
}

/// A browser: a cookie jar, and redirects followed by hand (only ever to 127.0.0.1).
pub struct Browser {
    http: Http,
    jar: Vec<JarCookie>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// Scheme, host, port and path-and-query of an absolute URL on 127.0.0.1.
fn split_url(url: &str) -> (String, String, String) {
    let uri: Uri = url.parse().unwrap_or_else(|e| panic!("{url:?}: {e}"));
    let host = uri.host().expect("absolute URL").to_owned();
    assert_eq!(
        host, "127.0.0.1",
        "the test browser only goes to 127.0.0.1, not {url}"
    );
    let origin = format!(
        "{}://{}",
        uri.scheme_str().expect("scheme"),
        uri.authority().expect("authority")
    );
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    (origin, host, path)
}

fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    let path = request_path.split('?').next().unwrap_or("/");
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: Http::new(),
            jar: Vec::new(),
        }
    }

    fn live(&mut self) {
        let now = Instant::now();
        self.jar.retain(|c| c.expires.is_none_or(|e| e > now));
    }

    /// The `Cookie` header this browser sends to `url`.
    fn cookie_header(&mut self, url: &str) -> Option<String> {
        self.live();
        let (_, host, path) = split_url(url);
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| c.host == host && path_matches(&path, &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The value of cookie `name` that would be sent to `url`.
    pub fn cookie(&mut self, url: &str, name: &str) -> Option<String> {
        self.live();
        let (_, host, path) = split_url(url);
        self.jar
            .iter()
            .find(|c| c.host == host && c.name == name && path_matches(&path, &c.path))
            .map(|c| c.value.clone())
    }

    /// Puts a cookie into the jar (e.g. an old token, to replay it).
    pub fn put_cookie(&mut self, url: &str, name: &str, value: &str) {
        let (_, host, _) = split_url(url);
        self.jar
            .retain(|c| !(c.host == host && c.name == name && c.path == "/"));
        self.jar.push(JarCookie {
            host,
            name: name.to_owned(),
            value: value.to_owned(),
            path: "/".into(),
            expires: None,
        });
    }

    /// Drops cookie `name` of `url`'s host.
    pub fn forget(&mut self, url: &str, name: &str) {
        let (_, host, _) = split_url(url);
        self.jar.retain(|c| !(c.host == host && c.name == name));
    }

    fn store(&mut self, url: &str, set_cookies: &[String]) {
        let (_, host, _) = split_url(url);
        for raw in set_cookies {
            let c = cookie::Cookie::parse(raw.as_str())
                .unwrap_or_else(|e| panic!("bad Set-Cookie {raw:?}: {e}"));
            let path = c.path().unwrap_or("/").to_owned();
            self.jar
                .retain(|j| !(j.host == host && j.name == c.name() && j.path == path));
            let max_age = c.max_age().map(|d| d.whole_seconds());
            if max_age.is_some_and(|s| s <= 0) || c.value().is_empty() {
                continue;
            }
            self.jar.push(JarCookie {
                host: host.clone(),
                name: c.name().to_owned(),
                value: c.value().to_owned(),
                path,
                expires: max_age.map(|s| Instant::now() + Duration::from_secs(s as u64)),
            });
        }
    }

    /// One request, redirects not followed; cookies sent and stored. `form` is sent
    /// url-encoded; `headers` are added.
    pub async fn fetch(
        &mut self,
        method: Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let cookie = self.cookie_header(url);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(cookie) = &cookie {
            all.push(("cookie", cookie));
        }
        let body = form.map(|pairs| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                s.append_pair(k, v);
            }
            ("application/x-www-form-urlencoded", s.finish())
        });
        let res = self.http.send_with(method, url, &all, body).await;
        self.store(url, &res.set_cookies());
        res
    }

    /// Navigates to `url` with GET, following redirects (at most 10).
    pub async fn open(&mut self, url: &str) -> Page {
        self.navigate(Method::GET, url, None).await
    }

    /// Submits a form of a page of the target's own origin (as the browser would:
    /// `Origin` and `Sec-Fetch-Site: same-origin`), following redirects.
    pub async fn submit(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.navigate(Method::POST, url, Some(form)).await
    }

    async fn navigate(
        &mut self,
        mut method: Method,
        url: &str,
        mut form: Option<&[(&str, &str)]>,
    ) -> Page {
        let mut url = url.to_owned();
        let mut hops = Vec::new();
        loop {
            let (origin, _, _) = split_url(&url);
            let headers: Vec<(&str, &str)> = if method == Method::POST {
                vec![("origin", &origin), ("sec-fetch-site", "same-origin")]
            } else {
                Vec::new()
            };
            let res = self.fetch(method.clone(), &url, form, &headers).await;
            hops.push(Hop {
                method: method.clone(),
                url: url.clone(),
                status: res.status,
                set_cookies: res.set_cookies(),
            });
            if !res.status.is_redirection() {
                return Page {
                    resp: res,
                    url,
                    hops,
                };
            }
            assert!(hops.len() < 10, "too many redirects: {hops:#?}");
            let location = res.header("location");
            url = if location.starts_with("http://") || location.starts_with("https://") {
                location.to_owned()
            } else if location.starts_with('/') && !location.starts_with("//") {
                format!("{origin}{location}")
            } else {
                panic!("unexpected Location {location:?} from {url}");
            };
            method = Method::GET;
            form = None;
        }
    }
}

/// The `name` → `value` of every `<input>` of an HTML page (entities decoded).
pub fn form_fields(html: &str) -> BTreeMap<String, String> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let mut fields = BTreeMap::new();
    for piece in html.split("<input").skip(1) {
        let tag = piece.split('>').next().unwrap_or("");
        if let Some(name) = attr(tag, "name") {
            fields.insert(name, attr(tag, "value").unwrap_or_default());
        }
    }
    fields
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Query parameter `name` of `url`, decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` replaced by `value`.
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').expect("a query");
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        s.append_pair(&k, if k == name { value } else { &v });
    }
    format!("{base}?{}", s.finish())
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a compact JWS");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The JOSE header of a JWT (not verified).
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

/// The claims of a JWT (not verified).
pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// Signs `browser` in as `user` through `service`: its login page, then the password. Returns
/// the `/me` page it lands on.
pub async fn sign_in(browser: &mut Browser, stack: &Stack, service: &str, user: &str) -> Page {
    let login = browser
        .open(&format!("{}/me", stack.service(service)))
        .await;
    assert_eq!(login.status(), StatusCode::OK, "{login:#?}");
    assert!(
        login
            .url
            .starts_with(&format!("{}/authorize?", stack.auth_url)),
        "expected the login page, got {}",
        login.url
    );
    let mut fields = form_fields(&login.body());
    fields.insert("username".into(), user.into());
    fields.insert("password".into(), format!("{user}-password"));
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let me = browser
        .submit(&format!("{}/login", stack.auth_url), &form)
        .await;
    assert_eq!(me.status(), StatusCode::OK, "{me:#?}");
    assert_eq!(me.url, format!("{}/me", stack.service(service)));
    me
}
