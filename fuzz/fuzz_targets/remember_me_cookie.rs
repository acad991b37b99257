//! The remember-me cookie decoder, in both modes: each input is the value of a
//! `remember_me=` cookie, given to the signed-mode and to the persistent-mode `auto_login`.
//! Persistent mode remembered nothing, and signed mode's key is not known to the fuzzer, so
//! neither may ever log in. Values `HeaderValue::from_bytes` refuses are skipped.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tower_token_auth::remember_me::{
    AutoLogin, MemoryRememberMeStore, RememberMe, StaticUsers, UserRecord,
};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fn users() -> StaticUsers {
    StaticUsers::new([UserRecord::new("alice", "v1", "read")])
}

fn modes() -> &'static [(&'static str, RememberMe); 2] {
    static M: OnceLock<[(&'static str, RememberMe); 2]> = OnceLock::new();
    M.get_or_init(|| {
        [
            ("signed", RememberMe::signed(&[3u8; 32], users()).expect("signed")),
            ("persistent", RememberMe::persistent(MemoryRememberMeStore::new(), users())),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let mut value = b"remember_me=".to_vec();
    value.extend_from_slice(data);
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, value);
    for (mode, remember_me) in modes() {
        let result = runtime().block_on(remember_me.auto_login(&headers));
        assert!(
            !matches!(result, Ok(AutoLogin::LoggedIn { .. })),
            "{mode} mode logged in from a forged cookie"
        );
    }
});
