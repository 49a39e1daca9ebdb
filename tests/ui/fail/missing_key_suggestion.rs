use redis_cached::redis_cached;

#[redis_cached(ttl = 300)]
async fn stock(sku: &str) -> u64 {
    sku.len() as u64
}

fn main() {}
