//! A standalone Redis server (or a primary behind a proxy): how the cache connects to
//! it and keeps that connection healthy. The operations themselves are in
//! `redis_store`.
//!
//! One multiplexed connection serves every call. redis-rs's response timeout is off, so
//! a hit arms one timer (the cache's own deadline), not two. A background task owns
//! (re)connecting: while the breaker is open it drops the suspect connection, connects
//! afresh and probes it (`ROLE`, which also lists the replicas) with a growing backoff,
//! and closes the breaker when Redis answers. A second task keeps the announcement
//! subscription. Invalidations go on a second connection, made with the first: their
//! `WAIT` blocks it (see `redis_store`).
//!
//! Where the server is comes from a [`Locate`]: a fixed client for a plain URL, or a
//! question to the sentinels at each (re)connect (`sentinel.rs`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::watch;
use tokio::time::error::Elapsed;

use super::hint;
use super::masters::Masters;
use super::redis_store::{Topology, Verdict, verdict};
use super::replication::{Durability, Replicas, Role};
use super::subscription::{Subscribe, Subscription, keep_subscribed};
use super::supervise::{count_failed_connect, log_failed_attempt, pause};
use super::{Limits, Supervision};
use crate::backoff::Backoff;
use crate::breaker::Breaker;
use crate::log::{RateLimited, WarnOnce};
use crate::stats::Counters;
use crate::sync::{read, write};

/// Where the server to connect to is, asked again at each (re)connect.
pub(crate) trait Locate: fmt::Debug + Send + Sync + 'static {
    /// The client of the server to use now.
    fn locate(&self) -> impl Future<Output = Result<Client, RedisError>> + Send;

    /// Whether a server must say (`ROLE`) that it is a master before it is used.
    fn needs_master(&self) -> bool;
}

/// A plain URL: always the same server, whatever its role (it may be behind a proxy).
impl Locate for Client {
    async fn locate(&self) -> Result<Client, RedisError> {
        Ok(self.clone())
    }

    fn needs_master(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub(crate) struct Standalone<L = Client> {
    locator: L,
    /// The client of the server connected to last (`None` before the first connection):
    /// the announcement subscription follows it.
    client: RwLock<Option<Client>>,
    connection: RwLock<Option<MultiplexedConnection>>,
    /// The connection invalidations are sent on (with a `WAIT` that blocks it).
    invalidations: RwLock<Option<MultiplexedConnection>>,
    /// Whether the master has replicas that must acknowledge invalidations.
    replicas: Replicas,
    /// Bumped with every new connection: failures of an older one do not count.
    generation: AtomicU64,
    breaker: Breaker,
    /// Counts reconnects; the subscription starts afresh after one (it may be stuck
    /// too). A value, not a stored permit: a subscription made after the reconnect is
    /// not torn down by it.
    reconnects: watch::Sender<u64>,
    limits: Limits,
    subscription: Arc<Subscription>,
    /// Said once: the server refuses `ROLE`.
    role_refused: WarnOnce,
    /// The cache's counters: a failed connection attempt counts as an error.
    counters: Arc<Counters>,
}

impl<L: Locate> Standalone<L> {
    /// Starts supervising the server `locator` finds; announcements heard on the
    /// supervision's channel go to its listener. The background tasks end when
    /// `shutdown`'s sender drops.
    pub(crate) fn start(locator: L, supervision: Supervision, shutdown: &watch::Sender<()>) -> Arc<Self> {
        let Supervision {
            limits,
            channel,
            listener,
            counters,
        } = supervision;
        let standalone = Arc::new(Self {
            locator,
            client: RwLock::new(None),
            connection: RwLock::new(None),
            invalidations: RwLock::new(None),
            replicas: Replicas::default(),
            generation: AtomicU64::new(0),
            breaker: Breaker::new_open(),
            reconnects: watch::Sender::new(0),
            limits,
            subscription: Arc::default(),
            role_refused: WarnOnce::new(),
            counters,
        });
        tokio::spawn(keep_connected(standalone.clone(), shutdown.subscribe()));
        let located = standalone.clone();
        let subscribe = Subscribe {
            connect: move || {
                let located = located.clone();
                async move {
                    let current = read(&located.client).clone();
                    let client = match current {
                        Some(client) => client,
                        None => located.locator.locate().await?,
                    };
                    client.get_async_pubsub().await
                }
            },
            channel,
            state: standalone.subscription.clone(),
            reconnects: standalone.reconnects.subscribe(),
            timeout: standalone.limits.connect_timeout,
            listener,
        };
        tokio::spawn(keep_subscribed(subscribe, shutdown.subscribe()));
        standalone
    }

    /// Waits (at most the connect timeout) for the first connection, so a cache built
    /// while Redis is up starts with hits; one built while it is down starts failing open.
    pub(crate) async fn first_connection(&self) {
        let _ = tokio::time::timeout(self.limits.connect_timeout, self.breaker.wait_closed()).await;
    }

    /// A reply slower than half the deadline: the breaker counts it as a failure.
    fn slow(&self, took: Duration) -> bool {
        took > self.limits.op_timeout / 2
    }

    /// Replaces the connection now, asking the locator again where the server is.
    pub(crate) fn reconnect(&self) {
        self.breaker.trip();
    }

    /// The client of the server connected to last.
    pub(crate) fn current_client(&self) -> Option<Client> {
        read(&self.client).clone()
    }

    /// Where the server is found.
    pub(crate) fn locator(&self) -> &L {
        &self.locator
    }

    /// Finds the server, connects and probes it, each step within the connect timeout.
    async fn connect(&self) -> Result<Result<Connected, RedisError>, Elapsed> {
        let client = match self.locator.locate().await {
            Ok(client) => client,
            Err(e) => return Ok(Err(e)),
        };
        let connection = tokio::time::timeout(self.limits.connect_timeout, self.connect_to(&client)).await;
        if matches!(connection, Ok(Ok(_))) {
            *write(&self.client) = Some(client);
        }
        connection
    }

    /// Connects to `client`'s server and probes it with `ROLE`, which also says how many
    /// replicas it has.
    async fn connect_to(&self, client: &Client) -> Result<Connected, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.limits.connect_timeout))
            .set_response_timeout(None);
        let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        let started = Instant::now();
        let role = match redis::cmd("ROLE").query_async(&mut connection).await {
            Ok(reply) => Some(Role::read(&reply)),
            // A proxy without `ROLE`, or a user not granted it: a plain URL's server is
            // used as before, its invalidations unconfirmed by a replica.
            Err(e) if !self.locator.needs_master() && verdict(&e) == Verdict::Neutral => {
                if self.role_refused.first() {
                    tracing::warn!(
                        error = %e,
                        hint = hint(&e),
                        "redis-cached: the server refuses ROLE; invalidations are not checked to reach a master \
                         nor waited for by a replica"
                    );
                }
                redis::cmd("PING").query_async::<()>(&mut connection).await?;
                None
            }
            Err(e) => return Err(e),
        };
        if self.locator.needs_master() && role == Some(Role::Other) {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the server the sentinels named is not a master (yet)",
            )));
        }
        // The breaker counts replies slower than half the deadline as failures: a probe
        // that slow would only open it again.
        if self.slow(started.elapsed()) {
            return Err(RedisError::from((
                ErrorKind::Io,
                "redis answers, but slower than half of op_timeout",
            )));
        }
        let invalidations = client.get_multiplexed_async_connection_with_config(&config).await?;
        Ok(Connected {
            connection,
            invalidations,
            replicas: role.map(Role::replicas),
        })
    }
}

