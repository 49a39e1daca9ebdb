//! A Redis Cluster: how the cache connects to it and keeps each shard's connection
//! healthy. The operations themselves are in `redis_store`.
//!
//! One redis-rs cluster connection serves every call, and a second every invalidation
//! (whose `WAIT` blocks the connection it is sent on); each routes an operation to the
//! master of its key's slot and follows `MOVED` and `ASK`. The cache also keeps its own
//! map of which master serves each slot, for one reason: a breaker per shard. A dead or
//! hung shard opens only its own breaker, so its keys fail open at once while the other
//! shards keep serving hits (a breaker for the whole cluster would turn every key into
//! a miss when one shard of several failed).
//!
//! When a shard's breaker opens, the background task builds a fresh cluster connection
//! and reads the slots anew. redis-rs's own connection never learns new slots from a
//! timeout, and a hung master never answers `MOVED`: after its replica is promoted, the
//! old connection would keep timing out against it. The task retries (with backoff)
//! until every shard that serves slots answers, so hits resume once the cluster has
//! promoted a replica. Announcements travel by classic `PUBLISH`, which a cluster
//! forwards to every node: the subscription listens on any seed node that answers.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::{Notify, watch};

mod slots;

use slots::{Shard, SlotMap};

use super::masters::Masters;
use super::redis_store::{Topology, Verdict};
use super::replication::Durability;
use super::subscription::{Subscribe, Subscription, keep_subscribed};
use super::supervise::{count_failed_connect, log_failed_attempt, pause};
use super::{Limits, Supervision};
use crate::backoff::Backoff;
use crate::log::RateLimited;
use crate::stats::Counters;
use crate::sync::{read, write};

/// How long the cluster must stay healthy before a new failure is retried without delay.
const STABLE: Duration = Duration::from_secs(1);

/// How often the slot map is read again while all is well, so breakers follow a
/// resharding or a failover that the cache did not notice by failing.
const SLOT_REFRESH: Duration = Duration::from_secs(5);

/// Makes a client of the node at a host and port, with the seeds' scheme, credentials
/// and TLS settings.
pub(crate) type NodeClient = Box<dyn Fn(&str, u16) -> Option<Client> + Send + Sync>;

pub(crate) struct Cluster {
    client: ClusterClient,
    /// One client per seed node, for the subscription.
    seeds: Vec<Client>,
    /// Clients of the masters the slot map names: for probes, and for the subscription
    /// when no seed answers.
    node_client: NodeClient,
    state: RwLock<Option<Arc<Connected>>>,
    /// Wakes the background task when a shard's breaker opens.
    trouble: Notify,
    /// True once the cache has been connected.
    connected: watch::Sender<bool>,
    limits: Limits,
    subscription: Arc<Subscription>,
    /// Never changes: the subscription has its own node and keepalive. Kept so its
    /// receiver does not report a change at once, which would renew it in a loop.
    reconnects: watch::Sender<u64>,
    /// The cache's counters: a failed connection attempt counts as an error.
    counters: Arc<Counters>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = read(&self.state).clone();
        f.debug_struct("Cluster")
            .field("seeds", &self.seeds.len())
            .field("shards", &state.as_ref().map(|state| state.slots.shards.len()))
            .finish_non_exhaustive()
    }
}

/// A cluster connection and the slot map read with it.
struct Connected {
    connection: ClusterConnection,
    /// Invalidations' own: their `WAIT` blocks the connection it is sent on.
    invalidations: ClusterConnection,
    slots: SlotMap,
    /// Bumped with every new connection: failures on an older one do not count.
    generation: u64,
}

/// What an operation's outcome is recorded against.
#[derive(Debug)]
pub(crate) struct Ticket {
    generation: u64,
    shard: Arc<Shard>,
}

