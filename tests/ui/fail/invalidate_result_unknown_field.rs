use redis_cached::redis_invalidate;

struct Updated {
    category_id: u32,
}

#[redis_invalidate(key = "product:<id>", tags = ["category:<return.category>"])]
async fn update_product(id: u64) -> Result<Updated, String> {
    Ok(Updated { category_id: id as u32 })
}

fn main() {}
