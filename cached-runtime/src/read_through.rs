//! The read-through algorithm. Every fail-open branch is in this file.
//!
//! 1. `GET` the key: the only round trip of a hit.
//! 2. Miss: join the key's in-process flight; one caller leads, the others wait for it.
//! 3. The leader asks for the lease in one round trip that also re-checks the value.
//!    Under `lock` only one caller in the deployment gets it; the others wait for the
//!    holder's fill or release announcement (a poll is the fallback), then ask again.
//!    Without `lock` every loader joins the key's fence instead and nobody waits.
//! 4. The leader runs the loader (renewing the lease) and stores the result only if its
//!    lease is still valid: an invalidation during the load voids the fill.
//!
//! Any Redis failure on the way runs the loader and returns its result.

use std::time::Duration;

use tokio::time::Instant;

use crate::Policy;
use crate::backend::{Acquire, Entry, Lease, StoreError};
use crate::budget::Budget;
use crate::cache::{Cache, Inner};
use crate::coalesce::{self, Join, LeaderGuard, Outcome, Shared};
use crate::codec::{self, DECODE_LIMIT, Decoded, Freshness, Timing, Unstorable};
use crate::key::{fence_key, full_key, lease_key, tag_key};
use crate::lock::{LeaseGuard, hold_lease};
use crate::random::new_token;
use crate::shape::{Loaded, Shape};
use crate::stats::Counters;
use crate::time::later;

/// How often a waiter asks again while announcements are live (a safety net for a lost
/// message) and while they are not.
const POLL_WITH_ANNOUNCEMENTS: Duration = Duration::from_millis(250);
const POLL_WITHOUT_ANNOUNCEMENTS: Duration = Duration::from_millis(20);

pub(crate) async fn read_through<S: Shape>(
    cache: &Cache,
    policy: &Policy,
    rendered: &str,
    tags: &[String],
    load: impl Future<Output = S::Output>,
) -> S::Output {
    let inner = &*cache.inner;
    let key = full_key(&inner.prefix, rendered);
    let counters = &inner.counters;
    let started = Instant::now();

    // A tagged value is read with its tags' versions, in the same round trip.
    let mut tagging = Tagging {
        keys: Vec::new(),
        versions: Some(Vec::new()),
    };
    let read = if tags.is_empty() {
        inner.store.get(&key, policy.timed()).await
    } else {
        tagging.keys = tags.iter().map(|tag| tag_key(&inner.prefix, tag)).collect();
        inner
            .store
            .get_tagged(&key, &tagging.keys, policy.timed())
            .await
            .map(|(value, versions)| {
                // A tag with no version yet: the value cannot be current; the load creates it.
                tagging.versions = versions.into_iter().collect();
                value
            })
    };
    match read {
        Ok(Some(bytes)) => match tagging
            .versions
            .as_deref()
            .and_then(|v| answer::<S>(inner, policy, &bytes, v, true))
        {
            Some(Answer::Value(out)) => {
                Counters::bump(&counters.hits);
                return out;
            }
            Some(Answer::Negative(out)) => {
                Counters::bump(&counters.negative_hits);
                return out;
            }
            Some(Answer::Due { value, stale }) => {
                let current = Current {
                    value,
                    stale,
                    bytes: bytes.bytes,
                };
                let call = Call::new(cache, policy, key, started);
                return Box::pin(refresh::<S>(call, tagging, load, current)).await;
            }
            None => {}
        },
        Ok(None) => {}
        Err(e) => {
            tagging.versions = None;
            inner.failed(e);
        }
    }
    Counters::bump(&counters.misses);
    // Boxed: the miss path's state is large, and the future of every hit would carry it.
    let call = Call::new(cache, policy, key, started);
    Box::pin(miss::<S>(call, tagging, load)).await
}

/// One call past its first read: what every later step needs.
struct Call<'a> {
    cache: &'a Cache,
    policy: &'a Policy,
    key: String,
    budget: Budget,
}

impl<'a> Call<'a> {
    /// `started`: when the call's first read was sent; that read counts against the budget.
    fn new(cache: &'a Cache, policy: &'a Policy, key: String, started: Instant) -> Self {
        let budget = Budget::new(cache.inner.call_budget);
        budget.spend(started.elapsed());
        Self {
            cache,
            policy,
            key,
            budget,
        }
    }

