//! The in-process replay store.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{ReplayCheck, ReplayError, ReplayStore};
use crate::revocation::now_secs;

/// A [`ReplayStore`] in this process's memory, bounded: the default of
/// [`DpopConfig`](super::DpopConfig).
///
/// It sees the proofs of this process only: behind a load balancer, a proof replayed to
/// another instance is not caught. Use [`RedisReplayStore`](super::RedisReplayStore) (feature
/// `redis`) for several instances.
///
/// Each entry (about 80 bytes) lives until its proof's `iat` leaves the accepted window.
/// When the store is full, expired entries are dropped; if none has expired, the proof is
/// refused with 503 ([`ReplayError::Full`]) rather than a live entry forgotten (fail closed).
/// The default capacity, [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY), holds 65 s of about
/// 3 000 proofs a second.
///
/// ```
/// use tower_token_auth::dpop::{DpopConfig, MemoryReplayStore};
///
/// let config = DpopConfig::new().replay_store(MemoryReplayStore::with_capacity(1_000_000));
/// # let _ = config;
/// ```
pub struct MemoryReplayStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

// Not derived: it would print every record (and a `DpopConfig` prints its store).
impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

struct Inner {
    /// Replay key → the last Unix second the entry must be kept.
    seen: HashMap<[u8; 32], u64>,
    /// No entry expires before this second (a lower bound: expired entries are dropped only
    /// once the store is full, and only when one of them may have expired).
    earliest: u64,
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryReplayStore {
    /// The default capacity: 200 000 proofs.
    pub const DEFAULT_CAPACITY: usize = 200_000;

    /// A store of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) entries.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` unexpired proofs (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                seen: HashMap::new(),
                earliest: u64::MAX,
            }),
        }
    }

    /// How many proofs are recorded (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no proof is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record_at(
        &self,
        key: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, ReplayError> {
        let mut inner = self.lock();
        if let Some(&kept_until) = inner.seen.get(key)
            && kept_until >= now
        {
            return Ok(false);
        }
        if !inner.seen.contains_key(key) && inner.seen.len() >= self.capacity {
            if inner.earliest < now {
                inner.seen.retain(|_, kept_until| *kept_until >= now);
                inner.earliest = inner.seen.values().copied().min().unwrap_or(u64::MAX);
            }
            if inner.seen.len() >= self.capacity {
                return Err(ReplayError::Full {
                    capacity: self.capacity,
                });
            }
        }
        inner.seen.insert(*key, expires_at);
        inner.earliest = inner.earliest.min(expires_at);
        Ok(true)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck {
        ReplayCheck::Ready(self.record_at(key, expires_at_unix, now_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn first_sight_then_replay_until_expiry() {
        let store = MemoryReplayStore::new();
        assert!(store.record_at(&key(1), 160, 100).unwrap());
        assert!(!store.record_at(&key(1), 160, 100).unwrap());
        assert!(
            !store.record_at(&key(1), 160, 160).unwrap(),
            "kept through its last second"
        );
        assert!(store.record_at(&key(2), 160, 100).unwrap());
        // Expired: the proof's iat no longer passes, so the entry may go.
        assert!(store.record_at(&key(1), 230, 161).unwrap());
        assert_eq!(
            format!("{store:?}"),
            "MemoryReplayStore { capacity: 200000, len: 2 }"
        );
    }

    #[test]
    fn full_store_drops_expired_entries() {
        let store = MemoryReplayStore::with_capacity(2);
        assert!(store.record_at(&key(1), 110, 100).unwrap());
        assert!(store.record_at(&key(2), 120, 100).unwrap());
        // Full, nothing expired: refused, not forgotten.
        assert!(matches!(
            store.record_at(&key(3), 130, 105),
            Err(ReplayError::Full { capacity: 2 })
        ));
        assert!(!store.record_at(&key(1), 110, 105).unwrap());
        // Key 1 expired at 111: dropped to make room.
        assert!(store.record_at(&key(3), 130, 111).unwrap());
        assert_eq!(store.len(), 2);
        assert!(!store.record_at(&key(2), 120, 111).unwrap());
        assert!(!store.record_at(&key(3), 130, 111).unwrap());
    }

    #[test]
    fn concurrent_calls_accept_a_key_once() {
        let store = std::sync::Arc::new(MemoryReplayStore::new());
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let store = store.clone();
                    s.spawn(move || {
                        (0..100u8)
                            .filter(|n| store.record_at(&key(*n), 200, 100).unwrap())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 100);
    }
}
