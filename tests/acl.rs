//! Least privilege: the whole behaviour suite runs as a Redis ACL user that has only the
//! rules the guide gives; without a needed command the cache fails open and says which.

mod behaviour;
mod support;

use std::sync::Arc;

use behaviour::{Db, behaviour_tests, product};
use redis_cached::Cache;
use support::RedisServer;
use support::acl::guide_rules;
use support::logs::Logs;

/// Keeps the server up for a test, and checks at its end that the cache never met a
/// Redis error: a missing permission fails open, so only the counter shows it.
struct NoErrors {
    redis: RedisServer,
    db: Arc<Db>,
}

impl Drop for NoErrors {
    fn drop(&mut self) {
        let stats = self.db.cache.stats();
        if !std::thread::panicking() {
            assert_eq!(stats.errors, 0, "the ACL user lacked a permission: {stats:?}");
        }
    }
}

async fn acl_db() -> (NoErrors, Arc<Db>) {
    let redis = RedisServer::start();
    let url = redis.acl_user("cache", "cache-password", &guide_rules("one server"));
    let cache = Cache::builder().url(url).prefix("shop:").build().await.expect("build");
    support::wait_connected(&cache).await;
    let db = Arc::new(Db::new(cache));
    (NoErrors { redis, db: db.clone() }, db)
}

behaviour_tests!(acl_db());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_also_runs_the_lock_across_processes() {
    let (guard, a) = acl_db().await;
    let url = format!("redis://cache:cache-password@127.0.0.1:{}", guard.redis.port);
    let b = Arc::new(Db::sharing(
        Cache::builder().url(url).prefix("shop:").build().await.unwrap(),
        a.loads.clone(),
    ));
    a.delay_ms.store(200, std::sync::atomic::Ordering::SeqCst);
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { db.product(5).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Ok(Some(product(5, 0))));
    }
    assert_eq!(a.loads(), 1);
    assert_eq!(a.cache.stats().errors + b.cache.stats().errors, 0);
}

/// A user without `EVALSHA`: every call still returns the loader's result, the errors are
/// counted, and the log says which permission is missing, once (rate-limited).
#[tokio::test]
async fn a_missing_permission_fails_open_with_one_clear_log_line() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let rules = guide_rules("one server").replace("+evalsha ", "");
    let url = redis.acl_user("cache", "cache-password", &rules);
    let db = Db::new(Cache::builder().url(url).prefix("shop:").build().await.unwrap());
    for _ in 0..5 {
        assert_eq!(db.product(7).await, Ok(Some(product(7, 0))));
    }
    assert_eq!(db.loads(), 5, "nothing could be stored");
    assert!(db.cache.stats().errors >= 5, "{:?}", db.cache.stats());
    let noperm: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("no permissions"))
        .collect();
    assert_eq!(noperm.len(), 1, "{:?}", logs.lines());
    assert!(noperm[0].contains("'evalsha'"), "names the command: {}", noperm[0]);
    assert!(noperm[0].contains("ACL line"), "says what to do: {}", noperm[0]);
}

/// On a master with a replica, invalidations also wait for it (`WAIT`) and check the
/// master's `ROLE`: the same line allows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_invalidates_on_a_master_with_a_replica() {
    let redis = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let _replica = RedisServer::start_replica_of(&redis);
    let url = redis.acl_user("cache", "cache-password", &guide_rules("one server"));
    // A deadline a healthy replica meets on a loaded machine.
    let cache = Cache::builder()
        .url(url)
        .prefix("shop:")
        .op_timeout(std::time::Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    support::wait_connected(&cache).await;
    let db = Db::new(cache);
    assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
    db.cache
        .invalidate("product:5")
        .await
        .expect("confirmed by the replica");
    db.cache
        .invalidate_tag("catalog")
        .await
        .expect("confirmed by the replica");
    assert_eq!(db.update_product(5, false).await, Ok(1));
    assert_eq!(db.product(5).await, Ok(Some(product(5, 1))));
    assert_eq!(db.cache.stats().errors, 0, "{:?}", db.cache.stats());
}

/// A user granted the line of an earlier version, without `+role` and `+wait` (or a
/// proxy without `ROLE`): the cache still connects and invalidates, unconfirmed by a
/// replica, and says so once.
#[tokio::test]
async fn without_role_the_cache_still_works_and_says_once_that_invalidations_are_unchecked() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let rules = guide_rules("one server").replace("+role +wait ", "");
    let url = redis.acl_user("cache", "cache-password", &rules);
    let cache = Cache::builder().url(url).prefix("shop:").build().await.unwrap();
    support::wait_connected(&cache).await;
    let db = Db::new(cache);
    assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
    assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
    assert_eq!(db.loads(), 1, "a hit");
    db.cache
        .invalidate("product:5")
        .await
        .expect("the delete is confirmed by its reply");
    db.cache.invalidate_tag("catalog").await.expect("the same for a tag");
    assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
    assert_eq!(db.loads(), 2, "invalidated");
    let warnings: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("refuses ROLE"))
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", logs.lines());
    assert!(warnings[0].contains("'role'"), "names the command: {}", warnings[0]);
}

/// The near cache as the guide's user: `HELLO` (RESP3) and `CLIENT TRACKING` are in its
/// line, so values are served from process memory and another process's invalidation
/// still reaches them.
#[tokio::test]
async fn the_acl_user_runs_the_near_cache() {
    static POLICY: redis_cached::Policy =
        redis_cached::Policy::new("near", std::time::Duration::from_secs(60)).near(std::time::Duration::from_secs(60));
    let redis = RedisServer::start();
    let url = redis.acl_user("cache", "cache-password", &guide_rules("one server"));
    let near = async || {
        let cache = Cache::builder().url(&url).prefix("shop:").near_cache(100);
        cache.build().await.unwrap()
    };
    let (a, b) = (near().await, near().await);
    let value = Arc::new(std::sync::atomic::AtomicU32::new(1));
    let read = async |cache: &Cache| {
        let value = value.load(std::sync::atomic::Ordering::SeqCst);
        cache
            .get_or_load(&POLICY, "k", async move { Ok::<_, ()>(Some(value)) })
            .await
            .unwrap()
    };
    support::eventually("a near hit", async || {
        read(&b).await;
        b.stats().near_hits > 0
    })
    .await;
    value.store(2, std::sync::atomic::Ordering::SeqCst);
    a.invalidate("k").await.unwrap();
    support::eventually("the invalidation reached the other cache", async || {
        read(&b).await == Some(2)
    })
    .await;
    assert_eq!(a.stats().errors + b.stats().errors, 0);
}

/// `Cache::server_stats` and the check of `maxmemory` at connect read `INFO`, which the
/// guide's line allows.
#[tokio::test]
async fn the_acl_user_reads_server_stats() {
    let (logs, _guard) = Logs::capture();
    let redis = RedisServer::start();
    let url = redis.acl_user("cache", "cache-password", &guide_rules("one server"));
    let cache = Cache::builder().url(url).prefix("shop:").build().await.unwrap();
    let stats = cache.server_stats().await.expect("INFO is allowed");
    assert_eq!(stats.servers, 1);
    support::eventually("maxmemory is checked", async || {
        logs.lines().iter().any(|line| line.contains("no maxmemory"))
    })
    .await;
    assert!(
        !logs.lines().iter().any(|line| line.contains("grant `+info`")),
        "{:?}",
        logs.lines()
    );
}
