//! `redis_cached_available` when the application installs its recorder after building
//! the cache (state first, then the exporter).
//!
//! A binary of its own: the recorder and the gauge are the process's.

mod support;

use std::time::Duration;

use support::{RedisServer, eventually, recorder};

/// The gauge task writes only when `available()` changes: its one write came before
/// the recorder existed and went to the no-op recorder, so the series never appears
/// while Redis stays up, and an alert on `min_over_time(redis_cached_available[5m])`
/// has no data; nor will it see the first 0 as a change from a value it never had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauge_is_set_when_the_recorder_is_installed_after_the_cache_is_built() {
    let redis = RedisServer::start();
    let cache = redis.cache("late:").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.available());

    let snapshotter = recorder::install();
    eventually("redis_cached_available reads 1, redis being up", async || {
        recorder::gauge(&snapshotter, "redis_cached_available") == Some(1.0)
    })
    .await;
}
