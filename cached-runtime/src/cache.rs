//! The [`Cache`] handle and the process-wide default.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::{MemoryStore, RedisStore, Store, StoreError};
use crate::coalesce::Flights;
use crate::fills::{FillWaiters, Wake};
use crate::key::{full_key, tag_key};
use crate::log::RateLimited;
use crate::read_through::read_through;
use crate::shape::ResultOption;
use crate::stats::Counters;
use crate::{CacheBuilder, Cacheable, Error, Policy, Stats};

/// A read-through cache over Redis (or over process memory).
///
/// Cheap to clone: clones share one connection, one set of counters and one
/// coalescing table. See the crate docs for what a call does and how it fails open.
#[derive(Clone, Debug)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) prefix: String,
    pub(crate) store: Store,
    /// The Redis time one call may spend in all (see `budget`).
    pub(crate) call_budget: Duration,
    pub(crate) counters: Counters,
    pub(crate) flights: Arc<Flights>,
    pub(crate) fills: Arc<FillWaiters>,
    pub(crate) errors_logged: RateLimited,
    /// Dropping the last handle drops this sender, which stops the background tasks.
    _shutdown: watch::Sender<()>,
}

impl Cache {
    /// Starts building a Redis-backed cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    pub(crate) async fn connect(
        client: redis::Client,
        prefix: String,
        op_timeout: Duration,
        connect_timeout: Duration,
        call_budget: Duration,
    ) -> Cache {
        let wake = Wake::new();
        let shutdown = watch::Sender::new(());
        let channel = format!("{prefix}fills");
        let store = RedisStore::start(client, op_timeout, connect_timeout, channel, wake.clone(), &shutdown);
        store.first_connection().await;
        Self::with_store(prefix, Store::Redis(store), call_budget, wake, shutdown)
    }

    /// A cache in this process's memory, with the same semantics as Redis (TTL, lock,
    /// negative entries, the stored format), for tests and for running with no server.
    /// Holds at most 100,000 entries, evicting the least recently used.
    #[must_use]
    pub fn in_memory() -> Cache {
        let wake = Wake::new();
        let store = Store::Memory(Arc::new(MemoryStore::new(wake.fills.clone())));
        // Nothing in memory is slow: no budget.
        Self::with_store(String::new(), store, Duration::MAX, wake, watch::Sender::new(()))
    }

    fn with_store(
        prefix: String,
        store: Store,
        call_budget: Duration,
        wake: Wake,
        shutdown: watch::Sender<()>,
    ) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                prefix,
                store,
                call_budget,
                counters: Counters::default(),
                flights: wake.flights,
                fills: wake.fills,
                errors_logged: RateLimited::new(),
                _shutdown: shutdown,
            }),
        }
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
        read_through::<ResultOption<T, E>>(self, policy, key, &[], load).await
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
        read_through::<ResultOption<T, E>>(self, policy, key, tags, load).await
    }

    /// Invalidates every value cached with `tag` (as rendered, e.g. `"category:7"`), in
    /// one write whatever their number: the tag gets a new version, and values carry the
    /// versions they were loaded under. Loads running now are no longer shared with new
    /// callers, here at once and in other processes once the message reaches them.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate), this does not fail open.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<(), Error> {
        self.tag_target(tag)
            .invalidate(self)
            .await
            .map_err(StoreError::into_error)
    }

    /// Deletes `key` (as the template renders it, e.g. `"product:42"`) and voids every
    /// load of it in flight, in every process: their results are returned to the callers
    /// already waiting for them but not stored. Later callers start a new load: at once
    /// in this process, in others once the invalidation message reaches them.
    ///
    /// # Errors
    /// Unlike reads, invalidation does not fail open: if Redis did not confirm the
    /// delete ([`Error::Redis`], [`Error::Timeout`], [`Error::Unavailable`]) the old value
    /// may still be served until its TTL, and the caller should know.
    pub async fn invalidate(&self, key: &str) -> Result<(), Error> {
        self.key_target(key)
            .invalidate(self)
            .await
            .map_err(StoreError::into_error)
    }

    /// A key (as rendered) to invalidate.
    pub(crate) fn key_target(&self, key: &str) -> Target {
        Target::Key(self.key(key))
    }

    /// A tag (as rendered) to invalidate.
    pub(crate) fn tag_target(&self, tag: &str) -> Target {
        Target::Tag(tag_key(&self.inner.prefix, tag))
    }

    /// What `#[redis_invalidate]` does after its fn succeeded: invalidates `target` and,
    /// if Redis does not confirm, counts and logs it and keeps retrying in the background
    /// for up to [`INVALIDATION_RETRY`] instead of forgetting it.
    pub(crate) async fn invalidate_or_retry(&self, target: Target) {
        if let Err(e) = target.invalidate(self).await {
            self.inner.failed(e);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(retry_invalidation(self.clone(), target));
            }
        }
    }

    /// The full Redis key of a rendered key: prefix and hash tag added.
    #[must_use]
    pub fn key(&self, rendered: &str) -> String {
        full_key(&self.inner.prefix, rendered)
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }
}

impl Inner {
    /// Accounts for a Redis operation that failed open.
    pub(crate) fn failed(&self, error: StoreError) {
        match error {
            StoreError::Skipped => Counters::bump(&self.counters.skipped),
            StoreError::Timeout(_) | StoreError::OverBudget { .. } | StoreError::Redis(_) => {
                Counters::bump(&self.counters.errors);
                if let Some(suppressed) = self.errors_logged.admit() {
                    let hint = error.hint();
                    let error = error.into_error();
                    let cause = std::error::Error::source(&error)
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    tracing::warn!(
                        error = %error,
                        cause = %cause,
                        hint,
                        suppressed,
                        "redis-cached: redis operation failed; calls fail open to their loader"
                    );
                }
            }
        }
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
    async fn invalidate(&self, cache: &Cache) -> Result<(), StoreError> {
        match self {
            Target::Key(key) => {
                cache.inner.flights.detach(key);
                cache.inner.store.delete(key).await
            }
            Target::Tag(tag_key) => {
                cache.inner.flights.detach_tag(tag_key);
                cache.inner.store.bump_tag(tag_key).await
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
    let mut pause = Duration::from_millis(50);
    let key = target.name().to_owned();
    loop {
        tokio::time::sleep(pause).await;
        match target.invalidate(&cache).await {
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
            Err(_) => pause = (pause * 2).min(Duration::from_secs(2)),
        }
    }
}

static DEFAULT: RwLock<Option<Cache>> = RwLock::new(None);

/// Makes `cache` the default of every `#[redis_cached]` function that names no
/// `cache = ...`. Installing again replaces the default.
///
/// Until a cache is installed those functions call their loader directly (and say so
/// once in a warning).
pub fn install(cache: Cache) {
    *DEFAULT.write().unwrap_or_else(|poison| poison.into_inner()) = Some(cache);
}

/// The installed default cache.
pub(crate) fn installed() -> Option<Cache> {
    DEFAULT.read().unwrap_or_else(|poison| poison.into_inner()).clone()
}
