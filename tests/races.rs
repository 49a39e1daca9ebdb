//! Races and failures against the guarantees of invalidation, refresh, coalescing,
//! counting and failing open, on a real redis-server: two caches on one server stand for
//! two processes, a proxy slows or cuts one of them off, futures are dropped and loaders
//! panic midway.

mod behaviour;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use behaviour::{DbError, Product, product};
use redis::Commands;
use redis_cached::{Cache, redis_cached};
use support::delay_proxy::DelayProxy;
use support::proxy::{Fault, Proxy};
use support::{RedisServer, eventually, lose_subscription, wait_connected};

/// What every "process" shares: the database behind the caches.
#[derive(Default)]
struct Database {
    /// Loader runs, in every process.
    loads: AtomicUsize,
    /// Loader runs that returned.
    finished: AtomicUsize,
    /// Bumped by writes; loaded values carry the generation their load read.
    generation: AtomicU64,
    /// Makes every product "not found".
    gone: AtomicBool,
}

/// One process's view of the database, with cached reads.
struct Shop {
    cache: Cache,
    db: Arc<Database>,
    delay_ms: AtomicU64,
    fail: AtomicBool,
    panic: AtomicBool,
}

impl Shop {
    fn new(cache: Cache, db: &Arc<Database>) -> Arc<Shop> {
        Arc::new(Shop {
            cache,
            db: db.clone(),
            delay_ms: AtomicU64::new(0),
            fail: AtomicBool::new(false),
            panic: AtomicBool::new(false),
        })
    }

