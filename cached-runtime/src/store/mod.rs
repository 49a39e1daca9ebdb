//! The stores behind a cache, and the contract they share.
//!
//! [`Store`] is every operation the read path and invalidation need, each one atomic.
//! The Redis operations are written once ([`RedisStore`]) over a [`Topology`]
//! that only connects and supervises (standalone, cluster); the in-memory store implements
//! the same contract. Every store tells the cache what happened elsewhere through the
//! same [`Listener`] of typed [`Announcement`]s. This module is the only code that names
//! `redis::` (the public `Error` holds redis-rs's errors boxed, as causes).

pub(crate) mod announce;
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod masters;
#[cfg(feature = "memory")]
pub(crate) mod memory;
pub(crate) mod redis_store;
mod replication;
#[cfg(test)]
pub(crate) mod scripted;
mod scripts;
pub(crate) mod sentinel;
pub(crate) mod standalone;
mod subscription;
mod supervise;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod tracking;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use announce::{Announcement, Listener};
pub(crate) use cluster::Cluster;
#[cfg(feature = "memory")]
pub(crate) use memory::MemoryStore;
pub(crate) use redis_store::RedisStore;
pub(crate) use sentinel::{Sentinel, Sentinels};
pub(crate) use standalone::Standalone;
#[cfg(feature = "tls")]
use tls::reason as tls_reason;
pub(crate) use tracking::Tracked;

use crate::key::{fence_key, lease_key};
use crate::random::new_token;
use crate::stats::Counters;
use crate::telemetry::Failure;

/// The operations a store offers. Each is one atomic step (one round trip on Redis).
/// Futures are `Send`; errors mean "fail open", never "give up the call".
pub(crate) trait Store: Clone + fmt::Debug + Send + Sync + 'static {
    /// The entry of `key`, with its remaining time if `timed`.
    fn get(&self, key: &str, timed: bool) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// The entry of `key` (with its remaining time if `timed`) and the current versions
    /// of its tags. A tag with no (readable) version is `None`.
    fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> impl Future<Output = Result<(Option<Entry>, Vec<Option<u64>>), StoreError>> + Send;

    /// The current versions of tags (`None`: none, or unreadable); each existing one is
    /// kept at least `life` from now, never shortened.
    fn touch_tags(
        &self,
        tag_keys: &[String],
        life: Duration,
    ) -> impl Future<Output = Result<Vec<Option<u64>>, StoreError>> + Send;

    /// The versions a load runs under: each tag's current one, created (at random) if
    /// it has none; each kept at least `life` from now, never shortened.
    fn tag_versions_for_load(
        &self,
        tag_keys: &[String],
        life: Duration,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send;

    /// Gives a tag a new version, so every value computed under the old one is stale,
    /// and announces [`Announcement::TagBumped`].
    fn bump_tag(&self, tag_key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns the stored entry if there is one that is not `expected`; else takes
    /// `claim` for `duration`, or reports the lease's holder.
    fn acquire(
        &self,
        claim: &Claim,
        duration: Duration,
        expected: Expected<'_>,
    ) -> impl Future<Output = Result<Acquire, StoreError>> + Send;

    /// Stores `bytes` for `ttl` only while `claim` holds, gives it up and announces
    /// [`Announcement::Filled`]. `Ok(false)`: the claim was voided (an invalidation) or
    /// expired; nothing was written.
    fn fill(&self, claim: &Claim, bytes: &[u8], ttl: Duration)
    -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the stored value and gives `claim` up, only while it holds (a refresh
    /// whose loader found nothing), and announces [`Announcement::Released`].
    fn clear(&self, claim: &Claim) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Extends `claim` while it holds; `Ok(false)` when it no longer does.
    fn extend(&self, claim: &Claim, duration: Duration) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives `claim` up if it still holds; a lease's release is announced
    /// ([`Announcement::Released`]) so its waiters ask again.
    fn release(&self, claim: &Claim) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a value with its lease and fence, voiding every load in flight, and
    /// announces [`Announcement::Deleted`].
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which subscription delivers announcements now (`None`: none does). The same value
    /// at two moments means none was missed in between.
    fn announcements(&self) -> Option<u64>;

    /// Whether the store is being called (its breaker is closed).
    fn reachable(&self) -> bool;
}

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
    Redis(::redis::RedisError),
}

impl From<::redis::RedisError> for StoreError {
    fn from(error: ::redis::RedisError) -> Self {
        StoreError::Redis(error)
    }
}

impl StoreError {
    /// What the user can do about it, where the error says.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            StoreError::Redis(e) => hint(e),
            _ => None,
        }
    }

    /// What kind of failure it is, for `redis_cached_redis_errors_total`; `None` for an
    /// operation that was not attempted.
    pub(crate) fn failure(&self) -> Option<Failure> {
        match self {
            StoreError::Skipped => None,
            StoreError::Timeout(_) => Some(Failure::Timeout),
            StoreError::OverBudget { .. } => Some(Failure::Budget),
            StoreError::Redis(e) => Some(failure(e)),
        }
    }

    /// Whether the operation may have reached Redis (and so, for a lease request, may
    /// have taken the lease).
    pub(crate) fn sent(&self) -> bool {
        !matches!(self, StoreError::Skipped | StoreError::OverBudget { sent: false, .. })
    }
}

