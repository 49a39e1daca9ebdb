//! Behaviours every store must show, run against Redis (`tests/redis.rs`) and the
//! in-memory store (`tests/memory.rs`).
#![allow(
    dead_code,
    unreachable_pub,
    unused_macros,
    unused_imports,
    reason = "each test binary uses part of it"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_cached::{Cache, redis_cached, redis_invalidate};
use serde::{Deserialize, Serialize};

use crate::support::eventually;

pub mod load;

/// One test per behaviour, each given a fresh `(guard, Arc<Db>)` from `$make`; the guard
/// (a Redis server, or nothing) lives as long as the test.
macro_rules! behaviour_tests {
    ($make:expr) => {
        behaviour_tests!(@each $make;
            hit_after_miss,
            values_expire_after_their_ttl,
            none_is_cached_negatively_for_its_own_ttl,
            none_is_not_cached_without_negative,
            errors_are_never_cached,
            separators_in_values_do_not_collide,
            a_value_cannot_forge_another_templates_key,
            invalidate_makes_the_next_call_load,
            invalidation_during_a_load_discards_its_fill,
            concurrent_misses_share_one_load,
            a_panicking_loader_hands_over_to_waiters,
            a_dropped_caller_hands_over_to_waiters,
            another_version_or_codec_is_a_miss,
            a_call_after_invalidate_does_not_join_the_older_load,
            redis_invalidate_evicts_every_key_on_ok_and_none_on_err,
            a_tag_invalidation_evicts_every_value_with_that_tag,
            a_move_invalidates_the_listings_of_the_category_left_and_the_category_joined,
            a_value_loaded_before_a_tag_bump_is_not_served_after_it,
            past_its_ttl_a_value_is_served_stale_while_one_caller_refreshes,
            a_failed_refresh_serves_the_stale_value,
            a_refresh_that_finds_the_value_gone_drops_it,
            a_failed_refresh_is_not_a_load_result_for_plain_misses,
            every_call_is_counted_once_including_a_successful_refresh,
            refresh_ahead_reloads_in_one_caller_while_the_others_keep_the_value,
            values_the_codec_cannot_read_back_are_not_stored,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_guard, db) = $make.await;
                behaviour::$name(&db).await;
            }
        )*
    };
}
pub(crate) use behaviour_tests;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub price_cents: i64,
}

/// A value shape bincode cannot read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sparse {
    pub id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError(pub String);

/// A fake database whose loads are counted and can be slowed, failed or made to panic.
pub struct Db {
    pub cache: Cache,
    pub loads: Arc<AtomicUsize>,
    pub delay_ms: AtomicU64,
    pub fail: AtomicBool,
    pub panic: AtomicBool,
    /// Makes every product "not found".
    pub gone: AtomicBool,
    /// Bumped by tests to tell loaded values apart.
    pub generation: AtomicU64,
    /// Each product's category, for the listings by category.
    pub categories: Mutex<BTreeMap<u64, u32>>,
}

/// Where a product is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub id: u64,
    pub category: u32,
}

/// A product's placement before and after a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub before: Placement,
    pub after: Placement,
}

impl Db {
    pub fn new(cache: Cache) -> Db {
        Db::sharing(cache, Arc::new(AtomicUsize::new(0)))
    }

