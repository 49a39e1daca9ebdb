//! One schedule, drawn from a seed: the processes, the cached functions (each with its
//! own policy, keys and tag), and what happens when: calls, writes with their
//! invalidations, deaths, outages, lost subscriptions; and how stormy the store is.

use std::time::Duration;

use super::rng::Rng;
use crate::Policy;

const NAMES: [&str; 3] = ["f0", "f1", "f2"];

#[derive(Debug)]
pub(super) struct Plan {
    pub(super) processes: usize,
    pub(super) funcs: Vec<Func>,
    /// In order of time.
    pub(super) actions: Vec<(Duration, Action)>,
    pub(super) storm: Storm,
}

/// A cached function: its policy, its keys (as rendered) and its tag, if any.
#[derive(Debug)]
pub(super) struct Func {
    pub(super) policy: Policy,
    pub(super) keys: Vec<String>,
    pub(super) tags: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// A call of `func` on its `key`-th key, whose loader takes `load` and fails or not;
    /// its caller gives up after `dropped_after`, if given.
    Call {
        process: usize,
        func: usize,
        key: usize,
        load: Duration,
        fails: bool,
        dropped_after: Option<Duration>,
    },
    /// A write of a row (`present`: it exists afterwards), then its invalidation: the
    /// key's, or (`tag`) its function's tag's.
    Write {
        process: usize,
        func: usize,
        key: usize,
        tag: bool,
        present: bool,
    },
    /// The process dies: its calls are dropped, nothing it sends arrives.
    Kill { process: usize },
    /// The process's breaker opens for this long.
    Outage { process: usize, lasts: Duration },
    /// The process has no subscription for this long.
    Deafen { process: usize, lasts: Duration },
}

/// How often the store misbehaves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Storm {
    /// The share of requests with a fault.
    pub(super) faults: f64,
    /// The share of announcements that reach a process at once.
    pub(super) on_time: f64,
    /// The share of requests that take a millisecond or two each way.
    pub(super) latency: f64,
}

impl Plan {
    pub(super) fn draw(seed: u64) -> Plan {
        let mut rng = Rng::new(seed, 1);
        let processes = 2 + rng.below(2) as usize;
        let funcs: Vec<Func> = (0..1 + rng.below(3) as usize).map(|i| func(&mut rng, i)).collect();
        let bursts: Vec<u64> = (0..2 + rng.below(4)).map(|_| 10 * rng.below(300)).collect();
        let mut actions = Vec::new();
        for _ in 0..12 + rng.below(25) {
            let at = near(&mut rng, &bursts, 60);
            actions.push((at, call(&mut rng, processes, &funcs)));
        }
        let calls = actions.len();
        for _ in 0..1 + rng.below(6) {
            let write = write(&mut rng, processes, &funcs);
            // Half the writes land on a call of their key, right as its requests fly.
            let raced = actions[..calls]
                .iter()
                .filter(|(_, call)| same_row(call, &write))
                .map(|(at, _)| *at);
            let raced: Vec<Duration> = raced.collect();
            let at = match raced.is_empty() || rng.chance(0.5) {
                true => near(&mut rng, &bursts, 60),
                false => rng.pick(&raced) + rng.ms(0, 3),
            };
            actions.push((at, write));
        }
        chaos(&mut rng, processes, &mut actions);
        actions.sort_by_key(|(at, _)| *at);
        let storm = Storm {
            faults: rng.pick(&[0.0, 0.03, 0.08, 0.15]),
            on_time: rng.pick(&[1.0, 0.8, 0.5]),
            latency: rng.pick(&[0.0, 0.5, 1.0]),
        };
        Plan {
            processes,
            funcs,
            actions,
            storm,
        }
    }
}

fn func(rng: &mut Rng, i: usize) -> Func {
    let mut policy = Policy::new(NAMES[i], rng.ms(300, 3000));
    if rng.chance(0.5) {
        policy = policy.lock(Duration::from_millis(rng.pick(&[150, 400, 1000])));
    }
    if rng.chance(0.4) {
        policy = policy.negative(rng.ms(200, 800));
    }
    if rng.chance(0.4) {
        policy = policy.stale(Duration::from_millis(rng.pick(&[300, 1000, 3000])));
    }
    if rng.chance(0.3) {
        policy = policy.refresh_early(rng.pick(&[0.5, 1.0, 4.0]));
    }
    if rng.chance(0.3) {
        policy = policy.jitter(0);
    }
    let keys = (0..1 + rng.below(2)).map(|j| format!("{}:{j}", NAMES[i])).collect();
    let tags = if rng.chance(0.4) {
        vec![format!("g{i}")]
    } else {
        Vec::new()
    };
    Func { policy, keys, tags }
}

/// A moment close after one of the bursts, on a 5 ms grid (so events meet).
fn near(rng: &mut Rng, bursts: &[u64], spread: u64) -> Duration {
    Duration::from_millis(rng.pick(bursts) + 5 * rng.below(spread / 5 + 1))
}

fn call(rng: &mut Rng, processes: usize, funcs: &[Func]) -> Action {
    let func = rng.below(funcs.len() as u64) as usize;
    Action::Call {
        process: rng.below(processes as u64) as usize,
        func,
        key: rng.below(funcs[func].keys.len() as u64) as usize,
        load: Duration::from_millis(rng.pick(&[0, 5, 20, 50, 120, 300, 700, 1500])),
        fails: rng.chance(0.25),
        dropped_after: rng.chance(0.07).then(|| rng.ms(0, 400)),
    }
}

fn write(rng: &mut Rng, processes: usize, funcs: &[Func]) -> Action {
    let func = rng.below(funcs.len() as u64) as usize;
    Action::Write {
        process: rng.below(processes as u64) as usize,
        func,
        key: rng.below(funcs[func].keys.len() as u64) as usize,
        tag: !funcs[func].tags.is_empty() && rng.chance(0.5),
        present: rng.chance(0.9),
    }
}

/// Whether two actions concern the same row.
fn same_row(a: &Action, b: &Action) -> bool {
    match (a, b) {
        (Action::Call { func, key, .. }, Action::Write { func: f, key: k, .. }) => (func, key) == (f, k),
        _ => false,
    }
}

/// Deaths, outages and lost subscriptions.
fn chaos(rng: &mut Rng, processes: usize, actions: &mut Vec<(Duration, Action)>) {
    let anywhen = |rng: &mut Rng| Duration::from_millis(10 * rng.below(300));
    if rng.chance(0.08) {
        let process = rng.below(processes as u64) as usize;
        actions.push((anywhen(rng), Action::Kill { process }));
    }
    for _ in 0..rng.below(3) {
        let (process, lasts) = (rng.below(processes as u64) as usize, rng.ms(20, 600));
        actions.push((anywhen(rng), Action::Outage { process, lasts }));
    }
    if rng.chance(0.2) {
        let (process, lasts) = (rng.below(processes as u64) as usize, rng.ms(100, 1500));
        actions.push((anywhen(rng), Action::Deafen { process, lasts }));
    }
}
