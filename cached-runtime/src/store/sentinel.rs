//! Redis Sentinel: where the master is, asked of the sentinels at each (re)connect, and
//! a watch on their `+switch-master` messages that makes the cache follow a failover.
//!
//! The connection itself is supervised as a standalone server's is ([`Standalone`]):
//! only where its address comes from differs. A connection is used only once the named
//! server says (`ROLE`) it is a master. The cache moves to another master when the
//! sentinels announce a switch for its master name (or, each time the watch subscribes,
//! name another master than the one connected to: a switch it may have missed), when a
//! reply says `READONLY` (a demoted master), and whenever the connection is lost.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError};
use tokio::sync::watch;

use super::Supervision;
use super::announce::{Announcement, Listener};
use super::standalone::{Locate, Standalone};
use super::subscription::{Failures, Subscribe, Subscription, keep_subscribed_with};

/// The channel on which sentinels announce a new master:
/// `<master name> <old ip> <old port> <new ip> <new port>`.
const SWITCH_MASTER: &str = "+switch-master";

/// The master of a Sentinel deployment: the sentinels to ask, and how to reach the
/// master they name.
pub(crate) struct Sentinels {
    master_name: String,
    sentinels: Vec<Client>,
    /// The sentinel to ask first: the last one that answered.
    preferred: AtomicUsize,
    /// The master's scheme, credentials, database and TLS settings; its address is the
    /// sentinels' answer.
    master: Client,
    connect_timeout: Duration,
}

impl fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinels")
            .field("master_name", &self.master_name)
            .field("sentinels", &self.sentinels.len())
            .finish_non_exhaustive()
    }
}

/// A standalone connection to the master the sentinels name.
pub(crate) type Sentinel = Standalone<Sentinels>;

impl Sentinels {
    /// The master named `master_name` that `sentinels` (at least one) monitor, reached
    /// with `master`'s settings at the address they give.
    pub(crate) fn new(master_name: String, sentinels: Vec<Client>, master: Client, connect_timeout: Duration) -> Self {
        Self {
            master_name,
            sentinels,
            preferred: AtomicUsize::new(0),
            master,
            connect_timeout,
        }
    }

    /// Asks one sentinel where the master is.
    async fn ask(&self, sentinel: &Client) -> Result<Option<(String, u16)>, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout));
        let mut connection = sentinel.get_multiplexed_async_connection_with_config(&config).await?;
        redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(&mut connection)
            .await
    }

    /// The master's client at `host:port`, with the scheme, credentials, database and
    /// TLS settings of `self.master`.
    fn master_at(&self, host: String, port: u16) -> Result<Client, RedisError> {
        let info = self.master.get_connection_info().clone();
        let addr = match info.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure, tls_params, ..
            } => ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host, port),
        };
        Client::open(info.set_addr(addr))
    }

    /// A sentinel's client, in turn from the preferred one.
    fn sentinel(&self, turn: usize) -> (usize, &Client) {
        let index = (self.preferred.load(Ordering::Relaxed) + turn) % self.sentinels.len();
        (index, &self.sentinels[index])
    }
}

impl Locate for Sentinels {
    /// Asks the sentinels in turn (each within the connect timeout) where the master is.
    async fn locate(&self) -> Result<Client, RedisError> {
        let mut last = None;
        for turn in 0..self.sentinels.len() {
            let (index, sentinel) = self.sentinel(turn);
            match tokio::time::timeout(self.connect_timeout, self.ask(sentinel)).await {
                Ok(Ok(Some((host, port)))) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return self.master_at(host, port);
                }
                Ok(Ok(None)) => last = Some(format!("it does not monitor a master named {:?}", self.master_name)),
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("no answer within {:?}", self.connect_timeout)),
            }
        }
        Err(RedisError::from((
            ErrorKind::Io,
            "no sentinel named the master",
            last.unwrap_or_default(),
        )))
    }

    fn needs_master(&self) -> bool {
        true
    }
}

/// Starts supervising the master the sentinels name (see [`Standalone::start`]) and
/// watching for its switches.
pub(crate) fn start(sentinels: Sentinels, supervision: Supervision, shutdown: &watch::Sender<()>) -> Arc<Sentinel> {
    let topology = Standalone::start(sentinels, supervision, shutdown);
    tokio::spawn(watch_switches(topology.clone(), shutdown.subscribe()));
    topology
}

/// Subscribes to `+switch-master` on one sentinel at a time (the next one when it fails)
/// and replaces the connection when the cache's master is switched.
async fn watch_switches(topology: Arc<Sentinel>, shutdown: watch::Receiver<()>) {
    let sentinels = topology.locator();
    let turn = Arc::new(AtomicUsize::new(0));
    // Never changes: a new master connection does not concern the sentinels.
    let (_keep, reconnects) = watch::channel(0);
    let subscribe = Subscribe {
        connect: {
            let topology = topology.clone();
            move || {
                let topology = topology.clone();
                let turn = turn.fetch_add(1, Ordering::Relaxed);
                async move {
                    let sentinels = topology.locator();
                    let (_, sentinel) = sentinels.sentinel(turn);
                    let pubsub = sentinel.get_async_pubsub().await?;
                    // A switch made while no subscription listened was missed: ask now,
                    // just before subscribing.
                    if let Ok(Some((host, port))) = sentinels.ask(sentinel).await
                        && topology
                            .current_client()
                            .is_some_and(|client| !is_at(&client, &host, port))
                    {
                        tracing::info!(
                            master = sentinels.master_name,
                            "redis-cached: the sentinels name another master; reconnecting"
                        );
                        topology.reconnect();
                    }
                    Ok(pubsub)
                }
            }
        },
        channel: SWITCH_MASTER.to_owned(),
        state: Arc::<Subscription>::default(),
        reconnects,
        timeout: sentinels.connect_timeout,
        listener: Arc::new(Deaf),
    };
    let master_name = sentinels.master_name.clone();
    let hear = move |payload: &[u8]| {
        if switched(payload, &master_name) {
            tracing::info!(
                master = master_name,
                "redis-cached: the sentinels switched the master; reconnecting"
            );
            topology.reconnect();
        }
    };
    let what = Failures {
        subscribe: "cannot subscribe to the sentinels' +switch-master; a failover is followed when the old master fails",
        silent: "the sentinels' +switch-master subscription stopped answering; subscribing again",
    };
    keep_subscribed_with(subscribe, hear, what, shutdown).await;
}

/// Whether `client` connects to `host:port`.
fn is_at(client: &Client, host: &str, port: u16) -> bool {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(h, p) | ConnectionAddr::TcpTls { host: h, port: p, .. } => h == host && *p == port,
        _ => false,
    }
}

/// Whether a `+switch-master` message is about `master_name`.
fn switched(payload: &[u8], master_name: &str) -> bool {
    payload.split(|b| *b == b' ').next() == Some(master_name.as_bytes())
}

/// The switch watch hears no announcements.
#[derive(Debug)]
struct Deaf;

impl Listener for Deaf {
    fn heard(&self, _: Announcement) {}
}

#[cfg(test)]
mod tests {
    use super::switched;

    #[test]
    fn a_switch_concerns_only_its_master_name() {
        assert!(switched(b"mymaster 127.0.0.1 1 127.0.0.1 2", "mymaster"));
        assert!(!switched(b"mymaster2 127.0.0.1 1 127.0.0.1 2", "mymaster"));
        assert!(!switched(b"other 127.0.0.1 1 127.0.0.1 2", "mymaster"));
    }
}
