//! OpenID Connect / RFC 8414 discovery and the built-in HTTP client against a small identity
//! provider on 127.0.0.1 (feature `http-client`): discovery, issuer checks, the RFC 8414
//! fallback, HTTPS rules, error statuses, body cap, `Cache-Control` and `ETag`, starting while
//! the provider is down, and the maximum staleness.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{ServiceExt, service_fn};
use tower_token_auth::keys::{
    Discovery, DiscoveryError, HttpError, HttpFetcher, KeySourceError, RemoteJwks,
};
use tower_token_auth::{Algorithm, JwtAuthLayer, KeySet, SigningKey, TokenIssuer, Verifier};

const RSA_PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
const RSA_PUBLIC_JWK: &str = include_str!("keys/rs256-public.jwk.json");

/// What the provider answers on one path.
#[derive(Clone)]
struct Route {
    status: u16,
    body: Bytes,
    headers: Vec<(&'static str, String)>,
    /// Sent in chunks, without `Content-Length`.
    chunked: bool,
    delay: Duration,
}

impl Route {
    fn json(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            body: Bytes::from(body.into()),
            headers: vec![("content-type", "application/json".into())],
            chunked: false,
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
    not_modified: usize,
    if_none_match: Vec<String>,
}

/// A tiny identity provider: routes that can be changed, request counts, stop and start.
struct Idp {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    connections: Option<JoinSet<()>>,
}

/// Body chunks without a declared length.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req.uri().path().to_owned();
    let route = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        if let Some(tag) = req.headers().get(header::IF_NONE_MATCH) {
            state.if_none_match.push(tag.to_str().unwrap().to_owned());
        }
        state.routes.get(&path).cloned()
    };
    let Some(route) = route else {
        let mut res = Response::new(Full::from("not found").boxed());
        *res.status_mut() = StatusCode::NOT_FOUND;
        return Ok(res);
    };
    tokio::time::sleep(route.delay).await;
    let etag = route.headers.iter().find(|(n, _)| *n == "etag");
    let sent = req.headers().get(header::IF_NONE_MATCH);
    let not_modified = matches!((etag, sent), (Some((_, e)), Some(s)) if s == e.as_str());
    let body = if not_modified {
        state.lock().unwrap().not_modified += 1;
        Full::default().boxed()
    } else if route.chunked {
        let chunks = route.body.chunks(64 * 1024).map(Bytes::copy_from_slice);
        Chunks(chunks.collect()).boxed()
    } else {
        Full::new(route.body.clone()).boxed()
    };
    let mut res = Response::new(body);
    *res.status_mut() = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::from_u16(route.status).unwrap()
    };
    for (name, value) in &route.headers {
        res.headers_mut().insert(*name, value.parse().unwrap());
    }
    Ok(res)
}

impl Idp {
    async fn start() -> Self {
        let mut idp = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            connections: None,
        };
        idp.serve().await;
        idp
    }

    /// A provider that is down: its port is reserved, nothing listens.
    async fn down() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Self {
            addr,
            state: Arc::default(),
            connections: None,
        }
    }

    async fn serve(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let state = self.state.clone();
        let mut tasks = JoinSet::new();
        // Owned by the accept loop: aborting the loop drops it, which aborts every open
        // connection.
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        tasks.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                connections.lock().unwrap().spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        self.connections = Some(tasks);
    }

    /// Closes the listener and every open connection.
    async fn stop(&mut self) {
        if let Some(mut tasks) = self.connections.take() {
            tasks.shutdown().await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn route(&self, path: &str, route: Route) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), route);
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Publishes metadata for `issuer` at `path`, with its JWK Set at `/jwks`.
    fn metadata(&self, path: &str, issuer: &str, algs: &[&str]) {
        let doc = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": self.url("/jwks"),
            "id_token_signing_alg_values_supported": algs,
        });
        self.route(path, Route::json(doc.to_string()));
    }

    /// Publishes the RSA test key as `kid` `r1`, without `alg` (as Entra ID does).
    fn jwks(&self) -> Route {
        let mut key: serde_json::Value = serde_json::from_str(RSA_PUBLIC_JWK).unwrap();
        key["kid"] = "r1".into();
        let route = Route::json(serde_json::json!({ "keys": [key] }).to_string());
        self.route("/jwks", route.clone());
        route
    }
}

fn mint(alg: Algorithm, iss: &str) -> String {
    let key = SigningKey::rsa_pem(alg, RSA_PRIVATE)
        .unwrap()
        .with_kid("r1");
    TokenIssuer::new(key)
        .issuer(iss)
        .audience("api")
        .issue("alice", "read")
        .unwrap()
        .token
}

