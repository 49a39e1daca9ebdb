//! In-process coalescing: concurrent misses of one key share a single load.
//!
//! The first caller becomes the leader and runs the load inline (loaders borrow their
//! arguments, so they cannot be spawned). The others wait on the flight. A guard
//! publishes the outcome when the leader finishes; if the leader's future is dropped
//! or panics, the guard publishes `Retry` and a waiter becomes the next leader.
//!
//! A result is only handed to callers whose call began before anything could have
//! invalidated it. The leader numbers the reads its result may rest on
//! ([`LeaderGuard::read`]): the start of its load ([`LeaderGuard::loading`]), and each
//! lease request that may find a value. A result that an invalidation may have made
//! stale for later callers ([`Outcome::Voided`]: a load whose claim was voided, or a
//! value found in the store) goes to the waiters that joined before the read it rests
//! on, and every later waiter asks again. This holds even when the invalidation message
//! never reached this process.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(not(test))]
use tokio::sync::watch;

// Simulated schedules replay only if waiters wake in a fixed order.
#[cfg(test)]
use crate::ordered_watch as watch;

use crate::sync::lock;

/// What a finished flight hands its waiters.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// The loaded result (a `Shared<V>`, type-erased because one map serves all types).
    Done(Arc<dyn Any + Send + Sync>),
    /// A result that an invalidation may have made stale for some callers: a load whose
    /// claim was voided, or a value found in the store. Only for the waiters that joined
    /// before the leader's `mark`-th read (see [`LeaderGuard::read`]).
    Voided {
        shared: Arc<dyn Any + Send + Sync>,
        mark: u64,
    },
    /// The loader returned an error; each waiter runs its own loader.
    Failed,
    /// No result for waiters: the leader was dropped or panicked, or it answered with a
    /// value it found rather than one it loaded. Waiters join again.
    Retry,
}

/// A loaded result that waiters can copy.
#[derive(Debug)]
pub(crate) enum Shared<V> {
    Value(V),
    Absent,
}

#[derive(Debug, Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<String, Flight>>,
}

/// A load in flight: where its outcome goes, the tags (full keys) it loads under, and
/// how many reads its result may rest on the leader has begun.
#[derive(Debug)]
struct Flight {
    outcome: Arc<watch::Sender<Option<Outcome>>>,
    tags: Vec<String>,
    reads: u64,
}

pub(crate) enum Join<'a> {
    Leader(LeaderGuard<'a>),
    Waiter(Waiter),
}

/// A caller waiting for another caller's load.
#[derive(Debug)]
pub(crate) struct Waiter {
    outcome: watch::Receiver<Option<Outcome>>,
    /// The leader's reads begun when this caller joined: a result resting on a later
    /// read may be older than an invalidation this call started after.
    seen: u64,
}

impl Flights {
    /// Joins the load of `key` running here, or starts one under `tags` (full keys).
    pub(crate) fn join<'a>(&'a self, key: &str, tags: &[String]) -> Join<'a> {
        let mut running = lock(&self.running);
        if let Some(flight) = running.get(key) {
            return Join::Waiter(Waiter {
                outcome: flight.outcome.subscribe(),
                seen: flight.reads,
            });
        }
        let flight = Arc::new(watch::Sender::new(None));
        running.insert(
            key.to_owned(),
            Flight {
                outcome: flight.clone(),
                tags: tags.to_vec(),
                reads: 0,
            },
        );
        Join::Leader(LeaderGuard {
            flights: self,
            key: key.to_owned(),
            flight,
            start: AtomicU64::new(0),
            outcome: None,
        })
    }

    /// New callers no longer join the loads running under `tag` (a full key): it was
    /// invalidated.
    pub(crate) fn detach_tag(&self, tag: &str) {
        lock(&self.running).retain(|_, flight| !flight.tags.iter().any(|t| t == tag));
    }

    /// New callers of `key` no longer join the load running now (it was invalidated);
    /// the callers already waiting still get its result.
    pub(crate) fn detach(&self, key: &str) {
        lock(&self.running).remove(key);
    }
}

/// Waits at most `limit` for the flight's outcome. A vanished leader means retry; one
/// that takes longer than `limit` counts as failed (the waiter loads itself). A voided
/// result comes back as `Done` for a waiter that joined before the read it rests on and
/// as `Retry` for the others.
pub(crate) async fn wait(mut waiter: Waiter, limit: Duration) -> Outcome {
    let outcome = match tokio::time::timeout(limit, waiter.outcome.wait_for(Option::is_some)).await {
        Ok(Ok(outcome)) => outcome.clone().unwrap_or(Outcome::Retry),
        Ok(Err(_)) => Outcome::Retry,
        Err(_elapsed) => Outcome::Failed,
    };
    match outcome {
        Outcome::Voided { shared, mark } if waiter.seen < mark => Outcome::Done(shared),
        Outcome::Voided { .. } => Outcome::Retry,
        other => other,
    }
}

