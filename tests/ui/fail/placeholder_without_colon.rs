use redis_cached::redis_cached;

#[redis_cached(key = "v<id>", ttl = 300)]
async fn version(id: u64) -> u64 {
    id
}

fn main() {}
