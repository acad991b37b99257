//! The Redis authorization-code store, shared by every instance (feature `redis`).

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{
    AuthorizationCodeStore, CodeGrant, CodeHash, CodeStoreError, DEFAULT_CODE_TTL,
    DEFAULT_REPLAY_WINDOW, IssuedRef, MarkIssued, Taken,
};
use crate::redis_conn::{Conn, ConnError, bounded};
use crate::revocation::{BoxFuture, now_ms};

/// An [`AuthorizationCodeStore`] in Redis or Redis Cluster (feature `redis`): a code issued
/// by one instance is redeemed at any other, once.
///
/// One hash per code, `<prefix>code:<sha256 hex>`, fields `grant` (the [`CodeGrant`] as
/// JSON), `spent` (the redeeming attempt's id), `issued` (the [`IssuedRef`] as JSON),
/// `early` (a replay came before `issued`); it expires with the code, or, once spent, at the
/// end of the replay window. Redemption is one Lua script that reads and spends the code, so
/// of 50 concurrent redemptions exactly one wins. Every operation is bounded by
/// `op_timeout`; when Redis cannot answer, the error is
/// [transient](CodeStoreError::is_transient) and no code is accepted.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_token_auth::sso::code::RedisCodeStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let codes = RedisCodeStore::connect("redis://127.0.0.1:6379/", "tta:", Duration::from_millis(500))?
///     .with_code_ttl(Duration::from_secs(60));
/// # let _ = codes; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCodeStore {
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
    code_ttl: Duration,
    replay_window: Duration,
}

impl fmt::Debug for RedisCodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCodeStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("code_ttl", &self.code_ttl)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

// KEYS: the code. ARGV: grant JSON, expiry (Unix ms). Idempotent.
const INSERT_LUA: &str = r"
redis.call('HSET', KEYS[1], 'grant', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
";

// KEYS: the code. ARGV: attempt id, replay window (ms). The attempt that finds the code
// unspent spends it; the same attempt sent again (a reply lost with the connection) still
// wins; any other finds it spent.
const TAKE_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 'grant', 'spent', 'issued')
if not v[1] then return {'unknown'} end
if v[2] == ARGV[1] then return {'first', v[1]} end
if v[2] then
  if not v[3] then redis.call('HSET', KEYS[1], 'early', '1') end
  return {'spent', v[1], v[3] or ''}
end
redis.call('HSET', KEYS[1], 'spent', ARGV[1])
local window = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < window then redis.call('PEXPIRE', KEYS[1], window) end
return {'first', v[1]}
";

// KEYS: the code. ARGV: issued JSON. 0: no spent code, 1: recorded, 2: replayed meanwhile.
const MARK_LUA: &str = r"
if redis.call('HEXISTS', KEYS[1], 'spent') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'issued', ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'early') == 1 then return 2 end
return 1
";

static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(INSERT_LUA));
static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_LUA));
static MARK: LazyLock<Script> = LazyLock::new(|| Script::new(MARK_LUA));

impl From<ConnError> for CodeStoreError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Redis(e) => Self::Unavailable(Box::new(e)),
            ConnError::Timeout => Self::Timeout,
        }
    }
}

impl RedisCodeStore {
    /// Connects (lazily) to one Redis server (`redis://host:port/db`); keys start with
    /// `prefix`. `op_timeout` bounds every operation. Must be called inside a Tokio runtime;
    /// Redis need not be up yet (until it is, operations fail with a transient error).
    pub fn connect(url: &str, prefix: &str, op_timeout: Duration) -> Result<Self, CodeStoreError> {
        let conn = Conn::single(url, op_timeout).map_err(CodeStoreError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    /// Connects to a Redis Cluster through its seed nodes, which must be reachable now.
    pub async fn connect_cluster(
        nodes: &[&str],
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, CodeStoreError> {
        let conn = Conn::cluster(nodes, op_timeout)
            .await
            .map_err(CodeStoreError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    fn with_conn(conn: Conn, prefix: &str, op_timeout: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            op_timeout,
            code_ttl: DEFAULT_CODE_TTL,
            replay_window: DEFAULT_REPLAY_WINDOW,
        }
    }

    /// How long a code is valid (default 60 s).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// How long a spent code is remembered after its redemption (default 10 minutes).
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// The Redis key of a code.
    pub fn redis_key(&self, hash: &CodeHash) -> String {
        format!("{}code:{}", self.prefix, hash.to_hex())
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: String,
        args: &[String],
    ) -> Result<T, CodeStoreError> {
        let mut inv = script.prepare_invoke();
        inv.key(key);
        for a in args {
            inv.arg(a);
        }
        Ok(bounded(self.op_timeout, self.conn.script(&inv)).await?)
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, CodeStoreError> {
    serde_json::from_str(json).map_err(|e| CodeStoreError::Corrupt(format!("{what}: {e}")))
}

impl AuthorizationCodeStore for RedisCodeStore {
    fn code_ttl(&self) -> Duration {
        self.code_ttl
    }

    fn replay_window(&self) -> Duration {
        self.replay_window
    }

    fn insert<'a>(
        &'a self,
        hash: CodeHash,
        grant: &'a CodeGrant,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<(), CodeStoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(grant)
                .map_err(|e| CodeStoreError::Corrupt(format!("grant: {e}")))?;
            let args = [json, expires_at_ms.to_string()];
            let _: i64 = self.script(&INSERT, self.redis_key(&hash), &args).await?;
            Ok(())
        })
    }

    fn take<'a>(
        &'a self,
        hash: CodeHash,
        attempt: &'a str,
        keep_until_ms: u64,
    ) -> BoxFuture<'a, Result<Taken, CodeStoreError>> {
        Box::pin(async move {
            let window = keep_until_ms.saturating_sub(now_ms()).max(1);
            let args = [attempt.to_owned(), window.to_string()];
            let reply: Vec<String> = self.script(&TAKE, self.redis_key(&hash), &args).await?;
            match reply.as_slice() {
                [outcome] if outcome == "unknown" => Ok(Taken::Unknown),
                [outcome, grant] if outcome == "first" => Ok(Taken::First(parse("grant", grant)?)),
                [outcome, grant, issued] if outcome == "spent" => Ok(Taken::Spent {
                    grant: parse("grant", grant)?,
                    issued: if issued.is_empty() {
                        None
                    } else {
                        Some(parse("issued", issued)?)
                    },
                }),
                _ => Err(CodeStoreError::Corrupt(format!(
                    "unexpected reply from the redemption script: {reply:?}"
                ))),
            }
        })
    }

    fn mark_issued<'a>(
        &'a self,
        hash: CodeHash,
        issued: &'a IssuedRef,
    ) -> BoxFuture<'a, Result<MarkIssued, CodeStoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(issued)
                .map_err(|e| CodeStoreError::Corrupt(format!("issued: {e}")))?;
            let outcome: i64 = self.script(&MARK, self.redis_key(&hash), &[json]).await?;
            Ok(if outcome == 2 {
                MarkIssued::Replayed
            } else {
                MarkIssued::Recorded
            })
        })
    }
}
