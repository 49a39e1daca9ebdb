// In a trait impl, `#[redis_cached]` on the method alone writes `get_key` and
// `get_invalidate` where only the trait's members may go; `#[redis_cached]` on the
// `impl` block puts them in an inherent `impl` beside it.
use redis_cached::redis_cached;

trait Repo {
    async fn get(&self, id: u64) -> u8;
}

struct PgRepo;

impl Repo for PgRepo {
    #[redis_cached(key = "repo:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> u8 {
        let _ = id;
        1
    }
}

fn main() {}
