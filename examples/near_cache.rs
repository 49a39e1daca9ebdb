//! The near cache: a hot product served from process memory with no round trip, and a
//! price change made by another process reaching it through Redis's client tracking.
//!
//! Two caches stand for two service instances (`web` and `admin`). `web` reads product
//! 42: a miss (200 ms), a Redis hit (one round trip), then near hits (no round trip).
//! `admin` changes the price and evicts the key; the example prints how long it took
//! until `web` stopped serving the old price, then `web`'s stats.
//!
//! ```text
//! cargo run --release --example near_cache                                   # Redis on 127.0.0.1:6379
//! REDIS_URL=redis://127.0.0.1:6380 cargo run --release --example near_cache  # another Redis
//! ```

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached, redis_invalidate};

/// Stands in for the database shared by both instances: every query takes 200 ms.
struct Db {
    price_cents: AtomicI64,
}

/// One service instance: its own cache (with a near cache), the shared database.
struct Instance {
    cache: Cache,
    db: &'static Db,
}

impl Instance {
    async fn new(url: &str) -> Result<Self, redis_cached::Error> {
        static DB: Db = Db {
            price_cents: AtomicI64::new(3_999),
        };
        let cache = Cache::builder()
            .url(url)
            .prefix("near-example:")
            .near_cache(10_000)
            .build()
            .await?;
        Ok(Self { cache, db: &DB })
    }

    /// Served from this process's memory for up to 30 s between Redis reads, and never
    /// after another instance's write has reached it.
    #[redis_cached(key = "price:<id>", ttl = 300, near = "30s", cache = self.cache)]
    async fn price(&self, id: u64) -> i64 {
        let _ = id; // one product in this database
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.db.price_cents.load(Ordering::SeqCst)
    }

    /// Commits the new price, then evicts the key in Redis (and here at once).
    #[redis_invalidate(key = "price:<id>", cache = self.cache)]
    async fn set_price(&self, id: u64, price_cents: i64) -> Result<(), std::io::Error> {
        let _ = id; // one product in this database
        self.db.price_cents.store(price_cents, Ordering::SeqCst);
        Ok(())
    }
}

/// Calls `web.price(42)` and prints how long it took and how the cache answered.
async fn timed(label: &str, web: &Instance) -> i64 {
    let before = web.cache.stats();
    let start = Instant::now();
    let price = web.price(42).await;
    let took = start.elapsed();
    let after = web.cache.stats();
    let answer = if after.near_hits > before.near_hits {
        "near hit"
    } else if after.hits > before.hits {
        "redis hit"
    } else {
        "loaded"
    };
    println!(
        "{label:<12} {:>12.3} µs  {answer:<9}  price {price}",
        took.as_secs_f64() * 1e6
    );
    price
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    println!("Redis at {url}");
    let (web, admin) = (Instance::new(&url).await?, Instance::new(&url).await?);
    web.cache.invalidate("price:42").await?; // a clean slate after an earlier run

    timed("first call", &web).await; // a miss: loads and stores for 300 s
    timed("second call", &web).await; // a Redis hit, now kept in memory
    for _ in 0..3 {
        timed("near", &web).await; // no round trip
    }

    admin.set_price(42, 2_999).await?;
    let changed = Instant::now();
    // Near hits of the old price until Redis's message reaches `web`'s near cache.
    let reached = loop {
        let (near_hits, asked) = (web.cache.stats().near_hits, changed.elapsed());
        web.price(42).await;
        if web.cache.stats().near_hits == near_hits {
            break asked;
        }
    };
    println!(
        "the other instance's change reached `web` {:.1} µs after `set_price` returned",
        reached.as_secs_f64() * 1e6
    );
    timed("after", &web).await;
    println!("{:?}", web.cache.stats());
    Ok(())
}
