//! The read-through algorithm, written once for every store. Every fail-open branch is
//! in this module.
//!
//! 0. With a near cache: a value kept in this process and still current is the answer,
//!    with no round trip (`near`).
//! 1. `GET` the key: the only round trip of a hit ([`read_through`]). A hit is kept in
//!    the near cache, unless an invalidation arrived while it was read.
//! 2. Miss: join the key's in-process flight; one caller leads, the others wait for it
//!    (`miss`). A value due for refresh is refreshed by one caller while the others are
//!    served it (`refresh`).
//! 3. The leader asks for the key's claim in one round trip that also re-checks the
//!    value (`acquire`). Under `lock` only one caller in the deployment gets the lease;
//!    the others wait for the holder's fill or release announcement (a poll is the
//!    fallback), then ask again. Without `lock` every loader joins the key's fence and
//!    nobody waits.
//! 4. The leader runs the loader (renewing the claim) and stores the result only if its
//!    claim still holds: an invalidation during the load voids the fill (`load`).
//!
//! Any Redis failure on the way runs the loader and returns its result.

mod acquire;
mod answer;
mod load;
mod miss;
mod refresh;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::Policy;
use crate::budget::Budget;
use crate::coalesce::Flights;
use crate::fail_open::FailOpen;
use crate::key::{full_key, tag_key};
use crate::near::{NearCache, Ticket};
use crate::shape::Shape;
use crate::stats::{Count, Counters, Outcome};
use crate::store::{Entry, Store, StoreError};
use crate::wake::FillWaiters;
use answer::{Answer, answer};
use refresh::Current;

/// What the read path needs of a cache besides its store.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) prefix: String,
    pub(crate) counters: Arc<Counters>,
    pub(crate) fail_open: Arc<FailOpen>,
    pub(crate) flights: Arc<Flights>,
    pub(crate) fills: Arc<FillWaiters>,
    /// The Redis time one call may spend in all (see `budget`).
    pub(crate) call_budget: Duration,
    /// The in-process tier, when the cache was built with one.
    pub(crate) near: Option<Arc<NearCache>>,
}

#[cfg(test)]
impl Context {
    /// A context wired to its listener as a cache wires them (no prefix), for tests
    /// that play several processes over one store.
    pub(crate) fn wired(origin: u64, call_budget: Duration) -> (Self, Arc<crate::wake::Wake>) {
        let counters = Arc::<Counters>::default();
        let (flights, fills) = (Arc::<Flights>::default(), Arc::<FillWaiters>::default());
        let wake = Arc::new(crate::wake::Wake::new(origin, flights.clone(), fills.clone()));
        let cx = Context {
            prefix: String::new(),
            fail_open: Arc::new(FailOpen::new(counters.clone())),
            counters,
            flights,
            fills,
            call_budget,
            near: None,
        };
        (cx, wake)
    }
}

/// Reads `rendered` through the cache: a near hit, a hit, a refresh or a miss; `came`
/// says which the call has come to, also if its future is dropped before the end.
#[cfg(test)]
pub(crate) async fn read_through<S: Shape, St: Store>(
    cx: &Context,
    store: &St,
    policy: &Policy,
    (rendered, tags): (&str, &[String]),
    load: impl Future<Output = S::Output>,
    came: &Came,
) -> S::Output {
    if let Some(out) = near_hit::<S>(cx, policy, rendered, tags) {
        pass_near_hit().await;
        came.set(Outcome::NearHit);
        return out;
    }
    read_redis::<S, St>(cx, store, policy, (rendered, tags), load, came).await
}

/// Step 0: the value of `rendered` kept in the near cache, if it is still current.
pub(crate) fn near_hit<S: Shape>(cx: &Context, policy: &Policy, rendered: &str, tags: &[String]) -> Option<S::Output> {
    policy.near_age()?;
    let out = cx.near.as_deref()?.get::<S>(rendered, tags, policy)?;
    cx.counters.bump(Count::NearHits);
    Some(out)
}

