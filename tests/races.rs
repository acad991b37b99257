//! A password change racing logins with the old password, on the real `quickstart` binary: 50
//! rounds, each with three clients logging in over and over while `POST /password` runs. Every
//! login that succeeded with the old password must be dead once both have returned: its access
//! token refused and its refresh token refreshing nothing — in memory, and on two instances
//! sharing Redis.

#[path = "support/quickstart.rs"]
mod quickstart;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};

use http::StatusCode;
use quickstart::{Pair, Quickstart, error_code, token_pair};
use redis_server::RedisServer;
use serde_json::json;

const ROUNDS: usize = 50;
const RACERS: usize = 3;

fn password(round: usize) -> String {
    if round == 0 {
        "alice-password".to_owned()
    } else {
        format!("alice-password-{round}")
    }
}

/// Logs in with `old` until `changed` is set; every pair obtained.
async fn log_in_until(qs: &Quickstart, old: &str, changed: &AtomicBool) -> Vec<Pair> {
    let mut pairs = Vec::new();
    while !changed.load(Ordering::SeqCst) {
        let res = qs.login("alice", old).await;
        match res.status {
            StatusCode::OK => pairs.push(token_pair(&res)),
            // The new password is in place, or the login lost the race and was told so.
            StatusCode::UNAUTHORIZED => {}
            _ => panic!("login: {res:?}"),
        }
    }
    pairs
}

/// Runs the rounds on `a` (logins and password changes); checks on every instance.
async fn race(a: &Quickstart, others: &[&Quickstart]) {
    let mut obtained = 0;
    for round in 0..ROUNDS {
        let (old, new) = (password(round), password(round + 1));
        let access = a.token("alice", &old).await;
        let changed = AtomicBool::new(false);
        let change = async {
            let body = json!({ "current_password": old, "new_password": new });
            let res = a.post("/password", Some(&access), Some(&body)).await;
            assert_eq!(res.status, StatusCode::NO_CONTENT, "round {round}: {res:?}");
            changed.store(true, Ordering::SeqCst);
        };
        let racers =
            futures_util::future::join_all((0..RACERS).map(|_| log_in_until(a, &old, &changed)));
        let (_, pairs) = tokio::join!(change, racers);
        for pair in pairs.into_iter().flatten() {
            obtained += 1;
            for instance in std::iter::once(a).chain(others.iter().copied()) {
                instance
                    .eventually_me(&pair.access, StatusCode::UNAUTHORIZED)
                    .await;
            }
            let res = a.refresh(&pair.refresh).await;
            assert_eq!(
                (res.status, error_code(&res).as_str()),
                (StatusCode::BAD_REQUEST, "invalid_grant"),
                "round {round}: a refresh token obtained with the old password survived: {res:?}"
            );
        }
    }
    // The race was run: logins with the old password did succeed before each change.
    assert!(
        obtained >= ROUNDS,
        "only {obtained} logins raced the changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_logins_in_flight_in_memory() {
    let qs = Quickstart::start().await;
    race(&qs, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_logins_in_flight_on_redis() {
    let redis = RedisServer::start();
    let a = Quickstart::start_with(&[("REDIS_URL", &redis.url())]).await;
    let b = Quickstart::start_with(&[("REDIS_URL", &redis.url())]).await;
    race(&a, &[&b]).await;
    drop((a, b));
}
