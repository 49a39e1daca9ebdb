//! The expansion is lint-clean: CI's `cargo clippy --all-targets -D warnings` checks this
//! file under `clippy::pedantic`, across return shapes, methods, associated fns, trait
//! impls (with and without `#[async_trait]`) and generics.
#![deny(warnings, clippy::pedantic)]

use std::fmt::Display;

use async_trait::async_trait;
use redis_cached::{Cache, redis_cached, redis_invalidate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    id: u64,
}

#[derive(Debug)]
struct LoadError;

#[redis_cached(key = "plain:<id>", ttl = 60)]
async fn plain(id: u64) -> Item {
    Item { id }
}

#[redis_cached(key = "option:<id>", ttl = "5m", negative = "10s", codec = "msgpack")]
async fn option(id: u64) -> Option<Item> {
    (id > 0).then_some(Item { id })
}

#[redis_cached(key = "result:<id>", ttl = 60, lock = "2s", codec = "json", version = 3)]
async fn result(id: u64) -> Result<Item, LoadError> {
    if id == 0 { Err(LoadError) } else { Ok(Item { id }) }
}

#[redis_cached(key = "io:<name>", ttl = 60)]
async fn io_alias(name: &str) -> std::io::Result<String> {
    Ok(name.to_owned())
}

#[redis_cached(key = "generic:<key>", ttl = 60, lock, negative)]
async fn generic<K, S>(source: &S, key: K) -> Result<Option<Item>, LoadError>
where
    K: Display + Copy + Into<u64>,
    S: Fn(u64) -> Option<Item>,
{
    Ok(source(key.into()))
}

#[redis_invalidate(key = "plain:<id>", key = "option:<id>")]
async fn save(id: u64) -> Result<u64, LoadError> {
    if id == 0 { Err(LoadError) } else { Ok(id) }
}

/// Keys and tags naming the result, mixed with a parameter the body consumes.
#[redis_invalidate(key = "plain:<id>", tags = ["moved:<return.id>", "pair:<with.id>:<return.id>"])]
async fn replace(id: u64, with: Item) -> Result<Item, LoadError> {
    if id == 0 { Err(LoadError) } else { Ok(with) }
}

#[redis_invalidate(key = "plain:<return.id>")]
async fn create(item: Item) -> Item {
    item
}

struct Service {
    cache: Cache,
    region: String,
}

impl Service {
    #[redis_cached(key = "svc:<self.region>:<item.id>", ttl = 60, cache = self.cache)]
    async fn describe(&self, item: &Item) -> String {
        format!("{} in {}", item.id, self.region)
    }
}

impl Item {
    #[redis_cached(key = "find:<id>", ttl = 60)]
    async fn find(id: u64) -> Option<Item> {
        (id > 0).then_some(Item { id })
    }

    #[redis_invalidate(key = "find:<id>")]
    async fn remove(id: u64) -> Result<(), LoadError> {
        if id == 0 { Err(LoadError) } else { Ok(()) }
    }
}

trait Repo {
    async fn get(&self, id: u64) -> Result<Item, LoadError>;
    async fn put(&self, id: u64) -> Result<(), LoadError>;
}

#[redis_cached]
impl Repo for Service {
    #[redis_cached(key = "repo:<self.region>:<id>", ttl = 60, cache = self.cache)]
    async fn get(&self, id: u64) -> Result<Item, LoadError> {
        Ok(Item { id })
    }

    #[redis_invalidate(key = "repo:<self.region>:<id>", cache = self.cache)]
    async fn put(&self, id: u64) -> Result<(), LoadError> {
        if id == 0 { Err(LoadError) } else { Ok(()) }
    }
}

#[async_trait]
trait Store {
    async fn get(&self, id: u64) -> Item;
    async fn put(&self, id: u64) -> Result<(), LoadError>;
    async fn take(&self, item: Item) -> Result<Item, LoadError>;
}

/// `#[async_trait]` expands before `#[redis_cached]`.
struct Outside(Cache);

#[async_trait]
#[redis_cached]
impl Store for Outside {
    #[redis_cached(key = "outside:<id>", ttl = 60, cache = self.0)]
    async fn get(&self, id: u64) -> Item {
        Item { id }
    }

    #[redis_invalidate(key = "outside:<id>", cache = self.0)]
    async fn put(&self, id: u64) -> Result<(), LoadError> {
        if id == 0 { Err(LoadError) } else { Ok(()) }
    }

    #[redis_invalidate(key = "outside:<return.id>", cache = self.0)]
    async fn take(&self, item: Item) -> Result<Item, LoadError> {
        Ok(item)
    }
}

/// `#[redis_cached]` expands before `#[async_trait]`.
struct Inside(Cache);

#[redis_cached]
#[async_trait]
impl Store for Inside {
    #[redis_cached(key = "inside:<id>", ttl = 60, cache = self.0)]
    async fn get(&self, id: u64) -> Item {
        Item { id }
    }

    #[redis_invalidate(key = "inside:<id>", cache = self.0)]
    async fn put(&self, id: u64) -> Result<(), LoadError> {
        if id == 0 { Err(LoadError) } else { Ok(()) }
    }

    #[redis_invalidate(key = "inside:<return.id>", cache = self.0)]
    async fn take(&self, item: Item) -> Result<Item, LoadError> {
        Ok(item)
    }
}

#[tokio::test]
async fn every_shape_runs() {
    let service = Service {
        cache: Cache::in_memory(),
        region: "eu".to_owned(),
    };
    assert_eq!(plain(1).await, Item { id: 1 });
    assert_eq!(option(0).await, None);
    assert!(result(0).await.is_err());
    assert_eq!(io_alias("x").await.unwrap(), "x");
    assert_eq!(
        generic(&|id| Some(Item { id }), 7u32).await.unwrap(),
        Some(Item { id: 7 })
    );
    assert_eq!(generic_key(7u32), "{generic:7}");
    assert_eq!(service.describe(&Item { id: 2 }).await, "2 in eu");
    assert_eq!(service.describe_key(&Item { id: 2 }), "{svc:eu:2}");
    service.describe_invalidate(&Item { id: 2 }).await.unwrap();
    assert!(save(0).await.is_err());
    assert_eq!(save(1).await.unwrap(), 1);
    assert!(replace(0, Item { id: 2 }).await.is_err());
    assert_eq!(replace(1, Item { id: 2 }).await.unwrap(), Item { id: 2 });
    assert_eq!(create(Item { id: 3 }).await, Item { id: 3 });
    assert_eq!(Item::find(3).await, Some(Item { id: 3 }));
    assert_eq!(Item::find_key(3), "{find:3}");
    Item::remove(3).await.unwrap();
    assert_eq!(Repo::get(&service, 4).await.unwrap(), Item { id: 4 });
    assert_eq!(service.get_key(4), "{repo:eu:4}");
    Repo::put(&service, 4).await.unwrap();
    service.get_invalidate(4).await.unwrap();
    for store in [&Outside(Cache::in_memory()) as &dyn Store, &Inside(Cache::in_memory())] {
        assert_eq!(store.get(5).await, Item { id: 5 });
        store.put(5).await.unwrap();
        assert_eq!(store.take(Item { id: 6 }).await.unwrap(), Item { id: 6 });
    }
    assert_eq!(Outside(Cache::in_memory()).get_key(5), "{outside:5}");
    assert_eq!(Inside(Cache::in_memory()).get_key(5), "{inside:5}");
}
