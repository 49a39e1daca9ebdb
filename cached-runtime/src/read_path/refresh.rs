//! A value due for refresh: stale within its `stale` window, or drawn for an early
//! refresh. One caller refreshes (in this process, the flight's leader; across
//! processes, the lease holder); every other caller gets the current value at once.

use super::acquire::{Acquired, acquire};
use super::load::{Replacing, load_claimed, load_unfenced};
use super::{Call, Tagging};
use crate::coalesce::{Join, Outcome};
use crate::shape::Shape;
use crate::stats::Count;
use crate::store::{Claim, Store};

/// The value a refresh replaces, served to everyone but the refreshing caller.
pub(super) struct Current<V> {
    pub(super) value: V,
    /// Past its ttl (`stale`), rather than refreshed early (`refresh`).
    pub(super) stale: bool,
    /// The stored bytes it was read from: the refresh takes the lease over exactly these.
    pub(super) bytes: Vec<u8>,
}

impl<V> Current<V> {
    /// Counts a call answered with it.
    fn count<St: Store>(&self, call: &Call<'_, St>) {
        call.count(self.counter());
    }

    fn counter(&self) -> Count {
        if self.stale { Count::StaleHits } else { Count::Hits }
    }

    /// The refreshing caller, counted as a refresh when it started, was answered with
    /// this value instead.
    pub(super) fn recount<St: Store>(&self, call: &Call<'_, St>) {
        call.recount(Count::Refreshes, self.counter());
    }
}

pub(super) async fn refresh<S: Shape, St: Store>(
    call: &Call<'_, St>,
    mut tagging: Tagging,
    load: impl Future<Output = S::Output>,
    current: Current<S::Value>,
) -> S::Output {
    let cx = call.cx;
    let flight = match cx.flights.join(&call.key, &tagging.keys) {
        Join::Leader(flight) => flight,
        Join::Waiter(_) => {
            current.count(call);
            return S::from_value(current.value);
        }
    };
    // Counted now, so a refresh whose caller is dropped or panics still counts; moved to
    // another counter if it ends up answered with a found value.
    cx.counters.bump(Count::Refreshes);
    // Whatever is read or loaded from here on may be voided by an invalidation that
    // callers joining later started after.
    flight.loading();
    let versions = match tagging.resolve(call).await {
        Ok(versions) => versions,
        Err(e) => {
            // Without its tags' versions a result cannot be stored safely: load only.
            call.failed(e);
            return load_unfenced::<S, St>(call, flight, load, Replacing::Value(current)).await;
        }
    };
    // One refresh at a time in the deployment, with or without `lock`.
    let claim = Claim::lease(&call.key);
    match acquire::<S, St>(call, claim, &versions, Some(&current.bytes), &flight).await {
        Acquired::Won { held, replaced_gone } => {
            // The value this refresh replaces was gone when it took the claim
            // (invalidated, or past its window): stale-if-error must not bring it back.
            let replacing = if replaced_gone {
                Replacing::Gone
            } else {
                Replacing::Value(current)
            };
            load_claimed::<S, St>(call, &tagging, held, load, flight, replacing).await
        }
        Acquired::Found { out, negative, mark } => {
            let answered = if negative { Count::NegativeHits } else { Count::Hits };
            call.recount(Count::Refreshes, answered);
            // Read after waiters may have joined: only for those that joined before.
            flight.finish(S::outcome(&out, Some(mark)));
            out
        }
        Acquired::Busy | Acquired::Unfenced { .. } => {
            current.recount(call);
            // The value this call found is not a load result: waiters load themselves.
            flight.finish(Outcome::Retry);
            S::from_value(current.value)
        }
    }
}
