use redis_cached::redis_cached;

#[redis_cached(key = "tag:{<id>}", ttl = 300)]
async fn tag(id: u64) -> u64 {
    id
}

fn main() {}
