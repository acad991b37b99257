//! PKCE with `S256` only (RFC 7636): syntax of verifiers and challenges, and the check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `verifier` is an RFC 7636 §4.1 `code_verifier`: 43 to 128 characters of
/// `[A-Za-z0-9-._~]`.
///
/// ```
/// use tower_token_auth::sso::code::is_valid_verifier;
///
/// assert!(is_valid_verifier(&"a".repeat(43)));
/// assert!(!is_valid_verifier(&"a".repeat(42)));
/// assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
/// ```
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `challenge` can be an `S256` `code_challenge`: the base64url (no padding) of a
/// SHA-256 hash, 43 characters.
pub fn is_valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// The `S256` challenge of `verifier`: `BASE64URL(SHA256(verifier))` (what a client sends in
/// its authorization request).
///
/// ```
/// use tower_token_auth::sso::code::s256_challenge;
///
/// // RFC 7636 Appendix B.
/// assert_eq!(
///     s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
/// );
/// ```
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed and its `S256` challenge equals `challenge`, compared in
/// constant time.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    let computed = s256_challenge(verifier);
    // Both sides are 43 bytes for a valid challenge; `ct_eq` returns false on unequal lengths.
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_valid_challenge(challenge));
        assert!(verify_s256(verifier, challenge));
        assert!(!verify_s256(verifier, &challenge[..42]));
        assert!(!verify_s256(
            &verifier[..42],
            &s256_challenge(&verifier[..42])
        ));
        assert!(!is_valid_challenge("plain-challenge"));
        assert!(!is_valid_challenge(&"=".repeat(43)));
        assert!(is_valid_verifier(&"~".repeat(128)));
        assert!(!is_valid_verifier(&"~".repeat(129)));
    }
}