/// What kind of failure a Redis error is.
pub(crate) fn failure(e: &::redis::RedisError) -> Failure {
    use ::redis::ServerErrorKind as Server;
    match e.kind() {
        ::redis::ErrorKind::Server(Server::NoPerm) => Failure::NoPerm,
        ::redis::ErrorKind::Server(Server::ReadOnly) => Failure::ReadOnly,
        ::redis::ErrorKind::Server(
            Server::BusyLoading | Server::MasterDown | Server::TryAgain | Server::ClusterDown,
        ) => Failure::Unavailable,
        _ if e.code() == Some("OOM") => Failure::Oom,
        _ if e.is_timeout() => Failure::Timeout,
        _ if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => Failure::Connection,
        _ => Failure::Other,
    }
}

/// What the user can do about `e` (or why a TLS connection failed), where the error says.
pub(crate) fn hint(e: &::redis::RedisError) -> Option<&'static str> {
    if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoPerm) {
        return Some(
            "the Redis user lacks a permission the cache needs; grant the ACL line of the guide's Least privilege section",
        );
    }
    tls_reason(e)
}

/// Without the `tls` feature no connection is TLS.
#[cfg(not(feature = "tls"))]
fn tls_reason(_: &::redis::RedisError) -> Option<&'static str> {
    None
}

/// What a store is told when it is built: its limits, and whom it announces to.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// The deadline of every operation.
    pub(crate) op_timeout: Duration,
    /// The deadline of one connection or subscription attempt.
    pub(crate) connect_timeout: Duration,
    /// Stored values larger than this are never returned (they could not be decoded).
    pub(crate) value_limit: usize,
    /// How long a bumped tag version lives.
    pub(crate) tag_ttl: Duration,
}

/// What a topology is started with, besides where Redis is: its limits, the channel its
/// announcements are heard on and whom they go to, and the counters its failed
/// connection attempts count in.
#[derive(Debug)]
pub(crate) struct Supervision {
    pub(crate) limits: Limits,
    pub(crate) channel: String,
    pub(crate) listener: Arc<dyn Listener>,
    pub(crate) counters: Arc<Counters>,
}

/// Parses a stored tag version.
pub(crate) fn parse_version(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A stored entry as read, with how long the store keeps it: asked for by functions
/// with `stale` or `refresh`, which judge freshness by it (the store's clock, never the
/// writer's). `None` when not asked for, or when the entry has no expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) bytes: Vec<u8>,
    pub(crate) remaining: Option<Duration>,
}

/// The stored value a lease request expects to find.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expected<'a> {
    /// None: any stored value is returned instead of taking the claim.
    Nothing,
    /// These bytes (a value found unusable, or the value a refresh replaces): the claim
    /// is taken over them; any other value is returned.
    Bytes(&'a [u8]),
}

/// The answer to a lease request, given in one round trip with the value check.
#[derive(Debug)]
pub(crate) enum Acquire {
    /// A value other than the expected one is stored, with its remaining time.
    Value(Entry),
    /// The claim is ours: load and fill. `over_expected`: the expected bytes were still
    /// stored (rather than nothing).
    Won { over_expected: bool },
    /// Another caller holds the lease for this long: wait for its fill.
    Held { remaining: Duration },
}

/// One load's claim on a key; the fill stores only while it holds.
#[derive(Debug, Clone)]
pub(crate) enum Claim {
    /// Under `lock` (and for every refresh): the one lease of the key (`<key>:lease`,
    /// one token, `NX`). Other loaders wait for its holder.
    Lease(Token),
    /// Without `lock`: the key's fence (`<key>:fence`, the set of tokens of every load in
    /// flight), which every load joins without waiting and only an invalidation voids.
    Fence(Token),
}

/// Which key a claim is on, where it is kept, and whose it is.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) key: String,
    pub(crate) claim_key: String,
    pub(crate) token: String,
}

impl Claim {
    /// A new lease on `key` (a full key).
    pub(crate) fn lease(key: &str) -> Self {
        Claim::Lease(Token {
            key: key.to_owned(),
            claim_key: lease_key(key),
            token: new_token(),
        })
    }

    /// A new place in `key`'s fence.
    pub(crate) fn fence(key: &str) -> Self {
        Claim::Fence(Token {
            key: key.to_owned(),
            claim_key: fence_key(key),
            token: new_token(),
        })
    }

    pub(crate) fn token(&self) -> &Token {
        match self {
            Claim::Lease(token) | Claim::Fence(token) => token,
        }
    }

    /// The key it claims.
    pub(crate) fn key(&self) -> &str {
        &self.token().key
    }
}
