//! Scenario 6: a failover. Steady load on 100 warm keys spread over the three masters
//! of a fresh Redis Cluster, while one master is killed (SIGKILL), then, on another
//! fresh cluster, hung (SIGSTOP); a timeline per 100 ms of what callers saw, with the
//! moment of the fault, of the cluster's state turning `fail` and back, and of the
//! replica's promotion (the bench polls the cluster).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_cached::{Cache, redis_cached};

use crate::cluster::Cluster;
use crate::model::{Product, product};
use crate::report::{Table, millis};

const TASKS: u64 = 4;
const KEYS: u64 = 100;
const TICK: Duration = Duration::from_millis(100);
/// How often the bench asks the cluster whether a replica was promoted.
const POLL: Duration = Duration::from_millis(10);
/// Steady load before the fault.
const BEFORE: Duration = Duration::from_secs(1);
/// Load kept on once hits on the failed master's keys resumed since the promotion.
const AFTER: Duration = Duration::from_secs(1);
/// The timeline ends this long after the fault even if hits never resume.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Fault {
    Kill,
    Pause,
}

struct Shop {
    cache: Cache,
    /// Loader calls per key; each key is read by one task only, so a call that leaves
    /// its key's count unchanged was a hit.
    loads: Vec<AtomicU64>,
}

impl Shop {
    #[redis_cached(key = "failover:<id>", ttl = 600, cache = self.cache)]
    async fn product(&self, id: u64) -> Result<Product, String> {
        self.loads[usize::try_from(id).expect("a key index")].fetch_add(1, Ordering::Relaxed);
        Ok(product(id))
    }
}

/// One call: when it started (since the run began), whether it was a hit, whether its
/// key is on the failed master, and whether the caller got its product.
struct Call {
    at: Duration,
    hit: bool,
    failed_shard: bool,
    ok: bool,
}

/// Moments of a run, since it began.
struct Moments {
    fault: Duration,
    promoted: Option<Duration>,
    /// When a live node first said `cluster_state:fail`, and `ok` again after that.
    state_fail: Option<Duration>,
    state_ok: Option<Duration>,
    /// The first hit on a key of the failed master, by a call started after the fault.
    resumed: Option<Duration>,
    end: Duration,
}

pub(crate) async fn run() -> Vec<Table> {
    let mut summary = Table::new(
        "Failover: 4 tasks of steady load on 100 warm keys over 3 masters",
        &[
            "fault",
            "calls",
            "errors surfaced to callers",
            "`cluster_state:fail` after the fault",
            "promotion after the fault",
            "hits on its keys resume after the promotion",
        ],
    );
    let mut tables = Vec::new();
    for fault in [Fault::Kill, Fault::Pause] {
        let (calls, moments, timeline) = run_one(fault).await;
        let name = match fault {
            Fault::Kill => "master killed (SIGKILL)",
            Fault::Pause => "master hung (SIGSTOP)",
        };
        let after = |at: Option<Duration>, from: Option<Duration>| match (at, from) {
            (Some(at), Some(from)) if at >= from => millis(at - from),
            (Some(at), Some(from)) => format!("-{}", millis(from - at)),
            _ => "never".to_owned(),
        };
        summary.row(vec![
            name.to_owned(),
            calls.len().to_string(),
            calls.iter().filter(|c| !c.ok).count().to_string(),
            after(moments.state_fail, Some(moments.fault)),
            after(moments.promoted, Some(moments.fault)),
            after(moments.resumed, moments.promoted),
        ]);
        tables.push(timeline);
    }
    tables.push(summary);
    tables
}