/// Held by the leader; publishes the outcome (or `Retry`) when dropped.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: String,
    flight: Arc<watch::Sender<Option<Outcome>>>,
    /// The read the load's result rests on (see `loading`); 0 before it.
    start: AtomicU64,
    outcome: Option<Outcome>,
}

impl LeaderGuard<'_> {
    /// The leader begins a read its result may rest on: callers that join from now on
    /// may have started after an invalidation that this read does not see. Returns the
    /// read's number, the `mark` of a result resting on it.
    pub(crate) fn read(&self) -> u64 {
        let mut running = lock(&self.flights.running);
        match running.get_mut(&self.key) {
            Some(flight) if Arc::ptr_eq(&flight.outcome, &self.flight) => {
                flight.reads += 1;
                flight.reads
            }
            // Detached: nobody joins any more; every waiter joined before now.
            _ => u64::MAX,
        }
    }

    /// The load starts now (its tags' versions, its claim and its loader): its result
    /// rests on this read and the ones after it.
    pub(crate) fn loading(&self) {
        self.start.store(self.read(), Ordering::Relaxed);
    }

    /// The mark of a result resting on everything since [`loading`](Self::loading).
    pub(crate) fn start(&self) -> u64 {
        self.start.load(Ordering::Relaxed)
    }

    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        {
            let mut running = lock(&self.flights.running);
            if running
                .get(&self.key)
                .is_some_and(|flight| Arc::ptr_eq(&flight.outcome, &self.flight))
            {
                running.remove(&self.key);
            }
        }
        let outcome = self.outcome.take().unwrap_or(Outcome::Retry);
        self.flight.send_replace(Some(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_dropped_leader_hands_over_to_a_waiter() {
        let flights = Flights::default();
        let Join::Leader(leader) = flights.join("k", &[]) else {
            panic!("first caller leads")
        };
        let Join::Waiter(waiter) = flights.join("k", &[]) else {
            panic!("second caller waits")
        };
        drop(leader);
        assert!(matches!(wait(waiter, LIMIT).await, Outcome::Retry));
        assert!(matches!(flights.join("k", &[]), Join::Leader(_)));
    }

    #[tokio::test]
    async fn after_detach_new_callers_lead_a_new_load() {
        let flights = Flights::default();
        let Join::Leader(old) = flights.join("k", &[]) else {
            panic!("first caller leads")
        };
        flights.detach("k");
        let Join::Leader(new) = flights.join("k", &[]) else {
            panic!("a new load after detach")
        };
        drop(old);
        let Join::Waiter(_) = flights.join("k", &[]) else {
            panic!("the old leader did not remove the new flight")
        };
        drop(new);
    }

    #[tokio::test]
    async fn a_tag_detaches_only_its_loads() {
        let flights = Flights::default();
        let Join::Leader(_tagged) = flights.join("a", &["t".to_owned()]) else {
            panic!("leads")
        };
        let Join::Leader(_other) = flights.join("b", &["u".to_owned()]) else {
            panic!("leads")
        };
        flights.detach_tag("t");
        assert!(
            matches!(flights.join("a", &[]), Join::Leader(_)),
            "a new load of the tagged key"
        );
        assert!(
            matches!(flights.join("b", &[]), Join::Waiter(_)),
            "the other load is still shared"
        );
    }

    /// Regression: a load voided by an invalidation whose message never arrived was
    /// handed to callers that joined after the invalidation.
    #[tokio::test]
    async fn a_voided_load_goes_only_to_waiters_that_joined_before_it_started() {
        let flights = Flights::default();
        let Join::Leader(leader) = flights.join("k", &[]) else {
            panic!("first caller leads")
        };
        let Join::Waiter(early) = flights.join("k", &[]) else {
            panic!("joins before the load")
        };
        leader.loading();
        let Join::Waiter(late) = flights.join("k", &[]) else {
            panic!("joins during the load")
        };
        let mark = leader.start();
        leader.finish(Outcome::Voided {
            shared: Arc::new(Shared::Value(5u8)),
            mark,
        });
        assert!(matches!(wait(early, LIMIT).await, Outcome::Done(_)));
        assert!(matches!(wait(late, LIMIT).await, Outcome::Retry));
    }

    #[tokio::test]
    async fn waiters_get_the_leaders_value() {
        let flights = Flights::default();
        let Join::Leader(leader) = flights.join("k", &[]) else {
            panic!("first caller leads")
        };
        let Join::Waiter(waiter) = flights.join("k", &[]) else {
            panic!("second caller waits")
        };
        leader.finish(Outcome::Done(Arc::new(Shared::Value(5u8))));
        let Outcome::Done(shared) = wait(waiter, LIMIT).await else {
            panic!("done")
        };
        assert!(matches!(shared.downcast_ref::<Shared<u8>>(), Some(Shared::Value(5))));
    }
}
