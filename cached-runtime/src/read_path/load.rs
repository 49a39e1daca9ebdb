//! Running the loader, with or without a claim, and handing its result on: stored
//! under the claim (or the claim given up), then returned to the caller and the
//! flight's waiters.

use std::time::Duration;

use tokio::time::Instant;

use super::answer::log_unstorable;
use super::refresh::Current;
use super::{Call, Tagging};
use crate::coalesce::LeaderGuard;
use crate::codec::{self, Timing};
use crate::fail_open::Warning;
use crate::lease::{Ending, MayHold};
use crate::shape::{Loaded, Shape};
use crate::stats::Count;
use crate::store::Store;

/// What a load replaces.
pub(super) enum Replacing<V> {
    /// Nothing: a miss.
    Nothing,
    /// A value due for refresh, still stored when the refresh took its claim (or whose
    /// claim could not be asked for): served to this caller if the loader fails
    /// (stale-if-error).
    Value(Current<V>),
    /// A value due for refresh that was gone (invalidated, or past its window) when the
    /// refresh took its claim: never served again.
    Gone,
}

/// What became of a load's claim.
enum Settled {
    /// Stored, or released while still ours: no invalidation crossed the load.
    Kept,
    /// An invalidation voided the claim during the load (or it expired).
    Voided,
    /// Redis did not say: treated as voided.
    Failed,
    /// The load ran without a claim, while invalidations would have been heard.
    Unclaimed,
    /// The load ran without a claim, and an invalidation may have gone unheard.
    Unconfirmed,
}

/// Loads under a claim, stores the result while the claim holds, and hands it on.
pub(super) async fn load_claimed<S: Shape, St: Store>(
    call: &Call<'_, St>,
    tagging: &Tagging,
    held: MayHold<St>,
    load: impl Future<Output = S::Output>,
    flight: LeaderGuard<'_>,
    replacing: Replacing<S::Value>,
) -> S::Output {
    call.count(Count::Loads);
    let started = Instant::now();
    let out = held.renewed_while(load).await;
    let load_time = started.elapsed();
    let versions = tagging.versions.as_deref().unwrap_or_default();
    // A refresh whose loader says the value no longer exists, with `None` not cached,
    // clears the old value (under its claim) rather than keep serving it.
    let clear = !matches!(replacing, Replacing::Nothing) && call.policy.negative.is_none();
    let mut settled = fill_or_give_up::<S, St>(call, held, versions, load_time, &out, clear).await;
    // Checked after the fill, so a tag invalidated at any time during the load is seen
    // (a stored value under an old version is never read anyway).
    if matches!(settled, Settled::Kept) && tags_moved(call, tagging, versions).await {
        settled = Settled::Voided;
    }
    settle::<S, St>(call, flight, replacing, out, settled)
}

/// Loads without a claim (Redis failing, or a lock holder that never finished); the
/// result is not stored.
pub(super) async fn load_unfenced<S: Shape, St: Store>(
    call: &Call<'_, St>,
    flight: LeaderGuard<'_>,
    load: impl Future<Output = S::Output>,
    replacing: Replacing<S::Value>,
) -> S::Output {
    call.count(Count::Loads);
    let announcements = call.store.announcements();
    let out = load.await;
    // Nothing can tell this load that it was voided. Its result is for every caller that
    // joined it while announcements (which detach voided loads) reached this process
    // throughout, or while Redis is out of reach (then coalescing is what protects the
    // database); otherwise only for the callers that joined before it started.
    let heard = announcements.is_some() && announcements == call.store.announcements();
    let settled = if heard || !call.store.reachable() {
        Settled::Unclaimed
    } else {
        Settled::Unconfirmed
    };
    settle::<S, St>(call, flight, replacing, out, settled)
}

/// Whether a tag of the call was invalidated since its versions were read (an error
/// counts as moved). Read after the load: a tag invalidation does not touch the key's
/// claim, and its message may never arrive. The same request keeps the tags alive for
/// at least as long as the value will be.
async fn tags_moved<St: Store>(call: &Call<'_, St>, tagging: &Tagging, versions: &[u64]) -> bool {
    if versions.is_empty() {
        return false;
    }
    let touched = call.store.touch_tags(&tagging.keys, call.policy.tag_life());
    match call.budget.run(touched).await {
        Ok(now) => now.len() != versions.len() || now.iter().zip(versions).any(|(now, then)| *now != Some(*then)),
        Err(e) => {
            call.failed(e);
            true
        }
    }
}

