// There is no `f_uncached`: the body runs in place, once, and a way around the cache is
// not exported with the fn. Call the code the body calls instead.
use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>", ttl = 60)]
async fn product_name(id: u64) -> String {
    id.to_string()
}

fn main() {
    let _name = product_name_uncached(7);
}
