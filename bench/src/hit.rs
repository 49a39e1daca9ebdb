//! Scenario 1: a warm key, read at 1 task and at 64 concurrent tasks, by each way of
//! caching, on one server and on a Redis Cluster; and the paths that need no Redis
//! (in-memory hit, coalesced wait).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cached::AsyncRedisCache;
use cached::macros::concurrent_cached;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis_cached::{Cache, redis_cached};

use crate::cluster::Cluster;
use crate::model::{Product, product};
use crate::report::{Samples, Table, micros, ratio};
use crate::seed;
use crate::server::Server;

// The near scenario takes these too, so its rows compare with these.
pub(crate) const ID: u64 = 1;
pub(crate) const ROUNDS: usize = 20;
pub(crate) const OPS_PER_ROUND: usize = 250;
pub(crate) const TASKS: usize = 64;
pub(crate) const CONCURRENT_ROUNDS: usize = 12;
pub(crate) const OPS_PER_TASK: usize = 150;

/// The `#[redis_cached]` rows.
pub(crate) struct Catalog {
    cache: Cache,
}

impl Catalog {
    #[redis_cached(key = "product:<id>", ttl = 3600, cache = self.cache)]
    async fn product(&self, id: u64) -> Product {
        product(id)
    }

    /// With `stale`, a hit also reads the key's `PTTL` (a pipeline, one round trip).
    #[redis_cached(key = "fresh:<id>", ttl = 3600, stale = "1m", cache = self.cache)]
    async fn fresh_product(&self, id: u64) -> Product {
        product(id)
    }

    /// A cold-key load of about `LOAD`, for the coalescing row; records how long it took.
    #[redis_cached(key = "slow:<id>", ttl = 3600, cache = self.cache)]
    async fn slow_product(&self, id: u64) -> Product {
        let start = Instant::now();
        tokio::time::sleep(LOAD).await;
        LAST_LOAD_NANOS.store(
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        product(id)
    }
}

const LOAD: Duration = Duration::from_millis(2);
static LAST_LOAD_NANOS: AtomicU64 = AtomicU64::new(0);

static CACHED_CRATE_URL: OnceLock<String> = OnceLock::new();

#[concurrent_cached(
    map_error = r##"|e| format!("{e:?}")"##,
    ty = "cached::AsyncRedisCache<u64, Product>",
    create = r##" {
        AsyncRedisCache::builder("bench")
            .ttl(std::time::Duration::from_secs(3600))
            .connection_string(CACHED_CRATE_URL.get().map_or("redis://127.0.0.1:6379", |u| u.as_str()))
            .build()
            .await
            .expect("build the cached crate's Redis store")
    } "##
)]
async fn cached_crate_product(id: u64) -> Result<Product, String> {
    Ok(product(id))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    Raw,
    Attribute,
    Stale,
    Seed,
    CachedCrate,
    ClusterRaw,
    ClusterAttribute,
}

const ROWS: [(Row, &str); 7] = [
    (Row::Raw, "raw `GET` + bincode decode (the floor)"),
    (Row::Attribute, "`#[redis_cached]` hit"),
    (Row::Stale, "`#[redis_cached(stale)]` hit (`GET` + `PTTL` pipelined)"),
    (Row::Seed, "hand-written getOrSet (GET + JSON)"),
    (Row::CachedCrate, "`cached` 4.1 `#[concurrent_cached]` Redis"),
    (
        Row::ClusterRaw,
        "cluster (3+3): raw `GET` + bincode decode (the cluster floor)",
    ),
    (Row::ClusterAttribute, "cluster (3+3): `#[redis_cached]` hit"),
];

/// The raw cluster row's key: in the slot of the cached row's (`bench:{product:1}`), so
/// both rows read from the same master.
const CLUSTER_RAW_KEY: &str = "raw:{product:1}";

/// The first cluster row: the cluster rows' ratios are to it.
const FIRST_CLUSTER_ROW: usize = 5;

struct Rows {
    raw: MultiplexedConnection,
    catalog: Catalog,
    cluster_raw: ClusterConnection,
    cluster_catalog: Catalog,
}

