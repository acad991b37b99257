//! Runs the real `hyper_server` example (a bare hyper service that ignores the method) and
//! checks that nothing reaches it without a token, CORS preflights included.

mod support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use support::{ChildGuard, Http, free_port};

/// The token the example prints for `curl`.
fn printed_token(log: &str) -> Option<String> {
    let start = log.find("Authorization: Bearer ")? + "Authorization: Bearer ".len();
    let rest = &log[start..];
    Some(rest[..rest.find('\'')?].to_owned())
}

#[tokio::test]
async fn preflights_and_plain_requests_need_a_token() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = ChildGuard::spawn_example("hyper_server", &[("BIND", &bind)]);
    let http = Http::new();
    let url = format!("http://{bind}/anything");
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let Some(status) = child.try_exit() {
            panic!(
                "hyper_server exited early ({status}); log:\n{}",
                child.log()
            );
        }
        if let Some(token) = printed_token(&child.log())
            && http.try_send(Method::GET, &url, None, None).await.is_ok()
        {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "hyper_server not ready; log:\n{}",
            child.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let preflight = http
        .send_with(
            Method::OPTIONS,
            &url,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
                ("access-control-request-headers", "authorization"),
            ],
            None,
        )
        .await;
    assert_eq!(
        preflight.status,
        StatusCode::UNAUTHORIZED,
        "a preflight without a token must not reach a handler that ignores the method: {:?}",
        preflight.body
    );
    assert!(!String::from_utf8_lossy(&preflight.body).contains("hello"));

    let plain = http.send(Method::OPTIONS, &url, None, None).await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
    let anonymous = http.send(Method::GET, &url, None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let ok = http.send(Method::GET, &url, Some(&token), None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(&ok.body[..], b"hello, alice\n");
}
