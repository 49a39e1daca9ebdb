use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 300, tags = ["category:<category>:all"])]
async fn product(id: u64, category: u32) -> u64 {
    id + u64::from(category)
}

fn main() {}
