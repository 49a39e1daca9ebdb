//! A product lookup over a slow (200 ms) simulated database, cached with
//! `#[redis_cached]`: the first call is slow, the second is a cache hit, a missing id is
//! cached as "not found", and an update invalidates the cached product.
//!
//! ```text
//! cargo run --example quickstart                                   # in-memory cache
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart  # Redis
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached};
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

    async fn set_price(&self, id: u64, price_cents: i64) -> Result<(), Box<dyn std::error::Error>> {
        if let Some(product) = self.products.lock().map_err(|_| DbError)?.get_mut(&id) {
            product.price_cents = price_cents;
        }
        // Every write invalidates the keys it affects.
        get_product_invalidate(id).await?;
        Ok(())
    }
}

#[redis_cached(key = "product:<id>", ttl = 300, lock, negative)]
async fn get_product(db: &Db, id: u64) -> Result<Option<Product>, DbError> {
    db.find_product(id).await
}

async fn timed(label: &str, db: &Db, id: u64) {
    let start = Instant::now();
    let product = get_product(db, id).await;
    println!(
        "{label:<28} {:>9.3} ms  {product:?}",
        start.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    // Start from a clean slate when Redis kept values from an earlier run.
    for id in [42, 7] {
        let _ = cache.invalidate(&format!("product:{id}")).await;
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

    timed("first call (miss, loads)", &db, 42).await;
    timed("second call (hit)", &db, 42).await;
    timed("missing id (miss, loads)", &db, 7).await;
    timed("missing id again (negative)", &db, 7).await;
    db.set_price(42, 2_999).await?;
    timed("after the update (loads)", &db, 42).await;
    timed("and again (hit)", &db, 42).await;

    println!("key of product 42: {}", get_product_key(42));
    println!("{:?}", cache.stats());
    println!("hit rate: {:.0}%", cache.stats().hit_rate() * 100.0);
    Ok(())
}
