use redis_cached::redis_cached;

#[derive(Clone)]
struct Product {
    id: u64,
}

#[redis_cached(key = "product:<id>", ttl = 300)]
async fn get_product(id: u64) -> Option<Product> {
    Some(Product { id })
}

fn main() {}
