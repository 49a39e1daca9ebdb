//! How Redis is doing, told without being asked: the `redis_cached_available` gauge (1
//! while Redis is answering, 0 while the cache fails open), kept by a task that looks at
//! the store's state, so the gauge moves even when no call is made and costs the read
//! path nothing; and a warning, once Redis first answers, when its memory settings will
//! make fills fail.

use std::time::Duration;

use tokio::sync::watch;

use crate::server_stats::ServerStats;
use crate::store::StoreError;
use crate::telemetry;

/// How often the state is looked at: well under any scrape interval.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Sets the gauge now and whenever `available` changes, until the cache is dropped
/// (`shutdown`'s sender). Only with the `metrics` feature: without it there is no gauge.
pub(crate) fn keep_gauge(available: impl Fn() -> bool + Send + 'static, mut shutdown: watch::Receiver<()>) {
    if !cfg!(feature = "metrics") {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        telemetry::available(available());
        return;
    };
    runtime.spawn(async move {
        let mut last = None;
        loop {
            let now = available();
            if last != Some(now) {
                telemetry::available(now);
                last = Some(now);
            }
            tokio::select! {
                () = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Once Redis first answers (`available`), reads every master's `INFO` (`info`) and
/// warns about each one whose memory settings will make fills fail: no `maxmemory`, or
/// `noeviction`. `INFO`, not `CONFIG GET`: the guide's ACL line allows it.
pub(crate) fn warn_about_memory<F>(
    available: impl Fn() -> bool + Send + 'static,
    info: impl FnOnce() -> F + Send + 'static,
    mut shutdown: watch::Receiver<()>,
) where
    F: Future<Output = Result<Vec<String>, StoreError>> + Send,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        while !available() {
            tokio::select! {
                () = tokio::time::sleep(LOOK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
        match info().await {
            Ok(servers) => {
                let count = servers.len();
                let mut warned = false;
                for (i, why) in servers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, info)| Some((i, ServerStats::parse(info).memory_warning()?)))
                {
                    warned = true;
                    tracing::warn!(
                        server = i + 1,
                        of = count,
                        "redis-cached: redis will refuse or outgrow the cache's writes: {why}"
                    );
                }
                if !warned {
                    tracing::debug!("redis-cached: redis's memory settings (maxmemory, with eviction) suit a cache");
                }
            }
            Err(e) => tracing::warn!(
                error = %crate::Error::from(e),
                "redis-cached: cannot read redis's INFO to check its maxmemory settings; grant `+info`"
            ),
        }
    });
}
