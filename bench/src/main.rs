//! The redis-cached benchmark: starts its own `redis-server` and Redis Clusters (three
//! masters, three replicas) on loopback and prints one table per scenario, every row
//! measured in the same run so ratios hold on a noisy machine.
//!
//! ```text
//! cargo run --release -p redis-cached-bench                 # every scenario
//! cargo run --release -p redis-cached-bench -- hit stampede # some: hit, near, tracking, stampede, outage, hotkey, size, failover
//! cargo run --release -p redis-cached-bench -- --no-plots   # the tables only
//! cargo run --release -p redis-cached-bench --features metrics -- hit near # with the `metrics` feature
//! ```
//!
//! `hit` and `stampede` have rows on one server and on a cluster; `failover` kills, then
//! hangs, a cluster master under load; `near` measures the near cache (`near_cache`), `tracking` what client tracking costs Redis.
//!
//! `hotkey`, `stampede` and `outage` also write a chart of their run to
//! `docs/plots/<section>.svg`, replacing it, unless `--no-plots` is given.

mod cluster;
mod failover;
mod hit;
mod hotkey;
mod model;
mod near;
mod outage;
mod plot;
mod report;
mod seed;
mod server;
mod size;
mod stampede;
mod tracking;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--stampede-child") {
        stampede::child(&args[1..]).await;
        return;
    }
    let plots = !args.iter().any(|a| a == "--no-plots");
    let sections: Vec<&String> = args.iter().filter(|a| *a != "--no-plots").collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|a| *a == name);
    let draw = |chart: plot::Chart| {
        if plots {
            match chart.write() {
                Ok(path) => println!("\nchart: {}", path.display()),
                Err(error) => eprintln!("\nno chart: {error}"),
            }
        }
    };
    let server = server::Server::start();
    println!(
        "redis-cached bench: redis-server on 127.0.0.1:{}; the `metrics` feature is {} (no recorder installed)",
        server.port,
        if cfg!(feature = "metrics") { "on" } else { "off" },
    );
    if wanted("hit") {
        for table in hit::run(&server).await {
            table.print();
        }
    }
    if wanted("near") {
        for table in near::run(&server).await {
            table.print();
        }
    }
    if wanted("tracking") {
        tracking::run(&server).await.print();
    }
    if wanted("stampede") {
        let (table, chart) = tokio::task::block_in_place(|| stampede::run(&server));
        table.print();
        draw(chart);
    }
    if wanted("outage") {
        let (table, chart) = outage::run().await;
        table.print();
        draw(chart);
    }
    if wanted("hotkey") {
        let (table, chart) = hotkey::run(&server).await;
        table.print();
        draw(chart);
    }
    if wanted("size") {
        size::run(&server).await.print();
    }
    if wanted("failover") {
        for table in failover::run().await {
            table.print();
        }
    }
}
