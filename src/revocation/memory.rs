//! The in-process revocation store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::{
    BoxFuture, RevocationCheck, RevocationError, RevocationStatus, RevocationStore, TokenRef,
    in_force, now_secs,
};

/// An in-memory [`RevocationStore`], the embedded default.
///
/// Entries expire with the tokens they revoke: a revoked `jti` is kept until its `exp`, a user
/// revocation until its `keep_until`, each plus [`RECORD_GRACE`](super::RECORD_GRACE) (the
/// longest verifier leeway). Expired entries are swept on writes whenever the map has
/// doubled since the last sweep, so memory stays proportional to the live entries. Checks take
/// a read lock and skip the maps entirely while nothing is revoked.
///
/// It lives in one process: several instances of a service need a shared store (the Redis
/// store, feature `redis`). Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: RwLock<State>,
    // Set once the first revocation is recorded: until then checks need no lock.
    any: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    tokens: HashMap<Box<str>, TokenRevocation>,
    users: HashMap<Box<str>, UserRevocation>,
    sessions: HashMap<Box<str>, TokenRevocation>,
    sweep_at_len: usize,
}

/// Live records, for writing them back to a shared store.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Snapshot {
    /// (jti, sub, exp)
    pub(crate) tokens: Vec<(String, Option<String>, u64)>,
    /// (sub, issued_before, keep_until)
    pub(crate) users: Vec<(String, u64, u64)>,
    /// (sid, sub, keep_until)
    pub(crate) sessions: Vec<(String, Option<String>, u64)>,
}

#[derive(Debug, Clone)]
struct TokenRevocation {
    until: u64,
    // Kept so a shared store can write the revocation back under the user's key.
    sub: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy)]
struct UserRevocation {
    issued_before: u64,
    keep_until: u64,
}

impl State {
    fn is_revoked(&self, token: &TokenRef<'_>, now: u64) -> bool {
        let token_revoked = token
            .jti
            .and_then(|jti| self.tokens.get(jti))
            .is_some_and(|t| in_force(t.until, now));
        let user_revoked = token
            .sub
            .and_then(|sub| self.users.get(sub))
            .is_some_and(|u| {
                in_force(u.keep_until, now) && token.iat.is_none_or(|iat| iat <= u.issued_before)
            });
        let session_revoked = token
            .sid
            .and_then(|sid| self.sessions.get(sid))
            .is_some_and(|t| in_force(t.until, now));
        token_revoked || user_revoked || session_revoked
    }

