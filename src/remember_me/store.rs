//! Where persistent remember-me logins live: series → user, token hash, times, device.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::revocation::{BoxFuture, now_secs};

/// One remembered login (a browser), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRecord {
    /// The user.
    pub username: String,
    /// SHA-256 of the current token.
    pub token_hash: [u8; 32],
    /// SHA-256 of the token rotated away last, for the grace window.
    pub previous_hash: Option<[u8; 32]>,
    /// When the token was last rotated, Unix milliseconds.
    pub rotated_at_ms: u64,
    /// When the login was remembered, Unix seconds.
    pub created: u64,
    /// When it last logged the user in, Unix seconds.
    pub last_used: u64,
    /// When it stops working, Unix seconds.
    pub expires_at: u64,
    /// The browser's `User-Agent` at login, for listing devices.
    pub user_agent: Option<String>,
}

/// A remembered device, for "where am I logged in" pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The series id: pass it to revoke this device.
    pub series: String,
    /// When the login was remembered, Unix seconds.
    pub created: u64,
    /// When it last logged the user in, Unix seconds.
    pub last_used: u64,
    /// When it expires, Unix seconds.
    pub expires_at: u64,
    /// The browser's `User-Agent` at login.
    pub user_agent: Option<String>,
}

/// The outcome of presenting a persistent remember-me cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeriesCheck {
    /// Current token: rotated to the new one.
    Rotated {
        /// The user to log in.
        username: String,
    },
    /// The token rotated away less than the grace window ago (a concurrent request, a
    /// restored tab): accepted, no second rotation.
    WithinGrace {
        /// The user to log in.
        username: String,
    },
    /// A known series with a wrong token: the cookie was copied. Every series of the user has
    /// been deleted.
    Theft {
        /// The user whose remembered logins were all removed.
        username: String,
    },
    /// Unknown or expired series.
    Invalid,
}

/// A remember-me store failed.
#[derive(Debug, thiserror::Error)]
#[error("remember-me store unavailable: {0}")]
pub struct RememberMeStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage for persistent remember-me logins. `check_and_rotate` must be atomic.
pub trait RememberMeStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new series.
    fn create<'a>(
        &'a self,
        series: &'a str,
        record: SeriesRecord,
    ) -> BoxFuture<'a, Result<(), RememberMeStoreError>>;

    /// Checks `presented` (a token hash) against `series`; if current, replaces it with
    /// `next` and records `now_ms`. See [`SeriesCheck`] for the outcomes; on theft every
    /// series of the user is deleted before this returns.
    fn check_and_rotate<'a>(
        &'a self,
        series: &'a str,
        presented: [u8; 32],
        next: [u8; 32],
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<SeriesCheck, RememberMeStoreError>>;

    /// Deletes one series (logout on this device).
    fn delete<'a>(&'a self, series: &'a str) -> BoxFuture<'a, Result<(), RememberMeStoreError>>;

    /// Deletes every series of `username`; returns how many.
    fn delete_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<usize, RememberMeStoreError>>;

    /// The live series of `username`.
    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>>;
}

/// The verdict on a presented token hash, shared by the stores.
pub(crate) enum Verdict {
    Current,
    Grace,
    Theft,
}

pub(crate) fn judge(
    record: &SeriesRecord,
    presented: &[u8; 32],
    now_ms: u64,
    grace_ms: u64,
) -> Verdict {
    if bool::from(record.token_hash.ct_eq(presented)) {
        return Verdict::Current;
    }
    let previous = record
        .previous_hash
        .is_some_and(|p| bool::from(p.ct_eq(presented)));
    if previous && grace_ms > 0 && now_ms.saturating_sub(record.rotated_at_ms) < grace_ms {
        Verdict::Grace
    } else {
        Verdict::Theft
    }
}

/// An in-memory [`RememberMeStore`]. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryRememberMeStore {
    state: Arc<Mutex<HashMap<String, SeriesRecord>>>,
}

impl MemoryRememberMeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SeriesRecord>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, Result<T, RememberMeStoreError>> {
    Box::pin(std::future::ready(Ok(v)))
}

impl RememberMeStore for MemoryRememberMeStore {
    fn create<'a>(
        &'a self,
        series: &'a str,
        record: SeriesRecord,
    ) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        let now = now_secs();
        let mut map = self.lock();
        map.retain(|_, r| r.expires_at >= now);
        map.insert(series.to_owned(), record);
        ready(())
    }

    fn check_and_rotate<'a>(
        &'a self,
        series: &'a str,
        presented: [u8; 32],
        next: [u8; 32],
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<SeriesCheck, RememberMeStoreError>> {
        let now = now_ms / 1000;
        let mut map = self.lock();
        let Some(record) = map.get_mut(series).filter(|r| r.expires_at >= now) else {
            return ready(SeriesCheck::Invalid);
        };
        let username = record.username.clone();
        let outcome = match judge(record, &presented, now_ms, grace_ms) {
            Verdict::Current => {
                record.previous_hash = Some(record.token_hash);
                record.token_hash = next;
                record.rotated_at_ms = now_ms;
                record.last_used = now;
                SeriesCheck::Rotated { username }
            }
            Verdict::Grace => {
                record.last_used = now;
                SeriesCheck::WithinGrace { username }
            }
            Verdict::Theft => {
                map.retain(|_, r| r.username != username);
                SeriesCheck::Theft { username }
            }
        };
        ready(outcome)
    }

    fn delete<'a>(&'a self, series: &'a str) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        self.lock().remove(series);
        ready(())
    }

    fn delete_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<usize, RememberMeStoreError>> {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, r| r.username != username);
        ready(before - map.len())
    }

    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>> {
        let now = now_secs();
        let mut devices: Vec<Device> = self
            .lock()
            .iter()
            .filter(|(_, r)| r.username == username && r.expires_at >= now)
            .map(|(series, r)| Device {
                series: series.clone(),
                created: r.created,
                last_used: r.last_used,
                expires_at: r.expires_at,
                user_agent: r.user_agent.clone(),
            })
            .collect();
        devices.sort_by_key(|d| d.created);
        ready(devices)
    }
}