/// A new connection, with the one for invalidations, to a server with this many replicas
/// (`None`: it refused `ROLE`).
struct Connected {
    connection: MultiplexedConnection,
    invalidations: MultiplexedConnection,
    replicas: Option<usize>,
}

impl<L: Locate> Topology for Standalone<L> {
    type Connection = MultiplexedConnection;
    /// The connection's generation.
    type Ticket = u64;

    const CROSS_SLOT: bool = true;

    fn connection(&self, _key: &str) -> Option<(MultiplexedConnection, u64)> {
        if self.breaker.is_open() {
            return None;
        }
        let connection = read(&self.connection).clone()?;
        Some((connection, self.generation.load(Ordering::Acquire)))
    }

    fn record(&self, generation: &u64, verdict: Verdict) {
        // A late failure on a connection that was already replaced says nothing about
        // Redis now.
        let current = self.generation.load(Ordering::Acquire) == *generation;
        match verdict {
            Verdict::Healthy => self.breaker.record_success(),
            Verdict::Failing if current => {
                self.breaker.record_failure();
            }
            Verdict::Broken if current => {
                self.breaker.trip();
            }
            Verdict::Failing | Verdict::Broken | Verdict::Neutral => {}
        }
    }

    fn invalidation_connection(&self, _key: &str) -> Option<(MultiplexedConnection, u64, Durability)> {
        if self.breaker.is_open() {
            return None;
        }
        let connection = read(&self.invalidations).clone()?;
        Some((
            connection,
            self.generation.load(Ordering::Acquire),
            self.replicas.durability(),
        ))
    }

    fn saw_replicas(&self, generation: &u64, replicas: usize) {
        if self.generation.load(Ordering::Acquire) == *generation {
            self.replicas.saw(replicas);
        }
    }

    fn announcements(&self) -> Option<u64> {
        self.subscription.current()
    }

    fn reachable(&self) -> bool {
        !self.breaker.is_open()
    }
}

/// The server connected to last: tracking follows the connection, to the new master
/// after a failover.
impl<L: Locate> Masters for Standalone<L> {
    async fn masters(&self) -> Result<Vec<Client>, RedisError> {
        match self.current_client() {
            Some(client) => Ok(vec![client]),
            None => Err(RedisError::from((ErrorKind::Io, "not connected to redis yet"))),
        }
    }

    fn reconnects(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }
}

/// Owns the connection: while the breaker is open, reconnects and probes with backoff.
async fn keep_connected<L: Locate>(store: Arc<Standalone<L>>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = Backoff::new();
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
        *write(&store.connection) = None;
        *write(&store.invalidations) = None;
        if was_connected {
            tracing::warn!("redis-cached: redis is failing; calls fail open while the cache reconnects");
            was_connected = false;
        }
        match store.connect().await {
            Ok(Ok(connected)) => {
                *write(&store.connection) = Some(connected.connection);
                *write(&store.invalidations) = Some(connected.invalidations);
                store.replicas.connected(connected.replicas);
                store.generation.fetch_add(1, Ordering::AcqRel);
                store.breaker.close();
                if reconnected {
                    store.reconnects.send_modify(|n| *n += 1);
                }
                reconnected = true;
                backoff.reset();
                was_connected = true;
                tracing::info!("redis-cached: connected to redis");
            }
            failed => {
                count_failed_connect(&store.counters);
                log_failed_attempt(
                    &failures_logged,
                    &failed,
                    store.limits.connect_timeout,
                    "cannot connect to redis; calls fail open and the cache keeps trying",
                );
                if !pause(&mut backoff, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}