impl Cluster {
    /// Starts supervising the cluster behind `client`; `seeds` (clients of the seed
    /// nodes) serve the subscription, whose announcements go to the supervision's
    /// listener. The background tasks end when `shutdown`'s sender drops.
    pub(crate) fn start(
        client: ClusterClient,
        seeds: Vec<Client>,
        node_client: NodeClient,
        supervision: Supervision,
        shutdown: &watch::Sender<()>,
    ) -> Arc<Self> {
        let Supervision {
            limits,
            channel,
            listener,
            counters,
        } = supervision;
        let cluster = Arc::new(Self {
            client,
            seeds,
            node_client,
            state: RwLock::new(None),
            trouble: Notify::new(),
            connected: watch::Sender::new(false),
            limits,
            subscription: Arc::default(),
            reconnects: watch::Sender::new(0),
            counters,
        });
        tokio::spawn(keep_connected(cluster.clone(), shutdown.subscribe()));
        let (candidates, next) = (cluster.clone(), AtomicUsize::new(0));
        let subscribe = Subscribe {
            // A node that fails is passed over for the next at the next attempt.
            connect: move || {
                let node = candidates.subscription_node(next.fetch_add(1, Ordering::Relaxed));
                async move {
                    match node {
                        Some(node) => node.get_async_pubsub().await,
                        None => Err(RedisError::from((ErrorKind::Io, "no node to subscribe on"))),
                    }
                }
            },
            channel,
            state: cluster.subscription.clone(),
            reconnects: cluster.reconnects.subscribe(),
            timeout: cluster.limits.connect_timeout,
            listener,
        };
        tokio::spawn(keep_subscribed(subscribe, shutdown.subscribe()));
        cluster
    }

    /// The `n`th node to subscribe on, counting the seeds, then the masters the slot map
    /// names (which serve when no seed answers any more).
    fn subscription_node(&self, n: usize) -> Option<Client> {
        let shards = self
            .current()
            .map(|state| state.slots.shards.clone())
            .unwrap_or_default();
        let n = n % (self.seeds.len() + shards.len()).max(1);
        match self.seeds.get(n) {
            Some(seed) => Some(seed.clone()),
            None => {
                let shard = shards.get(n - self.seeds.len())?;
                (self.node_client)(&shard.host, shard.port)
            }
        }
    }

    /// Waits (at most the connect timeout) for the first connection, so a cache built
    /// while the cluster is up starts with hits.
    pub(crate) async fn first_connection(&self) {
        let mut connected = self.connected.subscribe();
        let _ = tokio::time::timeout(self.limits.connect_timeout, connected.wait_for(|up| *up)).await;
    }

    fn current(&self) -> Option<Arc<Connected>> {
        read(&self.state).clone()
    }

    /// A fresh cluster connection and its slot map; shards already known keep their
    /// breakers, and those open are probed.
    /// Each step has its deadline: building a connection can hang (redis-rs issue 1953).
    async fn rebuild(&self) -> Result<(), RedisError> {
        let connect = || async {
            tokio::time::timeout(self.limits.connect_timeout * 2, self.client.get_async_connection())
                .await
                .map_err(|_| timed_out("connecting to the cluster"))?
        };
        let (connection, invalidations) = tokio::try_join!(connect(), connect())?;
        let previous = self.current();
        let generation = previous.as_ref().map_or(0, |state| state.generation + 1);
        self.install(connection, invalidations, generation, previous.as_deref())
            .await
    }

    /// Reads the slots with `connection` and makes it the one calls use.
    async fn install(
        &self,
        mut connection: ClusterConnection,
        invalidations: ClusterConnection,
        generation: u64,
        previous: Option<&Connected>,
    ) -> Result<(), RedisError> {
        let (reply, answered_by) = self.read_slots(&mut connection, previous).await?;
        let slots = SlotMap::read(&reply, &answered_by, previous.map(|state| &state.slots))?;
        for shard in slots.shards.iter().filter(|shard| shard.breaker.is_open()) {
            if self.answers(shard).await {
                shard.breaker.close();
            }
        }
        *write(&self.state) = Some(Arc::new(Connected {
            connection,
            invalidations,
            slots,
            generation,
        }));
        Ok(())
    }

