use redis_cached::redis_cached;

#[redis_cached(key = "product:<product_id>", ttl = 300)]
async fn product_name(id: u64, locale: u32) -> u64 {
    id + u64::from(locale)
}

fn main() {}
