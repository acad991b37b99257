//! The in-memory authorization-code store, for a single instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{
    AuthorizationCodeStore, CodeGrant, CodeHash, CodeStoreError, DEFAULT_CODE_TTL,
    DEFAULT_REPLAY_WINDOW, IssuedRef, MarkIssued, Taken,
};
use crate::revocation::{BoxFuture, now_ms};

/// Expired entries are swept on insert once the map holds this many.
const SWEEP_AT: usize = 1024;

#[derive(Debug)]
struct Entry {
    grant: CodeGrant,
    expires_ms: u64,
    /// The attempt that spent the code.
    spent_by: Option<String>,
    issued: Option<IssuedRef>,
    /// A replay came in before `mark_issued`.
    replayed_early: bool,
}

/// An [`AuthorizationCodeStore`] in this process's memory: codes are lost on restart, and
/// other instances do not see them (use [`RedisCodeStore`](super::RedisCodeStore) for
/// several). One mutex; every operation is a map lookup, never `await`ed under the lock.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::sso::code::{AuthorizationCodeStore, MemoryCodeStore};
///
/// let store = MemoryCodeStore::new().with_code_ttl(Duration::from_secs(30));
/// assert_eq!(store.code_ttl(), Duration::from_secs(30));
/// ```
#[derive(Debug)]
pub struct MemoryCodeStore {
    entries: Mutex<HashMap<CodeHash, Entry>>,
    code_ttl: Duration,
    replay_window: Duration,
}

impl Default for MemoryCodeStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCodeStore {
    /// An empty store: codes live [`DEFAULT_CODE_TTL`], spent ones are remembered
    /// [`DEFAULT_REPLAY_WINDOW`].
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            code_ttl: DEFAULT_CODE_TTL,
            replay_window: DEFAULT_REPLAY_WINDOW,
        }
    }

    /// How long a code is valid (default 60 s).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// How long a spent code is remembered after its redemption (default 10 minutes).
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// How many codes (live or spent) are held, expired ones included until swept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds no code.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CodeHash, Entry>> {
        // A panic under the lock leaves the map consistent (every update is one statement).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AuthorizationCodeStore for MemoryCodeStore {
    fn code_ttl(&self) -> Duration {
        self.code_ttl
    }

    fn replay_window(&self) -> Duration {
        self.replay_window
    }

    fn insert<'a>(
        &'a self,
        hash: CodeHash,
        grant: &'a CodeGrant,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<(), CodeStoreError>> {
        let mut map = self.lock();
        if map.len() >= SWEEP_AT {
            let now = now_ms();
            map.retain(|_, e| e.expires_ms > now);
        }
        map.insert(
            hash,
            Entry {
                grant: grant.clone(),
                expires_ms: expires_at_ms,
                spent_by: None,
                issued: None,
                replayed_early: false,
            },
        );
        Box::pin(async { Ok(()) })
    }

    fn take<'a>(
        &'a self,
        hash: CodeHash,
        attempt: &'a str,
        keep_until_ms: u64,
    ) -> BoxFuture<'a, Result<Taken, CodeStoreError>> {
        let now = now_ms();
        let mut map = self.lock();
        let taken = match map.get_mut(&hash) {
            None => Taken::Unknown,
            Some(e) if e.expires_ms <= now => {
                map.remove(&hash);
                Taken::Unknown
            }
            Some(e) => match &e.spent_by {
                Some(by) if by == attempt => Taken::First(e.grant.clone()),
                Some(_) => {
                    if e.issued.is_none() {
                        e.replayed_early = true;
                    }
                    Taken::Spent {
                        grant: e.grant.clone(),
                        issued: e.issued.clone(),
                    }
                }
                None => {
                    e.spent_by = Some(attempt.to_owned());
                    e.expires_ms = e.expires_ms.max(keep_until_ms);
                    Taken::First(e.grant.clone())
                }
            },
        };
        Box::pin(async { Ok(taken) })
    }

    fn mark_issued<'a>(
        &'a self,
        hash: CodeHash,
        issued: &'a IssuedRef,
    ) -> BoxFuture<'a, Result<MarkIssued, CodeStoreError>> {
        let mut map = self.lock();
        let outcome = match map.get_mut(&hash) {
            Some(e) if e.spent_by.is_some() => {
                e.issued = Some(issued.clone());
                if e.replayed_early {
                    MarkIssued::Replayed
                } else {
                    MarkIssued::Recorded
                }
            }
            // Gone (its replay window ended) or never spent: nothing to attach it to.
            _ => MarkIssued::Recorded,
        };
        Box::pin(async move { Ok(outcome) })
    }
}
