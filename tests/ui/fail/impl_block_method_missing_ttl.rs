// A method's error, under `#[redis_cached]` on its trait impl, is reported under the
// method's own attribute.
use redis_cached::redis_cached;

trait Repo {
    async fn get(&self, id: u64) -> u8;
}

struct PgRepo;

#[redis_cached]
impl Repo for PgRepo {
    #[redis_cached(key = "repo:<id>")]
    async fn get(&self, id: u64) -> u8 {
        let _ = id;
        1
    }
}

fn main() {}
