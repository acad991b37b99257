//! No token, cookie value or key reaches the logs: every rejection is logged with its reason
//! only. The test captures all `tracing` output (TRACE level) while bad and good requests go
//! through the layer, then searches it for any token material.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use tower::{ServiceExt, service_fn};
use tower_token_auth::testing::TestKeys;
use tower_token_auth::{AccessCookie, JwtAuthLayer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn rejections_never_log_tokens() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
