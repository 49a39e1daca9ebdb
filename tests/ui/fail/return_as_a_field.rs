use redis_cached::redis_invalidate;

pub struct Change {
    pub category_id: u32,
}

#[redis_invalidate(key = "product:<change.return>")]
async fn update_product(change: Change) -> Result<u32, String> {
    Ok(change.category_id)
}

fn main() {}
