//! Behaviour on a Redis Cluster of three masters and three replicas started by the
//! tests: the whole behaviour suite on one shared cluster, then a cluster of its own for
//! each test that kills, hangs or reshards a node.

mod behaviour;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use behaviour::load::{Load, Seen};
use behaviour::{Db, behaviour_tests, product};
use redis_cached::{Cache, CacheBuilder};
use support::cluster::{Cluster, Node};
use support::eventually;
use support::logs::Logs;
use support::near::{self, until_near_hit, until_none_served};
use support::tls::Certificates;

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// A prefix no other test of this binary uses, so tests can share one cluster.
fn fresh_prefix() -> String {
    format!("t{}:", PREFIXES.fetch_add(1, Ordering::Relaxed))
}

/// A cache on `cluster` with the default deadlines, connected to every shard.
async fn cluster_cache(cluster: &Cluster, prefix: &str) -> Cache {
    connected(Cache::builder().cluster(cluster.seeds()).prefix(prefix)).await
}

/// A cache on the shared cluster, whose tests are about what a call does rather than
/// about deadlines: a deadline of a second, so that six nodes and two test threads on a
/// loaded machine do not turn slow replies into failures open.
async fn shared_cluster_cache(prefix: &str) -> Cache {
    connected(shared_cluster_builder(prefix).await).await
}

/// The builder of [`shared_cluster_cache`].
async fn shared_cluster_builder(prefix: &str) -> CacheBuilder {
    let cluster = tokio::task::spawn_blocking(Cluster::shared)
        .await
        .expect("start the cluster");
    Cache::builder()
        .cluster(cluster.seeds())
        .prefix(prefix)
        .op_timeout(Duration::from_secs(1))
}

async fn connected(builder: CacheBuilder) -> Cache {
    let cache = builder.build().await.expect("build the cache");
    wait_every_shard(&cache).await;
    cache
}

/// Waits (bounded) until `cache` can write to every shard: keys of many slots are
/// invalidated, which needs their masters.
async fn wait_every_shard(cache: &Cache) {
    eventually("the cache reaches every shard", async || {
        for probe in 0..16 {
            if cache.invalidate(&format!("probe:{probe}")).await.is_err() {
                return false;
            }
        }
        true
    })
    .await;
}

async fn shared_cluster_db() -> ((), Arc<Db>) {
    ((), Arc::new(Db::new(shared_cluster_cache(&fresh_prefix()).await)))
}

behaviour_tests!(shared_cluster_db());

/// A fill runs on the master of its key, and its announcement reaches waiters subscribed
/// on any node: classic `PUBLISH` is forwarded to every node of a cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_is_announced_on_every_node() {
    let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
    let prefix = fresh_prefix();
    let db = Db::new(shared_cluster_cache(&prefix).await);
    let channel = format!("{prefix}fills");
    let listeners: Vec<_> = cluster
        .nodes()
        .into_iter()
        .map(|node| {
            let mut conn = cluster.node_conn(node);
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let channel = channel.clone();
            let (subscribed, ready) = std::sync::mpsc::channel();
            let heard = std::thread::spawn(move || {
                let mut pubsub = conn.as_pubsub();
                pubsub.subscribe(&channel).unwrap();
                subscribed.send(()).unwrap();
                pubsub.get_message().is_ok()
            });
            (node, ready, heard)
        })
        .collect();
    for (_, ready, _) in &listeners {
        ready.recv_timeout(Duration::from_secs(10)).expect("subscribed");
    }
    assert_eq!(db.product(5).await, Ok(Some(product(5, 0))));
    assert_eq!(db.loads(), 1);
    for (node, _, heard) in listeners {
        assert!(heard.join().unwrap(), "{node:?} did not hear the fill");
    }
}

/// 200 concurrent calls on a cold key, split over two caches, run the loader once: the
/// lease is on the key's master, and the fill's announcement wakes the other cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_runs_one_load_across_processes_on_a_cluster() {
    let prefix = fresh_prefix();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = Arc::new(Db::sharing(shared_cluster_cache(&prefix).await, loads.clone()));
    let b = Arc::new(Db::sharing(shared_cluster_cache(&prefix).await, loads));
    behaviour::one_load_across_two_processes(a, b).await;
}

