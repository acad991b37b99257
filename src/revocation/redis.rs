//! A Redis-backed [`RevocationStore`] shared by many service instances, answering from a local
//! cache kept fresh by pub/sub (feature `redis`).
//!
//! # How a check stays off the network
//!
//! Every revocation is written to Redis (a key that expires with the token) and published on
//! one channel. Each instance subscribes to that channel and mirrors every revocation it hears
//! into a local [`MemoryStore`]. A token the instance has never seen is looked up in Redis once
//! (one `MGET` of its two keys) and then remembered as *confirmed* for the current subscription
//! generation; later requests with it cost no round trip. Any revocation after the lookup
//! arrives through the subscription, which was established before the lookup started.
//!
//! # Freshness and failure
//!
//! Each instance publishes a heartbeat on the channel every `heartbeat_interval` and watches for
//! its own echo. The subscription counts as *live* only while an echo arrived within
//! `staleness_bound`. While it is not live (Redis down, restarted, a silent network cut) the
//! cache is not trusted for "not revoked" answers: every check reads Redis directly, bounded by
//! `op_timeout`, and if Redis cannot answer the request is refused with 503 (fail closed) unless
//! [`fail_open`](RedisStoreConfig::fail_open) is set. Revocations already known locally are
//! always enforced, Redis or not. When the subscription comes back, a new generation starts and
//! each token is read once more.
//!
//! # Durability
//!
//! A revocation is written to its key, then published, and only then recorded locally and
//! reported done. If either step fails the caller gets the error, nothing is recorded locally
//! (this instance answers as all the others do, so the caller's retry still gets through and
//! repeats every idempotent step), and the revocation is queued and re-sent in the background
//! until Redis takes it ([`pending_retries`](RedisRevocationStore::pending_retries)). A
//! revocation that reported success is therefore in Redis and on the channel: every instance
//! enforces it, including instances started later. A token is confirmed unrevoked only for the
//! exact `jti`, `sub` and `sid` whose keys were read.
//!
//! Staleness bound: a revocation reaches a live instance as fast as Redis delivers pub/sub
//! (sub-millisecond on loopback). If the subscription dies silently, an instance may answer
//! from its cache for at most `staleness_bound` (default 2 s) after the last echo before it
//! falls back to direct reads.
//!
//! # Redis restarted empty
//!
//! A marker key holds a random epoch. After every reconnection the instance compares it with
//! the epoch it knew; if the marker is gone or different, Redis lost its data, and the instance
//! writes back every live revocation it holds locally before it trusts its cache again (and
//! logs a warning). Every instance does this, so the union of what the running instances knew
//! is restored. Revocations that no running instance had seen are lost: run Redis with
//! persistence (AOF or RDB) if that matters. On Redis Cluster the marker lives on one node.
//!
//! Key layout: see `docs/redis.md`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{Client, RedisError, Script};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::redis_conn::{Conn, ConnError};

use super::{
    BoxFuture, GRACE_SECS, MemoryStore, RevocationCheck, RevocationError, RevocationStatus,
    RevocationStore, TokenRef, in_force, now_ms, now_secs,
};

/// Settings of a [`RedisRevocationStore`].
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    prefix: String,
    op_timeout: Duration,
    connect_timeout: Duration,
    heartbeat_interval: Duration,
    staleness_bound: Duration,
    fail_open: bool,
    confirmed_capacity: usize,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        Self {
            prefix: "tta:".into(),
            op_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            heartbeat_interval: Duration::from_millis(250),
            staleness_bound: Duration::from_secs(2),
            fail_open: false,
            confirmed_capacity: 100_000,
        }
    }
}

impl RedisStoreConfig {
    /// Prefix of every key and of the channel (default `tta:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest any Redis operation may take, a request's check included (default 500 ms).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The longest a connection attempt may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often the instance proves its subscription alive (default 250 ms).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long after the last heartbeat echo the local cache is still trusted (default 2 s).
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// Accept tokens when Redis cannot be asked (default false: refuse with 503). Revocations
    /// known locally are enforced either way.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// How many confirmed-unrevoked tokens to remember (default 100 000, about 100 bytes
    /// each). When full, expired entries are dropped, and if that is not enough the whole
    /// cache is (tokens are then looked up again once each).
    pub fn confirmed_capacity(mut self, capacity: usize) -> Self {
        self.confirmed_capacity = capacity;
        self
    }
}

