//! What every topology's background tasks share: saying why an attempt failed, at most
//! once per interval, and pausing between attempts until the cache is dropped.

use std::time::Duration;

use redis::RedisError;
use tokio::sync::watch;

use super::hint;
use crate::backoff::Backoff;
use crate::log::RateLimited;
use crate::stats::{Count, Counters};
use crate::telemetry::{self, Failure};

/// Says why a connection or subscription attempt failed, at most once per interval.
pub(crate) fn log_failed_attempt<T>(
    limit: &RateLimited,
    failed: &Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    timeout: Duration,
    what: &str,
) {
    if let Some(suppressed) = limit.admit() {
        let (error, hint) = match failed {
            Ok(Err(e)) => (e.to_string(), hint(e)),
            _ => (format!("no answer within {timeout:?}"), None),
        };
        // No hint, no field (`None` records nothing).
        tracing::warn!(%error, hint, suppressed, "redis-cached: {what}");
    }
}

/// Counts a failed connection attempt as a Redis error: a Redis that is down since the
/// cache was built shows in `errors` (once per attempt), not only in `skipped`.
pub(crate) fn count_failed_connect(counters: &Counters) {
    counters.bump(Count::Errors);
    telemetry::redis_error(Failure::Connect);
}

/// Sleeps for the backoff's next pause, unless the cache is dropped first (then
/// returns false).
pub(crate) async fn pause(backoff: &mut Backoff, shutdown: &mut watch::Receiver<()>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(backoff.next_pause()) => true,
        _ = shutdown.changed() => false,
    }
}
