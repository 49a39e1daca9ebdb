// `#[redis_cached]` with `#[async_trait]`, in either order on the impl block, or on the
// method only (then with no companions); `#[redis_invalidate]` on the same methods.

use async_trait::async_trait;
use redis_cached::{Cache, redis_cached, redis_invalidate};

#[async_trait]
trait Store: Sync {
    async fn get(&self, id: u64) -> Result<Option<u64>, String>;
    async fn put(&self, id: u64) -> Result<(), String>;
}

struct Outside(Cache);

#[async_trait]
#[redis_cached]
impl Store for Outside {
    #[redis_cached(key = "outside:<id>", ttl = 60, negative, cache = self.0)]
    async fn get(&self, id: u64) -> Result<Option<u64>, String> {
        if id == 0 {
            return Err("no id".to_owned());
        }
        Ok(Some(id))
    }

    #[redis_invalidate(key = "outside:<id>", cache = self.0)]
    async fn put(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

struct Inside(Cache);

#[redis_cached]
#[async_trait]
impl Store for Inside {
    #[redis_cached(key = "inside:<id>", ttl = 60, negative, cache = self.0)]
    async fn get(&self, id: u64) -> Result<Option<u64>, String> {
        let id = u8::try_from(id).map_err(|e| e.to_string())?;
        Ok(Some(u64::from(id)))
    }

    #[redis_invalidate(key = "inside:<id>", cache = self.0)]
    async fn put(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

struct MethodOnly(Cache);

#[async_trait]
impl Store for MethodOnly {
    #[redis_cached(key = "method:<id>", ttl = 60, cache = self.0)]
    async fn get(&self, id: u64) -> Result<Option<u64>, String> {
        Ok(Some(id))
    }

    #[redis_invalidate(key = "method:<id>", cache = self.0)]
    async fn put(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

fn main() {
    let outside = Outside(Cache::in_memory());
    let inside = Inside(Cache::in_memory());
    assert_eq!(outside.get_key(1), "{outside:1}");
    assert_eq!(inside.get_key(1), "{inside:1}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stores: [&dyn Store; 3] = [&outside, &inside, &MethodOnly(Cache::in_memory())];
        for store in stores {
            assert_eq!(store.get(1).await, Ok(Some(1)));
            store.put(1).await.unwrap();
        }
        assert!(outside.get(0).await.is_err());
        assert!(inside.get(300).await.is_err());
        outside.get_invalidate(1).await.unwrap();
    });
}
