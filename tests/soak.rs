//! A bounded soak (90 s by default, `SOAK_SECS` to change): two caches ("processes")
//! read 50 keys hard while a writer updates and invalidates them and Redis is killed
//! and restarted every few seconds. Every returned value is checked against its key and
//! against the invalidations that completed before the call began.

mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached};
use serde::{Deserialize, Serialize};
use support::RedisServer;

const KEYS: u64 = 50;
/// Ids from here on do not exist: they exercise the negative cache.
const MISSING_FROM: u64 = 40;
/// Another process learns of an invalidation through a message; past this it must have.
const MESSAGE_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u64,
    generation: u64,
}

struct Db {
    cache: Cache,
    generations: Arc<Vec<AtomicU64>>,
    loads: Arc<Vec<AtomicUsize>>,
}

impl Db {
    #[redis_cached(key = "item:<id>", ttl = "2s", lock = "2s", negative = "1s", cache = self.cache)]
    async fn item(&self, id: u64) -> Result<Option<Item>, String> {
        self.loads[id as usize].fetch_add(1, Ordering::SeqCst);
        let generation = self.generations[id as usize].load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1 + id % 5)).await;
        Ok((id < MISSING_FROM).then_some(Item { id, generation }))
    }
}

/// For each key: the generation every call starting after `since` must see at least.
type Floors = Arc<Mutex<Vec<(u64, Instant)>>>;

#[derive(Default)]
struct Tally {
    calls: AtomicUsize,
    errors: AtomicUsize,
    wrong: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_restarts_invalidations_and_two_processes() {
    let seconds: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let mut redis = RedisServer::start();
    let generations: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let loads: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let floors: Floors = Arc::new(Mutex::new((0..KEYS).map(|_| (0, Instant::now())).collect()));
    let tally = Arc::new(Tally::default());
    let mut processes = Vec::new();
    for _ in 0..2 {
        let cache = redis.cache("soak:").await;
        processes.push(Arc::new(Db {
            cache,
            generations: generations.clone(),
            loads: loads.clone(),
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let mut tasks = Vec::new();
    for (process, db) in processes.iter().enumerate() {
        for reader in 0..6u64 {
            let (db, floors, tally) = (db.clone(), floors.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut seed = reader * 7919 + process as u64 * 104_729 + 1;
                while Instant::now() < deadline {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let id = (seed >> 33) % KEYS;
                    let began = Instant::now();
                    let (floor, since) = floors.lock().unwrap()[id as usize];
                    let result = db.item(id).await;
                    tally.calls.fetch_add(1, Ordering::Relaxed);
                    let now_generation = db.generations[id as usize].load(Ordering::SeqCst);
                    // The cache that invalidated sees it at once; the other once its message is in.
                    let strict = process == 0 || began >= since + MESSAGE_GRACE;
                    let right = match &result {
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        Ok(None) => id >= MISSING_FROM,
                        Ok(Some(item)) => {
                            id < MISSING_FROM
                                && item.id == id
                                && item.generation <= now_generation
                                && (!strict || item.generation >= floor)
                        }
                    };
                    if !right {
                        tally.wrong.fetch_add(1, Ordering::Relaxed);
                        eprintln!("wrong value for {id}: {result:?}, floor {floor}, now {now_generation}");
                    }
                }
            }));
        }
    }

    // The writer: update a key in the "database", then invalidate it until Redis confirms.
    let writer = {
        let (db, floors) = (processes[0].clone(), floors.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut invalidations = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let id = (n * 13) % MISSING_FROM;
                let generation = db.generations[id as usize].fetch_add(1, Ordering::SeqCst) + 1;
                while db.item_invalidate(id).await.is_err() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                floors.lock().unwrap()[id as usize] = (generation, Instant::now());
                invalidations += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            invalidations
        })
    };

    // Kill and restart Redis (empty) every 5 s.
    let mut restarts = 0;
    while Instant::now() + Duration::from_secs(5) < deadline {
        tokio::time::sleep(Duration::from_secs(5)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.launch();
        restarts += 1;
    }
    for task in tasks {
        task.await.unwrap();
    }
    let invalidations = writer.await.unwrap();

    let calls = tally.calls.load(Ordering::SeqCst);
    let total_loads: usize = loads.iter().map(|l| l.load(Ordering::SeqCst)).sum();
    let stats: Vec<_> = processes.iter().map(|db| db.cache.stats()).collect();
    println!(
        "soak: {seconds} s, {restarts} restarts, {invalidations} invalidations, {calls} calls, {} errors surfaced, \
         {} wrong values, {:.1} loads per key, hit rate {:.0}% / {:.0}%",
        tally.errors.load(Ordering::SeqCst),
        tally.wrong.load(Ordering::SeqCst),
        total_loads as f64 / KEYS as f64,
        stats[0].hit_rate() * 100.0,
        stats[1].hit_rate() * 100.0,
    );
    println!("soak stats: {stats:?}");
    assert!(calls > 1000, "the soak ran");
    assert_eq!(tally.errors.load(Ordering::SeqCst), 0, "errors surfaced");
    assert_eq!(tally.wrong.load(Ordering::SeqCst), 0, "wrong values");
    assert!(
        stats.iter().all(|s| s.hits > 0),
        "the caches served hits between restarts"
    );
}