    fn slow(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    async fn query(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.db.loads.fetch_add(1, Ordering::SeqCst);
        let panic = self.panic.load(Ordering::SeqCst);
        let fail = self.fail.load(Ordering::SeqCst);
        // What the database holds when the query starts.
        let generation = self.db.generation.load(Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        assert!(!panic, "the database exploded");
        self.db.finished.fetch_add(1, Ordering::SeqCst);
        if fail {
            return Err(DbError("connection refused".into()));
        }
        if self.db.gone.load(Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(Some(product(id, generation)))
    }

    #[redis_cached(key = "item:<id>", ttl = 60, lock, cache = self.cache)]
    async fn item(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "free:<id>", ttl = 60, cache = self.cache)]
    async fn free(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "held:<id>", ttl = 60, lock = "60s", cache = self.cache)]
    async fn held(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    #[redis_cached(key = "tagged:<id>", ttl = 60, tags = ["category:<category>"], cache = self.cache)]
    async fn tagged(&self, id: u64, category: u32) -> Result<Option<Product>, DbError> {
        let _ = category;
        self.query(id).await
    }

    /// Stale after 300 ms, servable for 30 s past that.
    #[redis_cached(key = "stale:<id>", ttl = "300ms", stale = "30s", jitter = 0, cache = self.cache)]
    async fn stale(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    /// Stale after 300 ms, servable for 30 s past that; "not found" cached for 30 s.
    #[redis_cached(key = "maybe:<id>", ttl = "300ms", stale = "30s", negative = "30s", jitter = 0, cache = self.cache)]
    async fn maybe(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }

    /// Stale after 200 ms, gone 300 ms later.
    #[redis_cached(key = "brief:<id>", ttl = "200ms", stale = "300ms", jitter = 0, cache = self.cache)]
    async fn brief(&self, id: u64) -> Result<Option<Product>, DbError> {
        self.query(id).await
    }
}

/// Two processes on one database and one Redis: `a` talks to Redis directly, `b`
/// through a proxy (with the default timeouts), so faults can hit `b` alone.
async fn two_processes() -> (RedisServer, Proxy, Arc<Database>, Arc<Shop>, Arc<Shop>) {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port).await;
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(support::cache_via(&proxy.url()).await, &db);
    (redis, proxy, db, a, b)
}

fn exists(redis: &RedisServer, key: &str) -> bool {
    redis.conn().exists::<_, bool>(key).unwrap()
}

/// Every call counts once as one of these.
fn counted(cache: &Cache) -> u64 {
    let s = cache.stats();
    s.hits + s.negative_hits + s.stale_hits + s.refreshes + s.misses
}

/// Two processes on one database and one Redis: `a` talks to Redis directly, `b`
/// through a `DelayProxy`, with `call_budget` as both its deadline and its whole budget.
async fn slow_processes(call_budget: Duration) -> (RedisServer, DelayProxy, Arc<Database>, Arc<Shop>, Arc<Shop>) {
    let redis = RedisServer::start();
    let proxy = DelayProxy::start(redis.port).await;
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let cache = Cache::builder()
        .url(proxy.url())
        .prefix("shop:")
        .op_timeout(call_budget)
        .call_budget(call_budget)
        .build()
        .await
        .unwrap();
    wait_connected(&cache).await;
    let b = Shop::new(cache, &db);
    (redis, proxy, db, a, b)
}

// ---------------------------------------------------------------------------------------
// 1. After an invalidation returns, no later call gets a value loaded before it.
// ---------------------------------------------------------------------------------------

/// Process `b` answers slowly (300 ms a reply) and has lost its subscription. Its load
/// under `category:7` finishes, checks the tag's version (unchanged), and only then does
/// process `a` invalidate the tag. A call in `b` that starts after `invalidate_tag`
/// returned must not get the load that read the database before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_between_the_version_check_and_the_fill_is_not_shared_with_a_later_call() {
    let (redis, proxy, db, a, b) = slow_processes(Duration::from_secs(30)).await;
    proxy.lose_subscription(&redis).await;
    // Redis learns the scripts of a tagged load (a first use costs extra round trips).
    assert_eq!(b.tagged(99, 7).await, Ok(Some(product(99, 0))));
    // Replies to `b` take 300 ms (well within its deadline).
    proxy.delay(300);

    b.slow(500);
    let early = tokio::spawn({
        let b = b.clone();
        async move { b.tagged(1, 7).await }
    });
    eventually("b's loader returned", async || db.finished.load(Ordering::SeqCst) == 2).await;
    // `b` has sent the version check; its reply (and so the fill) is 300 ms away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.generation.store(1, Ordering::SeqCst);
    a.cache.invalidate_tag("category:7").await.unwrap();
    let started_after = Instant::now();
    b.slow(0);
    let late = b.tagged(1, 7).await;
    assert_eq!(
        early.await.unwrap(),
        Ok(Some(product(1, 0))),
        "the early caller keeps its load"
    );
    assert_eq!(
        late,
        Ok(Some(product(1, 1))),
        "a call that started after invalidate_tag returned got a value loaded before it \
         (the call took {:?}, loads {}, {:?})",
        started_after.elapsed(),
        db.loads.load(Ordering::SeqCst),
        b.cache.stats()
    );
    assert_eq!(
        a.tagged(1, 7).await,
        Ok(Some(product(1, 1))),
        "the early fill is never read"
    );
}

/// Process `b`'s Redis replies are slow enough (150 ms) that a call spends most of its
/// 200 ms budget on its first read and its lease request runs out of it, so its load
/// runs without a claim; `b` has also lost its subscription. Process `a` invalidates
/// during that load. A call in `b` that starts after `invalidate` returned must not get
/// the load that read the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclaimed_load_is_not_shared_with_a_call_that_started_after_an_invalidation() {
    let (redis, proxy, db, a, b) = slow_processes(Duration::from_millis(200)).await;
    proxy.lose_subscription(&redis).await;
    // Replies to `b` take 150 ms: its lease request runs out of the 200 ms budget.
    proxy.delay(150);

