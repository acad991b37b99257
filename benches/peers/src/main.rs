//! `peers_server`: the axum "hello" route of `examples/bench_server.rs` behind another crate's
//! JWT authentication, for `scripts/bench.sh` to compare tower-token-auth with. Not an example
//! to copy.
//!
//! Environment, as for bench_server:
//! - `MODE`: `jwt-authorizer` (its `Authorizer` as a tower layer on the router) or
//!   `axum-jwt-auth` (its `Claims<T>` extractor in the handler, the way that crate works; the
//!   handler answers "hello").
//! - `ALG`: `HS256` (default) or `ES256`.
//! - `TOKEN_SHAPE`: `default`, `large` or `rotating` (see `shapes.rs`).
//! - `BIND` (default `127.0.0.1:3200`), `TOKENS_FILE` (where the `rotating` tokens go).
//!
//! Each verifies the same key, `iss`, `aud` and `exp` as bench_server's plain jsonwebtoken
//! middleware, and the tokens are minted as tower-token-auth's `TokenIssuer` mints them (header
//! `alg` and `typ: JWT`, no `kid`; claims `sub`, `jti`, `iat`, `exp`, `iss`, `aud`, `scope` and
//! the shape's own). Each peer decodes the registered claims into a struct of its own.
//!
//! Prints `TOKEN <jwt>` or `TOKENS <path>` on stdout, then `READY`, then serves.

mod shapes;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore as _;
use serde::Deserialize;
use shapes::{ISSUER, SCOPE, SECRET, Shape, TTL_SECS};

const ES256_PUBLIC: &str = include_str!("../../../src/testing/es256-public.pem");
const ES256_PRIVATE: &str = include_str!("../../../src/testing/es256-private.pem");

/// The registered claims the tokens carry, as an application using a peer would declare them.
#[derive(Clone, Debug, Deserialize)]
#[allow(dead_code)] // decoded, not read
struct PeerClaims {
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
    iss: String,
    aud: String,
    scope: String,
}

/// What `TokenIssuer::issue_with` writes, through jsonwebtoken directly.
fn mint(alg: Algorithm, key: &EncodingKey, shape: Shape) -> anyhow::Result<Vec<String>> {
    let header = Header::new(alg);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    shape
        .subjects()
        .into_iter()
        .map(|sub| {
            let mut jti = [0u8; 16];
            rand::rng().fill_bytes(&mut jti);
            let mut claims = shape.custom_claims();
            claims.insert("sub".into(), sub.into());
            claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(jti).into());
            claims.insert("iat".into(), now.into());
            claims.insert("exp".into(), (now + TTL_SECS).into());
            claims.insert("iss".into(), ISSUER.into());
            claims.insert("aud".into(), ISSUER.into());
            claims.insert("scope".into(), SCOPE.into());
            Ok(jsonwebtoken::encode(&header, &claims, key)?)
        })
        .collect()
}

/// jwt-authorizer's service answers its errors with axum 0.7 responses (`From<AuthError>`);
/// this wrapper lets it sit between two axum 0.8 services. On the success path it only wraps
/// and unwraps the route's response.
struct Peer(Response);

impl From<jwt_authorizer::AuthError> for Peer {
    fn from(e: jwt_authorizer::AuthError) -> Self {
        let (parts, body) = axum07::response::Response::from(e).into_parts();
        Peer(Response::from_parts(parts, axum::body::Body::new(body)))
    }
}

async fn hello_with_claims(claims: axum_jwt_auth::Claims<PeerClaims>) -> &'static str {
    std::hint::black_box(claims);
    "hello"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let mode = std::env::var("MODE").context("MODE: jwt-authorizer or axum-jwt-auth")?;
    let alg = std::env::var("ALG").unwrap_or_else(|_| "HS256".into());
    let shape = Shape::from_env().map_err(anyhow::Error::msg)?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3200".into());

    let (algorithm, encoding) = match alg.as_str() {
        "ES256" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(ES256_PRIVATE.as_bytes())?,
        ),
        "HS256" => (Algorithm::HS256, EncodingKey::from_secret(SECRET)),
        other => anyhow::bail!("unknown ALG {other}"),
    };
    let tokens = mint(algorithm, &encoding, shape)?;

    let app = match mode.as_str() {
        "jwt-authorizer" => {
            use jwt_authorizer::{AuthorizerBuilder, IntoLayer as _, JwtAuthorizer, Validation};
            let builder: AuthorizerBuilder<PeerClaims> = match algorithm {
                Algorithm::ES256 => JwtAuthorizer::from_ec_pem_text(ES256_PUBLIC),
                _ => JwtAuthorizer::from_secret(std::str::from_utf8(SECRET)?),
            };
            let authorizer = builder
                .validation(Validation::new().iss(&[ISSUER]).aud(&[ISSUER]))
                .build()
                .await?;
            let layer = tower::ServiceBuilder::new()
                .map_response(|r: Peer| r.0)
                .layer(authorizer.into_layer())
                .map_response(Peer);
            Router::new()
                .route("/", get(|| async { "hello" }))
                .layer(layer)
        }
        "axum-jwt-auth" => {
            use jsonwebtoken10::{Algorithm as Alg10, DecodingKey, Validation};
            let (alg10, key) = match algorithm {
                Algorithm::ES256 => (
                    Alg10::ES256,
                    DecodingKey::from_ec_pem(ES256_PUBLIC.as_bytes())?,
                ),
                _ => (Alg10::HS256, DecodingKey::from_secret(SECRET)),
            };
            let mut validation = Validation::new(alg10);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            let decoder = axum_jwt_auth::LocalDecoder::builder()
                .keys(vec![key])
                .validation(validation)
                .build()?;
            let decoder: axum_jwt_auth::Decoder<PeerClaims> = Arc::new(decoder);
            Router::new()
                .route("/", get(hello_with_claims))
                .with_state(decoder)
        }
        other => anyhow::bail!("unknown MODE {other} (jwt-authorizer or axum-jwt-auth)"),
    };

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    shapes::announce(&tokens)?;
    axum::serve(listener, app).await?;
    Ok(())
}
