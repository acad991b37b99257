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
//! The crate brings no HTTP client: give it a [`JwksFetcher`], e.g. a closure around the
//! client the application already uses.
//!
//! ```no_run
//! use tower_token_auth::keys::RemoteJwks;
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::new(|| async {
//!     // e.g. reqwest::get("https://auth.example/.well-known/jwks.json").await?.text().await
//!     Ok::<_, tower_token_auth::keys::BoxError>(String::from(r#"{"keys":[]}"#))
//! });
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer("https://auth.example")
//!     .audience("orders")
//!     .build_with_jwks(jwks)
//!     .await?;
//! # let _ = verifier; Ok(()) }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::jwk::{JwkPolicy, SkippedKey, parse_jwks};
use super::{KeyHandle, KeySet};
use crate::error::ConfigError;
use crate::revocation::BoxFuture;

/// A boxed error from a fetcher.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fetches the JWK Set document.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The JSON text of the JWK Set.
    fn fetch(&self) -> BoxFuture<'static, Result<String, BoxError>>;
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

/// Where and how often to fetch a JWK Set.
#[derive(Clone)]
pub struct RemoteJwks {
    fetcher: Arc<dyn JwksFetcher>,
    refresh_every: Duration,
    min_refetch_interval: Duration,
    fetch_timeout: Duration,
    policy: JwkPolicy,
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("refresh_every", &self.refresh_every)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// A source using `fetcher`; refreshes every 5 minutes, refetches for an unknown `kid` at
    /// most every 10 seconds, gives a fetch 10 seconds, and uses asymmetric keys only
    /// ([`JwkPolicy::without_symmetric_keys`]).
    pub fn new<F: JwksFetcher>(fetcher: F) -> Self {
        Self {
            fetcher: Arc::new(fetcher),
            refresh_every: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(10),
            policy: JwkPolicy::new().without_symmetric_keys(),
        }
    }

    /// Which keys of the set are used and with which algorithms (default: every supported
    /// asymmetric algorithm, RS256 for RSA keys without `alg`, no symmetric keys).
    pub fn policy(mut self, policy: JwkPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long one fetch may take before it counts as failed, and so how long a request with
    /// an unknown `kid` waits for the refetch in flight (default 10 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Background refresh period.
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// Least time between two fetches triggered by unknown `kid`s.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
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

/// A remote JWK Set feeding a [`KeyHandle`]: fetches, merges with the static keys, publishes.
pub(crate) struct RemoteKeys {
    source: RemoteJwks,
    handle: KeyHandle,
    static_keys: KeySet,
    started: Instant,
    // Milliseconds since `started` of the last refetch for an unknown `kid`, +1 (0: never).
    // Scheduled refreshes do not count: a rotation right after one must not be refused.
    last_refetch: AtomicU64,
    // Held for the whole of a fetch: waiting on it is waiting for the fetch in flight.
    fetching: tokio::sync::Mutex<()>,
    // Skipped keys already logged, so each is logged once and not at every refresh.
    warned: Mutex<HashSet<SkippedKey>>,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("source", &self.source)
            .field("handle", &self.handle)
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
            started: Instant::now(),
            last_refetch: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            warned: Mutex::new(HashSet::new()),
        })
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

    async fn fetch_and_publish(&self) -> Result<bool, KeySourceError> {
        let text = tokio::time::timeout(self.source.fetch_timeout, self.source.fetcher.fetch())
            .await
            .map_err(|_| KeySourceError::Timeout)?
            .map_err(KeySourceError::Fetch)?;
        let (fetched, skipped) = parse_jwks(&text, &self.source.policy)?;
        self.log_skipped_once(skipped);
        if fetched.is_empty() {
            return Err(ConfigError::new("the JWK Set has no usable key").into());
        }
        let (keys, shadowed) = self.static_keys.merged_with(&fetched);
        for kid in shadowed {
            tracing::warn!(target: "tower_token_auth", ?kid, "a fetched JWK has the kid of a static key; the static key is kept");
        }
        let changed = self.handle.publish(keys);
        if changed {
            tracing::info!(target: "tower_token_auth", kids = ?self.handle.kids(), "JWK Set keys updated");
        }
        Ok(changed)
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

    /// Refreshes every `refresh_every` in the background (needs a Tokio runtime) until every
    /// verifier holding this source is gone.
    pub(crate) fn spawn_refresh_loop(this: &Arc<Self>) {
        let every = this.source.refresh_every;
        let weak: Weak<Self> = Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(remote) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = remote.refresh().await {
                    tracing::warn!(target: "tower_token_auth", error = %e, "JWK Set refresh failed; keeping the last good keys");
                }
            }
        });
    }
}
