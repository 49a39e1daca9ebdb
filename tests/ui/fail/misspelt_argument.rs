use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", tll = 300)]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