/// What a near hit does before it returns: a near hit touches nothing that yields, and a
/// loop of them would starve the tasks that hear Redis's invalidations.
pub(crate) async fn pass_near_hit() {
    tokio::task::consume_budget().await;
}

/// Reads `rendered` from Redis (steps 1 to 4), the near cache having no current value;
/// `came` says what the call has come to, also if its future is dropped before the end.
pub(crate) async fn read_redis<S: Shape, St: Store>(
    cx: &Context,
    store: &St,
    policy: &Policy,
    (rendered, tags): (&str, &[String]),
    load: impl Future<Output = S::Output>,
    came: &Came,
) -> S::Output {
    let near = cx.near.as_deref().zip(policy.near_age());
    let key = full_key(&cx.prefix, rendered);
    let started = Instant::now();
    let mut tagging = Tagging {
        keys: tags.iter().map(|tag| tag_key(&cx.prefix, tag)).collect(),
        versions: Some(Vec::new()),
    };
    // Taken before the read is sent: an invalidation that arrives meanwhile voids it.
    let ticket = near.and_then(|(near, max_age)| near.ticket(&key, &tagging.keys, max_age));
    // The near cache keeps a value no longer than Redis does.
    let timed = policy.timed() || ticket.is_some();
    match first_read(store, &key, &mut tagging, timed).await {
        Ok(Some(entry)) => match tagging
            .versions
            .as_deref()
            .and_then(|versions| answer::<S>(cx, policy, &entry.bytes, entry.remaining, versions, true))
        {
            Some(Answer::Value(out)) => {
                came.counted(&cx.counters, Count::Hits);
                keep_near::<S>(cx, ticket, (rendered, tags), &out, policy, &entry);
                return out;
            }
            Some(Answer::Negative(out)) => {
                came.counted(&cx.counters, Count::NegativeHits);
                keep_near::<S>(cx, ticket, (rendered, tags), &out, policy, &entry);
                return out;
            }
            Some(Answer::Due { value, stale }) => {
                let current = Current {
                    value,
                    stale,
                    bytes: entry.bytes,
                };
                let call = Call::new(cx, store, policy, key, started, came);
                return Box::pin(refresh::refresh::<S, St>(&call, tagging, load, current)).await;
            }
            None => {}
        },
        Ok(None) => {}
        Err(e) => {
            tagging.versions = None;
            let call = Call::new(cx, store, policy, key, started, came);
            call.failed(e);
            return Box::pin(call.miss::<S>(tagging, load)).await;
        }
    }
    // Boxed: the miss path's state is large, and the future of every hit would carry it.
    let call = Call::new(cx, store, policy, key, started, came);
    Box::pin(call.miss::<S>(tagging, load)).await
}

/// The first read of a call: the entry and, for a tagged value, its tags' versions in
/// the same round trip (into `tagging`; a tag with no version yet means the value cannot
/// be current, and the load creates it).
async fn first_read<St: Store>(
    store: &St,
    key: &str,
    tagging: &mut Tagging,
    timed: bool,
) -> Result<Option<Entry>, StoreError> {
    if tagging.keys.is_empty() {
        return store.get(key, timed).await;
    }
    let (value, versions) = store.get_tagged(key, &tagging.keys, timed).await?;
    tagging.versions = versions.into_iter().collect();
    Ok(value)
}

/// Keeps a Redis hit of `key` with `tags` (as rendered) in the near cache, if the read
/// took a ticket.
fn keep_near<S: Shape>(
    cx: &Context,
    ticket: Option<Ticket>,
    (key, tags): (&str, &[String]),
    out: &S::Output,
    policy: &Policy,
    entry: &Entry,
) {
    if let (Some(near), Some(ticket)) = (cx.near.as_deref(), ticket) {
        near.keep::<S>(ticket, key, tags, out, policy, &entry.bytes, entry.remaining);
    }
}

