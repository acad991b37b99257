//! The Redis remember-me store.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::store::{Device, RememberMeStore, RememberMeStoreError, SeriesCheck, SeriesRecord};
use crate::redis_conn::{Conn, ConnError, add_to_index, bounded};
use crate::revocation::{BoxFuture, now_secs};

/// A [`RememberMeStore`] in Redis (feature `redis`).
///
/// | key | type | content | expiry |
/// |---|---|---|---|
/// | `tta:{rm:<series>}` | hash | `user`, `hash`, `prev` (hex SHA-256 of the current and previous token), `rotated_ms`, `created`, `last_used`, `ua`; `stolen` (ms) once it is a theft marker | the login's expiry |
/// | `tta:{rmu:<user>}` | set | the user's series | the newest login's expiry |
///
/// Check-and-rotate is one Lua script on the series key, idempotent: the same call repeated
/// (the connection died before its answer came back) answers `Rotated` again. On theft the
/// script turns the series into a theft marker, then the user's other series are deleted one by
/// one (they live on other slots); if that fails, presenting the cookie again repeats it. Only
/// token hashes are stored; they are compared inside Redis, where timing reveals nothing about a
/// token (the hash of 128 random bits).
#[derive(Clone)]
pub struct RedisRememberMeStore {
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
}

impl fmt::Debug for RedisRememberMeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRememberMeStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

// KEYS: series. ARGV: presented hex, next hex, now_ms, grace_ms, now_s.
// Replies: {'invalid'}, {outcome, user}, or {'theft', user, detected_ms}.
const CHECK_LUA: &str = r"
local r = redis.call('HMGET', KEYS[1], 'user', 'hash', 'prev', 'rotated_ms', 'stolen')
if not r[1] then return {'invalid'} end
if r[5] then return {'theft', r[1], r[5]} end
if r[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'prev', r[2], 'hash', ARGV[2], 'rotated_ms', ARGV[3], 'last_used', ARGV[5])
  return {'rotated', r[1]}
end
if r[3] == ARGV[1] and r[2] == ARGV[2] then return {'rotated', r[1]} end
local grace = tonumber(ARGV[4])
if r[3] == ARGV[1] and grace > 0 and tonumber(ARGV[3]) - tonumber(r[4]) < grace then
  redis.call('HSET', KEYS[1], 'last_used', ARGV[5])
  return {'grace', r[1]}
end
redis.call('HSET', KEYS[1], 'stolen', ARGV[3])
return {'theft', r[1], ARGV[3]}
";

// Hashed (SHA-1, for EVALSHA) once, not on every auto-login.
static CHECK: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK_LUA));

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn err(e: ConnError) -> RememberMeStoreError {
    RememberMeStoreError(match e {
        ConnError::Redis(e) => Box::new(e),
        ConnError::Timeout => "timed out".into(),
    })
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}