    b.slow(1_000);
    let early = tokio::spawn({
        let b = b.clone();
        async move { b.item(2).await }
    });
    eventually("b is loading", async || db.loads.load(Ordering::SeqCst) == 1).await;
    db.generation.store(1, Ordering::SeqCst);
    a.cache.invalidate("item:2").await.unwrap();
    b.slow(0);
    let late = b.item(2).await;
    assert_eq!(early.await.unwrap(), Ok(Some(product(2, 0))));
    assert!(
        b.cache.stats().errors >= 1,
        "the budget was spent: {:?}",
        b.cache.stats()
    );
    assert_eq!(
        late,
        Ok(Some(product(2, 1))),
        "a call that started after invalidate returned joined an unclaimed load of the old value \
         (loads {}, {:?})",
        db.loads.load(Ordering::SeqCst),
        b.cache.stats()
    );
}

/// The same without `lock` (the fence): the voided load is not shared with later calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voided_unlocked_load_is_not_shared_with_a_later_call_when_the_message_is_lost() {
    let (redis, proxy, db, a, b) = two_processes().await;
    lose_subscription(&redis, &proxy).await;
    b.slow(400);
    let early = tokio::spawn({
        let b = b.clone();
        async move { b.free(4).await }
    });
    eventually("b is loading", async || db.loads.load(Ordering::SeqCst) == 1).await;
    db.generation.store(1, Ordering::SeqCst);
    a.cache.invalidate("free:4").await.unwrap();
    b.slow(0);
    assert_eq!(b.free(4).await, Ok(Some(product(4, 1))));
    assert_eq!(early.await.unwrap(), Ok(Some(product(4, 0))));
    assert_eq!(
        a.free(4).await,
        Ok(Some(product(4, 1))),
        "the voided load was not stored"
    );
}

/// Invalidations racing fills in one process: after each `invalidate` returns, a new
/// call gets a value at least as new as the write before it, whatever loads were running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_racing_fills_never_leave_an_old_value_behind() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(15);
    b.slow(25);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|shop| {
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let _ = shop.item(6).await;
                    let _ = shop.free(6).await;
                    let _ = shop.tagged(6, 1).await;
                }
            })
        })
        .collect();
    for round in 1..=40u64 {
        tokio::time::sleep(Duration::from_millis(7 * (round % 5))).await;
        db.generation.store(round, Ordering::SeqCst);
        let writer = if round % 2 == 0 { &a } else { &b };
        writer.cache.invalidate("item:6").await.unwrap();
        writer.cache.invalidate("free:6").await.unwrap();
        writer.cache.invalidate_tag("category:1").await.unwrap();
        for (name, value) in [
            ("item", writer.item(6).await),
            ("free", writer.free(6).await),
            ("tagged", writer.tagged(6, 1).await),
        ] {
            let seen = value.unwrap().unwrap().name;
            assert!(
                seen.ends_with(&format!("v{round}")),
                "round {round}: {name} returned {seen} after the invalidation"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// 2. A refresh never hands the value it found to other callers.
// ---------------------------------------------------------------------------------------

/// A refresh whose loader panics after the stale window closed: a plain miss that joined
/// it gets its own load (the new value), neither the old value nor the panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_panics_after_the_window_closed_hands_nothing_to_a_plain_miss() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    assert_eq!(a.brief(1).await, Ok(Some(product(1, 0))));
    tokio::time::sleep(Duration::from_millis(250)).await; // stale, gone at 500 ms
    a.panic.store(true, Ordering::SeqCst);
    a.slow(700);
    let refreshing = tokio::spawn({
        let a = a.clone();
        async move { a.brief(1).await }
    });
    eventually("the refresh loads", async || db.loads.load(Ordering::SeqCst) == 2).await;
    a.panic.store(false, Ordering::SeqCst);
    a.slow(0);
    db.generation.store(1, Ordering::SeqCst);
    eventually("the stale window closed", async || !exists(&redis, "shop:{brief:1}")).await;
    let miss = a.brief(1).await;
    assert!(refreshing.await.unwrap_err().is_panic());
    assert_eq!(miss, Ok(Some(product(1, 1))), "the miss loads for itself");
    eventually("the refresh's lease is released", async || {
        !exists(&redis, "shop:{brief:1}:lease")
    })
    .await;
}

/// A refreshing caller dropped mid-load (its task aborted): its lease is released at
/// once, stale readers meanwhile get the stale value, and the next stale reader
/// refreshes without waiting for the lease to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_refresh_releases_its_lease_and_the_next_caller_refreshes() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    assert_eq!(a.stale(2).await, Ok(Some(product(2, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await;
    db.generation.store(1, Ordering::SeqCst);
    a.slow(5_000);
    let refreshing = tokio::spawn({
        let a = a.clone();
        async move { a.stale(2).await }
    });
    eventually("the refresh holds the lease", async || {
        exists(&redis, "shop:{stale:2}:lease")
    })
    .await;
    assert_eq!(
        b.stale(2).await,
        Ok(Some(product(2, 0))),
        "b gets the stale value at once"
    );
    assert_eq!(a.stale(2).await, Ok(Some(product(2, 0))), "so does a");
    refreshing.abort();
    assert!(refreshing.await.unwrap_err().is_cancelled());
    eventually("the lease is released", async || {
        !exists(&redis, "shop:{stale:2}:lease")
    })
    .await;
    assert_eq!(b.stale(2).await, Ok(Some(product(2, 1))), "b refreshes now");
    assert_eq!(a.stale(2).await, Ok(Some(product(2, 1))));
}

/// A refresh dropped by a timeout while another process waits: a plain miss in the
/// other process that started after an invalidation never gets the stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_timed_out_by_its_caller_leaves_no_stale_value_after_an_invalidation() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    assert_eq!(a.stale(3).await, Ok(Some(product(3, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.slow(2_000);
    let dropped = tokio::time::timeout(Duration::from_millis(100), a.stale(3)).await;
    assert!(dropped.is_err());
    db.generation.store(1, Ordering::SeqCst);
    b.cache.invalidate("stale:3").await.unwrap();
    a.slow(0);
    assert_eq!(a.stale(3).await, Ok(Some(product(3, 1))));
    assert_eq!(b.stale(3).await, Ok(Some(product(3, 1))));
}

