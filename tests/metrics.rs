//! The `metrics` feature, as an application sees it: `metrics-util`'s debugging recorder
//! installed as the process's recorder, and every metric the cache emits checked by name
//! and labels against real servers.
//!
//! One test: the recorder is the process's, and a snapshot resets what it read.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, Snapshotter};
use redis_cached::{Cache, redis_cached, redis_invalidate};
use support::{RedisServer, eventually, recorder};

static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Slow for ids over 10, so concurrent calls meet a load in flight.
#[redis_cached(key = "item:<id>", ttl = 60, lock, negative, cache = cache)]
async fn item(cache: &Cache, id: u64) -> Option<String> {
    LOADS.fetch_add(1, Ordering::Relaxed);
    if id > 10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (id != 0).then(|| format!("item {id}"))
}

#[redis_cached(key = "shelf:<id>", ttl = "100ms", stale = 60, tags = ["aisle:<id>"], cache = cache)]
async fn shelf(cache: &Cache, id: u64) -> Vec<u64> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    vec![id]
}

#[redis_invalidate(key = "item:<id>", tags = ["aisle:<id>"], cache = cache)]
async fn restock(cache: &Cache, id: u64) -> Result<(), std::io::Error> {
    Ok(())
}

/// What the recorder saw, summed over snapshots: counters added up, histogram samples
/// counted, gauges as last read. Keyed by kind, name and labels.
#[derive(Default)]
struct Seen {
    counters: BTreeMap<(String, Vec<(String, String)>), u64>,
    samples: BTreeMap<(String, Vec<(String, String)>), usize>,
    gauges: BTreeMap<String, f64>,
}

impl Seen {
    /// Takes a snapshot (which resets the recorder) and adds it up.
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let name = key.name().to_owned();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => *self.counters.entry((name, labels)).or_default() += n,
                (MetricKind::Histogram, DebugValue::Histogram(xs)) => {
                    *self.samples.entry((name, labels)).or_default() += xs.len();
                }
                (MetricKind::Gauge, DebugValue::Gauge(x)) => {
                    self.gauges.insert(name, x.into_inner());
                }
                other => panic!("a {kind:?} read as {other:?}"),
            }
        }
    }

    fn calls(&self, function: &str, outcome: &str) -> u64 {
        let labels = vec![("fn".into(), function.into()), ("outcome".into(), outcome.into())];
        self.counters
            .get(&("redis_cached_calls_total".to_owned(), labels))
            .copied()
            .unwrap_or(0)
    }

    /// Every label of `name`'s series, by label name.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        let counters = self.counters.keys();
        let series = counters.chain(self.samples.keys()).filter(|(n, _)| n == name);
        series
            .flat_map(|(_, labels)| labels.iter().filter(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect()
    }

    /// Every series' name with its label names.
    fn shapes(&self) -> BTreeSet<(String, Vec<String>)> {
        let shape = |(name, labels): &(String, Vec<(String, String)>)| {
            (name.clone(), labels.iter().map(|(k, _)| k.clone()).collect())
        };
        let gauges = self.gauges.keys().map(|name| (name.clone(), Vec::new()));
        self.counters
            .keys()
            .chain(self.samples.keys())
            .map(shape)
            .chain(gauges)
            .collect()
    }
}

