//! Starts and stops node `oidc-provider` (tests/oidc/provider.mjs) on a free loopback port, and
//! runs the jose and PyJWT helpers beside it. Include with
//! `#[path = "support/oidc_provider.rs"] mod oidc_provider;` next to `mod support;`.
//!
//! The provider is killed on drop; when the test panicked, its log is printed. It can be killed
//! and started again on the same port, with other options (key rotation, provider outages).
//! Needs node (>= 20.19) and python3; the npm packages (tests/oidc/package-lock.json) and the
//! Python ones (tests/oidc/requirements.txt) are installed when missing, as scripts/test.sh does.

#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tower_token_auth::keys::{BoxError, RemoteJwks};

use crate::support::{Http, free_port};

/// The client_credentials client provider.mjs registers.
pub const CLIENT_ID: &str = "tta-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "tta-secret";
/// The audience of the provider's access tokens.
pub const AUDIENCE: &str = "api";

/// The authorization-code client whose logout tokens carry `sid`, and its secret (provider.mjs,
/// with [`Options::backchannel_logout_uri`]).
pub const RP_CLIENT: (&str, &str) = ("tta-rp", "tta-rp-secret");
/// The authorization-code client whose logout tokens carry `sub` only, and its secret.
pub const RP_SUB_CLIENT: (&str, &str) = ("tta-rp-sub", "tta-rp-sub-secret");
/// The redirect URI both are registered with (never followed).
pub const RP_REDIRECT_URI: &str = "http://127.0.0.1/cb";

/// The one line a test without node fails with.
const NODE_NOT_FOUND: &str = "node not found: install the `nodejs` package, node >= 20.19 \
                              (scripts/test.sh does), needed for oidc-provider in tests/oidc";

/// tests/oidc
pub fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

/// Installs the npm and Python packages once per test binary, when missing.
fn ensure_installed() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = oidc_dir();
    // Missing, or older than the lock file (a package was added): `npm ci`, as scripts/test.sh.
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    if installed.is_none() || locked > installed {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => panic!(
                    "npm not found: install the `npm` package (scripts/test.sh does), \
                     needed for `npm ci` in tests/oidc"
                ),
                _ => panic!("running npm ci in {}: {e}", dir.display()),
            });
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let has_pyjwt = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => panic!(
                "python3 not found: install the `python3` package (scripts/test.sh does), \
                 needed for the PyJWT helpers in tests/oidc"
            ),
            _ => panic!("running python3: {e}"),
        });
    if !has_pyjwt.success() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(dir.join("requirements.txt"))
            .status()
            .unwrap_or_else(|e| panic!("running python3 -m pip: {e}"));
        assert!(
            status.success(),
            "pip install -r tests/oidc/requirements.txt (PyJWT, cryptography) failed: install \
             the `python3-pip` package, or run scripts/test.sh (it installs them)"
        );
    }
    *done = true;
}

/// How the provider is started.
#[derive(Clone, Debug)]
pub struct Options {
    /// Key generations published (kids `g<N>-<alg>`); tokens are signed with the last one's.
    pub generations: Vec<u32>,
    /// RSA keys published without `alg`, as Entra ID, Cognito and Ping publish them.
    pub rsa_no_alg: bool,
    /// The relying party's `backchannel_logout_uri`: turns on back-channel logout and dev
    /// interactions, and registers the clients [`RP_CLIENT`] (logout tokens with `sid`) and
    /// [`RP_SUB_CLIENT`] (`sub` only, posting to this URI + `/sub`). See [`OpSession`].
    pub backchannel_logout_uri: Option<String>,
    /// Relying parties logging users in (tests/sso_login.rs): turns on back-channel logout
    /// and dev interactions like [`backchannel_logout_uri`](Self::backchannel_logout_uri).
    pub login_clients: Vec<LoginClient>,
}

/// An authorization-code client registered for a relying party under test:
/// `client_secret_basic`, its callback as the one redirect URI, a post-logout redirect URI,
/// and a back-channel logout URI with `backchannel_logout_session_required` (logout tokens
/// carry `sid`).
#[derive(Clone, Debug)]
pub struct LoginClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub backchannel_logout_uri: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            generations: vec![1],
            rsa_no_alg: false,
            backchannel_logout_uri: None,
            login_clients: Vec::new(),
        }
    }
}

