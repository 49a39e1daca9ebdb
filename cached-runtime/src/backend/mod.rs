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
    /// Redis answered with an error, or the connection failed.
    Redis(redis::RedisError),
}

impl StoreError {
    pub(crate) fn into_error(self) -> crate::Error {
        match self {
            StoreError::Skipped => crate::Error::Unavailable,
            StoreError::Timeout(limit) => crate::Error::Timeout(limit),
            StoreError::Redis(e) => crate::Error::Redis(e),
        }
    }
}

/// The answer to "may I load this key?", given in one round trip with the value check.
#[derive(Debug)]
pub(crate) enum Acquire {
    /// The value is there after all (filled since our read).
    Value(Vec<u8>),
    /// The lease is ours: load and fill.
    Won,
    /// Another caller holds the lease for this long: wait for its fill.
    Held { remaining: Duration },
}

/// The arguments of a lease request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseRequest<'a> {
    pub(crate) key: &'a str,
    pub(crate) lease_key: &'a str,
    pub(crate) token: &'a str,
    pub(crate) lease: Duration,
    /// `lock`: only one holder. Without it the lease is just a fence: always granted,
    /// taken over by the latest loader, and still voided by an invalidation.
    pub(crate) exclusive: bool,
    /// Return the value if one is stored (false when the stored one was unusable).
    pub(crate) check_value: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Store {
    Redis(Arc<RedisStore>),
    Memory(Arc<MemoryStore>),
}

impl Store {
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Redis(store) => store.get(key).await,
            Store::Memory(store) => Ok(store.get(key)),
        }
    }

    pub(crate) async fn acquire(&self, request: LeaseRequest<'_>) -> Result<Acquire, StoreError> {
        match self {
            Store::Redis(store) => store.acquire(request).await,
            Store::Memory(store) => Ok(store.acquire(request)),
        }
    }

    /// Stores `bytes` only while `token` still holds the lease, then drops the lease and
    /// announces the fill. `Ok(false)`: the lease was voided (an invalidation) or taken
    /// over; nothing was written.
    pub(crate) async fn fill(
        &self,
        key: &str,
        lease_key: &str,
        token: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.fill(key, lease_key, token, bytes, ttl).await,
            Store::Memory(store) => Ok(store.fill(key, lease_key, token, bytes, ttl)),
        }
    }

    /// Extends the lease while `token` holds it; `Ok(false)` when it no longer does.
    pub(crate) async fn extend(&self, lease_key: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Redis(store) => store.extend(lease_key, token, lease).await,
            Store::Memory(store) => Ok(store.extend(lease_key, token, lease)),
        }
    }

    /// Deletes the lease if `token` still holds it, and tells waiters to ask again.
    pub(crate) async fn release(&self, key: &str, lease_key: &str, token: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(store) => store.release(key, lease_key, token).await,
            Store::Memory(store) => {
                store.release(key, lease_key, token);
                Ok(())
            }
        }
    }

    /// Deletes a value and its lease together, voiding any load in flight, and tells
    /// waiters to ask again.
    pub(crate) async fn delete(&self, key: &str, lease_key: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(store) => store.delete(key, lease_key).await,
            Store::Memory(store) => {
                store.delete(key, lease_key);
                Ok(())
            }
        }
    }

    /// Whether fill announcements are reaching this process right now.
    pub(crate) fn fills_announced(&self) -> bool {
        match self {
            Store::Redis(store) => store.subscribed(),
            Store::Memory(_) => true,
        }
    }
}
