//! What `JwtAuthLayer` costs per request, next to the bare service and to `jsonwebtoken` alone.
//!
//! Groups `hs256/*` and `es256/*`, each with:
//! - `bare`: a request through a `tower::service_fn` returning `Response<Full<Bytes>>`;
//! - `layer`: the same request through `JwtAuthLayer::new(verifier)` (default memory
//!   revocation store) wrapping that service, with a valid `Authorization: Bearer` token;
//! - `raw_decode`: `jsonwebtoken::decode::<ClaimSet>` of the same token with the same key and
//!   the `Validation` the verifier compiles (alg pinned, 30 s leeway, `iss`/`aud` set,
//!   `exp`/`sub`/`iss`/`aud` required, `nbf` validated);
//! - `verify`: `Verifier::verify::<NoCustomClaims>` alone.
//!
//! Group `parts/*` (HS256 token unless named) measures the pieces the layer adds on top of
//! `raw_decode`, to explain where the time goes.
//!
//! Group `remote_jwks/*`: the ES256 layer with its key given statically and fetched from a
//! JWK Set (in memory), side by side.
//!
//! After criterion, `paired/*` (printed to stdout, not saved by criterion) measures the same
//! four cases interleaved round by round, so that load from other processes on a shared
//! machine cannot skew their ratios, plus an emulation of the layer from public pieces and
//! three emulated candidate fixes. See docs/performance.md.
//!
//! The memory store answers synchronously and the handler is an `async fn` that never awaits,
//! so every response future completes on its first poll: requests are driven
//! by polling once with a no-op waker (asserted), with no executor in the measurement. The
//! request is built in criterion's untimed setup (`iter_batched`), identically for `bare` and
//! `layer`, and responses are dropped outside the timing.
//!
//! Run: `cargo bench --bench layer`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tower::{Layer, Service, service_fn};
use tower_token_auth::revocation::{RevocationCheck, RevocationStatus, TokenRef};
use tower_token_auth::testing::{TEST_ISSUER, TestKeys};
use tower_token_auth::{
    Authentication, ClaimSet, Claims, JwtAuthLayer, KeySet, MemoryStore, NoCustomClaims,
    RevocationStore, SigningKey, TokenIssuer, Verifier, VerifierBuilder, VerifyingKey,
};

const HS256_SECRET: &[u8; 32] = b"benchmark-secret-of-32-bytes!!!!";
const ES256_PUBLIC: &str = include_str!("../src/testing/es256-public.pem");

/// Everything one algorithm's group needs.
struct Case {
    name: &'static str,
    alg: Algorithm,
    keys: KeySet,
    verifier: Verifier,
    token: String,
    decoding_key: DecodingKey,
    /// The same key by kid, for [`verify_min_header`].
    keys_by_kid: HashMap<String, DecodingKey>,
    validation: Validation,
}

/// The `Validation` `Verifier::build` compiles for the verifier of `TestKeys::verifier()`.
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 30;
    v.validate_nbf = true;
    v.validate_exp = true;
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v.set_issuer(&[TEST_ISSUER]);
    v.set_audience(&[TEST_ISSUER]);
    v
}

impl Case {
    /// The configuration `TestKeys::verifier()` builds, over this case's keys.
    fn verifier_builder(&self) -> VerifierBuilder {
        Verifier::builder(self.keys.clone())
            .issuer(TEST_ISSUER)
            .audience(TEST_ISSUER)
            .require_claims(["exp", "sub"])
    }
}

/// HS256 like `TestKeys::hs256()`, but with a secret this file knows, so `raw_decode` can use
/// the same key (`TestKeys` draws a random secret and does not expose it).
fn hs256() -> Case {
    let verifying = VerifyingKey::hmac(Algorithm::HS256, HS256_SECRET)
        .expect("hmac key")
        .with_kid("test-hs256");
    let keys = KeySet::new().with_key(verifying).expect("key set");
    let verifier = Verifier::builder(keys.clone())
        .issuer(TEST_ISSUER)
        .audience(TEST_ISSUER)
        .require_claims(["exp", "sub"])
        .build()
        .expect("verifier");
    let signing = SigningKey::hmac(Algorithm::HS256, HS256_SECRET)
        .expect("hmac key")
        .with_kid("test-hs256");
    let issuer = TokenIssuer::new(signing)
        .issuer(TEST_ISSUER)
        .audience(TEST_ISSUER)
        .ttl(Duration::from_secs(3600));
    Case {
        name: "hs256",
        alg: Algorithm::HS256,
        keys,
        verifier,
        token: issuer.issue("alice", "read write").expect("token").token,
        decoding_key: DecodingKey::from_secret(HS256_SECRET),
        keys_by_kid: HashMap::from([(
            "test-hs256".to_owned(),
            DecodingKey::from_secret(HS256_SECRET),
        )]),
        validation: validation(Algorithm::HS256),
    }
}