/// A cache built while no node of its cluster answers (every one hung): building
/// succeeds within the connect timeouts, calls fail open, and the cache connects by
/// itself once the nodes answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_while_its_cluster_does_not_answer_connects_later() {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    for node in cluster.nodes() {
        cluster.pause(node);
    }
    let started = Instant::now();
    let cache = Cache::builder()
        .cluster(cluster.seeds())
        .prefix("shop:")
        .build()
        .await
        .expect("build never needs the cluster");
    eprintln!("built in {:?} with no node answering", started.elapsed());
    let db = Db::new(cache);
    assert_eq!(db.product(3).await, Ok(Some(product(3, 0))));
    assert!(db.cache.stats().skipped > 0, "{:?}", db.cache.stats());

    for node in cluster.nodes() {
        cluster.resume(node);
    }
    let waited = until_hits_resume(&db, 3).await;
    eprintln!("hits {waited:?} after the nodes answer again");
}

/// The keys the load runs over: enough that every shard holds some.
const KEYS: u64 = 60;

/// How long until a call of `product(id)` is a hit again.
async fn until_hits_resume(db: &Db, id: u64) -> Duration {
    let start = Instant::now();
    eventually("hits resume", async || {
        let hits = db.cache.stats().hits;
        db.product(id).await.unwrap();
        db.cache.stats().hits > hits
    })
    .await;
    start.elapsed()
}

/// A cluster of the test's own, with a warm cache on it whose key `product:1` is
/// served by the returned master.
async fn warm_cluster() -> (Arc<Cluster>, Arc<Db>, Node) {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let db = Arc::new(Db::new(cluster_cache(&cluster, "shop:").await));
    for id in 1..=KEYS {
        assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
    }
    let master = cluster.master_of_key(&db.cache.key("product:1"));
    (cluster, db, master)
}

/// Kills (`pause: false`) or hangs a master under load, waits for its replica's
/// promotion, and returns the time from the promotion to hits on its keys, and what
/// the callers saw.
async fn fail_a_master_under_load(pause: bool) -> (Duration, u64, Duration) {
    let (cluster, db, master) = warm_cluster().await;
    let load = Load::start(&db, 4, 1..=KEYS);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failed = Instant::now();
    let promoted = tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            if pause {
                cluster.pause(master);
            } else {
                cluster.kill(master);
            }
            cluster.wait_promoted(master)
        }
    })
    .await
    .unwrap();
    let promotion = failed.elapsed();
    let resumed = until_hits_resume(&db, 1).await;
    // The load goes on a little after the promotion too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Seen { wrong, slowest, .. } = load.stop().await;
    eprintln!(
        "{} master: {promoted:?} promoted {promotion:?} after; hits resumed {resumed:?} after the promotion; \
         slowest call {slowest:?}; {:?}",
        if pause { "hung" } else { "killed" },
        db.cache.stats()
    );
    (resumed, wrong, slowest)
}

/// A master SIGKILLed mid-load: no caller sees an error (calls on its keys fail open
/// until its replica is promoted), and hits on its keys resume after the promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_surfaces_no_error_and_hits_resume_after_the_promotion() {
    let (_resumed, wrong, _slowest) = fail_a_master_under_load(false).await;
    assert_eq!(wrong, 0, "every caller gets the loader's result");
}

/// A master SIGSTOPped mid-load (it holds its connections and never answers): no caller
/// sees an error, each call is bounded by the cache's deadlines, and hits on its keys
/// resume once its replica is promoted (redis-rs's own connection would keep timing out
/// against the hung node; the cache builds a fresh one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_surfaces_no_error_calls_stay_bounded_and_hits_resume_after_the_promotion() {
    let (_resumed, wrong, slowest) = fail_a_master_under_load(true).await;
    assert_eq!(wrong, 0, "every caller gets the loader's result");
    // The call budget is 150 ms; this bound only rules out waiting on redis-rs's own
    // timeouts or reconnects (seconds), with room for a slow machine.
    assert!(slowest < Duration::from_secs(1), "a call took {slowest:?}");
}