/// A failing refresh in one process while the other process's callers read: only the
/// refreshing caller gets stale-if-error; the others get the stale value as a stale hit
/// (they found it themselves), never the error, and the next call refreshes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_goes_only_to_the_refreshing_caller() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    assert_eq!(a.stale(4).await, Ok(Some(product(4, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.fail.store(true, Ordering::SeqCst);
    a.slow(300);
    let refreshing = tokio::spawn({
        let a = a.clone();
        async move { a.stale(4).await }
    });
    eventually("the refresh loads", async || db.loads.load(Ordering::SeqCst) == 2).await;
    let others: Vec<_> = (0..10)
        .map(|i| {
            let shop = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { shop.stale(4).await })
        })
        .collect();
    for other in others {
        assert_eq!(other.await.unwrap(), Ok(Some(product(4, 0))));
    }
    assert_eq!(refreshing.await.unwrap(), Ok(Some(product(4, 0))), "stale-if-error");
    assert_eq!(db.loads.load(Ordering::SeqCst), 2, "one refresh");
    a.fail.store(false, Ordering::SeqCst);
    a.slow(0);
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(a.stale(4).await, Ok(Some(product(4, 1))));
}

// ---------------------------------------------------------------------------------------
// 3. Without `lock`, each process loads once; a cache ignores its own messages.
// ---------------------------------------------------------------------------------------

/// A cache invalidates a key and at once starts a load of it; its own invalidation
/// message, arriving during that load, must not split the load in two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caches_own_invalidation_message_does_not_split_the_next_load() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    a.slow(400);
    for key in ["free:5", "item:5"] {
        a.cache.invalidate(key).await.unwrap();
    }
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { (a.free(5).await, a.item(5).await) })
        })
        .collect();
    // Both messages reach the cache while the loads run.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let late: Vec<_> = (0..8)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { (a.free(5).await, a.item(5).await) })
        })
        .collect();
    for call in calls.into_iter().chain(late) {
        let (free, item) = call.await.unwrap();
        assert_eq!((free, item), (Ok(Some(product(5, 0))), Ok(Some(product(5, 0)))));
    }
    assert_eq!(db.loads.load(Ordering::SeqCst), 2, "one load per key");
}

