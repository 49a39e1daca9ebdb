//! `redis_cached_available` with two caches in one process: the gauge has no label, so
//! each cache's task overwrites the other's value.
//!
//! A binary of its own: the recorder and the gauge are the process's.

mod support;

use std::time::Duration;

use redis_cached::Cache;
use support::{RedisServer, recorder};

/// The guide: the gauge is "1 while Redis is answering, 0 while the cache fails open
/// (`available()`)", and `min_over_time(redis_cached_available[5m])` is the alert. An
/// in-memory cache (always "available") made after a Redis cache that is down sets
/// the shared gauge to 1, and the down cache's task never sets it back (it only sets
/// it on a change): the alert never fires while every call fails open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauge_says_redis_is_up_while_a_cache_is_down_when_another_cache_exists() {
    let snapshotter = recorder::install();

    let down = RedisServer::not_started();
    let cache = down.cache_while_down("gauge:").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!cache.available());

    // Another cache in the same process, e.g. an in-memory one for a local table.
    let _local = Cache::in_memory();
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(!cache.available(), "redis is still down: every call fails open");
    assert_eq!(
        recorder::gauge(&snapshotter, "redis_cached_available"),
        Some(0.0),
        "redis_cached_available must not say 1 while a cache fails every call open"
    );
}