    fn inner(&self) -> &'a Inner {
        &self.cache.inner
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
    async fn resolve(&mut self, call: &Call<'_>) -> Result<&[u64], StoreError> {
        if self.versions.is_none() {
            self.versions = Some(if self.keys.is_empty() {
                Vec::new()
            } else {
                let life = call.policy.kept();
                call.budget
                    .run(call.inner().store.tag_versions_for_load(&self.keys, life))
                    .await?
            });
        }
        Ok(self.versions.as_deref().unwrap_or_default())
    }
}

/// A stale hit, or an early refresh: one caller refreshes (in this process, the flight's
/// leader; across processes, the lease holder); every other caller gets the current
/// value at once.
async fn refresh<S: Shape>(
    call: Call<'_>,
    mut tagging: Tagging,
    load: impl Future<Output = S::Output>,
    current: Current<S::Value>,
) -> S::Output {
    match call.inner().flights.join(&call.key, &tagging.keys) {
        Join::Leader(flight) => {
            // Counted now, so a refresh whose caller is dropped or panics still counts;
            // moved to another counter if it ends up answered with a found value.
            Counters::bump(&call.inner().counters.refreshes);
            lead::<S>(&call, &mut tagging, load, flight, Some(current)).await
        }
        Join::Waiter(_) => {
            current.count(call.inner());
            S::from_value(current.value)
        }
    }
}

/// After a miss: share a load already running in this process, or lead one.
async fn miss<S: Shape>(call: Call<'_>, mut tagging: Tagging, load: impl Future<Output = S::Output>) -> S::Output {
    let (inner, policy) = (call.inner(), call.policy);
    let counters = &inner.counters;
    loop {
        match inner.flights.join(&call.key, &tagging.keys) {
            Join::Leader(flight) => return lead::<S>(&call, &mut tagging, load, flight, None).await,
            // Bounded, in case the leader's future is kept but no longer polled.
            Join::Waiter(waiter) => match coalesce::wait(waiter, policy.wait_budget().saturating_mul(2)).await {
                Outcome::Done(shared) => {
                    if let Some(out) = shared.downcast_ref::<Shared<S::Value>>().and_then(S::from_shared) {
                        Counters::bump(&counters.coalesced);
                        return out;
                    }
                    // Another function's result under the same key: load our own.
                    Counters::bump(&counters.loads);
                    return load.await;
                }
                // Errors are not shared: each caller gets its own loader's result.
                Outcome::Failed => {
                    Counters::bump(&counters.loads);
                    return load.await;
                }
                // No result for this call (see `coalesce`): join or lead a new load.
                Outcome::Retry | Outcome::Voided(_) => continue,
            },
        }
    }
}

enum Answer<T, V> {
    Value(T),
    Negative(T),
    /// A value due for refresh, raw: fresh but drawn for an early refresh (`refresh`),
    /// or past its ttl within `stale` (`stale: true`), served while it is refreshed.
    Due {
        value: V,
        stale: bool,
    },
}

/// The value a refresh replaces, served to everyone but the refreshing caller.
struct Current<V> {
    value: V,
    /// Past its ttl (`stale`), rather than refreshed early (`refresh`).
    stale: bool,
    /// The stored bytes it was read from: the refresh takes the lease over exactly these.
    bytes: Vec<u8>,
}

impl<V> Current<V> {
    /// Counts a call answered with it.
    fn count(&self, inner: &Inner) {
        Counters::bump(self.counter(inner));
    }

    fn counter<'a>(&self, inner: &'a Inner) -> &'a std::sync::atomic::AtomicU64 {
        if self.stale {
            &inner.counters.stale_hits
        } else {
            &inner.counters.hits
        }
    }

    /// The refreshing caller, counted as a refresh when it started, was answered with
    /// this value instead.
    fn recount(&self, inner: &Inner) {
        Counters::recount(&inner.counters.refreshes, self.counter(inner));
    }
}

