//! Rate-limited warnings: failing open is visible without a log line per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(10);

/// Lets one event through per interval and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct RateLimited {
    start: Instant,
    /// Milliseconds since `start` when the next event may pass (0: at once).
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(number held back since the last one)` when this event should be logged.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now.saturating_add(interval), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval() {
        let limit = RateLimited::new();
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        limit.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(limit.admit(), Some(2));
    }
}