/// One node `oidc-provider` on 127.0.0.1, killed on drop.
pub struct OidcProvider {
    pub port: u16,
    key_dir: PathBuf,
    log: PathBuf,
    options: Options,
    child: Option<Child>,
}

impl OidcProvider {
    /// Starts a provider on a free port and waits until it answers.
    pub fn start(options: Options) -> Self {
        let mut provider = Self::not_started(options);
        provider.restart();
        provider
    }

    /// A provider with its port chosen but not running yet ("down at start"); call
    /// [`restart`](Self::restart) to bring it up.
    pub fn not_started(options: Options) -> Self {
        ensure_installed();
        let port = free_port();
        let tag = format!("{}-{port}", std::process::id());
        let key_dir = std::env::temp_dir().join(format!("tta-oidc-keys-{tag}"));
        let log =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oidc-provider-{tag}.log"));
        Self {
            port,
            key_dir,
            log,
            options,
            child: None,
        }
    }

    /// `http://127.0.0.1:<port>`, the provider's `iss`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// What the provider wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the provider (SIGKILL). Its keys stay for the next [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the provider again on the same port, with the same keys.
    ///
    /// One provider boots at a time in a test binary: node loading oidc-provider and making its
    /// keys is CPU-bound, and fifteen tests booting at once on a 2-core machine made one boot
    /// miss the 90 s deadline in CI.
    pub fn restart(&mut self) {
        static BOOTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = BOOTING.lock().unwrap_or_else(|e| e.into_inner());
        self.kill();
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the provider's log file");
        let err = out.try_clone().expect("cloning the log file handle");
        let generations: Vec<String> = self
            .options
            .generations
            .iter()
            .map(u32::to_string)
            .collect();
        let child = Command::new("node")
            .arg(oidc_dir().join("provider.mjs"))
            .env("PORT", self.port.to_string())
            .env("KEY_DIR", &self.key_dir)
            .env("GENERATIONS", generations.join(","))
            .env(
                "RSA_NO_ALG",
                if self.options.rsa_no_alg { "1" } else { "0" },
            )
            .env("AUDIENCE", AUDIENCE)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "BCL_URI",
                self.options.backchannel_logout_uri.as_deref().unwrap_or(""),
            )
            .env(
                "LOGIN_CLIENTS",
                login_clients_json(&self.options.login_clients),
            )
            .env_remove("DEBUG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => panic!("{NODE_NOT_FOUND}"),
                _ => panic!("spawning node: {e}"),
            });
        self.child = Some(child);
        self.wait_up();
    }

    /// Starts the provider again with other options (e.g. a new key generation published).
    pub fn restart_with(&mut self, options: Options) {
        self.options = options;
        self.restart();
    }

    fn wait_up(&mut self) {
        // Node loads oidc-provider and generates its keys before it listens: a second or two
        // here, much longer on a loaded 2-core CI machine (one start took over 20 s there).
        let deadline = Instant::now() + Duration::from_secs(90);
        let addr = format!("127.0.0.1:{}", self.port);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "oidc-provider exited early ({status}); log:\n{}",
                    self.log()
                );
            }
            // Listening means the provider is configured: it listens after its set-up.
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "oidc-provider not listening on {addr} within 90 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// A real access token from the token endpoint: client_credentials, `scope`, and the
    /// resource indicator `resource` (provider.mjs: `urn:tta:ALG[:SHAPE][:KID]`). A new
    /// connection each time: a pooled one may still point at a provider killed since.
    pub async fn access_token(&self, resource: &str, scope: &str) -> String {
        let http = Http::new();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("client_secret", CLIENT_SECRET)
            .append_pair("scope", scope)
            .append_pair("resource", resource)
            .finish();
        let res = http
            .send_raw(
                Method::POST,
                &self.url("/token"),
                "application/x-www-form-urlencoded",
                &body,
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "token endpoint for {resource}: {}; log:\n{}",
            String::from_utf8_lossy(&res.body),
            self.log()
        );
        res.json()["access_token"]
            .as_str()
            .expect("access_token in the token response")
            .to_owned()
    }

    /// A JWK Set source reading `GET <issuer><path>` (e.g. `/jwks`), failing on a transport
    /// error or a status other than 200.
    pub fn jwks_source(&self, path: &str) -> RemoteJwks {
        http_jwks_source(self.url(path))
    }
}

