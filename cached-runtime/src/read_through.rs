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
use crate::backend::{Acquire, Lease, StoreError};
use crate::cache::{Cache, Inner};
use crate::coalesce::{self, Join, LeaderGuard, Outcome, Shared};
use crate::codec::{self, DECODE_LIMIT, Decoded, Freshness, Timing, Unstorable};
use crate::key::{fence_key, full_key, lease_key, tag_key};
use crate::lock::{LeaseGuard, hold_lease, later, new_token};
use crate::shape::{Loaded, Shape};
use crate::stats::Counters;

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

    // A tagged value is read with its tags' versions, in the same round trip.
    let mut tagging = Tagging {
        keys: Vec::new(),
        versions: Some(Vec::new()),
    };
    let read = if tags.is_empty() {
        inner.store.get(&key).await
    } else {
        tagging.keys = tags.iter().map(|tag| tag_key(&inner.prefix, tag)).collect();
        inner
            .store
            .get_tagged(&key, &tagging.keys)
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
            Some(Answer::Early(value)) => {
                let current = Current { value, stale: false };
                return Box::pin(refresh::<S>(cache, policy, &key, tagging, load, current)).await;
            }
            Some(Answer::Stale(value)) => {
                let current = Current { value, stale: true };
                return Box::pin(refresh::<S>(cache, policy, &key, tagging, load, current)).await;
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
    Box::pin(miss::<S>(cache, policy, &key, tagging, load)).await
}

/// The tags of a call: their version keys, and their current versions when known.
struct Tagging {
    keys: Vec<String>,
    versions: Option<Vec<u64>>,
}

impl Tagging {
    /// The versions the load runs under, read (or created) before it starts, so a tag
    /// invalidated during the load makes its result stale at once.
    async fn resolve(&mut self, inner: &Inner) -> Result<&[u64], StoreError> {
        if self.versions.is_none() {
            let mut versions = Vec::with_capacity(self.keys.len());
            for key in &self.keys {
                versions.push(inner.store.tag_version(key).await?);
            }
            self.versions = Some(versions);
        }
        Ok(self.versions.as_deref().unwrap_or_default())
    }
}

/// A stale hit, or an early refresh: one caller refreshes (in this process, the flight's
/// leader; across processes, the lease holder); every other caller gets the current
/// value at once.
async fn refresh<S: Shape>(
    cache: &Cache,
    policy: &Policy,
    key: &str,
    mut tagging: Tagging,
    load: impl Future<Output = S::Output>,
    current: Current<S::Value>,
) -> S::Output {
    match cache.inner.flights.join(key, &tagging.keys) {
        Join::Leader(flight) => lead::<S>(cache, policy, key, &mut tagging, load, flight, Some(current)).await,
        Join::Waiter(_) => {
            current.count(&cache.inner);
            S::from_value(current.value)
        }
    }
}

/// After a miss: share a load already running in this process, or lead one.
async fn miss<S: Shape>(
    cache: &Cache,
    policy: &Policy,
    key: &str,
    mut tagging: Tagging,
    load: impl Future<Output = S::Output>,
) -> S::Output {
    let inner = &*cache.inner;
    let counters = &inner.counters;
    loop {
        match inner.flights.join(key, &tagging.keys) {
            Join::Leader(flight) => return lead::<S>(cache, policy, key, &mut tagging, load, flight, None).await,
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
                Outcome::Abandoned => continue,
            },
        }
    }
}

enum Answer<T, V> {
    Value(T),
    Negative(T),
    /// A fresh value this read refreshes early (`refresh`): the raw value.
    Early(V),
    /// Past its ttl, within `stale`: the raw value, served while it is refreshed.
    Stale(V),
}

/// The value a refresh replaces, served to everyone but the refreshing caller.
struct Current<V> {
    value: V,
    /// Past its ttl (`stale`), rather than refreshed early (`refresh`).
    stale: bool,
}

