//! Keys from a remote JWK Set (an auth server's `/.well-known/jwks.json`).
//!
//! The verifier fetches the set when it is built, refreshes it in the background, and, when a
//! token names a `kid` it does not know, fetches once more. That refetch is single-flight:
//! requests arriving while it runs wait for it (up to the fetch timeout) and then verify with
//! what it brought, so a key rotation refuses nobody; and it happens at most once per
//! `min_refetch_interval`, so a flood of made-up `kid`s cannot make it hammer the auth server.
//! A failed fetch keeps the last good keys. Keys the crate cannot use are skipped (logged once
//! each), never failing the set. Reads on the request path are lock-free (`arc-swap`); only a
//! change of key material empties the verified-token cache.
//!
//! # Freshness and outages
//!
//! - The next background refresh follows the endpoint's `Cache-Control: max-age` (less its
//!   `Age`), refreshing ahead of expiry (at nine tenths of the lifetime), kept within
//!   [`refresh_bounds`](RemoteJwks::refresh_bounds); without `max-age`, every
//!   [`refresh_every`](RemoteJwks::refresh_every). `no-cache` and `no-store` count as
//!   `max-age=0`, so the lower bound applies.
//! - A fetcher that reports an `ETag` ([`JwksResponse::with_etag`]) is asked with
//!   `If-None-Match` next time; `304 Not Modified` keeps the keys and counts as a confirmation.
//! - A failed fetch is retried with exponential backoff and jitter
//!   ([`retry_backoff`](RemoteJwks::retry_backoff)); the last good keys stay in use, for at most
//!   [`max_staleness`](RemoteJwks::max_staleness) after they were last confirmed (unbounded by
//!   default). Past it, and before the first keys arrive when the verifier was built with
//!   [`build_with_jwks_lazy`](crate::VerifierBuilder::build_with_jwks_lazy), a token that would
//!   need a remote key gets 503 `temporarily_unavailable` with `Retry-After`
//!   ([`AuthErrorKind::KeysUnavailable`](crate::AuthErrorKind::KeysUnavailable)); static keys
//!   keep working.
//! - Every fetch of one source (start-up, background refresh, retries, unknown-`kid` refetch,
//!   [`Verifier::refresh_keys`](crate::Verifier::refresh_keys)) goes through one lock: one
//!   fetch in flight, however many requests wait.
//!
//! Bring an HTTP client as a [`JwksFetcher`], e.g. a closure around the client the application
//! already uses; or enable the `http-client` feature for `RemoteJwks::from_url` and OpenID
//! Connect discovery (see the `discovery` module).
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_token_auth::keys::RemoteJwks;
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::new(|| async {
//!     // e.g. reqwest::get("https://auth.example/.well-known/jwks.json").await?.text().await
//!     Ok::<_, tower_token_auth::keys::BoxError>(String::from(r#"{"keys":[]}"#))
//! })
//! .refresh_bounds(Duration::from_secs(60), Duration::from_secs(3600))
//! .max_staleness(Duration::from_secs(24 * 3600));
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer("https://auth.example")
//!     .audience("orders")
//!     .build_with_jwks(jwks)
//!     .await?;
//! # let _ = verifier; Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::{HeaderMap, header};
use jsonwebtoken::Algorithm;
use rand::Rng as _;
use tokio::time::Instant;

use super::jwk::{JwkPolicy, SkippedKey, parse_jwks};
use super::{KeyHandle, KeySet};
use crate::error::ConfigError;
use crate::revocation::BoxFuture;

/// A boxed error from a fetcher.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fetches the JWK Set document.
///
/// A closure returning the document's text implements it. A fetcher that can report caching
/// headers and answer conditional requests overrides
/// [`fetch_document`](Self::fetch_document) as well.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The JSON text of the JWK Set.
    fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>>;

    /// The JWK Set with what the endpoint said about its freshness (`Cache-Control: max-age`,
    /// `ETag`). With `if_none_match` (the `ETag` of the last document), the fetcher may send
    /// `If-None-Match` and answer [`JwksResponse::not_modified`] to a `304`.
    ///
    /// The default calls [`fetch`](Self::fetch) and reports no caching headers.
    fn fetch_document(
        &self,
        if_none_match: Option<&str>,
    ) -> BoxFuture<'static, Result<JwksResponse, BoxError>> {
        let _ = if_none_match;
        let fetch = self.fetch();
        Box::pin(async move { fetch.await.map(JwksResponse::document) })
    }
}