/// The `LOGIN_CLIENTS` environment variable of provider.mjs.
fn login_clients_json(clients: &[LoginClient]) -> String {
    let all: Vec<serde_json::Value> = clients
        .iter()
        .map(|c| {
            serde_json::json!({
                "client_id": c.client_id,
                "client_secret": c.client_secret,
                "redirect_uri": c.redirect_uri,
                "post_logout_redirect_uri": c.post_logout_redirect_uri,
                "backchannel_logout_uri": c.backchannel_logout_uri,
            })
        })
        .collect();
    serde_json::Value::Array(all).to_string()
}

/// How many authorization requests the provider received (provider.mjs logs each one when
/// it has [`Options::login_clients`]).
pub fn authorization_requests(log: &str) -> usize {
    log.lines()
        .filter(|l| l.starts_with("authorization-request "))
        .count()
}

/// A JWK Set source reading `GET url` with a small hyper-util client, on a new connection each
/// time (fetches are rare; a pooled connection may point at a provider restarted since).
pub fn http_jwks_source(url: String) -> RemoteJwks {
    RemoteJwks::new(move || {
        let url = url.clone();
        async move {
            let http = Http::new();
            let res = http.try_send(Method::GET, &url, None, None).await?;
            if res.status != StatusCode::OK {
                return Err::<String, BoxError>(
                    format!("JWKS endpoint answered {}", res.status).into(),
                );
            }
            Ok(String::from_utf8(res.body.to_vec())?)
        }
    })
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- oidc-provider log ({}) ---\n{}--- end of oidc-provider log ---",
                self.log.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
        let _ = std::fs::remove_dir_all(&self.key_dir);
    }
}

/// Runs a helper script in tests/oidc (`node x.mjs` or `python3 x.py`) with one JSON argument
/// and returns its stdout parsed as JSON, or its stderr as the error.
pub fn run_helper(script: &str, input: &serde_json::Value) -> Result<serde_json::Value, String> {
    ensure_installed();
    let path: &Path = script.as_ref();
    let program = match path.extension().and_then(|e| e.to_str()) {
        Some("mjs") => "node",
        Some("py") => "python3",
        _ => panic!("unknown helper {script}"),
    };
    let out = Command::new(program)
        .arg(oidc_dir().join(script))
        .arg(input.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| match (e.kind(), program) {
            (std::io::ErrorKind::NotFound, "node") => panic!("{NODE_NOT_FOUND}"),
            _ => panic!("running {program} {script}: {e}"),
        });
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A token and the JWK Set with its public key, from mint.mjs (jose) or mint_pyjwt.py (PyJWT).
pub struct Minted {
    pub token: String,
    pub jwks: serde_json::Value,
}

/// Mints with `script` (`mint.mjs` or `mint_pyjwt.py`); see their docs for `spec`.
pub fn mint(script: &str, spec: &serde_json::Value) -> Minted {
    let out = run_helper(script, spec).unwrap_or_else(|e| panic!("{script} {spec}: {e}"));
    Minted {
        token: out["token"].as_str().expect("token").to_owned(),
        jwks: out["jwks"].clone(),
    }
}

/// A browser's session at the provider, scripted over HTTP with a cookie jar: log in through
/// the dev interactions (any login, any password), authorize a client (code flow with PKCE),
/// and log out at the end-session endpoint (RP-initiated logout, confirming the form), which
/// makes the provider post logout tokens to the clients of the session.
pub struct OpSession<'p> {
    provider: &'p OidcProvider,
    http: Http,
    cookies: std::collections::BTreeMap<String, String>,
}

/// RFC 7636 appendix B's verifier and its S256 challenge.
const PKCE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PKCE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

impl<'p> OpSession<'p> {
    /// A session with no cookies yet.
    pub fn new(provider: &'p OidcProvider) -> Self {
        Self {
            provider,
            http: Http::new(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, res: &crate::support::Resp) {
        for c in res.set_cookies() {
            let pair = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let expired = c.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            self.provider.url(location)
        } else {
            location.to_owned()
        }
    }

    /// GET (or POST a form to) `url` with the session's cookies, keeping the ones set.
    async fn request(
        &mut self,
        method: Method,
        url: &str,
        form: Option<String>,
    ) -> crate::support::Resp {
        let cookie = self.cookie_header();
        let headers: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("cookie", cookie.as_str())]
        };
        let body = form.map(|f| ("application/x-www-form-urlencoded", f));
        let res = self.http.send_with(method, url, &headers, body).await;
        self.absorb(&res);
        res
    }

