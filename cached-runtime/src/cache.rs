//! The [`Cache`] handle: a store, and what the read path keeps beside it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::coalesce::Flights;
use crate::fail_open::FailOpen;
use crate::health::{self, Watched};
use crate::key::{full_key, tag_key};
use crate::near::NearCache;
#[cfg(feature = "memory")]
use crate::policy::TAG_TTL;
use crate::read_path::{Came, Context, near_hit, pass_near_hit, read_redis};
use crate::report::{self, Report, timed_load};
use crate::shape::{ResultOption, Shape};
use crate::stats::Counters;
#[cfg(feature = "memory")]
use crate::store::MemoryStore;
use crate::store::{Cluster, Listener, RedisStore, Sentinel, Standalone, Store, StoreError};
use crate::wake::{FillWaiters, Wake};
use crate::{Cacheable, Error, Policy, ServerStats, Stats};

/// A read-through cache over Redis (or over process memory).
///
/// Cheap to clone: clones share one connection, one set of counters and one
/// coalescing table. See the crate docs for what a call does and how it fails open.
///
/// Its `Debug` says what a log line needs: the prefix, the topology and whether the
/// cache is talking to its store now, e.g.
/// `Cache { prefix: "shop:", topology: "standalone", connected: true }`.
///
/// # Examples
///
/// Build one per process at start-up, then either [`install`](crate::install()) it as the
/// default of every `#[redis_cached]` fn, or keep it in your state and name it with
/// `cache = …`:
///
/// ```no_run
/// use redis_cached::{Cache, redis_cached};
///
/// struct AppState {
///     cache: Cache,
/// }
///
/// impl AppState {
///     #[redis_cached(key = "greeting:<name>", ttl = "10m", cache = self.cache)]
///     async fn greeting(&self, name: &str) -> String {
///         format!("hello, {name}")
///     }
/// }
///
/// # async fn run() -> Result<(), redis_cached::Error> {
/// let state = AppState { cache: Cache::builder().prefix("app:").build().await? };
/// let greeting = state.greeting("ana").await; // a miss, then hits for ten minutes
/// state.cache.invalidate("greeting:ana").await?; // the rendered key, without the prefix
/// println!("{greeting} {:?}", state.cache.stats());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topology = match &self.inner.store {
            AnyStore::Standalone(_) => "standalone",
            AnyStore::Cluster(_) => "cluster",
            AnyStore::Sentinel(_) => "sentinel",
            #[cfg(feature = "memory")]
            AnyStore::Memory(_) => "in-memory",
        };
        f.debug_struct("Cache")
            .field("prefix", &self.inner.context.prefix)
            .field("topology", &topology)
            .field("connected", &self.available())
            .finish()
    }
}

#[derive(Debug)]
struct Inner {
    store: AnyStore,
    context: Context,
    /// Dropping the last handle drops this sender, which stops the background tasks.
    _shutdown: watch::Sender<()>,
}

/// The stores a cache can have. An enum rather than a trait object: each call
/// dispatches once, and the read path is compiled for each store.
#[derive(Debug, Clone)]
pub(crate) enum AnyStore {
    Standalone(RedisStore<Standalone>),
    Cluster(RedisStore<Cluster>),
    Sentinel(RedisStore<Sentinel>),
    #[cfg(feature = "memory")]
    Memory(MemoryStore),
}

impl AnyStore {
    /// Whether there is a Redis behind it.
    fn is_redis(&self) -> bool {
        match self {
            #[cfg(feature = "memory")]
            AnyStore::Memory(_) => false,
            _ => true,
        }
    }
}

impl Watched for AnyStore {
    /// See [`Cache::available`].
    fn available(&self) -> bool {
        match self {
            AnyStore::Standalone(store) => store.reachable(),
            AnyStore::Cluster(store) => store.reachable(),
            AnyStore::Sentinel(store) => store.reachable(),
            #[cfg(feature = "memory")]
            AnyStore::Memory(_) => true,
        }
    }

    /// The in-memory store has no server.
    async fn server_info(&self) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Standalone(store) => store.server_info().await,
            AnyStore::Cluster(store) => store.server_info().await,
            AnyStore::Sentinel(store) => store.server_info().await,
            #[cfg(feature = "memory")]
            AnyStore::Memory(_) => Err(StoreError::Skipped),
        }
    }
}