fn gauge_was_set(seen: &mut Seen, snapshotter: &Snapshotter, value: f64) -> bool {
    seen.take(snapshotter);
    seen.gauges.get("redis_cached_available") == Some(&value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_is_emitted_with_its_name_and_labels() {
    let snapshotter = recorder::install();
    let mut seen = Seen::default();

    let redis = RedisServer::start();
    let cache = redis.cache("metered:").await;
    assert!(gauge_was_set(&mut seen, &snapshotter, 1.0), "available once connected");
    let other_process = redis.cache("metered:").await;

    hits_misses_and_loads(&cache).await;
    near_hits(&redis).await;
    waits_for_a_load(&cache, &other_process).await;
    stale_and_tagged(&cache).await;
    seen.take(&snapshotter);
    for outcome in ["load", "hit", "negative_hit", "near_hit", "coalesced", "miss"] {
        assert!(seen.calls("item", outcome) >= 1, "item {outcome}: {:?}", seen.counters);
    }
    assert!(seen.calls("shelf", "stale_hit") >= 1, "{:?}", seen.counters);
    let lock_waits = (
        "redis_cached_lock_wait_seconds".to_owned(),
        vec![("fn".into(), "item".into())],
    );
    assert!(
        seen.samples.get(&lock_waits).is_some_and(|n| *n >= 1),
        "{:?}",
        seen.samples
    );
    let loads = (
        "redis_cached_load_seconds".to_owned(),
        vec![("fn".into(), "item".into())],
    );
    assert_eq!(seen.samples.get(&loads).copied(), Some(LOADS.load(Ordering::Relaxed)));
    let ops = seen.label_values("redis_cached_redis_seconds", "op");
    for op in [
        "get",
        "get_tagged",
        "tag_versions",
        "acquire",
        "fill",
        "delete",
        "bump_tag",
    ] {
        assert!(ops.contains(op), "{op} in {ops:?}");
    }

    fails_open(&mut seen, &snapshotter).await;

    let allowed: BTreeSet<(String, Vec<String>)> = [
        ("redis_cached_calls_total", &["fn", "outcome"][..]),
        ("redis_cached_load_seconds", &["fn"]),
        ("redis_cached_redis_seconds", &["op"]),
        ("redis_cached_redis_errors_total", &["kind"]),
        ("redis_cached_available", &[]),
        ("redis_cached_lock_wait_seconds", &["fn"]),
    ]
    .into_iter()
    .map(|(name, labels)| (name.to_owned(), labels.iter().map(|l| (*l).to_owned()).collect()))
    .collect();
    assert_eq!(
        seen.shapes(),
        allowed,
        "exactly these names, each with exactly these labels"
    );
    let functions = seen.label_values("redis_cached_calls_total", "fn");
    assert_eq!(
        functions,
        BTreeSet::from(["item".to_owned(), "shelf".to_owned()]),
        "fn names, never keys"
    );
}

async fn hits_misses_and_loads(cache: &Cache) {
    assert_eq!(item(cache, 1).await.as_deref(), Some("item 1"));
    assert_eq!(item(cache, 1).await.as_deref(), Some("item 1"));
    assert_eq!(item(cache, 0).await, None);
    assert_eq!(item(cache, 0).await, None);
    // Two calls in this process: one loads, the other shares it.
    let (a, b) = tokio::join!(item(cache, 11), item(cache, 11));
    assert_eq!((a, b), (Some("item 11".into()), Some("item 11".into())));
}

async fn near_hits(redis: &RedisServer) {
    let near = Cache::builder()
        .url(redis.url())
        .prefix("metered:")
        .near_cache(100)
        .build()
        .await
        .expect("a near cache");
    eventually("a near hit", async || {
        item(&near, 1).await;
        near.stats().near_hits > 0
    })
    .await;
}

/// Two processes miss at once: one loads under the lease, the other waits for its fill.
async fn waits_for_a_load(cache: &Cache, other_process: &Cache) {
    let (a, b) = tokio::join!(item(cache, 12), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        item(other_process, 12).await
    });
    assert_eq!((a, b), (Some("item 12".into()), Some("item 12".into())));
    assert_eq!(other_process.stats().lock_waits, 1);
}

async fn stale_and_tagged(cache: &Cache) {
    shelf(cache, 1).await;
    // Past the ttl, one call refreshes while the other is served the stale value.
    eventually("a stale hit", async || {
        tokio::join!(shelf(cache, 1), shelf(cache, 1));
        cache.stats().stale_hits > 0
    })
    .await;
    restock(cache, 1).await.unwrap();
}

/// A Redis that hangs, then answers again: an error, then skipped calls, the gauge at 0,
/// failed reconnects; then 1 again.
async fn fails_open(seen: &mut Seen, snapshotter: &Snapshotter) {
    let redis = RedisServer::start();
    let cache = redis.cache("hung:").await;
    eventually("available", async || gauge_was_set(seen, snapshotter, 1.0)).await;
    redis.pause();
    eventually("the cache stops calling redis", async || {
        item(&cache, 2).await;
        !cache.available()
    })
    .await;
    item(&cache, 2).await;
    eventually("failed reconnects are counted", async || cache.stats().errors >= 5).await;
    assert!(gauge_was_set(seen, snapshotter, 0.0));
    assert!(
        seen.calls("item", "error") >= 1 && seen.calls("item", "skipped") >= 1,
        "{:?}",
        seen.counters
    );
    let kinds = seen.label_values("redis_cached_redis_errors_total", "kind");
    assert!(kinds.contains("timeout") && kinds.contains("connect"), "{kinds:?}");
    redis.resume();
    eventually("the gauge is back at 1", async || gauge_was_set(seen, snapshotter, 1.0)).await;
}