/// The slot of `product:1` moves to another master, key by key, while callers read and
/// the test invalidates: no caller sees an error, and after every invalidation that
/// returned `Ok` the next read has the new value (through `MOVED` and `ASK`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_resharded_under_load_surfaces_no_error_and_loses_no_invalidation() {
    let (cluster, db, master) = warm_cluster().await;
    let key = db.cache.key("product:1");
    let mut conn = cluster.node_conn(master);
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query(&mut conn).unwrap();
    // Live keys in the same slot (same hash tag) besides the cache's, so the slot moves
    // in several steps.
    for filler in 0..40 {
        let _: () = redis::cmd("SET")
            .arg(format!("shop:{{product:1}}:filler:{filler}"))
            .arg("x")
            .query(&mut conn)
            .unwrap();
    }
    let to = cluster.masters().into_iter().find(|&m| m != master).unwrap();
    let load = Load::start(&db, 3, 1..=KEYS);
    let migration = cluster.start_migrating(slot, to);
    let (mut unconfirmed, mut round) = (0, 0);
    // While the entry's keys (value, lease, fence) are split between the two masters,
    // the invalidation script gets `TRYAGAIN` or `ASK`, and the cache deletes them key
    // by key.
    while round < 5 || !tokio::task::block_in_place(|| cluster.migrate_keys(&migration, 2)).is_empty() {
        round += 1;
        // A write to the database, then its invalidation.
        let generation = db.generation.fetch_add(1, Ordering::SeqCst) + 1;
        // An invalidation that is not confirmed is retried, as `#[redis_invalidate]`
        // does; once one is, the next read has the new value.
        unconfirmed += invalidate_until_confirmed(&db.cache, "product:1").await;
        assert_eq!(
            db.product(1).await,
            Ok(Some(product(1, generation))),
            "round {round}: a read after a confirmed invalidation has the new value"
        );
    }
    tokio::task::block_in_place(|| cluster.finish_migrating(migration));
    assert_eq!(cluster.master_of_key(&key), to);
    let Seen { wrong, .. } = load.stop().await;
    eprintln!(
        "{round} invalidations mid-migration, {unconfirmed} attempts not confirmed; {:?}",
        db.cache.stats()
    );
    assert_eq!(
        wrong, 0,
        "every caller gets the loader's result (or the value it stored)"
    );
    // After the move: an invalidation and a read on the new master.
    let generation = db.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let unconfirmed = invalidate_until_confirmed(&db.cache, "product:1").await;
    assert_eq!(
        db.product(1).await,
        Ok(Some(product(1, generation))),
        "{unconfirmed} attempts not confirmed"
    );
}

/// Invalidates `key` until Redis confirms it, as `#[redis_invalidate]` does in the
/// background; returns how many attempts were not confirmed.
async fn invalidate_until_confirmed(cache: &Cache, key: &str) -> usize {
    let mut unconfirmed = 0;
    eventually("an invalidation is confirmed", async || {
        let confirmed = cache.invalidate(key).await;
        if let Err(e) = &confirmed {
            eprintln!("not confirmed: {e}");
            unconfirmed += 1;
        }
        confirmed.is_ok()
    })
    .await;
    unconfirmed
}

/// The guide's least-privilege ACL line for a cluster, applied on every node: the whole
/// behaviour suite passes as that user, and the cache never meets a Redis error.
mod least_privilege {
    use super::*;

    /// Checks at the end of a test that the cache never met a Redis error: a missing
    /// permission fails open, so only the counter shows it.
    pub(super) struct NoErrors(Arc<Db>);

    impl Drop for NoErrors {
        fn drop(&mut self) {
            let stats = self.0.cache.stats();
            if !std::thread::panicking() {
                assert_eq!(stats.errors, 0, "the ACL user lacked a permission: {stats:?}");
            }
        }
    }

    async fn acl_cluster_db() -> (NoErrors, Arc<Db>) {
        let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
        let prefix = fresh_prefix();
        let rules = support::acl::guide_rules("Redis Cluster").replace("shop:", &prefix);
        let user = format!("cache-{}", prefix.trim_end_matches(':'));
        let seeds = cluster.acl_user_everywhere(&user, "cache-password", &rules);
        let builder = Cache::builder().cluster(seeds).prefix(&prefix);
        // As `shared_cluster_cache`: a loaded machine's slow reply is not a missing permission.
        let db = Arc::new(Db::new(connected(builder.op_timeout(Duration::from_secs(1))).await));
        (NoErrors(db.clone()), db)
    }

    behaviour_tests!(acl_cluster_db());
}