    /// A `Db` whose load counter is shared with others (several "processes").
    pub fn sharing(cache: Cache, loads: Arc<AtomicUsize>) -> Db {
        Db {
            cache,
            loads,
            delay_ms: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            categories: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    async fn query(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let panic = self.panic.load(Ordering::SeqCst);
        // What the database holds when the query starts.
        let generation = self.generation.load(Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        assert!(!panic, "the database exploded");
        if self.fail.load(Ordering::SeqCst) {
            return Err(DbError("connection refused".into()));
        }
        let exists = id != 0 && !self.gone.load(Ordering::SeqCst);
        Ok(exists.then(|| Product {
            id,
            name: format!("product {id} v{generation}"),
            price_cents: 100 * id as i64,
        }))
    }

    #[redis_cached(key = "product:<id>", ttl = 60, lock, negative = "400ms", cache = self.cache)]
    pub async fn product(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "product:<id>", ttl = 60, lock, negative = "400ms", version = 2, cache = self.cache)]
    pub async fn product_v2(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "product:<id>", ttl = 60, lock = "60s", cache = self.cache)]
    pub async fn product_long_lease(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "product:<id>", ttl = 60, lock = "300ms", cache = self.cache)]
    pub async fn product_short_lease(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "product:<id>", ttl = 60, codec = "json", cache = self.cache)]
    pub async fn product_json(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "short:<id>", ttl = "300ms", cache = self.cache)]
    pub async fn short_lived(&self, id: u64) -> Product {
        self.query(id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("product {id} exists"))
    }

    /// Writes product `id` (a new generation) and evicts what depends on it, unless the
    /// write is rejected.
    #[redis_invalidate(key = "product:<id>", key = "short:<id>", cache = self.cache)]
    pub async fn update_product(&self, id: u64, reject: bool) -> Result<u64, DbError> {
        if reject {
            return Err(DbError("rejected".into()));
        }
        Ok(self.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[redis_cached(key = "tagged:<id>", ttl = 60, tags = ["catalog", "category:<category>"], cache = self.cache)]
    pub async fn tagged(&self, id: u64, category: u32) -> Product {
        let _ = category;
        self.query(id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("product {id} exists"))
    }

    /// Re-prices a whole category: every product cached under its tag is stale.
    #[redis_invalidate(key = "category-page:<category>", tags = ["category:<category>"], cache = self.cache)]
    pub async fn reprice_category(&self, category: u32) -> Result<(), DbError> {
        let _ = category;
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The products listed in `category`.
    #[redis_cached(key = "listing:<category>", ttl = 60, tags = ["category:<category>"], cache = self.cache)]
    pub async fn listing(&self, category: u32) -> Vec<u64> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let categories = self.categories.lock().unwrap();
        categories
            .iter()
            .filter(|&(_, &c)| c == category)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Moves product `id` to `category`, unless the move is rejected: the listings of
    /// the category it left and of the one it joined are stale, which only the move
    /// itself learns.
    #[redis_invalidate(
        key = "product:<id>",
        tags = ["category:<return.before.category>", "category:<return.after.category>"],
        cache = self.cache
    )]
    pub async fn move_product(&self, id: u64, category: u32, reject: bool) -> Result<Moved, DbError> {
        if reject {
            return Err(DbError("rejected".into()));
        }
        let mut categories = self.categories.lock().unwrap();
        let left = categories.insert(id, category);
        let left = left.ok_or_else(|| DbError(format!("no product {id}")))?;
        Ok(Moved {
            before: Placement { id, category: left },
            after: Placement { id, category },
        })
    }

    /// Goes stale after 300 ms, and stays servable for 30 s past that.
    #[redis_cached(key = "fresh:<id>", ttl = "300ms", stale = "30s", jitter = 0, cache = self.cache)]
    pub async fn fresh(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    /// Stale after 200 ms, gone 300 ms later.
    #[redis_cached(key = "brief:<id>", ttl = "200ms", stale = "300ms", jitter = 0, cache = self.cache)]
    pub async fn brief(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    /// Refreshed ahead of its ttl; the huge beta makes every read an early refresh.
    #[redis_cached(key = "ahead:<id>", ttl = 60, refresh = "xfetch", beta = 1e9, cache = self.cache)]
    pub async fn ahead(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "maybe:<id>", ttl = 60, cache = self.cache)]
    pub async fn maybe(&self, id: u64) -> Option<Product> {
        self.query(id).await.ok().flatten()
    }

    #[redis_cached(key = "pair:<a>:<b>", ttl = 60, cache = self.cache)]
    pub async fn pair(&self, a: &str, b: &str) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("{a}|{b}")
    }

    #[redis_cached(key = "user:<name>", ttl = 60, cache = self.cache)]
    pub async fn user(&self, name: &str) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("user {name}")
    }

    #[redis_cached(key = "user:<id>/avatar", ttl = 60, cache = self.cache)]
    pub async fn avatar(&self, id: &str) -> String {
        self.loads.fetch_add(1, Ordering::SeqCst);
        format!("avatar of {id}")
    }

    #[redis_cached(key = "sparse:<id>", ttl = 60, cache = self.cache)]
    pub async fn sparse(&self, id: u64) -> Sparse {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Sparse { id, note: None }
    }

    #[redis_cached(key = "sparse-mp:<id>", ttl = 60, codec = "msgpack", cache = self.cache)]
    pub async fn sparse_msgpack(&self, id: u64) -> Sparse {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Sparse { id, note: None }
    }
}

