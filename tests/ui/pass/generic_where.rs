// A generic fn with a `where` clause: the companions keep only the generics the key
// uses, so `lookup_key` and `lookup_invalidate` take no `db` and need no `D`.

use std::fmt::Display;

use redis_cached::redis_cached;

trait Db {
    fn stock(&self, sku: &str) -> u64;
}

struct Warehouse;

impl Db for Warehouse {
    fn stock(&self, sku: &str) -> u64 {
        sku.len() as u64
    }
}

#[redis_cached(key = "stock:<sku>", ttl = 60)]
async fn lookup<D, K>(db: &D, sku: K) -> u64
where
    D: Db + Sync,
    K: Display + Send,
{
    db.stock(&sku.to_string())
}

fn main() {
    // Would not compile if `D` or `db` had leaked into the companions.
    assert_eq!(lookup_key("abc"), "{stock:abc}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        redis_cached::install(redis_cached::Cache::in_memory());
        assert_eq!(lookup(&Warehouse, "abcd").await, 4);
        assert_eq!(lookup(&Warehouse, 12345).await, 5);
        lookup_invalidate("abcd").await.unwrap();
    });
}
