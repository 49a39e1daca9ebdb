//! A product lookup over a slow (200 ms) simulated database, cached with
//! `#[redis_cached]`: the first call is slow, the second is a cache hit, a missing id is
//! cached as "not found", and a price change evicts the cached product with
//! `#[redis_invalidate]`.
//!
//! The write commits whatever Redis does: with Redis down, every call runs the loader
//! (fails open), the eviction is logged and retried in the background, and the example
//! still exits 0. A `tracing` subscriber prints why.
//!
//! ```text
//! cargo run --example quickstart                                   # in-memory cache
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart  # Redis
//! REDIS_URL=redis://127.0.0.1:1 cargo run --example quickstart     # Redis down: fails open
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached, redis_invalidate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
    price_cents: i64,
}

#[derive(Debug)]
struct DbError;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("database error")
    }
}

impl std::error::Error for DbError {}

/// Stands in for a real database: every query takes 200 ms.
struct Db {
    products: Mutex<HashMap<u64, Product>>,
}

impl Db {
    async fn find_product(&self, id: u64) -> Result<Option<Product>, DbError> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(self.products.lock().map_err(|_| DbError)?.get(&id).cloned())
    }

    /// A write evicts the keys it affects once it has committed. The eviction fails
    /// open: when Redis does not confirm it, it is counted, logged and retried in the
    /// background, and the write still succeeds.
    #[redis_invalidate(key = "product:<id>")]
    async fn set_price(&self, id: u64, price_cents: i64) -> Result<(), DbError> {
        if let Some(product) = self.products.lock().map_err(|_| DbError)?.get_mut(&id) {
            product.price_cents = price_cents;
        }
        Ok(())
    }
}

#[redis_cached(key = "product:<id>", ttl = 300, lock, negative)]
async fn get_product(db: &Db, id: u64) -> Result<Option<Product>, DbError> {
    db.find_product(id).await
}

/// Calls `get_product` and prints how long it took and how the cache answered.
async fn timed(label: &str, cache: &Cache, db: &Db, id: u64) {
    let before = cache.stats();
    let start = Instant::now();
    let product = get_product(db, id).await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    let after = cache.stats();
    let answer = if after.hits > before.hits {
        "hit"
    } else if after.negative_hits > before.negative_hits {
        "negative hit"
    } else {
        "loaded"
    };
    println!("{label:<16} {elapsed_ms:>9.3} ms  {answer:<12}  {product:?}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The cache reports Redis trouble through `tracing`; without a subscriber a dead
    // Redis would fail open silently.
    tracing_subscriber::fmt().with_target(false).init();
    let cache = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("cache: Redis at {url}");
            Cache::builder().url(url).prefix("quickstart:").build().await?
        }
        Err(_) => {
            println!("cache: in memory (set REDIS_URL to use Redis)");
            Cache::in_memory()
        }
    };
    redis_cached::install(cache.clone());
    // Start from a clean slate when Redis kept values from an earlier run (with Redis
    // down this fails, and there is nothing to clean).
    for id in [42, 7] {
        let _ = get_product_invalidate(id).await;
    }

    let db = Db {
        products: Mutex::new(HashMap::from([(
            42,
            Product {
                id: 42,
                name: "Desk lamp".into(),
                price_cents: 3_999,
            },
        )])),
    };

    timed("first call", &cache, &db, 42).await; // a miss: loads and stores for 300 s
    timed("second call", &cache, &db, 42).await; // a hit: one GET
    timed("missing id", &cache, &db, 7).await; // loads `None`, stored as "not found"
    timed("missing id again", &cache, &db, 7).await; // a negative hit
    db.set_price(42, 2_999).await?; // commits, then evicts product 42
    timed("after the update", &cache, &db, 42).await; // loads the new price
    timed("and again", &cache, &db, 42).await; // a hit
    println!("key of product 42: {}", get_product_key(42));
    println!("{:?}", cache.stats());
    println!("hit rate: {:.0}%", cache.stats().hit_rate() * 100.0);
    Ok(())
}