/// A task's own clones of the raw connections.
struct Conns {
    single: MultiplexedConnection,
    cluster: ClusterConnection,
}

impl Rows {
    fn conns(&self) -> Conns {
        Conns {
            single: self.raw.clone(),
            cluster: self.cluster_raw.clone(),
        }
    }

    async fn get(&self, row: Row, conns: &mut Conns) -> Product {
        match row {
            Row::Raw => decode(conns.single.get::<_, Vec<u8>>("raw:1").await.expect("raw GET")),
            Row::Attribute => self.catalog.product(ID).await,
            Row::Stale => self.catalog.fresh_product(ID).await,
            Row::Seed => seed::get_or_set(&mut conns.single, "seed:1", 3600, async { product(ID) }).await,
            Row::CachedCrate => cached_crate_product(ID).await.expect("cached crate"),
            Row::ClusterRaw => decode(
                conns
                    .cluster
                    .get::<_, Vec<u8>>(CLUSTER_RAW_KEY)
                    .await
                    .expect("raw cluster GET"),
            ),
            Row::ClusterAttribute => self.cluster_catalog.product(ID).await,
        }
    }
}

pub(crate) fn decode(bytes: Vec<u8>) -> Product {
    let bytes = bytes.as_slice();
    let config = bincode::config::standard().with_limit::<{ 32 * 1024 * 1024 }>();
    bincode::serde::decode_from_slice(bytes, config).expect("decode").0
}

/// A cluster connection with the explicit timeouts the cache gives its own (see
/// `cluster_client` in the runtime), at the cache's default deadlines.
async fn cluster_connection(seeds: Vec<String>) -> ClusterConnection {
    let (op_timeout, connect_timeout) = (Duration::from_millis(50), Duration::from_millis(500));
    ClusterClientBuilder::new(seeds)
        .connection_timeout(connect_timeout / 2)
        .response_timeout(op_timeout)
        .overall_response_timeout(Some(op_timeout))
        .retries(3)
        .min_retry_wait(1)
        .max_retry_wait(5)
        .build()
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("connect to the cluster")
}

pub(crate) async fn run(server: &Server) -> Vec<Table> {
    let cluster = tokio::task::block_in_place(Cluster::start);
    let client = redis::Client::open(server.url()).expect("url");
    let mut raw = client.get_multiplexed_async_connection().await.expect("connect");
    let mut cluster_raw = cluster_connection(cluster.seeds()).await;
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(product(ID), config).expect("encode");
    let _: () = raw.set("raw:1", &bytes).await.expect("SET raw");
    let _: () = cluster_raw
        .set(CLUSTER_RAW_KEY, &bytes)
        .await
        .expect("SET raw on the cluster");
    let cache = server.cache().await;
    let cluster_cache = Cache::builder()
        .cluster(cluster.seeds())
        .prefix("bench:")
        .build()
        .await
        .expect("cluster cache");
    let _ = CACHED_CRATE_URL.set(server.url());
    let rows = Arc::new(Rows {
        raw,
        catalog: Catalog { cache },
        cluster_raw,
        cluster_catalog: Catalog { cache: cluster_cache },
    });

    // Warm every row, and check each one reads the same product.
    let mut conn = rows.conns();
    for (row, name) in ROWS {
        assert_eq!(rows.get(row, &mut conn).await, product(ID), "{name}");
        assert_eq!(rows.get(row, &mut conn).await, product(ID), "{name}");
    }

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
        for (i, (row, _)) in ROWS.iter().enumerate() {
            let (samples, elapsed) = concurrently(&rows, *row).await;
            concurrent[i].0.extend(samples);
            concurrent[i].1 += elapsed;
            concurrent[i].2 += TASKS * OPS_PER_TASK;
        }
    }
    for catalog in [&rows.catalog, &rows.cluster_catalog] {
        assert!(
            catalog.cache.stats().errors == 0,
            "the cache met Redis errors: the figures are off"
        );
    }

    let mut one = Table::new(
        "Hit path, 1 task (warm key, ~200-byte value)",
        &["", "median", "p99", "median vs raw"],
    );
    let bases = [
        single[0].quantile(0.5).as_secs_f64(),
        single[FIRST_CLUSTER_ROW].quantile(0.5).as_secs_f64(),
    ];
    for (i, (_, name)) in ROWS.iter().enumerate() {
        let base = bases[usize::from(i >= FIRST_CLUSTER_ROW)];
        let (p50, p99) = (single[i].quantile(0.5), single[i].quantile(0.99));
        one.row(vec![
            (*name).to_owned(),
            micros(p50),
            micros(p99),
            ratio(p50.as_secs_f64(), base),
        ]);
    }

    let mut many = Table::new(
        "Hit path, 64 concurrent tasks on one connection or cache",
        &["", "hits/s", "vs raw", "median", "p99"],
    );
    let throughput = |(_, elapsed, ops): &(Samples, Duration, usize)| *ops as f64 / elapsed.as_secs_f64();
    let bases = [throughput(&concurrent[0]), throughput(&concurrent[FIRST_CLUSTER_ROW])];
    for (i, (_, name)) in ROWS.iter().enumerate() {
        let base = bases[usize::from(i >= FIRST_CLUSTER_ROW)];
        let t = throughput(&concurrent[i]);
        let samples = &mut concurrent[i].0;
        let (p50, p99) = (samples.quantile(0.5), samples.quantile(0.99));
        many.row(vec![
            (*name).to_owned(),
            format!("{t:.0}"),
            ratio(t, base),
            micros(p50),
            micros(p99),
        ]);
    }

    vec![one, many, without_redis().await]
}

