//! Selection of jsonwebtoken's crypto backend.
//!
//! Exactly one backend must be compiled in: `aws_lc_rs` (default) or `rust_crypto`. With neither,
//! the crate does not compile. With both (e.g. `--all-features`), `aws_lc_rs` is installed as
//! the process default the first time a key is built, so jsonwebtoken never has to guess.

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!(
    "tower-token-auth needs a crypto backend: enable the `aws_lc_rs` (default) or the `rust_crypto` feature"
);

/// Makes sure jsonwebtoken has a process-level crypto provider. Cheap after the first call.
pub(crate) fn ensure_provider() {
    #[cfg(all(feature = "aws_lc_rs", feature = "rust_crypto"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // An application that installed its own provider first keeps it.
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        });
    }
}
