use redis_cached::redis_invalidate;

pub struct Updated {
    pub category_id: u32,
}

#[redis_invalidate(key = "product:<id>", tags = ["category:<retrun.category_id>"])]
async fn update_product(id: u64) -> Result<Updated, String> {
    Ok(Updated { category_id: id as u32 })
}

fn main() {}
