//! `JwtAuthLayer` around a bare hyper 1 service: no axum, just tower + hyper-util.
//!
//! ```sh
//! cargo run --example hyper_server
//! ```
//!
//! Serves on `127.0.0.1:3001` (`BIND` overrides). There is no login route: at start-up the
//! example mints a token with a random HS256 secret and prints a `curl` command that uses it.
//! The handler reads the verified claims from the request extensions.
//!
//! This file is self-contained: copied alone as `src/main.rs` of a new crate, it builds with
//! these dependencies (`scripts/test.sh` checks exactly that, with this list):
//!
//! ```toml
//! [dependencies]
//! tower-token-auth = { version = "0.1", default-features = false, features = ["aws_lc_rs"] }
//! anyhow = "1"
//! bytes = "1"
//! http-body-util = "0.1"
//! hyper = { version = "1", features = ["server", "http1"] }
//! hyper-util = { version = "0.1", features = ["tokio", "service"] }
//! rand = "0.9"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread", "net", "signal"] }
//! tower = { version = "0.5", features = ["util"] }
//! tracing = "0.1"
//! tracing-subscriber = { version = "0.3", features = ["env-filter"] }
//! ```

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rand::RngCore;
use tower::{ServiceBuilder, service_fn};
use tower_token_auth::{
    Algorithm, Claims, JwtAuthLayer, KeySet, NoCustomClaims, SigningKey, TokenIssuer, Verifier,
    VerifyingKey,
};
use tracing_subscriber::EnvFilter;

const ISSUER: &str = "hyper-server";
const DEFAULT_BIND: &str = "127.0.0.1:3001";

/// The application: only reached with a verified token, whose claims the layer inserted.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let sub = Claims::<NoCustomClaims>::from_extensions(req.extensions())
        .and_then(|claims| claims.sub.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(format!("hello, {sub}\n"))))
}

/// Logs to stderr, `RUST_LOG` or `info,tower_token_auth=debug`.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_token_auth=debug")),
        )
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();

    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let keys = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &secret)?)?;
    let verifier = Verifier::builder(keys)
        .issuer(ISSUER)
        .audience(ISSUER)
        .require_claims(["exp", "sub"])
        .build()?;
    let issuer = TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &secret)?)
        .issuer(ISSUER)
        .audience(ISSUER)
        .ttl(Duration::from_secs(60 * 60));
    let token = issuer.issue("alice", "read")?.token;

    let service = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier))
        .service(service_fn(hello));

    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "hyper_server listening");
    println!(
        "\n# with the token (200, valid for one hour):\n\
         curl -i http://{addr}/ -H 'Authorization: Bearer {token}'\n\n\
         # without it (401, WWW-Authenticate: Bearer):\n\
         curl -i http://{addr}/\n"
    );

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection error");
            }
        });
    }
}