/// Status and `Retry-After` of a request with `token` through the layer.
async fn call(verifier: &Verifier, token: &str) -> (StatusCode, Option<String>) {
    let svc = tower::ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier.clone()))
        .service(service_fn(|_r: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let req = Request::builder()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), retry)
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[tokio::test]
async fn discovery_happy_path() {
    let idp = Idp::start().await;
    let issuer = idp.url("");
    idp.metadata(
        "/.well-known/openid-configuration",
        &issuer,
        &["PS256", "ES256", "HS256"],
    );
    idp.jwks();
    let verifier = Verifier::builder(KeySet::new())
        .audience("api")
        .discover(&issuer)
        .await
        .unwrap();
    assert_eq!(verifier.kids(), ["r1"]);
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(idp.hits("/jwks"), 1);
    // The RSA key has no `alg`: the advertised PS256 decides, not the RS256 default.
    assert_eq!(
        call(&verifier, &mint(Algorithm::PS256, &issuer)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&verifier, &mint(Algorithm::RS256, &issuer)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The discovered issuer is required.
    assert_eq!(
        call(&verifier, &mint(Algorithm::PS256, "https://other.example"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let metadata = Discovery::fetch(&issuer).await.unwrap();
    assert_eq!(metadata.issuer(), issuer);
    assert_eq!(metadata.jwks_uri().to_string(), idp.url("/jwks"));
    assert_eq!(
        metadata.signing_algorithms(),
        [Algorithm::PS256, Algorithm::ES256]
    );
}

#[tokio::test]
async fn issuer_mismatch_is_refused() {
    let idp = Idp::start().await;
    let issuer = idp.url("");
    // A trailing slash is another issuer: the specifications want them equal, character for
    // character.
    idp.metadata(
        "/.well-known/openid-configuration",
        &format!("{issuer}/"),
        &[],
    );
    idp.metadata("/.well-known/oauth-authorization-server", &issuer, &[]);
    idp.jwks();
    let err = Verifier::builder(KeySet::new())
        .discover(&issuer)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::IssuerMismatch { found, .. } if *found == format!("{issuer}/")),
        "{err}"
    );
    assert_eq!(
        idp.hits("/.well-known/oauth-authorization-server"),
        0,
        "no fallback after a mismatch"
    );
    assert_eq!(idp.hits("/jwks"), 0);

    // The lazy path refuses it too: no keys ever, 503 rather than trusting the document.
    let lazy = Verifier::builder(KeySet::new())
        .audience("api")
        .discover_lazy(&issuer)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        call(&lazy, &mint(Algorithm::RS256, &issuer)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(idp.hits("/jwks"), 0);
}

#[tokio::test]
async fn rfc8414_fallback_inserts_the_well_known_path() {
    let idp = Idp::start().await;
    let issuer = idp.url("/tenants/acme");
    // No OpenID configuration (404); RFC 8414 metadata with the path after the well-known part.
    idp.metadata(
        "/.well-known/oauth-authorization-server/tenants/acme",
        &issuer,
        &[],
    );
    idp.jwks();
    let verifier = Verifier::builder(KeySet::new())
        .audience("api")
        .discover(&issuer)
        .await
        .unwrap();
    assert_eq!(
        idp.hits("/tenants/acme/.well-known/openid-configuration"),
        1
    );
    assert_eq!(
        idp.hits("/.well-known/oauth-authorization-server/tenants/acme"),
        1
    );
    // No advertised algorithm: the RSA key without `alg` verifies RS256.
    assert_eq!(
        call(&verifier, &mint(Algorithm::RS256, &issuer)).await.0,
        StatusCode::OK
    );

    // Neither document: an error naming both URLs.
    let err = Discovery::fetch(&idp.url("/tenants/none"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DiscoveryError::NoMetadata { .. }), "{text}");
    assert!(
        text.contains("/tenants/none/.well-known/openid-configuration")
            && text.contains("/.well-known/oauth-authorization-server/tenants/none")
            && text.contains("answered 404"),
        "{text}"
    );
}

#[tokio::test]
async fn https_is_required_except_for_loopback() {
    for url in [
        "http://auth.example/jwks",
        "http://10.1.2.3/jwks",
        "ftp://auth.example/",
    ] {
        assert!(RemoteJwks::from_url(url).is_err(), "{url}");
        assert!(HttpFetcher::new(url).is_err(), "{url}");
    }
    assert!(RemoteJwks::from_url("http://localhost:1/jwks").is_ok());
    assert!(RemoteJwks::from_url("http://[::1]:1/jwks").is_ok());
    assert!(RemoteJwks::from_url("https://auth.example/jwks").is_ok());
    let err = Discovery::fetch("http://auth.example").await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Config(_)), "{err}");
    assert!(err.to_string().contains("must use https"), "{err}");
    assert!(
        Verifier::builder(KeySet::new())
            .discover_lazy("http://auth.example")
            .is_err()
    );

    // A loopback issuer whose metadata points at plain http elsewhere is refused too.
    let idp = Idp::start().await;
    let issuer = idp.url("");
    let doc = serde_json::json!({"issuer": issuer, "jwks_uri": "http://keys.example/jwks"});
    idp.route(
        "/.well-known/openid-configuration",
        Route::json(doc.to_string()),
    );
    idp.route(
        "/.well-known/oauth-authorization-server",
        Route::json(doc.to_string()),
    );
    let err = Discovery::fetch(&issuer).await.unwrap_err().to_string();
    assert!(
        err.contains("jwks_uri") && err.contains("must use https"),
        "{err}"
    );
}

#[tokio::test]
async fn an_error_page_is_an_error_status_not_an_invalid_jwk_set() {
    let idp = Idp::start().await;
    let mut page = Route::json("<html><body>Service Unavailable</body></html>");
    page.status = 503;
    page.headers = vec![("content-type", "text/html".into())];
    idp.route("/jwks", page);
    let err = Verifier::builder(KeySet::new())
        .build_with_jwks(RemoteJwks::from_url(&idp.url("/jwks")).unwrap())
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("JWKS endpoint answered 503"), "{text}");
    assert!(
        !text.contains("unusable") && !text.contains("invalid JWK"),
        "{text}"
    );
    let KeySourceError::Fetch(source) = &err else {
        panic!("{text}")
    };
    assert!(
        matches!(
            source.downcast_ref::<HttpError>(),
            Some(HttpError::Status { status, .. }) if *status == StatusCode::SERVICE_UNAVAILABLE
        ),
        "{text}"
    );
    assert!(!text.contains("<html>"), "the body is not repeated: {text}");

    // The same for discovery.
    let err = Discovery::fetch(&idp.url("/down"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("discovery endpoint answered 404"), "{err}");
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let idp = Idp::start().await;
    let route = idp.jwks();
    let big = format!(r#"{{"keys":[],"padding":"{}"}}"#, "x".repeat(1024 * 1024));
    let fetch = |url: String| async move {
        Verifier::builder(KeySet::new())
            .build_with_jwks(RemoteJwks::from_url(&url).unwrap())
            .await
    };
    for chunked in [false, true] {
        idp.route(
            "/big",
            Route {
                body: Bytes::from(big.clone()),
                chunked,
                ..route.clone()
            },
        );
        let err = fetch(idp.url("/big")).await.unwrap_err();
        let text = chain(&err);
        assert!(
            text.contains("over the 1048576-byte limit"),
            "chunked {chunked}: {text}"
        );
    }
    // A lower cap of one's own; the document fits the default one.
    let small = HttpFetcher::new(&idp.url("/jwks"))
        .unwrap()
        .max_body_bytes(100);
    let err = Verifier::builder(KeySet::new())
        .build_with_jwks(RemoteJwks::new(small))
        .await
        .unwrap_err();
    assert!(chain(&err).contains("over the 100-byte limit"), "{err}");
    assert!(fetch(idp.url("/jwks")).await.is_ok());
}

#[tokio::test]
async fn max_age_is_honoured_within_bounds() {
    let idp = Idp::start().await;
    let route = idp.jwks();
    let build = |bounds: (u64, u64)| {
        let source = RemoteJwks::from_url(&idp.url("/jwks"))
            .unwrap()
            .refresh_bounds(
                Duration::from_millis(bounds.0),
                Duration::from_millis(bounds.1),
            );
        Verifier::builder(KeySet::new()).build_with_jwks(source)
    };
    let idp = &idp;
    let count_over = |ms: u64| async move {
        let before = idp.hits("/jwks");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        idp.hits("/jwks") - before
    };

    // max-age=1: refreshed ahead of expiry, at 0.9 s.
    idp.route("/jwks", route.clone().header("cache-control", "max-age=1"));
    let v = build((100, 10_000)).await.unwrap();
    let n = count_over(2_000).await;
    assert!((2..=3).contains(&n), "{n} refreshes in 2 s with max-age=1");
    drop(v);

    // max-age=3600 but at most 400 ms between refreshes.
    idp.route(
        "/jwks",
        route
            .clone()
            .header("cache-control", "public, max-age=3600"),
    );
    let v = build((100, 400)).await.unwrap();
    let n = count_over(1_300).await;
    assert!(
        (2..=4).contains(&n),
        "{n} refreshes in 1.3 s, upper bound 400 ms"
    );
    drop(v);

    // no-cache, but at least 500 ms between refreshes.
    idp.route("/jwks", route.clone().header("cache-control", "no-cache"));
    let v = build((500, 10_000)).await.unwrap();
    let n = count_over(1_300).await;
    assert!(
        (1..=3).contains(&n),
        "{n} refreshes in 1.3 s, lower bound 500 ms"
    );
    drop(v);

    // Without Cache-Control, the default period (5 min): nothing within a second.
    idp.route("/jwks", route);
    let _v = build((100, 10_000)).await.unwrap();
    assert_eq!(count_over(1_000).await, 0);
}

#[tokio::test]
async fn not_modified_keeps_the_keys() {
    let idp = Idp::start().await;
    let issuer = idp.url("");
    idp.metadata("/.well-known/openid-configuration", &issuer, &[]);
    let route = idp.jwks();
    idp.route("/jwks", route.clone().header("etag", "\"v1\""));
    let verifier = Verifier::builder(KeySet::new())
        .audience("api")
        .discover(&issuer)
        .await
        .unwrap();
    let generation = verifier.key_handle().generation();
    assert!(!verifier.refresh_keys().await.unwrap(), "304: no change");
    assert!(!verifier.refresh_keys().await.unwrap());
    {
        let state = idp.state.lock().unwrap();
        assert_eq!(state.not_modified, 2);
        assert_eq!(state.if_none_match, ["\"v1\"", "\"v1\""]);
    }
    assert_eq!(verifier.kids(), ["r1"]);
    assert_eq!(verifier.key_handle().generation(), generation);
    assert_eq!(
        call(&verifier, &mint(Algorithm::RS256, &issuer)).await.0,
        StatusCode::OK
    );

    // A new ETag: the document is fetched again and its keys used.
    idp.route(
        "/jwks",
        Route::json(r#"{"keys":[]}"#).header("etag", "\"v2\""),
    );
    assert!(
        verifier.refresh_keys().await.is_err(),
        "a set without keys is refused"
    );
    assert_eq!(verifier.kids(), ["r1"], "the last good keys stay");
}

#[tokio::test]
async fn start_while_down_then_up() {
    let mut idp = Idp::down().await;
    let issuer = idp.url("");
    let source = RemoteJwks::from_issuer(&issuer)
        .unwrap()
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let verifier = Verifier::builder(KeySet::new())
        .issuer(&issuer)
        .audience("api")
        .build_with_jwks_lazy(source)
        .unwrap();
    let token = mint(Algorithm::RS256, &issuer);

    // Down: 503 with Retry-After for everyone; the requests do not fetch.
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            async move { call(&verifier, &token).await }
        })
        .collect();
    for (status, retry) in futures_join(calls).await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry.is_some());
    }
    assert!(verifier.kids().is_empty());

    // Up: the retry loop finds it.
    idp.metadata("/.well-known/openid-configuration", &issuer, &[]);
    idp.jwks();
    idp.serve().await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            call(&verifier, &token).await.0 == StatusCode::OK
        })
        .await,
        "keys arrive once the provider is up"
    );
    assert_eq!(idp.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(
        idp.hits("/jwks"),
        1,
        "one fetch, not one per waiting request"
    );
}

