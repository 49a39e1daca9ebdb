use redis_cached::redis_invalidate;

#[redis_invalidate(key = "product:<id>", tags = ["category:<categroy>"])]
async fn save_product(id: u64, category: u32) -> Result<(), String> {
    let _ = (id, category);
    Ok(())
}

fn main() {}