/// Without `lock`, two processes with 20 concurrent callers each load once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_lock_each_process_loads_once() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(300);
    b.slow(300);
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let shop = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { shop.free(6).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(Some(product(6, 0))));
    }
    assert!(
        db.loads.load(Ordering::SeqCst) <= 2,
        "{} loads",
        db.loads.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------------------
// 4. Every call counts once.
// ---------------------------------------------------------------------------------------

/// A call whose caller gives up (a timeout) or whose loader panics is still a call: a
/// dropped or panicking miss counts as a miss; a dropped or panicking refresh must count
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_counts_once_even_when_dropped_or_panicking() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);

    // A dropped miss: counted.
    a.slow(2_000);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), a.stale(7))
            .await
            .is_err()
    );
    let dropped_miss = counted(&a.cache);

    // Warm, then a dropped refresh.
    a.slow(0);
    assert_eq!(a.stale(8).await, Ok(Some(product(8, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = counted(&a.cache);
    a.slow(2_000);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), a.stale(8))
            .await
            .is_err()
    );
    let dropped_refresh = counted(&a.cache) - before;

    // A panicking refresh.
    eventually("the dropped refresh's lease is released", async || {
        !exists(&redis, "shop:{stale:8}:lease")
    })
    .await;
    a.slow(10);
    a.panic.store(true, Ordering::SeqCst);
    let before = counted(&a.cache);
    let panicked = tokio::spawn({
        let a = a.clone();
        async move { a.stale(8).await }
    });
    assert!(panicked.await.unwrap_err().is_panic());
    let panicking_refresh = counted(&a.cache) - before;

    assert_eq!(
        (dropped_miss, dropped_refresh, panicking_refresh),
        (1, 1, 1),
        "calls counted: a dropped miss, a dropped refresh, a panicking refresh; {:?}",
        a.cache.stats()
    );
}