/// Reads a stored entry; `None` means "treat as a miss". Unreadable entries and values
/// of another type are counted on the first read of a call only (`first_read`).
fn answer<S: Shape>(
    inner: &Inner,
    policy: &Policy,
    entry: &Entry,
    tags: &[u64],
    first_read: bool,
) -> Option<Answer<S::Output, S::Value>> {
    let freshness = Freshness {
        remaining: entry.remaining,
        stale_window: policy.stale.unwrap_or_default(),
        early_beta: policy.refresh_beta,
    };
    match codec::decode::<S::Value>(&entry.bytes, policy.codec, policy.version, tags, freshness) {
        Decoded::Value(value) => Some(Answer::Value(S::from_value(value))),
        Decoded::Early(value) => Some(Answer::Due { value, stale: false }),
        Decoded::Stale(value) => Some(Answer::Due { value, stale: true }),
        Decoded::Negative if policy.negative.is_some() => S::absent().map(Answer::Negative),
        Decoded::Negative | Decoded::OtherFormat => None,
        Decoded::Unreadable => {
            if first_read {
                Counters::bump(&inner.counters.unreadable);
            }
            None
        }
        Decoded::OtherType { stored } => {
            if first_read {
                Counters::bump(&inner.counters.type_mismatches);
                if policy.first_other_type() {
                    let found = codec::stored_type_name(stored).map_or_else(
                        || "a type this process has not stored".to_owned(),
                        |name| format!("`{name}`"),
                    );
                    tracing::warn!(
                        function = policy.name,
                        "redis-cached: `{}` found a value of another type under its key ({found}, expected \
                         `{}`); treated as a miss. Two functions share this key template, or a generic \
                         function is used at two types",
                        policy.name,
                        std::any::type_name::<S::Value>(),
                    );
                }
            }
            None
        }
    }
}

/// How the leader may go on after asking for the key's claim.
enum Claim<S: Shape> {
    /// The claim is ours: load under it and fill. `replaced_gone`: a refresh found the
    /// value it replaces gone (invalidated, or expired) when it took the claim.
    Won { replaced_gone: bool },
    /// A value was stored meanwhile; it answers the call (`negative`: a stored "not
    /// found").
    Found { out: S::Output, negative: bool },
    /// A refresh that another caller performs (or that Redis refused): serve the value
    /// being refreshed.
    Current,
    /// No claim (Redis failing, or a holder that never finished): load without one; the
    /// result is not stored.
    Unfenced,
}

/// The flight leader: get the claim (or wait for its holder to finish), load, fill.
/// With a `current` value it refreshes: it never waits for another holder (it serves the
/// current value instead), and serves it too if the loader fails (stale-if-error).
async fn lead<S: Shape>(
    call: &Call<'_>,
    tagging: &mut Tagging,
    load: impl Future<Output = S::Output>,
    flight: LeaderGuard<'_>,
    current: Option<Current<S::Value>>,
) -> S::Output {
    let (inner, policy, key) = (call.inner(), call.policy, call.key.as_str());
    // One refresh at a time in the deployment, with or without `lock`.
    let exclusive = policy.lock.is_some() || current.is_some();
    let lease = Lease {
        key: key.to_owned(),
        lease_key: if exclusive { lease_key(key) } else { fence_key(key) },
        token: new_token(),
        exclusive,
    };
    let mut guard = LeaseGuard::new(call.cache, lease, policy.lease());
    // Whatever is read or loaded from here on may be voided by an invalidation that
    // callers joining later started after.
    flight.loading();
    let (claim, versions) = match tagging.resolve(call).await {
        Ok(versions) => {
            let versions = versions.to_vec();
            let replaced = current.as_ref().map(|current| current.bytes.as_slice());
            let claim = claim::<S>(call, &mut guard, &versions, replaced).await;
            (claim, versions)
        }
        Err(e) => {
            // Without its tags' versions a result cannot be stored safely: load only.
            inner.failed(e);
            (Claim::Unfenced, Vec::new())
        }
    };
    match claim {
        Claim::Found { out, negative } => {
            if current.is_some() {
                let counters = &inner.counters;
                let answered = if negative {
                    &counters.negative_hits
                } else {
                    &counters.hits
                };
                Counters::recount(&counters.refreshes, answered);
            }
            // Read after waiters may have joined: only for those that joined before.
            flight.finish(S::outcome(&out, true));
            out
        }
        Claim::Current => {
            let current = current.unwrap_or_else(|| unreachable!("only a refresh serves the current value"));
            current.recount(inner);
            // The value this call found is not a load result: waiters load themselves.
            flight.finish(Outcome::Retry);
            S::from_value(current.value)
        }
        Claim::Unfenced => {
            Counters::bump(&inner.counters.loads);
            let announcements = inner.store.announcements();
            let out = load.await;
            // Nothing can tell this load that it was voided. Its result is for every
            // caller that joined it while announcements (which detach voided loads)
            // reached this process throughout, or while Redis is out of reach (then
            // coalescing is what protects the database); otherwise only for the callers
            // that joined before it started.
            let heard = announcements.is_some() && announcements == inner.store.announcements();
            let settled = if heard || !inner.store.reachable() {
                Settled::Unclaimed
            } else {
                Settled::Unconfirmed
            };
            settle::<S>(inner, policy, flight, current, out, settled)
        }
        Claim::Won { replaced_gone } => {
            Counters::bump(&inner.counters.loads);
            let started = Instant::now();
            let out = hold_lease(inner, guard.lease(), policy.lease(), load).await;
            let load_time = started.elapsed();
            // A refresh whose loader says the value no longer exists, with `None` not
            // cached, clears the old value (under its lease) rather than keep serving it.
            let clear = current.is_some() && policy.negative.is_none();
            let mut settled = fill_or_release::<S>(call, guard.lease(), &versions, load_time, &out, clear).await;
            if !matches!(settled, Settled::Failed) {
                guard.disarm();
            }
            // Checked after the fill, so a tag invalidated at any time during the load is
            // seen (a stored value under an old version is never read anyway).
            if matches!(settled, Settled::Kept) && tags_moved(call, tagging, &versions).await {
                settled = Settled::Voided;
            }
            // The value this refresh replaces was gone when it took the claim (invalidated,
            // or past its window): stale-if-error must not bring it back.
            let current = current.filter(|_| !replaced_gone);
            drop(guard);
            settle::<S>(inner, policy, flight, current, out, settled)
        }
    }
}

