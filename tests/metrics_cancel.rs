//! A call whose future is dropped (a caller's timeout, a client that went away) is
//! counted in `stats()` but never in `redis_cached_calls_total`, and its loader's time
//! never reaches `redis_cached_load_seconds`.
//!
//! A binary of its own: the recorder is the process's.

mod support;

use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, Snapshotter};
use redis_cached::{Cache, redis_cached};
use support::{RedisServer, recorder};

/// A slow query.
#[redis_cached(key = "report:<id>", ttl = 60, cache = cache)]
async fn report(cache: &Cache, id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    id
}

/// `redis_cached_calls_total{fn="report"}`, summed over outcomes, and the number of
/// `redis_cached_load_seconds{fn="report"}` samples.
fn seen(snapshotter: &Snapshotter) -> (u64, usize) {
    let (mut calls, mut loads) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let ours = key.labels().any(|l| l.key() == "fn" && l.value() == "report");
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) if ours && key.name() == "redis_cached_calls_total" => {
                calls += n;
            }
            (MetricKind::Histogram, DebugValue::Histogram(xs)) if ours && key.name() == "redis_cached_load_seconds" => {
                loads += xs.len();
            }
            _ => {}
        }
    }
    (calls, loads)
}

/// The docs: "Calls of cached fns, each counted once by what it came to". A caller's
/// timeout drops the call while its loader runs: `stats()` counts the miss and the
/// load, the metric nothing. The slow loads a timeout cuts off are exactly the ones
/// `load_seconds` and `outcome="load"` are watched for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_by_its_callers_timeout_is_counted_once_like_in_stats() {
    let snapshotter = recorder::install();

    let redis = RedisServer::start();
    let cache = redis.cache("cancel:").await;
    let timed_out = tokio::time::timeout(Duration::from_millis(100), report(&cache, 1)).await;
    assert!(timed_out.is_err(), "the caller gave up");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.loads), (1, 1), "{stats:?}");

    let (calls, loads) = seen(&snapshotter);
    assert_eq!(calls, 1, "the call is counted once, as stats() counts it");
    assert_eq!(loads, 1, "the loader that ran is timed");
}
