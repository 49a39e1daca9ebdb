//! Building a [`Cache`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cache::{AnyStore, Wiring};
use crate::codec::{DECODE_LIMIT, ENVELOPE_HEADER_ALLOWANCE};
use crate::near::NearCache;
use crate::policy::TAG_TTL;
use crate::store::cluster::NodeClient;
use crate::store::connect::{self, ClientError};
use crate::store::masters::Masters;
#[cfg(feature = "tls")]
use crate::store::tls::{ClientAuth, TlsSettings};
use crate::store::tracking;
use crate::store::{Cluster, Limits, RedisStore, Sentinels, Standalone, Supervision, sentinel};
use crate::{Cache, Error};

impl Cache {
    /// Starts building a Redis-backed cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }
}

/// Builds a Redis-backed [`Cache`]; from [`Cache::builder`].
///
/// # Examples
///
/// Every setting has a default that suits a cache in front of a database on the same
/// network; the deadlines are what keep a slow Redis from slowing your service down.
///
/// ```no_run
/// use std::time::Duration;
///
/// use redis_cached::Cache;
///
/// # async fn run() -> Result<(), redis_cached::Error> {
/// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
/// let cache = Cache::builder()
///     .url(url)
///     .prefix("shop:") // every key starts with it; an ACL can grant `~shop:*`
///     .op_timeout(Duration::from_millis(20)) // slower answers fail open to the loader
///     .build() // fails only on a bad URL or setting, never because Redis is down
///     .await?;
/// redis_cached::install(cache);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct CacheBuilder {
    url: String,
    /// Set by `cluster`: its seed nodes, used instead of `url`.
    cluster: Option<Vec<String>>,
    prefix: String,
    op_timeout: Duration,
    connect_timeout: Duration,
    call_budget: Option<Duration>,
    sentinel: Option<SentinelSettings>,
    /// `near_cache`: at most this many entries (`None`: no near cache).
    near_entries: Option<u64>,
    near_bytes: u64,
    #[cfg(feature = "tls")]
    tls: TlsSettings,
}

/// The bytes a near cache holds at most, unless `near_cache_bytes` says otherwise.
pub const DEFAULT_NEAR_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// What `sentinel(...)` was given.
#[derive(Clone, Debug)]
struct SentinelSettings {
    master_name: String,
    urls: Vec<String>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            cluster: None,
            prefix: String::new(),
            op_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(500),
            call_budget: None,
            sentinel: None,
            near_entries: None,
            near_bytes: DEFAULT_NEAR_CACHE_BYTES,
            #[cfg(feature = "tls")]
            tls: TlsSettings::default(),
        }
    }
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("CacheBuilder");
        debug
            .field("url", &redact(&self.url))
            .field(
                "cluster",
                &self
                    .cluster
                    .as_ref()
                    .map(|seeds| seeds.iter().map(|seed| redact(seed)).collect::<Vec<_>>()),
            )
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_budget", &self.effective_call_budget())
            .field(
                "near_cache",
                &self.near_entries.map(|entries| (entries, self.near_bytes)),
            );
        if let Some(sentinel) = &self.sentinel {
            let urls: Vec<String> = sentinel.urls.iter().map(|url| redact(url)).collect();
            debug.field("sentinel", &(&sentinel.master_name, urls));
        }
        #[cfg(feature = "tls")]
        self.tls.debug_fields(&mut debug);
        debug.finish()
    }
}

/// The URL with its password hidden: whatever stands before the last `@` but the user
/// name (all of it when the URL is malformed), and a `pass=`/`password=` query parameter
/// (`redis+unix://` URLs).
fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) if !user.contains(['/', '?', '#']) => (format!("{user}:<redacted>@"), rest),
            _ => ("<redacted>@".to_owned(), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name @ ("pass" | "password"), _)) => format!("{name}=<redacted>"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => rest.to_owned(),
    };
    format!("{scheme}{userinfo}{rest}")
}

impl CacheBuilder {
    /// The Redis URL (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
    /// with the `tls` feature, the server verified against the system's root
    /// certificates, or the CAs of `tls_root_ca`).
    /// Defaults to `redis://127.0.0.1:6379`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// A Redis Cluster instead of one server: the URLs of some of its nodes
    /// (`redis://[user:password@]host:port`, or `rediss://` for TLS), from which the
    /// cache learns the others. Give several: the cache needs one of them to answer when
    /// it connects, and the announcement subscription listens on whichever answers.
    /// The `url` is then not used. Defaults to no cluster.
    ///
    /// Keys of one template value share a hash slot (the `{…}` the cache adds), so each
    /// operation is one round trip to one master. Each master has its own circuit
    /// breaker: a failing shard's keys fail open while the others keep serving hits.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::builder()
    ///     .cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
    ///     .prefix("shop:")
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster(mut self, seeds: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cluster = Some(seeds.into_iter().map(Into::into).collect());
        self
    }

