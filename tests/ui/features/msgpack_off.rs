use redis_cached::redis_cached;

#[redis_cached(key = "name:<id>", ttl = 60, codec = "msgpack")]
async fn name(id: u64) -> String {
    id.to_string()
}

fn main() {}
