//! The introspection cache: SHA-256 of the token → the answer, until a deadline; and the
//! requests in flight, one per token.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::claims::Registered;
use crate::error::AuthError;

/// The cache key of a token: its SHA-256 (the token itself is never kept).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey([u8; 32]);

impl TokenKey {
    pub(crate) fn new(digest: [u8; 32]) -> Self {
        Self(digest)
    }
}

/// What the endpoint said about a token.
#[derive(Clone)]
pub(crate) enum Answer {
    /// Active, an access token: its members.
    Active(Arc<Active>),
    /// Not active, or not an access token.
    Inactive,
    /// Active, but a member has the wrong type (why, for the log).
    Invalid(Arc<str>),
}

/// An active answer: the registered members, read once, and the body, for the application's
/// claims type.
pub(crate) struct Active {
    pub(crate) registered: Registered,
    pub(crate) body: Bytes,
    /// The claims as the first claims type asked for them, shared by the hits after.
    pub(crate) typed: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Answer {
    pub(crate) fn active(registered: Registered, body: Bytes) -> Self {
        Self::Active(Arc::new(Active {
            registered,
            body,
            typed: OnceLock::new(),
        }))
    }

    pub(crate) fn invalid(why: String) -> Self {
        Self::Invalid(why.into())
    }
}

type Flight = Arc<OnceCell<Result<Answer, AuthError>>>;

pub(crate) struct Cache {
    /// Answer and the last second it may be used.
    entries: RwLock<HashMap<TokenKey, (Answer, u64)>>,
    max_entries: usize,
    in_flight: Mutex<HashMap<TokenKey, Flight>>,
}

impl Cache {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            max_entries,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn get(&self, key: &TokenKey, now: u64) -> Option<Answer> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((answer, until)) if now <= *until => Some(answer.clone()),
            _ => None,
        }
    }

    fn insert(&self, key: TokenKey, answer: Answer, until: u64, now: u64) {
        if until <= now {
            // Caching is off (a zero TTL), or the token expires now.
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| *until >= now);
            if entries.len() >= self.max_entries {
                // Drop about half, in the map's (randomly seeded) order.
                let keep = self.max_entries / 2;
                let mut kept = 0;
                entries.retain(|_, _| {
                    kept += 1;
                    kept <= keep
                });
            }
        }
        entries.insert(key, (answer, until));
    }

    /// The answer for `key`: cached, or from `ask` (which says how long to cache it), asked
    /// once however many callers wait for the same key at the same time. A failure is given
    /// to every caller waiting then and is not cached.
    pub(crate) async fn single_flight<F, Fut>(
        &self,
        key: TokenKey,
        now: fn() -> u64,
        ask: F,
    ) -> Result<Answer, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Answer, u64), AuthError>>,
    {
        let flight = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            // Under the lock: an answer is cached before its flight is removed, so a caller
            // sees one or the other.
            if let Some(answer) = self.get(&key, now()) {
                return Ok(answer);
            }
            in_flight.entry(key).or_default().clone()
        };
        let result = flight
            .get_or_init(|| async {
                let (answer, until) = ask().await?;
                self.insert(key, answer.clone(), until, now());
                Ok(answer)
            })
            .await
            .clone();
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            in_flight.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> TokenKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        TokenKey::new(k)
    }

    #[test]
    fn memory_is_bounded_and_expired_answers_go_first() {
        let cache = Cache::new(100);
        for i in 0..50 {
            cache.insert(key(i), Answer::Inactive, 10, 5);
        }
        for i in 50..100 {
            cache.insert(key(i), Answer::Inactive, 1_000, 5);
        }
        assert_eq!(cache.len(), 100);
        // Full at second 20: the 50 answers that ended at 10 are dropped, the rest stay.
        cache.insert(key(100), Answer::Inactive, 1_000, 20);
        assert_eq!(cache.len(), 51);
        assert!(cache.get(&key(99), 20).is_some());
        assert!(cache.get(&key(0), 20).is_none());
        for i in 101..10_000 {
            cache.insert(key(i), Answer::Inactive, 1_000, 20);
            assert!(cache.len() <= 100);
        }
        // An answer is not used after its last second; a zero TTL is not cached.
        assert!(cache.get(&key(9_999), 1_000).is_some());
        assert!(cache.get(&key(9_999), 1_001).is_none());
        cache.insert(key(20_000), Answer::Inactive, 20, 20);
        assert!(cache.get(&key(20_000), 20).is_none());
    }
}
