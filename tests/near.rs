//! The near cache against a real redis-server: two caches stand for two processes, and a
//! plain connection for any other client. Every test waits for conditions; the windows
//! it measures are printed and bounded only generously (the benchmark has the figures).

mod support;

use redis::Commands;
use redis_cached::Cache;
use support::RedisServer;
use support::near::{Db, read, until_near_hit, until_not_served};

async fn near_cache(redis: &RedisServer) -> Cache {
    Cache::builder()
        .url(redis.url())
        .prefix("shop:")
        .near_cache(1000)
        .build()
        .await
        .expect("build the cache")
}

#[tokio::test]
async fn a_hit_is_served_from_the_near_cache_without_redis() {
    let redis = RedisServer::start();
    let (cache, db) = (near_cache(&redis).await, Db::default());
    db.set(7);
    assert_eq!(until_near_hit(&cache, &db, "product:1").await, Some(7));
    let stats = cache.stats();
    assert!(stats.near_hits >= 1, "{stats:?}");
    assert_eq!(stats.loads, 1, "{stats:?}");
}

#[tokio::test]
async fn an_invalidation_in_one_process_reaches_the_others_near_cache() {
    let redis = RedisServer::start();
    let (a, b, db) = (near_cache(&redis).await, near_cache(&redis).await, Db::default());
    db.set(1);
    assert_eq!(until_near_hit(&b, &db, "product:1").await, Some(1));
    db.set(2);
    a.invalidate("product:1").await.unwrap();
    until_not_served(&b, &db, "product:1", 1).await;
    assert_eq!(read(&b, &db, "product:1").await, Some(2));
}

#[tokio::test]
async fn the_invalidating_process_reads_the_new_value_at_once() {
    let redis = RedisServer::start();
    let (a, db) = (near_cache(&redis).await, Db::default());
    db.set(1);
    assert_eq!(until_near_hit(&a, &db, "product:1").await, Some(1));
    db.set(2);
    a.invalidate("product:1").await.unwrap();
    assert_eq!(
        read(&a, &db, "product:1").await,
        Some(2),
        "no window in the calling process"
    );
}

#[tokio::test]
async fn a_write_by_another_client_reaches_the_near_cache() {
    let redis = RedisServer::start();
    let (b, db) = (near_cache(&redis).await, Db::default());
    db.set(1);
    assert_eq!(until_near_hit(&b, &db, "product:1").await, Some(1));
    db.set(2);
    let _: () = redis.conn().set(b.key("product:1"), "overwritten").unwrap();
    until_not_served(&b, &db, "product:1", 1).await;
}
