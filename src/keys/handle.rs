//! [`KeyHandle`]: the keys a verifier uses now, replaced atomically by the key sources.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::KeySet;

/// The current keys, with a generation that changes only when key material does.
pub(crate) struct Published {
    pub(crate) keys: KeySet,
    pub(crate) generation: u64,
}

/// The current [`KeySet`] of one or more verifiers: read lock-free on every request
/// (`arc-swap`), replaced whole by whoever feeds it (a remote JWK Set, an application rotating
/// its own keys). Cheap to clone; clones share the keys.
///
/// Publishing the same keys again (a refresh that found nothing new) changes nothing: the
/// generation, which the verified-token cache follows, moves only when key material changed.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tower_token_auth::keys::KeyHandle;
/// use tower_token_auth::{KeySet, VerifyingKey};
///
/// let a = KeySet::new().with_key(VerifyingKey::hmac(Algorithm::HS256, &[1u8; 32])?.with_kid("a"))?;
/// let handle = KeyHandle::new(a.clone());
/// assert!(!handle.publish(a.clone()), "the same keys: no change");
/// let b = a.with_key(VerifyingKey::hmac(Algorithm::HS256, &[2u8; 32])?.with_kid("b"))?;
/// assert!(handle.publish(b));
/// assert_eq!(handle.kids(), ["a", "b"]);
/// # Ok::<_, tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyHandle {
    current: Arc<ArcSwap<Published>>,
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.load();
        f.debug_struct("KeyHandle")
            .field("kids", &current.keys.kids())
            .field("keys", &current.keys.len())
            .field("generation", &current.generation)
            .finish()
    }
}

impl KeyHandle {
    /// A handle holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Published {
                keys,
                generation: 0,
            })),
        }
    }

    /// Replaces the keys; returns whether they changed (a key added, removed or replaced).
    pub fn publish(&self, keys: KeySet) -> bool {
        let mut changed = false;
        self.current.rcu(|current| {
            changed = !current.keys.same_keys(&keys);
            Published {
                keys: keys.clone(),
                generation: current.generation + u64::from(changed),
            }
        });
        changed
    }

    /// A copy of the current keys.
    pub fn keys(&self) -> KeySet {
        self.current.load().keys.clone()
    }

    /// The `kid`s of the current keys, sorted.
    pub fn kids(&self) -> Vec<String> {
        self.current.load().keys.kids()
    }

    /// How often the key material changed since the handle was made.
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Whether a key with this `kid` is present now.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.current.load().keys.get(Some(kid)).is_some()
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Published>> {
        self.current.load()
    }
}
