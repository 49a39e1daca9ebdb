//! Scenario 7: the near cache. A warm key read at 1 task and at 64 tasks from the near
//! cache, from Redis, and by a raw `GET`; and how long another process's near cache keeps
//! serving a value after one process invalidates it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Policy, redis_cached};

use crate::hit::{CONCURRENT_ROUNDS, ID, OPS_PER_ROUND, OPS_PER_TASK, ROUNDS, TASKS, decode};
use crate::model::{Product, product};
use crate::report::{Samples, Table, micros, nanos, ratio};
use crate::server::Server;

/// Per task and round, for the near hits: a round of `OPS_PER_TASK` would last a few
/// milliseconds.
const NEAR_OPS_PER_TASK: usize = 3_000;
/// The entries of every near cache here.
const NEAR_ENTRIES: u64 = 10_000;
/// Invalidation rounds.
const PROPAGATION_ROUNDS: u64 = 1_000;
/// How long a poll may wait for a change before the run is called broken.
const PATIENCE: Duration = Duration::from_secs(5);

/// The product, never on the near tier.
static NO_NEAR: Policy = Policy::new("product_no_near", Duration::from_secs(3600)).no_near();
/// A value the propagation rounds change, on the near tier for the default max age.
static VERSIONED: Policy = Policy::new("versioned", Duration::from_secs(3600));

struct Catalog {
    cache: Cache,
}

impl Catalog {
    /// The same fn on both caches: a Redis hit on the one without a near cache, a near
    /// hit on the other.
    #[redis_cached(key = "product:<id>", ttl = 3600, cache = self.cache)]
    async fn product(&self, id: u64) -> Product {
        product(id)
    }

