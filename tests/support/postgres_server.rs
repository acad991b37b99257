//! Starts and stops a real PostgreSQL server (Debian's `postgresql` package) on a free
//! loopback port, its cluster in a temp directory made by `initdb`, so tests can kill it
//! (SIGKILL to the whole server, like a crash) and start it again on the same data.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, `initdb` and `postgres` run
//! as the `postgres` user the package creates (through `setpriv`). Authentication is `trust`
//! on 127.0.0.1 only; the server listens on no other address and on no Unix socket but the one
//! in its temp directory.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The directory holding `initdb` and `postgres`: `PG_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else whatever `PATH` finds.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn program(name: &str) -> PathBuf {
    bin_dir().map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd` to run as the `postgres` user when we are root, as ourselves otherwise.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ]);
        cmd.arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// One PostgreSQL server on 127.0.0.1, killed and its directory removed on drop.
pub struct PostgresServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PostgresServer {
    /// `initdb` in a new temp directory, then starts the server on a free port.
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("tta-pg-{}-{}", std::process::id(), free_port()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("temp dir");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        let initdb = program("initdb");
        let out = as_server_user(&initdb)
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .arg("-D")
            .arg(&data)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {}: {e}; install the `postgresql` package (scripts/test.sh does) \
                     or point PG_BIN_DIR at its bin directory",
                    initdb.display()
                )
            });
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Kills the server and every backend of it (SIGKILL to its process group: no
    /// checkpoint, no shutdown, like a crash). Committed transactions survive (the WAL is
    /// flushed at commit); the next [`restart`](Self::restart) replays it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id() as i32;
            // The server was started as the leader of its own process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            // Backends notice the postmaster's death within moments; wait for them so the
            // next start does not find them holding the shared memory.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && group_alive(pgid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the server (again) on the same port and data directory, and waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let postgres = program("postgres");
        let mut cmd = as_server_user(&postgres);
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "max_connections=200"])
            .args(["-c", "shared_buffers=16MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", postgres.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.psql("SELECT 1").is_some_and(|o| o.trim() == "1") {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres on port {} exited at start: {status}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postgres on port {} did not accept connections", self.port);
    }

    /// Runs one SQL command with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Option<String> {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn group_alive(pgid: i32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