/// A cluster that speaks only TLS (between its nodes too) and asks for a client
/// certificate: with the private CA and a client certificate the cache hits; with
/// another CA it fails open and the log says why.
#[tokio::test]
async fn a_tls_cluster_with_mutual_tls_hits_and_another_ca_fails_open_and_says_so() {
    let certificates = Certificates::make();
    // Nothing else runs on this test's thread yet.
    let cluster = Cluster::start_tls(&certificates);
    let tls_cache = |ca: &str| {
        Cache::builder()
            .cluster(cluster.seeds())
            .prefix("shop:")
            .tls_root_ca(certificates.read(ca))
            .tls_client_auth(certificates.read("client.pem"), certificates.read("client.key"))
            .build()
    };
    let db = Db::new(tls_cache("ca.pem").await.expect("build"));
    wait_every_shard(&db.cache).await;
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    assert_eq!((db.loads(), db.cache.stats().hits), (1, 1));

    let (logs, _guard) = Logs::capture();
    let other = Db::new(tls_cache("other-ca.pem").await.expect("build"));
    eventually("the log says the issuer is unknown", async || {
        logs.lines()
            .iter()
            .any(|l| l.contains("cannot connect") && l.contains("UnknownIssuer"))
    })
    .await;
    assert_eq!(other.product(2).await, Ok(Some(product(2, 0))));
    assert_eq!(other.product(2).await, Ok(Some(product(2, 0))));
    assert_eq!(other.loads(), 2, "every call runs its loader");
}

/// Invalidations wait for a replica of the key's master: while that replica does not
/// answer (paused), `invalidate` is not confirmed (`Err`) within the deadline; once it
/// answers again, it is. Other masters' keys are confirmed all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_is_confirmed_only_once_a_replica_of_its_master_has_it() {
    let (cluster, db, master) = warm_cluster().await;
    let replica = cluster.replica_of(master);
    let other_key = (2..=KEYS)
        .map(|id| format!("product:{id}"))
        .find(|key| cluster.master_of_key(&db.cache.key(key)) != master)
        .expect("a key of another master");
    cluster.pause(replica);
    let started = Instant::now();
    let unconfirmed = db.cache.invalidate("product:1").await;
    eprintln!("not confirmed after {:?}: {unconfirmed:?}", started.elapsed());
    assert!(unconfirmed.is_err(), "no replica acknowledged it");
    assert!(started.elapsed() < Duration::from_secs(1), "within the deadline");
    invalidate_until_confirmed(&db.cache, &other_key).await;
    cluster.resume(replica);
    invalidate_until_confirmed(&db.cache, "product:1").await;
}

/// Keys invalidated (and confirmed) just before their master is killed stay invalidated
/// after its replica is promoted: the promoted replica had acknowledged each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_confirmed_before_a_master_is_killed_survive_the_failover() {
    let (cluster, db, master) = warm_cluster().await;
    let keys: Vec<String> = (1..=KEYS)
        .map(|id| format!("product:{id}"))
        .filter(|key| cluster.master_of_key(&db.cache.key(key)) == master)
        .collect();
    for key in &keys {
        invalidate_until_confirmed(&db.cache, key).await;
    }
    tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            cluster.kill(master);
            cluster.wait_promoted(master)
        }
    })
    .await
    .unwrap();
    let mut conn = cluster.conn();
    for key in &keys {
        let exists: bool = redis::cmd("EXISTS").arg(db.cache.key(key)).query(&mut conn).unwrap();
        assert!(!exists, "{key} was invalidated before the failover, and is back");
    }
    eprintln!("{} invalidations survived the failover", keys.len());
}