/// The pub/sub payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Event {
    #[serde(rename = "t")]
    Token {
        jti: String,
        sub: Option<String>,
        exp: u64,
    },
    #[serde(rename = "u")]
    User {
        sub: String,
        before: u64,
        until: u64,
    },
    #[serde(rename = "s")]
    Session {
        sid: String,
        sub: Option<String>,
        until: u64,
    },
    #[serde(rename = "h")]
    Heartbeat { id: String },
}

// Raise a user's "revoked before" instant, never lower it; keep the longer expiry.
const REVOKE_USER_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
local before = tonumber(ARGV[1])
local ttl = tonumber(ARGV[3])
if cur then
  local b = tonumber(string.match(cur, '^(%d+)'))
  if b and b > before then before = b end
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > ttl * 1000 then ttl = math.ceil(pttl / 1000) end
end
redis.call('SET', KEYS[1], before .. ' ' .. ARGV[2], 'EX', ttl)
return 1
";

/// A token read from Redis and found unrevoked under a live subscription. Every dimension
/// the read covered is kept and compared, so a token is trusted only for the exact `jti`,
/// `sub` and `sid` whose keys were read.
struct Confirmed {
    generation: u64,
    exp: u64,
    jti: Option<Box<str>>,
    sub: Option<Box<str>>,
    sid: Option<Box<str>>,
}

impl Confirmed {
    fn covers(&self, token: &TokenRef<'_>, generation: u64) -> bool {
        self.generation == generation
            && self.jti.as_deref() == token.jti
            && self.sub.as_deref() == token.sub
            && self.sid.as_deref() == token.sid
    }
}

/// The most revocations waiting for a retry of their Redis write (each about 100 bytes).
const MAX_PENDING: usize = 10_000;

struct Shared {
    config: RedisStoreConfig,
    conn: Conn,
    pubsub_clients: Vec<Client>,
    channel: String,
    instance_id: String,
    revoked: MemoryStore,
    confirmed: RwLock<HashMap<Box<str>, Confirmed>>,
    generation: AtomicU64,
    subscribed: AtomicBool,
    last_echo_ms: AtomicU64,
    epoch: tokio::sync::Mutex<Option<String>>,
    revoke_user_script: Script,
    /// Revocations whose write or publish failed, retried in the background until durable.
    pending: std::sync::Mutex<std::collections::VecDeque<Event>>,
    pending_added: tokio::sync::Notify,
}

