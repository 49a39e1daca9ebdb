//! Scenario 2: a stampede. A cold key, a loader that takes 200 ms and counts its calls in
//! Redis (`INCR`, so counts from several processes add up), 4 OS processes (copies of
//! this binary) x 250 concurrent tasks, all starting at the same instant; on one server,
//! and with `lock` on a Redis Cluster, where a fill's announcement (a classic `PUBLISH`)
//! reaches the waiters through the cluster bus; and on one server with a near cache.
//! Its chart: the distribution of every caller's latency beyond the load, per row.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis_cached::{Cache, redis_cached};

use crate::cluster::Cluster;
use crate::model::{Product, product};
use crate::plot::{Cdf, Chart};
use crate::report::{Samples, Table, millis};
use crate::seed;
use crate::server::Server;

const PROCESSES: usize = 4;
const TASKS: usize = 250;
const RUNS: u64 = 3;
const LOAD: Duration = Duration::from_millis(200);
/// Time for the children to start and connect before the common start instant.
const START_DELAY: Duration = Duration::from_millis(1_500);

const ROWS: [(&str, &str); 7] = [
    ("none", "no cache: every call loads (the reference)"),
    ("lock", "`#[redis_cached(lock)]`"),
    ("lock-near", "`#[redis_cached(lock)]`, `near_cache(10_000)`"),
    ("nolock", "`#[redis_cached]` without `lock`"),
    ("nolock-near", "`#[redis_cached]` without `lock`, `near_cache(10_000)`"),
    (
        "seed",
        "hand-written getOrSetLocked (lock, 50 ms sleep, one retry, load)",
    ),
    ("cluster-lock", "`#[redis_cached(lock)]` on a Redis Cluster (3+3)"),
];

pub(crate) fn run(server: &Server) -> (Table, Chart) {
    let cluster = Cluster::start();
    let seeds = cluster.seeds();
    let mut cluster_conn = ClusterClient::new(seeds.clone())
        .and_then(|client| client.get_connection())
        .expect("connect to the cluster");
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut table = Table::new(
        "Stampede: 4 processes x 250 tasks on one cold key, 200 ms load",
        &[
            "",
            "loader calls per run",
            "caller latency beyond the load, median",
            "p99",
        ],
    );
    let mut conn = server.conn();
    let mut curves = Vec::new();
    for (i, (row, name)) in (0u64..).zip(ROWS) {
        // The children take the seeds where they take the URL, joined by commas.
        let target = if row.starts_with("cluster") {
            seeds.join(",")
        } else {
            server.url()
        };
        let mut calls = Vec::new();
        let mut beyond = Samples::default();
        for run in 0..RUNS {
            // A cold key of its own: the rows with and without the near cache share a fn.
            let id = i * RUNS + run + 1;
            let counter = format!("stampede-loads:{row}:{id}");
            let start_at = SystemTime::now() + START_DELAY;
            let start_ms = start_at.duration_since(UNIX_EPOCH).expect("clock").as_millis();
            let children: Vec<_> = (0..PROCESSES)
                .map(|_| {
                    Command::new(&exe)
                        .args(["--stampede-child", row, &target, &id.to_string(), &start_ms.to_string()])
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("spawn a stampede process")
                })
                .collect();
            for child in children {
                let output = child.wait_with_output().expect("a stampede process");
                assert!(output.status.success(), "a stampede process failed");
                for line in String::from_utf8_lossy(&output.stdout).lines() {
                    let micros: u64 = line.trim().parse().expect("a latency in microseconds");
                    beyond.push(Duration::from_micros(micros).saturating_sub(LOAD));
                }
            }
            let loads: u64 = if row.starts_with("cluster") {
                redis::Commands::get(&mut cluster_conn, &counter).unwrap_or(0)
            } else {
                redis::Commands::get(&mut conn, &counter).unwrap_or(0)
            };
            calls.push(loads.to_string());
        }
        assert_eq!(beyond.len(), PROCESSES * TASKS * RUNS as usize, "every call answered");
        table.row(vec![
            name.to_owned(),
            calls.join(", "),
            millis(beyond.quantile(0.5)),
            millis(beyond.quantile(0.99)),
        ]);
        curves.push((name.replace('`', ""), beyond.durations()));
    }
    let chart = Chart::Cdf(Cdf {
        name: "stampede",
        title: "Stampede: 4 processes x 250 tasks on one cold key, 200 ms load, 3 runs".to_owned(),
        x_label: "caller latency beyond the 200 ms load (ms, log scale)".to_owned(),
        // Callers that came while the load ran wait less than it: zero beyond it.
        left_edge: Duration::from_micros(100),
        curves,
    });
    (table, chart)
}