/// What a cache and its store are wired with before the store exists: the cache's id
/// in its announcements, and the listener that acts on what the store hears.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub(crate) origin: u64,
    /// The cache's counters, which the store's background tasks count in too.
    pub(crate) counters: Arc<Counters>,
    flights: Arc<Flights>,
    fills: Arc<FillWaiters>,
    pub(crate) listener: Arc<dyn Listener>,
}

impl Wiring {
    pub(crate) fn new() -> Self {
        let origin = crate::random::random_u64();
        let flights = Arc::<Flights>::default();
        let fills = Arc::<FillWaiters>::default();
        let listener = Arc::new(Wake::new(origin, flights.clone(), fills.clone()));
        Self {
            origin,
            counters: Arc::default(),
            flights,
            fills,
            listener,
        }
    }
}

impl Cache {
    /// A cache over `store`. `call_budget`: see `CacheBuilder::call_budget`.
    pub(crate) fn new(
        prefix: String,
        store: AnyStore,
        call_budget: Duration,
        wiring: Wiring,
        shutdown: watch::Sender<()>,
        near: Option<Arc<NearCache>>,
    ) -> Cache {
        let counters = wiring.counters;
        let context = Context {
            prefix,
            fail_open: Arc::new(FailOpen::new(counters.clone())),
            counters,
            flights: wiring.flights,
            fills: wiring.fills,
            call_budget,
            near,
        };
        // An in-memory cache has no Redis to report on.
        if store.is_redis() {
            health::watch(store.clone(), &shutdown);
        }
        Cache {
            inner: Arc::new(Inner {
                store,
                context,
                _shutdown: shutdown,
            }),
        }
    }

    /// A cache in this process's memory, with the same semantics as Redis (TTL, lock,
    /// negative entries, the stored format), for tests and for running with no server.
    /// Holds at most 100,000 entries, evicting the least recently used. Needs the `memory`
    /// feature.
    #[cfg(feature = "memory")]
    #[must_use]
    pub fn in_memory() -> Cache {
        let wiring = Wiring::new();
        let store = MemoryStore::new(&wiring.listener, wiring.origin, TAG_TTL);
        // Nothing in memory is slow: no budget.
        Self::new(
            String::new(),
            AnyStore::Memory(store),
            Duration::MAX,
            wiring,
            watch::Sender::new(()),
            None,
        )
    }

    /// Reads `rendered` through the cache with the return shape `S`.
    pub(crate) async fn read<S: Shape>(
        &self,
        policy: &Policy,
        rendered: &str,
        tags: &[String],
        load: impl Future<Output = S::Output>,
    ) -> S::Output {
        let cx = &self.inner.context;
        // A near hit is reported at once, without the machinery of a read from Redis.
        if let Some(out) = near_hit::<S>(cx, policy, rendered, tags) {
            report::near_hit(policy);
            pass_near_hit().await;
            return out;
        }
        let came = Came::new();
        let report = Report::new(policy, &came);
        let load = timed_load(policy.name, load);
        let (key, came) = ((rendered, tags), &came);
        let read = async {
            match &self.inner.store {
                AnyStore::Standalone(store) => read_redis::<S, _>(cx, store, policy, key, load, came).await,
                AnyStore::Cluster(store) => read_redis::<S, _>(cx, store, policy, key, load, came).await,
                AnyStore::Sentinel(store) => read_redis::<S, _>(cx, store, policy, key, load, came).await,
                #[cfg(feature = "memory")]
                AnyStore::Memory(store) => read_redis::<S, _>(cx, store, policy, key, load, came).await,
            }
        };
        let out = read.instrument(report.span()).await;
        drop(report);
        out
    }

    /// Reads `key` (as a template renders it, e.g. `"product:42"`), or runs `load` and
    /// stores its result: the call `#[redis_cached]` makes, for code that cannot use the
    /// attribute. `Ok(Some(v))` is stored for the policy's TTL, `Ok(None)` only under
    /// [`Policy::negative`], and `Err` never.
    ///
    /// Never fails because of Redis: any Redis trouble runs `load` and returns its result.
    /// Values of `key` must not come from untrusted input unescaped; build the key with
    /// [`KeyBuilder`](crate::KeyBuilder) to escape them.
    ///
    /// # Errors
    /// Exactly the errors `load` returns.
    pub async fn get_or_load<T, E, F>(&self, policy: &Policy, key: &str, load: F) -> Result<Option<T>, E>
    where
        T: Cacheable,
        F: Future<Output = Result<Option<T>, E>>,
    {
        self.read::<ResultOption<T, E>>(policy, key, &[], load).await
    }

