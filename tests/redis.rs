//! Behaviour against a real redis-server started by each test.

mod behaviour;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use behaviour::{Db, behaviour_tests, product};
use redis::Commands;
use redis_cached::Cache;
use support::logs::Logs;
use support::{RedisServer, eventually};

async fn db(redis: &RedisServer) -> Db {
    Db::new(redis.cache("shop:").await)
}

async fn redis_db() -> (RedisServer, Arc<Db>) {
    let redis = RedisServer::start();
    let db = Arc::new(db(&redis).await);
    (redis, db)
}

behaviour_tests!(redis_db());

#[tokio::test]
async fn values_the_codec_cannot_read_back_leave_nothing_in_redis() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    assert_eq!(db.sparse(1).await, behaviour::Sparse { id: 1, note: None });
    assert!(!redis.conn().exists::<_, bool>(db.sparse_key(1)).unwrap());
    assert!(
        !redis.conn().exists::<_, bool>(db.sparse_key(1) + ":lease").unwrap(),
        "the lease was released"
    );
}

#[tokio::test]
async fn keys_have_the_prefix_and_one_hash_tag_and_the_ttl_asked_for() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    db.product(42).await.unwrap();
    db.product(0).await.unwrap();

    let mut conn = redis.conn();
    assert_eq!(db.product_key(42), "shop:{product:42}");
    let value_ttl: i64 = conn.pttl("shop:{product:42}").unwrap();
    // The default jitter takes up to 5% off.
    assert!((57_000..=60_000).contains(&value_ttl), "value pttl {value_ttl}");
    let negative_ttl: i64 = conn.pttl("shop:{product:0}").unwrap();
    assert!((1..=400).contains(&negative_ttl), "negative pttl {negative_ttl}");
    assert!(
        !conn.exists::<_, bool>("shop:{product:42}:lease").unwrap(),
        "the fill dropped the lease"
    );
}

#[tokio::test]
async fn a_corrupt_stored_value_is_a_counted_miss_and_is_overwritten() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    let key = db.product_key(5);
    for garbage in [
        &b"not an envelope"[..],
        &[0xC2, 0x05, 0x00, 0xff, 0xff][..],
        &[0xC2][..],
    ] {
        let _: () = redis.conn().set(&key, garbage).unwrap();
        let loads = db.loads();
        assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
        assert_eq!(db.loads(), loads + 1);
        assert_eq!(
            db.product(5).await,
            Ok(Some(product(5, 0))),
            "overwritten with a good value"
        );
        assert_eq!(db.loads(), loads + 1);
    }
    // Over the 32 MiB decode limit: never decoded, and overwritten. Sending it takes longer
    // than the deadline, and holds up the connection meanwhile, so it may take a few calls.
    // The 7-byte header of the value stored last, then zeros.
    let stored: Vec<u8> = redis.conn().get(&key).unwrap();
    let mut oversized = stored[..7].to_vec();
    oversized.resize(33 * 1024 * 1024, 0);
    let _: () = redis.conn().set(&key, oversized).unwrap();
    eventually("the oversized value is overwritten", async || {
        let hits = db.cache.stats().hits;
        assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
        db.cache.stats().hits > hits
    })
    .await;
    // The oversized value may count as unreadable, or as a read that missed its deadline.
    let stats = db.cache.stats();
    assert!(
        stats.unreadable >= 3 && stats.unreadable + stats.errors >= 4,
        "{stats:?}"
    );
    assert_eq!(stats.type_mismatches, 0, "corruption is not another type");
}

/// 200 concurrent calls on a cold key, split over two caches (two "processes"), run
/// the loader exactly once; the waiters of the other cache wait for the lease holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_runs_one_load_across_processes() {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let (sa, sb) = behaviour::one_load_across_two_processes(a, b).await;
    assert_eq!(sa.loads + sb.loads, 1);
    assert_eq!(
        sa.lock_waits + sb.lock_waits,
        1,
        "the other process waited on the lease: {sa:?} {sb:?}"
    );
}

