//! The fault suite: network faults injected by a proxy between the cache and Redis,
//! Redis out of memory or evicting, leases outliving or outlived by their loaders.
//! Every call must return the loader's result (never an error, never another key's or
//! a partial value), and the loader must not run more than the fault forces.

mod behaviour;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use behaviour::{Db, product};
use redis::Commands;
use redis_cached::Cache;
use support::logs::Logs;
use support::proxy::{Fault, Proxy};
use support::{RedisServer, eventually};

/// The bound no call may exceed under a network fault: a few of the cache's 50 ms
/// deadlines, well below redis-rs's own 500 ms response timeout or its reconnect cycle.
const CALL_BUDGET: Duration = Duration::from_millis(400);

async fn through_proxy() -> (RedisServer, Proxy, Db) {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.port).await;
    let cache = support::cache_via(&proxy.url()).await;
    (redis, proxy, Db::new(cache))
}

/// Two processes on one Redis: `here` behind a proxy, `elsewhere` connected directly.
async fn here_and_elsewhere() -> (RedisServer, Proxy, Arc<Db>, Db) {
    let (redis, proxy, here) = through_proxy().await;
    let elsewhere = Db::new(redis.cache("shop:").await);
    (redis, proxy, Arc::new(here), elsewhere)
}

/// Calls `db.product(id)` for `ids`, asserting each returns the right value in budget.
async fn calls_succeed(db: &Db, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        let start = Instant::now();
        let value = db.product(id).await;
        let took = start.elapsed();
        assert_eq!(value, Ok(Some(product(id, 0))), "call for {id}");
        assert!(took < CALL_BUDGET, "call for {id} took {took:?}");
    }
}

