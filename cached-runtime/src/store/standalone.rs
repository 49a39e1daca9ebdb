//! A standalone Redis server (or a primary behind a proxy): how the cache connects to
//! it and keeps that connection healthy. The operations themselves are in
//! `redis_store`.
//!
//! One multiplexed connection serves every call. redis-rs's response timeout is off, so
//! a hit arms one timer (the cache's own deadline), not two. A background task owns
//! (re)connecting: while the breaker is open it drops the suspect connection, connects
//! afresh and `PING`s with a growing backoff, and closes the breaker when Redis answers.
//! A second task keeps the announcement subscription.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Value};
use tokio::sync::watch;

use super::announce::{Announcement, Listener};
use super::redis_store::{Topology, Verdict};
#[cfg(feature = "tls")]
use super::tls::TlsSettings;
use super::{Limits, hint};
use crate::backoff::Backoff;
use crate::breaker::Breaker;
use crate::log::RateLimited;
use crate::sync::{read, write};

/// How often the subscription is checked with a `PING`: a connection that a NAT or a
/// firewall dropped silently delivers nothing and reports nothing.
const SUBSCRIPTION_KEEPALIVE: Duration = Duration::from_secs(1);

/// The client of a Redis URL; an error for a URL redis-rs cannot parse, or for a TLS
/// URL (`rediss://`) while the `tls` feature is off.
pub(crate) fn client(url: &str) -> Result<Client, Box<dyn std::error::Error + Send + Sync>> {
    if uses_tls(url) {
        #[cfg(not(feature = "tls"))]
        return Err("a `rediss` url needs the `tls` feature of redis-cached, which is off".into());
        #[cfg(feature = "tls")]
        install_crypto_provider();
    }
    Ok(Client::open(url)?)
}

/// Why a client of `url` with these TLS settings cannot be made: the settings need a
/// `rediss://` URL, and each PEM must parse (see [`TlsSettings::certificates`]).
#[cfg(feature = "tls")]
pub(crate) enum TlsClientError {
    /// A setting is wrong; the message says which.
    Config(String),
    /// The URL cannot be parsed.
    Url(Box<dyn std::error::Error + Send + Sync>),
}

/// The client of a Redis URL with TLS settings; with none, the same as [`client`].
#[cfg(feature = "tls")]
pub(crate) fn client_with_tls(url: &str, tls: &TlsSettings) -> Result<Client, TlsClientError> {
    if !tls.is_set() {
        return client(url).map_err(TlsClientError::Url);
    }
    if !uses_tls(url) {
        return Err(TlsClientError::Config(
            "`tls_root_ca` and `tls_client_auth` need a `rediss` url".to_owned(),
        ));
    }
    let certificates = tls.certificates().map_err(TlsClientError::Config)?;
    install_crypto_provider();
    Client::build_with_tls(url, certificates).map_err(|e| TlsClientError::Url(e.into()))
}

/// Whether the URL's scheme asks for TLS.
fn uses_tls(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys"))
}

/// Makes ring the process's rustls crypto provider, unless the application chose one:
/// redis-rs builds each TLS connection with the process's provider and panics when there
/// is none (rustls cannot pick one when the build has both of its providers, or none).
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // An error means a provider is installed already: the application's stands.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[derive(Debug)]
pub(crate) struct Standalone {
    client: Client,
    connection: RwLock<Option<MultiplexedConnection>>,
    /// Bumped with every new connection: failures of an older one do not count.
    generation: AtomicU64,
    breaker: Breaker,
    /// Counts reconnects; the subscription starts afresh after one (it may be stuck
    /// too). A value, not a stored permit: a subscription made after the reconnect is
    /// not torn down by it.
    reconnects: watch::Sender<u64>,
    limits: Limits,
    channel: String,
    subscribed: AtomicBool,
    /// Counts subscriptions made: a message can only have been missed across a change.
    subscriptions: AtomicU64,
}

impl Standalone {
    /// Starts supervising the server behind `client`; announcements heard on `channel`
    /// go to `listener`. The background tasks end when `shutdown`'s sender drops.
    pub(crate) fn start(
        client: Client,
        limits: Limits,
        channel: String,
        listener: Arc<dyn Listener>,
        shutdown: &watch::Sender<()>,
    ) -> Arc<Self> {
        let standalone = Arc::new(Self {
            client,
            connection: RwLock::new(None),
            generation: AtomicU64::new(0),
            breaker: Breaker::new_open(),
            reconnects: watch::Sender::new(0),
            limits,
            channel,
            subscribed: AtomicBool::new(false),
            subscriptions: AtomicU64::new(0),
        });
        tokio::spawn(keep_connected(standalone.clone(), shutdown.subscribe()));
        tokio::spawn(keep_subscribed(standalone.clone(), listener, shutdown.subscribe()));
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

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.limits.connect_timeout))
            .set_response_timeout(None);
        let mut connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let started = Instant::now();
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

