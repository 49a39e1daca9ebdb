use redis_cached::redis_cached;

#[redis_cached(key = "a%b:<id>", ttl = 300)]
async fn share(id: u64) -> u64 {
    id
}

fn main() {}
