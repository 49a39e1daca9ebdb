//! Deadline arithmetic that cannot overflow, and the one duration-to-milliseconds
//! conversion. A leaf module.

use std::time::{Duration, Instant};

/// `now + duration`, saturating a year ahead instead of overflowing; for std's and
/// tokio's `Instant` alike.
pub(crate) fn later<I: Later>(now: I, duration: Duration) -> I {
    now.checked_later(duration).unwrap_or_else(|| now.year_later())
}

/// An instant that can be moved forward.
pub(crate) trait Later: Copy {
    fn checked_later(self, duration: Duration) -> Option<Self>;
    fn year_later(self) -> Self;
}

const YEAR: Duration = Duration::from_secs(60 * 60 * 24 * 365);

impl Later for Instant {
    fn checked_later(self, duration: Duration) -> Option<Self> {
        self.checked_add(duration)
    }
    fn year_later(self) -> Self {
        self + YEAR
    }
}

impl Later for tokio::time::Instant {
    fn checked_later(self, duration: Duration) -> Option<Self> {
        self.checked_add(duration)
    }
    fn year_later(self) -> Self {
        self + YEAR
    }
}

/// Whole milliseconds, saturating, and at least 1: Redis rejects a zero expiry, and a
/// duration this crate stores is never zero.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_saturate_and_are_never_zero() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
