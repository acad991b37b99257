//! The Redis replay store, shared by every instance of a service (feature `redis`).

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{ReplayCheck, ReplayError, ReplayStore};
use crate::redis_conn::{Conn, ConnError, bounded};
use crate::revocation::now_ms;

/// A [`ReplayStore`] in Redis or Redis Cluster, shared by every instance of a service: a proof
/// accepted by one instance is refused by all the others.
///
/// Each proof is one key, `<prefix>dpop:<hex of the replay key>`, set with `NX` and an expiry
/// at the end of the proof's `iat` window; nothing else is stored. Every check is one round
/// trip, bounded by `op_timeout`. When Redis cannot answer in time (down, restarting,
/// unreachable), the check fails and the request is refused with 503
/// (`ReplayCheckUnavailable`): a proof is never accepted without its replay check. The
/// connection is re-established by itself once Redis is back.
///
/// A Redis that restarts empty forgets the proofs it held: those still inside their `iat`
/// window could be replayed once each. Run Redis with persistence if that matters.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_token_auth::dpop::{DpopConfig, RedisReplayStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisReplayStore::connect("redis://127.0.0.1:6379/", "tta:", Duration::from_millis(500))?;
/// let config = DpopConfig::new().replay_store(store);
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

// `SET NX` with a value unique to this call: when the connection drops after Redis applied
// the command and the call is sent again, the key holding this very value says the first
// attempt got through, so the retry does not mistake the proof for a replay of itself.
const RECORD_LUA: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
";

static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_LUA));

impl RedisReplayStore {
    /// Connects (lazily) to one Redis server (`redis://host:port/db`); keys start with
    /// `prefix` (e.g. `tta:`). `op_timeout` bounds every check. Must be called inside a Tokio
    /// runtime; Redis need not be up yet (until it is, checks fail closed).
    pub fn connect(url: &str, prefix: &str, op_timeout: Duration) -> Result<Self, ReplayError> {
        let conn = Conn::single(url, op_timeout).map_err(ReplayError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    /// Connects to a Redis Cluster through its seed nodes, which must be reachable now.
    pub async fn connect_cluster(
        nodes: &[&str],
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, ReplayError> {
        let conn = Conn::cluster(nodes, op_timeout)
            .await
            .map_err(ReplayError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    fn with_conn(conn: Conn, prefix: &str, op_timeout: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            op_timeout,
        }
    }

    /// The Redis key of a replay key.
    pub fn redis_key(&self, key: &[u8; 32]) -> String {
        let mut out = format!("{}dpop:", self.prefix);
        for b in key {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

impl ReplayStore for RedisReplayStore {
    fn check_and_record(&self, key: &[u8; 32], expires_at_unix: u64) -> ReplayCheck {
        let store = self.clone();
        let redis_key = self.redis_key(key);
        ReplayCheck::Pending(Box::pin(async move {
            // Kept through the whole second `expires_at_unix`, at least one second.
            let ttl_ms = expires_at_unix
                .saturating_add(1)
                .saturating_mul(1000)
                .saturating_sub(now_ms())
                .max(1000);
            let token = crate::issuer::random_id::<12>();
            let mut inv = RECORD.prepare_invoke();
            inv.key(&redis_key).arg(token).arg(ttl_ms);
            let first: i64 = bounded(store.op_timeout, store.conn.script(&inv)).await?;
            Ok(first == 1)
        }))
    }
}

impl From<ConnError> for ReplayError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Redis(e) => Self::Unavailable(Box::new(e)),
            ConnError::Timeout => Self::Timeout,
        }
    }
}