pub fn product(id: u64, generation: u64) -> Product {
    Product {
        id,
        name: format!("product {id} v{generation}"),
        price_cents: 100 * id as i64,
    }
}

/// 200 concurrent calls on a cold key, split over two caches that share a load counter
/// (two "processes" of one deployment), run the loader exactly once; returns the two
/// caches' stats.
pub async fn one_load_across_two_processes(a: Arc<Db>, b: Arc<Db>) -> (redis_cached::Stats, redis_cached::Stats) {
    for db in [&a, &b] {
        db.delay_ms.store(200, Ordering::SeqCst);
    }
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { db.product(77).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(Some(product(77, 0))));
    }
    assert_eq!(a.loads(), 1, "one load in the whole deployment");
    (a.cache.stats(), b.cache.stats())
}

pub async fn hit_after_miss(db: &Db) {
    assert_eq!(db.product(7).await, Ok(Some(product(7, 0))));
    assert_eq!(db.product(7).await, Ok(Some(product(7, 0))));
    assert_eq!(db.loads(), 1);
    let stats = db.cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
    assert!((stats.hit_rate() - 0.5).abs() < f64::EPSILON);
}

pub async fn values_expire_after_their_ttl(db: &Db) {
    db.short_lived(3).await;
    db.short_lived(3).await;
    assert_eq!(db.loads(), 1);
    eventually("the 300 ms value expires", async || {
        db.short_lived(3).await;
        db.loads() == 2
    })
    .await;
}

pub async fn none_is_cached_negatively_for_its_own_ttl(db: &Db) {
    assert_eq!(db.product(0).await, Ok(None));
    assert_eq!(db.product(0).await, Ok(None));
    assert_eq!(db.loads(), 1);
    assert_eq!(db.cache.stats().negative_hits, 1);
    // The negative TTL (400 ms) is much shorter than the value TTL (60 s).
    eventually("the negative entry expires", async || {
        db.product(0).await.unwrap();
        db.loads() == 2
    })
    .await;
}

pub async fn none_is_not_cached_without_negative(db: &Db) {
    assert_eq!(db.maybe(0).await, None);
    assert_eq!(db.maybe(0).await, None);
    assert_eq!(db.loads(), 2);
    assert_eq!(db.maybe(5).await, Some(product(5, 0)));
    assert_eq!(db.maybe(5).await, Some(product(5, 0)));
    assert_eq!(db.loads(), 3);
}

pub async fn errors_are_never_cached(db: &Db) {
    db.fail.store(true, Ordering::SeqCst);
    assert_eq!(db.product(9).await, Err(DbError("connection refused".into())));
    assert_eq!(db.product(9).await, Err(DbError("connection refused".into())));
    assert_eq!(db.loads(), 2);
    db.fail.store(false, Ordering::SeqCst);
    assert_eq!(db.product(9).await, Ok(Some(product(9, 0))));
    assert_eq!(db.product(9).await, Ok(Some(product(9, 0))));
    assert_eq!(db.loads(), 3);
}

pub async fn separators_in_values_do_not_collide(db: &Db) {
    assert_eq!(db.pair("1:2", "3").await, "1:2|3");
    assert_eq!(db.pair("1", "2:3").await, "1|2:3");
    assert_eq!(db.pair("1:2", "3").await, "1:2|3");
    assert_eq!(db.pair("1", "2:3").await, "1|2:3");
    assert_eq!(db.loads(), 2);
    assert_ne!(db.pair_key("1:2", "3"), db.pair_key("1", "2:3"));
}