/// `TestKeys::es256()`: its verifier, a token from its issuer (1 h TTL so a long run cannot
/// outlive it), and the same published public key for `raw_decode`.
fn es256() -> Case {
    let keys = TestKeys::es256();
    let issuer = keys.issuer().ttl(Duration::from_secs(3600));
    Case {
        name: "es256",
        alg: Algorithm::ES256,
        keys: keys.key_set(),
        verifier: keys.verifier(),
        token: issuer.issue("alice", "read write").expect("token").token,
        decoding_key: DecodingKey::from_ec_pem(ES256_PUBLIC.as_bytes()).expect("EC key"),
        keys_by_kid: HashMap::from([(
            "test-es256".to_owned(),
            DecodingKey::from_ec_pem(ES256_PUBLIC.as_bytes()).expect("EC key"),
        )]),
        validation: validation(Algorithm::ES256),
    }
}

/// Polls `fut` once: everything benchmarked here completes without waiting.
fn ready_now<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("future not ready at first poll"),
    }
}

/// `ready` + `call`, as a server drives a service.
fn call<S, R>(svc: &mut S, req: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(r) => r.expect("service ready"),
        Poll::Pending => panic!("service not ready"),
    }
    ready_now(svc.call(req)).expect("response")
}

/// The handler: a fixed 200 with a small body.
async fn handle(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn request(auth: &HeaderValue) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.uri_mut() = http::Uri::from_static("/orders");
    req.headers_mut()
        .insert(header::AUTHORIZATION, auth.clone());
    req
}

