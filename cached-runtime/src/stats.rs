//! Counters of what the cache did, and the snapshot users read.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use serde::Serialize;

/// A snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// Every call of a cached function counts once as a near hit, a hit, a negative hit, a
/// stale hit, a refresh or a miss.
///
/// Serializes as a map of the counters by field name, e.g. for a JSON status endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the near cache (this process's memory, `near_cache`) without
    /// a round trip to Redis, with a value or a "not found". Not counted in `hits` or
    /// `negative_hits`.
    pub near_hits: u64,
    /// Calls answered from Redis with a stored value.
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
    /// Redis budget (`call_budget`); each one failed open. Also each failed connection
    /// attempt, so a Redis down since the cache was built shows here.
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
    /// The share of calls answered from the cache, counting near, negative and stale hits, in
    /// `0.0..=1.0`; refreshes count as calls not answered from it. `0.0` before the first
    /// call.
    #[must_use]
    pub fn hit_rate(&self) -> f64 {
        let answered = self
            .near_hits
            .saturating_add(self.hits)
            .saturating_add(self.negative_hits)
            .saturating_add(self.stale_hits);
        let calls = answered.saturating_add(self.refreshes).saturating_add(self.misses);
        if calls == 0 {
            0.0
        } else {
            answered as f64 / calls as f64
        }
    }
}

/// What one call came to, for its span and `redis_cached_calls_total`: exactly one per
/// call. A Redis error (or an operation skipped while Redis is unavailable) on the way
/// names the call whatever answered it: the call failed open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered from the near cache, with a value or a "not found".
    NearHit,
    /// Answered from Redis with a stored value.
    Hit,
    /// Answered from Redis with a stored "not found".
    NegativeHit,
    /// Answered with a value past its ttl (within `stale`): while another caller
    /// refreshes it, or because this call's refresh failed. (A failed early refresh,
    /// `refresh`, answers with a value still within its ttl: a hit.)
    StaleHit,
    /// A miss answered by a value another process (or cache) stored meanwhile.
    Miss,
    /// A miss answered by a load already running in this process.
    Coalesced,
    /// Ran the loader: a miss, or a refresh of a value due for one.
    Load,
    /// A Redis operation failed or ran out of time; the call failed open.
    Error,
    /// Redis was unavailable (connecting, or the breaker open); the call failed open
    /// without trying it.
    Skipped,
}

impl Outcome {
    /// Every outcome, each at the index of its discriminant.
    pub(crate) const ALL: [Outcome; 9] = [
        Outcome::NearHit,
        Outcome::Hit,
        Outcome::NegativeHit,
        Outcome::StaleHit,
        Outcome::Miss,
        Outcome::Coalesced,
        Outcome::Load,
        Outcome::Error,
        Outcome::Skipped,
    ];

    /// The label value, as `redis_cached_calls_total{outcome}` and the span show it.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::NearHit => "near_hit",
            Outcome::Hit => "hit",
            Outcome::NegativeHit => "negative_hit",
            Outcome::StaleHit => "stale_hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Load => "load",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// What a counter counts: one per field of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    NearHits,
    Hits,
    NegativeHits,
    StaleHits,
    Refreshes,
    Misses,
    Loads,
    Coalesced,
    LockWaits,
    Errors,
    Skipped,
    Unreadable,
    Unstorable,
    TypeMismatches,
}

impl Count {
    /// What a call counted here came to, for the counts that say how a call was
    /// answered; `None` for the others (a miss's outcome is named by what answers it).
    pub(crate) const fn outcome(self) -> Option<Outcome> {
        match self {
            Count::NearHits => Some(Outcome::NearHit),
            Count::Hits => Some(Outcome::Hit),
            Count::NegativeHits => Some(Outcome::NegativeHit),
            Count::StaleHits => Some(Outcome::StaleHit),
            Count::Loads => Some(Outcome::Load),
            Count::Coalesced => Some(Outcome::Coalesced),
            Count::Refreshes
            | Count::Misses
            | Count::LockWaits
            | Count::Errors
            | Count::Skipped
            | Count::Unreadable
            | Count::Unstorable
            | Count::TypeMismatches => None,
        }
    }
}

