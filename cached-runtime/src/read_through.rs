//! The read-through algorithm. Every fail-open branch is in this file.
//!
//! 1. `GET` the key: the only round trip of a hit.
//! 2. Miss: join the key's in-process flight; one caller leads, the others wait for it.
//! 3. The leader asks for the lease in one round trip that also re-checks the value.
//!    Under `lock` only one caller in the deployment gets it; the others wait for the
//!    holder's fill or release announcement (a poll is the fallback), then ask again.
//!    Without `lock` the lease is only a fence.
//! 4. The leader runs the loader (renewing the lease) and stores the result only if its
//!    lease is still valid: an invalidation during the load voids the fill.
//!
//! Any Redis failure on the way runs the loader and returns its result.

use std::time::Duration;

use tokio::time::Instant;

use crate::Policy;
use crate::backend::{Acquire, LeaseRequest};
use crate::cache::{Cache, Inner};
use crate::coalesce::{self, Join, LeaderGuard, Outcome, Shared};
use crate::codec::{self, Decoded};
use crate::key::{full_key, lease_key};
use crate::lock::{LeaseGuard, hold_lease, new_token};
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
    load: impl Future<Output = S::Output>,
) -> S::Output {
    let inner = &*cache.inner;
    let key = full_key(&inner.prefix, rendered);
    let counters = &inner.counters;

    match inner.store.get(&key).await {
        Ok(Some(bytes)) => match answer::<S>(inner, policy, &bytes, true) {
            Some(Answer::Value(out)) => {
                Counters::bump(&counters.hits);
                return out;
            }
            Some(Answer::Negative(out)) => {
                Counters::bump(&counters.negative_hits);
                return out;
            }
            None => {}
        },
        Ok(None) => {}
        Err(e) => inner.failed(e),
    }
    Counters::bump(&counters.misses);

    loop {
        match inner.flights.join(&key) {
            Join::Leader(flight) => return lead::<S>(inner, policy, &key, load, flight).await,
            Join::Waiter(waiter) => match coalesce::wait(waiter).await {
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

enum Answer<T> {
    Value(T),
    Negative(T),
}

/// Reads a stored entry; `None` means "treat as a miss". Unreadable entries are counted
/// on the first read of a call only (`count_unreadable`).
fn answer<S: Shape>(inner: &Inner, policy: &Policy, bytes: &[u8], count_unreadable: bool) -> Option<Answer<S::Output>> {
    match codec::decode::<S::Value>(bytes, policy.codec, policy.version) {
        Decoded::Value(value) => Some(Answer::Value(S::from_value(value))),
        Decoded::Negative if policy.negative.is_some() => S::absent().map(Answer::Negative),
        Decoded::Negative | Decoded::OtherFormat => None,
        Decoded::Unreadable => {
            if count_unreadable {
                Counters::bump(&inner.counters.unreadable);
            }
            None
        }
    }
}

fn output<T>(answer: Answer<T>) -> T {
    match answer {
        Answer::Value(out) | Answer::Negative(out) => out,
    }
}

/// The flight leader: get the lease (or wait for its holder to finish), load, fill.
async fn lead<S: Shape>(
    inner: &Inner,
    policy: &Policy,
    key: &str,
    load: impl Future<Output = S::Output>,
    flight: LeaderGuard<'_>,
) -> S::Output {
    let lease_key = lease_key(key);
    let token = new_token();
    let lease = policy.lease();
    // Registered before the first request, so no fill or release can slip by unseen.
    let registration = inner.fills.register(key);
    // Past this, stop waiting for a holder that keeps renewing and load (fail open).
    let give_up = Instant::now() + lease * 2;
    let mut counted_wait = false;

    let fenced = loop {
        let announced = registration.watch.filled.notified();
        let mut announced = std::pin::pin!(announced);
        announced.as_mut().enable();
        let request = LeaseRequest {
            key,
            lease_key: &lease_key,
            token: &token,
            lease,
            exclusive: policy.lock.is_some(),
            check_value: true,
        };
        let acquired = match inner.store.acquire(request).await {
            Ok(Acquire::Value(bytes)) => match answer::<S>(inner, policy, &bytes, false) {
                Some(found) => return finish::<S>(flight, output(found)),
                // The stored entry is unusable (corrupt, other version): take the lease over it.
                None => {
                    inner
                        .store
                        .acquire(LeaseRequest {
                            check_value: false,
                            ..request
                        })
                        .await
                }
            },
            other => other,
        };
        match acquired {
            Ok(Acquire::Won) => break true,
            Ok(Acquire::Held { remaining }) => {
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
            // Only asked for with `check_value`; load unfenced rather than guess.
            Ok(Acquire::Value(_)) => break false,
            Err(e) => {
                inner.failed(e);
                break false;
            }
        }
    };
    drop(registration);

    Counters::bump(&inner.counters.loads);
    let out = if fenced {
        let guard = LeaseGuard::new(&inner.store, key, &lease_key, &token);
        let out = hold_lease(inner, &lease_key, &token, lease, load).await;
        store::<S>(inner, policy, key, &lease_key, &token, &out).await;
        guard.disarm();
        out
    } else {
        load.await
    };
    finish::<S>(flight, out)
}

fn finish<S: Shape>(flight: LeaderGuard<'_>, out: S::Output) -> S::Output {
    flight.finish(S::outcome(&out));
    out
}

/// Stores the loader's result under the fence, or releases the lease.
async fn store<S: Shape>(inner: &Inner, policy: &Policy, key: &str, lease_key: &str, token: &str, out: &S::Output) {
    let entry = match S::classify(out) {
        Loaded::Value(value) => match codec::encode_value(value, policy.codec, policy.version) {
            Ok(bytes) => Some((bytes, policy.ttl)),
            Err(why) => {
                Counters::bump(&inner.counters.unstorable);
                if policy.first_unstorable() {
                    tracing::error!(
                        function = policy.name,
                        codec = policy.codec.name(),
                        "redis-cached: `{}` returns values that the {} codec cannot read back ({why}); \
                         they are not cached. Use `#[redis_cached(codec = \"msgpack\")]` (or \"json\").",
                        policy.name,
                        policy.codec.name(),
                    );
                }
                None
            }
        },
        Loaded::Absent => policy
            .negative
            .map(|ttl| (codec::encode_negative(policy.codec, policy.version), ttl)),
        Loaded::Failed => None,
    };
    let result = match entry {
        Some((bytes, ttl)) => inner
            .store
            .fill(key, lease_key, token, &bytes, ttl)
            .await
            .map(|stored| {
                if !stored {
                    tracing::debug!(
                        key,
                        "redis-cached: lease voided during the load (invalidated); result not stored"
                    );
                }
            }),
        None => inner.store.release(key, lease_key, token).await,
    };
    if let Err(e) = result {
        inner.failed(e);
    }
}