    /// Reach Redis through Sentinel: the master named `master_name` that the sentinels at
    /// `sentinels` (`redis://[user:password@]host:port`, or `rediss://` with the `tls`
    /// feature) monitor. A URL's user and password are for that sentinel.
    ///
    /// The master is reached at the address the sentinels give, with the user, password
    /// and database of [`url`](Self::url) (whose host and port are then unused), e.g.
    /// `.url("redis://app:secret@master/2")`, over TLS when the sentinel URLs are
    /// `rediss://` (all of them or none) or `url` is; the TLS settings apply to the
    /// sentinels and the master alike. The cache asks the sentinels in turn at each
    /// (re)connect, uses a server only once it says it is a master, and follows a
    /// failover: it moves to the new master when the sentinels announce the switch
    /// (`+switch-master`), when the old master answers `READONLY`, or when the
    /// connection is lost. Requires Redis 6.2 or later, as the rest of the cache.
    ///
    /// Defaults to no Sentinel: the server of [`url`](Self::url).
    ///
    /// # Errors
    /// `build` fails with [`Error::InvalidConfig`] for an empty master name, no
    /// sentinels or sentinel URLs of both schemes, and [`Error::InvalidUrl`] for a
    /// sentinel URL it cannot parse; never because a sentinel or the master is down.
    pub fn sentinel(
        mut self,
        master_name: impl Into<String>,
        sentinels: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.sentinel = Some(SentinelSettings {
            master_name: master_name.into(),
            urls: sentinels.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Put before every key, e.g. `"shop:"`, so several applications can share one Redis
    /// and an ACL can grant `~shop:*`. It may not contain `{` or `}` (hash tags are the
    /// cache's). Defaults to no prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The deadline of every Redis operation. A slower one counts as an error and the
    /// call fails open. Defaults to 50 ms.
    pub fn op_timeout(mut self, op_timeout: Duration) -> Self {
        self.op_timeout = op_timeout;
        self
    }

    /// The Redis time one call may spend in all: every read, lease request, fill and
    /// release it sends, but not its loader nor its wait for another caller's load. Past
    /// it the call sends no more reads, lease requests or fills and fails open (the
    /// loader's result is returned and not stored; a lease it holds is still renewed
    /// while the loader runs and released in the background), so a Redis that is slow but
    /// answers cannot stretch a call across many replies just under `op_timeout`. At least `op_timeout`. Defaults to three
    /// `op_timeout`s (150 ms).
    pub fn call_budget(mut self, call_budget: Duration) -> Self {
        self.call_budget = Some(call_budget);
        self
    }

    /// Adds a near cache: up to `max_entries` values read from Redis are kept decoded in
    /// this process and served with no round trip (a hit in well under a microsecond),
    /// each for at most its function's `near` max age ([`DEFAULT_NEAR_AGE`](crate::DEFAULT_NEAR_AGE)
    /// by default). Redis keeps them coherent: with client tracking on at every master,
    /// any write, delete, expiry or eviction of a key under the prefix, by any process,
    /// evicts the local copy as soon as Redis's message arrives (well under a millisecond
    /// on a local network). While tracking is down, the near cache is cleared and
    /// bypassed. The guide's "Near cache" section says exactly what is guaranteed.
    ///
    /// Also bounded by bytes (`near_cache_bytes`). Needs Redis 6 or later, and a user
    /// allowed `HELLO` and `CLIENT TRACKING` (the guide's ACL line). Defaults to no near
    /// cache.
    pub fn near_cache(mut self, max_entries: u64) -> Self {
        self.near_entries = Some(max_entries);
        self
    }

    /// The bytes the near cache holds at most, each value counted at its stored size.
    /// Only with `near_cache`. Defaults to [`DEFAULT_NEAR_CACHE_BYTES`] (64 MiB).
    pub fn near_cache_bytes(mut self, max_bytes: u64) -> Self {
        self.near_bytes = max_bytes;
        self
    }

    fn effective_call_budget(&self) -> Duration {
        self.call_budget.unwrap_or(self.op_timeout.saturating_mul(3))
    }

    /// The deadline of one connection (or subscription) attempt. `build` waits at most
    /// this long for the first one; calls of cached functions never wait for it.
    /// Defaults to 500 ms.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The CAs (PEM, one or more certificates) that a `rediss://` server's certificate
    /// must chain to, for a server with a certificate of a private CA. They **replace**
    /// the system's root certificates: a server those trust but these do not is refused.
    /// `build` fails if the PEM holds no certificate or one that does not parse, or if
    /// the URL is not `rediss://`. Defaults to the system's root certificates.
    ///
    /// The system's certificates are still read at each connection (redis-rs does), so
    /// a file there that cannot be read fails the connection all the same.
    #[cfg(feature = "tls")]
    pub fn tls_root_ca(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_ca = Some(ca_pem.into());
        self
    }

    /// Mutual TLS: the client certificate (PEM, the chain leaf first) and its private
    /// key (PEM: PKCS#8, PKCS#1 or SEC1) that the cache presents to a `rediss://` server
    /// that asks for one (`tls-auth-clients yes`). `build` fails if either does not
    /// parse, if the key does not match the certificate, or if the URL is not
    /// `rediss://`. The key is never printed: the builder's `Debug` shows
    /// `tls_client_auth: Some(<redacted>)`. Defaults to no client certificate.
    #[cfg(feature = "tls")]
    pub fn tls_client_auth(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.client_auth = Some(ClientAuth {
            cert: cert_pem.into(),
            key: key_pem.into(),
        });
        self
    }

    /// Builds the cache and connects, waiting at most `connect_timeout` for Redis (and,
    /// with a near cache, for client tracking to be on).
    ///
    /// An unreachable Redis is not an error: the cache is returned after that wait,
    /// calls fail open until Redis answers, and the cache connects by itself when it
    /// does. Must be called inside a Tokio runtime with the time driver enabled.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL (or a cluster seed) redis-rs cannot parse, or a
    /// `rediss://` URL while the `tls` feature is off; [`Error::InvalidConfig`]
    /// for a cluster without seeds, a prefix with `{` or `}`, a zero timeout, a `call_budget` shorter than
    /// `op_timeout`, or TLS settings that do not parse or that a URL other than
    /// `rediss://` cannot use. A server whose certificate is not trusted (or that wants
    /// a client certificate) is not an error: calls fail open and the log says why.
    ///
    /// # Panics
    /// Outside a Tokio runtime, or in one without the time driver.
    pub async fn build(self) -> Result<Cache, Error> {
        let started = std::time::Instant::now();
        if self.prefix.contains(['{', '}']) {
            return Err(Error::InvalidConfig(format!(
                "prefix {:?} contains `{{` or `}}`; the cache adds the hash tag itself",
                self.prefix
            )));
        }
        if self.op_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::InvalidConfig("timeouts must be greater than zero".to_owned()));
        }
        if self.effective_call_budget() < self.op_timeout {
            return Err(Error::InvalidConfig(format!(
                "call_budget ({:?}) is shorter than op_timeout ({:?}); a call's first read alone may take op_timeout",
                self.effective_call_budget(),
                self.op_timeout
            )));
        }
        let limits = Limits {
            op_timeout: self.op_timeout,
            connect_timeout: self.connect_timeout,
            value_limit: DECODE_LIMIT + ENVELOPE_HEADER_ALLOWANCE,
            tag_ttl: TAG_TTL,
        };
        let wiring = Wiring::new();
        let shutdown = watch::Sender::new(());
        let channel = format!("{}fills", self.prefix);
        let listener = wiring.listener.clone();
        if self.near_entries == Some(0) || self.near_bytes == 0 {
            return Err(Error::InvalidConfig(
                "a near cache needs room for at least one entry; leave `near_cache` out for none".to_owned(),
            ));
        }
        let near = self
            .near_entries
            .map(|entries| Arc::new(NearCache::new(&self.prefix, entries, self.near_bytes)));
        let supervision = Supervision {
            limits: limits.clone(),
            channel: channel.clone(),
            listener,
            counters: wiring.counters.clone(),
        };
        let store = match (&self.cluster, &self.sentinel) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidConfig(
                    "`cluster` and `sentinel` name two deployments; use one".to_owned(),
                ));
            }
            (Some(seeds), None) => {
                let topology = Cluster::start(
                    self.cluster_client(seeds)?,
                    seeds.iter().map(|seed| self.client(seed)).collect::<Result<_, _>>()?,
                    self.node_client(seeds),
                    supervision,
                    &shutdown,
                );
                self.track(&topology, near.as_ref(), &limits, &shutdown);
                topology.first_connection().await;
                AnyStore::Cluster(RedisStore::new(topology, limits, channel, wiring.origin))
            }
            (None, Some(sentinel)) => {
                let master = self.client(&master_url(&self.url, sentinel)?)?;
                let sentinels = self.sentinels(sentinel, master)?;
                let topology = sentinel::start(sentinels, supervision, &shutdown);
                self.track(&topology, near.as_ref(), &limits, &shutdown);
                topology.first_connection().await;
                AnyStore::Sentinel(RedisStore::new(topology, limits, channel, wiring.origin))
            }
            (None, None) => {
                let client = self.client(&self.url)?;
                let topology = Standalone::start(client, supervision, &shutdown);
                self.track(&topology, near.as_ref(), &limits, &shutdown);
                topology.first_connection().await;
                AnyStore::Standalone(RedisStore::new(topology, limits, channel, wiring.origin))
            }
        };
        if let Some(near) = &near {
            // Within the same wait as the connection's, not a second one.
            near.serving_within(self.connect_timeout.saturating_sub(started.elapsed()))
                .await;
        }
        let call_budget = self.effective_call_budget();
        Ok(Cache::new(self.prefix, store, call_budget, wiring, shutdown, near))
    }

    /// Keeps client tracking on at every master of `topology`, for the near cache.
    fn track<M: Masters>(
        &self,
        topology: &Arc<M>,
        near: Option<&Arc<NearCache>>,
        limits: &Limits,
        shutdown: &watch::Sender<()>,
    ) {
        if let Some(near) = near {
            tracking::start(topology.clone(), self.prefix.clone(), near.clone(), limits, shutdown);
        }
    }
}

