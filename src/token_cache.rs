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
//! The cache belongs to one [`Verifier`](crate::Verifier), so it can never outlive the key set
//! the claims were verified with: a verifier built for new keys starts empty, and
//! [`Verifier::set_keys`](crate::Verifier::set_keys) empties it. Each emptying starts a new
//! generation; a verification that started under an older generation (and so may have used
//! the old keys) is not inserted.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::sync::{Arc, RwLock};

use crate::claims::{Claims, check_times};
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
    Hit(Result<Arc<Claims<T>>, AuthError>),
    /// Not cached (or cached for another claims type). Pass the generation to
    /// [`TokenCache::insert`] after verifying.
    Miss(Generation),
}

/// The cache generation a verification started in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Generation(u64);

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

    /// The cached claims of `token`, if any, with its times checked against `now`.
    ///
    /// Call this before loading the keys to verify with on a miss: the generation it returns
    /// then proves the keys were not replaced in between.
    pub(crate) fn get<T: Send + Sync + 'static>(&self, token: &str, now: u64) -> Lookup<T> {
        let state = self.map.read().unwrap_or_else(|e| e.into_inner());
        match Self::lookup(&state, token, now, self.leeway) {
            Some(hit) => Lookup::Hit(hit),
            None => Lookup::Miss(Generation(state.generation)),
        }
    }

    fn lookup<T: Send + Sync + 'static>(
        state: &State,
        token: &str,
        now: u64,
        leeway: u64,
    ) -> Option<Result<Arc<Claims<T>>, AuthError>> {
        let entry = state.entries.get(token)?;
        // The same check, on the same whole seconds, as a fresh verification.
        if let Err(e) = check_times(entry.exp, entry.nbf, now, leeway) {
            return Some(Err(e));
        }
        // Another claims type decoded this token: verify again for this one.
        let claims = entry.claims.clone().downcast::<Claims<T>>().ok()?;
        Some(Ok(claims))
    }

    /// Caches `claims`, verified in `generation`; a no-op if the cache was emptied since.
    pub(crate) fn insert<T: Send + Sync + 'static>(
        &self,
        token: &str,
        claims: &Arc<Claims<T>>,
        now: u64,
        generation: Generation,
    ) {
        let c = cost(token);
        if c > self.max_bytes {
            return;
        }
        let mut state = self.map.write().unwrap_or_else(|e| e.into_inner());
        if state.generation != generation.0 {
            // The keys changed while this token was verified, maybe with the old ones.
            return;
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

    /// Empties the cache and starts a new generation. Call it after the new keys are in place.
    pub(crate) fn clear(&self) {
        let mut state = self.map.write().unwrap_or_else(|e| e.into_inner());
        state.entries.clear();
        state.bytes = 0;
        state.generation += 1;
    }

    pub(crate) fn bytes(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::NoCustomClaims;

    fn claims(sub: &str) -> Arc<Claims<NoCustomClaims>> {
        Arc::new(serde_json::from_str(&format!(r#"{{"sub":"{sub}","exp":4000000000}}"#)).unwrap())
    }

    fn miss(cache: &TokenCache, token: &str) -> Generation {
        match cache.get::<NoCustomClaims>(token, 1000) {
            Lookup::Miss(generation) => generation,
            Lookup::Hit(_) => panic!("{token} should not be cached"),
        }
    }

    fn hit_sub(cache: &TokenCache, token: &str) -> Option<String> {
        match cache.get::<NoCustomClaims>(token, 1000) {
            Lookup::Hit(Ok(c)) => c.sub.clone(),
            Lookup::Hit(Err(e)) => panic!("{e}"),
            Lookup::Miss(_) => None,
        }
    }

    #[test]
    fn a_verification_from_before_a_clear_is_not_cached() {
        let cache = TokenCache::new(1 << 20, 0);
        let before = miss(&cache, "a.b.c");
        cache.clear();
        cache.insert("a.b.c", &claims("alice"), 1000, before);
        assert_eq!(hit_sub(&cache, "a.b.c"), None);
        let after = miss(&cache, "a.b.c");
        assert_ne!(before, after);
        cache.insert("a.b.c", &claims("alice"), 1000, after);
        assert_eq!(hit_sub(&cache, "a.b.c").as_deref(), Some("alice"));
    }

    #[test]
    fn tokens_with_the_same_tail_are_told_apart_by_their_full_bytes() {
        let cache = TokenCache::new(1 << 20, 0);
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (
            format!("header-a.claims.{tail}"),
            format!("header-b.claims.{tail}"),
        );
        let generation = miss(&cache, &a);
        cache.insert(&a, &claims("alice"), 1000, generation);
        assert_eq!(hit_sub(&cache, &a).as_deref(), Some("alice"));
        // Same hash, different token: a miss, then its own entry.
        let generation = miss(&cache, &b);
        cache.insert(&b, &claims("bob"), 1000, generation);
        assert_eq!(hit_sub(&cache, &a).as_deref(), Some("alice"));
        assert_eq!(hit_sub(&cache, &b).as_deref(), Some("bob"));
        // Shorter than the tail: hashed whole.
        let generation = miss(&cache, "x");
        cache.insert("x", &claims("carol"), 1000, generation);
        assert_eq!(hit_sub(&cache, "x").as_deref(), Some("carol"));
    }
}