/// One call past its first read: what every later step needs.
struct Call<'a, St> {
    cx: &'a Context,
    store: &'a St,
    policy: &'a Policy,
    key: String,
    budget: Budget,
    /// What the call has come to so far.
    came: &'a Came,
}

impl<'a, St: Store> Call<'a, St> {
    /// `started`: when the call's first read was sent; that read counts against the budget.
    fn new(cx: &'a Context, store: &'a St, policy: &'a Policy, key: String, started: Instant, came: &'a Came) -> Self {
        let budget = Budget::new(cx.call_budget);
        budget.spend(started.elapsed());
        Self {
            cx,
            store,
            policy,
            key,
            budget,
            came,
        }
    }

    /// Counts and logs a Redis error the call fails open on.
    fn failed(&self, error: StoreError) {
        self.came.failed(matches!(error, StoreError::Skipped));
        self.cx.fail_open.failed(error);
    }

    /// Counts `count`, and the call as answered the way it says.
    fn count(&self, count: Count) {
        self.came.counted(&self.cx.counters, count);
    }

    /// Moves the call's count made in advance (`from`) to `to`, which says how it was
    /// answered.
    fn recount(&self, from: Count, to: Count) {
        self.cx.counters.recount(from, to);
        if let Some(outcome) = to.outcome() {
            self.came.set(outcome);
        }
    }

    /// A miss (counted as one), after its first read.
    async fn miss<S: Shape>(self, tagging: Tagging, load: impl Future<Output = S::Output>) -> S::Output {
        self.cx.counters.bump(Count::Misses);
        miss::miss::<S, St>(&self, tagging, load).await
    }
}

/// What a call has come to so far: a miss until the step that answers it names it,
/// unless a Redis error (or a skipped operation) on the way already has. Atomic only so
/// a call's steps may share it.
#[derive(Debug)]
pub(crate) struct Came(AtomicU8);

impl Came {
    /// A call that has not been answered yet: a miss so far.
    pub(crate) fn new() -> Self {
        Self(AtomicU8::new(Outcome::Miss as u8))
    }

    pub(crate) fn get(&self) -> Outcome {
        Outcome::ALL[usize::from(self.0.load(Ordering::Relaxed))]
    }

    /// Counts `count` in `counters`, and the call as answered the way it says.
    fn counted(&self, counters: &Counters, count: Count) {
        counters.bump(count);
        if let Some(outcome) = count.outcome() {
            self.set(outcome);
        }
    }

    /// The step that answers the call, unless it failed open.
    fn set(&self, outcome: Outcome) {
        if !matches!(self.get(), Outcome::Error | Outcome::Skipped) {
            self.0.store(outcome as u8, Ordering::Relaxed);
        }
    }

    /// A Redis operation of the call failed (`skipped`: it was not attempted). An error
    /// names the call over a skipped operation.
    fn failed(&self, skipped: bool) {
        let outcome = if skipped { Outcome::Skipped } else { Outcome::Error };
        if self.get() != Outcome::Error {
            self.0.store(outcome as u8, Ordering::Relaxed);
        }
    }
}

/// The tags of a call: their version keys, and their current versions when known.
struct Tagging {
    keys: Vec<String>,
    versions: Option<Vec<u64>>,
}

impl Tagging {
    /// The versions the load runs under, read (or created) before it starts, so a tag
    /// invalidated during the load makes its result stale at once.
    async fn resolve<St: Store>(&mut self, call: &Call<'_, St>) -> Result<Vec<u64>, StoreError> {
        if self.versions.is_none() {
            self.versions = Some(if self.keys.is_empty() {
                Vec::new()
            } else {
                let life = call.policy.tag_life();
                call.budget
                    .run(call.store.tag_versions_for_load(&self.keys, life))
                    .await?
            });
        }
        Ok(self.versions.clone().unwrap_or_default())
    }
}
