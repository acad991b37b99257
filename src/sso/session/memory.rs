//! The in-memory SSO session store, for one instance and tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{FamilyOwner, SsoSession, SsoSessionError, SsoSessionStore, now_secs};
use crate::revocation::BoxFuture;

/// An [`SsoSessionStore`] in this process's memory: sessions end with it. Expired entries
/// are dropped as new sessions start.
#[derive(Debug)]
pub struct MemorySsoSessionStore {
    session_ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, SsoSession>,
    /// Family → (owner, expiry in Unix seconds).
    families: HashMap<String, (FamilyOwner, u64)>,
}

impl MemorySsoSessionStore {
    /// An empty store whose sessions live `session_ttl`.
    pub fn new(session_ttl: Duration) -> Self {
        Self {
            session_ttl,
            inner: Mutex::default(),
        }
    }

    /// How many sessions (live or not yet dropped) the store holds.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent maps: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, inner: &mut Inner, sid: &str) -> bool {
        let now = now_secs();
        match inner.sessions.get(sid) {
            Some(s) if s.expires_at > now => true,
            Some(_) => {
                inner.sessions.remove(sid);
                false
            }
            None => false,
        }
    }
}

impl SsoSessionStore for MemorySsoSessionStore {
    fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    fn insert<'a>(&'a self, session: &'a SsoSession) -> BoxFuture<'a, Result<(), SsoSessionError>> {
        Box::pin(async move {
            let now = now_secs();
            let mut inner = self.lock();
            inner.sessions.retain(|_, s| s.expires_at > now);
            inner.families.retain(|_, (_, until)| *until > now);
            inner.sessions.insert(session.sid.clone(), session.clone());
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            if !self.live(&mut inner, sid) {
                return Ok(None);
            }
            Ok(inner.sessions.get(sid).cloned())
        })
    }

    fn add_client<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            if !self.live(&mut inner, sid) {
                return Ok(false);
            }
            if let Some(s) = inner.sessions.get_mut(sid) {
                s.clients.insert(client_id.to_owned());
            }
            Ok(true)
        })
    }

    fn add_family<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
        family: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let owner = FamilyOwner {
                sid: sid.to_owned(),
                client_id: client_id.to_owned(),
            };
            let until = now_secs().saturating_add(self.session_ttl.as_secs());
            inner.families.insert(family.to_owned(), (owner, until));
            if !self.live(&mut inner, sid) {
                return Ok(false);
            }
            if let Some(s) = inner.sessions.get_mut(sid) {
                s.families.insert(family.to_owned());
            }
            Ok(true)
        })
    }

    fn family_owner<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<FamilyOwner>, SsoSessionError>> {
        Box::pin(async move {
            let inner = self.lock();
            let found = inner.families.get(family);
            Ok(found
                .filter(|(_, until)| *until > now_secs())
                .map(|(owner, _)| owner.clone()))
        })
    }

    fn end<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>> {
        Box::pin(async move { Ok(self.lock().sessions.remove(sid)) })
    }
}