/// Process `a` takes the 60 s lease and its load ends badly (`spoil` sets how); process
/// `b`, waiting on the lease, must take over at once and load, and nothing is cached.
async fn the_lease_is_released_when_its_load(spoil: impl Fn(&Db), id: u64) -> Result<(), tokio::task::JoinError> {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    spoil(&a);
    a.delay_ms.store(200, Ordering::SeqCst);
    let lease = format!("shop:{{product:{id}}}:lease");
    let spoiled = tokio::spawn({
        let a = a.clone();
        async move { a.product_long_lease(id).await }
    });
    eventually("a holds the lease", async || {
        redis.conn().exists::<_, bool>(&lease).unwrap()
    })
    .await;
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.product_long_lease(id).await }
    });
    let outcome = spoiled.await.map(|result| assert!(result.is_err()));
    assert_eq!(
        waiting.await.unwrap(),
        Ok(Some(product(id, 0))),
        "b took over after a's release"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    assert_eq!(b.cache.stats().lock_waits, 1);
    assert!(!redis.conn().exists::<_, bool>(&lease).unwrap());
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_error_releases_the_lock() {
    let outcome = the_lease_is_released_when_its_load(|a| a.fail.store(true, Ordering::SeqCst), 12).await;
    assert!(outcome.is_ok(), "the loader returned its error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loader_releases_the_lock() {
    let outcome = the_lease_is_released_when_its_load(|a| a.panic.store(true, Ordering::SeqCst), 14).await;
    assert!(outcome.unwrap_err().is_panic());
}

/// A caller dropped while holding the lease releases it (on a spawned task), so the
/// next process does not wait for the lease to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_caller_releases_the_lock() {
    let redis = RedisServer::start();
    let db = Arc::new(db(&redis).await);
    db.delay_ms.store(5_000, Ordering::SeqCst);
    let dropped = tokio::time::timeout(Duration::from_millis(100), db.product(13)).await;
    assert!(dropped.is_err());
    eventually("the lease is released", async || {
        !redis.conn().exists::<_, bool>("shop:{product:13}:lease").unwrap()
    })
    .await;
}

/// Regression: without `lock`, each new load took the fence over and voided the fill of
/// the load before it, so with steady traffic from two processes nothing was ever stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlocked_loads_in_two_processes_do_not_void_each_other() {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    a.delay_ms.store(200, Ordering::SeqCst);
    b.delay_ms.store(3_000, Ordering::SeqCst);
    let first = tokio::spawn({
        let a = a.clone();
        async move { a.product_json(71).await }
    });
    eventually("a is loading", async || loads.load(Ordering::SeqCst) == 1).await;
    let second = tokio::spawn({
        let b = b.clone();
        async move { b.product_json(71).await }
    });
    eventually("b is loading", async || loads.load(Ordering::SeqCst) == 2).await;
    assert_eq!(first.await.unwrap(), Ok(Some(product(71, 0))));
    assert!(
        redis.conn().exists::<_, bool>(a.product_json_key(71)).unwrap(),
        "a's fill was stored although b started loading after a"
    );
    second.abort();
}

/// Regression: a lease taken by a request whose answer came too late (a hung Redis)
/// stayed held for its whole length, so other processes waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_by_an_unanswered_request_is_released() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    redis.pause();
    assert_eq!(db.product_long_lease(81).await, Ok(Some(product(81, 0))), "failed open");
    redis.resume();
    // The queued request ran on resume and took the 60 s lease; the guard gives it back.
    eventually("the lease is released", async || {
        !redis.conn().exists::<_, bool>("shop:{product:81}:lease").unwrap()
    })
    .await;
    assert_eq!(db.product_long_lease(81).await, Ok(Some(product(81, 0))));
}

