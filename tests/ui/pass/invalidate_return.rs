// `#[redis_invalidate]` keys and tags naming the fn's result: its `Ok` value or its
// value, whole or by field and tuple index, mixed with parameters the body consumes, on
// free fns and methods.

use redis_cached::{Cache, redis_cached, redis_invalidate};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Product {
    pub id: u64,
    pub category_id: u32,
}

/// The row before and after the update.
pub struct Updated {
    pub before: Product,
    pub after: Product,
}

#[redis_cached(key = "category:<category_id>", ttl = 60, tags = ["category:<category_id>"])]
async fn listing(category_id: u32) -> Vec<u64> {
    vec![u64::from(category_id)]
}

#[redis_invalidate(
    key = "product:<id>",
    tags = ["category:<return.before.category_id>", "category:<return.after.category_id>"]
)]
async fn update_product(id: u64, category_id: u32) -> Result<Updated, std::io::Error> {
    let before = Product { id, category_id: 1 };
    Ok(Updated { after: Product { id, category_id }, before })
}

// The body consumes `name`; its value was rendered before.
#[redis_invalidate(key = "name:<name>:<return>")]
async fn create(name: String) -> u64 {
    name.len() as u64
}

#[redis_invalidate(key = "pair:<return.0>:<return.1>")]
async fn pair() -> (u32, &'static str) {
    (1, "one")
}

// A plain value is the result itself.
#[redis_invalidate(key = "plain:<return.id>")]
async fn plain() -> Product {
    Product { id: 3, category_id: 1 }
}

struct Store {
    cache: Cache,
}

impl Store {
    #[redis_invalidate(key = "count:<return>", cache = self.cache)]
    async fn bump(&self, by: u64) -> Result<u64, String> {
        if by == 0 { Err("nothing to add".to_owned()) } else { Ok(by + 1) }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        redis_cached::install(Cache::in_memory());
        assert_eq!(listing(1).await, [1]);
        let updated = update_product(7, 2).await.unwrap();
        assert_eq!((updated.before.category_id, updated.after.category_id), (1, 2));
        assert_eq!(create("abc".to_owned()).await, 3);
        assert_eq!(pair().await, (1, "one"));
        assert_eq!(plain().await.id, 3);
        let store = Store { cache: Cache::in_memory() };
        assert_eq!(store.bump(1).await, Ok(2));
        assert!(store.bump(0).await.is_err());
    });
}