async fn run_one(fault: Fault) -> (Vec<Call>, Moments, Table) {
    let mut cluster = tokio::task::block_in_place(Cluster::start);
    let cache = Cache::builder()
        .cluster(cluster.seeds())
        .prefix("bench:")
        .build()
        .await
        .expect("cluster cache");
    let shop = Arc::new(Shop {
        cache,
        loads: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
    });
    for id in 0..KEYS {
        shop.product(id).await.expect("warm");
    }
    // The victim: the master of key 0; every shard must hold some of the keys.
    let owners: Vec<u16> = tokio::task::block_in_place(|| {
        cluster.wait_replicated();
        (0..KEYS)
            .map(|id| cluster.master_of_key(&format!("bench:{{failover:{id}}}")))
            .collect()
    });
    let masters = tokio::task::block_in_place(|| cluster.masters());
    assert!(masters.iter().all(|m| owners.contains(m)), "keys on every master");
    let victim = owners[0];
    let lost = tokio::task::block_in_place(|| cluster.slot_map());
    let on_victim: Arc<Vec<bool>> = Arc::new(owners.iter().map(|&o| o == victim).collect());

    let began = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // Nanoseconds since `began` of the latest hit on the victim's keys.
    let last_victim_hit = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (shop, stop, on_victim, last_victim_hit) =
                (shop.clone(), stop.clone(), on_victim.clone(), last_victim_hit.clone());
            tokio::spawn(async move {
                let mut calls = Vec::new();
                let ids: Vec<u64> = (0..KEYS).filter(|id| id % TASKS == task).collect();
                for &id in ids.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let index = usize::try_from(id).expect("a key index");
                    let loads = shop.loads[index].load(Ordering::Relaxed);
                    let at = began.elapsed();
                    let ok = shop.product(id).await.is_ok_and(|p| p.id == id);
                    let hit = shop.loads[index].load(Ordering::Relaxed) == loads;
                    if hit && on_victim[index] {
                        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
                        last_victim_hit.fetch_max(nanos, Ordering::Relaxed);
                    }
                    calls.push(Call {
                        at,
                        hit,
                        failed_shard: on_victim[index],
                        ok,
                    });
                    tokio::task::yield_now().await;
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(BEFORE).await;
    tokio::task::block_in_place(|| match fault {
        Fault::Kill => cluster.kill(victim),
        Fault::Pause => cluster.pause(victim),
    });
    let fault_at = began.elapsed();
    let (mut promoted, mut resumed) = (None, None);
    let (mut state_fail, mut state_ok) = (None, None);
    let end = loop {
        tokio::time::sleep(POLL).await;
        let now = began.elapsed();
        if promoted.is_none() && tokio::task::block_in_place(|| cluster.promoted(victim, &lost)).is_some() {
            promoted = Some(began.elapsed());
        }
        if state_ok.is_none() {
            let ok = tokio::task::block_in_place(|| cluster.state_ok());
            match (ok, state_fail) {
                (false, None) => state_fail = Some(began.elapsed()),
                (true, Some(_)) => state_ok = Some(began.elapsed()),
                _ => {}
            }
        }
        let last_hit = Duration::from_nanos(last_victim_hit.load(Ordering::Relaxed));
        if resumed.is_none() && promoted.is_some_and(|promoted| last_hit > promoted) {
            resumed = Some(now);
        }
        if resumed.is_some_and(|resumed| now > resumed + AFTER) || now > fault_at + LIMIT {
            break now;
        }
    };
    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for worker in workers {
        calls.extend(worker.await.expect("a failover worker"));
    }
    if let Fault::Pause = fault {
        tokio::task::block_in_place(|| cluster.resume(victim));
    }
    let resumed = calls
        .iter()
        .filter(|c| c.failed_shard && c.hit && c.at >= fault_at)
        .map(|c| c.at)
        .min();
    let moments = Moments {
        fault: fault_at,
        promoted,
        state_fail,
        state_ok,
        resumed,
        end,
    };
    let stats = shop.cache.stats();
    println!("\nfailover stats ({}): {stats:?}", fault.verb());
    let timeline = timeline(fault, &calls, &moments, victim);
    (calls, moments, timeline)
}

impl Fault {
    fn verb(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL",
            Fault::Pause => "SIGSTOP",
        }
    }
}

/// One row per `TICK`: calls/s, errors, hit rate overall and on the failed master's keys,
/// and what happened in it.
fn timeline(fault: Fault, calls: &[Call], moments: &Moments, victim: u16) -> Table {
    let mut table = Table::new(
        &format!(
            "Failover timeline: a master {} under load, per {} ms",
            fault.verb(),
            TICK.as_millis()
        ),
        &[
            "t",
            "calls/s",
            "errors",
            "hit rate",
            "hit rate, keys of that master",
            "",
        ],
    );
    let ticks = moments.end.as_nanos().div_ceil(TICK.as_nanos());
    for tick in 0..u32::try_from(ticks).unwrap_or(u32::MAX) {
        let (from, to) = (TICK * tick, TICK * (tick + 1));
        let within = |at: Option<Duration>| at.is_some_and(|at| from <= at && at < to);
        let in_tick: Vec<&Call> = calls.iter().filter(|c| from <= c.at && c.at < to).collect();
        let on_victim: Vec<&&Call> = in_tick.iter().filter(|c| c.failed_shard).collect();
        let rate = |calls: &[&Call]| {
            let hits = calls.iter().filter(|c| c.hit).count();
            if calls.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}%", hits as f64 * 100.0 / calls.len() as f64)
            }
        };
        let mut events = Vec::new();
        if within(Some(moments.fault)) {
            events.push(format!("{} master :{victim}", fault.verb()));
        }
        if within(moments.state_fail) {
            events.push("`cluster_state:fail`".to_owned());
        }
        if within(moments.state_ok) {
            events.push("`cluster_state:ok`".to_owned());
        }
        if within(moments.promoted) {
            events.push("replica promoted".to_owned());
        }
        if within(moments.resumed) {
            events.push("hits on its keys resume".to_owned());
        }
        let victim_calls: Vec<&Call> = on_victim.into_iter().copied().collect();
        table.row(vec![
            millis(from),
            format!("{:.0}", in_tick.len() as f64 / TICK.as_secs_f64()),
            in_tick.iter().filter(|c| !c.ok).count().to_string(),
            rate(&in_tick),
            rate(&victim_calls),
            events.join(", "),
        ]);
    }
    table
}
