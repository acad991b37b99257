//! The in-process refresh store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::{
    FoundToken, PresentedToken, RefreshRecord, RefreshStore, RefreshStoreError, Rotation, TokenHash,
};
use crate::revocation::{BoxFuture, now_secs};

/// An in-memory [`RefreshStore`]: one mutex over tokens, families and the per-user index, so
/// every operation is atomic. Expired entries are swept as the maps grow. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryRefreshStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<TokenHash, Entry>,
    families: HashMap<String, Family>,
    users: HashMap<String, HashSet<String>>,
    sweep_at_len: usize,
}

#[derive(Debug)]
struct Entry {
    record: RefreshRecord,
    spent_at_ms: Option<u64>,
    /// The token this one was rotated to, once spent.
    successor: Option<TokenHash>,
}

#[derive(Debug)]
struct Family {
    sub: String,
    revoked: bool,
    expires_at: u64,
}

impl State {
    fn sweep(&mut self, now: u64) {
        if self.tokens.len() < self.sweep_at_len.max(64) {
            return;
        }
        self.tokens.retain(|_, e| e.record.expires_at >= now);
        self.families.retain(|_, f| f.expires_at >= now);
        let families = &self.families;
        for fams in self.users.values_mut() {
            fams.retain(|f| families.contains_key(f));
        }
        self.users.retain(|_, fams| !fams.is_empty());
        self.sweep_at_len = 2 * self.tokens.len();
    }

    /// The entry for `p` and its family: known, in the family it names, not expired.
    fn known(&self, p: &PresentedToken, now: u64) -> Option<(&Entry, &Family)> {
        let entry = self.tokens.get(&p.hash)?;
        let family = self.families.get(&entry.record.family)?;
        (entry.record.family == p.family && entry.record.expires_at >= now)
            .then_some((entry, family))
    }
}

impl MemoryRefreshStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, Result<T, RefreshStoreError>> {
    Box::pin(std::future::ready(Ok(v)))
}

impl RefreshStore for MemoryRefreshStore {
    fn create<'a>(
        &'a self,
        hash: TokenHash,
        record: &'a RefreshRecord,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        let mut state = self.lock();
        state.sweep(now_secs());
        state.families.insert(
            record.family.clone(),
            Family {
                sub: record.sub.clone(),
                revoked: false,
                expires_at: record.expires_at,
            },
        );
        state
            .users
            .entry(record.sub.clone())
            .or_default()
            .insert(record.family.clone());
        state.tokens.insert(
            hash,
            Entry {
                record: record.clone(),
                spent_at_ms: None,
                successor: None,
            },
        );
        ready(())
    }

    fn rotate<'a>(
        &'a self,
        presented: &'a PresentedToken,
        successor: TokenHash,
        successor_expires_at: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        let now = now_ms / 1000;
        let mut state = self.lock();
        let Some((entry, family)) = state.known(presented, now) else {
            return ready(Rotation::Invalid);
        };
        let record = entry.record.clone();
        if entry.spent_at_ms.is_some() && entry.successor == Some(successor) {
            // The same rotation again (its answer was lost): same answer.
            return ready(Rotation::Rotated(record));
        }
        if family.revoked {
            return ready(Rotation::FamilyRevoked(record));
        }
        if let Some(spent) = entry.spent_at_ms {
            if grace_ms > 0 && now_ms.saturating_sub(spent) < grace_ms {
                return ready(Rotation::WithinGrace);
            }
            if let Some(f) = state.families.get_mut(&record.family) {
                f.revoked = true;
            }
            return ready(Rotation::Reused(record));
        }
        if let Some(e) = state.tokens.get_mut(&presented.hash) {
            e.spent_at_ms = Some(now_ms);
            e.successor = Some(successor);
        }
        if let Some(f) = state.families.get_mut(&record.family) {
            f.expires_at = f.expires_at.max(successor_expires_at);
        }
        state.tokens.insert(
            successor,
            Entry {
                record: RefreshRecord {
                    expires_at: successor_expires_at,
                    ..record.clone()
                },
                spent_at_ms: None,
                successor: None,
            },
        );
        ready(Rotation::Rotated(record))
    }

    fn find<'a>(
        &'a self,
        presented: &'a PresentedToken,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<FoundToken>, RefreshStoreError>> {
        let state = self.lock();
        let found = state
            .known(presented, now)
            .filter(|(e, _)| e.spent_at_ms.is_none())
            .map(|(e, f)| FoundToken {
                record: e.record.clone(),
                family_revoked: f.revoked,
            });
        ready(found)
    }

    fn revoke_family<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RefreshStoreError>> {
        let mut state = self.lock();
        let sub = state.families.get_mut(family).map(|f| {
            f.revoked = true;
            f.sub.clone()
        });
        ready(sub)
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RefreshStoreError>> {
        let mut state = self.lock();
        let families: Vec<String> = state
            .users
            .get(sub)
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default();
        for f in &families {
            if let Some(fam) = state.families.get_mut(f) {
                fam.revoked = true;
            }
        }
        ready(families)
    }
}
