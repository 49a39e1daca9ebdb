// The companions have the fn's visibility: a private fn's `f_key` is private to its
// module.
mod catalog {
    use redis_cached::redis_cached;

    #[redis_cached(key = "product:<id>", ttl = 60)]
    async fn product_name(id: u64) -> String {
        id.to_string()
    }

    pub async fn name(id: u64) -> String {
        product_name(id).await
    }
}

fn main() {
    let _key = catalog::product_name_key(7);
}