/// Regression: `user:<name>` with `alice/avatar` and `user:<id>/avatar` with `alice`
/// rendered the same key, so each fn could be served the other's value.
pub async fn a_value_cannot_forge_another_templates_key(db: &Db) {
    assert_eq!(db.user("alice/avatar").await, "user alice/avatar");
    assert_eq!(db.avatar("alice").await, "avatar of alice", "not the user's value");
    assert_eq!(db.user("alice/avatar").await, "user alice/avatar");
    assert_eq!(db.avatar("alice").await, "avatar of alice");
    assert_eq!(db.loads(), 2, "each loaded once, then hit");
    assert_ne!(db.user_key("alice/avatar"), db.avatar_key("alice"));
}

pub async fn invalidate_makes_the_next_call_load(db: &Db) {
    assert_eq!(db.product(4).await, Ok(Some(product(4, 0))));
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(db.product(4).await, Ok(Some(product(4, 0))), "still cached");
    db.product_invalidate(4).await.unwrap();
    assert_eq!(db.product(4).await, Ok(Some(product(4, 1))));
    db.cache.invalidate("product:4").await.unwrap();
    db.generation.store(2, Ordering::SeqCst);
    assert_eq!(db.product(4).await, Ok(Some(product(4, 2))));
    assert_eq!(db.loads(), 3);
}

/// An invalidation during a load voids that load's fill: the stale result is returned
/// to its caller but never stored.
pub async fn invalidation_during_a_load_discards_its_fill(db: &Arc<Db>) {
    db.delay_ms.store(300, Ordering::SeqCst);
    let loading = tokio::spawn({
        let db = db.clone();
        async move { db.product(11).await }
    });
    eventually("the load starts", async || db.loads() == 1).await;
    db.product_invalidate(11).await.unwrap();
    assert_eq!(loading.await.unwrap(), Ok(Some(product(11, 0))));
    db.delay_ms.store(0, Ordering::SeqCst);
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(
        db.product(11).await,
        Ok(Some(product(11, 1))),
        "the voided load was not stored"
    );
    assert_eq!(db.loads(), 2);
}

/// Concurrent misses of one key in one process share one load.
pub async fn concurrent_misses_share_one_load(db: &Arc<Db>) {
    db.delay_ms.store(100, Ordering::SeqCst);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.product(21).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(Some(product(21, 0))));
    }
    assert_eq!(db.loads(), 1);
    let stats = db.cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.coalesced + stats.hits, 49, "{stats:?}");
}

/// A leader that panics hands over to a waiter; nothing is cached by the panic.
pub async fn a_panicking_loader_hands_over_to_waiters(db: &Arc<Db>) {
    db.delay_ms.store(100, Ordering::SeqCst);
    db.panic.store(true, Ordering::SeqCst);
    let leader = tokio::spawn({
        let db = db.clone();
        async move { db.product(31).await }
    });
    eventually("the panicking load starts", async || db.loads() == 1).await;
    db.panic.store(false, Ordering::SeqCst);
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.product(31).await })
        })
        .collect();
    assert!(leader.await.unwrap_err().is_panic());
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), Ok(Some(product(31, 0))));
    }
    assert_eq!(db.loads(), 2, "one waiter took over");
}

/// A caller whose future is dropped mid-load does not fail the others.
pub async fn a_dropped_caller_hands_over_to_waiters(db: &Arc<Db>) {
    db.delay_ms.store(200, Ordering::SeqCst);
    let dropped = tokio::spawn({
        let db = db.clone();
        async move { tokio::time::timeout(Duration::from_millis(50), db.product(41)).await }
    });
    eventually("the first load starts", async || db.loads() == 1).await;
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.product(41).await }
    });
    assert!(dropped.await.unwrap().is_err(), "the first caller timed out");
    assert_eq!(waiter.await.unwrap(), Ok(Some(product(41, 0))));
    assert_eq!(db.loads(), 2);
    assert_eq!(
        db.product(41).await,
        Ok(Some(product(41, 0))),
        "the waiter's load was stored"
    );
    assert_eq!(db.loads(), 2);
}

/// A value written under another version (or codec) is a miss, then overwritten.
pub async fn another_version_or_codec_is_a_miss(db: &Db) {
    assert_eq!(db.product(51).await, Ok(Some(product(51, 0))));
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(
        db.product_v2(51).await,
        Ok(Some(product(51, 1))),
        "v1 bytes are not read as v2"
    );
    assert_eq!(db.product_v2(51).await, Ok(Some(product(51, 1))));
    db.generation.store(2, Ordering::SeqCst);
    assert_eq!(
        db.product_json(51).await,
        Ok(Some(product(51, 2))),
        "bincode bytes are not read as json"
    );
    assert_eq!(db.loads(), 3);
    assert_eq!(db.cache.stats().unreadable, 0, "another format is not corruption");
}

