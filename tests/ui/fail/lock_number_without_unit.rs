use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300, lock = "10")]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
