//! Asking for a key's claim, and waiting for its holder: the one step between a miss
//! and a load. Its answer names what happened.

use std::time::Duration;

use tokio::time::Instant;

use super::Call;
use super::answer::found;
use crate::budget::Budget;
use crate::coalesce::LeaderGuard;
use crate::lease::MayHold;
use crate::shape::Shape;
use crate::stats::Count;
use crate::store::{Acquire, Claim, Expected, Store};
use crate::telemetry;
use crate::time::later;

/// How often a waiter asks again while announcements are live (a safety net for a lost
/// message) and while they are not.
const POLL_WITH_ANNOUNCEMENTS: Duration = Duration::from_millis(250);
const POLL_WITHOUT_ANNOUNCEMENTS: Duration = Duration::from_millis(20);

/// What asking for the claim came to.
pub(super) enum Acquired<S: Shape, St: Store> {
    /// The claim is ours: load under it and fill. `replaced_gone`: a refresh found the
    /// value it replaces gone (invalidated, or expired) when it took the claim.
    Won { held: MayHold<St>, replaced_gone: bool },
    /// A value was stored meanwhile; it answers the call (`negative`: a stored "not
    /// found"). `mark`: the flight's read it rests on; waiters that joined after it may
    /// have started after an invalidation it did not see.
    Found { out: S::Output, negative: bool, mark: u64 },
    /// A refresh that another caller performs, or that Redis refused: serve the value
    /// being refreshed. (A miss waits instead.)
    Busy,
    /// No claim (Redis failing, or a holder that never finished): load without one; the
    /// result is not stored. `unanswered`: a request that got no answer may have taken
    /// the claim; it is held until the load ends (then released), so other processes
    /// keep waiting rather than load beside this one.
    Unfenced { unanswered: Option<MayHold<St>> },
}

/// Asks for `claim` until it is won, a value turns up, or the caller must do without.
/// `replaced`: the stored bytes a refresh replaces; a refresh never waits for another
/// holder.
pub(super) async fn acquire<S: Shape, St: Store>(
    call: &Call<'_, St>,
    mut claim: Claim,
    versions: &[u64],
    replaced: Option<&[u8]>,
    flight: &LeaderGuard<'_>,
) -> Acquired<S, St> {
    let (cx, store, policy) = (call.cx, call.store, call.policy);
    let refreshing = replaced.is_some();
    let duration = policy.lease();
    // Registered before the first request, so no fill or release can slip by unseen.
    let registration = cx.fills.register(&call.key);
    let mut patience = Patience::new(call);
    // A value found unusable (stale, corrupt, another type): the claim is taken over it.
    let mut unusable: Option<Vec<u8>> = None;
    loop {
        let budget = patience.budget(call);
        let announced = registration.watch.filled.notified();
        let mut announced = std::pin::pin!(announced);
        announced.as_mut().enable();
        let expected = match (unusable.as_deref(), replaced) {
            (Some(bytes), _) | (None, Some(bytes)) => Expected::Bytes(bytes),
            (None, None) => Expected::Nothing,
        };
        let replacing_current = unusable.is_none() && refreshing;
        // A value this request finds is as new as the request, and so current for every
        // waiter that joined before it was sent: lock waiters in other processes share
        // the holder's fill with all of their own callers. A tagged value is also judged
        // by the tag versions read when the load started.
        let mark = if versions.is_empty() {
            flight.read()
        } else {
            flight.start()
        };
        // A request that gets no answer may still have taken the claim.
        let held = MayHold::new(store, claim, duration, &cx.fail_open);
        let remaining = match budget.run(store.acquire(held.claim(), duration, expected)).await {
            Ok(Acquire::Won { over_expected }) => {
                let replaced_gone = refreshing && !(replacing_current && over_expected);
                return Acquired::Won { held, replaced_gone };
            }
            Ok(Acquire::Held { remaining }) => {
                claim = held.not_ours();
                if refreshing {
                    return Acquired::Busy;
                }
                remaining
            }
            Ok(Acquire::Value(entry)) => {
                claim = held.not_ours();
                if let Some((out, negative)) = found::<S>(cx, policy, &entry, versions, refreshing) {
                    return Acquired::Found { out, negative, mark };
                }
                // Ask again at once, for the claim over it.
                unusable = Some(entry.bytes);
                continue;
            }
            Err(e) => {
                // A request that got no answer may still have taken the claim.
                let unanswered = if e.sent() {
                    Some(held)
                } else {
                    held.not_ours();
                    None
                };
                call.failed(e);
                return if refreshing {
                    Acquired::Busy
                } else {
                    Acquired::Unfenced { unanswered }
                };
            }
        };
        let Some(wait) = patience.next_wait(call, remaining) else {
            return Acquired::Unfenced { unanswered: None };
        };
        // Woken by the holder's fill or release; the wait is the fallback.
        let _ = tokio::time::timeout(wait, announced).await;
    }
}

/// How long a miss waits for another caller's lease.
struct Patience {
    /// Past this, stop waiting for a holder that keeps renewing and load (fail open).
    give_up: Instant,
    /// Requests sent while waiting for a holder are bounded by the wait, not by the
    /// call's Redis budget: a waiter polls for as long as the holder keeps its lease.
    waiting: Option<Budget>,
    /// When the wait began, for `redis_cached_lock_wait_seconds`.
    since: Option<Instant>,
    function: &'static str,
}

/// A wait ends however the call goes on: with a value, the claim, or no longer waiting.
impl Drop for Patience {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            telemetry::lock_wait(self.function, since.elapsed());
        }
    }
}

impl Patience {
    fn new<St: Store>(call: &Call<'_, St>) -> Self {
        Self {
            give_up: later(Instant::now(), call.policy.wait_budget()),
            waiting: None,
            since: None,
            function: call.policy.name,
        }
    }

    /// The budget of the next request: the call's, until it first waits.
    fn budget<'a, St: Store>(&'a self, call: &'a Call<'_, St>) -> &'a Budget {
        self.waiting.as_ref().unwrap_or(&call.budget)
    }

    /// How long to wait before asking again, with the lease held for `remaining`;
    /// `None`: waited long enough.
    fn next_wait<St: Store>(&mut self, call: &Call<'_, St>, remaining: Duration) -> Option<Duration> {
        if self.waiting.is_none() {
            call.cx.counters.bump(Count::LockWaits);
            self.waiting = Some(Budget::new(Duration::MAX));
            self.since = Some(Instant::now());
        }
        let now = Instant::now();
        if now >= self.give_up {
            return None;
        }
        // Announcements wake a waiter; the poll is a safety net for a lost one.
        let poll = if call.store.announcements().is_some() {
            POLL_WITH_ANNOUNCEMENTS
        } else {
            POLL_WITHOUT_ANNOUNCEMENTS
        };
        Some(
            remaining
                .min(poll)
                .min(self.give_up - now)
                .max(Duration::from_millis(1)),
        )
    }
}