/// Redis killed mid-run: every call still returns the loader's result; after a restart
/// (empty), values are stored and hit again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_while_redis_is_killed_and_hits_resume_after_restart() {
    let mut redis = RedisServer::start();
    let db = db(&redis).await;
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));

    redis.kill();
    for _ in 0..20 {
        assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
        assert_eq!(db.product(0).await, Ok(None));
    }
    let stats = db.cache.stats();
    assert!(stats.errors + stats.skipped > 0, "{stats:?}");
    assert!(
        db.cache.invalidate("product:1").await.is_err(),
        "invalidation reports it could not act"
    );

    redis.launch();
    eventually("hits resume", async || {
        let hits = db.cache.stats().hits;
        db.product(1).await.unwrap();
        db.cache.stats().hits > hits
    })
    .await;
}

/// A hung Redis (SIGSTOP): calls fail open after `op_timeout`, then the breaker skips
/// Redis; when it wakes, hits resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_succeed_while_redis_hangs_and_hits_resume_after() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    assert_eq!(db.product(2).await, Ok(Some(product(2, 0))));

    redis.pause();
    for _ in 0..20 {
        let start = std::time::Instant::now();
        assert_eq!(db.product(2).await, Ok(Some(product(2, 0))));
        // A few 50 ms deadlines at most: never redis-rs's 500 ms timeout or its reconnects.
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "a call took {:?}",
            start.elapsed()
        );
    }
    let stats = db.cache.stats();
    assert!(stats.errors >= 1, "deadline misses are counted: {stats:?}");
    assert!(
        stats.skipped >= 1,
        "the breaker stopped calling the hung server: {stats:?}"
    );

    redis.resume();
    eventually("hits resume", async || {
        let hits = db.cache.stats().hits;
        db.product(2).await.unwrap();
        db.cache.stats().hits > hits
    })
    .await;
}

/// Redis down when the cache is built: building succeeds, calls fail open, and the
/// cache connects by itself once Redis is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_while_redis_is_down_connects_later() {
    let mut redis = RedisServer::not_started();
    let cache = Cache::builder()
        .url(redis.url())
        .prefix("shop:")
        .build()
        .await
        .expect("build never needs redis");
    let db = Db::new(cache);
    assert_eq!(db.product(3).await, Ok(Some(product(3, 0))));
    assert!(db.cache.stats().skipped > 0);

    redis.launch();
    eventually("hits start", async || {
        let hits = db.cache.stats().hits;
        db.product(3).await.unwrap();
        db.cache.stats().hits > hits
    })
    .await;
}

/// A cache in a log line or a panic message is one short line that says whether it is
/// connected, not its internals.
#[tokio::test]
async fn a_caches_debug_says_its_prefix_topology_and_whether_it_is_connected() {
    let redis = RedisServer::start();
    let cache = redis.cache("shop:").await;
    assert_eq!(
        format!("{cache:?}"),
        r#"Cache { prefix: "shop:", topology: "standalone", connected: true }"#
    );
    let down = RedisServer::not_started();
    let cache = Cache::builder()
        .url(down.url())
        .connect_timeout(Duration::from_millis(50))
        .build()
        .await
        .expect("build never needs redis");
    assert_eq!(
        format!("{cache:?}"),
        r#"Cache { prefix: "", topology: "standalone", connected: false }"#
    );
}

#[tokio::test]
async fn bad_urls_and_prefixes_are_refused() {
    let error = Cache::builder()
        .url("http://app:s3cr3t@nope")
        .build()
        .await
        .expect_err("not a redis url");
    assert!(matches!(error, redis_cached::Error::InvalidUrl(_)));
    // What was wrong, in redis-rs's words, and never the password.
    let said = error.to_string();
    assert!(said.starts_with("invalid redis url: Redis URL did not parse"), "{said}");
    assert!(!said.contains("s3cr3t") && !format!("{error:?}").contains("s3cr3t"));
    let cause = std::error::Error::source(&error).expect("the cause is kept");
    assert!(cause.downcast_ref::<redis_cached::redis::RedisError>().is_some());
    assert!(matches!(
        Cache::builder().prefix("a{b}").build().await,
        Err(redis_cached::Error::InvalidConfig(_))
    ));
}

struct Spread {
    cache: Cache,
}

impl Spread {
    #[redis_cached::redis_cached(key = "spread:<id>", ttl = 100, jitter = "20%", cache = self.cache)]
    async fn spread(&self, id: u64) -> u64 {
        id
    }

