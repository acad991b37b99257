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
//! The hash covers only the token's last [`HASHED_TAIL`] bytes (its signature, which differs
//! from token to token) with std's randomly keyed SipHash; equality still compares every byte.
//! Only verified tokens are ever inserted, so nobody can fill a bucket on purpose.
//!
//! The cache belongs to one [`Verifier`](crate::Verifier), and every entry is tied to the
//! generation of the keys it was verified with (see [`KeyHandle`](crate::keys::KeyHandle),
//! whose generation moves only when key material changes). A lookup under another generation
//! misses; the first insert under a newer one empties the cache; a verification done under an
//! older generation (with keys since replaced) is not inserted.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::sync::{Arc, RwLock};

use crate::claims::{ClaimSet, Claims, check_times};
use crate::error::AuthError;

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
    entries: HashMap<Box<str>, Entry, TailState>,
    bytes: usize,
    generation: u64,
}

/// How many trailing bytes of a token are hashed.
pub(crate) const HASHED_TAIL: usize = 32;

/// Builds [`TailHasher`]s: std's randomly keyed SipHash, fed only the tail of each write.
#[derive(Default)]
struct TailState(RandomState);

impl BuildHasher for TailState {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(DefaultHasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// What a cache lookup found.
pub(crate) enum Lookup<T> {
    /// The token was cached: its claims (shared with the cache), or why its times no longer
    /// pass.
    Hit(Result<Claims<T>, AuthError>),
    /// Not cached (or cached for another claims type or key generation).
    Miss,
}

fn cost(token: &str) -> usize {
    token.len() + ENTRY_OVERHEAD
}

impl TokenCache {
    pub(crate) fn new(max_bytes: usize, leeway: u64) -> Self {
        Self {
            map: RwLock::new(State {
                entries: HashMap::default(),
                bytes: 0,
                generation: 0,
            }),
            max_bytes,
            leeway,
        }
    }

    /// The cached claims of `token`, if any, verified with keys of `generation`, with its
    /// times checked against `now`.
    pub(crate) fn get<T: Send + Sync + 'static>(
        &self,
        token: &str,
        now: u64,
        generation: u64,
    ) -> Lookup<T> {
        let state = self.map.read().unwrap_or_else(|e| e.into_inner());
        if state.generation != generation {
            return Lookup::Miss;
        }
        match Self::lookup(&state, token, now, self.leeway) {
            Some(hit) => Lookup::Hit(hit),
            None => Lookup::Miss,
        }
    }

    fn lookup<T: Send + Sync + 'static>(
        state: &State,
        token: &str,
        now: u64,
        leeway: u64,
    ) -> Option<Result<Claims<T>, AuthError>> {
        let entry = state.entries.get(token)?;
        // The same check, on the same whole seconds, as a fresh verification.
        if let Err(e) = check_times(entry.exp, entry.nbf, now, leeway) {
            return Some(Err(e));
        }
        // Another claims type decoded this token: verify again for this one.
        let claims = entry.claims.clone().downcast::<ClaimSet<T>>().ok()?;
        Some(Ok(Claims::from(claims)))
    }

    /// Caches `claims`, verified with keys of `generation`: empties the cache first when that
    /// is newer than its entries, does nothing when it is older (the keys changed since).
    pub(crate) fn insert<T: Send + Sync + 'static>(
        &self,
        token: &str,
        claims: &Arc<ClaimSet<T>>,
        now: u64,
        generation: u64,
    ) {
        let c = cost(token);
        if c > self.max_bytes {
            return;
        }
        let mut state = self.map.write().unwrap_or_else(|e| e.into_inner());
        if generation < state.generation {
            // Verified with keys that were replaced meanwhile.
            return;
        }
        if generation > state.generation {
            state.entries.clear();
            state.bytes = 0;
            state.generation = generation;
        }
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
            claims: claims.clone(),
            exp: claims.exp,
            nbf: claims.nbf,
        };
        if state.entries.insert(token.into(), entry).is_none() {
            state.bytes += c;
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::NoCustomClaims;

    fn claims(sub: &str) -> Arc<ClaimSet<NoCustomClaims>> {
        Arc::new(serde_json::from_str(&format!(r#"{{"sub":"{sub}","exp":4000000000}}"#)).unwrap())
    }

    fn miss(cache: &TokenCache, token: &str, generation: u64) {
        if let Lookup::Hit(_) = cache.get::<NoCustomClaims>(token, 1000, generation) {
            panic!("{token} should not be cached");
        }
    }

    fn hit_sub(cache: &TokenCache, token: &str, generation: u64) -> Option<String> {
        match cache.get::<NoCustomClaims>(token, 1000, generation) {
            Lookup::Hit(Ok(c)) => c.sub.clone(),
            Lookup::Hit(Err(e)) => panic!("{e}"),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn entries_follow_the_key_generation() {
        let cache = TokenCache::new(1 << 20, 0);
        miss(&cache, "a.b.c", 0);
        cache.insert("a.b.c", &claims("alice"), 1000, 0);
        assert_eq!(hit_sub(&cache, "a.b.c", 0).as_deref(), Some("alice"));
        // The keys changed: the entry does not answer for the new generation...
        assert_eq!(hit_sub(&cache, "a.b.c", 1), None);
        // ...and the first insert under it empties the cache.
        cache.insert("b.c.d", &claims("bob"), 1000, 1);
        assert_eq!(hit_sub(&cache, "a.b.c", 0), None);
        assert_eq!(hit_sub(&cache, "b.c.d", 1).as_deref(), Some("bob"));
        // A verification done with the old keys is not cached.
        cache.insert("a.b.c", &claims("alice"), 1000, 0);
        assert_eq!(hit_sub(&cache, "a.b.c", 1), None);
        assert_eq!(hit_sub(&cache, "a.b.c", 0), None);
    }

    #[test]
    fn tokens_with_the_same_tail_are_told_apart_by_their_full_bytes() {
        let cache = TokenCache::new(1 << 20, 0);
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (
            format!("header-a.claims.{tail}"),
            format!("header-b.claims.{tail}"),
        );
        miss(&cache, &a, 0);
        cache.insert(&a, &claims("alice"), 1000, 0);
        assert_eq!(hit_sub(&cache, &a, 0).as_deref(), Some("alice"));
        // Same hash, different token: a miss, then its own entry.
        miss(&cache, &b, 0);
        cache.insert(&b, &claims("bob"), 1000, 0);
        assert_eq!(hit_sub(&cache, &a, 0).as_deref(), Some("alice"));
        assert_eq!(hit_sub(&cache, &b, 0).as_deref(), Some("bob"));
        // Shorter than the tail: hashed whole.
        miss(&cache, "x", 0);
        cache.insert("x", &claims("carol"), 1000, 0);
        assert_eq!(hit_sub(&cache, "x", 0).as_deref(), Some("carol"));
    }
}