/// bincode cannot read `skip_serializing_if` back: the value is returned, never stored.
pub async fn values_the_codec_cannot_read_back_are_not_stored(db: &Db) {
    assert_eq!(db.sparse(1).await, Sparse { id: 1, note: None });
    assert_eq!(db.sparse(1).await, Sparse { id: 1, note: None });
    assert_eq!(db.loads(), 2);
    assert_eq!(db.cache.stats().unstorable, 2);
    assert_eq!(db.sparse_msgpack(1).await, Sparse { id: 1, note: None });
    assert_eq!(db.sparse_msgpack(1).await, Sparse { id: 1, note: None });
    assert_eq!(db.loads(), 3);
}

/// Regression: a call that starts after `invalidate` returned joined the load that was
/// already running and got its stale result.
pub async fn a_call_after_invalidate_does_not_join_the_older_load(db: &Arc<Db>) {
    db.delay_ms.store(300, Ordering::SeqCst);
    let old = tokio::spawn({
        let db = db.clone();
        async move { db.product(61).await }
    });
    eventually("the old load starts", async || db.loads() == 1).await;
    db.generation.store(1, Ordering::SeqCst);
    db.product_invalidate(61).await.unwrap();
    assert_eq!(
        db.product(61).await,
        Ok(Some(product(61, 1))),
        "a new load, not the old one"
    );
    assert_eq!(
        old.await.unwrap(),
        Ok(Some(product(61, 0))),
        "the old caller still gets its load"
    );
    assert_eq!(
        db.product(61).await,
        Ok(Some(product(61, 1))),
        "the old load was not stored"
    );
}

pub async fn redis_invalidate_evicts_every_key_on_ok_and_none_on_err(db: &Db) {
    assert_eq!(db.product(4).await, Ok(Some(product(4, 0))));
    assert_eq!(db.short_lived(4).await, product(4, 0));
    assert_eq!(db.update_product(4, true).await, Err(DbError("rejected".into())));
    assert_eq!(db.product(4).await, Ok(Some(product(4, 0))), "an `Err` evicts nothing");
    assert_eq!(db.loads(), 2);
    assert_eq!(db.update_product(4, false).await, Ok(1));
    assert_eq!(db.product(4).await, Ok(Some(product(4, 1))), "evicted on `Ok`");
    assert_eq!(db.short_lived(4).await, product(4, 1), "every key is evicted");
    assert_eq!(db.loads(), 4);
}

/// Tags named by the result: the move finds the category it leaves, and both that
/// category's listing and the joined one's reload; a rejected move evicts nothing.
pub async fn a_move_invalidates_the_listings_of_the_category_left_and_the_category_joined(db: &Db) {
    db.categories.lock().unwrap().extend([(1, 7), (2, 7), (3, 8)]);
    for _ in 0..2 {
        assert_eq!(db.listing(7).await, [1, 2]);
        assert_eq!(db.listing(8).await, [3]);
        assert_eq!(db.listing(9).await, Vec::<u64>::new());
    }
    assert_eq!(db.loads(), 3);
    assert_eq!(db.move_product(2, 8, true).await, Err(DbError("rejected".into())));
    assert_eq!(db.listing(7).await, [1, 2], "an `Err` evicts nothing");
    assert_eq!(db.listing(8).await, [3], "an `Err` evicts nothing");
    assert_eq!(db.loads(), 3);
    let moved = db.move_product(2, 8, false).await.unwrap();
    assert_eq!((moved.before.category, moved.after.category), (7, 8));
    assert_eq!(db.listing(7).await, [1], "the category left reloads");
    assert_eq!(db.listing(8).await, [2, 3], "the category joined reloads");
    assert_eq!(db.listing(9).await, Vec::<u64>::new());
    assert_eq!(db.loads(), 5, "the other category was not invalidated");
    // A move within one category: both tags render to one, which is invalidated.
    db.categories.lock().unwrap().insert(4, 8);
    assert_eq!(db.listing(8).await, [2, 3], "still cached");
    db.move_product(4, 8, false).await.unwrap();
    assert_eq!(db.listing(8).await, [2, 3, 4]);
    assert_eq!(db.loads(), 6);
}

