//! The stores behind a cache. This is the only module that names `redis::`; the read
//! path above it is written once for every store.

pub(crate) mod memory;
pub(crate) mod standalone;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use memory::MemoryStore;
pub(crate) use standalone::RedisStore;

/// How an operation failed; each one fails open in the read path.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Not attempted: the breaker is open or no connection is up.
    Skipped,
    /// Redis did not answer within `op_timeout`.
    Timeout(Duration),
    /// The call had spent its whole Redis budget (`call_budget`); `sent`: the operation
    /// was cut short on the way, rather than never sent.
    OverBudget { limit: Duration, sent: bool },
    /// Redis answered with an error, or the connection failed.
    Redis(redis::RedisError),
}

impl StoreError {
    /// What the user can do about it, where the error says.
    pub(crate) fn hint(&self) -> &'static str {
        match self {
            StoreError::Redis(e) => hint(e),
            _ => "",
        }
    }

    /// Whether the operation may have reached Redis (and so, for a lease request, may
    /// have taken the lease).
    pub(crate) fn sent(&self) -> bool {
        !matches!(self, StoreError::Skipped | StoreError::OverBudget { sent: false, .. })
    }

    pub(crate) fn into_error(self) -> crate::Error {
        match self {
            StoreError::Skipped => crate::Error::Unavailable,
            StoreError::Timeout(limit) | StoreError::OverBudget { limit, .. } => crate::Error::Timeout(limit),
            StoreError::Redis(e) => crate::Error::Redis(e),
        }
    }
}

/// How long a tag version lives at least after its last use by a load (or its bump).
/// When it expires, the values computed under it become misses (never stale ones).
pub(crate) const TAG_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Parses a stored tag version.
pub(crate) fn parse_version(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// What the user can do about `e`, where the error says.
pub(crate) fn hint(e: &redis::RedisError) -> &'static str {
    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) {
        "the Redis user lacks a permission the cache needs; grant the README's ACL line"
    } else {
        ""
    }
}

/// A stored entry as read, with how long the store keeps it: asked for by functions
/// with `stale` or `refresh`, which judge freshness by it (the store's clock, never the
/// writer's). `None` when not asked for, or when the entry has no expiry.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) bytes: Vec<u8>,
    pub(crate) remaining: Option<Duration>,
}

impl Entry {
    /// The entry without its remaining time: judged as a plain value.
    pub(crate) fn untimed(self) -> Self {
        Self {
            remaining: None,
            ..self
        }
    }
}

/// The answer to "may I load this key?", given in one round trip with the value check.
#[derive(Debug)]
pub(crate) enum Acquire {
    /// The value is there after all (filled since our read), with its remaining time.
    Value(Entry),
    /// The lease is ours: load and fill.
    Won,
    /// Another caller holds the lease for this long: wait for its fill.
    Held { remaining: Duration },
}

/// One load's claim on a key. Under `lock` it is an exclusive lease (`<key>:lease`, one
/// token, `NX`); without `lock` it is a fence (`<key>:fence`, a set of tokens) that every
/// load joins without waiting and that only an invalidation voids. Either way the fill
/// stores only while the claim is valid.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) key: String,
    pub(crate) lease_key: String,
    pub(crate) token: String,
    pub(crate) exclusive: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Store {
    Redis(Arc<RedisStore>),
    Memory(Arc<MemoryStore>),
}

impl Store {
    /// The entry of `key`, with its remaining time if `timed`.
    pub(crate) async fn get(&self, key: &str, timed: bool) -> Result<Option<Entry>, StoreError> {
        match self {
            Store::Redis(store) => store.get(key, timed).await,
            Store::Memory(store) => Ok(store.get(key, timed)),
        }
    }

