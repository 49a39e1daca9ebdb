//! Behaviour through Redis Sentinel: one master, one replica and three sentinels started
//! by each test, and what a failover does to the callers.

mod behaviour;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use behaviour::load::{Load, Seen};
use behaviour::{Db, behaviour_tests, product};
use redis::Commands;
use redis_cached::Cache;
use support::near::{self, until_near_hit, until_none_served};
use support::sentinel::{MASTER_NAME, SentinelSet};
use support::{eventually, free_port, wait_connected};

async fn sentinel_db() -> (SentinelSet, Arc<Db>) {
    let set = SentinelSet::start();
    let db = Arc::new(Db::new(set.cache("shop:").await));
    (set, db)
}

behaviour_tests!(sentinel_db());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_before_the_sentinels_are_up_connects_once_they_are() {
    let ports = [free_port(), free_port(), free_port()];
    let urls: Vec<String> = ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    let cache = Cache::builder()
        .sentinel(MASTER_NAME, urls)
        .prefix("shop:")
        .build()
        .await
        .expect("nothing listening is not a configuration error");
    let db = Db::new(cache);
    assert_eq!(
        format!("{:?}", db.cache),
        r#"Cache { prefix: "shop:", topology: "sentinel", connected: false }"#
    );
    for _ in 0..2 {
        assert_eq!(db.product(1).await, Ok(Some(product(1, 0))), "fails open to the loader");
    }
    assert_eq!(db.loads(), 2, "nothing was cached");
    let set = SentinelSet::start_on(ports);
    wait_connected(&db.cache).await;
    db.product(1).await.unwrap();
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    assert_eq!(db.loads(), 3, "a hit through the master the sentinels named");
    assert!(
        set.master()
            .conn()
            .exists::<_, bool>(db.cache.key("product:1"))
            .unwrap()
    );
}

#[tokio::test]
async fn bad_sentinel_settings_are_configuration_errors() {
    let invalid = |builder: redis_cached::CacheBuilder| async move { builder.build().await.unwrap_err().to_string() };
    let no_sentinels: [&str; 0] = [];
    let why = invalid(Cache::builder().sentinel(MASTER_NAME, no_sentinels)).await;
    assert!(why.contains("no sentinel urls"), "{why}");
    let why = invalid(Cache::builder().sentinel("", ["redis://127.0.0.1:1"])).await;
    assert!(why.contains("master name is empty"), "{why}");
    let why = invalid(Cache::builder().sentinel(MASTER_NAME, ["redis://127.0.0.1:1", "nope://x"])).await;
    assert!(why.contains("invalid redis url"), "{why}");
}

/// Waits until a call's fill lands on the node `new`.
async fn wait_fill_lands_on(db: &Db, set: &SentinelSet, new: usize) {
    let probe = db.cache.key("product:7");
    let mut new_master = set.nodes[new].conn();
    eventually("a fill lands on the new master", async || {
        let _ = db.product(7).await;
        new_master.exists::<_, bool>(&probe).unwrap_or(false)
    })
    .await;
}