pub async fn a_tag_invalidation_evicts_every_value_with_that_tag(db: &Db) {
    for (id, category) in [(1, 7), (2, 7), (3, 8)] {
        assert_eq!(db.tagged(id, category).await, product(id, 0));
        assert_eq!(db.tagged(id, category).await, product(id, 0));
    }
    assert_eq!(db.loads(), 3);
    assert_eq!(db.reprice_category(7).await, Ok(()));
    assert_eq!(db.tagged(1, 7).await, product(1, 1), "category 7 was invalidated");
    assert_eq!(db.tagged(2, 7).await, product(2, 1));
    assert_eq!(db.tagged(3, 8).await, product(3, 0), "category 8 was not");
    assert_eq!(db.loads(), 5);
    db.generation.store(2, Ordering::SeqCst);
    db.cache.invalidate_tag("catalog").await.unwrap();
    for (id, category) in [(1, 7), (2, 7), (3, 8)] {
        assert_eq!(
            db.tagged(id, category).await,
            product(id, 2),
            "the whole catalog was invalidated"
        );
    }
    assert_eq!(db.loads(), 8);
}

/// A load that started before its tag was invalidated and stored its result after: that
/// result is never served once the invalidation returned.
pub async fn a_value_loaded_before_a_tag_bump_is_not_served_after_it(db: &Arc<Db>) {
    db.delay_ms.store(300, Ordering::SeqCst);
    let early = tokio::spawn({
        let db = db.clone();
        async move { db.tagged(4, 9).await }
    });
    eventually("the load starts", async || db.loads() == 1).await;
    db.generation.store(1, Ordering::SeqCst);
    db.cache.invalidate_tag("category:9").await.unwrap();
    assert_eq!(
        early.await.unwrap(),
        product(4, 0),
        "its own caller gets the early load"
    );
    db.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(
        db.tagged(4, 9).await,
        product(4, 1),
        "the early result, stored after the bump, is not served"
    );
    assert_eq!(db.tagged(4, 9).await, product(4, 1));
    assert_eq!(db.loads(), 2);
}

