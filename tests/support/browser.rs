//! Helpers for the real-browser tests (`tests/browser.rs`): the browser tooling check, an
//! example binary run as a child process, and commands with a time limit. Synchronous, std
//! only; all traffic goes to 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What to run when the browser tooling is missing.
pub const SETUP_HINT: &str = "run scripts/test.sh (it installs chromium, and nodejs and npm when \
     node is missing, with apt, then runs `npm ci` in tests/browser), or by hand: \
     `apt-get install chromium` and `cd tests/browser && npm ci`";

/// The pieces a browser test needs, checked up front.
pub struct BrowserTooling {
    /// `node`.
    pub node: PathBuf,
    /// The directory holding `package.json`, the scripts and `node_modules`.
    pub dir: PathBuf,
    /// The Chromium binary the scripts launch (`CHROMIUM`, default `/usr/bin/chromium`).
    pub chromium: PathBuf,
}

impl BrowserTooling {
    /// Finds Chromium, node and the npm packages, or panics saying how to install them: a
    /// machine without them must fail the test, not skip it.
    pub fn require() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let chromium = PathBuf::from(
            std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
        );
        let mut missing = Vec::new();
        if !chromium.is_file() {
            missing.push(format!("Chromium ({} not found)", chromium.display()));
        }
        let node = PathBuf::from("node");
        let node_ok = Command::new(&node)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !node_ok {
            missing.push("node (not on PATH)".to_owned());
        }
        let playwright = dir.join("node_modules/playwright-core/package.json");
        if !playwright.is_file() {
            missing.push(format!(
                "the npm package playwright-core ({} not found)",
                playwright.display()
            ));
        }
        assert!(
            missing.is_empty(),
            "the browser test cannot run: missing {}.\nTo set it up, {SETUP_HINT}.",
            missing.join(", ")
        );
        Self {
            node,
            dir,
            chromium,
        }
    }
}

// `free_port` and `example_bin` (which also refuses a stale binary) come from
// `tests/support/mod.rs`.
pub use crate::support::{example_bin, free_port};

/// A running example binary, killed when dropped (also when the test panics).
pub struct ExampleProcess {
    child: Child,
    name: String,
    log: PathBuf,
}

impl ExampleProcess {
    /// Spawns example `name` with `envs`, stdout and stderr going to a log file under the
    /// target directory.
    pub fn spawn(name: &str, envs: &[(&str, &str)]) -> Self {
        let bin = example_bin(name);
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-browser-{}-{}.log",
            std::process::id(),
            free_port()
        ));
        let out = File::create(&log).expect("creating the child's log file");
        let err = out.try_clone().expect("cloning the log file handle");
        let child = Command::new(&bin)
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
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

    /// Polls `GET http://{addr}{path}` until it answers 200; panics with the child's log when
    /// the child exits or `timeout` passes first.
    pub fn wait_ready(&mut self, addr: SocketAddr, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                panic!(
                    "{} exited early ({status}); log:\n{}",
                    self.name,
                    self.log()
                );
            }
            if http_status(addr, path).is_some_and(|s| s == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at http://{addr}{path} within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The status code of `GET http://{addr}{path}` (HTTP/1.1, `Connection: close`), or `None`
/// when the server cannot be reached within a second.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let limit = Duration::from_secs(1);
    let mut stream = TcpStream::connect_timeout(&addr, limit).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    stream.set_write_timeout(Some(limit)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// A finished command.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it after `timeout` (then panicking with what it printed).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Finished {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {shown}: {e}"));
    // Drain both pipes on threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Finished {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{shown} did not finish within {timeout:?} and was killed\n\
             --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}