/// A [`RevocationStore`] in Redis, for several instances of a service (feature `redis`).
///
/// See the [`revocation`](crate::revocation) module docs and `docs/redis.md` for how checks avoid Redis round trips, the freshness
/// guarantee and the failure policy; the key layout is in `docs/redis.md`.
///
/// ```no_run
/// use tower_token_auth::revocation::{RedisRevocationStore, RedisStoreConfig};
/// use tower_token_auth::{JwtAuthLayer, testing::TestKeys};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisRevocationStore::connect("redis://127.0.0.1:6379/", RedisStoreConfig::default()).await?;
/// let layer = JwtAuthLayer::new(TestKeys::hs256().verifier()).with_revocation_store(store);
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRevocationStore {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.shared.config.prefix)
            .field("live", &self.is_live())
            .field(
                "generation",
                &self.shared.generation.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

fn unavailable(e: RedisError) -> RevocationError {
    ConnError::Redis(e).into()
}

async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RevocationError> {
    crate::redis_conn::bounded(limit, fut)
        .await
        .map_err(Into::into)
}

impl RedisRevocationStore {
    /// Connects to one Redis server (`redis://host:port/db`). Must be called inside a Tokio
    /// runtime. Redis need not be up yet: until it is, checks fail closed.
    pub async fn connect(url: &str, config: RedisStoreConfig) -> Result<Self, RevocationError> {
        let client = Client::open(url).map_err(unavailable)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(unavailable)?;
        Ok(Self::start(config, Conn::Single(manager), vec![client]))
    }

    /// Connects to a Redis Cluster through its seed nodes. The cluster must be reachable now;
    /// later outages are handled like those of a single server.
    pub async fn connect_cluster(
        nodes: &[&str],
        config: RedisStoreConfig,
    ) -> Result<Self, RevocationError> {
        let client = ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.op_timeout)
            .retries(1)
            .build()
            .map_err(unavailable)?;
        let conn = bounded(config.connect_timeout * 2, client.get_async_connection()).await?;
        // Cluster nodes forward PUBLISH to every node: subscribing on any one is enough.
        let pubsub_clients = nodes
            .iter()
            .map(|n| Client::open(*n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        Ok(Self::start(config, Conn::Cluster(conn), pubsub_clients))
    }

    fn start(config: RedisStoreConfig, conn: Conn, pubsub_clients: Vec<Client>) -> Self {
        let shared = Arc::new(Shared {
            channel: format!("{}events", config.prefix),
            instance_id: crate::issuer::random_id::<12>(),
            config,
            conn,
            pubsub_clients,
            revoked: MemoryStore::new(),
            confirmed: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            last_echo_ms: AtomicU64::new(0),
            epoch: tokio::sync::Mutex::new(None),
            revoke_user_script: Script::new(REVOKE_USER_LUA),
            pending: std::sync::Mutex::new(std::collections::VecDeque::new()),
            pending_added: tokio::sync::Notify::new(),
        });
        let subscriber = tokio::spawn(subscribe_loop(shared.clone()));
        let heartbeat = tokio::spawn(heartbeat_loop(shared.clone()));
        let retrier = tokio::spawn(retry_loop(shared.clone()));
        Self {
            shared,
            _tasks: Arc::new(Tasks(vec![subscriber, heartbeat, retrier])),
        }
    }

    /// Whether the subscription is live, i.e. the local cache may answer checks.
    pub fn is_live(&self) -> bool {
        self.shared.is_live()
    }

    /// Waits until the subscription is live, up to `limit`. Useful at start-up.
    pub async fn wait_live(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.is_live() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.is_live()
    }

    /// How many revocations that failed to reach Redis are waiting for their background retry.
    /// Each was reported failed to its caller; each is written and published as soon as Redis
    /// takes it.
    pub fn pending_retries(&self) -> usize {
        self.shared.pending_len()
    }

    /// Waits until no revocation is waiting for a retry, up to `limit`.
    pub async fn wait_retries_done(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending_retries() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The Redis key of a single-token revocation.
    pub fn token_key(&self, sub: Option<&str>, jti: &str) -> String {
        self.shared.token_key(sub, jti)
    }

    /// The Redis key of a user revocation.
    pub fn user_key(&self, sub: &str) -> String {
        self.shared.user_key(sub)
    }
}

impl Shared {
    fn token_key(&self, sub: Option<&str>, jti: &str) -> String {
        format!("{}{{{}}}:t:{}", self.config.prefix, sub.unwrap_or(""), jti)
    }

    fn user_key(&self, sub: &str) -> String {
        format!("{}{{{}}}:u", self.config.prefix, sub)
    }

    fn session_key(&self, sub: Option<&str>, sid: &str) -> String {
        format!("{}{{{}}}:s:{}", self.config.prefix, sub.unwrap_or(""), sid)
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.config.prefix)
    }

    fn is_live(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && now_ms().saturating_sub(self.last_echo_ms.load(Ordering::Acquire))
                < self.config.staleness_bound.as_millis() as u64
    }

    /// The map key of a confirmed token: its most specific identifier. Entries compare every
    /// dimension (see [`Confirmed::covers`]), so tokens sharing a key only evict each other.
    fn confirmed_key<'t>(token: &TokenRef<'t>) -> &'t str {
        token.jti.or(token.sid).or(token.sub).unwrap_or("")
    }

    fn confirm(&self, token: &TokenRef<'_>, generation: u64) {
        let mut map = self.confirmed.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.config.confirmed_capacity {
            let now = now_secs();
            map.retain(|_, c| c.exp >= now);
            if map.len() >= self.config.confirmed_capacity {
                map.clear();
            }
        }
        map.insert(
            Self::confirmed_key(token).into(),
            Confirmed {
                generation,
                exp: token.exp.unwrap_or(u64::MAX),
                jti: token.jti.map(Into::into),
                sub: token.sub.map(Into::into),
                sid: token.sid.map(Into::into),
            },
        );
    }

    fn is_confirmed(&self, token: &TokenRef<'_>, generation: u64) -> bool {
        let map = self.confirmed.read().unwrap_or_else(|e| e.into_inner());
        map.get(Self::confirmed_key(token))
            .is_some_and(|c| c.covers(token, generation))
    }

    /// Makes `event` durable: its key written, then the message published. Only then is it
    /// recorded locally and reported done. A failure queues it for the background retry and is
    /// reported: nothing is recorded locally meanwhile, so this instance goes on answering as
    /// every other instance does, and the caller's retry (it still passes authentication)
    /// repeats every step. Each step is idempotent.
    async fn commit(&self, event: Event) -> Result<(), RevocationError> {
        match self.write_and_publish(&event).await {
            Ok(()) => {
                self.apply_event(event);
                Ok(())
            }
            Err(e) => {
                self.queue_retry(event);
                Err(e)
            }
        }
    }

    async fn write_and_publish(&self, event: &Event) -> Result<(), RevocationError> {
        match event {
            Event::Token { jti, sub, exp } => self.write_token(sub.as_deref(), jti, *exp).await?,
            Event::Session { sid, sub, until } => {
                self.write_session(sub.as_deref(), sid, *until).await?
            }
            Event::User { sub, before, until } => self.write_user(sub, *before, *until).await?,
            Event::Heartbeat { .. } => {}
        }
        self.publish(event).await
    }

    fn queue_retry(&self, event: Event) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.contains(&event) {
            return;
        }
        if pending.len() >= MAX_PENDING {
            tracing::error!(
                target: "tower_token_auth",
                "{MAX_PENDING} revocations are already waiting for Redis; this one is not queued (its caller was told it failed)"
            );
            return;
        }
        pending.push_back(event);
        drop(pending);
        self.pending_added.notify_one();
    }

    fn pending_len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    async fn publish(&self, event: &Event) -> Result<(), RevocationError> {
        let payload = serde_json::to_string(event).unwrap_or_default();
        let cmd = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .to_owned();
        bounded(self.config.op_timeout, self.conn.run::<i64>(&cmd))
            .await
            .map(drop)
    }

    async fn write_token(
        &self,
        sub: Option<&str>,
        jti: &str,
        exp: u64,
    ) -> Result<(), RevocationError> {
        self.write_until(self.token_key(sub, jti), exp).await
    }

    async fn write_session(
        &self,
        sub: Option<&str>,
        sid: &str,
        until: u64,
    ) -> Result<(), RevocationError> {
        self.write_until(self.session_key(sub, sid), until).await
    }

    /// `SET key until EX (until - now)`.
    async fn write_until(&self, key: String, until: u64) -> Result<(), RevocationError> {
        // Kept past `until` for as long as a verifier's leeway may still admit the tokens.
        let ttl = until.saturating_sub(now_secs()).max(1) + GRACE_SECS;
        let cmd = redis::cmd("SET")
            .arg(key)
            .arg(until)
            .arg("EX")
            .arg(ttl)
            .to_owned();
        bounded(self.config.op_timeout, self.conn.run::<()>(&cmd)).await
    }

    async fn write_user(&self, sub: &str, before: u64, until: u64) -> Result<(), RevocationError> {
        // Kept past `until` for as long as a verifier's leeway may still admit the tokens.
        let ttl = until.saturating_sub(now_secs()).max(1) + GRACE_SECS;
        let mut inv = self.revoke_user_script.prepare_invoke();
        inv.key(self.user_key(sub)).arg(before).arg(until).arg(ttl);
        bounded(self.config.op_timeout, self.conn.script(&inv)).await
    }

    /// Reads the token's keys (one slot: they share the user's hash tag).
    async fn read_status(&self, token: OwnedToken) -> Result<RevocationStatus, RevocationError> {
        enum Kind<'t> {
            Token(&'t str),
            User(&'t str),
            Session(&'t str),
        }
        let generation = self.generation.load(Ordering::Acquire);
        let live = self.is_live();
        let sub = token.sub.as_deref();
        let mut wanted = Vec::with_capacity(3);
        if let Some(jti) = &token.jti {
            wanted.push((Kind::Token(jti), self.token_key(sub, jti)));
        }
        if let Some(s) = sub {
            wanted.push((Kind::User(s), self.user_key(s)));
        }
        if let Some(sid) = &token.sid {
            wanted.push((Kind::Session(sid), self.session_key(sub, sid)));
        }
        if wanted.is_empty() {
            return Ok(RevocationStatus::Active);
        }
        let keys: Vec<&String> = wanted.iter().map(|(_, k)| k).collect();
        let cmd = redis::cmd("MGET").arg(&keys).to_owned();
        let values: Vec<Option<String>> =
            bounded(self.config.op_timeout, self.conn.run(&cmd)).await?;
        let mut revoked = false;
        let now = now_secs();
        for ((kind, _), value) in wanted.iter().zip(values) {
            let Some(value) = value else { continue };
            // Unparsable values count as revoked forever: fail closed.
            let mut numbers = value
                .split(' ')
                .map(|p| p.parse::<u64>().unwrap_or(u64::MAX));
            let first = numbers.next().unwrap_or(u64::MAX);
            match kind {
                Kind::Token(jti) => {
                    self.revoked.revoke_token_of(jti, sub, first);
                    revoked |= in_force(first, now);
                }
                Kind::Session(sid) => {
                    self.revoked.revoke_session_now(sub, sid, first);
                    revoked |= in_force(first, now);
                }
                Kind::User(s) => {
                    let until = numbers.next().unwrap_or(u64::MAX);
                    self.revoked.revoke_user_now(s, first, until);
                    revoked |= in_force(until, now) && token.iat.is_none_or(|iat| iat <= first);
                }
            }
        }
        if revoked {
            return Ok(RevocationStatus::Revoked);
        }
        // Only a read made under a live subscription stays true: later revocations will
        // arrive as messages.
        if live && self.generation.load(Ordering::Acquire) == generation {
            self.confirm(&token.as_ref(), generation);
        }
        Ok(RevocationStatus::Active)
    }

    fn apply(&self, payload: &[u8]) {
        match serde_json::from_slice::<Event>(payload) {
            Ok(event) => self.apply_event(event),
            Err(_) => {
                tracing::warn!(target: "tower_token_auth", "ignoring a malformed revocation message")
            }
        }
    }

    /// Records a revocation in the local mirror (or notes a heartbeat echo).
    fn apply_event(&self, event: Event) {
        match event {
            Event::Token { jti, sub, exp } => {
                self.revoked.revoke_token_of(&jti, sub.as_deref(), exp)
            }
            Event::Session { sid, sub, until } => {
                self.revoked.revoke_session_now(sub.as_deref(), &sid, until)
            }
            Event::User { sub, before, until } => self.revoked.revoke_user_now(&sub, before, until),
            Event::Heartbeat { id } => {
                if id == self.instance_id {
                    self.last_echo_ms.store(now_ms(), Ordering::Release);
                }
            }
        }
    }

    /// Checks the epoch marker; re-seeds Redis from the local mirror when it lost its data.
    async fn reconcile_epoch(&self) -> Result<(), RevocationError> {
        let key = self.epoch_key();
        let mut known = self.epoch.lock().await;
        let current: Option<String> = bounded(
            self.config.op_timeout,
            self.conn.run(&redis::cmd("GET").arg(&key).to_owned()),
        )
        .await?;
        if known.is_some() && *known == current {
            return Ok(());
        }
        if known.is_some() {
            tracing::warn!(
                target: "tower_token_auth",
                "Redis lost its revocation data (restart without persistence?); re-seeding it from this instance"
            );
            let snapshot = self.revoked.snapshot(now_secs());
            for (sid, sub, until) in snapshot.sessions {
                self.write_session(sub.as_deref(), &sid, until).await?;
                self.publish(&Event::Session { sid, sub, until }).await?;
            }
            for (jti, sub, exp) in snapshot.tokens {
                self.write_token(sub.as_deref(), &jti, exp).await?;
                self.publish(&Event::Token { jti, sub, exp }).await?;
            }
            for (sub, before, until) in snapshot.users {
                self.write_user(&sub, before, until).await?;
                self.publish(&Event::User { sub, before, until }).await?;
            }
        }
        let fresh = crate::issuer::random_id::<12>();
        let set = redis::cmd("SET").arg(&key).arg(&fresh).arg("NX").to_owned();
        bounded(
            self.config.op_timeout,
            self.conn.run::<Option<String>>(&set),
        )
        .await?;
        let adopted: Option<String> = bounded(
            self.config.op_timeout,
            self.conn.run(&redis::cmd("GET").arg(&key).to_owned()),
        )
        .await?;
        *known = adopted;
        Ok(())
    }
}

/// A token's fields, owned, for a check that outlives the request borrow.
struct OwnedToken {
    jti: Option<String>,
    sub: Option<String>,
    sid: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
}

impl OwnedToken {
    fn new(t: &TokenRef<'_>) -> Self {
        Self {
            jti: t.jti.map(str::to_owned),
            sub: t.sub.map(str::to_owned),
            sid: t.sid.map(str::to_owned),
            iat: t.iat,
            exp: t.exp,
        }
    }

    fn as_ref(&self) -> TokenRef<'_> {
        TokenRef::new()
            .jti(self.jti.as_deref())
            .sub(self.sub.as_deref())
            .sid(self.sid.as_deref())
            .iat(self.iat)
            .exp(self.exp)
    }
}