impl RedisRememberMeStore {
    /// Connects (lazily) to one Redis server; `op_timeout` bounds every operation.
    pub fn connect(
        url: &str,
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, RememberMeStoreError> {
        let conn = Conn::single(url, op_timeout).map_err(err)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            op_timeout,
        })
    }

    fn series_key(&self, series: &str) -> String {
        format!("{}{{rm:{series}}}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}{{rmu:{user}}}", self.prefix)
    }

    /// Deletes every series of `username` but `keep` (the theft marker), and unlists them.
    async fn delete_other_series(
        &self,
        username: &str,
        keep: &str,
    ) -> Result<(), RememberMeStoreError> {
        let user = self.user_key(username);
        let series: Vec<String> = self
            .run(redis::cmd("SMEMBERS").arg(&user).to_owned())
            .await?;
        for s in series.iter().filter(|s| s.as_str() != keep) {
            self.run::<usize>(redis::cmd("DEL").arg(self.series_key(s)).to_owned())
                .await?;
            self.run::<usize>(redis::cmd("SREM").arg(&user).arg(s).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        cmd: redis::Cmd,
    ) -> Result<T, RememberMeStoreError> {
        bounded(self.op_timeout, self.conn.run(&cmd))
            .await
            .map_err(err)
    }
}

impl RememberMeStore for RedisRememberMeStore {
    fn create<'a>(
        &'a self,
        series: &'a str,
        record: SeriesRecord,
    ) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        Box::pin(async move {
            let key = self.series_key(series);
            let mut hset = redis::cmd("HSET");
            hset.arg(&key)
                .arg("user")
                .arg(&record.username)
                .arg("hash")
                .arg(hex(&record.token_hash))
                .arg("prev")
                .arg("")
                .arg("rotated_ms")
                .arg(record.rotated_at_ms)
                .arg("created")
                .arg(record.created)
                .arg("last_used")
                .arg(record.last_used)
                .arg("expires_at")
                .arg(record.expires_at)
                .arg("ua")
                .arg(record.user_agent.as_deref().unwrap_or(""));
            self.run::<i64>(hset).await?;
            self.run::<i64>(
                redis::cmd("EXPIREAT")
                    .arg(&key)
                    .arg(record.expires_at)
                    .to_owned(),
            )
            .await?;
            add_to_index(
                &self.conn,
                self.op_timeout,
                &self.user_key(&record.username),
                series,
                record.expires_at,
            )
            .await
            .map_err(err)?;
            Ok(())
        })
    }

    fn check_and_rotate<'a>(
        &'a self,
        series: &'a str,
        presented: [u8; 32],
        next: [u8; 32],
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<SeriesCheck, RememberMeStoreError>> {
        Box::pin(async move {
            let mut inv = CHECK.prepare_invoke();
            inv.key(self.series_key(series))
                .arg(hex(&presented))
                .arg(hex(&next))
                .arg(now_ms)
                .arg(grace_ms)
                .arg(now_ms / 1000);
            let reply: Vec<Value> = bounded(self.op_timeout, self.conn.script(&inv))
                .await
                .map_err(err)?;
            let username = text(reply.get(1));
            Ok(match text(reply.first()).as_str() {
                "rotated" => SeriesCheck::Rotated { username },
                "grace" => SeriesCheck::WithinGrace { username },
                "theft" => {
                    // Unparsable: the marker counts as new, which only revokes more.
                    let detected_at_ms = text(reply.get(2)).parse().unwrap_or(now_ms);
                    self.delete_other_series(&username, series).await?;
                    SeriesCheck::Theft {
                        username,
                        detected_at_ms,
                    }
                }
                _ => SeriesCheck::Invalid,
            })
        })
    }

    fn delete<'a>(&'a self, series: &'a str) -> BoxFuture<'a, Result<(), RememberMeStoreError>> {
        Box::pin(async move {
            let key = self.series_key(series);
            let user: Option<String> = self
                .run(redis::cmd("HGET").arg(&key).arg("user").to_owned())
                .await?;
            self.run::<i64>(redis::cmd("DEL").arg(&key).to_owned())
                .await?;
            if let Some(user) = user {
                self.run::<i64>(
                    redis::cmd("SREM")
                        .arg(self.user_key(&user))
                        .arg(series)
                        .to_owned(),
                )
                .await?;
            }
            Ok(())
        })
    }

    fn delete_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<usize, RememberMeStoreError>> {
        Box::pin(async move {
            let user = self.user_key(username);
            let series: Vec<String> = self
                .run(redis::cmd("SMEMBERS").arg(&user).to_owned())
                .await?;
            let mut deleted = 0;
            for s in &series {
                let key = self.series_key(s);
                let marker: bool = self
                    .run(redis::cmd("HEXISTS").arg(&key).arg("stolen").to_owned())
                    .await?;
                let removed: usize = self.run(redis::cmd("DEL").arg(&key).to_owned()).await?;
                deleted += usize::from(removed > 0 && !marker);
            }
            self.run::<i64>(redis::cmd("DEL").arg(&user).to_owned())
                .await?;
            Ok(deleted)
        })
    }

    fn devices<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Device>, RememberMeStoreError>> {
        Box::pin(async move {
            let series: Vec<String> = self
                .run(
                    redis::cmd("SMEMBERS")
                        .arg(self.user_key(username))
                        .to_owned(),
                )
                .await?;
            let now = now_secs();
            let mut devices = Vec::new();
            for s in series {
                let f: Vec<Option<String>> = self
                    .run(
                        redis::cmd("HMGET")
                            .arg(self.series_key(&s))
                            .arg(&["user", "created", "last_used", "expires_at", "ua", "stolen"])
                            .to_owned(),
                    )
                    .await?;
                let num = |i: usize| {
                    f.get(i)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let marker = f.get(5).cloned().flatten().is_some();
                if f.first().cloned().flatten().as_deref() != Some(username)
                    || num(3) < now
                    || marker
                {
                    continue;
                }
                devices.push(Device {
                    series: s,
                    created: num(1),
                    last_used: num(2),
                    expires_at: num(3),
                    user_agent: f.get(4).cloned().flatten().filter(|ua| !ua.is_empty()),
                });
            }
            devices.sort_by_key(|d| d.created);
            Ok(devices)
        })
    }
}
