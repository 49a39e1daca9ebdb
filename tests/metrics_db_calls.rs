//! The guide's PromQL for "database calls per fn",
//! `sum by (fn) (rate(redis_cached_load_seconds_count[5m]))`, against the loads the cache
//! ran. (It counted `calls_total{outcome="load"}`, which misses the loads of calls that
//! fail open.)
//!
//! A binary of its own: the recorder is the process's.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use metrics_util::MetricKind;
use metrics_util::debugging::DebugValue;
use redis_cached::{Cache, redis_cached};
use support::{RedisServer, recorder};

static QUERIES: AtomicU64 = AtomicU64::new(0);

#[redis_cached(key = "price:<id>", ttl = 60, cache = cache)]
async fn price(cache: &Cache, id: u64) -> u64 {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    id * 100
}

/// While Redis is down every call goes to the database, which is when "database calls
/// per fn" matters most; those calls come to `skipped` (or `error`), never `load`, but
/// each loader run is a sample of `redis_cached_load_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_database_calls_query_counts_the_loads_made_while_redis_is_down() {
    let snapshotter = recorder::install();

    let down = RedisServer::not_started();
    let cache = down.cache_while_down("db:").await;
    for id in 0..5 {
        assert_eq!(price(&cache, id).await, id * 100);
    }
    assert_eq!(QUERIES.load(Ordering::Relaxed), 5, "five database calls");
    assert_eq!(cache.stats().loads, 5);

    let mut database_calls = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        if let (MetricKind::Histogram, DebugValue::Histogram(samples)) = (kind, value)
            && key.name() == "redis_cached_load_seconds"
            && labels == [("fn", "price")]
        {
            database_calls += samples.len();
        }
    }
    assert_eq!(database_calls, 5, "the guide's \"database calls per fn\"");
}