/// Hands a loaded result to the caller and the flight's waiters. A refresh whose loader
/// failed serves the value it replaces (stale-if-error) to its own caller only, and only
/// if no invalidation voided its claim.
fn settle<S: Shape, St: Store>(
    call: &Call<'_, St>,
    flight: LeaderGuard<'_>,
    replacing: Replacing<S::Value>,
    out: S::Output,
    settled: Settled,
) -> S::Output {
    let voided = matches!(settled, Settled::Voided | Settled::Failed | Settled::Unconfirmed);
    let mark = flight.start();
    flight.finish(S::outcome(&out, voided.then_some(mark)));
    let Replacing::Value(current) = replacing else {
        return out;
    };
    if !matches!(S::classify(&out), Loaded::Failed) {
        return out;
    }
    if matches!(settled, Settled::Voided) {
        // Invalidated while refreshing: the old value is known to be wrong.
        return out;
    }
    current.recount(call);
    if let Some(suppressed) = call.cx.fail_open.admit() {
        tracing::warn!(
            function = call.policy.name,
            suppressed,
            "redis-cached: the loader failed while refreshing a cached value; serving the cached value"
        );
    }
    S::from_value(current.value)
}

/// The bytes to store for a loaded result, and for how long; `None`: store nothing.
fn stored<S: Shape, St: Store>(
    call: &Call<'_, St>,
    tags: &[u64],
    load_time: Duration,
    out: &S::Output,
) -> Option<(Vec<u8>, Duration)> {
    let policy = call.policy;
    match S::classify(out) {
        Loaded::Value(value) => {
            let ttl = policy.jittered(policy.ttl);
            // With `stale`, Redis keeps the value for the window past its (soft) expiry.
            let keep = policy.stale.map_or(ttl, |window| ttl.saturating_add(window));
            let timing = policy.timed().then(|| Timing {
                load_ms: u32::try_from(load_time.as_millis()).unwrap_or(u32::MAX),
            });
            match codec::encode_value(value, policy.codec, policy.version, tags, timing) {
                Ok(bytes) => Some((bytes, keep)),
                Err(why) => {
                    call.cx.counters.bump(Count::Unstorable);
                    if call.cx.fail_open.first(policy.name, Warning::Unstorable) {
                        log_unstorable(policy, &why);
                    }
                    None
                }
            }
        }
        Loaded::Absent => policy.negative.map(|ttl| {
            (
                codec::encode_negative::<S::Value>(policy.codec, policy.version, tags),
                policy.jittered(ttl),
            )
        }),
        Loaded::Failed => None,
    }
}

/// Stores the loader's result under the claim, or gives the claim up (`clear`: and
/// drops the stored value, for a "not found" that is not cached); says whether the
/// claim held through the load.
async fn fill_or_give_up<S: Shape, St: Store>(
    call: &Call<'_, St>,
    held: MayHold<St>,
    tags: &[u64],
    load_time: Duration,
    out: &S::Output,
    clear: bool,
) -> Settled {
    let ending = stored::<S, St>(call, tags, load_time, out);
    let ending = match &ending {
        Some((bytes, ttl)) => Ending::Fill { bytes, ttl: *ttl },
        None if clear && matches!(S::classify(out), Loaded::Absent) => Ending::Clear,
        None => Ending::Release,
    };
    let filling = matches!(ending, Ending::Fill { .. });
    let key = held.claim().key().to_owned();
    match held.end(ending, &call.budget).await {
        Ok(true) => Settled::Kept,
        Ok(false) => {
            if filling {
                tracing::debug!(
                    key,
                    "redis-cached: claim voided during the load (invalidated); result not stored"
                );
            }
            Settled::Voided
        }
        Err(e) => {
            call.failed(e);
            Settled::Failed
        }
    }
}
