//! End to end in a real browser: runs the `remember_me` example and drives headless Chromium
//! through it with `tests/browser/remember_me.mjs` (node + playwright-core): password login
//! with "Remember me", a simulated browser restart (access cookie dropped, remember-me cookie
//! kept), the fresh-login guard on `/settings`, theft of a rotated remember-me cookie, logout
//! and CSRF protection.
//!
//! Needs Debian's `chromium`, `node` and `npm ci` in `tests/browser`; `scripts/test.sh` sets
//! them up. Without them the tests fail (they do not skip).

#[path = "support/browser.rs"]
mod browser_support;
mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use browser_support::{BrowserTooling, free_port, run_with_timeout};
use support::{ChildGuard, Http};

const SECRET: &str = "browser-test-secret-0123456789abcdef";
/// How long a rotated-away remember-me token stays valid; the script waits it out before
/// replaying the old cookie.
const GRACE_SECS: &str = "1";
/// The script's own watchdog is 50 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(70);

/// One Chromium at a time: two on a small machine slow each other into timeouts.
static BROWSER: Mutex<()> = Mutex::new(());

/// Starts the example with `envs` in remember-me `mode`, runs the script against it, and
/// checks that every step in `steps` passed.
fn run(mode: &str, envs: &[(&str, &str)], steps: &[&str]) {
    let tooling = BrowserTooling::require();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();

    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let bind = addr.to_string();
    let mut all = vec![
        ("BIND", bind.as_str()),
        ("JWT_SECRET", SECRET),
        ("COOKIE_SECURE", "0"),
        ("REMEMBER_GRACE_SECS", GRACE_SECS),
        ("ACCESS_TTL_SECS", "120"),
        ("MODE", mode),
    ];
    all.extend_from_slice(envs);
    let mut example = ChildGuard::spawn_example("remember_me", &all);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(example.wait_ready(&Http::new(), addr, "/health", Duration::from_secs(20)));

    let mut cmd = Command::new(&tooling.node);
    cmd.current_dir(&tooling.dir)
        .arg("remember_me.mjs")
        .arg(format!("http://{addr}"))
        .arg(format!("--grace-secs={GRACE_SECS}"))
        .arg(format!("--mode={mode}"))
        .env("CHROMIUM", &tooling.chromium);
    let out = run_with_timeout(cmd, SCRIPT_TIMEOUT);

    let report = || {
        format!(
            "--- script stdout ---\n{}\n--- script stderr ---\n{}\n--- example log ---\n{}",
            out.stdout,
            out.stderr,
            example.log()
        )
    };
    assert!(
        out.status.success(),
        "the browser script failed ({}):\n{}",
        out.status,
        report()
    );
    for step in steps {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("PASS {step}"))),
            "step {step:?} did not pass:\n{}",
            report()
        );
    }
    assert!(
        !out.stdout.contains("FAIL") && out.stdout.contains("RESULT: PASS"),
        "{}",
        report()
    );
    if mode == "persistent" {
        assert!(
            example.log().contains("remember-me cookie theft detected"),
            "the example logged no theft:\n{}",
            report()
        );
    }
    eprintln!(
        "browser run finished in {:?}:\n{}",
        started.elapsed(),
        out.stdout
    );
}

#[test]
fn persistent_remember_me_in_chromium() {
    run(
        "persistent",
        &[],
        &[
            "a: password login",
            "b: browser restart",
            "b: /settings asks",
            "c: a stolen",
            "d: logout",
            "e: a cross-site POST",
        ],
    );
}

#[test]
fn signed_remember_me_in_chromium() {
    run(
        "signed",
        &[("REMEMBER_ME_KEY", SECRET)],
        &[
            "a: password login",
            "b: browser restart",
            "b: /settings asks",
            "d: logout",
            "e: a cross-site POST",
        ],
    );
}
