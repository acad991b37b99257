//! The Redis SSO session store, shared by every instance (feature `redis`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{FamilyOwner, SsoSession, SsoSessionError, SsoSessionStore, now_secs};
use crate::redis_conn::{Conn, ConnError, bounded};
use crate::revocation::BoxFuture;

/// An [`SsoSessionStore`] in Redis (feature `redis`).
///
/// One hash per session, `<prefix>session:<sid>`, fields `sub`, `secret` (the cookie
/// secret's SHA-256, hex), `auth_time`, `expires` (Unix seconds), `client:<id>` per client
/// signed in to and `family:<id>` per refresh family started; and one string per family,
/// `<prefix>family:<id>` = `<sid> <client_id>`. Both expire `session_ttl` after their last
/// write. A field is added only to a session that still exists (one Lua script), so an
/// ended session is never brought back. Every operation is bounded by `op_timeout`.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_token_auth::sso::session::RedisSsoSessionStore;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let ttl = Duration::from_secs(8 * 3600);
/// let sessions = RedisSsoSessionStore::connect("redis://127.0.0.1:6379/", "sso:", ttl, Duration::from_millis(500))?;
/// # let _ = sessions; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSsoSessionStore {
    conn: Conn,
    prefix: String,
    session_ttl: Duration,
    op_timeout: Duration,
}

impl fmt::Debug for RedisSsoSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSsoSessionStore")
            .field("prefix", &self.prefix)
            .field("session_ttl", &self.session_ttl)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

// KEYS: the session. ARGV: sub, secret hash, auth_time, expires, TTL (s).
const INSERT_LUA: &str = r"
redis.call('HSET', KEYS[1], 'sub', ARGV[1], 'secret', ARGV[2], 'auth_time', ARGV[3], 'expires', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
";

// KEYS: the session. ARGV: field, TTL (s). 0: no such session.
const ADD_LUA: &str = r"
if redis.call('HEXISTS', KEYS[1], 'sub') == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
";

// KEYS: the session. Its fields, and it is gone.
const END_LUA: &str = r"
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v
";

static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(INSERT_LUA));
static ADD: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_LUA));
static END: LazyLock<Script> = LazyLock::new(|| Script::new(END_LUA));

impl From<ConnError> for SsoSessionError {
    fn from(e: ConnError) -> Self {
        match e {
            ConnError::Redis(e) => Self::Unavailable(Box::new(e)),
            ConnError::Timeout => Self::Timeout,
        }
    }
}

impl RedisSsoSessionStore {
    /// Connects (lazily) to one Redis server; keys start with `prefix`, sessions live
    /// `session_ttl`, `op_timeout` bounds every operation. Must be called inside a Tokio
    /// runtime; Redis need not be up yet (until it is, operations fail).
    pub fn connect(
        url: &str,
        prefix: &str,
        session_ttl: Duration,
        op_timeout: Duration,
    ) -> Result<Self, SsoSessionError> {
        let conn = Conn::single(url, op_timeout).map_err(SsoSessionError::from)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            session_ttl,
            op_timeout,
        })
    }

    /// The Redis key of session `sid`.
    pub fn session_key(&self, sid: &str) -> String {
        format!("{}session:{sid}", self.prefix)
    }

    /// The Redis key of refresh family `family`'s owner.
    pub fn family_key(&self, family: &str) -> String {
        format!("{}family:{family}", self.prefix)
    }

    fn ttl_secs(&self) -> u64 {
        self.session_ttl.as_secs().max(1)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, SsoSessionError> {
        Ok(bounded(self.op_timeout, self.conn.run(cmd)).await?)
    }

    async fn add(&self, sid: &str, field: String) -> Result<bool, SsoSessionError> {
        let mut inv = ADD.prepare_invoke();
        inv.key(self.session_key(sid))
            .arg(field)
            .arg(self.ttl_secs());
        let added: i64 = bounded(self.op_timeout, self.conn.script(&inv)).await?;
        Ok(added == 1)
    }
}

/// A session from its hash fields; `None` without a `sub` (not a session).
fn from_fields(sid: &str, fields: HashMap<String, String>) -> Option<SsoSession> {
    let time = |name: &str| fields.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let named = |kind: &str| -> BTreeSet<String> {
        let names = fields.keys().filter_map(|k| k.strip_prefix(kind));
        names.map(str::to_owned).collect()
    };
    Some(SsoSession {
        sid: sid.to_owned(),
        sub: fields.get("sub").filter(|s| !s.is_empty())?.clone(),
        secret_hash: fields.get("secret").cloned().unwrap_or_default(),
        auth_time: time("auth_time"),
        expires_at: time("expires"),
        clients: named("client:"),
        families: named("family:"),
    })
}

impl SsoSessionStore for RedisSsoSessionStore {
    fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    fn insert<'a>(&'a self, session: &'a SsoSession) -> BoxFuture<'a, Result<(), SsoSessionError>> {
        Box::pin(async move {
            let mut inv = INSERT.prepare_invoke();
            inv.key(self.session_key(&session.sid));
            inv.arg(&session.sub).arg(&session.secret_hash);
            inv.arg(session.auth_time).arg(session.expires_at);
            inv.arg(session.expires_at.saturating_sub(now_secs()).max(1));
            let _: i64 = bounded(self.op_timeout, self.conn.script(&inv)).await?;
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>> {
        Box::pin(async move {
            let fields = self
                .run(redis::cmd("HGETALL").arg(self.session_key(sid)))
                .await?;
            let session = from_fields(sid, fields);
            Ok(session.filter(|s| s.expires_at > now_secs()))
        })
    }

    fn add_client<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>> {
        Box::pin(self.add(sid, format!("client:{client_id}")))
    }

    fn add_family<'a>(
        &'a self,
        sid: &'a str,
        client_id: &'a str,
        family: &'a str,
    ) -> BoxFuture<'a, Result<bool, SsoSessionError>> {
        Box::pin(async move {
            let mut set = redis::cmd("SET");
            set.arg(self.family_key(family))
                .arg(format!("{sid} {client_id}"));
            let _: () = self.run(set.arg("EX").arg(self.ttl_secs())).await?;
            self.add(sid, format!("family:{family}")).await
        })
    }

    fn family_owner<'a>(
        &'a self,
        family: &'a str,
    ) -> BoxFuture<'a, Result<Option<FamilyOwner>, SsoSessionError>> {
        Box::pin(async move {
            let owner: Option<String> = self
                .run(redis::cmd("GET").arg(self.family_key(family)))
                .await?;
            Ok(owner.and_then(|o| {
                let (sid, client_id) = o.split_once(' ')?;
                Some(FamilyOwner {
                    sid: sid.to_owned(),
                    client_id: client_id.to_owned(),
                })
            }))
        })
    }

    fn end<'a>(
        &'a self,
        sid: &'a str,
    ) -> BoxFuture<'a, Result<Option<SsoSession>, SsoSessionError>> {
        Box::pin(async move {
            let mut inv = END.prepare_invoke();
            inv.key(self.session_key(sid));
            let fields: HashMap<String, String> =
                bounded(self.op_timeout, self.conn.script(&inv)).await?;
            Ok(from_fields(sid, fields))
        })
    }
}