/// Asks for the claim until it is won, a value turns up, or the caller must do without.
/// `replaced`: the stored bytes a refresh replaces.
async fn claim<S: Shape>(
    call: &Call<'_>,
    guard: &mut LeaseGuard,
    versions: &[u64],
    replaced: Option<&[u8]>,
) -> Claim<S> {
    let (inner, policy) = (call.inner(), call.policy);
    let refreshing = replaced.is_some();
    let duration = policy.lease();
    // Registered before the first request, so no fill or release can slip by unseen.
    let key = guard.lease().key.clone();
    let registration = inner.fills.register(&key);
    // Past this, stop waiting for a holder that keeps renewing and load (fail open).
    let give_up = Instant::from_std(later(std::time::Instant::now(), policy.wait_budget()));
    let mut counted_wait = false;
    // Requests sent while waiting for a holder are bounded by the wait, not by the call's
    // Redis budget: a waiter polls for as long as the holder keeps its lease.
    let waiting = Budget::new(Duration::MAX);
    loop {
        let budget = if counted_wait { &waiting } else { &call.budget };
        let announced = registration.watch.filled.notified();
        let mut announced = std::pin::pin!(announced);
        announced.as_mut().enable();
        // A request that gets no answer may still have taken the lease.
        guard.arm();
        let mut replaced_gone = refreshing;
        let acquired = match budget.run(inner.store.acquire(guard.lease(), duration, true)).await {
            // The value this refresh replaces, still there: take the lease over it.
            Ok(Acquire::Value(entry)) if replaced == Some(entry.bytes.as_slice()) => {
                replaced_gone = false;
                budget.run(inner.store.acquire(guard.lease(), duration, false)).await
            }
            // Filled meanwhile (by another caller, or another refresh). A refresh takes a
            // new value as it is: drawing an early refresh for it again would make early
            // refreshes need two draws.
            Ok(Acquire::Value(entry)) => {
                let entry = if refreshing { entry.untimed() } else { entry };
                let found = match answer::<S>(inner, policy, &entry, versions, false) {
                    Some(Answer::Value(out)) => Some((out, false)),
                    Some(Answer::Due { value, stale: false }) => Some((S::from_value(value), false)),
                    Some(Answer::Negative(out)) => Some((out, true)),
                    // Stale, or unusable (corrupt, other version, another type).
                    Some(Answer::Due { stale: true, .. }) | None => None,
                };
                if let Some((out, negative)) = found {
                    guard.disarm();
                    return Claim::Found { out, negative };
                }
                // Take the lease over it.
                budget.run(inner.store.acquire(guard.lease(), duration, false)).await
            }
            other => other,
        };
        let wait = match acquired {
            Ok(Acquire::Won) => return Claim::Won { replaced_gone },
            Ok(Acquire::Held { remaining }) => {
                guard.disarm();
                if refreshing {
                    return Claim::Current;
                }
                remaining
            }
            // Only returned when the value was asked for; load unfenced rather than guess.
            Ok(Acquire::Value(_)) => {
                guard.disarm();
                return if refreshing { Claim::Current } else { Claim::Unfenced };
            }
            Err(e) => {
                // A request that got no answer may still have taken the lease: keep the guard.
                if !e.sent() {
                    guard.disarm();
                }
                inner.failed(e);
                return if refreshing { Claim::Current } else { Claim::Unfenced };
            }
        };
        if !counted_wait {
            Counters::bump(&inner.counters.lock_waits);
            counted_wait = true;
        }
        let now = Instant::now();
        if now >= give_up {
            return Claim::Unfenced;
        }
        // Woken by the holder's fill or release; the poll is the fallback.
        let poll = if inner.store.announcements().is_some() {
            POLL_WITH_ANNOUNCEMENTS
        } else {
            POLL_WITHOUT_ANNOUNCEMENTS
        };
        let wait = wait.min(poll).min(give_up - now).max(Duration::from_millis(1));
        let _ = tokio::time::timeout(wait, announced).await;
    }
}

