//! The Redis refresh store: Lua scripts make create, rotate and revoke atomic.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::{
    FoundToken, PresentedToken, RefreshRecord, RefreshStore, RefreshStoreError, Rotation, TokenHash,
};
use crate::redis_conn::{Conn, add_to_index, bounded};
use crate::revocation::BoxFuture;

/// A [`RefreshStore`] in Redis or Redis Cluster (feature `redis`).
///
/// Key layout (prefix default `tta:`; the braces are a Cluster hash tag, so a family's keys
/// share one slot and one Lua script can update them atomically):
///
/// | key | type | fields | expiry |
/// |---|---|---|---|
/// | `tta:{f:<family>}:rt:<sha256 hex>` | hash | `sub`, `scope`, `exp`, `spent` (ms, once spent), `next` (successor's hash, once spent) | the token's `exp` |
/// | `tta:{f:<family>}:fam` | hash | `sub`, `revoked` (0/1), `exp`, `created`, `jkt` (only for a family bound to a DPoP key) | the family's last token's `exp` |
/// | `tta:{u:<sub>}:fams` | set | the user's families | the latest `exp` of any family in it (extended by every rotation) |
///
/// The DPoP binding ([`RefreshRecord::jkt`]) is a field of the family, so every successor
/// shares it; a family written before the field existed has none and reads as unbound.
///
/// Only hashes of tokens are stored. Rotation is one script: it checks the presented token and
/// its family, marks the token spent and writes its successor, or, for a spent token, revokes
/// the family — so 50 concurrent refreshes with one token yield at most one successor.
#[derive(Clone)]
pub struct RedisRefreshStore {
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
}

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

// Idempotent: run again, it leaves the keys as they are (a family revoked meanwhile stays so).
const CREATE_LUA: &str = r"
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'scope', ARGV[2], 'exp', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('HSETNX', KEYS[2], 'revoked', '0')
redis.call('HSET', KEYS[2], 'sub', ARGV[1], 'exp', ARGV[3], 'created', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'jkt', ARGV[5]) end
redis.call('EXPIREAT', KEYS[2], ARGV[3])
return 1
";

// KEYS: presented token, family, successor. ARGV: now_ms, grace_ms, successor exp, now_s,
// successor hash. Replies: {outcome, sub, scope, exp, created, jkt ('' when unbound)}.
const ROTATE_LUA: &str = r"
local rt = redis.call('HMGET', KEYS[1], 'sub', 'scope', 'exp', 'spent', 'next')
if not rt[1] then return {'invalid'} end
local fam = redis.call('HMGET', KEYS[2], 'revoked', 'exp', 'created', 'jkt')
if not fam[1] then return {'invalid'} end
if tonumber(rt[3]) < tonumber(ARGV[4]) then return {'invalid'} end
local record = {rt[1], rt[2], rt[3], fam[3] or '0', fam[4] or ''}
if rt[4] and rt[5] == ARGV[5] then
  return {'rotated', unpack(record)}
end
if fam[1] ~= '0' then return {'revoked', unpack(record)} end
if rt[4] then
  local grace = tonumber(ARGV[2])
  if grace > 0 and tonumber(ARGV[1]) - tonumber(rt[4]) < grace then return {'grace'} end
  redis.call('HSET', KEYS[2], 'revoked', '1')
  return {'reused', unpack(record)}
end
redis.call('HSET', KEYS[1], 'spent', ARGV[1], 'next', ARGV[5])
redis.call('HSET', KEYS[3], 'sub', rt[1], 'scope', rt[2], 'exp', ARGV[3])
redis.call('EXPIREAT', KEYS[3], ARGV[3])
if tonumber(ARGV[3]) > (tonumber(fam[2]) or 0) then
  redis.call('HSET', KEYS[2], 'exp', ARGV[3])
  redis.call('EXPIREAT', KEYS[2], ARGV[3])
end
return {'rotated', unpack(record)}
";

const REVOKE_FAMILY_LUA: &str = r"
local sub = redis.call('HGET', KEYS[1], 'sub')
if not sub then return false end
redis.call('HSET', KEYS[1], 'revoked', '1')
return sub
";

// Scripts are hashed (SHA-1, for EVALSHA) once, not on every call.
static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(CREATE_LUA));
static ROTATE: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE_LUA));
static REVOKE_FAMILY: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE_FAMILY_LUA));

