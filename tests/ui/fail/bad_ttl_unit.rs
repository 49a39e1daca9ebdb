use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = "5 weeks")]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
