//! Leases: the token, renewal while the loader runs, and release on every exit.

use std::time::Duration;

use crate::backend::Lease;
use crate::cache::{Cache, Inner};

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
