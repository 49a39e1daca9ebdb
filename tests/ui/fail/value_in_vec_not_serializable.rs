use redis_cached::redis_cached;

#[derive(Clone)]
struct Product {
    id: u64,
}

#[redis_cached(key = "products:<page>", ttl = 300)]
async fn list_products(page: u32) -> Vec<Product> {
    vec![Product { id: u64::from(page) }]
}

fn main() {}