    #[redis_cached::redis_cached(key = "exact:<id>", ttl = 100, jitter = 0, cache = self.cache)]
    async fn exact(&self, id: u64) -> u64 {
        id
    }
}

/// Keys written together get ttls spread over the jitter window; `jitter = 0` keeps the
/// ttl exact.
#[tokio::test]
async fn jitter_spreads_the_expiry_of_keys_written_together() {
    let redis = RedisServer::start();
    let spread = Spread {
        cache: redis.cache("shop:").await,
    };
    let mut conn = redis.conn();
    let mut ttls = Vec::new();
    for id in 0..40 {
        spread.spread(id).await;
        spread.exact(id).await;
        ttls.push(conn.pttl::<_, i64>(spread.spread_key(id)).unwrap());
        let exact: i64 = conn.pttl(spread.exact_key(id)).unwrap();
        assert!((99_000..=100_000).contains(&exact), "exact pttl {exact}");
    }
    assert!(
        ttls.iter().all(|t| (79_000..=100_000).contains(t)),
        "within the 20% window: {ttls:?}"
    );
    let (min, max) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    assert!(max - min > 5_000, "spread over the window, not bunched: {ttls:?}");
}

/// Refresh-ahead across two caches ("processes"): exactly one load per refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_loads_once_across_processes() {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    a.delay_ms.store(20, Ordering::SeqCst);
    assert_eq!(a.ahead(9).await, Ok(Some(product(9, 0))));
    for db in [&a, &b] {
        db.delay_ms.store(300, Ordering::SeqCst);
        db.generation.store(1, Ordering::SeqCst);
    }
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { db.ahead(9).await })
        })
        .collect();
    let mut refreshed = 0;
    for call in calls {
        let result = call.await.unwrap();
        assert!(
            result == Ok(Some(product(9, 0))) || result == Ok(Some(product(9, 1))),
            "{result:?}"
        );
        refreshed += usize::from(result == Ok(Some(product(9, 1))));
    }
    assert_eq!(refreshed, 1, "one caller refreshed and got the new value");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "the warm-up and exactly one early refresh"
    );
}

/// Regression: a tag's version expired 30 days after it was created however hot the tag
/// was, so every value under it missed at once. Each load under a tag now extends it.
#[tokio::test]
async fn a_tag_in_use_is_kept_alive_by_the_loads_under_it() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    let tag = "shop:tag:{category:3}";
    assert_eq!(db.tagged(1, 3).await, product(1, 0));
    let _: () = redis.conn().pexpire(tag, 2_000).unwrap();
    assert_eq!(
        db.tagged(2, 3).await,
        product(2, 0),
        "another value under the tag loads"
    );
    let left: i64 = redis.conn().pttl(tag).unwrap();
    assert!(left > 29 * 24 * 3_600_000, "the load extended the tag: {left} ms left");
    assert_eq!(db.tagged(1, 3).await, product(1, 0), "still a hit");
    assert_eq!(db.loads(), 2);
}

/// Regression: a ttl past what Redis accepts (PX overflow) silently disabled caching.
#[tokio::test]
async fn an_absurdly_long_ttl_is_clamped_and_still_caches() {
    use redis_cached::Policy;
    static FOREVER: Policy = Policy::new("forever", Duration::from_secs(u64::MAX)).negative(Duration::MAX);
    let redis = RedisServer::start();
    let cache = redis.cache("shop:").await;
    let loads = AtomicUsize::new(0);
    for _ in 0..2 {
        let value = cache
            .get_or_load(&FOREVER, "forever:1", async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Some(7u32))
            })
            .await;
        assert_eq!(value, Ok(Some(7)));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the second call is a hit");
    let ttl: i64 = redis.conn().pttl("shop:{forever:1}").unwrap();
    assert!(ttl > 0, "stored with an expiry: {ttl}");
}