impl<F, Fut> JwksFetcher for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, BoxError>> + Send + 'static,
{
    fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>> {
        Box::pin(self())
    }
}

/// What one fetch of a JWK Set brought: the document (or "not modified"), and how long it
/// may be cached.
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, HeaderValue, header};
/// use tower_token_auth::keys::JwksResponse;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=600"));
/// headers.insert(header::AGE, HeaderValue::from_static("100"));
/// headers.insert(header::ETAG, HeaderValue::from_static("\"v7\""));
/// let response = JwksResponse::document(r#"{"keys":[]}"#).with_cache_headers(&headers);
/// assert_eq!(response.max_age(), Some(Duration::from_secs(500)));
/// assert_eq!(response.etag(), Some("\"v7\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksResponse {
    body: Option<String>,
    max_age: Option<Duration>,
    etag: Option<String>,
    /// What RSA keys without `alg` verify, as the issuer's metadata advertises (set by the
    /// discovering fetcher); used unless the source has an explicit [`JwkPolicy`].
    pub(crate) rsa_algorithms: Option<Vec<Algorithm>>,
}

impl JwksResponse {
    /// A JWK Set document (`200 OK`).
    pub fn document(body: impl Into<String>) -> Self {
        Self {
            body: Some(body.into()),
            max_age: None,
            etag: None,
            rsa_algorithms: None,
        }
    }

    /// `304 Not Modified`: the last document is still current.
    pub fn not_modified() -> Self {
        Self {
            body: None,
            max_age: None,
            etag: None,
            rsa_algorithms: None,
        }
    }

    /// How long the document may be used before it is fetched again (`Cache-Control:
    /// max-age`), still bounded by [`RemoteJwks::refresh_bounds`].
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The document's `ETag`, sent back as `If-None-Match` on the next fetch.
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    /// Reads `Cache-Control` (`max-age`, less `Age`; `no-cache` and `no-store` as `max-age=0`)
    /// and `ETag` from a response's headers.
    pub fn with_cache_headers(mut self, headers: &HeaderMap) -> Self {
        if let Some(max_age) = cache_lifetime(headers) {
            self.max_age = Some(max_age);
        }
        if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
            self.etag = Some(etag.to_owned());
        }
        self
    }

    /// The document, or `None` for "not modified".
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// Whether this is a "not modified" answer.
    pub fn is_not_modified(&self) -> bool {
        self.body.is_none()
    }

    /// How long the document may be cached, when the endpoint said.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The document's `ETag`, when the endpoint sent one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

/// The freshness lifetime `Cache-Control` gives, less the `Age` a cache in between added.
fn cache_lifetime(headers: &HeaderMap) -> Option<Duration> {
    let mut lifetime: Option<u64> = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let secs =
                if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                    Some(0)
                } else if name.eq_ignore_ascii_case("max-age") {
                    arg.and_then(|a| a.parse::<u64>().ok())
                } else {
                    None
                };
            if let Some(secs) = secs {
                // Several lifetimes: the shortest is the safe reading.
                lifetime = Some(lifetime.map_or(secs, |l| l.min(secs)));
            }
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    lifetime.map(|l| Duration::from_secs(l.saturating_sub(age)))
}

