//! The near cache against a real redis-server: two caches stand for two processes, and a
//! plain connection for any other client. Every test waits for conditions; the windows
//! it measures are printed and bounded only generously (the benchmark has the figures).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis::Commands;
use redis_cached::{Cache, Policy};
use support::RedisServer;

/// How long a change may take to reach another process's near cache before a test
/// fails: far above the sub-millisecond it takes, for a busy machine.
const WINDOW: Duration = Duration::from_secs(2);

static PRODUCT: Policy = Policy::new("product", Duration::from_secs(300)).near(Duration::from_secs(60));

/// A value the loader reads: the database.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU32>);

impl Db {
    fn set(&self, value: u32) {
        self.0.store(value, Ordering::SeqCst);
    }

    async fn load(&self) -> Result<Option<u32>, ()> {
        Ok(Some(self.0.load(Ordering::SeqCst)))
    }
}

async fn near_cache(redis: &RedisServer) -> Cache {
    Cache::builder()
        .url(redis.url())
        .prefix("shop:")
        .near_cache(1000)
        .build()
        .await
        .expect("build the cache")
}

async fn read(cache: &Cache, db: &Db, key: &str) -> Option<u32> {
    cache.get_or_load(&PRODUCT, key, db.load()).await.unwrap()
}

/// Reads until the value is served from the near cache.
async fn until_near_hit(cache: &Cache, db: &Db, key: &str) -> Option<u32> {
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        let before = cache.stats().near_hits;
        let value = read(cache, db, key).await;
        if cache.stats().near_hits > before {
            return value;
        }
        assert!(Instant::now() < deadline, "{key} never became a near hit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until `cache` no longer serves `old`; returns how long that took.
async fn until_not_served(cache: &Cache, db: &Db, key: &str, old: u32) -> Duration {
    let start = Instant::now();
    while read(cache, db, key).await == Some(old) {
        assert!(
            start.elapsed() < WINDOW,
            "the old value of {key} was still served after {WINDOW:?}"
        );
        tokio::task::yield_now().await;
    }
    let took = start.elapsed();
    println!("{key}: the old value stopped being served after {took:?}");
    took
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