/// The connections every node has accepted so far.
fn connections_received(cluster: &Cluster) -> u64 {
    cluster
        .nodes()
        .into_iter()
        .map(|node| {
            let info: String = redis::cmd("INFO")
                .arg("stats")
                .query(&mut cluster.node_conn(node))
                .unwrap();
            info.lines()
                .find_map(|line| line.strip_prefix("total_connections_received:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .expect("INFO stats has total_connections_received")
        })
        .sum()
}

/// An idle cache keeps one announcement subscription on the cluster; it used to tear it
/// down and make it again in a loop, thousands of connections a second, so waiters
/// polled instead of being woken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_subscription_stays_up_while_the_cache_is_idle() {
    let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
    let prefix = fresh_prefix();
    let _cache = shared_cluster_cache(&prefix).await;
    let channel = format!("{prefix}fills");
    let subscribers = || {
        cluster
            .nodes()
            .into_iter()
            .map(|node| {
                let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(&channel)
                    .query(&mut cluster.node_conn(node))
                    .unwrap();
                counts.iter().map(|(_, n)| n).sum::<u64>()
            })
            .sum::<u64>()
    };
    eventually("the cache subscribes", async || subscribers() == 1).await;
    let before = connections_received(cluster);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = connections_received(cluster) - before;
    // The test's own INFO connections, other tests of this binary, and nothing like a loop.
    assert!(made < 200, "{made} connections in 2 s");
    assert_eq!(subscribers(), 1, "still subscribed");
}

/// The only seed is a replica, which then dies; a master pauses briefly (no failover):
/// its breaker opens, and closes again once it answers, through the nodes the cache
/// knows. It used to stay open for good, every key of that master a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shards_breaker_closes_again_when_no_seed_answers_but_the_cluster_does() {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let any_master = cluster.masters()[0];
    let seed = cluster.replica_of(any_master);
    let db = Db::new(connected(Cache::builder().cluster([cluster.url(seed)]).prefix("shop:")).await);
    let master = cluster.master_of_key(&db.cache.key("product:1"));
    assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    cluster.kill(seed);
    cluster.pause(master);
    for _ in 0..5 {
        assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    }
    cluster.resume(master);
    let waited = until_hits_resume(&db, 1).await;
    eprintln!("hits {waited:?} after the master answers again, with no seed up");
}

/// While a master hangs, and until the cluster itself fails its slots, the other
/// masters' keys keep hitting: only the hung shard fails open. Its probe used to go
/// through the cluster connection, where a request to the hung node held up every
/// other request, and the healthy shards' breakers opened too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_leaves_the_other_masters_keys_hitting() {
    let (cluster, db, master) = warm_cluster().await;
    let others: Vec<u64> = (1..=KEYS)
        .filter(|id| cluster.master_of_key(&db.cache.key(&format!("product:{id}"))) != master)
        .collect();
    let healthy = cluster.masters().into_iter().find(|&m| m != master).unwrap();
    let cluster_failed = || {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut cluster.node_conn(healthy))
            .unwrap();
        info.contains("cluster_state:fail")
    };
    cluster.pause(master);
    // The hung shard's own keys open its breaker.
    for _ in 0..5 {
        assert_eq!(db.product(1).await, Ok(Some(product(1, 0))));
    }
    let before = db.cache.stats();
    let started = Instant::now();
    let mut calls = 0;
    while !cluster_failed() && started.elapsed() < Duration::from_secs(3) {
        for &id in &others {
            assert_eq!(db.product(id).await, Ok(Some(product(id, 0))));
            calls += 1;
        }
    }
    let after = db.cache.stats();
    eprintln!(
        "{calls} calls on the other masters' keys in the {:?} before the cluster failed: {} hits, {} misses",
        started.elapsed(),
        after.hits - before.hits,
        after.misses - before.misses
    );
    assert!(calls > 0);
    // A few calls may meet the cluster just as it fails; nothing like every call.
    assert!(
        (after.misses - before.misses) * 10 <= calls,
        "the other masters' keys missed: {before:?} {after:?}"
    );
}

/// The keys the near-cache tests read: 30, so that every master serves some.
fn near_keys() -> Vec<String> {
    (1..=30).map(|id| format!("product:{id}")).collect()
}

/// Makes each of `keys` a near hit of `cache` with the value `db` holds now.
async fn near_hits(cache: &Cache, db: &near::Db, keys: &[String], value: u32) {
    for key in keys {
        assert_eq!(until_near_hit(cache, db, key).await, Some(value), "{key}");
    }
}

