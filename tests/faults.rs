//! Fault injection under the real `quickstart` binary on a real `redis-server`: Redis refusing
//! writes (`maxmemory 1`, `noeviction`), an ACL denying `PUBLISH`, Redis killed while an
//! operation waits between its write and its publish, and the connection cut exactly there
//! (an in-test TCP proxy between instance A and Redis).
//!
//! For every lifecycle operation (logout, RFC 7009 revocation of a refresh and of an access
//! token, refresh-token reuse, password change): the first attempt under the fault fails with
//! 503; once the fault clears, the client retries until the operation reports success (a 401
//! on retry means this instance already enforces it, and is accepted only because the checks
//! below then prove it); then instance A, instance B and an instance C started after every
//! fault refuse each ended access token and refresh token, and nothing that reported success
//! came undone.

#[path = "support/fault_proxy.rs"]
mod fault_proxy;
#[path = "support/quickstart.rs"]
mod quickstart;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::time::{Duration, Instant};

use fault_proxy::{FaultProxy, Trip};
use http::StatusCode;
use quickstart::{Quickstart, error_code, token_pair};
use redis_server::RedisServer;
use serde_json::json;
use support::Resp;

/// The revocation messages a quickstart publishes (token, session, user); its heartbeats
/// (`"k":"h"`) pass.
const REVOCATION_MESSAGES: [&[u8]; 3] = [br#""k":"t""#, br#""k":"s""#, br#""k":"u""#];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `CONFIG SET maxmemory 1` with `noeviction`: every write is refused with `OOM`.
    RefusesWrites,
    /// `ACL SETUSER default -publish`: the write lands, the publish is refused.
    DeniesPublish,
    /// Instance A's publish is held and Redis killed meanwhile; it restarts from its AOF.
    KilledMidOperation,
    /// Instance A's connections are cut when it sends the publish; reconnects are refused
    /// until the fault clears.
    CutBeforePublish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Logout,
    RevokeRefresh,
    RevokeAccess,
    RefreshReuse,
    PasswordChange,
}

const OPS: [Op; 5] = [
    Op::Logout,
    Op::RevokeRefresh,
    Op::RevokeAccess,
    Op::RefreshReuse,
    Op::PasswordChange,
];

/// The tokens an operation works on.
struct Session {
    access: String,
    refresh: String,
    /// For reuse detection: the refresh token already spent on a rotation, and the access
    /// token that came with it.
    spent: Option<(String, String)>,
}

/// What a successful operation must have ended everywhere.
#[derive(Debug)]
struct Ended {
    what: String,
    access: Vec<String>,
    refresh: Vec<String>,
}

struct Rig {
    // Instances first: dropped (killed) before their Redis.
    a: Quickstart,
    b: Quickstart,
    proxy: FaultProxy,
    redis: RedisServer,
}

impl Rig {
    async fn start() -> Self {
        let redis = RedisServer::start_persistent();
        let proxy = FaultProxy::start(redis.port).await;
        let a = Quickstart::start_with(&[("REDIS_URL", &proxy.redis_url())]).await;
        let b = Quickstart::start_with(&[("REDIS_URL", &redis.url())]).await;
        Self { a, b, proxy, redis }
    }

    fn cli(&self, args: &[&str]) {
        let out = self.redis.cli(args);
        assert!(
            out.as_deref().is_some_and(|o| o.trim() == "OK"),
            "redis-cli {args:?}: {out:?}"
        );
    }

    fn inject(&self, fault: Fault) {
        match fault {
            Fault::RefusesWrites => {
                self.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
                self.cli(&["CONFIG", "SET", "maxmemory", "1"]);
            }
            Fault::DeniesPublish => self.cli(&["ACL", "SETUSER", "default", "-publish"]),
            Fault::KilledMidOperation => self.proxy.arm(&REVOCATION_MESSAGES, Trip::Hold),
            Fault::CutBeforePublish => self.proxy.arm(&REVOCATION_MESSAGES, Trip::Cut),
        }
    }

    fn clear(&mut self, fault: Fault) {
        match fault {
            Fault::RefusesWrites => self.cli(&["CONFIG", "SET", "maxmemory", "0"]),
            Fault::DeniesPublish => self.cli(&["ACL", "SETUSER", "default", "+publish"]),
            Fault::KilledMidOperation => {
                self.redis.restart();
                self.proxy.heal();
            }
            Fault::CutBeforePublish => self.proxy.heal(),
        }
    }

    /// A fresh session on A for `op`, checked valid on A and B (so both hold it as confirmed
    /// unrevoked in their caches: the hard case for a revocation to reach).
    async fn session(&self, op: Op) -> Session {
        let (user, password) = if op == Op::PasswordChange {
            ("admin", "admin-password")
        } else {
            ("alice", "alice-password")
        };
        let first = self.a.pair(user, password).await;
        let session = if op == Op::RefreshReuse {
            let res = self.a.refresh(&first.refresh).await;
            assert_eq!(res.status, StatusCode::OK, "{res:?}");
            let second = token_pair(&res);
            Session {
                access: second.access,
                refresh: second.refresh,
                spent: Some((first.refresh, first.access)),
            }
        } else {
            Session {
                access: first.access,
                refresh: first.refresh,
                spent: None,
            }
        };
        assert_eq!(self.a.me(&session.access).await, StatusCode::OK);
        assert_eq!(self.b.me(&session.access).await, StatusCode::OK);
        session
    }

