// An associated fn without `self`, in a generic impl: the body runs in place, so it may
// name `Self` and the impl's generics; the companions are associated fns too.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis_cached::{Cache, redis_cached, redis_invalidate};
use serde::{Deserialize, Serialize};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Product {
    id: u64,
}

impl Product {
    #[redis_cached(key = "product:<id>", ttl = 60, cache = cache)]
    async fn find(cache: &Cache, id: u64) -> Product {
        LOADS.fetch_add(1, Ordering::SeqCst);
        Self::new(id)
    }

    #[redis_invalidate(key = "product:<id>", cache = cache)]
    async fn remove(cache: &Cache, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }

    fn new(id: u64) -> Product {
        Product { id }
    }
}

struct Table<T>(PhantomData<T>);

impl<T: From<u64> + Clone + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> Table<T> {
    #[redis_cached(key = "row:<id>", ttl = 60, cache = cache)]
    async fn row(cache: &Cache, id: u64) -> T {
        T::from(id)
    }
}

fn main() {
    let cache = Cache::in_memory();
    assert_eq!(Product::find_key(&cache, 7), "{product:7}");
    assert_eq!(Table::<u64>::row_key(&cache, 7), "{row:7}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(Product::find(&cache, 7).await, Product { id: 7 });
        assert_eq!(Product::find(&cache, 7).await, Product { id: 7 });
        assert_eq!(LOADS.load(Ordering::SeqCst), 1, "the second call is a hit");
        Product::remove(&cache, 7).await.unwrap();
        Product::find(&cache, 7).await;
        assert_eq!(LOADS.load(Ordering::SeqCst), 2, "invalidation makes the next call load");
        Product::find_invalidate(&cache, 7).await.unwrap();
        assert_eq!(Table::<u64>::row(&cache, 9).await, 9);
    });
}
