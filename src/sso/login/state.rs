//! The login-state cookie: what the callback needs to finish a login this browser started
//! (`state`, `nonce`, the PKCE verifier, the return path), HMAC-SHA256-signed by the service.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a started login may take, in seconds (the cookie's `Max-Age`).
pub(crate) const LOGIN_TTL_SECS: u64 = 600;

/// The longest login-state cookie value read, in bytes.
pub(crate) const MAX_STATE_COOKIE_LEN: usize = 4096;

/// Tag of the MAC input: a key shared with other uses signs nothing mistaken for this.
const MAC_TAG: &[u8] = b"tower-token-auth oidc login-state v1\0";

/// A login in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoginState {
    /// The OAuth `state`.
    #[serde(rename = "s")]
    pub(crate) state: String,
    /// The OpenID Connect `nonce`.
    #[serde(rename = "n")]
    pub(crate) nonce: String,
    /// The PKCE `code_verifier`.
    #[serde(rename = "v")]
    pub(crate) verifier: String,
    /// Where to send the browser back to (a local path).
    #[serde(rename = "r")]
    pub(crate) return_to: String,
    /// When the login started, Unix seconds.
    #[serde(rename = "t")]
    pub(crate) issued_at: u64,
}

fn mac(key: &[u8], payload: &str) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(MAC_TAG);
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().into()
}

impl LoginState {
    /// The cookie value: `base64url(JSON).base64url(HMAC)`.
    pub(crate) fn seal(&self, key: &[u8]) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(mac(key, &payload));
        format!("{payload}.{tag}")
    }

    /// The state in `value` when its MAC is right (compared in constant time) and it is at
    /// most [`LOGIN_TTL_SECS`] old (and not from the future beyond `leeway`).
    pub(crate) fn open(key: &[u8], value: &str, now: u64, leeway: u64) -> Option<Self> {
        if value.len() > MAX_STATE_COOKIE_LEN {
            return None;
        }
        let (payload, tag) = value.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if !bool::from(mac(key, payload).as_slice().ct_eq(&tag)) {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let state: Self = serde_json::from_slice(&json).ok()?;
        let fresh = state.issued_at <= now.saturating_add(leeway)
            && now.saturating_sub(state.issued_at) <= LOGIN_TTL_SECS;
        fresh.then_some(state)
    }

    /// Whether `state` (from the callback's query) is this login's, in constant time.
    pub(crate) fn state_matches(&self, state: &str) -> bool {
        bool::from(self.state.as_bytes().ct_eq(state.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64) -> LoginState {
        LoginState {
            state: "st".into(),
            nonce: "nn".into(),
            verifier: "v".repeat(43),
            return_to: "/a?b=c".into(),
            issued_at: t,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = [7u8; 32];
        let sealed = sample(1000).seal(&key);
        assert_eq!(LoginState::open(&key, &sealed, 1000, 0), Some(sample(1000)));
        assert_eq!(LoginState::open(&key, &sealed, 1600, 0), Some(sample(1000)));
        // Too old, from the future, another key, a changed payload or tag.
        assert_eq!(LoginState::open(&key, &sealed, 1601, 0), None);
        assert_eq!(LoginState::open(&key, &sealed, 900, 0), None);
        assert_eq!(LoginState::open(&[8u8; 32], &sealed, 1000, 0), None);
        let (payload, tag) = sealed.split_once('.').unwrap();
        let other = sample(1001).seal(&key);
        let (other_payload, other_tag) = other.split_once('.').unwrap();
        assert_eq!(
            LoginState::open(&key, &format!("{other_payload}.{tag}"), 1000, 0),
            None
        );
        assert_eq!(
            LoginState::open(&key, &format!("{payload}.{other_tag}"), 1000, 0),
            None
        );
        assert_eq!(LoginState::open(&key, payload, 1000, 0), None);
        assert_eq!(LoginState::open(&key, "", 1000, 0), None);
        assert!(sample(0).state_matches("st"));
        assert!(!sample(0).state_matches("sx"));
        assert!(!sample(0).state_matches("st "));
    }
}
