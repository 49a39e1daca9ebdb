use redis_cached::redis_cached;

struct Filter {
    category: u32,
}

#[redis_cached(key = "products:<filter>", ttl = 300)]
async fn count_products(filter: &Filter) -> u64 {
    u64::from(filter.category)
}

fn main() {}
