//! Deadline arithmetic that cannot overflow, and the one duration-to-milliseconds
//! conversion. A leaf module.

use std::time::{Duration, Instant};

/// `now + duration`, saturating a year ahead instead of overflowing.
pub(crate) fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365))
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