    /// [`get_or_load`](Self::get_or_load) for a value that depends on `tags` (as rendered,
    /// e.g. `"category:7"`): it is served only while none of them has been invalidated
    /// with [`invalidate_tag`](Self::invalidate_tag) since it was loaded.
    ///
    /// # Errors
    /// Exactly the errors `load` returns.
    pub async fn get_or_load_tagged<T, E, F>(
        &self,
        policy: &Policy,
        key: &str,
        tags: &[String],
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Cacheable,
        F: Future<Output = Result<Option<T>, E>>,
    {
        self.read::<ResultOption<T, E>>(policy, key, tags, load).await
    }

    /// Invalidates every value cached with `tag` (as rendered, e.g. `"category:7"`), in
    /// one write whatever their number: the tag gets a new version, and values carry the
    /// versions they were loaded under. Loads running now are no longer shared with new
    /// callers, here at once and in other processes once the message reaches them.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate), this does not fail open.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<(), Error> {
        self.invalidate_target(&self.tag_target(tag)).await.map_err(Error::from)
    }

    /// Deletes `key` (as the template renders it, e.g. `"product:42"`) and voids every
    /// load of it in flight, in every process: their results are returned to the callers
    /// already waiting for them but not stored. Later callers start a new load: at once
    /// in this process, in others once the invalidation message reaches them.
    ///
    /// When the master has replicas, `Ok` also means one of them acknowledged the
    /// delete (`WAIT 1`), so a failover keeps it; the guide's "Invalidation guarantee"
    /// says exactly what `Ok` means.
    ///
    /// # Errors
    /// Unlike reads, invalidation does not fail open: if Redis did not confirm the
    /// delete ([`Error::Redis`], [`Error::Timeout`], [`Error::Unavailable`]) the old value
    /// may still be served until its TTL, and the caller should know. A master with
    /// replicas none of which acknowledged the delete within `op_timeout` is
    /// [`Error::Redis`] ("no replica acknowledged the invalidation in time").
    pub async fn invalidate(&self, key: &str) -> Result<(), Error> {
        self.invalidate_target(&self.key_target(key)).await.map_err(Error::from)
    }

    /// A key (as rendered) to invalidate.
    pub(crate) fn key_target(&self, key: &str) -> Target {
        Target::Key(self.key(key))
    }

    /// A tag (as rendered) to invalidate.
    pub(crate) fn tag_target(&self, tag: &str) -> Target {
        Target::Tag(tag_key(&self.inner.context.prefix, tag))
    }

    /// Detaches the loads `target` voids here, then deletes (or bumps) it in the store,
    /// which tells every other cache. The near cache drops it before (so reads already
    /// in flight keep nothing) and again after (so a read sent before the delete reached
    /// Redis keeps nothing either): once this returns, this process reads the new state.
    async fn invalidate_target(&self, target: &Target) -> Result<(), StoreError> {
        let (flights, near) = (&self.inner.context.flights, self.inner.context.near.as_deref());
        if let Some(near) = near {
            near.evict(target.name());
        }
        let result = match &self.inner.store {
            AnyStore::Standalone(store) => target.invalidate(flights, store).await,
            AnyStore::Cluster(store) => target.invalidate(flights, store).await,
            AnyStore::Sentinel(store) => target.invalidate(flights, store).await,
            #[cfg(feature = "memory")]
            AnyStore::Memory(store) => target.invalidate(flights, store).await,
        };
        if let Some(near) = near {
            near.evict(target.name());
        }
        result
    }