    /// A Redis hit on either cache.
    async fn product_no_near(&self, id: u64) -> Product {
        let load = async { Ok::<_, ()>(Some(product(id))) };
        let key = format!("product-no-near:{id}");
        let found = self.cache.get_or_load(&NO_NEAR, &key, load).await;
        found.expect("infallible").expect("a product")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    Raw,
    Redis,
    Near,
    NoNearPolicy,
    NoNearPolicyOnNear,
}

const ROWS: [(Row, &str); 5] = [
    (Row::Raw, "raw `GET` + bincode decode (the floor)"),
    (Row::Redis, "`#[redis_cached]` hit, cache without `near_cache`"),
    (Row::Near, "`#[redis_cached]` near hit, `near_cache(10_000)`"),
    (
        Row::NoNearPolicy,
        "`get_or_load`, `Policy::no_near()`, cache without `near_cache`",
    ),
    (
        Row::NoNearPolicyOnNear,
        "`get_or_load`, `Policy::no_near()`, `near_cache(10_000)`",
    ),
];

/// The 64-task rows: the raw `GET`, the Redis hit, the near hit.
const CONCURRENT_ROWS: [usize; 3] = [0, 1, 2];

struct Rows {
    raw: MultiplexedConnection,
    plain: Catalog,
    near: Catalog,
}

impl Rows {
    async fn get(&self, row: Row, raw: &mut MultiplexedConnection) -> Product {
        match row {
            Row::Raw => decode(raw.get::<_, Vec<u8>>("raw:1").await.expect("raw GET")),
            Row::Redis => self.plain.product(ID).await,
            Row::Near => self.near.product(ID).await,
            Row::NoNearPolicy => self.plain.product_no_near(ID).await,
            Row::NoNearPolicyOnNear => self.near.product_no_near(ID).await,
        }
    }
}

async fn near_cache(server: &Server) -> Cache {
    Cache::builder()
        .url(server.url())
        .prefix("bench:")
        .near_cache(NEAR_ENTRIES)
        .build()
        .await
        .expect("cache with a near cache")
}

pub(crate) async fn run(server: &Server) -> Vec<Table> {
    let client = redis::Client::open(server.url()).expect("url");
    let mut raw = client.get_multiplexed_async_connection().await.expect("connect");
    let bytes = bincode::serde::encode_to_vec(product(ID), bincode::config::standard()).expect("encode");
    let _: () = raw.set("raw:1", &bytes).await.expect("SET raw");
    let rows = Arc::new(Rows {
        raw,
        plain: Catalog {
            cache: server.cache().await,
        },
        near: Catalog {
            cache: near_cache(server).await,
        },
    });

    // Warm every row (a miss, then a Redis hit that the near cache keeps), and check
    // each reads the same product.
    let mut conn = rows.raw.clone();
    for (row, name) in ROWS {
        for _ in 0..3 {
            assert_eq!(rows.get(row, &mut conn).await, product(ID), "{name}");
        }
    }
    let before = (rows.plain.cache.stats(), rows.near.cache.stats());

    let mut single: Vec<Samples> = vec![Samples::default(); ROWS.len()];
    for _ in 0..ROUNDS {
        for (i, (row, _)) in ROWS.iter().enumerate() {
            for _ in 0..OPS_PER_ROUND {
                let start = Instant::now();
                std::hint::black_box(rows.get(*row, &mut conn).await);
                single[i].push(start.elapsed());
            }
        }
    }

    let mut concurrent: Vec<(Samples, Duration, usize)> = vec![(Samples::default(), Duration::ZERO, 0); ROWS.len()];
    for _ in 0..CONCURRENT_ROUNDS {
        for i in CONCURRENT_ROWS {
            let ops = if ROWS[i].0 == Row::Near {
                NEAR_OPS_PER_TASK
            } else {
                OPS_PER_TASK
            };
            let (samples, elapsed) = concurrently(&rows, ROWS[i].0, ops).await;
            concurrent[i].0.extend(samples);
            concurrent[i].1 += elapsed;
            concurrent[i].2 += TASKS * ops;
        }
    }

    // What each cache served while measured: every near-row call a near hit but those
    // past the max age, and no Redis errors.
    let (plain, near) = (rows.plain.cache.stats(), rows.near.cache.stats());
    assert_eq!(
        plain.errors + near.errors,
        0,
        "the caches met Redis errors: the figures are off"
    );
    assert_eq!(
        plain.near_hits, 0,
        "the cache without a near cache has near hits: {plain:?}"
    );
    let near_calls = ROUNDS * OPS_PER_ROUND + CONCURRENT_ROUNDS * TASKS * NEAR_OPS_PER_TASK;
    let near_hits = near.near_hits - before.1.near_hits;
    let redis_hits = near.hits - before.1.hits;
    let no_near_calls = (ROUNDS * OPS_PER_ROUND) as u64;
    assert_eq!(
        redis_hits + near_hits,
        near_calls as u64 + no_near_calls,
        "every call on the near cache a hit: {near:?}"
    );

    let mut one = Table::new(
        "Near cache: hit path, 1 task (warm key, ~200-byte value)",
        &["", "median", "p99", "median vs raw"],
    );
    let base = single[0].quantile(0.5).as_secs_f64();
    for (i, (_, name)) in ROWS.iter().enumerate() {
        let (p50, p99) = (single[i].quantile(0.5), single[i].quantile(0.99));
        one.row(vec![
            (*name).to_owned(),
            nanos(p50),
            nanos(p99),
            ratio(p50.as_secs_f64(), base),
        ]);
    }

    let mut many = Table::new(
        "Near cache: hit path, 64 concurrent tasks on one connection or cache",
        &["", "hits/s", "vs raw", "median", "p99"],
    );
    let throughput = |(_, elapsed, ops): &(Samples, Duration, usize)| *ops as f64 / elapsed.as_secs_f64();
    let base = throughput(&concurrent[0]);
    for i in CONCURRENT_ROWS {
        let t = throughput(&concurrent[i]);
        let samples = &mut concurrent[i].0;
        let (p50, p99) = (samples.quantile(0.5), samples.quantile(0.99));
        many.row(vec![
            ROWS[i].1.to_owned(),
            format!("{t:.0}"),
            ratio(t, base),
            nanos(p50),
            nanos(p99),
        ]);
    }
    println!(
        "near cache: {near_hits} near hits, {} Redis hits of near-enabled calls ({} past the max age)",
        redis_hits - no_near_calls,
        near_calls as u64 - near_hits
    );

    vec![one, many, propagation(server).await]
}

/// 64 tasks, each reading the warm key `ops` times; their latencies and the wall time of
/// the whole round.
async fn concurrently(rows: &Arc<Rows>, row: Row, ops: usize) -> (Samples, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let rows = rows.clone();
            tokio::spawn(async move {
                let mut conn = rows.raw.clone();
                let mut samples = Samples::default();
                for _ in 0..ops {
                    let start = Instant::now();
                    std::hint::black_box(rows.get(row, &mut conn).await);
                    samples.push(start.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        all.extend(task.await.expect("bench task"));
    }
    (all, start.elapsed())
}

/// The database behind the propagation rounds: one number.
#[derive(Clone, Default)]
struct Db(Arc<AtomicU64>);

impl Db {
    async fn read(&self, cache: &Cache, key: &str) -> u64 {
        let load = async { Ok::<_, ()>(Some(self.0.load(Ordering::SeqCst))) };
        let value = cache.get_or_load(&VERSIONED, key, load).await;
        value.expect("infallible").expect("a value")
    }
}

/// Two caches on one server stand for processes A and B. Each round B serves a key from
/// its near cache, the database changes, and A invalidates the key; a task polling B
/// (a read, then a yield) records when B stops serving the old value.
async fn propagation(server: &Server) -> Table {
    let (a, b) = (near_cache(server).await, Arc::new(near_cache(server).await));
    let db = Db::default();
    let [mut invalidate, mut gone, mut gone_since_call, mut fresh] = [(); 4].map(|()| Samples::default());
    let mut before_return = 0;
    for round in 0..PROPAGATION_ROUNDS {
        let key = format!("propagation:{round}");
        let old = round * 2;
        db.0.store(old, Ordering::SeqCst);
        until_near_hit(&b, &db, &key, old).await;

        let poller = {
            let (b, db, key) = (b.clone(), db.clone(), key.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + PATIENCE;
                loop {
                    let sent = Instant::now();
                    let value = db.read(&b, &key).await;
                    if value != old {
                        return (sent, Instant::now(), value);
                    }
                    assert!(
                        Instant::now() < deadline,
                        "B served the old value of {key} for {PATIENCE:?}"
                    );
                    tokio::task::yield_now().await;
                }
            })
        };
        // The poller is reading near hits before the change.
        let near_hits = b.stats().near_hits;
        while b.stats().near_hits < near_hits + 3 {
            tokio::task::yield_now().await;
        }
        db.0.store(old + 1, Ordering::SeqCst);
        let called = Instant::now();
        a.invalidate(&key).await.expect("invalidate");
        let returned = Instant::now();
        let (sent, answered, value) = poller.await.expect("the poller");
        assert_eq!(value, old + 1, "B served a value it never had: {key}");
        assert_eq!(
            db.read(&b, &key).await,
            old + 1,
            "B went back to the old value of {key}"
        );
        invalidate.push(returned - called);
        if sent < returned {
            before_return += 1;
        }
        gone.push(sent.saturating_duration_since(returned));
        gone_since_call.push(sent.saturating_duration_since(called));
        fresh.push(answered.saturating_duration_since(returned));
    }
    let stats = (a.stats(), b.stats());
    assert_eq!(
        stats.0.errors + stats.1.errors,
        0,
        "the caches met Redis errors: {stats:?}"
    );
    println!(
        "propagation: in {before_return} of {PROPAGATION_ROUNDS} rounds B stopped serving the old value \
         before A's `invalidate` returned (counted as 0)"
    );

    let mut table = Table::new(
        "Near cache: invalidation reaching another process, 1000 rounds",
        &["", "median", "p99", "max"],
    );
    let mut row = |name: &str, samples: &mut Samples| {
        table.row(vec![
            name.to_owned(),
            micros(samples.quantile(0.5)),
            micros(samples.quantile(0.99)),
            micros(samples.quantile(1.0)),
        ]);
    };
    row("A's `invalidate` call", &mut invalidate);
    row(
        "from its return to B's first read not served the old value (0 if before)",
        &mut gone,
    );
    row(
        "from its start to B's first read not served the old value",
        &mut gone_since_call,
    );
    row(
        "from its return to B answering the new value (a miss and a load)",
        &mut fresh,
    );
    table
}

/// Reads `key` on `cache` until it is a near hit of `value`.
async fn until_near_hit(cache: &Cache, db: &Db, key: &str, value: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let before = cache.stats().near_hits;
        assert_eq!(db.read(cache, key).await, value, "{key}");
        if cache.stats().near_hits > before {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never became a near hit");
    }
}
