//! Scenario 5: one hot key across its expiries. 1000 calls a second for 20 s on one key
//! with a 200 ms loader and a 2 s ttl, for plain ttl, `lock`, `refresh = "xfetch"` (two
//! betas) and `stale`. Reports the cache misses callers met, the calls that waited for a load, and
//! the loads; its chart shows calls answered and misses per 100 ms, and the loads so far.

use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached};

use crate::plot::{self, Chart, Line, Panel, Timeline};
use crate::report::{Samples, Table, millis};
use crate::server::Server;

const RATE_PER_SECOND: u64 = 1000;
const RUN: Duration = Duration::from_secs(20);
const LOAD: Duration = Duration::from_millis(200);
/// A call slower than this waited for a load (a hit takes well under a millisecond).
const WAITED: Duration = Duration::from_millis(50);
/// The chart's bucket.
const TICK: Duration = Duration::from_millis(100);

struct Hot {
    cache: Cache,
    /// When each load started.
    loads: Mutex<Vec<Instant>>,
}

impl Hot {
    async fn load(&self, id: u64) -> u64 {
        self.loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
        tokio::time::sleep(LOAD).await;
        id
    }

    #[redis_cached(key = "hot-plain:<id>", ttl = 2, cache = self.cache)]
    async fn plain(&self, id: u64) -> u64 {
        self.load(id).await
    }

    #[redis_cached(key = "hot-lock:<id>", ttl = 2, lock, cache = self.cache)]
    async fn locked(&self, id: u64) -> u64 {
        self.load(id).await
    }

    #[redis_cached(key = "hot-xfetch:<id>", ttl = 2, refresh = "xfetch", cache = self.cache)]
    async fn xfetch(&self, id: u64) -> u64 {
        self.load(id).await
    }

    #[redis_cached(key = "hot-xfetch-low:<id>", ttl = 2, refresh = "xfetch", beta = 0.25, cache = self.cache)]
    async fn xfetch_low(&self, id: u64) -> u64 {
        self.load(id).await
    }

    #[redis_cached(key = "hot-stale:<id>", ttl = 2, stale = "10s", cache = self.cache)]
    async fn stale(&self, id: u64) -> u64 {
        self.load(id).await
    }

    async fn call(&self, row: usize, id: u64) -> u64 {
        match row {
            0 => self.plain(id).await,
            1 => self.locked(id).await,
            2 => self.xfetch(id).await,
            3 => self.xfetch_low(id).await,
            _ => self.stale(id).await,
        }
    }
}

const ROWS: [&str; 5] = [
    "ttl only",
    "`lock`",
    "`refresh = \"xfetch\"` (beta 1)",
    "`refresh = \"xfetch\", beta = 0.25`",
    "`stale = \"10s\"`",
];

pub(crate) async fn run(server: &Server) -> (Table, Chart) {
    let mut table = Table::new(
        "Hot key across expiry: 1000 calls/s for 20 s, 200 ms loader, ttl 2 s",
        &[
            "",
            "cache misses after warm-up",
            "calls that waited for a load",
            "loads",
            "p99 latency",
        ],
    );
    let mut answered = Vec::new();
    let mut missed = Vec::new();
    let mut loaded = Vec::new();
    for (row, name) in ROWS.iter().enumerate() {
        let cache = server.cache().await;
        let hot = Arc::new(Hot {
            cache,
            loads: Mutex::new(Vec::new()),
        });
        hot.call(row, 1).await; // warm-up
        let misses_before = hot.cache.stats().misses;
        let start = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE_PER_SECOND));
        let mut calls = Vec::new();
        // The miss counter at the end of each `TICK`, for the chart.
        let mut misses_by_tick = Vec::new();
        while start.elapsed() < RUN {
            ticker.tick().await;
            if start.elapsed() >= TICK * (misses_by_tick.len() as u32 + 1) {
                misses_by_tick.push(hot.cache.stats().misses);
            }
            let hot = hot.clone();
            calls.push(tokio::spawn(async move {
                let began = Instant::now();
                std::hint::black_box(hot.call(row, 1).await);
                (began - start, began.elapsed())
            }));
        }
        let mut latency = Samples::default();
        let mut waited = 0;
        let mut done = Vec::new();
        for call in calls {
            let (at, took) = call.await.expect("a hot-key call");
            waited += usize::from(took >= WAITED);
            latency.push(took);
            done.push(at + took);
        }
        let stats = hot.cache.stats();
        let loads = std::mem::take(&mut *hot.loads.lock().unwrap_or_else(PoisonError::into_inner));
        table.row(vec![
            (*name).to_owned(),
            (stats.misses - misses_before).to_string(),
            waited.to_string(),
            loads.len().to_string(),
            millis(latency.quantile(0.99)),
        ]);
        let label = name.replace('`', "");
        let per_second = 1.0 / TICK.as_secs_f64();
        answered.push(Line {
            label: label.clone(),
            values: plot::per_bucket(done, TICK, RUN)
                .into_iter()
                .map(|n| n * per_second)
                .collect(),
        });
        missed.push(Line {
            label: label.clone(),
            values: plot::growth(misses_before, &misses_by_tick),
        });
        loaded.push(Line {
            label,
            values: plot::running_total(&plot::per_bucket(
                loads.iter().map(|at| at.saturating_duration_since(start)),
                TICK,
                RUN,
            )),
        });
    }
    let chart = Chart::Timeline(Timeline {
        name: "hotkey",
        title: "Hot key across expiry: 1000 calls/s, 200 ms loader, ttl 2 s".to_owned(),
        bucket: TICK,
        panels: vec![
            Panel {
                y_label: "calls answered/s".to_owned(),
                lines: answered,
            },
            Panel {
                y_label: "cache misses per 100 ms".to_owned(),
                lines: missed,
            },
            Panel {
                // A total: one load per expiry is a step per 2 s, a line per mode.
                y_label: "loads so far".to_owned(),
                lines: loaded,
            },
        ],
        marks: Vec::new(),
    });
    (table, chart)
}
