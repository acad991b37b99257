//! The server `scripts/bench.sh` loads with `wrk`: one axum "hello" route behind one of several
//! authentication set-ups, so they can be compared side by side. Not an example to copy.
//!
//! Environment:
//! - `MODE`: `bare` (no auth), `plain` (a hand-written jsonwebtoken middleware, the usual
//!   baseline), `naive` (that middleware plus one Redis `GET` per request), `layer`
//!   (`JwtAuthLayer` with the memory store), `remote` (the same, its key from a JWK Set served
//!   by an in-memory fetcher), `redis` (`JwtAuthLayer` with the Redis store) or `postgres`
//!   (`JwtAuthLayer` with the PostgreSQL store, `DATABASE_URL`; built with `--features postgres`);
//!   `introspect` (`JwtAuthLayer` introspecting opaque tokens, RFC 7662, through an
//!   in-process endpoint: after the first request, the introspection cache is measured);
//!   `noop` (a layer that does nothing) and `ext` (a layer that only inserts what the layer
//!   inserts: shared claims and the status) measure what any layer costs.
//! - `ALG`: `HS256` (default) or `ES256`.
//! - `CACHE`: `1` turns on the verified-token cache for `layer` and `redis` (default `1`).
//! - `TOKEN_SHAPE`: `default`, `large` (some 2 KB: 40 custom claims more) or `rotating` (1,000
//!   tokens for 1,000 users), as `benches/peers/src/shapes.rs` defines them for every server.
//! - `HANDLER`: `hello` (default) or `claims`: the handler takes the `Claims` extractor, then
//!   answers "hello" (modes with a `JwtAuthLayer` only: `layer`, `remote`, `redis`).
//! - `BIND` (default `127.0.0.1:3200`), `REDIS_URL` (for `naive` and `redis`), `TOKENS_FILE`
//!   (where the `rotating` tokens go; default a file in the temporary directory).
//!
//! Prints `TOKEN <jwt>` (or, for `rotating`, `TOKENS <path>` of a file with one token per line)
//! on stdout, then `READY`, then serves. The token length goes to stderr.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{DecodingKey, Validation};
use tower_token_auth::keys::{BoxError, JwkPolicy, RemoteJwks};
use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
use tower_token_auth::{
    Algorithm, Authentication, ClaimSet, Claims, JwtAuthLayer, KeySet, SigningKey, TokenIssuer,
    Verifier, VerifyingKey,
};

#[path = "../benches/peers/src/shapes.rs"]
mod shapes;
use shapes::{ISSUER, SCOPE, SECRET, Shape, TTL_SECS};

const ES256_PUBLIC: &str = include_str!("../src/testing/es256-public.pem");
const ES256_PRIVATE: &str = include_str!("../src/testing/es256-private.pem");

#[derive(Clone)]
struct Plain {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    redis: Option<redis::aio::ConnectionManager>,
}

