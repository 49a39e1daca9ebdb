use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300, near = true)]
async fn product_name(id: u64) -> String {
    id.to_string()
}

fn main() {}
