use redis_cached::redis_cached;

#[redis_cached(key = "<a><b>", ttl = 300)]
async fn sum(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {}
