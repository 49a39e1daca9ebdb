//! Invalidations on a master with a replica: `Ok` once a replica has them, an error when
//! none acknowledges in time, and `#[redis_invalidate]` retrying until one does.

mod behaviour;
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use behaviour::{Db, product};
use redis::Commands;
use support::logs::Logs;
use support::{RedisServer, eventually};

/// A deadline a healthy replica meets even on a loaded machine running tests in
/// parallel (the default, 50 ms, leaves a `WAIT` 37 ms).
const OP_TIMEOUT: Duration = Duration::from_millis(500);

/// A master, its synced replica and a cache on the master.
async fn replicated() -> (RedisServer, RedisServer, Db) {
    let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let replica = RedisServer::start_replica_of(&master);
    let db = Db::new(cache_on(&master).await);
    (master, replica, db)
}

/// A cache on `server` with [`OP_TIMEOUT`]; waits until it is connected.
async fn cache_on(server: &RedisServer) -> redis_cached::Cache {
    let cache = redis_cached::Cache::builder()
        .url(server.url())
        .prefix("shop:")
        .op_timeout(OP_TIMEOUT)
        .build()
        .await
        .expect("build the cache");
    support::wait_connected(&cache).await;
    cache
}

/// Reads and writes product 1 until the replica has it.
async fn cached_on_replica(db: &Db, replica: &RedisServer) -> String {
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    let key = db.cache.key("product:1");
    let mut on_replica = replica.conn();
    eventually("the replica has the value", async || {
        on_replica.exists::<_, bool>(&key).unwrap()
    })
    .await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_returns_ok_once_the_replica_has_it() {
    let (master, replica, db) = replicated().await;
    let mut on_replica = replica.conn();
    for round in 0..20 {
        let key = cached_on_replica(&db, &replica).await;
        db.cache
            .invalidate("product:1")
            .await
            .expect("the replica acknowledged");
        assert!(
            !on_replica.exists::<_, bool>(&key).unwrap(),
            "round {round}: deleted on the replica"
        );
        db.cache
            .invalidate_tag("catalog")
            .await
            .expect("the replica acknowledged");
        let tag = "shop:tag:{catalog}";
        let on_master: Option<String> = master.conn().get(tag).unwrap();
        let replicated: Option<String> = on_replica.get(tag).unwrap();
        assert_eq!(
            replicated, on_master,
            "round {round}: the tag's new version is on the replica"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_replica_paused_invalidate_is_an_error_within_the_deadline() {
    let (_master, replica, db) = replicated().await;
    cached_on_replica(&db, &replica).await;
    replica.pause();
    let started = Instant::now();
    let result = db.cache.invalidate("product:1").await;
    let took = started.elapsed();
    eprintln!("an invalidation no replica acknowledged returned after {took:?}");
    let error = result.expect_err("no replica acknowledged it");
    assert!(error.to_string().contains("no replica acknowledged"), "{error}");
    let result = db.cache.invalidate_tag("catalog").await;
    assert!(result.is_err(), "a tag bump is confirmed the same way: {result:?}");
    replica.resume();
    replica.wait_synced();
    db.cache.invalidate("product:1").await.expect("the replica is back");
}

/// The median and 99th percentile of hits on product 1, taken until `enough` holds (and
/// at least 200 of them).
async fn hit_latency(db: &Db, enough: impl Fn() -> bool) -> (Duration, Duration) {
    let mut took = Vec::new();
    while took.len() < 200 || !enough() {
        let started = Instant::now();
        assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
        took.push(started.elapsed());
    }
    took.sort();
    (took[took.len() / 2], took[took.len() * 99 / 100])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_not_held_up_by_invalidations_waiting_for_a_paused_replica() {
    let (_master, replica, db) = replicated().await;
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    let (p50, p99) = hit_latency(&db, || true).await;
    eprintln!("hits alone: p50 {p50:?}, p99 {p99:?}");
    replica.pause();
    let unconfirmed = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let invalidations = async {
        while !stop.load(Ordering::SeqCst) {
            if db.cache.invalidate("product:2").await.is_err() {
                unconfirmed.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    let hits = async {
        // More unconfirmed invalidations than the failures that open the breaker.
        let figures = hit_latency(&db, || unconfirmed.load(Ordering::SeqCst) >= 4).await;
        stop.store(true, Ordering::SeqCst);
        figures
    };
    let ((p50, p99), ()) = tokio::join!(hits, invalidations);
    let unconfirmed = unconfirmed.load(Ordering::SeqCst);
    eprintln!(
        "hits beside invalidations waiting for a paused replica: p50 {p50:?}, p99 {p99:?} ({unconfirmed} unconfirmed)"
    );
    let stats = db.cache.stats();
    assert_eq!(
        (stats.loads, stats.skipped, stats.errors),
        (1, 0, 0),
        "every call hit: {stats:?}"
    );
    assert!(format!("{:?}", db.cache).contains("connected: true"));
    replica.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_of_waiting_for_a_replica() {
    let alone = RedisServer::start();
    let db_alone = Db::new(cache_on(&alone).await);
    let (_master, _replica, db) = replicated().await;
    for (what, db) in [("no replica", &db_alone), ("one replica", &db)] {
        let started = Instant::now();
        for i in 0..200 {
            if let Err(e) = db.cache.invalidate(&format!("product:{i}")).await {
                panic!("{what} {i}: {e}");
            }
        }
        eprintln!("invalidate with {what}: {:?} each", started.elapsed() / 200);
    }
    let mut replicated = _replica.conn();
    assert!(
        !replicated.exists::<_, bool>(db.cache.key("product:199")).unwrap(),
        "the replica had the last delete when it returned"
    );
}

#[test]
fn redis_invalidate_retries_until_the_paused_replica_acknowledges() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (logs, _guard) = Logs::capture();
    runtime.block_on(async {
        let (_master, replica, db) = replicated().await;
        cached_on_replica(&db, &replica).await;
        replica.pause();
        assert_eq!(db.update_product(1, false).await, Ok(1), "the write itself succeeded");
        // Retried while the replica is paused, none confirmed.
        let retries = Duration::from_millis(300);
        tokio::time::sleep(retries).await;
        let delayed = |logs: &Logs| {
            logs.lines()
                .iter()
                .filter(|line| line.contains("a delayed invalidation went through"))
                .count()
        };
        assert_eq!(
            delayed(&logs),
            0,
            "not confirmed while no replica answers: {:?}",
            logs.lines()
        );
        replica.resume();
        eventually("both keys' invalidations went through", async || delayed(&logs) == 2).await;
        assert_eq!(db.product(1).await, Ok(Some(product(1, 1))), "the new value is loaded");
    });
}

/// The invalidation's script goes in a pipeline with `WAIT` and `ROLE`, where redis-rs
/// does not load a script Redis lost: the store does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_after_redis_lost_its_scripts_loads_them_and_is_confirmed() {
    let (master, replica, db) = replicated().await;
    let key = cached_on_replica(&db, &replica).await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut master.conn()).unwrap();
    db.cache
        .invalidate("product:1")
        .await
        .expect("the script was loaded and sent again");
    assert!(!replica.conn().exists::<_, bool>(&key).unwrap());
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut master.conn()).unwrap();
    db.cache.invalidate_tag("catalog").await.expect("the same for a tag");
}
