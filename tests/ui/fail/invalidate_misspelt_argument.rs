use redis_cached::redis_invalidate;

#[redis_invalidate(key = "product:<id>", tag = ["catalog"])]
async fn save_product(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}