async fn subscribe_loop(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(50);
    let mut node = 0usize;
    loop {
        let client = &shared.pubsub_clients[node % shared.pubsub_clients.len()];
        node = node.wrapping_add(1);
        let subscribed = async {
            let mut pubsub =
                tokio::time::timeout(shared.config.connect_timeout, client.get_async_pubsub())
                    .await
                    .map_err(|_| RevocationError::Timeout)?
                    .map_err(unavailable)?;
            bounded(shared.config.op_timeout, pubsub.subscribe(&shared.channel)).await?;
            // Subscribed before anything is read: no revocation can fall in between.
            shared.reconcile_epoch().await?;
            Ok::<_, RevocationError>(pubsub)
        }
        .await;
        let pubsub = match subscribed {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(target: "tower_token_auth", error = %e, "revocation subscription failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        shared.generation.fetch_add(1, Ordering::AcqRel);
        shared.subscribed.store(true, Ordering::Release);
        tracing::info!(target: "tower_token_auth", "revocation subscription live");
        let mut stream = pubsub.into_on_message();
        let mut watchdog = tokio::time::interval(shared.config.staleness_bound);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => shared.apply(msg.get_payload_bytes()),
                    None => break,
                },
                _ = watchdog.tick() => {
                    // A subscription that hears not even its own heartbeat is dead.
                    let silent = now_ms().saturating_sub(shared.last_echo_ms.load(Ordering::Acquire))
                        > 2 * shared.config.staleness_bound.as_millis() as u64;
                    if silent && shared.last_echo_ms.load(Ordering::Acquire) != 0 {
                        break;
                    }
                }
            }
        }
        shared.subscribed.store(false, Ordering::Release);
        shared.last_echo_ms.store(0, Ordering::Release);
        tracing::warn!(target: "tower_token_auth", "revocation subscription lost; checks read Redis directly until it is back");
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.subscribed.load(Ordering::Acquire) {
            let event = Event::Heartbeat {
                id: shared.instance_id.clone(),
            };
            let _ = shared.publish(&event).await;
        }
    }
}

