//! `#[redis_cached]` and `#[redis_invalidate]` on every shape of fn a service writes, each
//! caching against a real redis-server: an associated fn without `self`, a method of a
//! trait impl (async fn in traits), and a method under `#[async_trait]`, with
//! `#[redis_cached]` on the impl block outside or inside `#[async_trait]`, or only on the
//! method.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use redis::Commands;
use redis_cached::{Cache, redis_cached, redis_invalidate};
use serde::{Deserialize, Serialize};
use support::RedisServer;

/// A loaded row, numbered by the load that made it: a hit returns an earlier number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    id: u64,
    load: usize,
}

fn load(loads: &AtomicUsize, id: u64) -> Row {
    Row {
        id,
        load: loads.fetch_add(1, Ordering::SeqCst) + 1,
    }
}

fn stored(redis: &RedisServer, key: &str) -> bool {
    redis.conn().exists(key).unwrap()
}

impl Row {
    #[redis_cached(key = "row:<id>", ttl = 60, cache = cache)]
    async fn find(cache: &Cache, loads: &AtomicUsize, id: u64) -> Row {
        load(loads, id)
    }

    #[redis_invalidate(key = "row:<id>", cache = cache)]
    async fn delete(cache: &Cache, id: u64) -> Result<u64, String> {
        Ok(id)
    }
}

#[tokio::test]
async fn an_associated_fn_without_self_caches_and_invalidates() {
    let redis = RedisServer::start();
    let cache = redis.cache("shapes:").await;
    let loads = AtomicUsize::new(0);
    let first = Row::find(&cache, &loads, 7).await;
    assert_eq!(Row::find(&cache, &loads, 7).await, first, "the second call is a hit");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(Row::find_key(&cache, 7), "shapes:{row:7}");
    assert!(stored(&redis, &Row::find_key(&cache, 7)));

    assert_eq!(Row::delete(&cache, 7).await, Ok(7));
    assert!(!stored(&redis, &Row::find_key(&cache, 7)));
    assert_eq!(Row::find(&cache, &loads, 7).await.load, 2, "the next call loads");
    Row::find_invalidate(&cache, 7).await.unwrap();
    assert_eq!(Row::find(&cache, &loads, 7).await.load, 3);
}

/// Async fn in traits, no `#[async_trait]`.
trait Repo {
    async fn get(&self, id: u64) -> Option<Row>;
    async fn save(&self, id: u64) -> Result<(), String>;
}

struct PgRepo {
    cache: Cache,
    loads: AtomicUsize,
}

#[redis_cached]
impl Repo for PgRepo {
    #[redis_cached(key = "repo:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }

    #[redis_invalidate(key = "repo:<id>", cache = self.cache)]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

/// Calls through the trait, as generic code does.
async fn get_through_the_trait(repo: &impl Repo, id: u64) -> Option<Row> {
    repo.get(id).await
}

#[tokio::test]
async fn a_trait_impl_method_caches_and_its_companions_are_beside_the_impl() {
    let redis = RedisServer::start();
    let repo = PgRepo {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    };
    let first = get_through_the_trait(&repo, 7).await;
    assert_eq!(get_through_the_trait(&repo, 7).await, first, "the second call is a hit");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
    assert_eq!(repo.get_key(7), "shapes:{repo:7}");
    assert!(stored(&redis, &repo.get_key(7)));

    repo.save(7).await.unwrap();
    assert!(
        !stored(&redis, &repo.get_key(7)),
        "`#[redis_invalidate]` on a trait impl method"
    );
    assert_eq!(Repo::get(&repo, 7).await.map(|row| row.load), Some(2));
    repo.get_invalidate(7).await.unwrap();
    assert_eq!(Repo::get(&repo, 7).await.map(|row| row.load), Some(3));
}

/// A second trait with a method of the same name: companions for both would clash.
trait Lookup {
    async fn get(&self, id: u64) -> Option<Row>;
}

#[redis_cached(companions = false)]
impl Lookup for PgRepo {
    #[redis_cached(key = "lookup:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }
}

/// A type of another crate (`Arc<_>`) cannot have an inherent `impl` here.
#[redis_cached(companions = false)]
impl Repo for std::sync::Arc<PgRepo> {
    #[redis_cached(key = "shared:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }

