use redis_cached::redis_invalidate;

#[redis_invalidate(key = "product:<id>", tags = ["category:<return.category_id>"])]
async fn delete_product(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}