/// Every completed call, across two processes, stale refreshes, failures and
/// invalidations, counts exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_completed_call_counts_once_under_concurrency() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(20);
    b.slow(20);
    let calls = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let shop = if i % 2 == 0 { a.clone() } else { b.clone() };
            let calls = calls.clone();
            tokio::spawn(async move {
                for n in 0..40u64 {
                    if n % 13 == 5 {
                        shop.fail.store(n % 2 == 0, Ordering::SeqCst);
                    }
                    let _ = shop.stale(9).await;
                    let _ = shop.item(9).await;
                    let _ = shop.tagged(9, 4).await;
                    calls.fetch_add(3, Ordering::SeqCst);
                    if n % 10 == 3 {
                        let _ = shop.cache.invalidate("item:9").await;
                        let _ = shop.cache.invalidate_tag("category:4").await;
                    }
                    if n % 7 == 0 {
                        tokio::time::sleep(Duration::from_millis(60)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        counted(&a.cache) + counted(&b.cache),
        calls.load(Ordering::SeqCst),
        "{:?} {:?}",
        a.cache.stats(),
        b.cache.stats()
    );
}

// ---------------------------------------------------------------------------------------
// 5. Failing open, the call budget, leases, the breaker.
// ---------------------------------------------------------------------------------------

/// Regression: a call budget smaller than the operation deadline was accepted, although
/// a call's first read alone may take the whole deadline.
#[tokio::test]
async fn a_call_budget_shorter_than_the_operation_deadline_is_refused() {
    let redis = RedisServer::start();
    let built = Cache::builder()
        .url(redis.url())
        .op_timeout(Duration::from_millis(300))
        .call_budget(Duration::from_millis(30))
        .build()
        .await;
    assert!(
        matches!(built, Err(redis_cached::Error::InvalidConfig(ref why)) if why.contains("call_budget")),
        "{built:?}"
    );
}

/// With the default budget and deadline, a hung Redis costs each call at most the
/// budget (150 ms), then the breaker makes calls instant; a lease taken by a request
/// that got no answer is released after Redis wakes, long before it would expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_fails_open_within_the_budget_and_leaks_no_lease() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(300);
    let loading = tokio::spawn({
        let a = a.clone();
        async move { a.held(2).await }
    });
    eventually("a holds the 60 s lease", async || exists(&redis, "shop:{held:2}:lease")).await;
    redis.pause();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let start = Instant::now();
        assert_eq!(b.held(3).await, Ok(Some(product(3, 0))));
        slowest = slowest.max(start.elapsed());
    }
    assert_eq!(
        loading.await.unwrap(),
        Ok(Some(product(2, 0))),
        "the fill timed out: failed open"
    );
    redis.resume();
    assert!(slowest < Duration::from_millis(200), "a call took {slowest:?}");
    assert!(b.cache.stats().skipped >= 1, "{:?}", b.cache.stats());
    eventually("no lease is left behind", async || {
        !exists(&redis, "shop:{held:2}:lease") && !exists(&redis, "shop:{held:3}:lease")
    })
    .await;
}

/// A lock waiter in a process whose Redis answers in 10 ms (healthy for the breaker)
/// waits for the holder's 6 s load: one load in the deployment, as `lock` promises
/// ("a waiter stops waiting after twice the lease, but at least 30 s").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_on_a_10ms_redis_waits_for_the_holder_instead_of_loading() {
    let (redis, proxy, db, a, b) = two_processes().await;
    proxy.set(Fault::Latency(Duration::from_millis(10)));
    a.slow(6_000);
    b.slow(6_000);
    let holder = tokio::spawn({
        let a = a.clone();
        async move { a.held(4).await }
    });
    eventually("a holds the lease", async || exists(&redis, "shop:{held:4}:lease")).await;
    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.held(4).await }
    });
    assert_eq!(holder.await.unwrap(), Ok(Some(product(4, 0))));
    assert_eq!(waiter.await.unwrap(), Ok(Some(product(4, 0))));
    assert_eq!(
        db.loads.load(Ordering::SeqCst),
        1,
        "the waiter loaded too: {:?}",
        b.cache.stats()
    );
}

/// A lock waiter dropped (timeout) or aborted mid-wait takes nothing with it: the
/// holder fills, and the waiters' process then hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waiters_dropped_mid_wait_leave_the_holders_fill_intact() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(500);
    let holder = tokio::spawn({
        let a = a.clone();
        async move { a.held(5).await }
    });
    eventually("a holds the lease", async || exists(&redis, "shop:{held:5}:lease")).await;
    let aborted = tokio::spawn({
        let b = b.clone();
        async move { b.held(5).await }
    });
    let joined = tokio::spawn({
        let b = b.clone();
        async move { b.held(5).await }
    });
    eventually("b waits on the lease", async || b.cache.stats().lock_waits == 1).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(50), b.held(5))
            .await
            .is_err()
    );
    aborted.abort();
    assert_eq!(holder.await.unwrap(), Ok(Some(product(5, 0))));
    assert_eq!(
        joined.await.unwrap(),
        Ok(Some(product(5, 0))),
        "the joined waiter took over the wait"
    );
    assert_eq!(b.held(5).await, Ok(Some(product(5, 0))));
    assert_eq!(db.loads.load(Ordering::SeqCst), 1);
    assert!(!exists(&redis, "shop:{held:5}:lease"));
}

/// A lock holder's subscription is killed and cannot come back: a waiter in the other
/// process still gets the holder's value promptly (it polls), and nobody loads twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_without_a_subscription_still_gets_the_holders_value_promptly() {
    let (redis, proxy, db, a, b) = two_processes().await;
    lose_subscription(&redis, &proxy).await;
    a.slow(300);
    let holder = tokio::spawn({
        let a = a.clone();
        async move { a.held(6).await }
    });
    eventually("a holds the lease", async || exists(&redis, "shop:{held:6}:lease")).await;
    let start = Instant::now();
    assert_eq!(b.held(6).await, Ok(Some(product(6, 0))));
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(holder.await.unwrap(), Ok(Some(product(6, 0))));
    assert_eq!(db.loads.load(Ordering::SeqCst), 1);
}

