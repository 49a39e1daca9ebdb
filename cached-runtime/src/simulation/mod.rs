//! A deterministic simulation of the protocol. Several processes (each a cache's
//! context and listener over its own handle on one scripted store) run callers of a few
//! functions with drawn policies (`lock`, `negative`, `stale`, `refresh`, tags), writers
//! that update a versioned row and then invalidate its key or tag as `Cache` does,
//! refreshes, loaders slower than their lease, callers that give up, processes that
//! die, breakers that open, and a store that fails requests and delays, loses or
//! reorders announcements. One seed is one schedule: every choice is drawn from it, on
//! one thread and a paused clock, so a failing seed replays exactly. Each run's trace is
//! then checked against what the guide promises (`check`).
//!
//! `SIM_SEED=<seed>` plays one seed and prints its trace; `SIM_SEEDS=<n>` plays `n`
//! seeds from `SIM_FROM` (0).

mod chaos;
mod check;
mod plan;
mod record;
mod report;
mod rng;
mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};

use check::Tally;

/// Schedules played by default.
const SEEDS: u64 = 10_000;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Plays `seed` and checks it; the failure report if it broke a promise or panicked.
fn play(seed: u64) -> Result<Tally, String> {
    let played = catch_unwind(AssertUnwindSafe(|| world::run(seed)));
    let Ok((plan, trace)) = played else {
        return Err(format!(
            "seed {seed} panicked (see above)\nreplay: SIM_SEED={seed} cargo test -p redis-cached-runtime simulation -- --nocapture"
        ));
    };
    let (violations, tally) = check::check(&plan, &trace);
    match violations.is_empty() {
        true => Ok(tally),
        false => Err(report::failure(seed, &plan, &trace, &violations)),
    }
}

/// Plays `count` seeds from `from` on every core; the lowest failing seed's report.
fn sweep(from: u64, count: u64) -> Result<Tally, (u64, String)> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    let results: Vec<Result<Tally, (u64, String)>> = std::thread::scope(|scope| {
        let spawned: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for seed in (from + worker as u64..from + count).step_by(workers) {
                        tally.add(play(seed).map_err(|report| (seed, report))?);
                    }
                    Ok(tally)
                })
            })
            .collect();
        spawned
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err((u64::MAX, "a worker panicked".to_owned())))
            })
            .collect()
    });
    let mut tally = Tally::default();
    let mut failed: Option<(u64, String)> = None;
    for result in results {
        match result {
            Ok(found) => tally.add(found),
            Err(failure) if failed.as_ref().is_none_or(|(seed, _)| failure.0 < *seed) => failed = Some(failure),
            Err(_) => {}
        }
    }
    failed.map_or(Ok(tally), Err)
}

#[test]
fn simulated_schedules_keep_every_promise() {
    if let Some(seed) = env("SIM_SEED") {
        let (plan, trace) = world::run(seed);
        for line in &trace {
            eprintln!("{line}");
        }
        let (violations, tally) = check::check(&plan, &trace);
        eprintln!("{tally:?}");
        assert!(
            violations.is_empty(),
            "{}",
            report::failure(seed, &plan, &trace, &violations)
        );
        return;
    }
    let (from, count) = (env("SIM_FROM").unwrap_or(0), env("SIM_SEEDS").unwrap_or(SEEDS));
    match sweep(from, count) {
        Ok(tally) => eprintln!("{count} schedules kept every promise; windows and fail-open cases met: {tally:?}"),
        Err((_, report)) => panic!("{report}"),
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [0, 1, 7, 42, 1234] {
        let (_, first) = world::run(seed);
        let (_, again) = world::run(seed);
        assert!(first == again, "seed {seed} played two different schedules");
    }
}
