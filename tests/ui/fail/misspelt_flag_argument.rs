use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300, negatve)]
async fn product_name(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