    /// Follows an authorization request at `start_url` through the provider (logging in as
    /// `login` and consenting when asked) until the provider redirects to `redirect_uri`:
    /// that redirect's whole location (with `code` and `state`, or `error`).
    pub async fn follow_login(
        &mut self,
        start_url: &str,
        redirect_uri: &str,
        login: &str,
    ) -> String {
        let mut res = self.request(Method::GET, start_url, None).await;
        for _ in 0..10 {
            assert!(
                res.status.is_redirection(),
                "expected a redirect, got {}: {}; log:\n{}",
                res.status,
                String::from_utf8_lossy(&res.body),
                self.provider.log()
            );
            let location = self.absolute(res.header("location"));
            if location.starts_with(&format!("{redirect_uri}?")) {
                return location;
            }
            if location.contains("/interaction/") {
                let page = self.request(Method::GET, &location, None).await;
                assert_eq!(page.status, StatusCode::OK, "interaction page {location}");
                let html = String::from_utf8_lossy(&page.body);
                let form = if html.contains(r#"name="prompt" value="login""#) {
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("prompt", "login")
                        .append_pair("login", login)
                        .append_pair("password", "any")
                        .finish()
                } else if html.contains(r#"name="prompt" value="consent""#) {
                    "prompt=consent".to_owned()
                } else {
                    panic!("unknown interaction page: {html}");
                };
                res = self.request(Method::POST, &location, Some(form)).await;
            } else {
                res = self.request(Method::GET, &location, None).await;
            }
        }
        panic!("the authorization did not reach {redirect_uri} in 10 redirects");
    }

    /// Logs in as `login` (when the provider asks), consents, and exchanges the code: the
    /// ID token's claims (`sub`, and `sid` for a client that requires sessions).
    pub async fn authorize(
        &mut self,
        (client_id, secret): (&str, &str),
        login: &str,
    ) -> serde_json::Value {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("redirect_uri", RP_REDIRECT_URI)
            .append_pair("state", "st")
            .append_pair("nonce", "nn")
            .append_pair("code_challenge", PKCE_CHALLENGE)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let location = self
            .follow_login(
                &self.provider.url(&format!("/auth?{query}")),
                RP_REDIRECT_URI,
                login,
            )
            .await;
        let query = location
            .strip_prefix(&format!("{RP_REDIRECT_URI}?"))
            .expect("the redirect URI with a query");
        let params: std::collections::HashMap<_, _> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let code = params
            .get("code")
            .unwrap_or_else(|| panic!("no code: {location}"))
            .clone();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", RP_REDIRECT_URI)
            .append_pair("code_verifier", PKCE_VERIFIER)
            .append_pair("client_id", client_id)
            .append_pair("client_secret", secret)
            .finish();
        let res = self
            .http
            .send_raw(
                Method::POST,
                &self.provider.url("/token"),
                "application/x-www-form-urlencoded",
                &form,
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "code exchange: {}",
            String::from_utf8_lossy(&res.body)
        );
        let id_token = res.json()["id_token"]
            .as_str()
            .expect("id_token")
            .to_owned();
        let payload = id_token.split('.').nth(1).expect("a JWS");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url payload");
        serde_json::from_slice(&bytes).expect("JSON claims")
    }

    /// RP-initiated logout of the whole session at the end-session endpoint: the logout page,
    /// then its form confirmed with `logout=yes`. The provider posts the logout tokens before
    /// it answers the confirmation (303).
    pub async fn logout(&mut self, client_id: &str) {
        let url = self
            .provider
            .url(&format!("/session/end?client_id={client_id}"));
        let page = self.request(Method::GET, &url, None).await;
        assert_eq!(page.status, StatusCode::OK, "end-session page");
        let html = String::from_utf8_lossy(&page.body).into_owned();
        let marker = r#"name="xsrf" value=""#;
        let start = html.find(marker).expect("xsrf in the logout form") + marker.len();
        let xsrf = &html[start..start + html[start..].find('"').expect("closing quote")];
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("xsrf", xsrf)
            .append_pair("logout", "yes")
            .finish();
        let res = self
            .request(
                Method::POST,
                &self.provider.url("/session/end/confirm"),
                Some(form),
            )
            .await;
        assert!(
            res.status.is_redirection(),
            "logout confirmation answered {}: {}; log:\n{}",
            res.status,
            String::from_utf8_lossy(&res.body),
            self.provider.log()
        );
    }
}
