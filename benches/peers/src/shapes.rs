//! Token shapes, shared by `examples/bench_server.rs` (which includes this file with `#[path]`)
//! and `peers_server`, so that every server `scripts/bench.sh` loads mints the same tokens for a
//! shape: the same claims, the same lengths.
//!
//! `TOKEN_SHAPE`:
//! - `default`: the usual claims (`sub`, `jti`, `iat`, `exp`, `iss`, `aud`, `scope`), one token.
//! - `large`: those plus 40 custom string and number claims, one token of about 2 KB.
//! - `rotating`: the usual claims, 1,000 tokens for 1,000 different users.
//!
//! [`announce`] prints what the script reads: `TOKEN <jwt>` for one token, or `TOKENS <path>`
//! of a file with one token per line, then `READY`.

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::{Map, Value};

pub(crate) const ISSUER: &str = "bench";
pub(crate) const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret";
pub(crate) const SCOPE: &str = "read write";
pub(crate) const TTL_SECS: u64 = 3600;
/// How many tokens (and users) the `rotating` shape has.
pub(crate) const ROTATING_TOKENS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Default,
    Large,
    Rotating,
}

impl Shape {
    /// `TOKEN_SHAPE`, `default` when unset.
    pub(crate) fn from_env() -> Result<Self, String> {
        match std::env::var("TOKEN_SHAPE").as_deref() {
            Err(_) | Ok("" | "default") => Ok(Self::Default),
            Ok("large") => Ok(Self::Large),
            Ok("rotating") => Ok(Self::Rotating),
            Ok(other) => Err(format!(
                "unknown TOKEN_SHAPE {other} (default, large or rotating)"
            )),
        }
    }

    /// One subject per token to mint.
    pub(crate) fn subjects(self) -> Vec<String> {
        match self {
            Self::Rotating => (0..ROTATING_TOKENS)
                .map(|i| format!("user-{i:04}"))
                .collect(),
            Self::Default | Self::Large => vec!["alice".to_owned()],
        }
    }

    /// The claims besides the registered ones and `scope`.
    pub(crate) fn custom_claims(self) -> Map<String, Value> {
        let mut claims = Map::new();
        if self == Self::Large {
            for i in 0..28 {
                claims.insert(
                    format!("app_attr_{i:02}"),
                    format!("value-{i:02}-abcdefghijkl").into(),
                );
            }
            for i in 0..12u64 {
                claims.insert(format!("app_num_{i:02}"), (1_000_000_007 + i * 7919).into());
            }
        }
        claims
    }
}

/// Prints `TOKEN <jwt>` (one token) or `TOKENS <path>` (a file of them, one per line: the path
/// in `TOKENS_FILE`, or one in the temporary directory), then `READY`. The token length goes to
/// stderr.
pub(crate) fn announce(tokens: &[String]) -> std::io::Result<()> {
    let (min, max) = tokens.iter().fold((usize::MAX, 0), |(lo, hi), t| {
        (lo.min(t.len()), hi.max(t.len()))
    });
    if min == max {
        eprintln!("{} token(s) of {min} bytes", tokens.len());
    } else {
        eprintln!("{} tokens of {min} - {max} bytes", tokens.len());
    }
    let mut out = std::io::stdout().lock();
    if let [token] = tokens {
        writeln!(out, "TOKEN {token}")?;
    } else {
        let path = std::env::var_os("TOKENS_FILE").map_or_else(
            || std::env::temp_dir().join(format!("bench-tokens-{}.txt", std::process::id())),
            PathBuf::from,
        );
        std::fs::write(&path, tokens.join("\n") + "\n")?;
        writeln!(out, "TOKENS {}", path.display())?;
    }
    writeln!(out, "READY")?;
    out.flush()
}