struct Loader {
    cache: Cache,
    counter: Counter,
    counter_key: String,
}

/// Where the loader counts its calls: the server or the cluster under test.
enum Counter {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Loader {
    async fn load(&self, id: u64) -> Product {
        let _: redis::RedisResult<u64> = match &self.counter {
            Counter::Single(conn) => conn.clone().incr(&self.counter_key, 1).await,
            Counter::Cluster(conn) => conn.clone().incr(&self.counter_key, 1).await,
        };
        tokio::time::sleep(LOAD).await;
        product(id)
    }

    #[redis_cached(key = "stampede-lock:<id>", ttl = 600, lock, cache = self.cache)]
    async fn locked(&self, id: u64) -> Product {
        self.load(id).await
    }

    #[redis_cached(key = "stampede-nolock:<id>", ttl = 600, cache = self.cache)]
    async fn unlocked(&self, id: u64) -> Product {
        self.load(id).await
    }

    async fn seed(&self, id: u64) -> Product {
        let Counter::Single(conn) = &self.counter else {
            panic!("the hand-written lock runs on one server")
        };
        let mut conn = conn.clone();
        seed::get_or_set_locked(&mut conn, &format!("stampede-seed:{id}"), 600, self.load(id)).await
    }
}

/// One stampede process: waits for the common instant, fires 250 calls, prints their
/// latencies in microseconds, one per line. `URL` is a cluster's seeds when it holds
/// commas.
pub(crate) async fn child(args: &[String]) {
    let [row, url, id, start_ms] = args else {
        panic!("usage: --stampede-child ROW URL ID START_MS")
    };
    let id: u64 = id.parse().expect("id");
    let start_ms: u64 = start_ms.parse().expect("start instant");
    let (builder, counter) = if url.contains(',') {
        let seeds: Vec<&str> = url.split(',').collect();
        let client = ClusterClient::new(seeds.clone()).expect("seeds");
        let conn = client.get_async_connection().await.expect("connect to the cluster");
        (Cache::builder().cluster(seeds), Counter::Cluster(conn))
    } else {
        let client = redis::Client::open(url.as_str()).expect("url");
        let conn = client.get_multiplexed_async_connection().await.expect("connect");
        (Cache::builder().url(url.as_str()), Counter::Single(conn))
    };
    let builder = if row.ends_with("-near") {
        builder.near_cache(10_000)
    } else {
        builder
    };
    let loader = std::sync::Arc::new(Loader {
        cache: builder.prefix("bench:").build().await.expect("cache"),
        counter,
        counter_key: format!("stampede-loads:{row}:{id}"),
    });
    let start = UNIX_EPOCH + Duration::from_millis(start_ms);
    if let Ok(wait) = start.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let row = row.clone();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let loader = loader.clone();
            let row = row.clone();
            tokio::spawn(async move {
                let begun = std::time::Instant::now();
                let value = match row.as_str() {
                    "none" => loader.load(id).await,
                    "lock" | "lock-near" | "cluster-lock" => loader.locked(id).await,
                    "nolock" | "nolock-near" => loader.unlocked(id).await,
                    _ => loader.seed(id).await,
                };
                assert_eq!(value.id, id);
                begun.elapsed()
            })
        })
        .collect();
    let mut out = String::new();
    for task in tasks {
        let latency = task.await.expect("a stampede task");
        out.push_str(&format!("{}\n", latency.as_micros()));
    }
    print!("{out}");
}