/// `stale`: past the ttl, one caller refreshes and every other caller gets the stale
/// value at once; afterwards everyone gets the refreshed one.
pub async fn past_its_ttl_a_value_is_served_stale_while_one_caller_refreshes(db: &Arc<Db>) {
    assert_eq!(db.fresh(5).await, Ok(Some(product(5, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await; // past the 300 ms ttl
    db.generation.store(1, Ordering::SeqCst);
    db.delay_ms.store(300, Ordering::SeqCst);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.fresh(5).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let stale = results.iter().filter(|r| **r == Ok(Some(product(5, 0)))).count();
    let fresh = results.iter().filter(|r| **r == Ok(Some(product(5, 1)))).count();
    assert_eq!(
        (stale, fresh),
        (9, 1),
        "one refreshed, the others did not wait: {results:?}"
    );
    assert_eq!(db.loads(), 2, "exactly one refresh");
    assert_eq!(db.cache.stats().stale_hits, 9);
    assert_eq!(
        db.fresh(5).await,
        Ok(Some(product(5, 1))),
        "the refreshed value is stored"
    );
    assert_eq!(db.loads(), 2);
}

/// `stale` also covers a failing loader: within the window, the refresh's error gives
/// way to the stale value; the next call tries again.
pub async fn a_failed_refresh_serves_the_stale_value(db: &Db) {
    assert_eq!(db.fresh(6).await, Ok(Some(product(6, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await; // past the 300 ms ttl
    db.fail.store(true, Ordering::SeqCst);
    assert_eq!(db.fresh(6).await, Ok(Some(product(6, 0))), "stale, not the error");
    assert_eq!(db.cache.stats().stale_hits, 1);
    db.fail.store(false, Ordering::SeqCst);
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(db.fresh(6).await, Ok(Some(product(6, 1))), "refreshed on the next call");
    assert_eq!(db.loads(), 3);
}

/// `refresh = "xfetch"`: a read that draws an early refresh reloads the value before its
/// ttl; every other caller keeps getting the current value without waiting.
pub async fn refresh_ahead_reloads_in_one_caller_while_the_others_keep_the_value(db: &Arc<Db>) {
    // XFetch weighs the measured load time: the first load takes a little.
    db.delay_ms.store(20, Ordering::SeqCst);
    assert_eq!(db.ahead(8).await, Ok(Some(product(8, 0))));
    db.generation.store(1, Ordering::SeqCst);
    db.delay_ms.store(300, Ordering::SeqCst);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.ahead(8).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let current = results.iter().filter(|r| **r == Ok(Some(product(8, 0)))).count();
    let refreshed = results.iter().filter(|r| **r == Ok(Some(product(8, 1)))).count();
    assert_eq!(
        (current, refreshed),
        (9, 1),
        "one refreshed early, the others kept the value: {results:?}"
    );
    assert_eq!(db.loads(), 2);
    assert_eq!(db.cache.stats().stale_hits, 0, "nothing was served past its ttl");
}

/// Regression: a refresh whose loader says the value no longer exists (`None`, not cached
/// without `negative`) left the old value to be served for the rest of its window.
pub async fn a_refresh_that_finds_the_value_gone_drops_it(db: &Db) {
    assert_eq!(db.fresh(7).await, Ok(Some(product(7, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await; // past the 300 ms ttl
    db.gone.store(true, Ordering::SeqCst);
    assert_eq!(
        db.fresh(7).await,
        Ok(None),
        "the refreshing caller gets the loader's answer"
    );
    assert_eq!(
        db.fresh(7).await,
        Ok(None),
        "and the old value is not served to the next one"
    );
}

/// Regression: a refresh whose loader failed handed the value it was replacing to the
/// plain misses that had joined its load, here after the value's stale window closed
/// and the key was gone.
pub async fn a_failed_refresh_is_not_a_load_result_for_plain_misses(db: &Arc<Db>) {
    assert_eq!(db.brief(9).await, Ok(Some(product(9, 0))));
    tokio::time::sleep(Duration::from_millis(250)).await; // stale, servable until 500 ms
    db.fail.store(true, Ordering::SeqCst);
    db.delay_ms.store(700, Ordering::SeqCst);
    let refreshing = tokio::spawn({
        let db = db.clone();
        async move { db.brief(9).await }
    });
    eventually("the refresh loads", async || db.loads() == 2).await;
    tokio::time::sleep(Duration::from_millis(350)).await; // the window has closed
    let miss = db.brief(9).await;
    assert_eq!(
        miss,
        Err(DbError("connection refused".into())),
        "the miss gets its own loader's result, not the old value"
    );
    assert_eq!(
        refreshing.await.unwrap(),
        Ok(Some(product(9, 0))),
        "the refreshing caller, which found the value, may get it (stale-if-error)"
    );
}

/// Regression: a successful refresh was counted nowhere in `stats()`.
pub async fn every_call_is_counted_once_including_a_successful_refresh(db: &Arc<Db>) {
    let counted = |db: &Db| {
        let s = db.cache.stats();
        s.hits + s.negative_hits + s.stale_hits + s.refreshes + s.misses
    };
    assert_eq!(db.fresh(11).await, Ok(Some(product(11, 0)))); // miss
    assert_eq!(db.fresh(11).await, Ok(Some(product(11, 0)))); // hit
    tokio::time::sleep(Duration::from_millis(400)).await; // past the 300 ms ttl
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(db.fresh(11).await, Ok(Some(product(11, 1)))); // refresh
    // XFetch weighs the measured load time: the first load takes a little.
    db.delay_ms.store(20, Ordering::SeqCst);
    assert_eq!(db.ahead(11).await, Ok(Some(product(11, 1)))); // miss
    assert_eq!(db.ahead(11).await, Ok(Some(product(11, 1)))); // early refresh
    db.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(db.product(0).await, Ok(None)); // miss
    assert_eq!(db.product(0).await, Ok(None)); // negative hit
    assert_eq!(counted(db), 7, "{:?}", db.cache.stats());
    assert_eq!(db.cache.stats().refreshes, 2);
}