/// Waits until calls hit again after a switch; prints how long that took.
async fn wait_hits_resume(db: &Db, what: &str, switched: Instant) {
    let hits = db.cache.stats().hits;
    eventually("hits resume on the new master", async || {
        db.cache.stats().hits > hits + 20
    })
    .await;
    eprintln!("{what}: hits resumed {:?} after the switch", switched.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_load_costs_callers_no_error_and_hits_resume_on_the_new_master() {
    let mut set = SentinelSet::start();
    let db = Arc::new(Db::new(set.cache("shop:").await));
    let load = Load::start(&db, 8, 100..=107);
    eventually("the callers hit", async || db.cache.stats().hits > 50).await;
    let killed = Instant::now();
    set.kill_master();
    let new = set.wait_switched();
    eprintln!("master killed: the sentinels switched after {:?}", killed.elapsed());
    let switched = Instant::now();
    wait_hits_resume(&db, "master killed", switched).await;
    let Seen { calls, wrong, .. } = load.stop().await;
    assert_eq!(wrong, 0, "every one of {calls} calls returned the loader's result");
    assert!(
        set.nodes[new]
            .conn()
            .exists::<_, bool>(db.cache.key("product:100"))
            .unwrap(),
        "the values live on the new master"
    );
    assert!(format!("{:?}", db.cache).contains("connected: true"));
    let mut new_master = set.nodes[new].conn();
    eventually("the announcement subscription follows the master", async || {
        subscribed(&mut new_master) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_failover_the_cache_moves_to_the_new_master_while_the_old_one_still_answers() {
    let mut set = SentinelSet::start();
    let db = Arc::new(Db::new(set.cache("shop:").await));
    let old = set.master().port;
    let load = Load::start(&db, 8, 100..=107);
    eventually("the callers hit", async || db.cache.stats().hits > 50).await;
    let asked = Instant::now();
    set.failover();
    let new = set.wait_switched();
    let switched = Instant::now();
    eprintln!("graceful failover: the sentinels switched after {:?}", asked.elapsed());
    // A key no caller has read: its fill can only land where the cache writes.
    wait_fill_lands_on(&db, &set, new).await;
    eprintln!(
        "graceful failover: the cache wrote to the new master {:?} after the switch",
        switched.elapsed()
    );
    let old_master = set.nodes.iter().find(|n| n.port == old).unwrap();
    assert!(
        old_master.is_master(),
        "the old master was not demoted yet: the switch message moved the cache, not a READONLY reply"
    );
    wait_hits_resume(&db, "graceful failover", switched).await;
    let Seen { calls, wrong, .. } = load.stop().await;
    assert_eq!(wrong, 0, "every one of {calls} calls returned the loader's result");
    let mut new_master = set.nodes[new].conn();
    eventually("the announcement subscription follows the master", async || {
        subscribed(&mut new_master) == 1
    })
    .await;
}

/// How many connections of `server` subscribe to the `shop:` caches' announcements.
fn subscribed(server: &mut redis::Connection) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("shop:fills")
        .query(server)
        .unwrap();
    count
}

/// Keys the invalidation test fills before the failover, all with the same stale bytes.
const KEYS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_invalidation_that_returned_ok_is_lost_in_a_graceful_failover() {
    let mut set = SentinelSet::start();
    let db = Arc::new(Db::new(set.cache("shop:").await));
    // Every key holds the same stale value (product 1 of generation 0), on both nodes.
    db.product(1).await.unwrap();
    let stale: Vec<u8> = set.master().conn().get(db.cache.key("product:1")).unwrap();
    let mut fill = redis::pipe();
    for id in 0..KEYS {
        fill.set(db.cache.key(&format!("product:{}", 10_000 + id)), &stale)
            .ignore();
    }
    let _: () = fill.query(&mut set.master().conn()).unwrap();
    let mut replica = set.replica().conn();
    support::wait_until("the replica has every key", || {
        redis::cmd("DBSIZE").query::<u64>(&mut replica).unwrap() > KEYS
    });
    let load = Load::start(&db, 4, 100..=107);
    // Invalidates each key once, in order, until told to stop; keeps those that were Ok
    // (`cache.invalidate`) or will be retried (`#[redis_invalidate]`).
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let pass = tokio::spawn({
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        async move {
            let (mut confirmed, mut unconfirmed) = (Vec::new(), 0);
            for id in (10_000..10_000 + KEYS).take_while(|_| !stop.load(Ordering::SeqCst)) {
                let ok = if id % 3 == 0 {
                    db.update_product(id, false).await.is_ok()
                } else {
                    db.generation.fetch_add(1, Ordering::SeqCst);
                    db.cache.invalidate(&format!("product:{id}")).await.is_ok()
                };
                if ok {
                    confirmed.push(id);
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    unconfirmed += 1;
                }
            }
            (confirmed, unconfirmed)
        }
    });
    eventually("invalidations run", async || done.load(Ordering::SeqCst) > 200).await;
    set.failover();
    let new = set.wait_switched();
    let at_switch = done.load(Ordering::SeqCst);
    eventually("invalidations go on after the switch", async || {
        done.load(Ordering::SeqCst) > at_switch + 1000
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (confirmed, unconfirmed) = pass.await.unwrap();
    let Seen { calls, wrong, .. } = load.stop().await;
    assert_eq!(wrong, 0, "every one of {calls} calls returned the loader's result");
    eprintln!(
        "graceful failover: {} invalidations returned Ok, {unconfirmed} were not confirmed",
        confirmed.len()
    );
    // The background retries of `#[redis_invalidate]` reach the new master too.
    let mut new_master = set.nodes[new].conn();
    let keys: Vec<String> = confirmed
        .iter()
        .map(|id| db.cache.key(&format!("product:{id}")))
        .collect();
    let still_stale = |new_master: &mut redis::Connection| -> Vec<String> {
        let values: Vec<Option<Vec<u8>>> = new_master.mget(&keys).unwrap();
        keys.iter()
            .zip(values)
            .filter(|(_, value)| value.as_deref() == Some(stale.as_slice()))
            .map(|(key, _)| key.clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lost = still_stale(&mut new_master);
        if lost.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} confirmed invalidations were lost in the failover, e.g. {:?}",
            lost.len(),
            keys.len(),
            &lost[..lost.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = confirmed[confirmed.len() / 2];
    let read = db.product(id).await.unwrap().unwrap();
    assert!(read.id == id, "a confirmed key is loaded anew: {read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_takes_the_credentials_of_url_and_each_sentinel_those_of_its_own_url() {
    let set = SentinelSet::start_with_passwords(Some("master-secret"), Some("sentinel-secret"));
    let sentinels: Vec<String> = set.sentinels.iter().map(support::RedisServer::url).collect();
    assert!(sentinels[0].contains(":sentinel-secret@"), "{}", sentinels[0]);
    let cache = Cache::builder()
        .sentinel(MASTER_NAME, sentinels.clone())
        // Only the user, password and database count: the sentinels give the address.
        .url("redis://:master-secret@unused.invalid:1/0")
        .prefix("shop:")
        .build()
        .await
        .unwrap();
    wait_connected(&cache).await;
    let db = Db::new(cache);
    db.product(3).await.unwrap();
    assert_eq!(db.product(3).await, Ok(Some(product(3, 0))));
    assert_eq!((db.loads(), db.cache.stats().errors), (1, 0), "a hit on the master");
    let debug = format!("{:?}", Cache::builder().sentinel(MASTER_NAME, sentinels));
    assert!(
        !debug.contains("sentinel-secret"),
        "the builder's Debug hides passwords: {debug}"
    );

    // Without the master's password the sentinels answer, but the master refuses.
    let refused = Cache::builder()
        .sentinel(MASTER_NAME, set.sentinel_urls())
        .prefix("shop:")
        .build()
        .await
        .unwrap();
    let db = Db::new(refused);
    assert_eq!(db.product(3).await, Ok(Some(product(3, 0))), "fails open");
    assert!(format!("{:?}", db.cache).contains("connected: false"));
}

/// Regression: a `+switch-master` published while the cache's subscription to the
/// sentinels was down was missed, and the cache kept using the old master until it was
/// demoted (about 10 s after a graceful failover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_made_while_the_sentinel_subscription_was_down_is_followed_once_it_is_back() {
    let mut set = SentinelSet::start();
    let proxy = support::proxy::Proxy::start(set.sentinels[0].port).await;
    let cache = Cache::builder()
        .sentinel(MASTER_NAME, [proxy.url()])
        .prefix("shop:")
        .build()
        .await
        .unwrap();
    wait_connected(&cache).await;
    let db = Db::new(cache);
    let old = set.master().port;
    // The cache hears nothing from its sentinel while the switch is made.
    proxy.set(support::proxy::Fault::Reset);
    set.failover();
    let new = set.wait_switched();
    proxy.set(support::proxy::Fault::None);
    wait_fill_lands_on(&db, &set, new).await;
    let old_master = set.nodes.iter().find(|n| n.port == old).unwrap();
    assert!(
        old_master.is_master(),
        "the old master was not demoted yet: the cache asked where the master is when it subscribed again"
    );
}

/// Keys invalidated (and confirmed) just before the master is SIGKILLed stay invalidated
/// on the replica the sentinels promote: each `Ok` waited for that replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_confirmed_before_the_master_is_killed_survive_the_failover() {
    let mut set = SentinelSet::start();
    let db = Arc::new(Db::new(set.cache("shop:").await));
    let ids: Vec<u64> = (200..400).collect();
    for &id in &ids {
        assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
    }
    for &id in &ids {
        let key = format!("product:{id}");
        eventually("an invalidation is confirmed", async || {
            db.cache.invalidate(&key).await.is_ok()
        })
        .await;
    }
    set.kill_master();
    let new = set.wait_switched();
    let mut new_master = set.nodes[new].conn();
    for &id in &ids {
        let key = db.cache.key(&format!("product:{id}"));
        assert!(
            !new_master.exists::<_, bool>(&key).unwrap(),
            "{key} was invalidated before the failover, and is back"
        );
    }
    eprintln!("{} invalidations survived a killed master", ids.len());
}

/// Two processes with near caches; the master is SIGKILLed (`kill`) or handed over
/// gracefully, and the sentinels promote the replica: near hits resume in the second one,
/// and every invalidation the first one makes on the new master, and every write another
/// client makes there, reaches it. After a graceful failover no connection drops: only
/// the cache's following the master moves its tracking there.
async fn near_cache_across_a_failover(kill: bool) {
    let mut set = SentinelSet::start();
    let near_cache = || set.cache_with("shop:", |builder| builder.near_cache(1000));
    let (a, b) = (near_cache().await, near_cache().await);
    let db = near::Db::default();
    let keys: Vec<String> = (1..=30).map(|id| format!("product:{id}")).collect();
    let near_hits = async |value| {
        for key in &keys {
            assert_eq!(until_near_hit(&b, &db, key).await, Some(value), "{key}");
        }
    };
    db.set(1);
    near_hits(1).await;

    let failed = Instant::now();
    if kill {
        set.kill_master();
    } else {
        set.failover();
    }
    let new = set.wait_switched();
    let switch = failed.elapsed();
    let switched = Instant::now();
    assert_eq!(until_near_hit(&b, &db, &keys[0]).await, Some(1));
    let resumed = switched.elapsed();
    near_hits(1).await;

    db.set(2);
    let mut invalidated = Vec::new();
    for key in &keys {
        eventually("an invalidation is confirmed", async || a.invalidate(key).await.is_ok()).await;
        invalidated.push((key.clone(), Instant::now()));
    }
    let by_cache = until_none_served(&b, &db, &invalidated, 1).await;

    near_hits(2).await;
    db.set(3);
    let mut new_master = set.nodes[new].conn();
    let mut overwritten = Vec::new();
    for key in &keys {
        let _: () = new_master.set(b.key(key), "overwritten").unwrap();
        overwritten.push((key.clone(), Instant::now()));
    }
    let by_client = until_none_served(&b, &db, &overwritten, 2).await;
    eprintln!(
        "{}: the sentinels switched after {switch:?}; near hits resumed {resumed:?} after the switch; \
         on the new master, {} invalidations by another cache reached the near cache within {by_cache:?}, \
         writes by another client within {by_client:?}",
        if kill { "master killed" } else { "graceful failover" },
        keys.len()
    );
    assert_eq!(near::read(&b, &db, &keys[0]).await, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_killed_master_is_replaced_near_hits_resume_and_changes_on_the_new_master_arrive() {
    near_cache_across_a_failover(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_failover_changes_on_the_new_master_reach_the_near_cache() {
    near_cache_across_a_failover(false).await;
}

/// `server_stats` reads the `INFO` of the master the sentinels name, and follows it
/// through a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_are_the_current_masters_own() {
    let mut set = SentinelSet::start();
    let db = Db::new(set.cache("shop:").await);
    let keyspace_hits = |server: &support::RedisServer| -> u64 {
        let info = server.try_info("stats").expect("INFO stats");
        let line = info
            .lines()
            .find(|l| l.starts_with("keyspace_hits:"))
            .expect("keyspace_hits");
        line.trim_end()["keyspace_hits:".len()..].parse().unwrap()
    };
    for _ in 0..3 {
        db.product(1).await.unwrap();
    }
    let stats = db.cache.server_stats().await.expect("INFO of the master");
    assert_eq!(stats.servers, 1);
    assert_eq!(
        stats.keyspace_hits,
        keyspace_hits(set.master()),
        "the master's, not the replica's"
    );
    set.kill_master();
    let new = set.wait_switched();
    eventually("the cache reads the new master's INFO", async || {
        let Ok(stats) = db.cache.server_stats().await else {
            return false;
        };
        stats.keyspace_hits == keyspace_hits(&set.nodes[new])
    })
    .await;
}
