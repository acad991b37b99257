//! Where persistent remember-me logins live: series → user, token hash, times, device.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::revocation::{BoxFuture, now_secs};

/// One remembered login (a browser), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl SeriesRecord {
    /// A login of `username` remembered at `now_ms` (Unix milliseconds) with the token whose
    /// SHA-256 is `token_hash`, until `expires_at` (Unix seconds); no previous token, no
    /// `User-Agent` (assign `user_agent` to keep one).
    pub fn new(
        username: impl Into<String>,
        token_hash: [u8; 32],
        now_ms: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            username: username.into(),
            token_hash,
            previous_hash: None,
            rotated_at_ms: now_ms,
            created: now_ms / 1000,
            last_used: now_ms / 1000,
            expires_at,
            user_agent: None,
        }
    }
}

/// A remembered device, for "where am I logged in" pages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl Device {
    /// The device of `series` as `record` describes it.
    pub fn new(series: impl Into<String>, record: &SeriesRecord) -> Self {
        Self {
            series: series.into(),
            created: record.created,
            last_used: record.last_used,
            expires_at: record.expires_at,
            user_agent: record.user_agent.clone(),
        }
    }
}

/// The outcome of presenting a persistent remember-me cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// A known series with a wrong token: the cookie was copied. Every other series of the
    /// user has been deleted; the presented one is kept as a *theft marker* that answers
    /// `Theft` again (with the same `detected_at_ms`) for any token, until
    /// [`RememberMeStore::delete`] removes it. So the follow-up (revoking the user's access
    /// tokens) can be retried by presenting the same cookie again if it failed.
    Theft {
        /// The user whose remembered logins were all removed.
        username: String,
        /// When the theft was first detected, Unix milliseconds.
        detected_at_ms: u64,
    },
    /// Unknown or expired series.
    Invalid,
}

/// A remember-me store failed.
#[derive(Debug, thiserror::Error)]
#[error("remember-me store unavailable: {0}")]
pub struct RememberMeStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage for persistent remember-me logins.
///
/// `check_and_rotate` must be atomic and idempotent: called again with the same arguments
/// after its answer was lost (a dropped connection), it must answer the same `Rotated`, not
/// `WithinGrace` or `Theft`. Every other operation must be safe to repeat.
pub trait RememberMeStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new series.
    fn create<'a>(
        &'a self,
        series: &'a str,
        record: SeriesRecord,
    ) -> BoxFuture<'a, Result<(), RememberMeStoreError>>;

    /// Checks `presented` (a token hash) against `series`; if current, replaces it with
    /// `next` and records `now_ms`. See [`SeriesCheck`] for the outcomes. `presented` being
    /// the previous token while `next` is already the current one is a repeat of this very
    /// rotation: `Rotated` again. On theft every other series of the user is deleted before
    /// this returns, and `series` becomes a theft marker (see [`SeriesCheck::Theft`]); a marker
    /// answers `Theft` for any token. A marker lives until `delete` or the series' expiry.
    fn check_and_rotate<'a>(
        &'a self,
        series: &'a str,
        presented: [u8; 32],
        next: [u8; 32],
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<SeriesCheck, RememberMeStoreError>>;

    /// Deletes one series (logout on this device), or a theft marker.
    fn delete<'a>(&'a self, series: &'a str) -> BoxFuture<'a, Result<(), RememberMeStoreError>>;

    /// Deletes every series of `username`, theft markers included; returns how many live
    /// series were deleted.
    fn delete_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<usize, RememberMeStoreError>>;

    /// The live series of `username` (not theft markers).
    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>>;
}

/// The verdict on a presented token hash, shared by the stores.
pub(crate) enum Verdict {
    Current,
    /// `presented` was rotated to `next` already: this call repeats that rotation.
    Repeat,
    Grace,
    Theft,
}

pub(crate) fn judge(
    record: &SeriesRecord,
    presented: &[u8; 32],
    next: &[u8; 32],
    now_ms: u64,
    grace_ms: u64,
) -> Verdict {
    if bool::from(record.token_hash.ct_eq(presented)) {
        return Verdict::Current;
    }
    let previous = record
        .previous_hash
        .is_some_and(|p| bool::from(p.ct_eq(presented)));
    if previous && bool::from(record.token_hash.ct_eq(next)) {
        return Verdict::Repeat;
    }
    if previous && grace_ms > 0 && now_ms.saturating_sub(record.rotated_at_ms) < grace_ms {
        Verdict::Grace
    } else {
        Verdict::Theft
    }
}

/// An in-memory [`RememberMeStore`]. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryRememberMeStore {
    state: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A series, or (once `stolen_at_ms` is set) its theft marker.
#[derive(Debug)]
struct Entry {
    record: SeriesRecord,
    stolen_at_ms: Option<u64>,
}

impl MemoryRememberMeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
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
        map.retain(|_, e| e.record.expires_at >= now);
        map.insert(
            series.to_owned(),
            Entry {
                record,
                stolen_at_ms: None,
            },
        );
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
        let Some(entry) = map.get_mut(series).filter(|e| e.record.expires_at >= now) else {
            return ready(SeriesCheck::Invalid);
        };
        let username = entry.record.username.clone();
        if let Some(detected_at_ms) = entry.stolen_at_ms {
            return ready(SeriesCheck::Theft {
                username,
                detected_at_ms,
            });
        }
        let record = &mut entry.record;
        let outcome = match judge(record, &presented, &next, now_ms, grace_ms) {
            Verdict::Current => {
                record.previous_hash = Some(record.token_hash);
                record.token_hash = next;
                record.rotated_at_ms = now_ms;
                record.last_used = now;
                SeriesCheck::Rotated { username }
            }
            Verdict::Repeat => SeriesCheck::Rotated { username },
            Verdict::Grace => {
                record.last_used = now;
                SeriesCheck::WithinGrace { username }
            }
            Verdict::Theft => {
                entry.stolen_at_ms = Some(now_ms);
                map.retain(|s, e| s == series || e.record.username != username);
                SeriesCheck::Theft {
                    username,
                    detected_at_ms: now_ms,
                }
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
        let mut deleted = 0;
        map.retain(|_, e| {
            let theirs = e.record.username == username;
            deleted += usize::from(theirs && e.stolen_at_ms.is_none());
            !theirs
        });
        ready(deleted)
    }

    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>> {
        let now = now_secs();
        let mut devices: Vec<Device> = self
            .lock()
            .iter()
            .filter(|(_, e)| {
                e.record.username == username
                    && e.record.expires_at >= now
                    && e.stolen_at_ms.is_none()
            })
            .map(|(series, e)| Device {
                series: series.clone(),
                created: e.record.created,
                last_used: e.record.last_used,
                expires_at: e.record.expires_at,
                user_agent: e.record.user_agent.clone(),
            })
            .collect();
        devices.sort_by_key(|d| d.created);
        ready(devices)
    }
}
