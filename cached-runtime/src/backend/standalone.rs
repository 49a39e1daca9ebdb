//! A standalone Redis server (or a primary behind a proxy).
//!
//! One multiplexed connection serves every call. Each operation carries the cache's own
//! deadline (`op_timeout`); redis-rs's response timeout is off so a hit arms one timer,
//! not two. A background task owns (re)connecting: while the breaker is open it drops
//! the suspect connection, connects afresh and `PING`s with a growing backoff, and
//! closes the breaker when Redis answers. A second task keeps the fill subscription.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::watch;

use super::{Acquire, Entry, Lease, StoreError, TAG_TTL, parse_version};
use crate::breaker::Breaker;
use crate::codec::{DECODE_LIMIT, ENVELOPE_HEADER_ALLOWANCE};
use crate::fills::{Announcement, Wake};
use crate::key::{fence_key, lease_key};
use crate::log::RateLimited;
use crate::random::random_u64;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Reconnect attempts never wait longer than this, so hits resume well within a second.
const MAX_BACKOFF: Duration = Duration::from_millis(400);
/// How often the subscription is checked with a `PING`: a connection that a NAT or a
/// firewall dropped silently delivers nothing and reports nothing.
const SUBSCRIPTION_KEEPALIVE: Duration = Duration::from_secs(1);

// Scripts. KEYS[1] is always the value; the lease, fence and value share a hash tag.
// Each script that announces publishes the bytes it is given (`fills::Announcement`).

/// Returns the value if asked and present (and not over the decode limit, which could
/// never be read and would only be slow to send); else takes the lease (`NX` when
/// exclusive, joining the fence set otherwise). KEYS: value, lease.
/// ARGV: token, lease ms, exclusive (1/0), check value (1/0), decode limit.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[4] == '1' then
  local size = redis.call('STRLEN', KEYS[1])
  if size > 0 and size <= tonumber(ARGV[5]) then
    return {1, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
  end
end
if ARGV[3] == '1' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {3, ttl}
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {2}
",
    )
});

/// The fenced fill: writes only while the lease is ours (the value first, so a write
/// refused under OOM leaves the lease for the release). KEYS: value, lease.
/// ARGV: token, bytes, ttl ms, fills channel, exclusive (1/0), announcement.
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[5] == '1' then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
elseif redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) else redis.call('SREM', KEYS[2], ARGV[1]) end
redis.call('PUBLISH', ARGV[4], ARGV[6])
return 1
",
    )
});

/// Deletes the value and the lease while the (exclusive) lease is ours; 1 if it was.
/// KEYS: value, lease. ARGV: as `RELEASE`'s (the exclusive flag is always 1 here).
static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[4])
return 1
",
    )
});

/// KEYS: lease. ARGV: token, lease ms, exclusive (1/0).
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ours
if ARGV[3] == '1' then
  ours = redis.call('GET', KEYS[1]) == ARGV[1]
else
  ours = redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1
end
if ours then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// Gives the lease up if it is still ours; 1 if it was. KEYS: value, lease.
/// ARGV: token, fills channel, exclusive (1/0), announcement.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[3] ~= '1' then return redis.call('SREM', KEYS[2], ARGV[1]) end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[4])
return 1
",
    )
});

/// Invalidation. KEYS: value, lease, fence. ARGV: fills channel, announcement.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return deleted
",
    )
});

/// The current versions of tags, each kept for at least `life` from now (a tag in use
/// never expires under the values that carry it). With candidates, a tag that has no
/// version gets its candidate; without, it stays missing (nil).
/// KEYS: tags. ARGV: life ms, then one candidate version per tag, or none.
static TAG_VERSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local versions = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  local candidate = ARGV[i + 1]
  if v then
    -- Only ever lengthened (PEXPIRE's GT option needs Redis 7).
    local left = redis.call('PTTL', key)
    if left >= 0 and left < tonumber(ARGV[1]) then redis.call('PEXPIRE', key, ARGV[1]) end
  elseif candidate then
    v = candidate
    redis.call('SET', key, v, 'PX', ARGV[1])
  end
  versions[i] = v
end
return versions
",
    )
});

/// A new version for a tag, announced. KEYS: tag. ARGV: version, ttl ms, fills channel,
/// announcement.
static BUMP_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
",
    )
});