/// The URL the master is reached with (its host and port replaced by the sentinels'
/// answer): `url`, made `rediss://` when the sentinels' URLs are (all or none must be).
fn master_url(url: &str, sentinel: &SentinelSettings) -> Result<String, Error> {
    let tls = sentinel.urls.iter().filter(|url| connect::uses_tls(url)).count();
    if tls != 0 && tls != sentinel.urls.len() {
        return Err(Error::InvalidConfig(
            "some sentinel urls are `rediss` and some are not; use one scheme".to_owned(),
        ));
    }
    Ok(match url.split_once("://") {
        Some((_, rest)) if tls != 0 && !connect::uses_tls(url) => format!("rediss://{rest}"),
        _ => url.to_owned(),
    })
}

impl CacheBuilder {
    /// The client of `url`, with the TLS settings.
    fn client(&self, url: &str) -> Result<redis::Client, Error> {
        #[cfg(not(feature = "tls"))]
        return connect::client(url).map_err(Error::InvalidUrl);
        #[cfg(feature = "tls")]
        connect::client_with_tls(url, &self.tls).map_err(Error::from)
    }

    /// Clients of a cluster's nodes, made from the first seed's URL (its scheme and
    /// credentials) and the TLS settings.
    fn node_client(&self, seeds: &[String]) -> NodeClient {
        let (builder, seed) = (self.clone(), seeds.first().cloned().unwrap_or_default());
        Box::new(move |host, port| builder.client(&connect::node_url(&seed, host, port)).ok())
    }