/// Regression: the soft expiry was the writer's wall clock judged against the reader's,
/// so a writer ahead by the stale window disabled `stale` for everyone, and a reader
/// ahead by the ttl refreshed on every read. Freshness is now judged from the time Redis
/// still keeps the value (`PTTL`): only Redis's clock counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_is_judged_by_redis_not_by_process_clocks() {
    let redis = RedisServer::start();
    let db = db(&redis).await;
    let key = db.fresh_key(21);
    assert_eq!(db.fresh(21).await, Ok(Some(product(21, 0))));
    // Kept 30.3 s: fresh while more than the 30 s window is left, however old it is.
    let _: () = redis.conn().pexpire(&key, 600_000).unwrap();
    db.generation.store(1, Ordering::SeqCst);
    assert_eq!(db.fresh(21).await, Ok(Some(product(21, 0))), "fresh: a plain hit");
    assert_eq!(db.cache.stats().hits, 1);
    // Inside the window: stale, refreshed by this call.
    let _: () = redis.conn().pexpire(&key, 20_000).unwrap();
    assert_eq!(db.fresh(21).await, Ok(Some(product(21, 1))), "stale: refreshed");
    assert_eq!(db.cache.stats().refreshes, 1);
    let kept: i64 = redis.conn().pttl(&key).unwrap();
    assert!(kept > 30_000, "stored again for ttl + window: {kept} ms");
}

/// Functions whose values land under the same keys: two with one template and different
/// value types, a generic one, and a JSON one.
struct Counts {
    cache: Cache,
    loads: AtomicUsize,
}

impl Counts {
    async fn new(redis: &RedisServer) -> Counts {
        Counts {
            cache: redis.cache("shop:").await,
            loads: AtomicUsize::new(0),
        }
    }

    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    #[redis_cached::redis_cached(key = "count:<id>", ttl = 60, cache = self.cache)]
    async fn get_balance(&self, id: u64) -> i64 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        -3 - i64::try_from(id).unwrap()
    }

    #[redis_cached::redis_cached(key = "count:<id>", ttl = 60, cache = self.cache)]
    async fn get_count(&self, id: u64) -> u64 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        7 + id
    }

    #[redis_cached::redis_cached(key = "any:<id>", ttl = 60, cache = self.cache)]
    async fn get_any<T: redis_cached::Cacheable>(&self, id: u64, value: T) -> T {
        let _ = id;
        self.loads.fetch_add(1, Ordering::SeqCst);
        value
    }

    #[redis_cached::redis_cached(key = "total:<id>", ttl = 60, codec = "json", cache = self.cache)]
    async fn get_total(&self, id: u64) -> u64 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        123_456 + id
    }
}

/// The warnings about a value of another type, of the fn `name`.
fn other_type_warnings(logs: &Logs, name: &str) -> Vec<String> {
    logs.lines()
        .into_iter()
        .filter(|line| line.contains("of another type") && line.contains(&format!("`{name}`")))
        .collect()
}

/// Regression: a `u64` fn read the bytes an `i64` fn stored under the same key, and
/// returned the `i64`'s `-3` as `5`.
#[tokio::test]
async fn a_value_of_another_type_under_the_same_key_is_a_miss() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let counts = Counts::new(&redis).await;
    assert_eq!(counts.get_balance_key(0), counts.get_count_key(0));
    assert_eq!(counts.get_balance(0).await, -3);
    assert_eq!(counts.get_count(0).await, 7, "loads its own value");
    assert_eq!(counts.loads(), 2);
    assert_eq!(counts.cache.stats().type_mismatches, 1);
    assert_eq!(counts.cache.stats().unreadable, 0);
    assert_eq!(counts.get_count(0).await, 7, "its own value was stored");
    assert_eq!(counts.loads(), 2);
    // Back and forth: each fn finds the other's value every time, and says so once.
    for round in 1..=2 {
        assert_eq!(counts.get_balance(0).await, -3);
        assert_eq!(counts.get_count(0).await, 7);
        assert_eq!(counts.loads(), 2 + 2 * round);
    }
    assert_eq!(counts.cache.stats().type_mismatches, 5);
    let warnings = other_type_warnings(&logs, "get_count");
    assert_eq!(warnings.len(), 1, "{:?}", logs.lines());
    assert!(
        warnings[0].starts_with("WARN") && warnings[0].contains("(`i64`, expected `u64`)"),
        "names both types: {}",
        warnings[0]
    );
    assert!(warnings[0].contains("share this key template"), "{}", warnings[0]);
    let warnings = other_type_warnings(&logs, "get_balance");
    assert_eq!(warnings.len(), 1, "{:?}", logs.lines());
    assert!(warnings[0].contains("(`u64`, expected `i64`)"), "{}", warnings[0]);
}