#[derive(Debug)]
pub(crate) struct RedisStore {
    client: Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    /// Bumped with every new connection: failures of an older one do not count.
    generation: AtomicU64,
    breaker: Breaker,
    /// Counts reconnects; the subscription starts afresh after one (it may be stuck
    /// too). A value, not a stored permit: a subscription made after the reconnect is
    /// not torn down by it.
    reconnects: watch::Sender<u64>,
    op_timeout: Duration,
    connect_timeout: Duration,
    channel: String,
    /// This cache's id in the invalidations it announces.
    origin: u64,
    subscribed: AtomicBool,
    /// Counts subscriptions made: a message can only have been missed across a change.
    subscriptions: AtomicU64,
}

impl RedisStore {
    /// Starts the store and its background tasks; they end when `shutdown`'s sender drops.
    pub(crate) fn start(
        client: Client,
        op_timeout: Duration,
        connect_timeout: Duration,
        channel: String,
        wake: Wake,
        shutdown: &watch::Sender<()>,
    ) -> Arc<Self> {
        let store = Arc::new(Self {
            client,
            connection: RwLock::new(None),
            generation: AtomicU64::new(0),
            breaker: Breaker::new_open(),
            reconnects: watch::Sender::new(0),
            op_timeout,
            connect_timeout,
            channel,
            origin: wake.origin,
            subscribed: AtomicBool::new(false),
            subscriptions: AtomicU64::new(0),
        });
        tokio::spawn(keep_connected(store.clone(), shutdown.subscribe()));
        tokio::spawn(keep_subscribed(store.clone(), wake, shutdown.subscribe()));
        store
    }

    /// Waits (at most the connect timeout) for the first connection, so a cache built
    /// while Redis is up starts with hits; one built while it is down starts failing open.
    pub(crate) async fn first_connection(&self) {
        let _ = tokio::time::timeout(self.connect_timeout, self.breaker.wait_closed()).await;
    }

    /// The current subscription's number, if one is up.
    pub(crate) fn subscription(&self) -> Option<u64> {
        // The number is written before `subscribed` is set, and read after it.
        let subscribed = self.subscribed.load(Ordering::Acquire);
        let number = self.subscriptions.load(Ordering::Acquire);
        subscribed.then_some(number)
    }

    pub(crate) fn reachable(&self) -> bool {
        !self.breaker.is_open()
    }

    /// A reply slower than half the deadline: the breaker counts it as a failure.
    fn slow(&self, took: Duration) -> bool {
        took > self.op_timeout / 2
    }

    fn connection(&self) -> Option<(MultiplexedConnection, u64)> {
        if self.breaker.is_open() {
            return None;
        }
        let connection = self
            .connection
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()?;
        Some((connection, self.generation.load(Ordering::Acquire)))
    }

