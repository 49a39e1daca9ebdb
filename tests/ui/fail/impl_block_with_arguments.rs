// The arguments go on each method; the attribute on the `impl` block takes none.
use redis_cached::redis_cached;

trait Repo {
    async fn get(&self, id: u64) -> u8;
}

struct PgRepo;

#[redis_cached(ttl = 60)]
impl Repo for PgRepo {
    #[redis_cached(key = "repo:<id>")]
    async fn get(&self, id: u64) -> u8 {
        let _ = id;
        1
    }
}

fn main() {}