    /// What `#[redis_invalidate]` does after its fn succeeded: invalidates `target` and,
    /// if Redis does not confirm, counts and logs it and keeps retrying in the background
    /// for up to [`INVALIDATION_RETRY`] instead of forgetting it.
    pub(crate) async fn invalidate_or_retry(&self, target: Target) {
        if let Err(e) = self.invalidate_target(&target).await {
            self.inner.context.fail_open.failed(e);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(retry_invalidation(self.clone(), target));
            }
        }
    }

    /// The full Redis key of a rendered key: prefix and hash tag added.
    #[must_use]
    pub fn key(&self, rendered: &str) -> String {
        full_key(&self.inner.context.prefix, rendered)
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.context.counters.snapshot()
    }

    /// Redis's own stats, from `INFO`: its hit and miss counts, evictions, expiries and
    /// memory, summed over the masters of a cluster. Read on a connection of its own, so
    /// call it from a status endpoint or a periodic task, not on every request.
    ///
    /// # Errors
    /// [`Error::Redis`] or [`Error::Timeout`] (within `connect_timeout`) when a master
    /// cannot be reached or refuses `INFO` (the guide's ACL line allows it);
    /// [`Error::Unavailable`] for [`Cache::in_memory`], which has no server.
    pub async fn server_stats(&self) -> Result<ServerStats, Error> {
        let servers = self.inner.store.server_info().await?;
        Ok(ServerStats::sum(servers.iter().map(|info| ServerStats::parse(info))))
    }

    /// Whether Redis is answering: false while the cache is connecting, or has stopped
    /// calling Redis after repeated failures (every call then fails open to its loader
    /// at once, while a background task reconnects). On a cluster, true while at least
    /// one master is answering. The `redis_cached_available` gauge (feature `metrics`)
    /// follows it. Always true for [`Cache::in_memory`].
    #[must_use]
    pub fn available(&self) -> bool {
        self.inner.store.available()
    }
}

/// How long an invalidation that Redis did not confirm is retried in the background.
pub const INVALIDATION_RETRY: Duration = Duration::from_secs(30);

/// What an invalidation deletes: a key, or a tag's version (full keys).
#[derive(Debug)]
pub(crate) enum Target {
    Key(String),
    Tag(String),
}

impl Target {
    /// Detaches the loads it voids in this process (`flights`), then deletes (or bumps)
    /// it in `store`, which tells every other cache.
    pub(crate) async fn invalidate<St: Store>(&self, flights: &Flights, store: &St) -> Result<(), StoreError> {
        match self {
            Target::Key(key) => {
                flights.detach(key);
                store.delete(key).await
            }
            Target::Tag(tag_key) => {
                flights.detach_tag(tag_key);
                store.bump_tag(tag_key).await
            }
        }
    }

    fn name(&self) -> &str {
        match self {
            Target::Key(key) | Target::Tag(key) => key,
        }
    }
}

/// Retries an invalidation with a growing pause until Redis confirms or
/// [`INVALIDATION_RETRY`] has passed; then says, loudly, that values may be stale.
async fn retry_invalidation(cache: Cache, target: Target) {
    let start = tokio::time::Instant::now();
    let mut backoff = Backoff::new();
    let key = target.name().to_owned();
    loop {
        tokio::time::sleep(backoff.next_pause()).await;
        match cache.invalidate_target(&target).await {
            Ok(()) => {
                tracing::info!(key, "redis-cached: a delayed invalidation went through");
                return;
            }
            Err(_) if start.elapsed() >= INVALIDATION_RETRY => {
                tracing::error!(
                    key,
                    "redis-cached: could not invalidate for {INVALIDATION_RETRY:?}; the old value may be served \
                     until its ttl"
                );
                return;
            }
            Err(_) => {}
        }
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;

    static LOCKED: Policy = Policy::new("locked", Duration::from_secs(60)).lock(Duration::from_secs(10));

    /// Regression: the in-memory store held its cache's listener only weakly and lost it
    /// as soon as `in_memory()` returned, so a lock waiter learnt of the holder's fill
    /// only at its 250 ms poll.
    #[tokio::test(start_paused = true)]
    async fn an_in_memory_lock_waiter_is_woken_by_the_fill() {
        let cache = Cache::in_memory();
        let tags = ["t".to_owned()];
        let start = tokio::time::Instant::now();
        let holder = tokio::spawn({
            let cache = cache.clone();
            let tags = tags.clone();
            async move {
                cache
                    .get_or_load_tagged(&LOCKED, "k", &tags, async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, ()>(Some(1u32))
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // A new flight for the key (the tag detached the holder's), which waits for the
        // holder's lease.
        cache.invalidate_tag("t").await.unwrap();
        let waiter = cache
            .get_or_load_tagged(&LOCKED, "k", &tags, async { Ok::<_, ()>(Some(2u32)) })
            .await;
        assert_eq!(
            waiter,
            Ok(Some(2)),
            "its own load: the holder's value is under the old tag"
        );
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "woken at the holder's fill, not at a poll: {:?}",
            start.elapsed()
        );
        assert_eq!(cache.stats().lock_waits, 1);
        assert_eq!(holder.await.unwrap(), Ok(Some(1)));
    }
}
