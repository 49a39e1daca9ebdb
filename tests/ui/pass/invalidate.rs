// `#[redis_invalidate]` on free fns and methods, with every return shape, arguments the
// body consumes, `?` and early `return` in the body.

use redis_cached::{Cache, redis_cached, redis_invalidate};

#[redis_cached(key = "name:<id>", ttl = 60)]
async fn name(id: u64) -> String {
    format!("name {id}")
}

#[redis_invalidate(key = "name:<id>")]
async fn rename(id: u64, new_name: String) -> std::io::Result<usize> {
    if new_name.is_empty() {
        return Err(std::io::Error::other("empty name"));
    }
    let parsed: usize = "7".parse().map_err(std::io::Error::other)?;
    drop(new_name);
    Ok(parsed + id as usize)
}

#[redis_invalidate(key = "name:<id>")]
async fn touch(id: u64) {
    let _ = id;
}

struct Store {
    cache: Cache,
}

impl Store {
    #[redis_cached(key = "count:<id>", ttl = 60, cache = self.cache)]
    async fn count(&self, id: u64) -> u64 {
        id
    }

    #[redis_invalidate(key = "count:<id>", cache = self.cache)]
    async fn reset(&self, id: u64) -> Option<u64> {
        Some(id)
    }

    // `&mut self`, and `self` by value: the cache is resolved before the body runs.
    #[redis_invalidate(key = "count:<id>", cache = self.cache)]
    async fn reset_mut(&mut self, id: u64) -> u64 {
        id
    }

    #[redis_invalidate(key = "count:<id>", cache = self.cache)]
    async fn close(self, id: u64) -> u64 {
        drop(self);
        id
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let cache = Cache::in_memory();
        redis_cached::install(cache.clone());
        assert_eq!(name(1).await, "name 1");
        assert!(rename(1, String::new()).await.is_err());
        assert_eq!(rename(1, "new".to_owned()).await.unwrap(), 8);
        touch(1).await;
        let store = Store { cache: Cache::in_memory() };
        assert_eq!(store.count(2).await, 2);
        assert_eq!(store.reset(2).await, Some(2));
        assert_eq!(store.cache.stats().misses, 1);
        let mut store = store;
        assert_eq!(store.reset_mut(2).await, 2);
        assert_eq!(store.close(2).await, 2);
    });
}
