use redis_cached::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Product {
    id: u64,
}

#[redis_cached(key = "product:<id>", ttl = 300)]
async fn get_product(id: u64) -> Product {
    Product { id }
}

fn main() {}
