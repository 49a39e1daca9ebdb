//! Client tracking for the near cache: Redis tells the cache of every write, delete,
//! expiry and eviction of a key under its prefix, by any client (`CLIENT TRACKING ON
//! BCAST PREFIX <prefix> NOLOOP` over RESP3).
//!
//! Broadcast mode, on a connection of its own to each master: the cache's reads go on
//! multiplexed connections that redis-rs replaces on its own, which would lose per-key
//! tracking (redis-rs does not restore it) and with it the record of what was read.
//! A tracking connection only listens, so it is replaced only here, and each new one
//! starts tracking afresh. Broadcast also needs no memory on the server for the keys
//! each client holds.
//!
//! The pushes are handled where redis-rs delivers them, without a channel: they bump
//! counters and evict entries, which never waits. A `Disconnection` push, a connection
//! that stops answering `PING`, or a change in the set of masters (a failover, a new
//! master) ends the round: the near cache is cleared and stops serving ([`Tracked::lost`])
//! until tracking is on again at every master ([`Tracked::resumed`]).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::Limits;
use super::masters::Masters;
use super::supervise::{log_failed_attempt, pause};
use crate::backoff::Backoff;
use crate::log::RateLimited;

/// How often the tracking connections are checked, and the masters asked for again.
/// The longest a failover that lost no connection (a graceful one) can go unnoticed.
const TRACKING_CHECK: Duration = Duration::from_millis(250);

/// How long tracking must stay up before a new loss is retried without delay.
const STABLE: Duration = Duration::from_secs(1);

/// How long a passed check vouches for tracking: a `PING` answered on every tracking
/// connection proves that every message sent before it was handled. With no check
/// passed for this long (failing, slow, or starved of the runtime), the near cache
/// serves nothing: the bound on a silent connection, whatever `connect_timeout` is.
const TRACKING_LEASE: Duration = Duration::from_secs(1);

/// What tracking tells the near cache.
pub(crate) trait Tracked: Send + Sync + 'static {
    /// A key under the prefix changed (a full key, or a tag's key).
    fn invalidated(&self, key: &[u8]);
    /// Every key may have changed (`FLUSHALL`, `FLUSHDB`).
    fn flushed(&self);
    /// Tracking stopped at some master: serve nothing and keep nothing until `resumed`.
    fn lost(&self);
    /// Tracking is on at every master.
    fn resumed(&self);
    /// Every message sent before `until - TRACKING_LEASE` has been handled: serve
    /// until `until`, unless confirmed again.
    fn confirmed(&self, until: std::time::Instant);
}

/// Keeps tracking on at every master of `topology` for keys under `prefix`, telling
/// `near`, until `shutdown`'s sender drops.
pub(crate) fn start<M: Masters>(
    topology: Arc<M>,
    prefix: String,
    near: Arc<dyn Tracked>,
    limits: &Limits,
    shutdown: &watch::Sender<()>,
) {
    let rounds = Rounds {
        topology,
        prefix,
        near,
        timeout: limits.connect_timeout,
    };
    tokio::spawn(keep_tracking(rounds, shutdown.subscribe()));
}

struct Rounds<M> {
    topology: Arc<M>,
    prefix: String,
    near: Arc<dyn Tracked>,
    /// The deadline of one attempt, and of one check.
    timeout: Duration,
}

/// The tracking connections of one round, by master.
struct Round {
    masters: Vec<(String, MultiplexedConnection)>,
    /// Notified when one of them drops.
    dropped: Arc<Notify>,
}

