// A generic trait impl with a `where` clause, `#[redis_cached]` on the block: the methods
// are cached in place, and `get_key` and `get_invalidate` go in `impl<T> Labels<T>`
// beside it, `pub(crate)`, so another module can evict on write.

use std::fmt::Display;

use redis_cached::{Cache, redis_cached};

trait Repo {
    async fn get(&self, id: u64) -> Option<String>;
    async fn count(&self) -> u64;
}

mod store {
    use super::{Cache, Display, Repo, redis_cached};

    pub struct Labels<T> {
        pub cache: Cache,
        pub prefix: T,
    }

    #[redis_cached]
    impl<T: Display> Repo for Labels<T>
    where
        T: Sync,
    {
        #[redis_cached(key = "label:<self.prefix>:<id>", ttl = 60, cache = self.cache)]
        async fn get(&self, id: u64) -> Option<String> {
            Some(format!("{}-{id}", self.prefix))
        }

        // Not cached: left as written.
        async fn count(&self) -> u64 {
            2
        }
    }
}

fn main() {
    let labels = store::Labels {
        cache: Cache::in_memory(),
        prefix: "eu",
    };
    assert_eq!(labels.get_key(3), "{label:eu:3}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(labels.get(3).await.as_deref(), Some("eu-3"));
        assert_eq!(labels.count().await, 2);
        labels.get_invalidate(3).await.unwrap();
    });
}
