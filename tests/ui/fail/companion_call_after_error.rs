// The attribute is wrong (no `ttl`); a caller of a companion should not get a second,
// unrelated error on top of the one on the attribute.
use redis_cached::redis_cached;

#[redis_cached(key = "product:<id>")]
async fn product_name(id: u64) -> u64 {
    id
}

fn main() {
    let _key = product_name_key(7);
}