/// Whether a tag of the call was invalidated since its versions were read (an error
/// counts as moved). Read after the load: a tag invalidation does not touch the key's
/// claim, and its message may never arrive. The same request keeps the tags alive for
/// at least as long as the value will be.
async fn tags_moved(call: &Call<'_>, tagging: &Tagging, versions: &[u64]) -> bool {
    if versions.is_empty() {
        return false;
    }
    let touched = call.inner().store.touch_tags(&tagging.keys, call.policy.kept());
    match call.budget.run(touched).await {
        Ok(now) => now.len() != versions.len() || now.iter().zip(versions).any(|(now, then)| *now != Some(*then)),
        Err(e) => {
            call.inner().failed(e);
            true
        }
    }
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

/// Hands a loaded result to the caller and the flight's waiters. A refresh whose loader
/// failed serves the value it replaces (stale-if-error) to its own caller only, and only
/// if no invalidation voided its claim.
fn settle<S: Shape>(
    inner: &Inner,
    policy: &Policy,
    flight: LeaderGuard<'_>,
    current: Option<Current<S::Value>>,
    out: S::Output,
    settled: Settled,
) -> S::Output {
    let voided = matches!(settled, Settled::Voided | Settled::Failed | Settled::Unconfirmed);
    flight.finish(S::outcome(&out, voided));
    let Some(current) = current else { return out };
    if !matches!(S::classify(&out), Loaded::Failed) {
        return out;
    }
    if matches!(settled, Settled::Voided) {
        // Invalidated while refreshing: the old value is known to be wrong.
        return out;
    }
    current.recount(inner);
    if let Some(suppressed) = inner.errors_logged.admit() {
        tracing::warn!(
            function = policy.name,
            suppressed,
            "redis-cached: the loader failed while refreshing a cached value; serving the cached value"
        );
    }
    S::from_value(current.value)
}

/// Stores the loader's result under the lease, or gives the lease up (`clear`: and drops
/// the stored value, for a "not found" that is not cached); says whether the claim held
/// through the load.
async fn fill_or_release<S: Shape>(
    call: &Call<'_>,
    lease: &Lease,
    tags: &[u64],
    load_time: Duration,
    out: &S::Output,
    clear: bool,
) -> Settled {
    let (inner, policy) = (call.inner(), call.policy);
    let entry = match S::classify(out) {
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
                    Counters::bump(&inner.counters.unstorable);
                    if policy.first_unstorable() {
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
    };
    let result = match entry {
        Some((bytes, ttl)) => call
            .budget
            .run(inner.store.fill(lease, &bytes, ttl))
            .await
            .inspect(|stored| {
                if !stored {
                    tracing::debug!(
                        key = lease.key,
                        "redis-cached: lease voided during the load (invalidated); result not stored"
                    );
                }
            }),
        None if clear && matches!(S::classify(out), Loaded::Absent) => call.budget.run(inner.store.clear(lease)).await,
        None => call.budget.run(inner.store.release(lease)).await,
    };
    match result {
        Ok(true) => Settled::Kept,
        Ok(false) => Settled::Voided,
        Err(e) => {
            inner.failed(e);
            Settled::Failed
        }
    }
}

/// Says once per function, loudly, why its values are not cached and what to do.
fn log_unstorable(policy: &Policy, why: &Unstorable) {
    match why {
        Unstorable::TooLarge(bytes) => tracing::error!(
            function = policy.name,
            "redis-cached: `{}` returned a value of {bytes} bytes, over the {} MiB decode limit; \
             it is not cached",
            policy.name,
            DECODE_LIMIT / (1024 * 1024),
        ),
        Unstorable::NotReadBack(reason) => tracing::error!(
            function = policy.name,
            codec = policy.codec.name(),
            "redis-cached: `{}` returns values that the {} codec cannot read back ({reason}); they are \
             not cached. Use `#[redis_cached(codec = \"msgpack\")]` (or \"json\").",
            policy.name,
            policy.codec.name(),
        ),
    }
}
