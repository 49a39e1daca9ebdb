//! A product catalog over HTTP: axum in front of SQL (SQLite, or Postgres), its reads
//! cached in Redis with `#[redis_cached]` and its write evicting them with
//! `#[redis_invalidate]`. Shows a product cached with a stampede lock and "not found"
//! cached too, a category listing invalidated through a tag, a write that reaches every
//! instance, the cache's stats and metrics, and the service answering while Redis is down.
//!
//! ```text
//! cargo run -p catalog                                    # SQLite ./catalog.db, Redis on 127.0.0.1:6379
//! curl localhost:3000/products/42
//! CATALOG_CACHE=near cargo run -p catalog                 # with a near cache; `off`: no cache at all
//! DATABASE_URL=postgres://127.0.0.1/test REDIS_URL=redis://127.0.0.1:6380 cargo run -p catalog
//! ```
//!
//! `examples/catalog/README.md` has every setting, the routes, and load measurements.

mod cached;
mod config;
mod db;
mod routes;

use std::io::IsTerminal;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use redis_cached::Cache;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{CacheMode, Config};
use crate::db::Db;
use crate::routes::App;

/// Histogram buckets in seconds, 100 µs to 2.5 s: Redis round trips and queries.
const BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr; `RUST_LOG` takes `info` or `info,redis_cached_runtime=debug` forms.
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| "info".parse().expect("a valid filter"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .finish()
        .with(filter)
        .init();

    let config = Config::from_env()?;
    // The application owns the recorder; the cache only emits through `metrics`.
    // Buckets for the histograms (all in seconds), so `histogram_quantile` works on them.
    let metrics = PrometheusBuilder::new().set_buckets(&BUCKETS)?.install_recorder()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    let db = Db::connect(&config.database_url).await?;
    let cache = match config.mode {
        CacheMode::Off => None,
        CacheMode::Redis | CacheMode::Near => {
            let mut builder = Cache::builder().url(&config.redis_url).prefix("catalog:");
            if config.mode == CacheMode::Near {
                builder = builder.near_cache(10_000);
            }
            // Fails only on a bad URL, never because Redis is down.
            let cache = builder.build().await?;
            redis_cached::install(cache.clone());
            Some(cache)
        }
    };

    let app = routes::router(App {
        db,
        cache,
        mode: config.mode,
        metrics,
    });
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    println!(
        "catalog listening on http://{} (cache: {})",
        listener.local_addr()?,
        config.mode
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
