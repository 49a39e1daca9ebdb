use redis_cached::redis_invalidate;

#[redis_invalidate]
async fn save_product(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}