    /// A `CLUSTER SLOTS` reply, and the host of the node that gave it (a reply may leave
    /// a master's host out, meaning that node's own): asked of each known node in turn,
    /// the masters of the last map first, then the seeds.
    async fn read_slots(
        &self,
        connection: &mut ClusterConnection,
        previous: Option<&Connected>,
    ) -> Result<(Value, String), RedisError> {
        let known = previous.into_iter().flat_map(|state| &state.slots.shards);
        let mut nodes: Vec<(String, u16)> = known.map(|shard| (shard.host.clone(), shard.port)).collect();
        nodes.extend(
            self.seeds
                .iter()
                .filter_map(|seed| address(seed.get_connection_info().addr())),
        );
        let mut failure = timed_out("reading the cluster's slots");
        for (host, port) in nodes {
            let node = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            });
            let mut slots = redis::cmd("CLUSTER");
            slots.arg("SLOTS");
            match tokio::time::timeout(self.limits.op_timeout, connection.route_command(slots, node)).await {
                Ok(Ok(reply)) => match reply.extract_error() {
                    Ok(reply) => return Ok((reply, host)),
                    Err(e) => failure = e,
                },
                Ok(Err(e)) => failure = e,
                Err(_) => {}
            }
        }
        Err(failure)
    }

    /// Whether `shard` answers a `PING` in good time.
    /// On a connection of its own: on the cluster connection, a request to a hung node
    /// held up every request for about a second (redis-rs 1.8.1), healthy shards' too,
    /// which opened their breakers as well.
    async fn answers(&self, shard: &Shard) -> bool {
        let Some(node) = (self.node_client)(&shard.host, shard.port) else {
            return false;
        };
        let probe = async {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.limits.connect_timeout))
                .set_response_timeout(None);
            let mut connection = node.get_multiplexed_async_connection_with_config(&config).await?;
            let started = Instant::now();
            redis::cmd("PING").query_async::<()>(&mut connection).await?;
            Ok::<_, RedisError>(started.elapsed())
        };
        // The breaker counts replies slower than half the deadline as failures.
        let within = self.limits.op_timeout / 2;
        matches!(tokio::time::timeout(self.limits.connect_timeout, probe).await, Ok(Ok(took)) if took <= within)
    }

    /// Reads the slot map again on the current connection (a resharding moves slots
    /// without any failure).
    async fn refresh(&self) -> Result<(), RedisError> {
        let Some(state) = self.current() else {
            return Ok(());
        };
        self.install(
            state.connection.clone(),
            state.invalidations.clone(),
            state.generation,
            Some(&state),
        )
        .await
    }

    /// Whether a shard that serves slots has its breaker open.
    fn any_shard_open(&self) -> bool {
        self.current()
            .is_none_or(|state| state.slots.shards.iter().any(|shard| shard.breaker.is_open()))
    }
}

/// The masters `CLUSTER SLOTS` names now, asked afresh: the cache's own map is read
/// again only every few seconds, or when a shard fails.
impl Masters for Cluster {
    async fn masters(&self) -> Result<Vec<Client>, RedisError> {
        let state = self
            .current()
            .ok_or_else(|| RedisError::from((ErrorKind::Io, "not connected to the cluster yet")))?;
        let (reply, answered_by) = self.read_slots(&mut state.connection.clone(), Some(&state)).await?;
        let slots = SlotMap::read(&reply, &answered_by, Some(&state.slots))?;
        slots
            .shards
            .iter()
            .map(|shard| {
                (self.node_client)(&shard.host, shard.port)
                    .ok_or_else(|| RedisError::from((ErrorKind::Client, "a master's url cannot be made")))
            })
            .collect()
    }
}

impl Topology for Cluster {
    type Connection = ClusterConnection;
    type Ticket = Ticket;

    const CROSS_SLOT: bool = false;

    fn connection(&self, key: &str) -> Option<(ClusterConnection, Ticket)> {
        let state = read(&self.state).clone()?;
        let ticket = state.ticket(key)?;
        Some((state.connection.clone(), ticket))
    }

    fn invalidation_connection(&self, key: &str) -> Option<(ClusterConnection, Ticket, Durability)> {
        let state = read(&self.state).clone()?;
        let ticket = state.ticket(key)?;
        let durability = ticket.shard.replicas.durability();
        Some((state.invalidations.clone(), ticket, durability))
    }

    fn saw_replicas(&self, ticket: &Ticket, replicas: usize) {
        if self
            .current()
            .is_some_and(|state| state.generation == ticket.generation)
        {
            ticket.shard.replicas.saw(replicas);
        }
    }

    fn record(&self, ticket: &Ticket, verdict: Verdict) {
        // A late failure on a connection that was already replaced says nothing about
        // the shard now.
        let current = || {
            self.current()
                .is_some_and(|state| state.generation == ticket.generation)
        };
        let breaker = &ticket.shard.breaker;
        let opened = match verdict {
            Verdict::Healthy => {
                breaker.record_success();
                false
            }
            Verdict::Failing if current() => breaker.record_failure(),
            Verdict::Broken if current() => breaker.trip(),
            Verdict::Failing | Verdict::Broken | Verdict::Neutral => false,
        };
        if opened {
            self.trouble.notify_one();
        }
    }

    fn announcements(&self) -> Option<u64> {
        self.subscription.current()
    }

    fn reachable(&self) -> bool {
        self.current()
            .is_some_and(|state| state.slots.shards.iter().any(|shard| !shard.breaker.is_open()))
    }