impl<V> Current<V> {
    /// Counts a call answered with it.
    fn count(&self, inner: &Inner) {
        Counters::bump(if self.stale {
            &inner.counters.stale_hits
        } else {
            &inner.counters.hits
        });
    }
}

/// Reads a stored entry; `None` means "treat as a miss". Unreadable entries and values
/// of another type are counted on the first read of a call only (`first_read`).
fn answer<S: Shape>(
    inner: &Inner,
    policy: &Policy,
    bytes: &[u8],
    tags: &[u64],
    first_read: bool,
) -> Option<Answer<S::Output, S::Value>> {
    let freshness = Freshness {
        now: if policy.timed() { unix_millis() } else { 0 },
        early_beta: policy.refresh_beta,
    };
    match codec::decode::<S::Value>(bytes, policy.codec, policy.version, tags, freshness) {
        Decoded::Value(value) => Some(Answer::Value(S::from_value(value))),
        Decoded::Early(value) => Some(Answer::Early(value)),
        Decoded::Stale(value) => Some(Answer::Stale(value)),
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch: soft expiries are wall-clock, shared by processes.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The flight leader: get the lease (or wait for its holder to finish), load, fill.
/// With a `current` value it refreshes: it never waits for another holder (it serves the
/// current value instead), and serves it too if the loader fails (stale-if-error).
async fn lead<S: Shape>(
    cache: &Cache,
    policy: &Policy,
    key: &str,
    tagging: &mut Tagging,
    load: impl Future<Output = S::Output>,
    flight: LeaderGuard<'_>,
    current: Option<Current<S::Value>>,
) -> S::Output {
    let inner = &*cache.inner;
    let versions = match tagging.resolve(inner).await {
        Ok(versions) => versions.to_vec(),
        Err(e) => {
            // Without its tags' versions a result cannot be stored safely: load only.
            inner.failed(e);
            Counters::bump(&inner.counters.loads);
            return finish::<S>(flight, load.await);
        }
    };
    // One refresh at a time in the deployment, with or without `lock`.
    let exclusive = policy.lock.is_some() || current.is_some();
    let lease = Lease {
        key: key.to_owned(),
        lease_key: if exclusive { lease_key(key) } else { fence_key(key) },
        token: new_token(),
        exclusive,
    };
    let duration = policy.lease();
    let mut guard = LeaseGuard::new(cache, lease, duration);
    // Registered before the first request, so no fill or release can slip by unseen.
    let registration = inner.fills.register(key);
    // Past this, stop waiting for a holder that keeps renewing and load (fail open).
    let give_up = Instant::from_std(later(std::time::Instant::now(), policy.wait_budget()));
    let mut counted_wait = false;

    let fenced = loop {
        let announced = registration.watch.filled.notified();
        let mut announced = std::pin::pin!(announced);
        announced.as_mut().enable();
        // A request that gets no answer may still have taken the lease.
        guard.arm();
        let acquired = match inner.store.acquire(guard.lease(), duration, true).await {
            Ok(Acquire::Value(bytes)) => match answer::<S>(inner, policy, &bytes, &versions, false) {
                // Filled meanwhile (by another caller, or another refresh): use it.
                Some(Answer::Value(out) | Answer::Negative(out)) => {
                    guard.disarm();
                    return finish::<S>(flight, out);
                }
                Some(Answer::Early(value)) if current.is_none() => {
                    guard.disarm();
                    return finish::<S>(flight, S::from_value(value));
                }
                // Unusable (corrupt, other version), or the value this refresh replaces:
                // take the lease over it.
                Some(Answer::Early(_) | Answer::Stale(_)) | None => {
                    inner.store.acquire(guard.lease(), duration, false).await
                }
            },
            other => other,
        };
        if let Some(current) = &current
            && !matches!(acquired, Ok(Acquire::Won))
        {
            // Another caller refreshes it (or Redis is failing): serve the current value.
            // A request that got no answer may still have taken the lease: keep the guard.
            match acquired {
                Err(StoreError::Skipped) | Ok(_) => guard.disarm(),
                Err(_) => {}
            }
            if let Err(e) = acquired {
                inner.failed(e);
            }
            current.count(inner);
            return finish::<S>(flight, S::from_value(current.value.clone()));
        }
        match acquired {
            Ok(Acquire::Won) => break true,
            Ok(Acquire::Held { remaining }) => {
                guard.disarm();
                if !counted_wait {
                    Counters::bump(&inner.counters.lock_waits);
                    counted_wait = true;
                }
                let now = Instant::now();
                if now >= give_up {
                    break false;
                }
                // Woken by the holder's fill or release; the poll is the fallback.
                let poll = if inner.store.fills_announced() {
                    POLL_WITH_ANNOUNCEMENTS
                } else {
                    POLL_WITHOUT_ANNOUNCEMENTS
                };
                let wait = remaining.min(poll).min(give_up - now).max(Duration::from_millis(1));
                let _ = tokio::time::timeout(wait, announced).await;
            }
            // Only returned when the value was asked for; load unfenced rather than guess.
            Ok(Acquire::Value(_)) => {
                guard.disarm();
                break false;
            }
            Err(e) => {
                if matches!(e, StoreError::Skipped) {
                    guard.disarm();
                }
                inner.failed(e);
                break false;
            }
        }
    };
    drop(registration);

    Counters::bump(&inner.counters.loads);
    let out = if fenced {
        let started = Instant::now();
        let out = hold_lease(inner, guard.lease(), duration, load).await;
        let load_time = started.elapsed();
        if fill_or_release::<S>(inner, policy, guard.lease(), &versions, load_time, &out).await {
            guard.disarm();
        }
        out
    } else {
        load.await
    };
    if current.is_some() && fenced && matches!(S::classify(&out), Loaded::Absent) && policy.negative.is_none() {
        // The value this refresh replaces no longer exists, and `None` is not cached:
        // drop the old value rather than keep serving it.
        match inner.store.delete(key).await {
            Ok(()) => guard.disarm(),
            Err(e) => inner.failed(e),
        }
    }
    drop(guard);
    if let Some(current) = current
        && matches!(S::classify(&out), Loaded::Failed)
    {
        // Stale-if-error: the refresh failed; the value is still servable.
        current.count(inner);
        if let Some(suppressed) = inner.errors_logged.admit() {
            tracing::warn!(
                function = policy.name,
                suppressed,
                "redis-cached: the loader failed while refreshing a cached value; serving the cached value"
            );
        }
        return finish::<S>(flight, S::from_value(current.value));
    }
    finish::<S>(flight, out)
}

fn finish<S: Shape>(flight: LeaderGuard<'_>, out: S::Output) -> S::Output {
    flight.finish(S::outcome(&out));
    out
}

/// Stores the loader's result under the lease, or gives the lease up. True when the
/// lease was dealt with; false leaves it to the guard's release.
async fn fill_or_release<S: Shape>(
    inner: &Inner,
    policy: &Policy,
    lease: &Lease,
    tags: &[u64],
    load_time: Duration,
    out: &S::Output,
) -> bool {
    let entry = match S::classify(out) {
        Loaded::Value(value) => {
            let ttl = policy.jittered(policy.ttl);
            // With `stale`, Redis keeps the value for the window past its (soft) expiry.
            let keep = policy.stale.map_or(ttl, |window| ttl.saturating_add(window));
            let timing = policy.timed().then(|| Timing {
                soft_expiry: unix_millis().saturating_add(millis(ttl)),
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
        Some((bytes, ttl)) => inner.store.fill(lease, &bytes, ttl).await.map(|stored| {
            if !stored {
                tracing::debug!(
                    key = lease.key,
                    "redis-cached: lease voided during the load (invalidated); result not stored"
                );
            }
        }),
        None => inner.store.release(lease).await,
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            inner.failed(e);
            false
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
