// On an `impl` block the attribute takes only `companions = false`.
use redis_cached::redis_cached;

trait Repo {
    async fn get(&self, id: u64) -> u8;
}

struct PgRepo;

#[redis_cached(companions = no)]
impl Repo for PgRepo {
    #[redis_cached(key = "repo:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> u8 {
        let _ = id;
        1
    }
}

fn main() {}