    fn maybe_sweep(&mut self, now: u64) {
        let len = self.tokens.len() + self.users.len() + self.sessions.len();
        if len >= self.sweep_at_len.max(64) {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: u64) {
        self.tokens.retain(|_, t| in_force(t.until, now));
        self.users.retain(|_, u| in_force(u.keep_until, now));
        self.sessions.retain(|_, t| in_force(t.until, now));
        self.sweep_at_len = 2 * (self.tokens.len() + self.users.len() + self.sessions.len());
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many revocation records are held (live and not yet swept).
    pub fn len(&self) -> usize {
        let state = self.read();
        state.tokens.len() + state.users.len() + state.sessions.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired record now.
    pub fn sweep(&self) {
        self.write().sweep(now_secs());
    }

    /// Synchronous form of [`RevocationStore::check`].
    pub fn is_revoked(&self, token: &TokenRef<'_>) -> bool {
        self.inner.any.load(Ordering::Acquire) && self.read().is_revoked(token, now_secs())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-write of plain maps; the data
        // is still usable, and refusing all checks would take the service down.
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a token revocation (synchronous form of [`RevocationStore::revoke_token`]).
    pub fn revoke_token_now(&self, jti: &str, expires_at: u64) {
        self.revoke_token_of(jti, None, expires_at);
    }

    pub(crate) fn revoke_token_of(&self, jti: &str, sub: Option<&str>, expires_at: u64) {
        self.record(|s| &mut s.tokens, jti, sub, expires_at);
    }

    /// Records a session revocation (synchronous form of [`RevocationStore::revoke_session`]).
    pub fn revoke_session_now(&self, sub: Option<&str>, sid: &str, keep_until: u64) {
        self.record(|s| &mut s.sessions, sid, sub, keep_until);
    }

    fn record(
        &self,
        map: impl FnOnce(&mut State) -> &mut HashMap<Box<str>, TokenRevocation>,
        id: &str,
        sub: Option<&str>,
        until: u64,
    ) {
        let now = now_secs();
        let mut state = self.write();
        let entry = map(&mut state).entry(id.into()).or_insert(TokenRevocation {
            until: 0,
            sub: None,
        });
        entry.until = entry.until.max(until);
        if entry.sub.is_none() {
            entry.sub = sub.map(Into::into);
        }
        state.maybe_sweep(now);
        self.inner.any.store(true, Ordering::Release);
    }

    /// Records a user revocation (synchronous form of [`RevocationStore::revoke_user`]).
    pub fn revoke_user_now(&self, sub: &str, issued_before: u64, keep_until: u64) {
        let now = now_secs();
        let mut state = self.write();
        let entry = state.users.entry(sub.into()).or_insert(UserRevocation {
            issued_before,
            keep_until,
        });
        entry.issued_before = entry.issued_before.max(issued_before);
        entry.keep_until = entry.keep_until.max(keep_until);
        state.maybe_sweep(now);
        self.inner.any.store(true, Ordering::Release);
    }

    /// Every live record.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn snapshot(&self, now: u64) -> Snapshot {
        let state = self.read();
        let live = |m: &HashMap<Box<str>, TokenRevocation>| {
            m.iter()
                .filter(|(_, t)| in_force(t.until, now))
                .map(|(id, t)| (id.to_string(), t.sub.as_deref().map(str::to_owned), t.until))
                .collect()
        };
        Snapshot {
            tokens: live(&state.tokens),
            sessions: live(&state.sessions),
            users: state
                .users
                .iter()
                .filter(|(_, u)| in_force(u.keep_until, now))
                .map(|(sub, u)| (sub.to_string(), u.issued_before, u.keep_until))
                .collect(),
        }
    }
}

impl RevocationStore for MemoryStore {
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
        RevocationCheck::Ready(Ok(RevocationStatus::from_revoked(self.is_revoked(token))))
    }

    fn revoke_token<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        let result = token
            .revocable()
            .map(|(jti, exp)| self.revoke_token_now(jti, exp));
        Box::pin(std::future::ready(result))
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        issued_before: u64,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        self.revoke_user_now(sub, issued_before, keep_until);
        Box::pin(std::future::ready(Ok(())))
    }

    fn revoke_session<'a>(
        &'a self,
        sub: Option<&'a str>,
        sid: &'a str,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        self.revoke_session_now(sub, sid, keep_until);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok<'a>(jti: &'a str, sub: &'a str, iat: u64) -> TokenRef<'a> {
        TokenRef::new()
            .jti(Some(jti))
            .sub(Some(sub))
            .iat(Some(iat))
            .exp(None)
            .sid(None)
    }

    #[test]
    fn token_and_user_revocation() {
        let s = MemoryStore::new();
        let now = now_secs();
        assert!(!s.is_revoked(&tok("a", "u", now)));
        s.revoke_token_now("a", now + 60);
        assert!(s.is_revoked(&tok("a", "u", now)));
        assert!(!s.is_revoked(&tok("b", "u", now)));
        s.revoke_user_now("u", now, now + 60);
        assert!(s.is_revoked(&tok("b", "u", now)));
        assert!(
            !s.is_revoked(&tok("b", "u", now + 1)),
            "issued after the revocation"
        );
        assert!(
            s.is_revoked(
                &TokenRef::new()
                    .jti(None)
                    .sub(Some("u"))
                    .iat(None)
                    .exp(None)
                    .sid(None)
            )
        );
    }

    #[test]
    fn expired_entries_are_ignored_and_swept() {
        let s = MemoryStore::new();
        let now = now_secs();
        for i in 0..1000 {
            s.revoke_token_now(&format!("old{i}"), now - super::super::GRACE_SECS - 10);
        }
        assert!(!s.is_revoked(&tok("old1", "u", now)));
        assert!(
            s.len() < 200,
            "sweeps keep the map near its live size, got {}",
            s.len()
        );
        s.sweep();
        assert_eq!(s.len(), 0);
    }
}
