//! One Redis connection type for the stores, standalone or cluster, with bounded operations.

use std::future::Future;
use std::time::Duration;

use redis::RedisError;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use crate::refresh::RefreshStoreError;
use crate::revocation::RevocationError;

/// A standalone (reconnecting) or cluster connection; cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// A reconnecting connection to one server (`redis://host:port/db`), opened lazily: Redis
    /// need not be up yet. `op_timeout` bounds connecting and every response; reconnection
    /// backs off to at most 500 ms.
    pub(crate) fn single(url: &str, op_timeout: Duration) -> Result<Self, ConnError> {
        let client = redis::Client::open(url).map_err(ConnError::Redis)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        ConnectionManager::new_lazy_with_config(client, config)
            .map(Conn::Single)
            .map_err(ConnError::Redis)
    }

    /// A connection to a Redis Cluster through its seed nodes, which must be reachable now
    /// (within four times `op_timeout`).
    pub(crate) async fn cluster(nodes: &[&str], op_timeout: Duration) -> Result<Self, ConnError> {
        let client = redis::cluster::ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(op_timeout)
            .response_timeout(op_timeout)
            .retries(1)
            .build()
            .map_err(ConnError::Redis)?;
        bounded(op_timeout * 4, client.get_async_connection())
            .await
            .map(Conn::Cluster)
    }

    /// Runs `cmd`. On a standalone server, a command that failed because the pooled
    /// connection was found dead (Redis restarted, connection cut) is sent once more on the
    /// fresh connection the manager opens: without this, the first command after every Redis
    /// restart fails. Every operation the stores send is idempotent (re-running it with the
    /// same arguments changes nothing more), so a command that did reach Redis before the
    /// connection died is safe to send again. The cluster client retries by itself.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => match cmd.query_async(&mut c).await {
                Err(e) if is_dead_connection(&e) => cmd.query_async(&mut c).await,
                other => other,
            },
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Runs a Lua script, retried once like [`run`](Self::run).
    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => match inv.invoke_async(&mut c).await {
                Err(e) if is_dead_connection(&e) => inv.invoke_async(&mut c).await,
                other => other,
            },
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }
}

/// The connection itself failed (not the command): worth one more try on a new connection.
fn is_dead_connection(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// Adds `member` to the index set `key` and makes the set live at least until `expires_at`
/// (Unix seconds), never shortening it: a per-user index of families or remembered logins,
/// which must outlive every member it lists. One script, so one round trip.
pub(crate) async fn add_to_index(
    conn: &Conn,
    limit: Duration,
    key: &str,
    member: &str,
    expires_at: u64,
) -> Result<(), ConnError> {
    let ttl = expires_at
        .saturating_sub(crate::revocation::now_secs())
        .max(1);
    let mut inv = ADD_TO_INDEX.prepare_invoke();
    inv.key(key).arg(member).arg(ttl);
    bounded(limit, conn.script::<i64>(&inv)).await?;
    Ok(())
}

// TTL is -1 for a set without expiry, -2 never here (SADD just created it).
const ADD_TO_INDEX_LUA: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
return 1
";

static ADD_TO_INDEX: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(ADD_TO_INDEX_LUA));

/// A Redis operation failed or took too long.
#[derive(Debug)]
pub(crate) enum ConnError {
    Redis(RedisError),
    Timeout,
}

/// Runs `fut` for at most `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, ConnError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(ConnError::Redis),
        Err(_) => Err(ConnError::Timeout),
    }
}

impl From<ConnError> for RevocationError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Redis(e) => Self::Unavailable(Box::new(e)),
            ConnError::Timeout => Self::Timeout,
        }
    }
}

impl From<ConnError> for RefreshStoreError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Redis(e) => Self::Unavailable(Box::new(e)),
            ConnError::Timeout => Self::Timeout,
        }
    }
}