const COUNTS: usize = 14;

/// Stripes per counter set: a thread counts in its own stripe, so calls on two cores
/// never write the same cache line (a shared counter bounced between the cores on
/// every hit).
const STRIPES: usize = 8;

/// One stripe, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe([AtomicU64; COUNTS]);

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    stripes: [Stripe; STRIPES],
}

/// The stripe of the current thread, assigned in turn on a thread's first count.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    STRIPE.try_with(|stripe| *stripe).unwrap_or(0)
}

impl Counters {
    pub(crate) fn bump(&self, count: Count) {
        self.stripes[stripe()].0[count as usize].fetch_add(1, Relaxed);
    }

    /// Moves a count made in advance to the counter it turned out to belong to.
    pub(crate) fn recount(&self, from: Count, to: Count) {
        let stripe = &self.stripes[stripe()].0;
        // Wrapping: the count may have been made on another thread's stripe; the sum is right.
        stripe[from as usize].fetch_sub(1, Relaxed);
        stripe[to as usize].fetch_add(1, Relaxed);
    }

    /// The count over every stripe. A snapshot taken while a count moves between two
    /// stripes may see the move's subtraction before the count it moves: never below 0.
    fn sum(&self, count: Count) -> u64 {
        let sum = self.stripes.iter().fold(0u64, |sum, stripe| {
            sum.wrapping_add(stripe.0[count as usize].load(Relaxed))
        });
        if sum > i64::MAX as u64 { 0 } else { sum }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            near_hits: self.sum(Count::NearHits),
            hits: self.sum(Count::Hits),
            negative_hits: self.sum(Count::NegativeHits),
            stale_hits: self.sum(Count::StaleHits),
            refreshes: self.sum(Count::Refreshes),
            misses: self.sum(Count::Misses),
            loads: self.sum(Count::Loads),
            coalesced: self.sum(Count::Coalesced),
            lock_waits: self.sum(Count::LockWaits),
            errors: self.sum(Count::Errors),
            skipped: self.sum(Count::Skipped),
            unreadable: self.sum(Count::Unreadable),
            unstorable: self.sum(Count::Unstorable),
            type_mismatches: self.sum(Count::TypeMismatches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a snapshot that saw a recount's subtraction (on one thread's stripe)
    /// before the count it moved (on another's) reported `u64::MAX`, and `hit_rate`
    /// overflowed.
    #[test]
    fn a_snapshot_between_a_recounts_halves_never_goes_below_zero() {
        let counters = Counters::default();
        counters.recount(Count::Refreshes, Count::Hits);
        let stats = counters.snapshot();
        assert_eq!((stats.refreshes, stats.hits), (0, 1));
        assert!((0.0..=1.0).contains(&stats.hit_rate()));
    }

    #[test]
    fn stats_serialize_as_counters_by_name() {
        let counters = Counters::default();
        counters.bump(Count::Hits);
        counters.bump(Count::Hits);
        counters.bump(Count::Misses);
        counters.bump(Count::TypeMismatches);
        let json = serde_json::to_value(counters.snapshot()).unwrap();
        let fields = json.as_object().expect("a map");
        assert_eq!(fields.len(), COUNTS, "one field per counter: {json}");
        assert_eq!(json["hits"], 2);
        assert_eq!(json["misses"], 1);
        assert_eq!(json["type_mismatches"], 1);
        assert_eq!(json["negative_hits"], 0);
    }

    #[test]
    fn a_recount_on_another_thread_keeps_the_sums_right() {
        let counters = std::sync::Arc::new(Counters::default());
        counters.bump(Count::Refreshes);
        let moved = counters.clone();
        std::thread::spawn(move || {
            moved.recount(Count::Refreshes, Count::Hits);
        })
        .join()
        .unwrap();
        let stats = counters.snapshot();
        assert_eq!((stats.refreshes, stats.hits), (0, 1));
    }
}
