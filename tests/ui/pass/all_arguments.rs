// Every argument at once, on a free fn that takes its cache as a parameter.

use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

#[redis_cached(
    key = "product:<id>",
    ttl = "5m",
    lock = "3s",
    negative = "30s",
    codec = "msgpack",
    version = 2,
    jitter = "10%",
    near = "10s",
    tags = ["catalog", "product:<id>"],
    cache = cache
)]
async fn get_product(cache: &Cache, id: u64) -> Option<Product> {
    let _ = cache;
    (id != 0).then(|| Product {
        id,
        name: format!("product {id}"),
    })
}

// Whole seconds, the default lease, the default negative TTL and the other codecs.
#[redis_cached(key = "name:<id>", ttl = 300, lock, negative, codec = "json")]
async fn find_name(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[redis_cached(key = "stock:<id>", ttl = "250ms", codec = "bincode", version = 0)]
async fn stock(id: u64) -> u64 {
    id * 10
}

// Every duration in whole seconds: a 10 s lease, `None` for 30 s, stale for a minute.
#[redis_cached(key = "rating:<id>", ttl = 300, lock = 10, negative = 30, stale = 60)]
async fn rating(id: u64) -> Option<u64> {
    (id != 0).then_some(id % 5)
}

// A stale window and refresh-ahead with the default beta.
#[redis_cached(key = "price:<id>", ttl = 60, stale = "1m", refresh = "xfetch")]
async fn price(id: u64) -> u64 {
    id * 100
}

// Never served from the near cache; a near max age in whole seconds.
#[redis_cached(key = "balance:<id>", ttl = 60, near = false)]
async fn balance(id: u64) -> u64 {
    id * 1000
}

#[redis_cached(key = "label:<id>", ttl = 60, near = 5)]
async fn label(id: u64) -> String {
    format!("label {id}")
}

fn main() {
    let cache = Cache::in_memory();
    assert_eq!(get_product_key(&cache, 7), "{product:7}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let product = get_product(&cache, 7).await.unwrap();
        assert_eq!(product.name, "product 7");
        assert_eq!(get_product(&cache, 0).await, None);
        get_product_invalidate(&cache, 7).await.unwrap();
        assert_eq!(find_name(3).await.as_deref(), Some("3"));
        assert_eq!(stock(4).await, 40);
        assert_eq!(price(4).await, 400);
        assert_eq!(rating(7).await, Some(2));
        assert_eq!(rating(0).await, None);
        assert_eq!(balance(2).await, 2000);
        assert_eq!(label(2).await, "label 2");
    });
}
