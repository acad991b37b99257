//! No token, cookie value or key reaches the logs: every rejection is logged with its reason
//! only. The tests capture all `tracing` output (TRACE level) while the whole bad-input suite,
//! and good requests, go through the layer, then search it for any token material.

#[path = "support/bad_inputs.rs"]
mod bad_inputs;
#[path = "support/log_capture.rs"]
mod log_capture;

use log_capture::Capture;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use tower::{ServiceExt, service_fn};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, JwtAuthLayer};

/// One test, so one thread: `tracing` caches callsite interest from whichever thread meets a
/// callsite first, and a parallel test thread without the capture could cache "never".
#[tokio::test(flavor = "current_thread")]
async fn no_credentials_in_logs() {
    let (capture, _guard) = Capture::start();
    rejections_never_log_tokens(&capture).await;
    the_bad_input_suite_logs_no_credentials(&capture).await;
}

async fn rejections_never_log_tokens(capture: &Capture) {
    let keys = TestKeys::hs256();
    let layer = JwtAuthLayer::new(keys.verifier())
        .with_cookie(AccessCookie::new("at"))
        .unwrap();
    let good = keys.mint("alice", "read");
    let sig = good.rsplit('.').next().unwrap().to_owned();
    let forged = format!("{}x", &good[..good.len() - 1]);
    let secrets = [
        good.clone(),
        sig,
        forged.clone(),
        "c2VjcmV0LWNvb2tpZQ".to_owned(),
    ];

    let requests = vec![
        ("authorization", format!("Bearer {good}")),
        ("authorization", format!("Bearer {forged}")),
        ("authorization", format!("bearer {}", &good[..40])),
        ("cookie", format!("at={forged}")),
        ("cookie", "at=c2VjcmV0LWNvb2tpZQ".to_owned()),
        ("authorization", format!("Bearer {}", "c2VjcmV0LWNvb2tpZQ")),
    ];
    for (name, value) in requests {
        let svc = tower::ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
            }));
        let req = Request::builder()
            .header(name, value)
            .header(header::USER_AGENT, "t")
            .body(Full::default())
            .unwrap();
        svc.oneshot(req).await.unwrap();
    }

    let logs = capture.text();
    assert!(
        logs.contains("request not authenticated"),
        "the capture works and rejections are logged:\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "secret material in logs:\n{logs}"
        );
    }
}

/// The whole bad-input suite of `tests/layer.rs`, under capture.
async fn the_bad_input_suite_logs_no_credentials(capture: &Capture) {
    let f = bad_inputs::fixture();
    let cases = bad_inputs::cases(&f);
    // Every credential sent (the part after the scheme or the cookie name).
    let mut secrets = Vec::new();
    for (_, req, _) in &cases {
        for name in [header::AUTHORIZATION, header::COOKIE] {
            for v in req.headers().get_all(&name) {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                for part in v.split([' ', ';', '=']) {
                    if part.len() >= 16 {
                        secrets.push(part.to_owned());
                    }
                }
            }
        }
    }
    assert!(secrets.len() >= 30, "the cases carry credentials");
    let count = cases.len();
    for (name, req, expect) in cases {
        let out = bad_inputs::send(&f.layer, req).await;
        bad_inputs::check(name, &out, expect);
    }
    let logs = capture.text();
    let rejections = logs.matches("request not authenticated").count();
    assert!(
        rejections >= count - 10,
        "{rejections} rejections logged for {count} cases"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "credential in the logs: {secret}"
        );
    }
}
