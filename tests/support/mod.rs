//! Shared helpers for integration tests: free ports, spawning example binaries, and a small
//! HTTP client. All traffic goes to 127.0.0.1.
//!
//! Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A port on 127.0.0.1 that was free a moment ago (the OS picked it; another process could
/// still take it before the caller binds).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The path of example binary `name`, built by `cargo test` (or `cargo build --examples`)
/// next to the test binaries: `target/<profile>/examples/<name>`.
pub fn example_bin(name: &str) -> PathBuf {
    // The test runs as target/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary is in target/<profile>/deps");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "example binary {} not found; run `cargo build --examples` (or `cargo test`, which builds them)",
        bin.display()
    );
    // `cargo test --test <name>` builds only that test, not the examples: refuse to test an
    // example binary older than any file it was built from. Cargo lists those (the example,
    // the modules it includes, the library's sources) in the dep-info file beside it.
    let dep_info = bin.with_extension("d");
    let sources: Vec<PathBuf> = match std::fs::read_to_string(&dep_info) {
        Ok(text) => text
            .lines()
            .next()
            .and_then(|line| line.split_once(": "))
            .map(|(_, deps)| {
                // Spaces inside paths are escaped as `\ `.
                deps.replace("\\ ", "\0")
                    .split_whitespace()
                    .map(|p| PathBuf::from(p.replace('\0', " ")))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(format!("{name}.rs")),
        ],
    };
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let Some(built) = modified(&bin) {
        for source in &sources {
            if let Some(src) = modified(source) {
                assert!(
                    built >= src,
                    "example binary {} is older than {}; run `cargo build --examples` with the \
                     test's features (e.g. `cargo build --all-features --examples`)",
                    bin.display(),
                    source.display()
                );
            }
        }
    }
    bin
}

/// A running example binary, killed when dropped (also when the test panics).
pub struct ChildGuard {
    child: Child,
    name: String,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns example `name` with `envs` set, stdout and stderr going to a log file under
    /// the target directory (its path and content show up in failure messages).
    pub fn spawn_example(name: &str, envs: &[(&str, &str)]) -> Self {
        let bin = example_bin(name);
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            free_port()
        ));
        let out = File::create(&log).expect("creating the child's log file");
        let err = out.try_clone().expect("cloning the log file handle");
        let child = Command::new(&bin)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Self {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// What the child wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status, if the child has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("polling the child")
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET http://{addr}{path}` until it answers 200; panics with the child's log when
    /// the child exits or `timeout` passes first.
    pub async fn wait_ready(
        &mut self,
        http: &Http,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{addr}{path}");
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "{} exited early ({status}); log:\n{}",
                    self.name,
                    self.log()
                );
            }
            if let Ok(res) = http.try_send(Method::GET, &url, None, None).await
                && res.status == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {url} within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Header `name`, or "" when absent (the first one if repeated).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("visible ASCII header"))
            .unwrap_or("")
    }

    /// Every `Set-Cookie` header, in order.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("visible ASCII header").to_owned())
            .collect()
    }

    /// The `Set-Cookie` header for cookie `name`; panics when there is none.
    pub fn set_cookie(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {self:?}"))
    }

    /// The `WWW-Authenticate` header, or "" when absent.
    pub fn www_authenticate(&self) -> &str {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("visible ASCII header"))
            .unwrap_or("")
    }
}

/// A plain-HTTP/1 client (hyper-util's legacy client) with a per-request timeout.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request, optionally with a bearer token and a JSON body.
    pub async fn try_send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        json: Option<&serde_json::Value>,
    ) -> Result<Resp, Box<dyn std::error::Error + Send + Sync>> {
        let mut req = Request::builder().method(method).uri(url);
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Full::from(v.to_string())
            }
            None => Full::default(),
        };
        self.exchange(req.body(body)?).await
    }

    /// Sends `req` and reads the whole response, within 30 s.
    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Resp, Box<dyn std::error::Error + Send + Sync>> {
        let exchange = async {
            let res = self.client.request(req).await?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), exchange).await?
    }

    /// Like [`try_send`](Self::try_send), panicking on transport errors.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        json: Option<&serde_json::Value>,
    ) -> Resp {
        self.try_send(method.clone(), url, bearer, json)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Sends a request with arbitrary headers and optionally a body of the given content
    /// type, panicking on transport errors.
    pub async fn send_with(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, String)>,
    ) -> Resp {
        let mut req = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let body = match body {
            Some((content_type, body)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Full::from(body)
            }
            None => Full::default(),
        };
        let req = req.body(body).expect("valid request");
        self.exchange(req)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Sends a raw body with the given content type.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        content_type: &str,
        body: &str,
    ) -> Resp {
        self.send_with(method, url, &[], Some((content_type, body.to_owned())))
            .await
    }
}
