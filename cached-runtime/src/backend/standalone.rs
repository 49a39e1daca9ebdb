//! A standalone Redis server (or a primary behind a proxy).
//!
//! One multiplexed connection serves every call. Each operation carries the cache's own
//! deadline (`op_timeout`); redis-rs's response timeout is off so a hit arms one timer,
//! not two. A background task owns (re)connecting: while the breaker is open it drops
//! the suspect connection, connects afresh and `PING`s with a growing backoff, and
//! closes the breaker when Redis answers. A second task keeps the fill subscription.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};
use tokio::sync::watch;

use super::{Acquire, LeaseRequest, StoreError};
use crate::breaker::Breaker;
use crate::fills::FillWaiters;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Reconnect attempts never wait longer than this, so hits resume well within a second.
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// Returns the value if present; else takes the lease (`NX` under `lock`).
/// KEYS: value, lease. ARGV: token, lease ms, exclusive (1/0), check value (1/0).
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[4] == '1' then
  local v = redis.call('GET', KEYS[1])
  if v then return {1, v} end
end
if ARGV[3] == '1' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
  return {3, redis.call('PTTL', KEYS[2])}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {2}
",
    )
});

/// The fenced fill. KEYS: value, lease. ARGV: token, bytes, ttl ms, fills channel.
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[4], KEYS[1])
return 1
",
    )
});

/// KEYS: lease. ARGV: token, lease ms.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
",
    )
});

/// KEYS: value, lease. ARGV: token, fills channel. Waiters hear of it and ask again.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
",
    )
});

/// Invalidation. KEYS: value, lease. ARGV: fills channel.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], KEYS[1])
return deleted
",
    )
});

#[derive(Debug)]
pub(crate) struct RedisStore {
    client: Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    breaker: Breaker,
    op_timeout: Duration,
    connect_timeout: Duration,
    channel: String,
    subscribed: AtomicBool,
}

impl RedisStore {
    /// Starts the store and its background tasks; they end when `shutdown`'s sender drops.
    pub(crate) fn start(
        client: Client,
        op_timeout: Duration,
        connect_timeout: Duration,
        channel: String,
        fills: Arc<FillWaiters>,
        shutdown: &watch::Sender<()>,
    ) -> Arc<Self> {
        let store = Arc::new(Self {
            client,
            connection: RwLock::new(None),
            breaker: Breaker::new_open(),
            op_timeout,
            connect_timeout,
            channel,
            subscribed: AtomicBool::new(false),
        });
        tokio::spawn(keep_connected(store.clone(), shutdown.subscribe()));
        tokio::spawn(keep_subscribed(store.clone(), fills, shutdown.subscribe()));
        store
    }

    /// Waits (at most the connect timeout) for the first connection, so a cache built
    /// while Redis is up starts with hits; one built while it is down starts failing open.
    pub(crate) async fn first_connection(&self) {
        let _ = tokio::time::timeout(self.connect_timeout, self.breaker.wait_closed()).await;
    }

    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        if self.breaker.is_open() {
            return None;
        }
        self.connection
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Runs one operation under the cache's deadline and feeds the breaker.
    async fn run<T, F>(&self, op: impl FnOnce(MultiplexedConnection) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, RedisError>>,
    {
        let Some(connection) = self.connection() else {
            return Err(StoreError::Skipped);
        };
        match tokio::time::timeout(self.op_timeout, op(connection)).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Ok(value)
            }
            Ok(Err(e)) => {
                if e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.breaker.trip();
                } else if e.is_io_error() || e.is_timeout() {
                    self.breaker.record_failure();
                }
                Err(StoreError::Redis(e))
            }
            Err(_elapsed) => {
                self.breaker.record_failure();
                Err(StoreError::Timeout(self.op_timeout))
            }
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }

    pub(crate) async fn acquire(&self, request: LeaseRequest<'_>) -> Result<Acquire, StoreError> {
        let reply: Value = self
            .run(|mut c| async move {
                ACQUIRE
                    .key(request.key)
                    .key(request.lease_key)
                    .arg(request.token)
                    .arg(millis(request.lease))
                    .arg(u8::from(request.exclusive))
                    .arg(u8::from(request.check_value))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut items = match reply {
            Value::Array(items) => items.into_iter(),
            other => return Err(unexpected(&other)),
        };
        match (items.next(), items.next()) {
            (Some(Value::Int(1)), Some(Value::BulkString(bytes))) => Ok(Acquire::Value(bytes)),
            (Some(Value::Int(2)), None) => Ok(Acquire::Won),
            (Some(Value::Int(3)), Some(Value::Int(ms))) => Ok(Acquire::Held {
                remaining: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            }),
            (first, _) => Err(unexpected(&first.unwrap_or(Value::Nil))),
        }
    }

    pub(crate) async fn fill(
        &self,
        key: &str,
        lease_key: &str,
        token: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let channel = self.channel.as_str();
        let stored: i64 = self
            .run(|mut c| async move {
                FILL.key(key)
                    .key(lease_key)
                    .arg(token)
                    .arg(bytes)
                    .arg(millis(ttl))
                    .arg(channel)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(stored == 1)
    }

    pub(crate) async fn extend(&self, lease_key: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
        let extended: i64 = self
            .run(|mut c| async move {
                EXTEND
                    .key(lease_key)
                    .arg(token)
                    .arg(millis(lease))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(extended == 1)
    }

    pub(crate) async fn release(&self, key: &str, lease_key: &str, token: &str) -> Result<(), StoreError> {
        let channel = self.channel.as_str();
        let _released: i64 = self
            .run(|mut c| async move {
                RELEASE
                    .key(key)
                    .key(lease_key)
                    .arg(token)
                    .arg(channel)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &str, lease_key: &str) -> Result<(), StoreError> {
        let channel = self.channel.as_str();
        let _deleted: i64 = self
            .run(|mut c| async move { DELETE.key(key).key(lease_key).arg(channel).invoke_async(&mut c).await })
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
        redis::cmd("PING").query_async::<()>(&mut connection).await?;
        Ok(connection)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unexpected(reply: &Value) -> StoreError {
    StoreError::Redis(RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply from a redis-cached script",
        format!("{reply:?}"),
    )))
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
    let mut was_connected = false;
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
                store.breaker.close();
                backoff = MIN_BACKOFF;
                was_connected = true;
                tracing::info!("redis-cached: connected to redis");
            }
            Ok(Err(_)) | Err(_) => {
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Keeps one subscription to the fills channel and wakes this process's waiters.
async fn keep_subscribed(store: Arc<RedisStore>, fills: Arc<FillWaiters>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let subscribe = async {
            let mut pubsub = store.client.get_async_pubsub().await?;
            pubsub.subscribe(store.channel.as_str()).await?;
            Ok::<_, RedisError>(pubsub)
        };
        match tokio::time::timeout(store.connect_timeout, subscribe).await {
            Ok(Ok(pubsub)) => {
                backoff = MIN_BACKOFF;
                store.subscribed.store(true, Ordering::Relaxed);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Ok(key) = std::str::from_utf8(message.get_payload_bytes()) {
                                    fills.notify(key);
                                }
                            }
                            None => break,
                        },
                        _ = shutdown.changed() => return,
                    }
                }
                store.subscribed.store(false, Ordering::Relaxed);
            }
            Ok(Err(_)) | Err(_) => {
                if !pause(backoff, &mut shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
