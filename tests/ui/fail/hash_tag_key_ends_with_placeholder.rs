use redis_cached::redis_cached;

#[redis_cached(key = "user:{<id>}:<page>", ttl = 300)]
async fn orders(id: u64, page: u32) -> Vec<u64> {
    vec![id, u64::from(page)]
}

fn main() {}
