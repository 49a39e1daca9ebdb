// On a trait's method declaration there is no body to run: `#[redis_invalidate]` goes on
// the method in each `impl`.
use redis_cached::redis_invalidate;

trait Repo {
    #[redis_invalidate(key = "repo:<id>")]
    async fn save(&self, id: u64) -> Result<(), String>;
}

fn main() {}
