// On a trait's method declaration there is no body to cache: the attribute goes on the
// method in each `impl`.
use redis_cached::redis_cached;

trait Repo {
    #[redis_cached(key = "repo:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> u8;
}

fn main() {}
