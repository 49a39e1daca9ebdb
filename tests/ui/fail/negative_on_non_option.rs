use redis_cached::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
}

#[derive(Debug)]
struct DbError;

#[redis_cached(key = "product:<id>", ttl = 300, negative)]
async fn get_product(id: u64) -> Result<Product, DbError> {
    Ok(Product { id })
}

fn main() {}
