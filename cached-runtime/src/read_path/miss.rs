//! After a miss: share a load already running in this process, or lead one.

use super::acquire::{Acquired, acquire};
use super::load::{Replacing, load_claimed, load_unfenced};
use super::{Call, Tagging};
use crate::coalesce::{self, Join, LeaderGuard, Outcome, Shared};
use crate::shape::Shape;
use crate::stats::Count;
use crate::store::{Claim, Store};

pub(super) async fn miss<S: Shape, St: Store>(
    call: &Call<'_, St>,
    mut tagging: Tagging,
    load: impl Future<Output = S::Output>,
) -> S::Output {
    loop {
        let waiter = match call.cx.flights.join(&call.key, &tagging.keys) {
            Join::Leader(flight) => return lead::<S, St>(call, &mut tagging, load, flight).await,
            Join::Waiter(waiter) => waiter,
        };
        // Bounded, in case the leader's future is kept but no longer polled.
        match coalesce::wait(waiter, call.policy.wait_budget().saturating_mul(2)).await {
            Outcome::Done(shared) => {
                if let Some(out) = shared.downcast_ref::<Shared<S::Value>>().and_then(S::from_shared) {
                    call.count(Count::Coalesced);
                    return out;
                }
                // Another function's result under the same key: load our own.
                return load_alone::<S, St>(call, load).await;
            }
            // Errors are not shared: each caller gets its own loader's result.
            Outcome::Failed => return load_alone::<S, St>(call, load).await,
            // No result for this call (see `coalesce`): join or lead a new load.
            Outcome::Retry | Outcome::Voided { .. } => {}
        }
    }
}

/// Loads for this caller alone, outside the flight.
async fn load_alone<S: Shape, St: Store>(call: &Call<'_, St>, load: impl Future<Output = S::Output>) -> S::Output {
    call.count(Count::Loads);
    load.await
}

/// The flight's leader: claim the key (or wait for its holder), load, fill.
async fn lead<S: Shape, St: Store>(
    call: &Call<'_, St>,
    tagging: &mut Tagging,
    load: impl Future<Output = S::Output>,
    flight: LeaderGuard<'_>,
) -> S::Output {
    // Whatever is read or loaded from here on may be voided by an invalidation that
    // callers joining later started after.
    flight.loading();
    let versions = match tagging.resolve(call).await {
        Ok(versions) => versions,
        Err(e) => {
            // Without its tags' versions a result cannot be stored safely: load only.
            call.failed(e);
            return load_unfenced::<S, St>(call, flight, load, Replacing::Nothing).await;
        }
    };
    let claim = if call.policy.lock.is_some() {
        Claim::lease(&call.key)
    } else {
        Claim::fence(&call.key)
    };
    match acquire::<S, St>(call, claim, &versions, None, &flight).await {
        Acquired::Won { held, .. } => {
            load_claimed::<S, St>(call, tagging, held, load, flight, Replacing::Nothing).await
        }
        Acquired::Found { out, mark, .. } => {
            // Read after waiters may have joined: only for those that joined before.
            flight.finish(S::outcome(&out, Some(mark)));
            out
        }
        // (`Busy` only answers a refresh: a miss waits for the claim's holder.)
        Acquired::Unfenced { unanswered } => {
            let out = load_unfenced::<S, St>(call, flight, load, Replacing::Nothing).await;
            drop(unanswered);
            out
        }
        Acquired::Busy => load_unfenced::<S, St>(call, flight, load, Replacing::Nothing).await,
    }
}
