use redis_cached::redis_cached;

#[redis_cached]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {}
