use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>:orders", ttl = 300)]
async fn orders(id: u64) -> Vec<u64> {
    vec![id]
}

fn main() {}