impl RedisRefreshStore {
    /// Connects (lazily) to one Redis server. `op_timeout` bounds every operation.
    pub fn connect(
        url: &str,
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, RefreshStoreError> {
        let conn = Conn::single(url, op_timeout).map_err(RefreshStoreError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    /// Connects to a Redis Cluster through its seed nodes.
    pub async fn connect_cluster(
        nodes: &[&str],
        prefix: &str,
        op_timeout: Duration,
    ) -> Result<Self, RefreshStoreError> {
        let conn = Conn::cluster(nodes, op_timeout)
            .await
            .map_err(RefreshStoreError::from)?;
        Ok(Self::with_conn(conn, prefix, op_timeout))
    }

    fn with_conn(conn: Conn, prefix: &str, op_timeout: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            op_timeout,
        }
    }

    fn token_key(&self, family: &str, hash: &TokenHash) -> String {
        format!("{}{{f:{family}}}:rt:{}", self.prefix, hash.to_hex())
    }

    fn family_key(&self, family: &str) -> String {
        format!("{}{{f:{family}}}:fam", self.prefix)
    }

    fn user_key(&self, sub: &str) -> String {
        format!("{}{{u:{sub}}}:fams", self.prefix)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, RefreshStoreError> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        Ok(bounded(self.op_timeout, self.conn.script(&inv)).await?)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, RefreshStoreError> {
        Ok(bounded(self.op_timeout, self.conn.run(&cmd)).await?)
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        _ => String::new(),
    }
}

impl RefreshStore for RedisRefreshStore {
    fn create<'a>(
        &'a self,
        hash: TokenHash,
        record: &'a RefreshRecord,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        Box::pin(async move {
            let keys = [
                self.token_key(&record.family, &hash),
                self.family_key(&record.family),
            ];
            let args = [
                record.sub.clone(),
                record.scope.clone(),
                record.expires_at.to_string(),
                record.created_at.to_string(),
                record.jkt.clone().unwrap_or_default(),
            ];
            self.script::<i64>(&CREATE, &keys, &args).await?;
            // The user index lives on the user's slot: a separate, idempotent step.
            add_to_index(
                &self.conn,
                self.op_timeout,
                &self.user_key(&record.sub),
                &record.family,
                record.expires_at,
            )
            .await?;
            Ok(())
        })
    }

    fn rotate<'a>(
        &'a self,
        presented: &'a PresentedToken,
        successor: TokenHash,
        successor_expires_at: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        Box::pin(async move {
            let keys = [
                self.token_key(&presented.family, &presented.hash),
                self.family_key(&presented.family),
                self.token_key(&presented.family, &successor),
            ];
            let args = [
                now_ms.to_string(),
                grace_ms.to_string(),
                successor_expires_at.to_string(),
                (now_ms / 1000).to_string(),
                successor.to_hex(),
            ];
            let reply: Vec<Value> = self.script(&ROTATE, &keys, &args).await?;
            let record = || RefreshRecord {
                sub: text(reply.get(1)),
                family: presented.family.clone(),
                scope: text(reply.get(2)),
                expires_at: text(reply.get(3)).parse().unwrap_or(0),
                created_at: text(reply.get(4)).parse().unwrap_or(0),
                jkt: Some(text(reply.get(5))).filter(|j| !j.is_empty()),
            };
            let rotation = match text(reply.first()).as_str() {
                "rotated" => Rotation::Rotated(record()),
                "reused" => Rotation::Reused(record()),
                "revoked" => Rotation::FamilyRevoked(record()),
                "grace" => Rotation::WithinGrace,
                _ => Rotation::Invalid,
            };
            if let Rotation::Rotated(r) = &rotation {
                // The user's index must outlive the family it lists, which rotation extends.
                add_to_index(
                    &self.conn,
                    self.op_timeout,
                    &self.user_key(&r.sub),
                    &presented.family,
                    successor_expires_at,
                )
                .await?;
            }
            Ok(rotation)
        })
    }

    fn find<'a>(
        &'a self,
        presented: &'a PresentedToken,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<FoundToken>, RefreshStoreError>> {
        Box::pin(async move {
            let token: Vec<Option<String>> = self
                .run(
                    redis::cmd("HMGET")
                        .arg(self.token_key(&presented.family, &presented.hash))
                        .arg(&["sub", "scope", "exp", "spent"])
                        .to_owned(),
                )
                .await?;
            let family: Vec<Option<String>> = self
                .run(
                    redis::cmd("HMGET")
                        .arg(self.family_key(&presented.family))
                        .arg(&["revoked", "created", "jkt"])
                        .to_owned(),
                )
                .await?;
            let mut family = family.into_iter();
            let (Some(Some(revoked)), created, jkt) = (
                family.next(),
                family.next().flatten(),
                family.next().flatten(),
            ) else {
                return Ok(None);
            };
            let mut fields = token.into_iter();
            let (Some(Some(sub)), Some(Some(scope)), Some(Some(exp)), Some(spent)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Ok(None);
            };
            let exp: u64 = exp.parse().unwrap_or(0);
            if spent.is_some() || exp < now {
                return Ok(None);
            }
            Ok(Some(FoundToken {
                record: RefreshRecord {
                    sub,
                    family: presented.family.clone(),
                    scope,
                    expires_at: exp,
                    created_at: created.and_then(|c| c.parse().ok()).unwrap_or(0),
                    jkt: jkt.filter(|j| !j.is_empty()),
                },
                // Anything but an explicit "0" counts as revoked: fail closed.
                family_revoked: revoked != "0",
            }))
        })
    }

    fn revoke_family<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RefreshStoreError>> {
        Box::pin(async move {
            self.script(&REVOKE_FAMILY, &[self.family_key(family)], &[])
                .await
        })
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, RefreshStoreError>> {
        Box::pin(async move {
            let families: Vec<String> = self
                .run(redis::cmd("SMEMBERS").arg(self.user_key(sub)).to_owned())
                .await?;
            for family in &families {
                self.revoke_family(family).await?;
            }
            Ok(families)
        })
    }
}
