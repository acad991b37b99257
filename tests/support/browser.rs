//! Helpers for the real-browser tests (`tests/browser.rs`): the browser tooling check, an
//! example binary run as a child process, and commands with a time limit. Synchronous, std
//! only; all traffic goes to 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
        // One line: each missing piece with the package that provides it.
        let mut missing = Vec::new();
        if !chromium.is_file() {
            missing.push(format!(
                "{} not found: install the `chromium` package (or point CHROMIUM at it)",
                chromium.display()
            ));
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
            missing.push("node not found: install the `nodejs` package".to_owned());
        }
        let playwright = dir.join("node_modules/playwright-core/package.json");
        if !playwright.is_file() {
            missing.push(format!(
                "the npm package playwright-core not found: run `npm ci` in {} \
                 (needs the `npm` package)",
                dir.display()
            ));
        }
        assert!(
            missing.is_empty(),
            "the browser test cannot run: {} (scripts/test.sh does all of it)",
            missing.join("; ")
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
pub use crate::support::free_port;

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
