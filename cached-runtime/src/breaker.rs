//! The circuit breaker: after a few consecutive Redis failures the cache stops calling
//! Redis (every operation fails open at once) until a background probe succeeds.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tokio::sync::Notify;

/// Consecutive failures (errors, deadline misses, or replies slower than half the
/// deadline) that open the breaker.
const FAILURES_TO_OPEN: u32 = 3;

#[derive(Debug)]
pub(crate) struct Breaker {
    open: AtomicBool,
    consecutive_failures: AtomicU32,
    /// Wakes the connection task when the breaker opens.
    opened: Notify,
    /// Wakes whoever waits for the first connection.
    closed: Notify,
}

impl Breaker {
    /// A breaker that starts open: nothing is sent until the first connection is up.
    pub(crate) fn new_open() -> Self {
        Self {
            open: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            opened: Notify::new(),
            closed: Notify::new(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; the third in a row opens the breaker. True if this one did.
    pub(crate) fn record_failure(&self) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= FAILURES_TO_OPEN && self.trip()
    }

    /// Opens at once (a connection the cache knows is broken). True if it was closed.
    pub(crate) fn trip(&self) -> bool {
        let opened = !self.open.swap(true, Ordering::AcqRel);
        if opened {
            self.opened.notify_one();
        }
        opened
    }

    pub(crate) fn close(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
        self.closed.notify_waiters();
    }

    /// Resolves once the breaker is closed.
    pub(crate) async fn wait_closed(&self) {
        let closed = self.closed.notified();
        let mut closed = std::pin::pin!(closed);
        closed.as_mut().enable();
        if self.is_open() {
            closed.await;
        }
    }

    /// Resolves when the breaker has been opened since the last call.
    pub(crate) async fn wait_opened(&self) {
        self.opened.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_only() {
        let breaker = Breaker::new_open();
        breaker.close();
        breaker.record_failure();
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        breaker.record_failure();
        assert!(!breaker.is_open(), "two in a row");
        breaker.record_failure();
        assert!(breaker.is_open(), "three in a row");
        breaker.close();
        assert!(!breaker.is_open());
    }
}
