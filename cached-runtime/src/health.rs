//! How Redis is doing, told without being asked: the `redis_cached_available` gauge (1
//! while every Redis cache of the process is answering, 0 while one fails open), kept by
//! a task per cache that looks at its store's state, so the gauge moves even when no
//! call is made and costs the read path nothing; and a warning, once Redis first
//! answers, when its memory settings will make fills fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::server_stats::ServerStats;
use crate::store::StoreError;
use crate::telemetry::{self, Failure};

/// What the health of a cache is read from: its Redis store.
pub(crate) trait Watched: Clone + Send + Sync + 'static {
    /// Whether the store is being called.
    fn available(&self) -> bool;

    /// The `INFO` text of every master.
    fn server_info(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// Starts both watches of `store`'s cache, until the cache is dropped (`shutdown`'s
/// sender): the gauge, and the check of the memory settings.
pub(crate) fn watch(store: impl Watched, shutdown: &watch::Sender<()>) {
    keep_gauge(store.clone(), shutdown.subscribe());
    warn_about_memory(store, shutdown.subscribe());
}

/// How often the state is looked at: well under any scrape interval.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// The Redis caches of the process that are failing open now. The gauge is one for the
/// process: 1 only while every cache's Redis answers.
static UNAVAILABLE: AtomicUsize = AtomicUsize::new(0);

/// Keeps the gauge for `store`'s cache: it is set at every look, so a recorder installed
/// after the cache is built sees it too. Only with the `metrics` feature.
fn keep_gauge(store: impl Watched, mut shutdown: watch::Receiver<()>) {
    if !cfg!(feature = "metrics") {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut counted = Counted(false);
        loop {
            counted.set(!store.available());
            telemetry::available(UNAVAILABLE.load(Ordering::Relaxed) == 0);
            tokio::select! {
                () = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Whether one cache is counted in [`UNAVAILABLE`]; a dropped cache (or a stopped
/// runtime) takes its count back.
struct Counted(bool);

impl Counted {
    fn set(&mut self, unavailable: bool) {
        if unavailable != self.0 {
            if unavailable {
                UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
            } else {
                UNAVAILABLE.fetch_sub(1, Ordering::Relaxed);
            }
            self.0 = unavailable;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Once Redis first answers, reads every master's `INFO` and warns about each one whose
/// memory settings will make fills fail: no `maxmemory`, or `noeviction`. `INFO`, not
/// `CONFIG GET`: the guide's ACL line allows it. A failed read is tried again, a few
/// times, the next time Redis answers.
fn warn_about_memory(store: impl Watched, mut shutdown: watch::Receiver<()>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        for _ in 0..INFO_ATTEMPTS {
            while !store.available() {
                tokio::select! {
                    () = tokio::time::sleep(LOOK_EVERY) => {}
                    _ = shutdown.changed() => return,
                }
            }
            match store.server_info().await {
                Ok(servers) => return warn_about(&servers),
                Err(e) if e.failure() == Some(Failure::NoPerm) => {
                    return tracing::warn!(
                        error = %crate::Error::from(e),
                        "redis-cached: cannot read redis's INFO to check its maxmemory settings; grant `+info`"
                    );
                }
                Err(e) => tracing::debug!(
                    error = %crate::Error::from(e),
                    "redis-cached: cannot read redis's INFO to check its maxmemory settings yet"
                ),
            }
            tokio::select! {
                () = tokio::time::sleep(INFO_RETRY) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// How many times the memory settings are asked for, and how long apart.
const INFO_ATTEMPTS: usize = 5;
const INFO_RETRY: Duration = Duration::from_secs(1);

/// Warns about each server (its `INFO`) whose memory settings make fills fail.
fn warn_about(servers: &[String]) {
    let mut warned = false;
    for (i, info) in servers.iter().enumerate() {
        if let Some(why) = ServerStats::parse(info).memory_warning() {
            warned = true;
            tracing::warn!(
                server = i + 1,
                of = servers.len(),
                "redis-cached: redis will refuse or outgrow the cache's writes: {why}"
            );
        }
    }
    if !warned {
        tracing::debug!("redis-cached: redis's memory settings (maxmemory, with eviction) suit a cache");
    }
}
