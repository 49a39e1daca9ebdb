//! A claim this call may hold, as a value: it exists from the moment a lease request is
//! sent until the claim is known not to be ours, or is given up by a fill, a clear or a
//! release. Dropping it any other way (an error, a panic, a dropped future, a request
//! that got no answer) releases the claim on a spawned task; the claim's expiry is the
//! backstop. Nothing else ever releases a claim, so a leak would need this type to leak.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::budget::Budget;
use crate::fail_open::FailOpen;
use crate::store::{Claim, Store, StoreError};

pub(crate) struct MayHold<S: Store> {
    store: S,
    /// `None` once given up or known not to be ours.
    claim: Option<Claim>,
    duration: Duration,
    fail_open: Arc<FailOpen>,
}

impl<S: Store> MayHold<S> {
    /// `claim` may be ours from now on (a request for it is about to be sent), for
    /// `duration` unless renewed.
    pub(crate) fn new(store: &S, claim: Claim, duration: Duration, fail_open: &Arc<FailOpen>) -> Self {
        Self {
            store: store.clone(),
            claim: Some(claim),
            duration,
            fail_open: fail_open.clone(),
        }
    }

    pub(crate) fn claim(&self) -> &Claim {
        // ok: `claim` is `None` only once `not_ours` or `end` consumed `self`, or in `drop`.
        self.claim
            .as_ref()
            .unwrap_or_else(|| unreachable!("present until consumed"))
    }

    /// The store said the claim is not ours: nothing to release. Returns it, to ask again.
    pub(crate) fn not_ours(mut self) -> Claim {
        // ok: as in `claim`; this is the call that consumes `self`.
        self.claim
            .take()
            .unwrap_or_else(|| unreachable!("present until consumed"))
    }

    /// Runs the loader while renewing the claim at a third of its length, so a loader
    /// slower than the claim keeps it; a dead process stops renewing and the claim
    /// expires. Renewal runs beside the loader, never pausing it.
    pub(crate) async fn renewed_while<F: Future>(&self, load: F) -> F::Output {
        let period = (self.duration / 3).max(Duration::from_millis(1));
        let renew = async {
            loop {
                tokio::time::sleep(period).await;
                match self.store.extend(self.claim(), self.duration).await {
                    Ok(true) => {}
                    // Invalidated or expired: the fill will fail; nothing left to renew.
                    Ok(false) => break,
                    Err(e) => self.fail_open.failed(e),
                }
            }
        };
        let mut load = std::pin::pin!(load);
        tokio::select! {
            biased;
            out = &mut load => out,
            // Renewal stops when the claim is gone; the load still runs to the end.
            () = renew => load.await,
        }
    }

    /// Ends the claim (fill, clear or release), within `budget`: true if it still held.
    /// If Redis did not answer, the claim is released in the background.
    pub(crate) async fn end(mut self, ending: Ending<'_>, budget: &Budget) -> Result<bool, StoreError> {
        let (store, claim) = (&self.store, self.claim());
        let result = match ending {
            Ending::Fill { bytes, ttl } => budget.run(store.fill(claim, bytes, ttl)).await,
            Ending::Clear => budget.run(store.clear(claim)).await,
            Ending::Release => budget.run(store.release(claim)).await,
        };
        if result.is_ok() {
            self.claim = None;
        }
        result
    }
}

/// How a load gives its claim up.
#[derive(Debug)]
pub(crate) enum Ending<'a> {
    /// Store `bytes` for `ttl` while the claim holds.
    Fill { bytes: &'a [u8], ttl: Duration },
    /// Delete the stored value while the claim holds (a refresh that found nothing).
    Clear,
    /// Store nothing.
    Release,
}

impl<S: Store> Drop for MayHold<S> {
    fn drop(&mut self) {
        let Some(claim) = self.claim.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release(
                self.store.clone(),
                claim,
                self.duration,
                self.fail_open.clone(),
            ));
        }
    }
}

/// Releases `claim`, retrying while Redis is unreachable (the request that took it may
/// still run when it comes back) until the claim would have expired anyway.
async fn release<S: Store>(store: S, claim: Claim, duration: Duration, fail_open: Arc<FailOpen>) {
    let mut backoff = Backoff::new();
    let mut waited = Duration::ZERO;
    loop {
        match store.release(&claim).await {
            Ok(_) => return,
            Err(e) if waited >= duration => {
                fail_open.failed(e);
                return;
            }
            Err(_) => {}
        }
        let pause = backoff.next_pause();
        tokio::time::sleep(pause).await;
        waited += pause;
    }
}