    #[redis_invalidate(key = "shared:<id>", cache = self.cache)]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

#[tokio::test]
async fn trait_impls_without_companions_cache_a_foreign_type_and_a_second_method_of_one_name() {
    let redis = RedisServer::start();
    let repo = std::sync::Arc::new(PgRepo {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    });
    let first = Lookup::get(&*repo, 7).await;
    assert_eq!(Lookup::get(&*repo, 7).await, first, "the second call is a hit");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 1);
    assert!(stored(&redis, &repo.cache.key("lookup:7")));
    repo.cache.invalidate("lookup:7").await.unwrap();
    assert_eq!(Lookup::get(&*repo, 7).await.map(|row| row.load), Some(2), "loads again");

    let shared = get_through_the_trait(&repo, 8).await;
    assert_eq!(get_through_the_trait(&repo, 8).await, shared, "the Arc's method hits");
    assert_eq!(repo.loads.load(Ordering::SeqCst), 3);
    assert!(stored(&redis, &repo.cache.key("shared:8")));
    Repo::save(&repo, 8).await.unwrap();
    assert!(!stored(&redis, &repo.cache.key("shared:8")), "evicted on write");
    assert_eq!(get_through_the_trait(&repo, 8).await.map(|row| row.load), Some(4));
}

#[async_trait]
trait Store: Send + Sync {
    async fn get(&self, id: u64) -> Option<Row>;
    async fn save(&self, id: u64) -> Result<(), String>;
}

/// `#[async_trait]` expands first: `#[redis_cached]` finds the boxed async blocks.
struct AsyncTraitOutside {
    cache: Cache,
    loads: AtomicUsize,
}

#[async_trait]
#[redis_cached]
impl Store for AsyncTraitOutside {
    #[redis_cached(key = "outside:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }

    #[redis_invalidate(key = "outside:<id>", cache = self.cache)]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

/// `#[redis_cached]` expands first, then `#[async_trait]` boxes what it wrote.
struct AsyncTraitInside {
    cache: Cache,
    loads: AtomicUsize,
}

#[redis_cached]
#[async_trait]
impl Store for AsyncTraitInside {
    #[redis_cached(key = "inside:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }

    #[redis_invalidate(key = "inside:<id>", cache = self.cache)]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

/// The attribute on the method only: cached, with no companions.
struct MethodOnly {
    cache: Cache,
    loads: AtomicUsize,
}

#[async_trait]
impl Store for MethodOnly {
    #[redis_cached(key = "method:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Option<Row> {
        (id > 0).then(|| load(&self.loads, id))
    }

    #[redis_invalidate(key = "method:<id>", cache = self.cache)]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

/// Through `dyn Store`: two calls load once, `save` evicts the key, the next call loads.
async fn caches_and_invalidates(redis: &RedisServer, store: &dyn Store, loads: &AtomicUsize, key: &str) {
    let first = store.get(7).await;
    assert_eq!(store.get(7).await, first, "the second call is a hit");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(stored(redis, key), "the value is in Redis under `{key}`");
    store.save(7).await.unwrap();
    assert!(!stored(redis, key), "`#[redis_invalidate]` evicted `{key}`");
    assert_eq!(store.get(7).await.map(|row| row.load), Some(2));
    assert_eq!(store.get(0).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_trait_outside_redis_cached_caches() {
    let redis = RedisServer::start();
    let store = AsyncTraitOutside {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    };
    assert_eq!(store.get_key(7), "shapes:{outside:7}");
    caches_and_invalidates(&redis, &store, &store.loads, &store.get_key(7)).await;
    store.get_invalidate(7).await.unwrap();
    assert_eq!(store.get(7).await.map(|row| row.load), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cached_outside_async_trait_caches() {
    let redis = RedisServer::start();
    let store = AsyncTraitInside {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    };
    assert_eq!(store.get_key(7), "shapes:{inside:7}");
    caches_and_invalidates(&redis, &store, &store.loads, &store.get_key(7)).await;
    store.get_invalidate(7).await.unwrap();
    assert_eq!(store.get(7).await.map(|row| row.load), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_trait_method_caches_with_the_attribute_on_the_method_only() {
    let redis = RedisServer::start();
    let store = MethodOnly {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    };
    let key = store.cache.key("method:7");
    caches_and_invalidates(&redis, &store, &store.loads, &key).await;
}

/// The boxed future `#[async_trait]` returns is `Send`: a call runs on a spawned task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_trait_call_can_be_spawned() {
    let redis = RedisServer::start();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(AsyncTraitInside {
        cache: redis.cache("shapes:").await,
        loads: AtomicUsize::new(0),
    });
    let spawned = tokio::spawn({
        let store = store.clone();
        async move { store.get(3).await }
    });
    let first = spawned.await.unwrap();
    assert_eq!(store.get(3).await, first, "the spawned call stored the value");
}
