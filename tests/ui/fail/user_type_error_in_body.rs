use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300)]
async fn product_stock(id: u64) -> u64 {
    let _ = id;
    "seven"
}

fn main() {}