/// Invalidations from every shard reach another process's near cache: keys of all
/// three masters, each a near hit in cache B, invalidated by cache A, and later
/// overwritten by another client: B stops serving each old value within the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_any_master_reaches_another_processs_near_cache() {
    let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
    let prefix = fresh_prefix();
    let a = connected(shared_cluster_builder(&prefix).await.near_cache(1000)).await;
    let b = connected(shared_cluster_builder(&prefix).await.near_cache(1000)).await;
    let db = near::Db::default();
    let keys = near_keys();
    let masters: BTreeSet<Node> = keys.iter().map(|key| cluster.master_of_key(&b.key(key))).collect();
    assert_eq!(
        masters,
        cluster.masters().into_iter().collect(),
        "every master serves some keys"
    );

    db.set(1);
    near_hits(&b, &db, &keys, 1).await;
    db.set(2);
    let mut invalidated = Vec::new();
    for key in &keys {
        invalidate_until_confirmed(&a, key).await;
        invalidated.push((key.clone(), Instant::now()));
    }
    let longest = until_none_served(&b, &db, &invalidated, 1).await;
    eprintln!("invalidated by another cache: every old value gone from the near cache within {longest:?}");

    near_hits(&b, &db, &keys, 2).await;
    db.set(3);
    let mut conn = cluster.conn();
    let mut overwritten = Vec::new();
    for key in &keys {
        let _: () = redis::cmd("SET")
            .arg(b.key(key))
            .arg("overwritten")
            .query(&mut conn)
            .unwrap();
        overwritten.push((key.clone(), Instant::now()));
    }
    let longest = until_none_served(&b, &db, &overwritten, 2).await;
    eprintln!("overwritten by another client: every old value gone from the near cache within {longest:?}");
    assert_eq!(near::read(&b, &db, &keys[0]).await, Some(3));
}

/// Kills (`pause: false`) or hangs the master of 30 keys that are near hits in cache B,
/// waits for its replica's promotion, then: B serves near hits again (tracking is on at
/// the promoted master), and every invalidation of those keys cache A makes reaches B.
async fn near_cache_across_a_failover(pause: bool) {
    let cluster = Arc::new(tokio::task::spawn_blocking(Cluster::start).await.unwrap());
    let near_cache = || {
        connected(
            Cache::builder()
                .cluster(cluster.seeds())
                .prefix("shop:")
                .near_cache(1000),
        )
    };
    let (a, b) = (near_cache().await, near_cache().await);
    let db = near::Db::default();
    let master = cluster.master_of_key(&b.key("product:1"));
    let keys: Vec<String> = (1..)
        .map(|id| format!("product:{id}"))
        .filter(|key| cluster.master_of_key(&b.key(key)) == master)
        .take(30)
        .collect();
    db.set(1);
    near_hits(&b, &db, &keys, 1).await;

    let failed = Instant::now();
    let promoted = tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            if pause {
                cluster.pause(master);
            } else {
                cluster.kill(master);
            }
            cluster.wait_promoted(master)
        }
    })
    .await
    .unwrap();
    let promotion = failed.elapsed();
    let since_promotion = Instant::now();
    assert_eq!(until_near_hit(&b, &db, &keys[0]).await, Some(1));
    let resumed = since_promotion.elapsed();
    near_hits(&b, &db, &keys, 1).await;

    db.set(2);
    let mut invalidated = Vec::new();
    for key in &keys {
        invalidate_until_confirmed(&a, key).await;
        invalidated.push((key.clone(), Instant::now()));
    }
    let longest = until_none_served(&b, &db, &invalidated, 1).await;
    eprintln!(
        "{} master: {promoted:?} promoted {promotion:?} after; near hits resumed {resumed:?} after the promotion; \
         {} invalidations on the promoted master reached the near cache within {longest:?}",
        if pause { "hung" } else { "killed" },
        keys.len()
    );
    assert_eq!(near::read(&b, &db, &keys[0]).await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_killed_master_is_replaced_near_hits_resume_and_its_keys_invalidations_arrive() {
    near_cache_across_a_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hung_master_is_replaced_near_hits_resume_and_its_keys_invalidations_arrive() {
    near_cache_across_a_failover(true).await;
}

/// `INFO` is read from every master and summed: a read of each master's key shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stats_are_summed_over_the_masters() {
    let cache = shared_cluster_cache(&fresh_prefix()).await;
    let before = cache.server_stats().await.expect("INFO of every master");
    assert_eq!(before.servers, 3, "{before:?}");
    let db = Db::new(cache.clone());
    for id in 0..30 {
        db.product(id).await.unwrap();
    }
    let after = cache.server_stats().await.expect("INFO of every master");
    assert!(
        after.keyspace_misses >= before.keyspace_misses + 30,
        "{before:?} then {after:?}"
    );
    assert!(after.used_memory > 0 && !after.maxmemory_policy.is_empty());
}
