//! Warnings that do not flood: one per interval ([`RateLimited`]) or one per process
//! or function ([`WarnOnce`]). A leaf module.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

impl Default for RateLimited {
    fn default() -> Self {
        Self::new()
    }
}

/// Lets the first event through and no other: `static` for once per process, a field
/// for once per owner.
#[derive(Debug, Default)]
pub(crate) struct WarnOnce(AtomicBool);

impl WarnOnce {
    pub(crate) const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// True the first time only.
    pub(crate) fn first(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
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

    #[test]
    fn warn_once_admits_the_first_only() {
        let once = WarnOnce::new();
        assert!(once.first());
        assert!(!once.first());
    }
}
