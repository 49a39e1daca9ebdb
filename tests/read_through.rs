//! Read-through against a real redis-server: hits, TTLs, negative entries, errors.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::Commands;
use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};
use support::RedisServer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
    name: String,
}

struct Db {
    cache: Cache,
    queries: AtomicUsize,
}

impl Db {
    fn new(cache: Cache) -> Db {
        Db {
            cache,
            queries: AtomicUsize::new(0),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    #[redis_cached(key = "product:<id>", ttl = 300, cache = self.cache)]
    async fn product(&self, id: u64) -> Result<Product, String> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        Ok(Product {
            id,
            name: format!("product {id}"),
        })
    }
}

#[tokio::test]
async fn second_call_is_a_hit_with_the_ttl_asked_for() {
    let redis = RedisServer::start();
    let db = Db::new(redis.cache("shop:").await);

    let first = db.product(42).await.unwrap();
    let second = db.product(42).await.unwrap();

    assert_eq!(
        first,
        Product {
            id: 42,
            name: "product 42".into()
        }
    );
    assert_eq!(second, first);
    assert_eq!(db.queries(), 1);
    let stats = db.cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));

    let key = db.product_key(42);
    assert_eq!(key, "shop:{product:42}");
    let ttl: i64 = redis.conn().pttl(&key).unwrap();
    assert!((299_000..=300_000).contains(&ttl), "pttl {ttl}");
}
