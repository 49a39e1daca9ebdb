//! Leases: the token, renewal while the loader runs, and release on every exit.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::Store;
use crate::cache::Inner;

/// A 128-bit token unique to this load: two per-process random hash keys over a counter.
pub(crate) fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static KEYS: std::sync::LazyLock<(RandomState, RandomState)> =
        std::sync::LazyLock::new(|| (RandomState::new(), RandomState::new()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:016x}", KEYS.0.hash_one(n), KEYS.1.hash_one(n))
}

/// Releases the lease if the load ends without doing so (error, panic, dropped future).
/// The release runs on a spawned task; the lease's expiry is the backstop.
pub(crate) struct LeaseGuard {
    store: Store,
    key: String,
    lease_key: String,
    token: String,
    armed: bool,
}

impl LeaseGuard {
    pub(crate) fn new(store: &Store, key: &str, lease_key: &str, token: &str) -> Self {
        Self {
            store: store.clone(),
            key: key.to_owned(),
            lease_key: lease_key.to_owned(),
            token: token.to_owned(),
            armed: true,
        }
    }

    /// The fill (or an explicit release) took care of the lease.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let key = std::mem::take(&mut self.key);
            let lease_key = std::mem::take(&mut self.lease_key);
            let token = std::mem::take(&mut self.token);
            runtime.spawn(async move {
                let _ = store.release(&key, &lease_key, &token).await;
            });
        }
    }
}

/// Runs the loader while renewing the lease at a third of its length, so a loader
/// slower than the lease keeps it; a dead process stops renewing and the lease expires.
pub(crate) async fn hold_lease<F: Future>(
    inner: &Inner,
    lease_key: &str,
    token: &str,
    lease: Duration,
    load: F,
) -> F::Output {
    let period = (lease / 3).max(Duration::from_millis(1));
    let mut load = std::pin::pin!(load);
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            biased;
            out = &mut load => return out,
            _ = renew.tick() => match inner.store.extend(lease_key, token, lease).await {
                Ok(_) => {}
                Err(e) => inner.failed(e),
            },
        }
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
