use redis_cached::redis_cached;

#[redis_cached(key = "product:<return.id>", ttl = 300)]
async fn product(slug: String) -> Product {
    Product { id: slug.len() as u64 }
}

struct Product {
    id: u64,
}

fn main() {}
