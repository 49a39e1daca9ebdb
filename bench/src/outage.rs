//! Scenario 3: an outage. Steady load on warm and cold keys while Redis is killed,
//! restarted empty, then frozen (SIGSTOP, a hung server) and woken. The loader answers
//! at once, so a call's latency is what the cache adds over calling the loader. Its
//! chart: calls and hits per second, Redis errors and failed calls per 100 ms, through
//! the phases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_cached::{Cache, Stats, redis_cached};

use crate::model::{Product, product};
use crate::plot::{self, Chart, Line, Mark, Panel, Timeline};
use crate::report::{Samples, Table, micros, millis};
use crate::server::Server;

const TASKS: u64 = 16;
const PHASE: Duration = Duration::from_secs(2);
/// Percentiles of a fault phase leave out its start: the time the cache takes to notice.
const NOTICE: Duration = Duration::from_millis(500);
/// The chart's bucket.
const TICK: Duration = Duration::from_millis(100);

struct Shop {
    cache: Cache,
}

impl Shop {
    #[redis_cached(key = "outage:<id>", ttl = 600, lock, negative, cache = self.cache)]
    async fn product(&self, id: u64) -> Option<Product> {
        Some(product(id))
    }
}

/// One call: when it started (since the run began), how long it took, and whether it
/// returned the right product.
struct Call {
    at: Duration,
    latency: Duration,
    ok: bool,
}

pub(crate) async fn run() -> (Table, Chart) {
    let mut server = Server::start();
    let cache = server.cache().await;
    let shop = Arc::new(Shop { cache });
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let cold = Arc::new(AtomicU64::new(1_000_000));

    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (shop, stop, cold) = (shop.clone(), stop.clone(), cold.clone());
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Nine calls in ten read the task's warm keys, one a key never seen.
                    let id = if n.is_multiple_of(10) {
                        cold.fetch_add(1, Ordering::Relaxed)
                    } else {
                        task * 100 + n % 10
                    };
                    let start = Instant::now();
                    let value = shop.product(id).await;
                    calls.push(Call {
                        at: start - began,
                        latency: start.elapsed(),
                        ok: value.is_some_and(|p| p.id == id),
                    });
                    tokio::task::yield_now().await;
                }
                calls
            })
        })
        .collect();

    // The cache's counters at the end of each `TICK`, for the chart.
    let sampler = {
        let (shop, stop) = (shop.clone(), stop.clone());
        tokio::spawn(async move {
            let mut readings = Vec::new();
            let first = tokio::time::Instant::from_std(began + TICK);
            let mut ticker = tokio::time::interval_at(first, TICK);
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                readings.push(shop.cache.stats());
            }
            readings
        })
    };

    let mut phases: Vec<(&str, Duration, Duration, Option<Duration>)> = Vec::new();
    tokio::time::sleep(PHASE).await;
    let healthy_end = began.elapsed();
    phases.push(("healthy", Duration::ZERO, healthy_end, None));

    server.kill();
    let killed = began.elapsed();
    tokio::time::sleep(PHASE).await;
    server.launch();
    let back = began.elapsed();
    let resumed = until_hits_resume(&shop.cache).await;
    phases.push(("killed (connection refused)", killed, back, Some(resumed)));
    tokio::time::sleep(PHASE).await;
    let stopped = began.elapsed();
    phases.push(("restarted empty, once hits resumed", back + resumed, stopped, None));

    server.signal("-STOP");
    tokio::time::sleep(PHASE).await;
    server.signal("-CONT");
    let woken = began.elapsed();
    let resumed = until_hits_resume(&shop.cache).await;
    phases.push(("hung (SIGSTOP)", stopped, woken, Some(resumed)));
    tokio::time::sleep(PHASE).await;
    let end = began.elapsed();
    phases.push(("woken (SIGCONT), once hits resumed", woken + resumed, end, None));

    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for worker in workers {
        calls.extend(worker.await.expect("an outage worker"));
    }
    let readings = sampler.await.expect("the outage sampler");

    let mut table = Table::new(
        "Outage: 16 tasks of steady load (90% warm keys), Redis killed, restarted, hung, woken",
        &[
            "phase",
            "calls",
            "failed",
            "added latency, median",
            "p99",
            "hits resume after Redis returns",
        ],
    );
    for (name, from, to, resumed) in phases {
        let fault = name.starts_with("killed") || name.starts_with("hung");
        let steady_from = if fault { from + NOTICE } else { from };
        let in_phase: Vec<&Call> = calls.iter().filter(|c| c.at >= from && c.at < to).collect();
        let failed = in_phase.iter().filter(|c| !c.ok).count();
        let mut latency = Samples::default();
        for call in in_phase.iter().filter(|c| c.at >= steady_from) {
            latency.push(call.latency);
        }
        table.row(vec![
            if fault {
                format!("{name}, after the first {} ms", NOTICE.as_millis())
            } else {
                name.to_owned()
            },
            in_phase.len().to_string(),
            failed.to_string(),
            micros(latency.quantile(0.5)),
            micros(latency.quantile(0.99)),
            resumed.map_or_else(|| "-".to_owned(), millis),
        ]);
    }
    let stats = shop.cache.stats();
    println!("\noutage stats: {stats:?}");
    let chart = chart(&calls, &readings, end, [killed, back, stopped, woken]);
    (table, chart)
}

/// Calls and hits per second, Redis errors and failed calls per `TICK`; `moments` are
/// the kill, the restart, the hang and the wake. Once the cache stops calling Redis its
/// calls skip it rather than fail, so after the first errors a fault shows as calls
/// without hits.
fn chart(calls: &[Call], readings: &[Stats], end: Duration, moments: [Duration; 4]) -> Chart {
    let per_second = 1.0 / TICK.as_secs_f64();
    let readings = &readings[..plot::buckets(TICK, end).min(readings.len())];
    let counter = |read: fn(&Stats) -> u64| {
        let values: Vec<u64> = readings.iter().map(read).collect();
        plot::growth(0, &values)
    };
    let line = |label: &str, values: Vec<f64>| Line {
        label: label.to_owned(),
        values,
    };
    let started = plot::per_bucket(calls.iter().map(|c| c.at), TICK, end);
    let failed = plot::per_bucket(calls.iter().filter(|c| !c.ok).map(|c| c.at), TICK, end);
    let hits = counter(|s| s.hits);
    let marks = ["kill", "restart", "hang", "wake"]
        .into_iter()
        .zip(moments)
        .map(|(label, at)| Mark {
            at,
            label: label.to_owned(),
        })
        .collect();
    Chart::Timeline(Timeline {
        name: "outage",
        title: "Outage: 16 tasks of steady load, Redis killed, restarted, hung, woken".to_owned(),
        bucket: TICK,
        panels: vec![
            Panel {
                y_label: "per second".to_owned(),
                lines: vec![
                    line("calls", started.into_iter().map(|n| n * per_second).collect()),
                    line("hits", hits.into_iter().map(|n| n * per_second).collect()),
                ],
            },
            Panel {
                y_label: "per 100 ms".to_owned(),
                lines: vec![
                    line("Redis errors (failed open)", counter(|s| s.errors)),
                    line("calls failed", failed),
                ],
            },
        ],
        marks,
    })
}

/// How long after now the cache's hit counter moves again.
async fn until_hits_resume(cache: &Cache) -> Duration {
    let start = Instant::now();
    let hits = cache.stats().hits;
    while cache.stats().hits == hits && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}
