use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300, tags = ["category:<return>"])]
async fn category_of(id: u64) -> u32 {
    (id % 8) as u32
}

fn main() {}
