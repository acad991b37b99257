//! Keys from a remote JWK Set (an auth server's `/.well-known/jwks.json`).
//!
//! The verifier fetches the set when it is built, refreshes it in the background, and, when a
//! token names a `kid` it does not know, fetches once more (at most once per
//! `min_refetch_interval`, so a flood of made-up `kid`s cannot make it hammer the auth
//! server). A failed or empty fetch keeps the last good keys. Reads on the request path are
//! lock-free (`arc-swap`); a key change empties the verified-token cache.
//!
//! The crate brings no HTTP client: give it a [`JwksFetcher`], e.g. a closure around the
//! client the application already uses.
//!
//! ```no_run
//! use tower_token_auth::jwks::RemoteJwks;
//! use tower_token_auth::{KeySet, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::new(|| async {
//!     // e.g. reqwest::get("https://auth.example/.well-known/jwks.json").await?.text().await
//!     Ok::<_, tower_token_auth::jwks::BoxError>(String::from(r#"{"keys":[]}"#))
//! });
//! let verifier = Verifier::builder(KeySet::new())
//!     .issuer("https://auth.example")
//!     .audience("orders")
//!     .build_with_jwks(jwks)
//!     .await?;
//! # let _ = verifier; Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::ConfigError;
use crate::keys::KeySet;
use crate::revocation::BoxFuture;
use crate::verifier::{Verifier, VerifierBuilder};

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
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("refresh_every", &self.refresh_every)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    /// A source using `fetcher`; refreshes every 5 minutes, refetches for an unknown `kid` at
    /// most every 10 seconds.
    pub fn new<F: JwksFetcher>(fetcher: F) -> Self {
        Self {
            fetcher: Arc::new(fetcher),
            refresh_every: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
        }
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
    /// The document is not a usable JWK Set (or has no key).
    #[error("JWK Set unusable: {0}")]
    Invalid(#[from] ConfigError),
}

/// A verifier's remote key state.
pub(crate) struct Remote {
    source: RemoteJwks,
    started: Instant,
    // Milliseconds since `started` of the last fetch, +1 (0: never).
    last_fetch: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
}

impl Remote {
    pub(crate) fn new(source: RemoteJwks) -> Self {
        Self {
            source,
            started: Instant::now(),
            last_fetch: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn since_last_fetch(&self) -> Option<Duration> {
        match self.last_fetch.load(Ordering::Acquire) {
            0 => None,
            t => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(t - 1)),
            ),
        }
    }
}

impl VerifierBuilder {
    /// Builds a verifier whose keys come from a remote JWK Set: fetched now (an error if that
    /// fails), refreshed in the background (needs a Tokio runtime). Keys given to
    /// [`Verifier::builder`] are replaced by the fetched ones.
    pub async fn build_with_jwks(self, source: RemoteJwks) -> Result<Verifier, KeySourceError> {
        let every = source.refresh_every;
        let verifier = self.with_remote(source).build()?;
        verifier.refresh_keys().await?;
        let weak = verifier.downgrade();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(v) = Verifier::upgrade(&weak) else {
                    return;
                };
                if let Err(e) = v.refresh_keys().await {
                    tracing::warn!(target: "tower_token_auth", error = %e, "JWK Set refresh failed; keeping the last good keys");
                }
            }
        });
        Ok(verifier)
    }
}

impl Verifier {
    /// Fetches the remote JWK Set now and uses it; returns whether the keys changed. On error
    /// the current keys stay. Does nothing for a verifier with static keys.
    pub async fn refresh_keys(&self) -> Result<bool, KeySourceError> {
        let Some(remote) = self.remote() else {
            return Ok(false);
        };
        let _one_at_a_time = remote.fetching.lock().await;
        let stamp = remote.started.elapsed().as_millis() as u64 + 1;
        remote.last_fetch.store(stamp, Ordering::Release);
        let text = remote
            .source
            .fetcher
            .fetch()
            .await
            .map_err(KeySourceError::Fetch)?;
        let keys = KeySet::from_jwks_json(&text)?;
        if keys.is_empty() {
            return Err(ConfigError::new("the JWK Set has no usable key").into());
        }
        let mut new_kids: Vec<String> = keys
            .iter()
            .filter_map(|k| k.kid().map(str::to_owned))
            .collect();
        new_kids.sort();
        let changed = new_kids != self.kids();
        self.set_keys(&keys);
        if changed {
            tracing::info!(target: "tower_token_auth", kids = ?new_kids, "JWK Set keys updated");
        }
        Ok(changed)
    }

    /// For a token whose `kid` is unknown: fetch once more unless a fetch happened within
    /// `min_refetch_interval`. Returns whether the keys were refreshed.
    pub(crate) async fn refetch_for_unknown_kid(&self) -> bool {
        let Some(remote) = self.remote() else {
            return false;
        };
        if remote
            .since_last_fetch()
            .is_some_and(|d| d < remote.source.min_refetch_interval)
        {
            return false;
        }
        match self.refresh_keys().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "JWK Set refetch for an unknown kid failed");
                false
            }
        }
    }
}
