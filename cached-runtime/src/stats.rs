//! Counters of what the cache did, and the snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Every call of a cached function counts once as a hit, a negative hit, a stale hit, a
/// refresh or a miss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the cache with a stored value.
    pub hits: u64,
    /// Calls answered from the cache with a stored "not found" (`negative`).
    pub negative_hits: u64,
    /// Calls answered with a value past its ttl (within `stale`), while one caller
    /// refreshed it or because the refresh failed. Not counted in `hits`.
    pub stale_hits: u64,
    /// Calls that found a value due for refresh (`refresh`, or past its ttl within
    /// `stale`) and answered with the reloaded result.
    pub refreshes: u64,
    /// Calls the cache could not answer (absent, expired, unreadable, or Redis unavailable).
    pub misses: u64,
    /// Loader runs started by this cache: the calls that went to the database.
    pub loads: u64,
    /// Misses that waited for a load already running in this process instead of loading.
    pub coalesced: u64,
    /// Misses that waited for another process (or cache) holding the key's lease.
    pub lock_waits: u64,
    /// Redis errors, operations slower than `op_timeout`, and calls that ran out of their
    /// Redis budget (`call_budget`); each one failed open.
    pub errors: u64,
    /// Redis operations not attempted because the cache had stopped calling Redis
    /// after repeated failures (they failed open at once).
    pub skipped: u64,
    /// Stored values that could not be read back (corrupt or truncated); they were
    /// treated as misses and overwritten.
    pub unreadable: u64,
    /// Loaded values that were not stored because the codec could not read them back.
    pub unstorable: u64,
    /// Stored values of another type found under a function's key (two functions share a
    /// key template, or a generic function is used at two types); they were treated as
    /// misses and overwritten. Logged once per function, naming both types.
    pub type_mismatches: u64,
}

impl Stats {
    /// The share of calls answered from the cache, counting negative and stale hits, in
    /// `0.0..=1.0`; refreshes count as calls not answered from it. `0.0` before the first
    /// call.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        let answered = self.hits + self.negative_hits + self.stale_hits;
        let calls = answered + self.refreshes + self.misses;
        if calls == 0 {
            0.0
        } else {
            answered as f64 / calls as f64
        }
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) stale_hits: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) unreadable: AtomicU64,
    pub(crate) unstorable: AtomicU64,
    pub(crate) type_mismatches: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Moves a count made in advance to the counter it turned out to belong to.
    pub(crate) fn recount(from: &AtomicU64, to: &AtomicU64) {
        from.fetch_sub(1, Relaxed);
        to.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.load(Relaxed),
            negative_hits: self.negative_hits.load(Relaxed),
            stale_hits: self.stale_hits.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            misses: self.misses.load(Relaxed),
            loads: self.loads.load(Relaxed),
            coalesced: self.coalesced.load(Relaxed),
            lock_waits: self.lock_waits.load(Relaxed),
            errors: self.errors.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            unreadable: self.unreadable.load(Relaxed),
            unstorable: self.unstorable.load(Relaxed),
            type_mismatches: self.type_mismatches.load(Relaxed),
        }
    }
}
