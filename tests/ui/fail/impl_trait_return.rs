use redis_cached::redis_invalidate;

#[redis_invalidate(key = "product:<id>")]
async fn save_product(id: u64) -> impl std::fmt::Display {
    id
}

fn main() {}
