use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 9999999999, lock = "36501d")]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