/// Where and how often to fetch a JWK Set.
#[derive(Clone)]
pub struct RemoteJwks {
    fetcher: Arc<dyn JwksFetcher>,
    refresh_every: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    retry_first: Duration,
    retry_max: Duration,
    max_staleness: Option<Duration>,
    min_refetch_interval: Duration,
    fetch_timeout: Duration,
    policy: JwkPolicy,
    policy_explicit: bool,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("refresh_every", &self.refresh_every)
            .field("refresh_bounds", &(self.min_refresh, self.max_refresh))
            .field("retry_backoff", &(self.retry_first, self.retry_max))
            .field("max_staleness", &self.max_staleness)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// A source using `fetcher`; refreshes as the endpoint's `Cache-Control: max-age` says,
    /// held between 30 seconds and an hour (every 5 minutes without one); retries a failed fetch after 1 s, doubling up to 60 s, with jitter;
    /// keeps the last good keys through outages without limit; refetches for an unknown `kid`
    /// at most every 10 seconds; gives a fetch 10 seconds; and uses asymmetric keys only
    /// ([`JwkPolicy::without_symmetric_keys`]).
    pub fn new<F: JwksFetcher>(fetcher: F) -> Self {
        Self {
            fetcher: Arc::new(fetcher),
            refresh_every: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3600),
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_staleness: None,
            min_refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(10),
            policy: JwkPolicy::new().without_symmetric_keys(),
            policy_explicit: false,
        }
    }

    /// Which keys of the set are used and with which algorithms (default: every supported
    /// asymmetric algorithm, RS256 for RSA keys without `alg`, or what the issuer's metadata
    /// advertises when the source discovers it, no symmetric keys).
    pub fn policy(mut self, policy: JwkPolicy) -> Self {
        self.policy = policy;
        self.policy_explicit = true;
        self
    }

    /// How long one fetch may take before it counts as failed, and so how long a request with
    /// an unknown `kid` waits for the refetch in flight (default 10 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Background refresh period when the endpoint gives no `Cache-Control: max-age`
    /// (default 5 minutes), used as given ([`refresh_bounds`](Self::refresh_bounds) apply to
    /// `max-age` only).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// The least and the most time between two background refreshes that follow the
    /// endpoint's `Cache-Control: max-age`, whatever it says (default 30 s and 1 hour). A
    /// `max` below `min` is raised to it.
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max.max(min);
        self
    }

    /// After a failed fetch, retry after about `first`, doubling at each failure up to `max`
    /// (default 1 s and 60 s). Each wait is drawn at random from its upper half, so instances
    /// that failed together do not retry together. A `max` below `first` is raised to it.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_first = first;
        self.retry_max = max.max(first);
        self
    }

    /// Stop using the fetched keys when the endpoint has not confirmed them (a `200` with
    /// usable keys, or a `304`) for this long: tokens that need them get 503 until a fetch
    /// succeeds. Default: no limit, the last good keys serve through any outage.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = Some(max);
        self
    }

    /// Least time between two fetches triggered by unknown `kid`s.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// When to refresh after a document cacheable for `max_age`: ahead of its expiry, within
    /// the bounds.
    fn refresh_delay(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            Some(lifetime) => (lifetime - lifetime / 10).clamp(self.min_refresh, self.max_refresh),
            // The application's own period: taken as given.
            None => self.refresh_every,
        }
    }

    /// How long to wait after the `failures`-th failure in a row.
    fn retry_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let base = self
            .retry_first
            .saturating_mul(1 << doublings)
            .min(self.retry_max);
        let half = base / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Fetching or reading the JWK Set failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The fetch failed.
    #[error("JWK Set fetch failed: {0}")]
    Fetch(#[source] BoxError),
    /// The fetch took longer than the fetch timeout.
    #[error("JWK Set fetch timed out")]
    Timeout,
    /// The document is not a usable JWK Set (or has no key).
    #[error("JWK Set unusable: {0}")]
    Invalid(#[from] ConfigError),
}

/// What the source knows about its last fetches.
struct State {
    /// The `ETag` of the last document.
    etag: Option<String>,
    /// The last good fetched keys (before merging with the static ones).
    fetched: Option<KeySet>,
    /// When the endpoint last confirmed them (a document with keys, or a 304).
    confirmed: Option<Instant>,
    /// When the background loop fetches next.
    next_fetch: Instant,
    /// Failed fetches in a row.
    failures: u32,
}

/// A remote JWK Set feeding a [`KeyHandle`]: fetches, merges with the static keys, publishes.
pub(crate) struct RemoteKeys {
    source: RemoteJwks,
    handle: KeyHandle,
    static_keys: KeySet,
    started: std::time::Instant,
    // Milliseconds since `started` of the last refetch for an unknown `kid`, +1 (0: never).
    // Scheduled refreshes do not count: a rotation right after one must not be refused.
    last_refetch: AtomicU64,
    // Held for the whole of a fetch: waiting on it is waiting for the fetch in flight.
    fetching: tokio::sync::Mutex<()>,
    // Skipped keys already logged, so each is logged once and not at every refresh.
    warned: Mutex<HashSet<SkippedKey>>,
    state: Mutex<State>,
    // Whether fetched keys are in use (fetched, and confirmed within the maximum staleness).
    usable: AtomicBool,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("source", &self.source)
            .field("handle", &self.handle)
            .field("usable", &self.usable())
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// Feeds `handle` from `source`; `static_keys` are kept beside the fetched ones (and win
    /// on a `kid` both have).
    pub(crate) fn new(source: RemoteJwks, handle: KeyHandle, static_keys: KeySet) -> Arc<Self> {
        Arc::new(Self {
            source,
            handle,
            static_keys,
            started: std::time::Instant::now(),
            last_refetch: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            warned: Mutex::new(HashSet::new()),
            state: Mutex::new(State {
                etag: None,
                fetched: None,
                confirmed: None,
                next_fetch: Instant::now(),
                failures: 0,
            }),
            usable: AtomicBool::new(false),
        })
    }

    /// Whether fetched keys are in use: false before the first good fetch and after the
    /// maximum staleness passed without a confirmation.
    pub(crate) fn usable(&self) -> bool {
        self.usable.load(Ordering::Acquire)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn since_last_refetch(&self) -> Option<Duration> {
        match self.last_refetch.load(Ordering::Acquire) {
            0 => None,
            t => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(t - 1)),
            ),
        }
    }

    /// Fetches the set now and publishes it; returns whether the keys changed. On error the
    /// current keys stay.
    pub(crate) async fn refresh(&self) -> Result<bool, KeySourceError> {
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_and_publish().await
    }

    /// Call with `fetching` held.
    async fn fetch_and_publish(&self) -> Result<bool, KeySourceError> {
        let etag = {
            let state = self.state();
            state.fetched.as_ref().and(state.etag.clone())
        };
        match self.fetch_keys(etag.as_deref()).await {
            Ok((fetched, response)) => Ok(self.publish(fetched, response)),
            Err(e) => {
                let mut state = self.state();
                state.failures = state.failures.saturating_add(1);
                state.next_fetch = Instant::now() + self.source.retry_delay(state.failures);
                Err(e)
            }
        }
    }

    async fn fetch_keys(
        &self,
        etag: Option<&str>,
    ) -> Result<(KeySet, JwksResponse), KeySourceError> {
        let fetch = self.source.fetcher.fetch_document(etag);
        let response = tokio::time::timeout(self.source.fetch_timeout, fetch)
            .await
            .map_err(|_| KeySourceError::Timeout)?
            .map_err(KeySourceError::Fetch)?;
        let Some(text) = response.body() else {
            let fetched = self.state().fetched.clone();
            return match (fetched, etag) {
                (Some(keys), Some(_)) => Ok((keys, response)),
                _ => Err(ConfigError::new(
                    "\"not modified\" to a request that was not conditional",
                )
                .into()),
            };
        };
        let policy = match &response.rsa_algorithms {
            Some(algs) if !self.source.policy_explicit => Cow::Owned(
                self.source
                    .policy
                    .clone()
                    .rsa_algorithms(algs.iter().copied()),
            ),
            _ => Cow::Borrowed(&self.source.policy),
        };
        let (fetched, skipped) = parse_jwks(text, &policy)?;
        self.log_skipped_once(skipped);
        if fetched.is_empty() {
            return Err(ConfigError::new("the JWK Set has no usable key").into());
        }
        Ok((fetched, response))
    }

    /// Publishes a confirmed set and schedules the next refresh; returns whether the keys
    /// changed.
    fn publish(&self, fetched: KeySet, response: JwksResponse) -> bool {
        let (keys, shadowed) = self.static_keys.merged_with(&fetched);
        for kid in shadowed {
            tracing::warn!(target: "tower_token_auth", ?kid, "a fetched JWK has the kid of a static key; the static key is kept");
        }
        let now = Instant::now();
        // Under the state lock, so that expiring stale keys cannot interleave.
        let mut state = self.state();
        let changed = self.handle.publish(keys);
        let was_usable = self.usable.swap(true, Ordering::AcqRel);
        if !was_usable && state.confirmed.is_some() {
            tracing::info!(target: "tower_token_auth", "JWK Set endpoint answered again; its keys are used again");
        }
        if changed {
            tracing::info!(target: "tower_token_auth", kids = ?self.handle.kids(), "JWK Set keys updated");
        }
        if response.etag.is_some() || !response.is_not_modified() {
            state.etag = response.etag;
        }
        state.fetched = Some(fetched);
        state.confirmed = Some(now);
        state.failures = 0;
        state.next_fetch = now + self.source.refresh_delay(response.max_age);
        changed
    }

    /// When the fetched keys stop being used, if they are in use and staleness is bounded.
    fn stale_at(&self, state: &State) -> Option<Instant> {
        let max = self.source.max_staleness?;
        let confirmed = state.confirmed?;
        self.usable().then(|| confirmed + max)
    }

    /// Stops using the fetched keys once they were not confirmed for the maximum staleness.
    fn expire_if_stale(&self) {
        let state = self.state();
        if self.stale_at(&state).is_some_and(|at| at <= Instant::now()) {
            self.usable.store(false, Ordering::Release);
            self.handle.publish(self.static_keys.clone());
            tracing::warn!(
                target: "tower_token_auth",
                max_staleness = ?self.source.max_staleness,
                "JWK Set not confirmed within its maximum staleness; its keys are not used until the endpoint answers"
            );
        }
    }

    fn log_skipped_once(&self, skipped: Vec<SkippedKey>) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        for key in skipped {
            if !warned.contains(&key) {
                tracing::warn!(target: "tower_token_auth", kid = ?key.kid, reason = %key.reason, "JWK skipped");
                warned.insert(key);
            }
        }
    }

    /// For a token whose `kid` is unknown: waits for the fetch in flight, if any, and fetches
    /// once more unless one happened within `min_refetch_interval`. Returns whether the `kid`
    /// is known afterwards (`None`: whether any fetch brought keys).
    pub(crate) async fn refetch_for_unknown_kid(&self, kid: Option<&str>) -> bool {
        let known = |h: &KeyHandle| kid.is_some_and(|k| h.has_kid(k));
        if known(&self.handle) {
            return true;
        }
        // Waiting for the lock is waiting for the fetch in flight (bounded by its timeout).
        let wait = self
            .source
            .fetch_timeout
            .saturating_add(Duration::from_secs(1));
        let Ok(_guard) = tokio::time::timeout(wait, self.fetching.lock()).await else {
            return false;
        };
        if known(&self.handle) {
            return true;
        }
        if self
            .since_last_refetch()
            .is_some_and(|d| d < self.source.min_refetch_interval)
        {
            return false;
        }
        let stamp = self.started.elapsed().as_millis() as u64 + 1;
        self.last_refetch.store(stamp, Ordering::Release);
        match self.fetch_and_publish().await {
            Ok(changed) => kid.map_or(changed, |_| known(&self.handle)),
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "JWK Set refetch for an unknown kid failed");
                false
            }
        }
    }

    /// When the background loop has something to do: the next fetch, or the moment the keys
    /// go stale.
    fn next_wake(&self) -> Instant {
        let state = self.state();
        match self.stale_at(&state) {
            Some(at) => at.min(state.next_fetch),
            None => state.next_fetch,
        }
    }

    fn fetch_due(&self) -> bool {
        self.state().next_fetch <= Instant::now()
    }

    /// The background loop's fetch: skipped when another fetch (an unknown-`kid` refetch, an
    /// explicit refresh) moved the schedule meanwhile.
    async fn scheduled_refresh(&self) {
        let fetch = async {
            let _one_at_a_time = self.fetching.lock().await;
            if !self.fetch_due() {
                return None;
            }
            Some(self.fetch_and_publish().await)
        };
        let mut fetch = std::pin::pin!(fetch);
        // A fetch hanging past the staleness deadline must not keep stale keys in use.
        let stale_at = self.stale_at(&self.state());
        let result = match stale_at {
            Some(at) => match tokio::time::timeout_at(at, &mut fetch).await {
                Ok(result) => result,
                Err(_) => {
                    self.expire_if_stale();
                    fetch.await
                }
            },
            None => fetch.await,
        };
        if let Some(Err(e)) = result {
            let (failures, retry_in) = {
                let state = self.state();
                let retry_in = state.next_fetch.saturating_duration_since(Instant::now());
                (state.failures, retry_in)
            };
            if self.usable() {
                tracing::warn!(target: "tower_token_auth", error = %e, failures, ?retry_in, "JWK Set refresh failed; keeping the last good keys");
            } else {
                tracing::warn!(target: "tower_token_auth", error = %e, failures, ?retry_in, "JWK Set fetch failed; tokens needing its keys get 503 until it succeeds");
            }
        }
    }

    /// Fetches when due (at once, if nothing was fetched yet) and expires stale keys, in the
    /// background (needs a Tokio runtime), until every verifier holding this source is gone.
    pub(crate) fn spawn_refresh_loop(this: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                let wake = match weak.upgrade() {
                    Some(remote) => remote.next_wake(),
                    None => return,
                };
                tokio::time::sleep_until(wake).await;
                let Some(remote) = weak.upgrade() else {
                    return;
                };
                remote.expire_if_stale();
                if remote.fetch_due() {
                    remote.scheduled_refresh().await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use base64::Engine as _;

    use super::*;

    fn jwks(kid: &str) -> String {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{kid}-secret-of-at-least-32-bytes-long"));
        format!(r#"{{"keys":[{{"kty":"oct","kid":"{kid}","alg":"HS256","k":"{k}"}}]}}"#)
    }

    /// A fetcher answering with `answer()` for each call, counting calls and the `ETag`s sent.
    #[derive(Clone, Default)]
    struct Script {
        calls: Arc<AtomicUsize>,
        sent_etags: Arc<Mutex<Vec<Option<String>>>>,
        answer: Arc<Mutex<Option<Result<JwksResponse, String>>>>,
    }

    impl Script {
        fn answer(&self, answer: Result<JwksResponse, &str>) {
            *self.answer.lock().unwrap() = Some(answer.map_err(str::to_owned));
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl JwksFetcher for Script {
        fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>> {
            unreachable!("fetch_document is overridden")
        }
        fn fetch_document(
            &self,
            if_none_match: Option<&str>,
        ) -> BoxFuture<'static, Result<JwksResponse, BoxError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.sent_etags
                .lock()
                .unwrap()
                .push(if_none_match.map(str::to_owned));
            let answer = self.answer.lock().unwrap().clone().expect("an answer");
            Box::pin(async move { answer.map_err(BoxError::from) })
        }
    }

    fn remote(script: &Script, tune: impl FnOnce(RemoteJwks) -> RemoteJwks) -> Arc<RemoteKeys> {
        let source = tune(RemoteJwks::new(script.clone()).policy(JwkPolicy::new()));
        RemoteKeys::new(source, KeyHandle::new(KeySet::new()), KeySet::new())
    }

    async fn sleep(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }

    #[test]
    fn cache_headers() {
        let cases: &[(&[&str], Option<&str>, Option<u64>)] = &[
            (&["max-age=600"], None, Some(600)),
            (&["public, max-age=\"60\", must-revalidate"], None, Some(60)),
            (&["max-age=600"], Some("700"), Some(0)),
            (&["max-age=600"], Some("100"), Some(500)),
            (&["no-cache"], None, Some(0)),
            (&["max-age=600, no-store"], None, Some(0)),
            (&["max-age=600", "max-age=30"], None, Some(30)),
            (&["private"], None, None),
            (&["max-age=soon"], None, None),
            (&[], Some("5"), None),
        ];
        for (cache_control, age, want) in cases {
            let mut headers = HeaderMap::new();
            for v in *cache_control {
                headers.append(header::CACHE_CONTROL, v.parse().unwrap());
            }
            if let Some(age) = age {
                headers.insert(header::AGE, age.parse().unwrap());
            }
            assert_eq!(
                cache_lifetime(&headers),
                want.map(Duration::from_secs),
                "{cache_control:?} age {age:?}"
            );
        }
    }

    #[test]
    fn refresh_delay_is_ahead_of_expiry_and_bounded() {
        let source = RemoteJwks::new(Script::default())
            .refresh_every(Duration::from_secs(100))
            .refresh_bounds(Duration::from_secs(30), Duration::from_secs(600));
        let secs = |max_age: Option<u64>| {
            source
                .refresh_delay(max_age.map(Duration::from_secs))
                .as_secs()
        };
        assert_eq!(secs(None), 100, "refresh_every as given");
        assert_eq!(secs(Some(200)), 180);
        assert_eq!(secs(Some(0)), 30, "lower bound");
        assert_eq!(secs(Some(86_400)), 600, "upper bound");
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let source = RemoteJwks::new(Script::default())
            .retry_backoff(Duration::from_secs(2), Duration::from_secs(30));
        for (failures, base) in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (40, 30)] {
            let base = Duration::from_secs(base);
            let delays: Vec<Duration> = (0..50).map(|_| source.retry_delay(failures)).collect();
            assert!(
                delays.iter().all(|d| *d >= base / 2 && *d <= base),
                "{failures}: {delays:?}"
            );
            assert!(
                delays.iter().any(|d| *d != delays[0]),
                "{failures}: no jitter"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn loop_follows_max_age_within_bounds() {
        let script = Script::default();
        script.answer(Ok(
            JwksResponse::document(jwks("a")).with_max_age(Duration::from_secs(100))
        ));
        let remote = remote(&script, |s| {
            s.refresh_bounds(Duration::from_secs(20), Duration::from_secs(300))
        });
        RemoteKeys::spawn_refresh_loop(&remote);
        sleep(1).await;
        assert_eq!(script.calls(), 1, "fetched at once");
        assert!(remote.usable());
        sleep(88).await; // t = 89: the refresh is due at 90
        assert_eq!(script.calls(), 1);
        sleep(2).await;
        assert_eq!(script.calls(), 2, "refreshed ahead of expiry");
        // A day-long max-age is capped at the upper bound.
        script.answer(Ok(
            JwksResponse::document(jwks("a")).with_max_age(Duration::from_secs(86_400))
        ));
        sleep(90).await;
        assert_eq!(script.calls(), 3);
        sleep(301).await;
        assert_eq!(script.calls(), 4);
        // no-cache is held to the lower bound.
        script.answer(Ok(
            JwksResponse::document(jwks("a")).with_max_age(Duration::ZERO)
        ));
        sleep(300).await;
        let before = script.calls();
        sleep(100).await;
        assert_eq!(script.calls() - before, 5, "every 20 s");
    }

    #[tokio::test(start_paused = true)]
    async fn not_modified_keeps_the_keys_and_sends_the_etag() {
        let script = Script::default();
        script.answer(Ok(JwksResponse::document(jwks("a")).with_etag("\"1\"")));
        let remote = remote(&script, |s| s);
        assert!(remote.refresh().await.unwrap());
        script.answer(Ok(JwksResponse::not_modified()));
        assert!(!remote.refresh().await.unwrap());
        assert_eq!(remote.handle.kids(), ["a"]);
        assert_eq!(
            *script.sent_etags.lock().unwrap(),
            [None, Some("\"1\"".to_owned())]
        );
        // "Not modified" to a fetch that sent no ETag is an error, not an empty set.
        let fresh = self::remote(&script, |s| s);
        assert!(matches!(
            fresh.refresh().await,
            Err(KeySourceError::Invalid(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_stale_keys_expire() {
        let script = Script::default();
        script.answer(Ok(JwksResponse::document(jwks("a"))));
        let remote = remote(&script, |s| {
            s.retry_backoff(Duration::from_secs(2), Duration::from_secs(16))
                .max_staleness(Duration::from_secs(100))
        });
        remote.refresh().await.unwrap();
        RemoteKeys::spawn_refresh_loop(&remote);
        script.answer(Err("down"));
        // The refresh at 300 s (refresh_every's default) fails; retries follow at 1-2, 2-4, 4-8,
        // 8-16, 8-16… s: between 5 and 10 within 60 s.
        tokio::time::sleep(Duration::from_millis(300_500)).await;
        let first_failure = script.calls();
        assert_eq!(first_failure, 2);
        assert!(!remote.usable(), "not confirmed for 100 s: stale");
        assert!(remote.handle.keys().is_empty(), "stale keys are not used");
        sleep(60).await;
        let retries = script.calls() - first_failure;
        assert!((5..=10).contains(&retries), "{retries} retries in 60 s");
        // Back up: the next retry brings the keys back.
        script.answer(Ok(JwksResponse::document(jwks("a"))));
        sleep(17).await;
        assert!(remote.usable());
        assert_eq!(remote.handle.kids(), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn staleness_expires_during_a_hanging_fetch() {
        #[derive(Clone)]
        struct Hangs(Arc<AtomicBool>);
        impl JwksFetcher for Hangs {
            fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>> {
                let hang = self.0.load(Ordering::SeqCst);
                Box::pin(async move {
                    if hang {
                        std::future::pending::<()>().await;
                    }
                    Ok(jwks("a"))
                })
            }
        }
        let hang = Arc::new(AtomicBool::new(false));
        let source = RemoteJwks::new(Hangs(hang.clone()))
            .policy(JwkPolicy::new())
            .refresh_every(Duration::from_secs(100))
            .fetch_timeout(Duration::from_secs(60))
            .max_staleness(Duration::from_secs(120));
        let remote = RemoteKeys::new(source, KeyHandle::new(KeySet::new()), KeySet::new());
        remote.refresh().await.unwrap();
        RemoteKeys::spawn_refresh_loop(&remote);
        hang.store(true, Ordering::SeqCst);
        // The refresh starts at 100 s and hangs until its timeout at 160 s; the keys go stale
        // at 120 s, while it hangs.
        sleep(119).await;
        assert!(remote.usable());
        sleep(2).await;
        assert!(!remote.usable());
    }
}
