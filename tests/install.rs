//! The process-wide default cache (its own test binary: the default is global).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use redis_cached::{Cache, redis_cached};
use support::RedisServer;

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "greeting:<name>", ttl = 60)]
async fn greeting(name: &str) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("hello, {name}")
}

#[tokio::test]
async fn functions_use_the_installed_cache_and_run_uncached_before_one_is() {
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 2, "no cache installed: every call loads");
    assert_eq!(greeting_key("ada"), "{greeting:ada}");
    // Other processes' caches may hold the value: an invalidation that cannot act says so.
    assert!(matches!(
        greeting_invalidate("ada").await,
        Err(redis_cached::Error::NotInstalled)
    ));

    let memory = Cache::in_memory();
    redis_cached::install(memory.clone());
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 3);
    assert_eq!(memory.stats().hits, 1);

    let redis = RedisServer::start();
    let cache = redis.cache("app:").await;
    redis_cached::install(cache.clone());
    assert_eq!(greeting_key("ada"), "app:{greeting:ada}");
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 4, "installing again replaced the default");
    assert_eq!(cache.stats().hits, 1);
    greeting_invalidate("ada").await.unwrap();
    assert_eq!(greeting("ada").await, "hello, ada");
    assert_eq!(LOADS.load(Ordering::SeqCst), 5);
}
