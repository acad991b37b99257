//! The JWT verify path: `Verifier::verify` on arbitrary UTF-8, with a fixed HS256 key
//! (no `kid`) and the ES256 test key (`kid` "es"). Nothing the fuzzer writes carries a valid
//! signature, so every input must be refused, without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_token_auth::{Algorithm, KeySet, NoCustomClaims, Verifier, VerifyingKey};

const ES256_PUBLIC: &str = include_str!("../../src/testing/es256-public.pem");

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let keys = KeySet::new()
            .with_key(VerifyingKey::hmac(Algorithm::HS256, &[7u8; 32]).expect("hs256"))
            .and_then(|k| {
                k.with_key(
                    VerifyingKey::ec_pem(Algorithm::ES256, ES256_PUBLIC.as_bytes())
                        .expect("es256")
                        .with_kid("es"),
                )
            })
            .expect("key set");
        Verifier::builder(keys).build().expect("verifier")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    assert!(
        verifier().verify::<NoCustomClaims>(s).is_err(),
        "a token without a valid signature was accepted"
    );
});
