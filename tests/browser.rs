//! End to end in a real browser: runs the `remember_me` example and drives headless Chromium
//! through it with `tests/browser/remember_me.mjs` (node + playwright-core): password login
//! with "Remember me", a simulated browser restart (access cookie dropped, remember-me cookie
//! kept), the fresh-login guard on `/settings`, theft of a rotated remember-me cookie, logout
//! and CSRF protection. And single sign-on with `tests/browser/sso.mjs`: the `sso_auth`
//! provider, two `sso_service` instances and Redis, signed in at one service, at the other
//! without a password, across a key rotation, signed out of both at once.
//!
//! Needs Debian's `chromium`, `node` and `npm ci` in `tests/browser`; `scripts/test.sh` sets
//! them up. Without them the tests fail (they do not skip).

#[path = "support/browser.rs"]
mod browser_support;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/sso.rs"]
mod sso;
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

/// Sign in at one service, the other without a password, a key rotation at the provider
/// refusing nothing, sign out at the first: both signed out.
#[test]
fn single_sign_on_in_chromium() {
    let tooling = BrowserTooling::require();
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stack = runtime.block_on(sso::Stack::start(sso::Options::default()));

    let mut cmd = Command::new(&tooling.node);
    cmd.current_dir(&tooling.dir)
        .arg("sso.mjs")
        .arg(&stack.auth_url)
        .arg(&stack.orders_url)
        .arg(&stack.members_url)
        .arg(format!("--admin-token={}", sso::ADMIN_TOKEN))
        .env("CHROMIUM", &tooling.chromium);
    let out = run_with_timeout(cmd, SCRIPT_TIMEOUT);
    let report = format!(
        "--- script stdout ---\n{}\n--- script stderr ---\n{}\n--- auth log ---\n{}\n\
         --- orders log ---\n{}\n--- members log ---\n{}",
        out.stdout,
        out.stderr,
        stack.auth.log(),
        stack.orders.log(),
        stack.members.log()
    );
    assert!(out.status.success(), "the browser script failed:\n{report}");
    for step in [
        "a: service A sends",
        "b: sign in as alice",
        "c: a key rotation",
        "d: service B",
        "e: sign out at A",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("PASS {step}"))),
            "step {step:?} did not pass:\n{report}"
        );
    }
    assert!(
        !out.stdout.contains("FAIL") && out.stdout.contains("RESULT: PASS"),
        "{report}"
    );
    eprintln!("{}", out.stdout);
    drop(stack);
}