    /// The cluster client of `seeds`, with the TLS settings and the deadlines.
    fn cluster_client(&self, seeds: &[String]) -> Result<redis::cluster::ClusterClient, Error> {
        let client = connect::cluster_client(
            seeds,
            #[cfg(feature = "tls")]
            &self.tls,
            self.op_timeout,
            self.connect_timeout,
        )?;
        Ok(client)
    }

    /// The sentinels of `sentinel`, whose master is reached with `master`'s settings.
    fn sentinels(&self, sentinel: &SentinelSettings, master: redis::Client) -> Result<Sentinels, Error> {
        if sentinel.master_name.is_empty() {
            return Err(Error::InvalidConfig("the sentinel master name is empty".to_owned()));
        }
        if sentinel.urls.is_empty() {
            return Err(Error::InvalidConfig("no sentinel urls".to_owned()));
        }
        let clients = sentinel
            .urls
            .iter()
            .map(|url| self.client(url))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sentinels::new(
            sentinel.master_name.clone(),
            clients,
            master,
            self.connect_timeout,
        ))
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Config(why) => Error::InvalidConfig(why),
            ClientError::Url(cause) => Error::InvalidUrl(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://app:s3cr3t@db:6379/0"),
            "redis://app:<redacted>@db:6379/0"
        );
        assert_eq!(redact("rediss://:s3cr3t@db"), "rediss://:<redacted>@db");
        assert_eq!(redact("redis://s3cr3t@db"), "redis://<redacted>@db");
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=s3cr3t"),
            "redis+unix:///run/redis.sock?db=1&pass=<redacted>"
        );
    }

    /// A malformed URL is what the Debug of a builder that failed to build shows: its
    /// password is hidden too.
    #[test]
    fn passwords_in_malformed_urls_are_redacted() {
        assert_eq!(redact("redis:/app:s3cr3t@db"), "redis:<redacted>@db");
        assert_eq!(redact("redis://app:s3?cr3t@db"), "redis://app:<redacted>@db");
        assert_eq!(redact("redis://app:s3@cr3t@db"), "redis://app:<redacted>@db");
        assert_eq!(redact("app:s3cr3t@db:6379"), "app:<redacted>@db:6379");
        for url in [
            "redis:/app:s3cr3t@db",
            "redis://a/b:s3cr3t@db",
            "redis://app:s3?cr3t@db#x",
        ] {
            assert!(!redact(url).contains("s3"), "{url}: {}", redact(url));
        }
    }
}