async fn hits_resume(db: &Db, id: u64) {
    eventually("hits resume", async || {
        let hits = db.cache.stats().hits;
        assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
        db.cache.stats().hits > hits
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_costs_each_call_at_most_its_deadlines_then_the_breaker_skips_redis() {
    let (_redis, proxy, db) = through_proxy().await;
    calls_succeed(&db, [1, 1]).await;
    proxy.set(Fault::BlackHole);
    calls_succeed(&db, (0..30).map(|i| i % 3 + 1)).await;
    let stats = db.cache.stats();
    assert!(
        stats.errors >= 1 && stats.skipped >= 1,
        "timed out, then skipped: {stats:?}"
    );
    proxy.set(Fault::None);
    hits_resume(&db, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes_above_op_timeout_fail_open_then_hits_resume() {
    let (_redis, proxy, db) = through_proxy().await;
    calls_succeed(&db, [2, 2]).await;
    proxy.set(Fault::Latency(Duration::from_millis(200)));
    calls_succeed(&db, (0..10).map(|i| i % 2 + 2)).await;
    assert!(db.cache.stats().errors >= 1, "{:?}", db.cache.stats());
    proxy.set(Fault::None);
    hits_resume(&db, 2).await;
}

/// Regression: a timeout's warning read `cause= hint=""`. Every field of a fail-open
/// warning has content; one with nothing to say is left out.
#[tokio::test]
async fn fail_open_warnings_have_no_empty_field() {
    let (logs, _guard) = Logs::capture();
    let (_redis, proxy, db) = through_proxy().await;
    proxy.set(Fault::Latency(Duration::from_millis(200)));
    for id in 1..=3 {
        assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
    }
    let down = RedisServer::not_started();
    let _unreachable = Cache::builder().url(down.url()).build().await.unwrap();
    eventually("a timeout and a failed connection are logged", async || {
        let lines = logs.lines();
        lines
            .iter()
            .any(|l| l.contains("redis operation failed") && l.contains("did not answer"))
            && lines.iter().any(|l| l.contains("cannot connect"))
    })
    .await;
    assert_eq!(logs.empty_fields(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_are_misses_then_hits_resume() {
    let (_redis, proxy, db) = through_proxy().await;
    calls_succeed(&db, [3, 3]).await;
    proxy.set(Fault::Reset);
    calls_succeed(&db, (0..20).map(|i| i % 4 + 3)).await;
    proxy.set(Fault::None);
    hits_resume(&db, 3).await;
    calls_succeed(&db, 3..8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_cut_in_half_are_misses_never_partial_values() {
    let (_redis, proxy, db) = through_proxy().await;
    calls_succeed(&db, [4, 5, 4, 5]).await;
    proxy.set(Fault::HalfReply);
    calls_succeed(&db, (0..20).map(|i| i % 2 + 4)).await;
    proxy.set(Fault::None);
    hits_resume(&db, 4).await;
    hits_resume(&db, 5).await;
    assert_eq!(db.cache.stats().unreadable, 0, "a cut reply is an error, never a value");
}

/// Out of memory with `noeviction`: writes fail quietly and are counted; values stored
/// before still serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_writes_fail_quietly_and_reads_still_serve() {
    let redis = RedisServer::start();
    let db = Db::new(redis.cache("shop:").await);
    calls_succeed(&db, [1, 1]).await;
    let mut conn = redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .query(&mut conn)
        .unwrap();

    let hits = db.cache.stats().hits;
    calls_succeed(&db, [1, 2, 2, 3, 3]).await;
    assert_eq!(db.cache.stats().hits, hits + 1, "product 1 still served from the cache");
    assert_eq!(db.loads(), 5, "2 and 3 could not be stored, so they load every time");
    assert!(
        db.cache.stats().errors >= 4,
        "the refused writes are counted: {:?}",
        db.cache.stats()
    );
    assert!(!conn.exists::<_, bool>(db.product_key(2)).unwrap());
    assert!(
        !conn.exists::<_, bool>(format!("{}:lease", db.product_key(2))).unwrap(),
        "no lease left behind"
    );
}

/// `allkeys-lru` under memory pressure evicts values and leases alike: every call still
/// gets its own key's value; an evicted lease costs at most one extra load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_eviction_and_an_evicted_lease_cost_at_most_an_extra_load() {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));

    // A lease evicted while its load runs: the other process loads once more.
    a.delay_ms.store(300, Ordering::SeqCst);
    let first = tokio::spawn({
        let a = a.clone();
        async move { a.product(9).await }
    });
    let lease = format!("{}:lease", a.product_key(9));
    eventually("a holds the lease", async || {
        redis.conn().exists::<_, bool>(&lease).unwrap()
    })
    .await;
    let _: () = redis.conn().del(&lease).unwrap();
    assert_eq!(b.product(9).await, Ok(Some(product(9, 0))));
    assert_eq!(first.await.unwrap(), Ok(Some(product(9, 0))));
    assert_eq!(loads.load(Ordering::SeqCst), 2, "one extra load, no more");

    // Memory pressure: values come and go, but every answer is its own key's.
    let mut conn = redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "allkeys-lru"])
        .query(&mut conn)
        .unwrap();
    let used: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used + 16 * 1024)
        .query(&mut conn)
        .unwrap();
    a.delay_ms.store(0, Ordering::SeqCst);
    for round in 0..3 {
        for id in 100..600 {
            let db = if (id + round) % 2 == 0 { &a } else { &b };
            assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
        }
    }
    let stats: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
    let evicted: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(evicted > 0, "the test did put Redis under memory pressure");
}

/// A loader slower than the lease keeps it by renewal: the other process waits instead
/// of starting a second load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_slower_than_the_lease_keeps_it_by_renewal() {
    let redis = RedisServer::start();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    let b = Arc::new(Db::sharing(redis.cache("shop:").await, loads.clone()));
    a.delay_ms.store(1_000, Ordering::SeqCst);
    let slow = tokio::spawn({
        let a = a.clone();
        async move { a.product_short_lease(15).await }
    });
    eventually("a is loading", async || loads.load(Ordering::SeqCst) == 1).await;
    // The lease is 300 ms; the load takes 1 s.
    assert_eq!(b.product_short_lease(15).await, Ok(Some(product(15, 0))));
    assert_eq!(slow.await.unwrap(), Ok(Some(product(15, 0))));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "renewal kept the lease: no second load"
    );
    assert_eq!(b.cache.stats().lock_waits, 1);
}

/// A lease whose owner died (nobody renews it) expires, and a waiter then loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owners_lease_still_expires() {
    let redis = RedisServer::start();
    let db = Db::new(redis.cache("shop:").await);
    let lease = format!("{}:lease", db.product_short_lease_key(16));
    let _: () = redis::cmd("SET")
        .arg(&lease)
        .arg("a-dead-process")
        .arg("PX")
        .arg(300)
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(db.product_short_lease(16).await, Ok(Some(product(16, 0))));
    assert_eq!(db.loads(), 1);
    assert_eq!(
        db.cache.stats().lock_waits,
        1,
        "it waited for the dead owner's lease first"
    );
}

/// An invalidation Redis did not confirm (its request was lost) is retried in the
/// background, so the old value does not outlive the outage by its whole ttl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_lost_in_a_black_hole_is_retried_in_the_background() {
    let (_redis, proxy, db) = through_proxy().await;
    calls_succeed(&db, [8, 8]).await;
    proxy.set(Fault::BlackHole);
    assert_eq!(
        db.update_product(8, false).await,
        Ok(1),
        "the write succeeds; its invalidation fails open"
    );
    proxy.set(Fault::None);
    eventually("the retried invalidation evicts the old value", async || {
        db.product(8).await == Ok(Some(product(8, 1)))
    })
    .await;
}

/// Regression: while a cache's subscription was down, a call that began after another
/// process's invalidation joined the load that invalidation had voided, and got its
/// old result. The voided fill now sends later joiners to a load of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_voided_while_the_invalidation_message_was_lost_is_not_shared_with_later_callers() {
    let (redis, proxy, here, elsewhere) = here_and_elsewhere().await;

    here.delay_ms.store(400, Ordering::SeqCst);
    let old = tokio::spawn({
        let here = here.clone();
        async move { here.product(7).await }
    });
    eventually("the old load starts", async || here.loads() == 1).await;

    support::lose_subscription(&redis, &proxy).await;

    // A write, then its invalidation from the other process: `here` never hears of it.
    here.generation.store(1, Ordering::SeqCst);
    elsewhere.product_invalidate(7).await.unwrap();
    assert_eq!(
        here.product(7).await,
        Ok(Some(product(7, 1))),
        "a call after the invalidation gets the new value, not the voided load's"
    );
    assert_eq!(
        old.await.unwrap(),
        Ok(Some(product(7, 0))),
        "the old caller keeps its load"
    );
}

