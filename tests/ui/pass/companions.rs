// `f_key` and `f_invalidate` exist, with the signatures a caller expects.

use std::sync::atomic::{AtomicUsize, Ordering};

use redis_cached::{Cache, redis_cached};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "price:<sku>:<currency>", ttl = 60, cache = cache)]
async fn price(cache: &Cache, sku: &str, currency: &str, discount: u64) -> u64 {
    let _ = (cache, currency);
    LOADS.fetch_add(1, Ordering::SeqCst);
    sku.len() as u64 * 100 - discount
}

fn main() {
    let cache = Cache::in_memory();
    // The key and the invalidation take only what the key (and `cache`) use: no `discount`.
    let key: String = price_key(&cache, "abc", "EUR");
    assert_eq!(key, "{price:abc:EUR}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(price(&cache, "abc", "EUR", 1).await, 299);
        assert_eq!(price(&cache, "abc", "EUR", 1).await, 299);
        assert_eq!(LOADS.load(Ordering::SeqCst), 1, "the second call is a hit");
        let invalidated: Result<(), redis_cached::Error> = price_invalidate(&cache, "abc", "EUR").await;
        invalidated.unwrap();
        assert_eq!(price(&cache, "abc", "EUR", 1).await, 299);
        assert_eq!(LOADS.load(Ordering::SeqCst), 2, "invalidation makes the next call load");
    });
}