    /// Runs one operation under the cache's deadline and feeds the breaker.
    async fn run<T, F>(&self, op: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some((connection, generation)) = self.connection() else {
            return Err(StoreError::Skipped);
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.op_timeout, op(connection)).await;
        // A late failure on a connection that was already replaced says nothing about Redis now.
        let current = self.generation.load(Ordering::Acquire) == generation;
        match result {
            Ok(Ok(value)) => {
                // A Redis that answers, but barely within the deadline, is failing too.
                if self.slow(started.elapsed()) {
                    if current {
                        self.breaker.record_failure();
                    }
                } else {
                    self.breaker.record_success();
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                match health(&e) {
                    Health::Broken if current => self.breaker.trip(),
                    Health::Failing if current => {
                        self.breaker.record_failure();
                    }
                    _ => {}
                }
                Err(StoreError::Redis(e))
            }
            Err(_elapsed) => {
                if current {
                    self.breaker.record_failure();
                }
                Err(StoreError::Timeout(self.op_timeout))
            }
        }
    }

    pub(crate) async fn get(&self, key: &str, timed: bool) -> Result<Option<Entry>, StoreError> {
        if !timed {
            let bytes: Option<Vec<u8>> = self
                .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
                .await?;
            return Ok(bytes.map(|bytes| Entry { bytes, remaining: None }));
        }
        let mut read = redis::cmd("GET");
        read.arg(key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self.with_pttl(read, key).await?;
        Ok(timed_entry(bytes, pttl))
    }

    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        let (replies, pttl): (Vec<Option<Vec<u8>>>, Option<i64>) = if timed {
            let mut read = redis::cmd("MGET");
            read.arg(key).arg(tag_keys);
            let (replies, pttl) = self.with_pttl(read, key).await?;
            (replies, Some(pttl))
        } else {
            let replies = self
                .run(|mut c| async move { redis::cmd("MGET").arg(key).arg(tag_keys).query_async(&mut c).await })
                .await?;
            (replies, None)
        };
        let mut replies = replies.into_iter();
        let value = replies.next().flatten();
        let versions = replies.map(|v| v.as_deref().and_then(parse_version)).collect();
        let entry = match pttl {
            Some(pttl) => timed_entry(value, pttl),
            None => value.map(|bytes| Entry { bytes, remaining: None }),
        };
        Ok((entry, versions))
    }

    /// `read`, and the `PTTL` of `key`, in one round trip (a pipeline).
    async fn with_pttl<T: redis::FromRedisValue>(&self, read: redis::Cmd, key: &str) -> Result<(T, i64), StoreError> {
        self.run(move |mut c| async move {
            let mut pipe = redis::pipe();
            pipe.add_command(read).cmd("PTTL").arg(key);
            pipe.query_async(&mut c).await
        })
        .await
    }

    pub(crate) async fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Result<Vec<Option<u64>>, StoreError> {
        self.tag_versions(tag_keys, life, false).await
    }

    pub(crate) async fn tag_versions_for_load(
        &self,
        tag_keys: &[String],
        life: Duration,
    ) -> Result<Vec<u64>, StoreError> {
        let versions = self.tag_versions(tag_keys, life, true).await?;
        versions
            .into_iter()
            .map(|version| version.ok_or_else(|| unexpected(&Value::Nil)))
            .collect()
    }

    /// The versions of `tag_keys`, kept alive for `life`; missing ones created if `create`.
    async fn tag_versions(
        &self,
        tag_keys: &[String],
        life: Duration,
        create: bool,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let candidates: Vec<String> = if create {
            tag_keys.iter().map(|_| random_u64().to_string()).collect()
        } else {
            Vec::new()
        };
        let candidates = candidates.as_slice();
        let replies: Vec<Option<Vec<u8>>> = self
            .run(|mut c| async move {
                let mut invocation = TAG_VERSIONS.prepare_invoke();
                invocation.key(tag_keys).arg(millis(life)).arg(candidates);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        if replies.len() != tag_keys.len() {
            return Err(unexpected(&Value::Int(i64::try_from(replies.len()).unwrap_or(-1))));
        }
        Ok(replies
            .into_iter()
            .map(|v| v.as_deref().and_then(parse_version))
            .collect())
    }

    pub(crate) async fn bump_tag(&self, tag_key: &str) -> Result<(), StoreError> {
        let version = random_u64().to_string();
        let (version, channel) = (version.as_str(), self.channel.as_str());
        let announcement = Announcement::TagInvalidated {
            origin: self.origin,
            tag_key: tag_key.to_owned(),
        }
        .encode();
        let announcement = announcement.as_slice();
        let _: i64 = self
            .run(|mut c| async move {
                BUMP_TAG
                    .key(tag_key)
                    .arg(version)
                    .arg(millis(TAG_TTL))
                    .arg(channel)
                    .arg(announcement)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    pub(crate) async fn acquire(
        &self,
        lease: &Lease,
        duration: Duration,
        check_value: bool,
    ) -> Result<Acquire, StoreError> {
        let reply: Value = self
            .run(|mut c| async move {
                ACQUIRE
                    .key(&lease.key)
                    .key(&lease.lease_key)
                    .arg(&lease.token)
                    .arg(millis(duration))
                    .arg(u8::from(lease.exclusive))
                    .arg(u8::from(check_value))
                    .arg(DECODE_LIMIT + ENVELOPE_HEADER_ALLOWANCE)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut items = match reply {
            Value::Array(items) => items.into_iter(),
            other => return Err(unexpected(&other)),
        };
        match (items.next(), items.next()) {
            (Some(Value::Int(1)), Some(Value::BulkString(bytes))) => match items.next() {
                Some(Value::Int(pttl)) => timed_entry(Some(bytes), pttl)
                    .map(Acquire::Value)
                    .ok_or_else(|| unexpected(&Value::Int(pttl))),
                other => Err(unexpected(&other.unwrap_or(Value::Nil))),
            },
            (Some(Value::Int(2)), None) => Ok(Acquire::Won),
            (Some(Value::Int(3)), Some(Value::Int(ms))) => Ok(Acquire::Held {
                remaining: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            }),
            (first, _) => Err(unexpected(&first.unwrap_or(Value::Nil))),
        }
    }

    pub(crate) async fn fill(&self, lease: &Lease, bytes: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let channel = self.channel.as_str();
        let announcement = filled(lease);
        let announcement = announcement.as_slice();
        let stored: i64 = self
            .run(|mut c| async move {
                FILL.key(&lease.key)
                    .key(&lease.lease_key)
                    .arg(&lease.token)
                    .arg(bytes)
                    .arg(millis(ttl))
                    .arg(channel)
                    .arg(u8::from(lease.exclusive))
                    .arg(announcement)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(stored == 1)
    }

    pub(crate) async fn clear(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.give_up(&CLEAR, lease).await
    }

    pub(crate) async fn extend(&self, lease: &Lease, duration: Duration) -> Result<bool, StoreError> {
        let extended: i64 = self
            .run(|mut c| async move {
                EXTEND
                    .key(&lease.lease_key)
                    .arg(&lease.token)
                    .arg(millis(duration))
                    .arg(u8::from(lease.exclusive))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(extended == 1)
    }

    pub(crate) async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.give_up(&RELEASE, lease).await
    }

    /// Runs a script that gives `lease` up (`RELEASE`, `CLEAR`); true if it was ours.
    async fn give_up(&self, script: &Script, lease: &Lease) -> Result<bool, StoreError> {
        let channel = self.channel.as_str();
        let announcement = filled(lease);
        let announcement = announcement.as_slice();
        let released: i64 = self
            .run(|mut c| async move {
                script
                    .key(&lease.key)
                    .key(&lease.lease_key)
                    .arg(&lease.token)
                    .arg(channel)
                    .arg(u8::from(lease.exclusive))
                    .arg(announcement)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let channel = self.channel.as_str();
        let (lease_key, fence_key) = (lease_key(key), fence_key(key));
        let announcement = Announcement::Invalidated {
            origin: self.origin,
            key: key.to_owned(),
        }
        .encode();
        let announcement = announcement.as_slice();
        let _deleted: i64 = self
            .run(|mut c| async move {
                DELETE
                    .key(key)
                    .key(&lease_key)
                    .key(&fence_key)
                    .arg(channel)
                    .arg(announcement)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let started = std::time::Instant::now();
        redis::cmd("PING").query_async::<()>(&mut connection).await?;
        // The breaker counts replies slower than half the deadline as failures: a probe
        // that slow would only open it again.
        if self.slow(started.elapsed()) {
            return Err(RedisError::from((
                ErrorKind::Io,
                "redis answers, but slower than half of op_timeout",
            )));
        }
        Ok(connection)
    }
}

/// What an error says about the connection.
enum Health {
    /// Replace the connection now: it is gone, or it talks to a demoted primary.
    Broken,
    /// Counts towards opening the breaker.
    Failing,
    /// About this one command (a script error, `NOPERM`): the connection is fine.
    Fine,
}

fn health(e: &RedisError) -> Health {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::ReadOnly) => Health::Broken,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown,
        ) => Health::Failing,
        _ if e.is_connection_dropped() || e.is_unrecoverable_error() => Health::Broken,
        _ if e.is_io_error() || e.is_timeout() => Health::Failing,
        _ => Health::Fine,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// An entry read with its `PTTL`: -2 (gone by the time of the `PTTL`) is a miss, -1 (no
/// expiry) has no remaining time.
fn timed_entry(bytes: Option<Vec<u8>>, pttl: i64) -> Option<Entry> {
    let bytes = bytes?;
    match pttl {
        -2 => None,
        _ => Some(Entry {
            bytes,
            remaining: u64::try_from(pttl).ok().map(Duration::from_millis),
        }),
    }
}

/// The announcement of a fill or a release of `lease`.
fn filled(lease: &Lease) -> Vec<u8> {
    Announcement::Filled { key: lease.key.clone() }.encode()
}

fn unexpected(reply: &Value) -> StoreError {
    StoreError::Redis(RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from a redis-cached script",
        format!("{reply:?}"),
    )))
}

/// Says why a connection or subscription attempt failed, at most once per interval.
fn log_failed_attempt<T>(
    limit: &RateLimited,
    failed: &Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    timeout: Duration,
    what: &str,
) {
    if let Some(suppressed) = limit.admit() {
        let (error, hint) = match failed {
            Ok(Err(e)) => (e.to_string(), super::hint(e)),
            _ => (format!("no answer within {timeout:?}"), ""),
        };
        tracing::warn!(%error, hint, suppressed, "redis-cached: {what}");
    }
}

/// Sleeps, unless the cache is dropped first (then returns false).
async fn pause(duration: Duration, shutdown: &mut watch::Receiver<()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        _ = shutdown.changed() => false,
    }
}

/// Owns the connection: while the breaker is open, reconnects and probes with backoff.
async fn keep_connected(store: Arc<RedisStore>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let failures_logged = RateLimited::new();
    let mut was_connected = false;
    // After the first connection, every new one also renews the subscription.
    let mut reconnected = false;
    loop {
        if !store.breaker.is_open() {
            tokio::select! {
                () = store.breaker.wait_opened() => continue,
                _ = shutdown.changed() => return,
            }
        }
        // The old connection may be stuck on a hung server or a dead socket: start afresh.
        *store.connection.write().unwrap_or_else(|poison| poison.into_inner()) = None;
        if was_connected {
            tracing::warn!("redis-cached: redis is failing; calls fail open while the cache reconnects");
            was_connected = false;
        }
        match tokio::time::timeout(store.connect_timeout, store.connect()).await {
            Ok(Ok(connection)) => {
                *store.connection.write().unwrap_or_else(|poison| poison.into_inner()) = Some(connection);
                store.generation.fetch_add(1, Ordering::AcqRel);
                store.breaker.close();
                if reconnected {
                    store.reconnects.send_modify(|n| *n += 1);
                }
                reconnected = true;
                backoff = MIN_BACKOFF;
                was_connected = true;
                tracing::info!("redis-cached: connected to redis");
            }
            failed => {
                log_failed_attempt(
                    &failures_logged,
                    &failed,
                    store.connect_timeout,
                    "cannot connect to redis; calls fail open and the cache keeps trying",
                );
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Keeps one subscription to the announcement channel and passes its messages on. A
/// subscription that stops answering its keepalive `PING`, or that predates a reconnect
/// of the command connection, is replaced; while there is none, waiters poll.
async fn keep_subscribed(store: Arc<RedisStore>, wake: Wake, mut shutdown: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let failures_logged = RateLimited::new();
    let silences_logged = RateLimited::new();
    let mut reconnects = store.reconnects.subscribe();
    loop {
        // Reconnects before this subscription is made do not concern it.
        reconnects.borrow_and_update();
        let subscribe = async {
            let mut pubsub = store.client.get_async_pubsub().await?;
            pubsub.subscribe(store.channel.as_str()).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        match tokio::time::timeout(store.connect_timeout, subscribe).await {
            Ok(Ok((mut sink, mut messages))) => {
                backoff = MIN_BACKOFF;
                store.subscriptions.fetch_add(1, Ordering::AcqRel);
                store.subscribed.store(true, Ordering::Release);
                let mut keepalive = tokio::time::interval(SUBSCRIPTION_KEEPALIVE);
                keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => wake.announced(message.get_payload_bytes()),
                            None => break,
                        },
                        _ = keepalive.tick() => {
                            let ping = tokio::time::timeout(store.connect_timeout, sink.ping::<Value>()).await;
                            if !matches!(ping, Ok(Ok(_))) {
                                log_failed_attempt(
                                    &silences_logged,
                                    &ping,
                                    store.connect_timeout,
                                    "the announcement subscription stopped answering; subscribing again",
                                );
                                break;
                            }
                        }
                        _ = reconnects.changed() => break,
                        _ = shutdown.changed() => return,
                    }
                }
                store.subscribed.store(false, Ordering::Release);
            }
            failed => {
                log_failed_attempt(
                    &failures_logged,
                    &failed,
                    store.connect_timeout,
                    "cannot subscribe to fill messages; waiters poll instead",
                );
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