async fn keep_tracking<M: Masters>(rounds: Rounds<M>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = Backoff::new();
    let failures_logged = RateLimited::new();
    let losses_logged = RateLimited::new();
    loop {
        rounds.near.lost();
        // Not connected (yet): the topology says why; tracking waits quietly.
        let Ok(masters) = rounds.topology.masters().await else {
            if !pause(&mut backoff, &mut shutdown).await {
                return;
            }
            continue;
        };
        let began = std::time::Instant::now();
        let round = match tokio::time::timeout(rounds.timeout, rounds.begin(&masters)).await {
            Ok(Ok(round)) => round,
            failed => {
                log_failed_attempt(
                    &failures_logged,
                    &failed,
                    rounds.timeout,
                    "cannot turn on client tracking; the near cache is bypassed until it can",
                );
                if !pause(&mut backoff, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        rounds.near.confirmed(began + TRACKING_LEASE);
        rounds.near.resumed();
        let up = Instant::now();
        let mut reconnects = rounds.topology.reconnects();
        loop {
            tokio::select! {
                () = round.dropped.notified() => break,
                () = tokio::time::sleep(TRACKING_CHECK) => {}
                // A closed channel (the default) never changes: wait on the others.
                Ok(()) = reconnects.changed() => {}
                _ = shutdown.changed() => return,
            }
            if !rounds.holds(&round).await {
                break;
            }
        }
        // At once: the pause before the next round must not serve what tracking no
        // longer covers.
        rounds.near.lost();
        if let Some(suppressed) = losses_logged.admit() {
            tracing::warn!(
                suppressed,
                "redis-cached: client tracking was lost; the near cache is cleared and bypassed until it is back"
            );
        }
        if up.elapsed() >= STABLE {
            backoff.reset();
        } else if !pause(&mut backoff, &mut shutdown).await {
            return;
        }
    }
}

impl<M: Masters> Rounds<M> {
    /// Turns tracking on at every one of `masters`, each on a new connection.
    async fn begin(&self, masters: &[Client]) -> Result<Round, RedisError> {
        let dropped = Arc::new(Notify::new());
        let connections = masters.iter().map(|master| self.track(master, dropped.clone()));
        let connections = try_join_all(connections).await?;
        Ok(Round {
            masters: masters.iter().map(address).zip(connections).collect(),
            dropped,
        })
    }

    /// A RESP3 connection to `master` whose pushes go to the near cache, with tracking on.
    async fn track(&self, master: &Client, dropped: Arc<Notify>) -> Result<MultiplexedConnection, RedisError> {
        let info = master.get_connection_info().clone();
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))?;
        let near = self.near.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(None)
            .set_push_sender(move |push: PushInfo| {
                heard(&*near, &dropped, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        let mut on = redis::cmd("CLIENT");
        on.arg("TRACKING").arg("ON").arg("BCAST");
        if !self.prefix.is_empty() {
            on.arg("PREFIX").arg(&self.prefix);
        }
        on.arg("NOLOOP");
        if let Err(e) = on.query_async::<()>(&mut connection).await {
            // Turning it on twice is an error ("prefix overlaps"): then it is on.
            if !self.tracking_already(&mut connection).await {
                return Err(e);
            }
        }
        Ok(connection)
    }

    /// Whether `connection` already tracks the prefix in broadcast mode.
    async fn tracking_already(&self, connection: &mut MultiplexedConnection) -> bool {
        let info = redis::cmd("CLIENT")
            .arg("TRACKINGINFO")
            .query_async::<Value>(connection)
            .await;
        let Ok(Value::Map(fields)) = info else {
            return false;
        };
        let text = |value: &Value| match value {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            _ => String::new(),
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(key, _)| text(key) == name)
                .map(|(_, value)| match value {
                    Value::Array(items) | Value::Set(items) => items.iter().map(text).collect(),
                    other => vec![text(other)],
                })
                .unwrap_or_default()
        };
        let flags = field("flags");
        flags.iter().any(|flag| flag == "bcast") && field("prefixes").contains(&self.prefix)
    }

    /// Whether `round` still tracks every master: each connection answers (so every
    /// message sent before has been handled, which confirms tracking), and the masters
    /// are the same.
    async fn holds(&self, round: &Round) -> bool {
        let sent = std::time::Instant::now();
        let check = async {
            let masters = self.topology.masters().await?;
            let mut now: Vec<String> = masters.iter().map(address).collect();
            let mut tracked: Vec<String> = round.masters.iter().map(|(address, _)| address.clone()).collect();
            now.sort();
            tracked.sort();
            if now != tracked {
                return Ok(false);
            }
            let pings = round.masters.iter().map(|(_, connection)| async move {
                redis::cmd("PING").query_async::<()>(&mut connection.clone()).await
            });
            try_join_all(pings).await?;
            Ok::<_, RedisError>(true)
        };
        let holds = matches!(tokio::time::timeout(self.timeout, check).await, Ok(Ok(true)));
        if holds {
            self.near.confirmed(sent + TRACKING_LEASE);
        }
        holds
    }
}

/// Hands one push to the near cache.
fn heard(near: &dyn Tracked, dropped: &Notify, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(Value::Array(keys)) => {
                for key in keys {
                    if let Value::BulkString(key) = key {
                        near.invalidated(key);
                    }
                }
            }
            // Nil: every key (a flush).
            _ => near.flushed(),
        },
        PushKind::Disconnection => dropped.notify_one(),
        _ => {}
    }
}

/// A master's address, to compare the masters of two moments.
fn address(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}