/// A holder whose loader panics while the other process waits: the lease is released
/// by the guard and the waiter takes over at once (not after the 60 s lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_holder_releases_its_lease_to_a_waiter_in_another_process() {
    let redis = RedisServer::start();
    let db = Arc::new(Database::default());
    let a = Shop::new(redis.cache("shop:").await, &db);
    let b = Shop::new(redis.cache("shop:").await, &db);
    a.slow(200);
    a.panic.store(true, Ordering::SeqCst);
    let holder = tokio::spawn({
        let a = a.clone();
        async move { a.held(7).await }
    });
    eventually("a holds the lease", async || exists(&redis, "shop:{held:7}:lease")).await;
    let start = Instant::now();
    assert_eq!(b.held(7).await, Ok(Some(product(7, 0))));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(holder.await.unwrap_err().is_panic());
    assert_eq!(db.loads.load(Ordering::SeqCst), 2);
}

/// Regression: an invalidation that landed between a refresh's read and its lease
/// request left the refresh to find the value gone, and when its loader then failed it
/// served the invalidated value anyway (stale-if-error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_finds_its_value_invalidated_does_not_serve_it_when_its_loader_fails() {
    let (_redis, proxy, _db, a, b) = slow_processes(Duration::from_secs(5)).await;
    assert_eq!(b.stale(4).await, Ok(Some(product(4, 0))));
    // Redis learns the scripts of a refresh (a first use costs extra round trips).
    assert_eq!(b.stale(5).await, Ok(Some(product(5, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await; // both stale now
    assert_eq!(b.stale(5).await, Ok(Some(product(5, 0))));
    // Replies to `b` take 300 ms: its read is answered, then its lease request is sent.
    proxy.delay(300);
    b.fail.store(true, Ordering::SeqCst);
    let refreshing = tokio::spawn({
        let b = b.clone();
        async move { b.stale(4).await }
    });
    // Redis has served the read; its answer is still on the way to `b`.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.cache.invalidate("stale:4").await.unwrap();
    assert_eq!(
        refreshing.await.unwrap(),
        Err(DbError("connection refused".into())),
        "the invalidated value is not served, even to the caller that found it"
    );
}

/// Regression: a refresh whose lease request found a stored "not found" (written since
/// its read) counted the call as a hit, not a negative hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_finds_a_negative_entry_counts_a_negative_hit() {
    let (_redis, proxy, db, a, b) = slow_processes(Duration::from_secs(5)).await;
    assert_eq!(b.maybe(6).await, Ok(Some(product(6, 0))));
    // Redis learns the scripts of a refresh (a first use costs extra round trips).
    assert_eq!(b.maybe(7).await, Ok(Some(product(7, 0))));
    tokio::time::sleep(Duration::from_millis(400)).await; // both stale now
    assert_eq!(b.maybe(7).await, Ok(Some(product(7, 0))));
    proxy.delay(300);
    let refreshing = tokio::spawn({
        let b = b.clone();
        async move { b.maybe(6).await }
    });
    // Redis has served `b`'s read; meanwhile the product goes and `a` caches that.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.cache.invalidate("maybe:6").await.unwrap();
    db.gone.store(true, Ordering::SeqCst);
    assert_eq!(a.maybe(6).await, Ok(None));
    let negative_hits = b.cache.stats().negative_hits;
    assert_eq!(
        refreshing.await.unwrap(),
        Ok(None),
        "the refresh found the stored \"not found\""
    );
    assert_eq!(
        b.cache.stats().negative_hits,
        negative_hits + 1,
        "{:?}",
        b.cache.stats()
    );
}