fn bench_alg(c: &mut Criterion, case: &Case) {
    let mut bare = service_fn(handle);
    let mut layered = JwtAuthLayer::new(case.verifier.clone()).layer(service_fn(handle));
    let auth = HeaderValue::try_from(format!("Bearer {}", case.token)).expect("header value");

    // Sanity: every path accepts the token, and the layer really checks it.
    let claims = case
        .verifier
        .verify::<NoCustomClaims>(&case.token)
        .expect("verify");
    assert_eq!(claims.sub.as_deref(), Some("alice"));
    jsonwebtoken::decode::<ClaimSet>(&case.token, &case.decoding_key, &case.validation)
        .expect("raw decode");
    assert_eq!(call(&mut layered, request(&auth)).status(), StatusCode::OK);
    let tampered = HeaderValue::try_from(format!("Bearer {}x", case.token)).expect("header");
    assert_eq!(
        call(&mut layered, request(&tampered)).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(case.validation.algorithms, [case.alg]);

    let mut g = c.benchmark_group(case.name);
    g.bench_function("bare", |b| {
        b.iter_batched(
            || request(&auth),
            |req| call(&mut bare, req),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("layer", |b| {
        b.iter_batched(
            || request(&auth),
            |req| call(&mut layered, req),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("raw_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<ClaimSet>(
                black_box(case.token.as_str()),
                &case.decoding_key,
                &case.validation,
            )
            .expect("raw decode")
        });
    });
    g.bench_function("verify", |b| {
        b.iter(|| {
            case.verifier
                .verify::<NoCustomClaims>(black_box(case.token.as_str()))
                .expect("verify")
        });
    });
    g.finish();
}

/// `Claims` without `#[serde(flatten)]`: what the registered claims cost to deserialize when
/// serde does not have to buffer the object for a flattened field.
#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only
struct PlainClaims {
    sub: Option<String>,
    jti: Option<String>,
    iss: Option<String>,
    aud: Option<tower_token_auth::Audience>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    scope: Option<String>,
    sid: Option<String>,
    amr: Option<Vec<String>>,
}

/// The JOSE header fields the verifier actually reads, borrowed, without `Header`'s
/// flattened `extras` map: what a single, minimal header parse would cost.
#[derive(Deserialize)]
#[allow(dead_code)] // read by serde only
struct MinimalHeader<'a> {
    alg: Algorithm,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// A copy of the crate's private `source::is_b64token` (RFC 6750 token68 check), run by the
/// layer over every bearer token.
fn is_b64token_copy(token: &[u8]) -> bool {
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0
        && token[..body_end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The same check with a 256-entry lookup table: a candidate replacement.
fn is_b64token_table(token: &[u8]) -> bool {
    const TABLE: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] = b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b'_'
                || b == b'~'
                || b == b'+'
                || b == b'/';
            i += 1;
        }
        t
    };
    let body_end = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0 && token[..body_end].iter().all(|&b| TABLE[usize::from(b)])
}

/// The pieces of the request path, on the HS256 token.
fn bench_parts(c: &mut Criterion, hs: &Case, es: &Case) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let token = hs.token.as_str();
    let mut parts = token.split('.');
    let (_, payload_b64, _) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).expect("payload base64");
    let claims: Claims = serde_json::from_slice(&payload).expect("claims");
    let store = MemoryStore::new();

    let mut g = c.benchmark_group("parts");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    // The verifier parses the header once more than `decode` does.
    g.bench_function("decode_header", |b| {
        b.iter(|| jsonwebtoken::decode_header(black_box(token)).expect("header"));
    });
    // The same header, base64 + a borrowed struct of `alg`/`kid`/`typ`/`crit` only.
    let header_b64 = token.split('.').next().expect("header");
    g.bench_function("header_minimal", |b| {
        b.iter(|| {
            let json = URL_SAFE_NO_PAD
                .decode(black_box(header_b64))
                .expect("base64");
            let h: MinimalHeader<'_> = serde_json::from_slice(&json).expect("header");
            black_box(h.alg);
        });
    });
    // The token68 syntax check the layer runs on the bearer token (copy of a private fn).
    g.bench_function("is_b64token_copy", |b| {
        b.iter(|| assert!(is_b64token_copy(black_box(token.as_bytes()))));
    });
    g.bench_function("is_b64token_table", |b| {
        b.iter(|| assert!(is_b64token_table(black_box(token.as_bytes()))));
    });
    // base64url decode of the payload (done once per `decode`).
    g.bench_function("payload_base64", |b| {
        b.iter(|| {
            URL_SAFE_NO_PAD
                .decode(black_box(payload_b64))
                .expect("base64")
        });
    });
    // The claims deserialization `decode` does into `Claims` (flatten) ...
    g.bench_function("claims_json_flatten", |b| {
        b.iter(|| serde_json::from_slice::<Claims>(black_box(&payload)).expect("claims"));
    });
    // ... and the same without the flattened `custom` field.
    g.bench_function("claims_json_plain", |b| {
        b.iter(|| serde_json::from_slice::<PlainClaims>(black_box(&payload)).expect("claims"));
    });
    // Signature check alone, through jsonwebtoken's provider (includes base64 of the signature
    // and building the verifier from the key, as `decode` does).
    for case in [hs, es] {
        let (message, signature) = case.token.rsplit_once('.').expect("signature");
        g.bench_function(format!("signature_{}", case.name), |b| {
            b.iter(|| {
                let ok = jsonwebtoken::crypto::verify(
                    black_box(signature),
                    black_box(message.as_bytes()),
                    &case.decoding_key,
                    case.alg,
                )
                .expect("verify");
                assert!(ok);
            });
        });
    }
    // `verify` with the verified-token cache (off by default, so not in the groups above): a
    // hit skips header, signature and claims parsing; what is left is hashing the token,
    // the exp/nbf recheck and cloning the claims.
    for case in [hs, es] {
        let cached = case
            .verifier_builder()
            .verified_token_cache(1 << 20)
            .build()
            .expect("verifier");
        cached
            .verify::<NoCustomClaims>(&case.token)
            .expect("verify");
        g.bench_function(format!("verify_cached_{}", case.name), |b| {
            b.iter(|| {
                cached
                    .verify::<NoCustomClaims>(black_box(case.token.as_str()))
                    .expect("verify")
            });
        });
    }
    // The revocation check of the default store while nothing is revoked.
    g.bench_function("memory_store_check", |b| {
        let token_ref = TokenRef::new()
            .jti(claims.jti.as_deref())
            .sub(claims.sub.as_deref())
            .iat(claims.iat)
            .exp(claims.exp)
            .sid(claims.sid.as_deref());
        b.iter(|| store.check(black_box(&token_ref)));
    });
    // Moving the claims (status included) into the request's (empty) extensions.
    g.bench_function("extensions_insert", |b| {
        b.iter_batched(
            || (http::Extensions::new(), claims.clone()),
            |(mut ext, claims)| {
                ext.insert(Authentication::authenticated(claims));
                ext
            },
            BatchSize::SmallInput,
        );
    });
    // Dropping the claims alone (`raw_decode` and `verify` pay this too).
    g.bench_function("claims_drop", |b| {
        b.iter_batched(|| claims.clone(), drop, BatchSize::SmallInput);
    });
    // Dropping a request without and with the claims: the inner service drops it in both
    // `bare` and `layer`, the extensions are what `layer` adds.
    g.bench_function("request_drop_plain", |b| {
        b.iter_batched(
            || request(&HeaderValue::from_static("Bearer x")),
            drop,
            BatchSize::SmallInput,
        );
    });
    g.bench_function("request_drop_with_claims", |b| {
        b.iter_batched(
            || {
                let mut req = request(&HeaderValue::from_static("Bearer x"));
                req.extensions_mut()
                    .insert(Authentication::authenticated(claims.clone()));
                req
            },
            drop,
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

/// The ES256 layer with its key from a remote JWK Set (served by a fetcher in memory) beside
/// the same layer with the key given statically: the key handle the verifier reads must cost
/// nothing measurable.
fn bench_remote(c: &mut Criterion, es: &Case) {
    let mut jwk: serde_json::Value =
        serde_json::from_str(include_str!("../tests/keys/es256-public.jwk.json")).expect("jwk");
    jwk["kid"] = "test-es256".into();
    jwk["alg"] = "ES256".into();
    let doc = serde_json::json!({ "keys": [jwk] }).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let remote = runtime.block_on(async {
        es.verifier_builder()
            .build_with_jwks(tower_token_auth::keys::RemoteJwks::new(move || {
                let doc = doc.clone();
                async move { Ok::<_, tower_token_auth::keys::BoxError>(doc) }
            }))
            .await
            .expect("remote verifier")
    });
    let auth = HeaderValue::try_from(format!("Bearer {}", es.token)).expect("header value");
    let mut fixed = JwtAuthLayer::new(es.verifier.clone()).layer(service_fn(handle));
    let mut fetched = JwtAuthLayer::new(remote).layer(service_fn(handle));
    assert_eq!(call(&mut fetched, request(&auth)).status(), StatusCode::OK);
    let mut g = c.benchmark_group("remote_jwks");
    g.bench_function("es256_static_keys", |b| {
        b.iter_batched(
            || request(&auth),
            |req| call(&mut fixed, req),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("es256_remote_jwks", |b| {
        b.iter_batched(
            || request(&auth),
            |req| call(&mut fetched, req),
            BatchSize::SmallInput,
        );
    });
    g.finish();
    drop(runtime);
}

fn benches(c: &mut Criterion) {
    let hs = hs256();
    let es = es256();
    bench_alg(c, &hs);
    bench_alg(c, &es);
    bench_parts(c, &hs, &es);
    bench_remote(c, &es);
}

criterion_group! {
    name = layer;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(100);
    targets = benches
}
/// Nanoseconds per request handled by `handle`, over `iters` requests built beforehand; the
/// responses are dropped after the clock stops (as `iter_batched` does).
fn time_requests<O>(
    auth: &HeaderValue,
    iters: usize,
    mut handle: impl FnMut(Request<Full<Bytes>>) -> O,
) -> f64 {
    let requests: Vec<_> = (0..iters).map(|_| request(auth)).collect();
    let mut responses = Vec::with_capacity(iters);
    let start = Instant::now();
    for req in requests {
        responses.push(handle(req));
    }
    let elapsed = start.elapsed();
    drop(responses);
    elapsed.as_nanos() as f64 / iters as f64
}

/// Nanoseconds per call of `f`, output dropped inside the timing (as `iter` does).
fn time_calls<O>(iters: usize, mut f: impl FnMut() -> O) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Which token68 check [`emulated`] runs.
#[derive(Clone, Copy)]
enum Token68 {
    /// A copy of the crate's.
    Copy,
    /// The lookup-table candidate.
    Table,
    /// Not on the success path: a token that verifies is base64url and dots, always valid
    /// token68, so the check can run only when verification fails, to pick 400 or 401.
    Deferred,
}

/// How [`emulated`] verifies.
#[derive(Clone, Copy)]
enum Verify<'a> {
    /// `Verifier::verify`.
    Crate(&'a Verifier),
    /// [`verify_min_header`], the candidate.
    MinHeader(&'a Case),
    /// [`verify_single_key`], the candidate for one-key sets.
    SingleKey(&'a Case),
}

/// The layer's success path rebuilt from public pieces and copies of its private helpers:
/// bearer parsing with the token68 check, verification, the revocation check, the two
/// extension inserts, the inner service. With `Token68::Copy` and `Verify::Crate` it does
/// what `layer` does; what `layer` costs beyond it is the layer's own plumbing.
fn emulated<S>(
    inner: &mut S,
    token68: Token68,
    verify: Verify<'_>,
    store: &dyn RevocationStore,
    mut req: Request<Full<Bytes>>,
) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let value = req.headers().get(header::AUTHORIZATION).expect("header");
    let bytes = value.as_bytes();
    assert!(bytes.len() > 7 && bytes[..6].eq_ignore_ascii_case(b"bearer") && bytes[6] == b' ');
    let token = bytes[6..].trim_ascii();
    assert!(match token68 {
        Token68::Copy => is_b64token_copy(token),
        Token68::Table => is_b64token_table(token),
        Token68::Deferred => true,
    });
    let token = std::str::from_utf8(token).expect("ascii");
    let claims = match verify {
        Verify::Crate(verifier) => verifier.verify::<NoCustomClaims>(token).expect("verify"),
        Verify::MinHeader(case) => verify_min_header(case, token),
        Verify::SingleKey(case) => verify_single_key(case, token),
    };
    let check = store.check(
        &TokenRef::new()
            .jti(claims.jti.as_deref())
            .sub(claims.sub.as_deref())
            .iat(claims.iat)
            .exp(claims.exp)
            .sid(claims.sid.as_deref()),
    );
    assert!(matches!(
        check,
        RevocationCheck::Ready(Ok(RevocationStatus::Active))
    ));
    req.extensions_mut()
        .insert(Authentication::authenticated(claims));
    call(inner, req)
}

/// A candidate for `Verifier::verify`: the same checks, but the key is chosen from a
/// [`MinimalHeader`] (borrowed `alg`/`kid`/`typ`/`crit`, no flattened map) instead of a full
/// `jsonwebtoken::Header`. `jsonwebtoken::decode` still parses the full header twice itself.
fn verify_min_header(case: &Case, token: &str) -> Claims {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let header_b64 = token.split('.').next().expect("header");
    let json = URL_SAFE_NO_PAD.decode(header_b64).expect("base64");
    let header: MinimalHeader<'_> = serde_json::from_slice(&json).expect("header");
    // The verifier's key lookup: a map by kid, then the pinned algorithm.
    let key = case
        .keys_by_kid
        .get(header.kid.as_deref().expect("kid"))
        .expect("known kid");
    assert!(header.alg == case.alg && header.crit.is_none());
    jsonwebtoken::decode::<Claims>(token, key, &case.validation)
        .expect("decode")
        .claims
}

/// A candidate for `Verifier::verify` when the key set holds one key: no header parse of its
/// own; `jsonwebtoken::decode` verifies with the one key (alg pinned by its `Validation`),
/// then the header it returns is checked (`kid` must name that key, no `crit`). A failing
/// token could still be parsed again to report `UnknownKey` rather than a bad signature.
fn verify_single_key(case: &Case, token: &str) -> Claims {
    let data = jsonwebtoken::decode::<Claims>(token, &case.decoding_key, &case.validation)
        .expect("decode");
    let kid = data.header.kid.as_deref().expect("kid");
    assert!(case.keys_by_kid.contains_key(kid) && data.header.crit.is_none());
    data.claims
}

/// Interleaved A/B measurement: each round times `iters` calls of every case back to back
/// (order rotating), so load from other processes hits them all alike; ratios are taken per
/// round, then their median. Criterion measures one case after the other, seconds apart, so
/// on a shared machine its ratios drift with the load.
///
/// Cases: the four of the criterion group, `emulated` (see [`emulated`]), and two candidate
/// fixes, all emulated: `layer_b64_table` (token68 check by lookup table), `layer_min_header`
/// (that plus [`verify_min_header`]) and `layer_lean` (token68 check deferred to failures plus
/// [`verify_single_key`]).
fn paired(case: &Case, rounds: usize, iters: usize) {
    let mut bare = service_fn(handle);
    let mut layered = JwtAuthLayer::new(case.verifier.clone()).layer(service_fn(handle));
    let cached_verifier = case
        .verifier_builder()
        .verified_token_cache(1 << 20)
        .build()
        .expect("verifier");
    let cached_alone = cached_verifier.clone();
    let mut cached = JwtAuthLayer::new(cached_verifier).layer(service_fn(handle));
    // A handler taking what the Claims extractor takes: the claims out of the Authentication.
    let mut cached_claims = JwtAuthLayer::new(
        case.verifier_builder()
            .verified_token_cache(1 << 20)
            .build()
            .expect("verifier"),
    )
    .layer(service_fn(|req: Request<Full<Bytes>>| {
        let claims: Option<Claims> = Claims::from_extensions(req.extensions());
        black_box(claims);
        handle(req)
    }));
    let auth = HeaderValue::try_from(format!("Bearer {}", case.token)).expect("header value");
    let token = case.token.as_str();
    let store = MemoryStore::new();
    let reference = case
        .verifier
        .verify::<NoCustomClaims>(token)
        .expect("verify");
    assert_eq!(verify_min_header(case, token), reference);
    assert_eq!(verify_single_key(case, token), reference);
    let names = [
        "bare",
        "layer",
        "raw_decode",
        "verify",
        "emulated",
        "layer_b64_table",
        "layer_min_header",
        "layer_lean",
        "layer_cached",
        "layer_cached_claims",
        "verify_cached",
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    let crate_verify = Verify::Crate(&case.verifier);
    for round in 0..=rounds {
        for k in 0..names.len() {
            let which = (k + round) % names.len();
            let t = match which {
                0 => time_requests(&auth, iters, |req| call(&mut bare, req)),
                1 => time_requests(&auth, iters, |req| call(&mut layered, req)),
                2 => time_calls(iters, || {
                    jsonwebtoken::decode::<ClaimSet>(
                        black_box(token),
                        &case.decoding_key,
                        &case.validation,
                    )
                    .expect("raw decode")
                }),
                3 => time_calls(iters, || {
                    case.verifier
                        .verify::<NoCustomClaims>(black_box(token))
                        .expect("verify")
                }),
                4 => time_requests(&auth, iters, |req| {
                    emulated(&mut bare, Token68::Copy, crate_verify, &store, req)
                }),
                5 => time_requests(&auth, iters, |req| {
                    emulated(&mut bare, Token68::Table, crate_verify, &store, req)
                }),
                6 => time_requests(&auth, iters, |req| {
                    emulated(
                        &mut bare,
                        Token68::Table,
                        Verify::MinHeader(case),
                        &store,
                        req,
                    )
                }),
                7 => time_requests(&auth, iters, |req| {
                    emulated(
                        &mut bare,
                        Token68::Deferred,
                        Verify::SingleKey(case),
                        &store,
                        req,
                    )
                }),
                8 => time_requests(&auth, iters, |req| call(&mut cached, req)),
                9 => time_requests(&auth, iters, |req| call(&mut cached_claims, req)),
                _ => time_calls(iters, || {
                    cached_alone
                        .verify::<NoCustomClaims>(black_box(token))
                        .expect("verify")
                }),
            };
            // Round 0 is a warm-up.
            if round > 0 {
                ns[which].push(t);
            }
        }
    }
    let col = |name: &str| &ns[names.iter().position(|n| *n == name).expect("case")];
    let ratio =
        |a: &str, b: &str| -> Vec<f64> { col(a).iter().zip(col(b)).map(|(x, y)| x / y).collect() };
    println!(
        "paired/{}: {rounds} rounds x {iters} calls per case, medians (p25..p75)",
        case.name
    );
    for name in names {
        let v = col(name);
        println!(
            "  {name:<18} {:>10.1} ns  ({:.1}..{:.1})",
            quantile(v, 0.5),
            quantile(v, 0.25),
            quantile(v, 0.75)
        );
    }
    for (a, b) in [
        ("layer", "raw_decode"),
        ("layer", "bare"),
        ("verify", "raw_decode"),
        ("layer", "emulated"),
        ("layer_b64_table", "raw_decode"),
        ("layer_min_header", "raw_decode"),
        ("layer_lean", "raw_decode"),
        ("layer_cached", "bare"),
        ("layer_cached_claims", "bare"),
    ] {
        let r = ratio(a, b);
        println!(
            "  {:<28} {:>8.3}  ({:.3}..{:.3})",
            format!("{a}/{b}"),
            quantile(&r, 0.5),
            quantile(&r, 0.25),
            quantile(&r, 0.75)
        );
    }
}

/// About 40 custom claims, strings and numbers, as a large token of an identity provider
/// carries (roles, groups, profile): with the registered ones, a token of about 2 KB.
fn large_claims() -> serde_json::Map<String, serde_json::Value> {
    (0..40)
        .map(|i| {
            let value = if i % 2 == 0 {
                serde_json::Value::from(format!("value-of-custom-claim-number-{i:02}"))
            } else {
                serde_json::Value::from(1_700_000_000u64 + i)
            };
            (format!("custom_claim_{i:02}"), value)
        })
        .collect()
}

/// What a hand-written middleware does: the bearer token decoded into `C`, which goes into
/// the request.
fn decode_into<C>(case: &Case, mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>>
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let token = req.headers()[http::header::AUTHORIZATION]
        .to_str()
        .expect("ascii")
        .strip_prefix("Bearer ")
        .expect("bearer");
    let claims = jsonwebtoken::decode::<C>(token, &case.decoding_key, &case.validation)
        .expect("raw decode")
        .claims;
    req.extensions_mut().insert(claims);
    req
}

/// The uncached layer against a plain `jsonwebtoken::decode` middleware's work, for a small
/// (~330 B) and a large (~2 KB) token: `layer` is a whole request through `JwtAuthLayer`
/// (verify, revocation check, the extension insert), `plain` the same request through a
/// service that decodes the token into a `ClaimSet` (what a hand-written middleware
/// does) and inserts it, `plain_min` one that decodes into a struct of only `sub`, `exp`,
/// `iss`, `aud` (what `axum-jwt-auth`-style users write). Interleaved rounds, as `paired`.
fn paired_shapes(case: &Case, rounds: usize, iters: usize) {
    #[derive(Clone, serde::Deserialize)]
    #[allow(dead_code)]
    struct Min {
        sub: String,
        exp: u64,
        iss: String,
        aud: serde_json::Value,
    }
    let issuer = match case.alg {
        Algorithm::HS256 => TokenIssuer::new(
            SigningKey::hmac(Algorithm::HS256, HS256_SECRET)
                .expect("hmac key")
                .with_kid("test-hs256"),
        ),
        _ => TestKeys::es256().issuer(),
    }
    .issuer(TEST_ISSUER)
    .audience(TEST_ISSUER)
    .ttl(Duration::from_secs(3600));
    let shapes = [
        (
            "small",
            issuer.issue("alice", "read write").expect("token").token,
        ),
        (
            "large",
            issuer
                .issue_with("alice", "read write", &large_claims())
                .expect("token")
                .token,
        ),
    ];
    for (shape, token) in shapes {
        let mut bare = service_fn(handle);
        let mut layered = JwtAuthLayer::new(case.verifier.clone()).layer(service_fn(handle));
        let auth = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");
        let plain = |req| decode_into::<ClaimSet>(case, req);
        let plain_min = |req| decode_into::<Min>(case, req);
        let names = ["layer", "plain", "plain_min"];
        let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
        for round in 0..=rounds {
            for k in 0..names.len() {
                let which = (k + round) % names.len();
                let t = match which {
                    0 => time_requests(&auth, iters, |req| call(&mut layered, req)),
                    1 => time_requests(&auth, iters, |req| call(&mut bare, plain(req))),
                    _ => time_requests(&auth, iters, |req| call(&mut bare, plain_min(req))),
                };
                if round > 0 {
                    ns[which].push(t);
                }
            }
        }
        println!(
            "paired_shapes/{}/{shape} ({} B token): {rounds} rounds x {iters} calls, medians (p25..p75)",
            case.name,
            token.len()
        );
        for (i, name) in names.iter().enumerate() {
            println!(
                "  {name:<10} {:>10.1} ns  ({:.1}..{:.1})",
                quantile(&ns[i], 0.5),
                quantile(&ns[i], 0.25),
                quantile(&ns[i], 0.75)
            );
        }
        for b in 1..names.len() {
            let r: Vec<f64> = ns[b].iter().zip(&ns[0]).map(|(x, y)| x / y).collect();
            println!(
                "  {:<22} {:>8.3}  ({:.3}..{:.3})  (> 1: the layer is faster)",
                format!("{}/layer", names[b]),
                quantile(&r, 0.5),
                quantile(&r, 0.25),
                quantile(&r, 0.75)
            );
        }
    }
}

/// `paired_dpop/*`: what DPoP adds to a request. Per round, interleaved: a cached bearer
/// request (unbound token), the same with a DPoP-bound token and a fresh ES256 proof per
/// request (memory replay store), and one ES256 signature check of such a proof alone.
fn paired_dpop(rounds: usize, iters: usize) {
    use tower_token_auth::Confirmation;
    use tower_token_auth::dpop::{DpopConfig, MemoryReplayStore};
    use tower_token_auth::testing::DpopKey;

    let keys = TestKeys::hs256();
    let key = DpopKey::es256();
    let cached = || {
        Verifier::builder(keys.key_set())
            .issuer(TEST_ISSUER)
            .audience(TEST_ISSUER)
            .verified_token_cache(1 << 20)
            .build()
            .expect("verifier")
    };
    let bound = keys
        .issuer()
        .issue_with(
            "alice",
            "read",
            &serde_json::json!({ "cnf": Confirmation::dpop(key.thumbprint()) }),
        )
        .expect("token")
        .token;
    let plain = keys.mint("alice", "read");
    let config = DpopConfig::new()
        .external_origin("https://api.example")
        .expect("origin")
        .replay_store(MemoryReplayStore::with_capacity((rounds + 1) * iters + 16));
    let mut bearer = JwtAuthLayer::new(cached()).layer(service_fn(handle));
    let mut dpop = JwtAuthLayer::new(cached())
        .with_dpop(config)
        .layer(service_fn(handle));
    let bearer_auth = HeaderValue::try_from(format!("Bearer {plain}")).expect("header");
    let dpop_auth = HeaderValue::try_from(format!("DPoP {bound}")).expect("header");
    // The proofs' signatures alone, with the key decoded beforehand: the same proofs the
    // DPoP case checks (one signature verified over and over would train the branch
    // predictor on one input, and flatter the baseline).
    let decoding = DecodingKey::from_jwk(key.jwk()).expect("jwk");

    let names = ["bearer_cached", "dpop_cached", "proof_signature"];
    let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    for round in 0..=rounds {
        // Fresh proofs for this round (made outside the timing).
        let proofs: Vec<HeaderValue> = (0..iters)
            .map(|_| {
                HeaderValue::try_from(key.proof("GET", "https://api.example/orders", Some(&bound)))
                    .expect("header")
            })
            .collect();
        for k in 0..names.len() {
            let k = (k + round) % names.len();
            let t = match k {
                0 => time_requests(&bearer_auth, iters, |req| {
                    let res = call(&mut bearer, req);
                    assert_eq!(res.status(), StatusCode::OK);
                    res
                }),
                1 => {
                    let mut proofs = proofs.iter();
                    time_requests(&dpop_auth, iters, |mut req| {
                        req.headers_mut()
                            .insert("dpop", proofs.next().expect("a proof").clone());
                        let res = call(&mut dpop, req);
                        assert_eq!(res.status(), StatusCode::OK);
                        res
                    })
                }
                _ => {
                    let split: Vec<(&str, &str)> = proofs
                        .iter()
                        .map(|p| p.to_str().expect("ascii").rsplit_once('.').expect("jws"))
                        .collect();
                    let mut split = split.iter();
                    time_calls(iters, || {
                        let (message, signature) = split.next().expect("a proof");
                        let ok = jsonwebtoken::crypto::verify(
                            signature,
                            message.as_bytes(),
                            &decoding,
                            Algorithm::ES256,
                        );
                        assert!(matches!(ok, Ok(true)));
                    })
                }
            };
            if round > 0 {
                ns[k].push(t);
            }
        }
    }
    let med = |k: usize| quantile(&ns[k], 0.5);
    for (k, name) in names.iter().enumerate() {
        println!(
            "paired_dpop/{name}: median {:.0} ns (p25 {:.0}, p75 {:.0})",
            med(k),
            quantile(&ns[k], 0.25),
            quantile(&ns[k], 0.75)
        );
    }
    let extra: Vec<f64> = ns[1].iter().zip(&ns[0]).map(|(d, b)| d - b).collect();
    let over: Vec<f64> = ns[1]
        .iter()
        .zip(&ns[0])
        .zip(&ns[2])
        .map(|((d, b), sig)| (d - sig) / b)
        .collect();
    println!(
        "paired_dpop: dpop - bearer median {:.0} ns; (dpop - one signature check) / bearer median {:.2} (p25 {:.2}, p75 {:.2}); goal <= 1.15",
        quantile(&extra, 0.5),
        quantile(&over, 0.5),
        quantile(&over, 0.25),
        quantile(&over, 0.75)
    );
}

fn main() {
    layer();
    // Only in a real `cargo bench` run, not when `cargo test --benches` smoke-runs this
    // binary, and not when a filter picks other benchmarks.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench_mode = args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if bench_mode && (filters.is_empty() || filters.iter().any(|f| "paired".contains(f.as_str()))) {
        paired(&hs256(), 600, 500);
        paired(&es256(), 1000, 20);
    }
    if bench_mode
        && (filters.is_empty() || filters.iter().any(|f| "paired_shapes".contains(f.as_str())))
    {
        paired_shapes(&hs256(), 400, 300);
        paired_shapes(&es256(), 400, 10);
    }
    if bench_mode && filters.iter().any(|f| f.as_str() == "paired_dpop") {
        // `PAIRED_DPOP=rounds,iters` shrinks the run, e.g. to count instructions under
        // callgrind.
        let (rounds, iters) = std::env::var("PAIRED_DPOP")
            .ok()
            .and_then(|v| {
                let (r, i) = v.split_once(',')?;
                Some((r.parse().ok()?, i.parse().ok()?))
            })
            .unwrap_or((200, 50));
        paired_dpop(rounds, iters);
    }
    Criterion::default().configure_from_args().final_summary();
}