impl Topology for Standalone {
    type Connection = MultiplexedConnection;

    fn connection(&self) -> Option<(MultiplexedConnection, u64)> {
        if self.breaker.is_open() {
            return None;
        }
        let connection = read(&self.connection).clone()?;
        Some((connection, self.generation.load(Ordering::Acquire)))
    }

    fn record(&self, generation: u64, verdict: Verdict) {
        // A late failure on a connection that was already replaced says nothing about
        // Redis now.
        let current = self.generation.load(Ordering::Acquire) == generation;
        match verdict {
            Verdict::Healthy => self.breaker.record_success(),
            Verdict::Failing if current => self.breaker.record_failure(),
            Verdict::Broken if current => self.breaker.trip(),
            Verdict::Failing | Verdict::Broken | Verdict::Neutral => {}
        }
    }

    fn announcements(&self) -> Option<u64> {
        // The number is written before `subscribed` is set, and read after it.
        let subscribed = self.subscribed.load(Ordering::Acquire);
        let number = self.subscriptions.load(Ordering::Acquire);
        subscribed.then_some(number)
    }

    fn reachable(&self) -> bool {
        !self.breaker.is_open()
    }
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
            Ok(Err(e)) => (e.to_string(), hint(e)),
            _ => (format!("no answer within {timeout:?}"), None),
        };
        // No hint, no field (`None` records nothing).
        tracing::warn!(%error, hint, suppressed, "redis-cached: {what}");
    }
}

/// Sleeps for the backoff's next pause, unless the cache is dropped first (then
/// returns false).
async fn pause(backoff: &mut Backoff, shutdown: &mut watch::Receiver<()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(backoff.next_pause()) => true,
        _ = shutdown.changed() => false,
    }
}

/// Owns the connection: while the breaker is open, reconnects and probes with backoff.
async fn keep_connected(store: Arc<Standalone>, mut shutdown: watch::Receiver<()>) {
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
        if was_connected {
            tracing::warn!("redis-cached: redis is failing; calls fail open while the cache reconnects");
            was_connected = false;
        }
        match tokio::time::timeout(store.limits.connect_timeout, store.connect()).await {
            Ok(Ok(connection)) => {
                *write(&store.connection) = Some(connection);
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

/// Keeps one subscription to the announcement channel and hands what it hears to the
/// listener. A subscription that stops answering its keepalive `PING`, or that predates
/// a reconnect of the command connection, is replaced; while there is none, waiters
/// poll.
async fn keep_subscribed(store: Arc<Standalone>, listener: Arc<dyn Listener>, mut shutdown: watch::Receiver<()>) {
    let mut backoff = Backoff::new();
    let failures_logged = RateLimited::new();
    let silences_logged = RateLimited::new();
    let mut reconnects = store.reconnects.subscribe();
    let timeout = store.limits.connect_timeout;
    loop {
        // Reconnects before this subscription is made do not concern it.
        reconnects.borrow_and_update();
        let subscribe = async {
            let mut pubsub = store.client.get_async_pubsub().await?;
            pubsub.subscribe(store.channel.as_str()).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        let (mut sink, mut messages) = match tokio::time::timeout(timeout, subscribe).await {
            Ok(Ok(subscription)) => subscription,
            failed => {
                log_failed_attempt(
                    &failures_logged,
                    &failed,
                    timeout,
                    "cannot subscribe to fill messages; waiters poll instead",
                );
                if !pause(&mut backoff, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        store.subscriptions.fetch_add(1, Ordering::AcqRel);
        store.subscribed.store(true, Ordering::Release);
        let mut keepalive = tokio::time::interval(SUBSCRIPTION_KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        if let Some(announcement) = Announcement::decode(message.get_payload_bytes()) {
                            listener.heard(announcement);
                        }
                    }
                    None => break,
                },
                _ = keepalive.tick() => {
                    let ping = tokio::time::timeout(timeout, sink.ping::<Value>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        log_failed_attempt(
                            &silences_logged,
                            &ping,
                            timeout,
                            "the announcement subscription stopped answering; subscribing again",
                        );
                        break;
                    }
                }
                _ = reconnects.changed() => break,
                _ = shutdown.changed() => {
                    store.subscribed.store(false, Ordering::Release);
                    return;
                }
            }
        }
        store.subscribed.store(false, Ordering::Release);
    }
}