/// 64 tasks, each reading the warm key `OPS_PER_TASK` times; their latencies and the
/// wall time of the whole round.
async fn concurrently(rows: &Arc<Rows>, row: Row) -> (Samples, Duration) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let rows = rows.clone();
            tokio::spawn(async move {
                let mut conn = rows.conns();
                let mut samples = Samples::default();
                for _ in 0..OPS_PER_TASK {
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

/// The in-memory store's hit, and what a caller pays to share another caller's load.
async fn without_redis() -> Table {
    let catalog = Arc::new(Catalog {
        cache: Cache::in_memory(),
    });
    catalog.product(ID).await;
    let mut hits = Samples::default();
    for _ in 0..ROUNDS * OPS_PER_ROUND {
        let start = Instant::now();
        std::hint::black_box(catalog.product(ID).await);
        hits.push(start.elapsed());
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                for _ in 0..OPS_PER_TASK * 10 {
                    std::hint::black_box(catalog.product(ID).await);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("bench task");
    }
    let in_memory_rate = (TASKS * OPS_PER_TASK * 10) as f64 / start.elapsed().as_secs_f64();

    // 64 callers miss the same cold key at once: one loads (LOAD), 63 wait for it.
    let mut waits = Samples::default();
    for id in 0..50u64 {
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let catalog = catalog.clone();
                tokio::spawn(async move {
                    let start = Instant::now();
                    std::hint::black_box(catalog.slow_product(1_000 + id).await);
                    start.elapsed()
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(TASKS);
        for task in tasks {
            latencies.push(task.await.expect("bench task"));
        }
        let load = Duration::from_nanos(LAST_LOAD_NANOS.load(Ordering::SeqCst));
        for latency in latencies {
            waits.push(latency.saturating_sub(load));
        }
    }
    let stats = catalog.cache.stats();
    assert_eq!(stats.loads, 51, "one load per cold key (and the warm-up): {stats:?}");

    let mut table = Table::new("No Redis", &["", "median", "p99", "throughput (64 tasks)"]);
    table.row(vec![
        "`Cache::in_memory()` hit".to_owned(),
        micros(hits.quantile(0.5)),
        micros(hits.quantile(0.99)),
        format!("{in_memory_rate:.0} hits/s"),
    ]);
    table.row(vec![
        format!(
            "coalesced miss: 64 callers, one ~{} ms load, time beyond the load",
            LOAD.as_millis()
        ),
        micros(waits.quantile(0.5)),
        micros(waits.quantile(0.99)),
        "-".to_owned(),
    ]);
    table
}
