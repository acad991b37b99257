//! The verified-token cache: exact token bytes → claims already verified.
//!
//! A token seen before skips header parsing, key lookup and signature verification; its
//! `exp`/`nbf` are checked again on every hit, and revocation is checked by the layer as for
//! any token. Keys are the whole token, compared in full (a `HashMap` lookup hashes, then
//! compares the bytes). Memory is bounded by `max_bytes`, counting each token's length plus a
//! fixed overhead per entry; when an insert would pass the bound, expired entries are dropped
//! and then, if needed, about half of
//! the rest.
//!
//! The cache belongs to one [`Verifier`](crate::Verifier), so it can never outlive the key set
//! the claims were verified with: a verifier built for new keys starts empty.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::Claims;
use crate::error::{AuthError, InvalidToken};

/// Per-entry bookkeeping counted against the byte budget besides the token itself.
const ENTRY_OVERHEAD: usize = 256;

struct Entry {
    claims: Arc<dyn Any + Send + Sync>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

pub(crate) struct TokenCache {
    map: RwLock<State>,
    max_bytes: usize,
    leeway: u64,
}

struct State {
    entries: HashMap<Box<str>, Entry>,
    bytes: usize,
}

fn cost(token: &str) -> usize {
    token.len() + ENTRY_OVERHEAD
}

impl TokenCache {
    pub(crate) fn new(max_bytes: usize, leeway: u64) -> Self {
        Self {
            map: RwLock::new(State {
                entries: HashMap::new(),
                bytes: 0,
            }),
            max_bytes,
            leeway,
        }
    }

    /// The cached claims of `token`, if any, with its times checked against `now`.
    pub(crate) fn get<T: Clone + 'static>(
        &self,
        token: &str,
        now: u64,
    ) -> Option<Result<Claims<T>, AuthError>> {
        let state = self.map.read().unwrap_or_else(|e| e.into_inner());
        let entry = state.entries.get(token)?;
        if entry
            .exp
            .is_some_and(|exp| exp.saturating_add(self.leeway) < now)
        {
            return Some(Err(AuthError::invalid_token(InvalidToken::Expired)));
        }
        if entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Some(Err(AuthError::invalid_token(InvalidToken::NotYetValid)));
        }
        // Another claims type decoded this token: verify again for this one.
        let claims = entry.claims.downcast_ref::<Claims<T>>()?;
        Some(Ok(claims.clone()))
    }

    pub(crate) fn insert<T: Clone + Send + Sync + 'static>(
        &self,
        token: &str,
        claims: &Claims<T>,
        now: u64,
    ) {
        let c = cost(token);
        if c > self.max_bytes {
            return;
        }
        let mut state = self.map.write().unwrap_or_else(|e| e.into_inner());
        if state.bytes + c > self.max_bytes {
            let leeway = self.leeway;
            state
                .entries
                .retain(|_, e| e.exp.is_none_or(|exp| exp.saturating_add(leeway) >= now));
            state.bytes = state.entries.keys().map(|k| cost(k)).sum();
            if state.bytes + c > self.max_bytes {
                // Drop about half, in the map's (randomly seeded) order.
                let target = self.max_bytes / 2;
                let mut kept = 0;
                state.entries.retain(|k, _| {
                    kept += cost(k);
                    kept <= target
                });
                state.bytes = state.entries.keys().map(|k| cost(k)).sum();
            }
        }
        let entry = Entry {
            claims: Arc::new(claims.clone()),
            exp: claims.exp,
            nbf: claims.nbf,
        };
        if state.entries.insert(token.into(), entry).is_none() {
            state.bytes += c;
        }
    }

    pub(crate) fn clear(&self) {
        let mut state = self.map.write().unwrap_or_else(|e| e.into_inner());
        state.entries.clear();
        state.bytes = 0;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).bytes
    }
}