/// Writes and publishes the revocations that failed, oldest first, until Redis takes them.
async fn retry_loop(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let next = shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let Some(event) = next else {
            shared.pending_added.notified().await;
            continue;
        };
        match shared.write_and_publish(&event).await {
            Ok(()) => {
                // Only this task removes entries, from the front: it is still `event`.
                shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                shared.apply_event(event);
                backoff = Duration::from_millis(50);
                tracing::info!(target: "tower_token_auth", "a revocation that had failed is now durable in Redis");
            }
            Err(e) => {
                tracing::debug!(target: "tower_token_auth", error = %e, "revocation retry failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

impl RevocationStore for RedisRevocationStore {
    fn check(&self, token: &TokenRef<'_>) -> RevocationCheck {
        let shared = &self.shared;
        if shared.revoked.is_revoked(token) {
            return RevocationCheck::Ready(Ok(RevocationStatus::Revoked));
        }
        let generation = shared.generation.load(Ordering::Acquire);
        if shared.is_live() && shared.is_confirmed(token, generation) {
            return RevocationCheck::Ready(Ok(RevocationStatus::Active));
        }
        let shared = self.shared.clone();
        let owned = OwnedToken::new(token);
        RevocationCheck::Pending(Box::pin(async move {
            match shared.read_status(owned).await {
                Err(e) if shared.config.fail_open => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "revocation store unavailable; failing open");
                    Ok(RevocationStatus::Active)
                }
                other => other,
            }
        }))
    }

    fn revoke_token<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            let (jti, exp) = token.revocable()?;
            self.shared
                .commit(Event::Token {
                    jti: jti.to_owned(),
                    sub: token.sub.map(str::to_owned),
                    exp,
                })
                .await
        })
    }

    fn revoke_user<'a>(
        &'a self,
        sub: &'a str,
        issued_before: u64,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            self.shared
                .commit(Event::User {
                    sub: sub.to_owned(),
                    before: issued_before,
                    until: keep_until,
                })
                .await
        })
    }

    fn revoke_session<'a>(
        &'a self,
        sub: Option<&'a str>,
        sid: &'a str,
        keep_until: u64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            self.shared
                .commit(Event::Session {
                    sid: sid.to_owned(),
                    sub: sub.map(str::to_owned),
                    until: keep_until,
                })
                .await
        })
    }
}
