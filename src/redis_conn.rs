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
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    pub(crate) async fn script<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        match self.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }
}

/// Adds `member` to the index set `key` and makes the set live at least until `expires_at`
/// (Unix seconds): a per-user index of families or remembered logins. Needs Redis 7 (`EXPIRE …
/// GT/NX`).
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
    bounded(
        limit,
        conn.run::<i64>(redis::cmd("SADD").arg(key).arg(member)),
    )
    .await?;
    // GT only lengthens an existing expiry; NX gives a new set its first one.
    for flag in ["GT", "NX"] {
        let cmd = redis::cmd("EXPIRE").arg(key).arg(ttl).arg(flag).to_owned();
        bounded(limit, conn.run::<i64>(&cmd)).await?;
    }
    Ok(())
}

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
