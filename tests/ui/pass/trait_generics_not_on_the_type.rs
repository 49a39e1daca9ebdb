// A trait impl with generics only the trait names (`impl<T> Find<T> for Repo`): an
// inherent impl cannot have them, so they go on each companion that uses them, with
// their `where` predicates; the impl's other generics stay on the inherent impl.

use std::fmt::Display;

use redis_cached::{Cache, redis_cached};

trait Find<T> {
    async fn find(&self, id: T) -> Option<String>;
    async fn name<'a>(&'a self, name: &'a str) -> String;
}

struct Repo {
    cache: Cache,
}

#[redis_cached]
impl<T: Display + Sync> Find<T> for Repo
where
    T: Send,
{
    #[redis_cached(key = "find:<id>", ttl = 60, cache = self.cache)]
    async fn find(&self, id: T) -> Option<String> {
        Some(id.to_string())
    }

    // Does not use `T`: its companions are not generic.
    #[redis_cached(key = "name:<name>", ttl = 60, cache = self.cache)]
    async fn name<'a>(&'a self, name: &'a str) -> String {
        name.to_owned()
    }
}

trait Get<E> {
    async fn get(&self, id: u64) -> Result<u64, E>;
}

struct Wrapper<S> {
    cache: Cache,
    inner: S,
}

#[redis_cached]
impl<S: Sync, E> Get<E> for Wrapper<S>
where
    S: Send,
    E: Send,
{
    #[redis_cached(key = "get:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<u64, E> {
        let _ = &self.inner;
        Ok(id)
    }
}

fn main() {
    let repo = Repo {
        cache: Cache::in_memory(),
    };
    let wrapper = Wrapper {
        cache: Cache::in_memory(),
        inner: 1_u8,
    };
    assert_eq!(repo.find_key(3_u8), "{find:3}");
    assert_eq!(repo.name_key("a"), "{name:a}");
    assert_eq!(wrapper.get_key(4), "{get:4}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(Find::<u8>::find(&repo, 3).await.as_deref(), Some("3"));
        assert_eq!(Find::<u8>::name(&repo, "a").await, "a");
        assert_eq!(<Wrapper<u8> as Get<String>>::get(&wrapper, 4).await, Ok(4));
        repo.find_invalidate(3_u8).await.unwrap();
        wrapper.get_invalidate(4).await.unwrap();
    });
}