/// What most hand-written JWT middlewares do: parse the header, decode, insert the claims.
async fn plain_auth(State(p): State<Plain>, mut req: Request, next: Next) -> Response {
    let Some(token) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let claims = match jsonwebtoken::decode::<ClaimSet>(token, &p.key, &p.validation) {
        Ok(data) => data.claims,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    if let Some(mut conn) = p.redis.clone() {
        let key = format!("revoked:{}", claims.jti.as_deref().unwrap_or(""));
        let revoked: Result<Option<String>, _> =
            redis::cmd("GET").arg(key).query_async(&mut conn).await;
        match revoked {
            Ok(None) => {}
            Ok(Some(_)) => return StatusCode::UNAUTHORIZED.into_response(),
            Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    req.extensions_mut().insert(claims);
    next.run(req).await
}

/// The [`Authentication`] `layer` puts into a request carrying `token`.
async fn authentication_of(layer: JwtAuthLayer, token: &str) -> anyhow::Result<Authentication> {
    use tower::{Layer as _, ServiceExt as _};
    let seen = Arc::new(std::sync::Mutex::new(None));
    let slot = seen.clone();
    let capture = layer.layer(tower::service_fn(move |req: Request| {
        *slot.lock().unwrap() = req.extensions().get::<Authentication>().cloned();
        async {
            Ok::<_, std::convert::Infallible>(axum::http::Response::new(axum::body::Body::empty()))
        }
    }));
    let req = Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())?;
    capture.oneshot(req).await?;
    let auth = seen.lock().unwrap().take();
    auth.ok_or_else(|| anyhow::anyhow!("the layer let the request through without Authentication"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let mode = std::env::var("MODE").unwrap_or_else(|_| "bare".into());
    let alg = std::env::var("ALG").unwrap_or_else(|_| "HS256".into());
    let cache = std::env::var("CACHE").map(|v| v != "0").unwrap_or(true);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3200".into());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_default();
    let shape = Shape::from_env().map_err(anyhow::Error::msg)?;
    let handler = std::env::var("HANDLER").unwrap_or_else(|_| "hello".into());

    let (algorithm, verifying, signing, decoding) = match alg.as_str() {
        "ES256" => (
            Algorithm::ES256,
            VerifyingKey::ec_pem(Algorithm::ES256, ES256_PUBLIC.as_bytes())?,
            SigningKey::ec_pem(Algorithm::ES256, ES256_PRIVATE.as_bytes())?,
            DecodingKey::from_ec_pem(ES256_PUBLIC.as_bytes())?,
        ),
        _ => (
            Algorithm::HS256,
            VerifyingKey::hmac(Algorithm::HS256, SECRET)?,
            SigningKey::hmac(Algorithm::HS256, SECRET)?,
            DecodingKey::from_secret(SECRET),
        ),
    };
    let issuer = TokenIssuer::new(signing)
        .issuer(ISSUER)
        .audience(ISSUER)
        .ttl(Duration::from_secs(TTL_SECS));
    let custom = shape.custom_claims();
    let tokens = shape
        .subjects()
        .iter()
        .map(|sub| Ok(issuer.issue_with(sub, SCOPE, &custom)?.token))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // MODE=introspect: opaque tokens (each JWT's signature segment: no dots, one per subject),
    // answered by an in-process introspection endpoint, so the cached path is what is measured.
    let tokens = if mode == "introspect" {
        tokens
            .iter()
            .map(|t| t.rsplit('.').next().unwrap_or_default().to_owned())
            .collect()
    } else {
        tokens
    };
    let token = tokens[0].clone();
    let mut verifier = Verifier::builder(KeySet::new().with_key(verifying)?)
        .issuer(ISSUER)
        .audience(ISSUER)
        .require_claims(["exp", "sub"]);
    if cache {
        verifier = verifier.verified_token_cache(16 << 20);
    }
    let verifier = verifier.build()?;

    let hello = match handler.as_str() {
        "hello" => Router::new().route("/", get(|| async { "hello" })),
        "claims" => {
            anyhow::ensure!(
                matches!(
                    mode.as_str(),
                    "layer" | "remote" | "redis" | "postgres" | "introspect"
                ),
                "HANDLER=claims needs a JwtAuthLayer: MODE layer, remote, redis, postgres or introspect"
            );
            Router::new().route(
                "/",
                get(|claims: Claims| async move {
                    std::hint::black_box(claims);
                    "hello"
                }),
            )
        }
        other => anyhow::bail!("unknown HANDLER {other} (hello or claims)"),
    };
    let app = match mode.as_str() {
        "bare" => hello,
        "plain" | "naive" => {
            // The same key and checks as the layer's verifier, through jsonwebtoken directly.
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[ISSUER]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            let redis = if mode == "naive" {
                let client = redis::Client::open(redis_url.as_str())?;
                Some(client.get_connection_manager().await?)
            } else {
                None
            };
            let plain = Plain {
                key: Arc::new(decoding),
                validation: Arc::new(validation),
                redis,
            };
            hello.layer(middleware::from_fn_with_state(plain, plain_auth))
        }
        "layer" => hello.layer(JwtAuthLayer::new(verifier)),
        // The same key from a JWK Set (served by an in-memory fetcher: the request path is
        // what is measured, not the fetch).
        "remote" => {
            use base64::Engine as _;
            let jwk = match algorithm {
                Algorithm::ES256 => {
                    let mut jwk: serde_json::Value =
                        serde_json::from_str(include_str!("../tests/keys/es256-public.jwk.json"))?;
                    jwk["alg"] = "ES256".into();
                    jwk
                }
                _ => serde_json::json!({
                    "kty": "oct", "alg": "HS256",
                    "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET),
                }),
            };
            let doc = serde_json::json!({ "keys": [jwk] }).to_string();
            let source = RemoteJwks::new(move || {
                let doc = doc.clone();
                async move { Ok::<_, BoxError>(doc) }
            })
            .policy(JwkPolicy::new());
            let mut builder = Verifier::builder(KeySet::new())
                .issuer(ISSUER)
                .audience(ISSUER)
                .require_claims(["exp", "sub"]);
            if cache {
                builder = builder.verified_token_cache(16 << 20);
            }
            hello.layer(JwtAuthLayer::new(builder.build_with_jwks(source).await?))
        }
        // Baselines for the cost of any layer: one that does nothing, and one that does what
        // the cached layer does besides authenticating (its one extension insert).
        "noop" => hello.layer(tower::util::MapRequestLayer::new(|r: Request| r)),
        "ext" => {
            // The very value the layer inserts, taken from one request through it.
            let auth = authentication_of(JwtAuthLayer::new(verifier), &token).await?;
            hello.layer(tower::util::MapRequestLayer::new(move |mut r: Request| {
                r.extensions_mut().insert(auth.clone());
                r
            }))
        }
        "redis" => {
            let store =
                RedisRevocationStore::connect(&redis_url, RedisStoreConfig::default()).await?;
            anyhow::ensure!(
                store.wait_live(Duration::from_secs(5)).await,
                "Redis not live"
            );
            hello.layer(JwtAuthLayer::new(verifier).with_revocation_store(store))
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            use tower_token_auth::revocation::{SqlRevocationConfig, SqlRevocationStore};
            let url = std::env::var("DATABASE_URL")
                .map_err(|_| anyhow::anyhow!("MODE=postgres needs DATABASE_URL"))?;
            let db = tower_token_auth::sql::Database::connect(&url).await?;
            let store = SqlRevocationStore::new(db, SqlRevocationConfig::default());
            anyhow::ensure!(
                store.wait_live(Duration::from_secs(5)).await,
                "PostgreSQL not live"
            );
            hello.layer(JwtAuthLayer::new(verifier).with_revocation_store(store))
        }
        "introspect" => {
            use tower_token_auth::introspection::{
                ClientAuth, IntrospectionRequest, IntrospectionResponse, Introspector,
            };
            let answer = serde_json::json!({
                "active": true, "token_type": "Bearer", "iss": ISSUER, "aud": ISSUER,
                "sub": "alice", "scope": SCOPE,
                "exp": now_secs() + TTL_SECS,
            })
            .to_string();
            let transport = move |_request: IntrospectionRequest| {
                let answer = answer.clone();
                async move {
                    Ok(IntrospectionResponse::new(
                        StatusCode::OK,
                        bytes::Bytes::from(answer),
                    ))
                }
            };
            let introspector = Introspector::builder(
                "http://127.0.0.1:9/introspect",
                ClientAuth::secret_basic("bench", "bench"),
            )?
            .transport(transport)
            .build()?;
            let verifier = Verifier::builder(KeySet::new())
                .issuer(ISSUER)
                .audience(ISSUER)
                .require_claims(["exp", "sub"])
                .introspect_all_tokens(introspector)
                .build()?;
            hello.layer(JwtAuthLayer::new(verifier))
        }
        other => anyhow::bail!("unknown MODE {other}"),
    };

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    shapes::announce(&tokens)?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
