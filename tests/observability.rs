//! What the cache tells about itself, against real servers: a span per call, whether
//! Redis is available, errors while it is down, and Redis's own stats from `INFO`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use redis_cached::{Cache, redis_cached};
use support::logs::Logs;
use support::{RedisServer, eventually};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[redis_cached(key = "product:<id>", ttl = 60, negative, cache = cache)]
async fn product(cache: &Cache, id: u64) -> Option<String> {
    LOADS.fetch_add(1, Ordering::Relaxed);
    let query = tracing::info_span!("query", id);
    let _entered = query.enter();
    tracing::info!("select the product");
    (id != 0).then(|| format!("product {id}"))
}

/// A span as the capture saw it: its name, its fields by name, and its parent's id.
#[derive(Debug, Clone, Default)]
struct SeenSpan {
    name: &'static str,
    fields: Vec<(&'static str, String)>,
    parent: Option<u64>,
}

impl SeenSpan {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An event's message and the names of the spans it happened in, innermost first.
type SeenEvent = (String, Vec<&'static str>);

/// Every span and every event.
#[derive(Clone, Default)]
struct Spans {
    spans: Arc<Mutex<Vec<(u64, SeenSpan)>>>,
    events: Arc<Mutex<Vec<SeenEvent>>>,
}

struct Fields<'a>(&'a mut Vec<(&'static str, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name(), format!("{value:?}").trim_matches('"').to_owned()));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let mut seen = SeenSpan {
            name: attrs.metadata().name(),
            parent: cx.span(id).and_then(|span| span.parent()).map(|p| p.id().into_u64()),
            ..SeenSpan::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().push((id.into_u64(), seen));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, seen)) = spans.iter_mut().find(|(seen_id, _)| *seen_id == id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let mut message = Vec::new();
        event.record(&mut Fields(&mut message));
        let scope = cx
            .event_scope(event)
            .map(|scope| scope.map(|span| span.name()).collect())
            .unwrap_or_default();
        let text = message.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(" ");
        self.events.lock().unwrap().push((text, scope));
    }
}

impl Spans {
    fn named(&self, name: &str) -> Vec<(u64, SeenSpan)> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|(_, s)| s.name == name).cloned().collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_call_has_a_span_with_the_fn_the_key_template_and_the_outcome_and_loads_nest_in_it() {
    let redis = RedisServer::start();
    let cache = redis.cache("spans:").await;
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(Registry::default().with(spans.clone()));

    assert_eq!(product(&cache, 7).await.as_deref(), Some("product 7"));
    assert_eq!(product(&cache, 7).await.as_deref(), Some("product 7"));
    assert_eq!(product(&cache, 0).await, None);
    assert_eq!(product(&cache, 0).await, None);

    let calls = spans.named("redis_cached");
    let described: Vec<_> = calls
        .iter()
        .map(|(_, s)| (s.field("fn"), s.field("key"), s.field("outcome")))
        .collect();
    let (f, key) = (Some("product"), Some("product:<id>"));
    assert_eq!(
        described,
        [
            (f, key, Some("load")),
            (f, key, Some("hit")),
            (f, key, Some("load")),
            (f, key, Some("negative_hit")),
        ],
        "one span per call, with the template, never the rendered key"
    );
    assert!(
        calls
            .iter()
            .all(|(_, s)| s.fields.iter().all(|(_, v)| !v.contains("product:7")))
    );
    let loads = spans.named("load");
    assert_eq!(loads.len(), 2, "a span per load, none for hits");
    let call_ids = [calls[0].0, calls[2].0];
    assert!(
        loads
            .iter()
            .all(|(_, load)| load.parent.is_some_and(|p| call_ids.contains(&p))),
        "each load is inside the span of the call that ran it: {loads:?}"
    );
    let events = spans.events.lock().unwrap().clone();
    let in_loader: Vec<_> = events.iter().filter(|(text, _)| text == "select the product").collect();
    assert_eq!(in_loader.len(), 2);
    for (_, scope) in in_loader {
        assert_eq!(
            scope,
            &["query", "load", "redis_cached"],
            "the user's spans nest in the load"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_redis_down_since_start_counts_each_failed_connect_as_an_error_until_it_comes_up() {
    let mut redis = RedisServer::not_started();
    let cache = redis.cache_while_down("down:").await;
    assert!(!cache.available());

    assert_eq!(product(&cache, 1).await.as_deref(), Some("product 1"));
    let stats = cache.stats();
    assert!(stats.skipped >= 1 && stats.loads == 1, "{stats:?}");
    eventually("a second failed connect attempt is counted", async || {
        cache.stats().errors >= 2
    })
    .await;
    assert!(!cache.available());

    redis.launch();
    eventually("the cache connects", async || cache.available()).await;
    let errors = cache.stats().errors;
    assert_eq!(product(&cache, 1).await.as_deref(), Some("product 1"));
    assert_eq!(product(&cache, 1).await.as_deref(), Some("product 1"));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.errors), (1, errors), "{stats:?}");
}

#[tokio::test]
async fn server_stats_are_redis_own_counts_and_memory_settings() {
    let redis = RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let cache = redis.cache("info:").await;
    let before = cache.server_stats().await.expect("INFO");
    for _ in 0..3 {
        product(&cache, 5).await;
    }
    let after = cache.server_stats().await.expect("INFO");
    assert_eq!(after.maxmemory, 100 * 1024 * 1024);
    assert_eq!(after.maxmemory_policy, "allkeys-lru");
    assert_eq!(after.servers, 1);
    assert!(after.used_memory > 0);
    assert!(
        after.keyspace_hits >= before.keyspace_hits + 2,
        "two hits read the value: {before:?} then {after:?}"
    );
    assert!(
        after.keyspace_misses > before.keyspace_misses,
        "the miss looked the key up"
    );
    assert!((0.0..=1.0).contains(&after.hit_rate()) && after.hit_rate() > 0.0);
    let json = serde_json::to_value(&after).unwrap();
    assert_eq!(json["maxmemory_policy"], "allkeys-lru");
}

#[tokio::test]
async fn the_in_memory_cache_has_no_server_stats_and_is_always_available() {
    let cache = Cache::in_memory();
    assert!(cache.available());
    assert!(matches!(
        cache.server_stats().await,
        Err(redis_cached::Error::Unavailable)
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn memory_settings_that_make_fills_fail_are_warned_about_once_at_connect() {
    let (logs, _guard) = Logs::capture();
    let warned = |logs: &Logs, what: &str| {
        logs.lines()
            .iter()
            .filter(|line| line.contains("will refuse or outgrow") && line.contains(what))
            .count()
    };
    let unlimited = RedisServer::start();
    let _cache = unlimited.cache("memory:").await;
    eventually("no maxmemory is warned about", async || {
        warned(&logs, "no maxmemory") == 1
    })
    .await;

    let refusing = RedisServer::start_with(&["--maxmemory", "10mb", "--maxmemory-policy", "noeviction"]);
    let _cache = refusing.cache("memory:").await;
    eventually("noeviction is warned about", async || warned(&logs, "noeviction") == 1).await;

    let suited = RedisServer::start_with(&["--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"]);
    let _cache = suited.cache("memory:").await;
    let suits = |logs: &Logs| logs.lines().iter().filter(|line| line.contains("suit a cache")).count();
    eventually("the settings are found to suit a cache", async || suits(&logs) == 1).await;
    assert_eq!(warned(&logs, ""), 2, "{:?}", logs.lines());
}