    /// Runs `op` under `fault` and retries it until it reports success.
    async fn run(&mut self, fault: Fault, op: Op) -> Ended {
        let session = self.session(op).await;
        self.inject(fault);
        let first = {
            let Self {
                a, proxy, redis, ..
            } = self;
            let during = async {
                if fault == Fault::KilledMidOperation {
                    assert!(
                        proxy.wait_tripped(Duration::from_secs(10)).await,
                        "{op:?} never published a revocation"
                    );
                    redis.kill();
                }
            };
            tokio::join!(attempt(a, op, &session), during).0
        };
        assert_eq!(
            first.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{op:?} under {fault:?}: {first:?}"
        );
        let body = String::from_utf8_lossy(&first.body);
        assert!(
            !body.contains("NoPerm") && !body.contains("OOM"),
            "backend detail in the body: {first:?}"
        );
        if matches!(fault, Fault::KilledMidOperation | Fault::CutBeforePublish) {
            assert!(self.proxy.tripped(), "{op:?}: the fault did not hit");
        }
        self.clear(fault);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = attempt(&self.a, op, &session).await;
            if succeeded(op, &res) {
                break;
            }
            assert_eq!(
                res.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{op:?} retry after {fault:?}: {res:?}"
            );
            assert!(
                Instant::now() < deadline,
                "{op:?} retried for 20 s after {fault:?}: {res:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut access = vec![session.access];
        let mut refresh = vec![session.refresh];
        match op {
            // Revoking one access token leaves its session alone.
            Op::RevokeAccess => refresh.clear(),
            // Every token of the family: the spent pair too.
            Op::RefreshReuse => {
                let (spent_refresh, spent_access) = session.spent.expect("a spent token");
                refresh.push(spent_refresh);
                access.push(spent_access);
            }
            _ => {}
        }
        Ended {
            what: format!("{op:?} under {fault:?}"),
            access,
            refresh,
        }
    }
}

/// One attempt at `op` on instance `a`.
async fn attempt(a: &Quickstart, op: Op, session: &Session) -> Resp {
    match op {
        Op::Logout => a.post("/logout", Some(&session.access), None).await,
        Op::RevokeRefresh => a.revoke(&session.refresh).await,
        Op::RevokeAccess => a.revoke(&session.access).await,
        Op::RefreshReuse => {
            let (spent, _) = session.spent.as_ref().expect("a spent token");
            a.refresh(spent).await
        }
        Op::PasswordChange => {
            let body = json!({
                "current_password": "admin-password",
                "new_password": "admin-password-2",
            });
            a.post("/password", Some(&session.access), Some(&body))
                .await
        }
    }
}

/// Whether `res` reports `op` done. A 401 means the presented token is already refused on
/// this instance: the client cannot retry, so the caller's checks must prove the job done.
fn succeeded(op: Op, res: &Resp) -> bool {
    match op {
        Op::Logout | Op::PasswordChange => {
            res.status == StatusCode::NO_CONTENT || res.status == StatusCode::UNAUTHORIZED
        }
        Op::RevokeRefresh | Op::RevokeAccess => res.status == StatusCode::OK,
        Op::RefreshReuse => {
            res.status == StatusCode::BAD_REQUEST && error_code(res) == "invalid_grant"
        }
    }
}

/// Every ended access token is refused by `instance` and every ended refresh token refreshes
/// nothing there.
async fn assert_ended(instance: &Quickstart, name: &str, ended: &[Ended]) {
    for e in ended {
        for token in &e.access {
            instance
                .eventually_me(token, StatusCode::UNAUTHORIZED)
                .await;
        }
        for token in &e.refresh {
            let res = instance.refresh(token).await;
            assert_eq!(
                (res.status, error_code(&res).as_str()),
                (StatusCode::BAD_REQUEST, "invalid_grant"),
                "{}: refresh on {name}: {res:?}",
                e.what
            );
        }
    }
}

async fn every_operation_survives(fault: Fault) {
    let mut rig = Rig::start().await;
    let mut ended = Vec::new();
    for op in OPS {
        let e = rig.run(fault, op).await;
        assert_ended(&rig.a, "A", std::slice::from_ref(&e)).await;
        assert_ended(&rig.b, "B", std::slice::from_ref(&e)).await;
        ended.push(e);
    }
    // An instance that subscribed after every fault, and the two that lived through them:
    // nothing that reported success was undone.
    let c = Quickstart::start_with(&[("REDIS_URL", &rig.redis.url())]).await;
    assert_ended(&c, "C", &ended).await;
    assert_ended(&rig.a, "A", &ended).await;
    assert_ended(&rig.b, "B", &ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refusing_writes() {
    every_operation_survives(Fault::RefusesWrites).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denying_publish() {
    every_operation_survives(Fault::DeniesPublish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_between_write_and_publish() {
    every_operation_survives(Fault::KilledMidOperation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_between_write_and_publish() {
    every_operation_survives(Fault::CutBeforePublish).await;
}