    async fn follow(
        &self,
        mut connection: ClusterConnection,
        redirect: &RedisError,
        command: redis::Cmd,
    ) -> Result<Value, RedisError> {
        // A `MOVED` to a slot's source may meet an `ASK` to its target in turn.
        let mut reply = Err(redirect_error(redirect));
        for _hop in 0..3 {
            let redirect = match &reply {
                Err(e) if e.redirect_node().is_some() => e,
                _ => break,
            };
            reply = send_to(&mut connection, redirect, command.clone()).await;
        }
        reply
    }
}

/// Sends `command` to the node `redirect` names, after `ASKING` in the same write for
/// an `ASK`.
async fn send_to(
    connection: &mut ClusterConnection,
    redirect: &RedisError,
    command: redis::Cmd,
) -> Result<Value, RedisError> {
    let node = redirect
        .redirect_node()
        .and_then(|(address, _slot)| address.rsplit_once(':'))
        .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)));
    let Some((host, port)) = node else {
        return Err(redirect_error(redirect));
    };
    let asking = redirect.kind() == ErrorKind::Server(ServerErrorKind::Ask);
    let mut pipeline = redis::pipe();
    if asking {
        pipeline.cmd("ASKING");
    }
    pipeline.add_command(command);
    let node = SingleNodeRoutingInfo::ByAddress { host, port };
    let mut replies = connection
        .route_pipeline(pipeline, usize::from(asking), 1, node)
        .await?;
    replies.pop().unwrap_or(Value::Nil).extract_error()
}

/// A redirection as an error of its own (`RedisError` is not `Clone`).
fn redirect_error(redirect: &RedisError) -> RedisError {
    let detail = redirect.detail().unwrap_or_default().to_owned();
    RedisError::from((redirect.kind(), "redirected", detail))
}

impl Connected {
    /// The ticket of an operation on `key`; `None` while its shard's breaker is open.
    fn ticket(&self, key: &str) -> Option<Ticket> {
        let shard = self.slots.shard_of(key)?;
        (!shard.breaker.is_open()).then(|| Ticket {
            generation: self.generation,
            shard: shard.clone(),
        })
    }
}

/// The host and port of a seed's address.
fn address(addr: &redis::ConnectionAddr) -> Option<(String, u16)> {
    match addr {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    }
}

fn timed_out(what: &str) -> RedisError {
    RedisError::from((ErrorKind::Io, "no answer in time", what.to_owned()))
}

/// Owns the connection: builds it, and builds it afresh whenever a shard's breaker
/// opens, until every shard that serves slots answers.
async fn keep_connected(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = Backoff::new();
    let failures_logged = RateLimited::new();
    let troubles_logged = RateLimited::new();
    // Says "connected" the first time, and after trouble.
    let mut was_failing = true;
    loop {
        // The same shape as a timed-out attempt's, for the log: the error says which step.
        let rebuilt = Ok::<_, tokio::time::error::Elapsed>(cluster.rebuild().await);
        let rebuilt_ok = matches!(rebuilt, Ok(Ok(())));
        if !rebuilt_ok {
            count_failed_connect(&cluster.counters);
            log_failed_attempt(
                &failures_logged,
                &rebuilt,
                cluster.limits.connect_timeout,
                "cannot connect to the redis cluster; calls fail open and the cache keeps trying",
            );
        }
        // No seed answers, but the nodes the cache knows may: read the slots and probe
        // the open shards through the connection it has.
        let connected = rebuilt_ok || (cluster.current().is_some() && cluster.refresh().await.is_ok());
        if !connected || cluster.any_shard_open() {
            was_failing = true;
            if !pause(&mut backoff, &mut shutdown).await {
                return;
            }
            continue;
        }
        cluster.connected.send_replace(true);
        if was_failing {
            tracing::info!("redis-cached: connected to the redis cluster");
            was_failing = false;
        }
        let healthy_since = tokio::time::Instant::now();
        // Healthy: read the slots now and then, until a shard fails.
        loop {
            tokio::select! {
                () = cluster.trouble.notified() => {
                    if let Some(suppressed) = troubles_logged.admit() {
                        tracing::warn!(suppressed, "redis-cached: a redis cluster shard is failing; its keys fail open while the cache reconnects");
                    }
                    break;
                }
                () = tokio::time::sleep(SLOT_REFRESH) => {
                    if cluster.refresh().await.is_err() || cluster.any_shard_open() {
                        break;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
        // A shard that answers probes but fails calls (a cluster that is down, a node
        // loading) would otherwise be rebuilt for in a tight loop: the backoff starts
        // afresh only after a healthy stretch.
        if healthy_since.elapsed() >= STABLE {
            backoff.reset();
        } else if !pause(&mut backoff, &mut shutdown).await {
            return;
        }
    }
}