/// Regression: the same for a tag: a call that began after another process invalidated
/// its tag joined the load running under the old tag version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_under_a_tag_invalidated_while_the_message_was_lost_is_not_shared_with_later_callers() {
    let (redis, proxy, here, elsewhere) = here_and_elsewhere().await;

    here.delay_ms.store(400, Ordering::SeqCst);
    let old = tokio::spawn({
        let here = here.clone();
        async move { here.tagged(3, 5).await }
    });
    eventually("the old load starts", async || here.loads() == 1).await;
    support::lose_subscription(&redis, &proxy).await;

    here.generation.store(1, Ordering::SeqCst);
    elsewhere.cache.invalidate_tag("category:5").await.unwrap();
    assert_eq!(
        here.tagged(3, 5).await,
        product(3, 1),
        "a call after the tag invalidation gets the new value"
    );
    assert_eq!(old.await.unwrap(), product(3, 0), "the old caller keeps its load");
}

/// Regression: a subscription whose connection died silently (a NAT or a firewall
/// dropping it, no reset) went unnoticed, so invalidation and fill messages stopped
/// without a trace. A keepalive `PING` now notices it and subscribes again, on a new
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_subscription_is_noticed_by_its_keepalive() {
    let (redis, proxy, db) = through_proxy().await;
    eventually("the cache is subscribed", async || support::subscribers(&redis) == 1).await;
    let dead = support::subscriber_ids(&redis);
    proxy.set(Fault::BlackHoleSubscriptions);
    eventually("the cache subscribes again", async || {
        let now = support::subscriber_ids(&redis);
        now.len() == 1 && now != dead
    })
    .await;
    calls_succeed(&db, [1, 1]).await;
}
