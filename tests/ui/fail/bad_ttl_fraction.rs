use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = "1.5s")]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
