// `f_key` and `f_invalidate` have the fn's visibility, so a writer in another module can
// evict what a `pub` or `pub(crate)` fn cached. In a trait impl they are `pub(crate)`.

use redis_cached::Cache;

mod catalog {
    use redis_cached::{Cache, redis_cached};

    #[redis_cached(key = "product:<id>", ttl = 60, cache = cache)]
    pub async fn product_name(cache: &Cache, id: u64) -> String {
        id.to_string()
    }

    #[redis_cached(key = "stock:<id>", ttl = 60, cache = cache)]
    pub(crate) async fn stock(cache: &Cache, id: u64) -> u64 {
        id
    }

    pub(crate) trait Prices {
        async fn price(&self, id: u64) -> u64;
    }

    pub struct List(pub Cache);

    #[redis_cached]
    impl Prices for List {
        #[redis_cached(key = "price:<id>", ttl = 60, cache = self.0)]
        async fn price(&self, id: u64) -> u64 {
            id * 100
        }
    }
}

fn main() {
    use catalog::Prices;

    let cache = Cache::in_memory();
    assert_eq!(catalog::product_name_key(&cache, 7), "{product:7}");
    assert_eq!(catalog::stock_key(&cache, 7), "{stock:7}");
    let list = catalog::List(Cache::in_memory());
    assert_eq!(list.price_key(7), "{price:7}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(catalog::product_name(&cache, 7).await, "7");
        assert_eq!(catalog::stock(&cache, 7).await, 7);
        assert_eq!(list.price(7).await, 700);
        catalog::product_name_invalidate(&cache, 7).await.unwrap();
        catalog::stock_invalidate(&cache, 7).await.unwrap();
        list.price_invalidate(7).await.unwrap();
    });
}
