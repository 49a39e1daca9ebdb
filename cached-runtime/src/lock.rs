//! Leases: the token, renewal while the loader runs, and release on every exit.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backend::Lease;
use crate::cache::{Cache, Inner};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static KEYS: std::sync::LazyLock<(RandomState, RandomState)> =
    std::sync::LazyLock::new(|| (RandomState::new(), RandomState::new()));

/// A 128-bit token unique to this load: two per-process random hash keys over a counter.
pub(crate) fn new_token() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:016x}", KEYS.0.hash_one(n), KEYS.1.hash_one(n))
}

/// A random number (for tag versions and jitter; not for secrets).
pub(crate) fn random_u64() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEYS.0.hash_one(n) ^ KEYS.1.hash_one(n).rotate_left(32)
}

/// A random number in `0.0..1.0`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `now + duration`, saturating a year ahead instead of overflowing.
pub(crate) fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365))
}

/// Releases the lease when dropped while armed: a request that may have taken it got
/// no answer, or the load ended without the fill giving it up (error, panic, dropped
/// future, failed fill). The release runs on a spawned task; the lease's expiry is the
/// backstop.
pub(crate) struct LeaseGuard {
    cache: Cache,
    lease: Lease,
    duration: Duration,
    armed: bool,
}

impl LeaseGuard {
    pub(crate) fn new(cache: &Cache, lease: Lease, duration: Duration) -> Self {
        Self {
            cache: cache.clone(),
            lease,
            duration,
            armed: false,
        }
    }

    pub(crate) fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The lease may be ours from now on.
    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    /// The lease is not ours, or was given up already.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release(self.cache.clone(), self.lease.clone(), self.duration));
        }
    }
}

/// Releases `lease`, retrying while Redis is unreachable (the request that took the lease
/// may still run when it comes back) until the lease would have expired anyway.
async fn release(cache: Cache, lease: Lease, duration: Duration) {
    let mut pause = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    loop {
        match cache.inner.store.release(&lease).await {
            Ok(_) => return,
            Err(e) if waited >= duration => {
                cache.inner.failed(e);
                return;
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        waited += pause;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Runs the loader while renewing the lease at a third of its length, so a loader
/// slower than the lease keeps it; a dead process stops renewing and the lease expires.
/// Renewal runs beside the loader, never pausing it.
pub(crate) async fn hold_lease<F: Future>(inner: &Inner, lease: &Lease, duration: Duration, load: F) -> F::Output {
    let period = (duration / 3).max(Duration::from_millis(1));
    let renew = async {
        loop {
            tokio::time::sleep(period).await;
            match inner.store.extend(lease, duration).await {
                Ok(true) => {}
                // Invalidated or expired: the fill will fail; nothing left to renew.
                Ok(false) => break,
                Err(e) => inner.failed(e),
            }
        }
    };
    let mut load = std::pin::pin!(load);
    tokio::select! {
        biased;
        out = &mut load => out,
        // Renewal stops when the lease is gone; the load still runs to the end.
        () = renew => load.await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_128_bit() {
        let a = super::new_token();
        let b = super::new_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