    /// The entry of `key` (with its remaining time if `timed`) and the current versions of
    /// its tags, in one round trip. A tag with no (readable) version is `None`.
    pub(crate) async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        match self {
            Store::Redis(store) => store.get_tagged(key, tag_keys, timed).await,
            Store::Memory(store) => Ok(store.get_tagged(key, tag_keys, timed)),
        }
    }

    /// The current versions of tags (`None`: none, or unreadable), in one round trip;
    /// each existing one is kept at least `life` (and [`TAG_TTL`]) from now.
    pub(crate) async fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Result<Vec<Option<u64>>, StoreError> {
        match self {
            Store::Redis(store) => store.touch_tags(tag_keys, life.max(TAG_TTL)).await,
            Store::Memory(store) => Ok(store.touch_tags(tag_keys, life.max(TAG_TTL))),
        }
    }

    /// The versions a load runs under: each tag's current one, created (at random) if it
    /// has none. Each tag is kept at least `life` (and [`TAG_TTL`]) from now, so a tag in
    /// use never expires while values computed under it live.
    pub(crate) async fn tag_versions_for_load(
        &self,
        tag_keys: &[String],
        life: Duration,
    ) -> Result<Vec<u64>, StoreError> {
        match self {
            Store::Redis(store) => store.tag_versions_for_load(tag_keys, life.max(TAG_TTL)).await,
            Store::Memory(store) => Ok(store.tag_versions_for_load(tag_keys, life.max(TAG_TTL))),
        }
    }

    /// Gives a tag a new version, so every value computed under the old one is stale, and
    /// tells every process.
    pub(crate) async fn bump_tag(&self, tag_key: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(store) => store.bump_tag(tag_key).await,
            Store::Memory(store) => {
                store.bump_tag(tag_key);
                Ok(())
            }
        }
    }

    /// Returns the stored entry if `check_value` and there is one; else takes the lease
    /// for `duration` (or reports its holder).
    pub(crate) async fn acquire(
        &self,
        lease: &Lease,
        duration: Duration,
        check_value: bool,
    ) -> Result<Acquire, StoreError> {
        match self {
            Store::Redis(store) => store.acquire(lease, duration, check_value).await,
            Store::Memory(store) => Ok(store.acquire(lease, duration, check_value)),
        }
    }

    /// Stores `bytes` only while the lease is valid, gives the lease up and announces
    /// the fill. `Ok(false)`: the lease was voided (an invalidation) or expired; nothing
    /// was written.
    pub(crate) async fn fill(&self, lease: &Lease, bytes: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.fill(lease, bytes, ttl).await,
            Store::Memory(store) => Ok(store.fill(lease, bytes, ttl)),
        }
    }

    /// Deletes the stored value and gives the lease up, only while the lease is ours (a
    /// refresh that found the value gone), and announces it. `Ok(false)`: the lease was
    /// voided or expired; nothing was deleted.
    pub(crate) async fn clear(&self, lease: &Lease) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.clear(lease).await,
            Store::Memory(store) => Ok(store.clear(lease)),
        }
    }

    /// Extends the lease while it is valid; `Ok(false)` when it no longer is.
    pub(crate) async fn extend(&self, lease: &Lease, duration: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.extend(lease, duration).await,
            Store::Memory(store) => Ok(store.extend(lease, duration)),
        }
    }

    /// Gives the lease up if it is still ours, and tells waiters to ask again. `Ok(false)`:
    /// it was no longer ours (an invalidation voided it, or it expired).
    pub(crate) async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.release(lease).await,
            Store::Memory(store) => Ok(store.release(lease)),
        }
    }

    /// Deletes a value with its lease and fence, voiding every load in flight, and tells
    /// every process (waiters and in-process loads) about it.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(store) => store.delete(key).await,
            Store::Memory(store) => {
                store.delete(key);
                Ok(())
            }
        }
    }

    /// Which subscription delivers announcements now (`None`: none does). The same value
    /// at two moments means none was missed in between.
    pub(crate) fn announcements(&self) -> Option<u64> {
        match self {
            Store::Redis(store) => store.subscription(),
            Store::Memory(_) => Some(0),
        }
    }

    /// Whether the cache is calling the store (its breaker is closed).
    pub(crate) fn reachable(&self) -> bool {
        match self {
            Store::Redis(store) => store.reachable(),
            Store::Memory(_) => true,
        }
    }
}
