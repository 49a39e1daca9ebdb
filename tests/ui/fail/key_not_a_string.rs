use redis_cached::redis_cached;

#[redis_cached(key = product_id, ttl = 300)]
async fn product_name(product_id: u64) -> u64 {
    product_id
}

fn main() {}