/// Runs the futures concurrently.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let mut set = JoinSet::new();
    for (i, f) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<_> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

#[tokio::test]
async fn last_good_keys_serve_until_the_maximum_staleness() {
    let mut idp = Idp::start().await;
    idp.jwks();
    let source = RemoteJwks::from_url(&idp.url("/jwks"))
        .unwrap()
        .refresh_every(Duration::from_millis(100))
        .refresh_bounds(Duration::from_millis(100), Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .max_staleness(Duration::from_millis(800));
    let verifier = Verifier::builder(KeySet::new())
        .audience("api")
        .build_with_jwks(source)
        .await
        .unwrap();
    let token = mint(Algorithm::RS256, "any");
    assert_eq!(call(&verifier, &token).await.0, StatusCode::OK);

    idp.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        call(&verifier, &token).await.0,
        StatusCode::OK,
        "the last good keys serve through a short outage"
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            call(&verifier, &token).await.0 == StatusCode::SERVICE_UNAVAILABLE
        })
        .await,
        "past the maximum staleness, 503"
    );
    let (_, retry) = call(&verifier, &token).await;
    assert!(retry.is_some());

    idp.serve().await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            call(&verifier, &token).await.0 == StatusCode::OK
        })
        .await,
        "back once the endpoint answers"
    );
}