/// Regression: a generic fn used at two types read one type's value as the other.
#[tokio::test]
async fn a_generic_fn_used_at_two_types_does_not_mix_them() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let counts = Counts::new(&redis).await;
    assert_eq!(counts.get_any(0, -3i64).await, -3);
    assert_eq!(counts.get_any(0, 7u64).await, 7, "loads its own value");
    assert_eq!(counts.get_any(0, 7u64).await, 7, "its own value was stored");
    assert_eq!(counts.get_any(0, -3i64).await, -3);
    assert_eq!(counts.loads(), 3);
    assert_eq!(counts.cache.stats().type_mismatches, 2);
    let warnings = other_type_warnings(&logs, "get_any");
    assert_eq!(warnings.len(), 1, "once per fn: {:?}", logs.lines());
    assert!(warnings[0].contains("(`i64`, expected `u64`)"), "{}", warnings[0]);
}

/// A value a process of the previous version stored is a plain miss, not corruption.
#[tokio::test]
async fn entries_of_the_previous_format_are_plain_misses() {
    let redis = RedisServer::start();
    let counts = Counts::new(&redis).await;
    // Format 0xC1, a bincode value, version 0, then the bincode `3`.
    let _: () = redis
        .conn()
        .set(counts.get_count_key(0), &[0xC1, 0x05, 0x00, 0x03][..])
        .unwrap();
    assert_eq!(counts.get_count(0).await, 7);
    assert_eq!(counts.get_count(0).await, 7);
    assert_eq!(counts.loads(), 1, "overwritten");
    let stats = counts.cache.stats();
    assert_eq!((stats.unreadable, stats.type_mismatches), (0, 0), "{stats:?}");
}

/// A value of a type this process never stored (another program, another build) is a
/// miss too, and the log says it cannot name the type.
#[tokio::test]
async fn a_value_of_a_type_this_process_has_not_stored_is_a_miss() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let counts = Counts::new(&redis).await;
    // Format 0xC2, a JSON value, version 0, a fingerprint no type here has, then `5\n`.
    let stored = [0xC2, 0x0D, 0x00, 0xEF, 0xBE, 0xAD, 0xDE, b'5', b'\n'];
    let _: () = redis.conn().set(counts.get_total_key(0), &stored[..]).unwrap();
    assert_eq!(counts.get_total(0).await, 123_456);
    assert_eq!(counts.cache.stats().type_mismatches, 1);
    let warnings = other_type_warnings(&logs, "get_total");
    assert_eq!(warnings.len(), 1, "{:?}", logs.lines());
    assert!(
        warnings[0].contains("(a type this process has not stored, expected `u64`)"),
        "{}",
        warnings[0]
    );
}

/// Regression: JSON accepts a complete prefix, so `123456` cut to `123` was served.
#[tokio::test]
async fn a_truncated_json_value_is_a_miss() {
    let redis = RedisServer::start();
    let counts = Counts::new(&redis).await;
    assert_eq!(counts.get_total(0).await, 123_456);
    let key = counts.get_total_key(0);
    let stored: Vec<u8> = redis.conn().get(&key).unwrap();
    let _: () = redis.conn().set(&key, &stored[..stored.len() - 3]).unwrap();
    assert_eq!(counts.get_total(0).await, 123_456, "the cut value is not served");
    assert_eq!(counts.loads(), 2);
    assert_eq!(counts.cache.stats().unreadable, 1);
    assert_eq!(counts.get_total(0).await, 123_456);
    assert_eq!(counts.loads(), 2, "overwritten with the whole value");
}
