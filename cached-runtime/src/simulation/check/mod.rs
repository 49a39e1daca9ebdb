//! The invariants the guide promises, checked over a run's trace.

mod facts;
mod freshness;
mod lease;
mod lock;

use std::fmt;

use super::plan::Plan;
use super::record::Line;
use facts::Facts;

/// A broken promise, about `key` (a full key; empty: about the whole run), seen at
/// event `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Violation {
    pub(super) key: String,
    pub(super) seq: u64,
    pub(super) what: String,
}

impl Violation {
    fn at(key: &str, seq: u64, what: String) -> Self {
        Self {
            key: key.to_owned(),
            seq,
            what,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.what)
    }
}

/// How often a documented window (or a fail-open case) explained what would otherwise
/// break an invariant.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    /// A load shared after an invalidation whose message was in flight, its fill done.
    pub(super) in_flight: u64,
    /// A load without a lease shared while its process's subscription stayed up (or
    /// Redis was out of reach), the invalidation's message not yet heard.
    pub(super) unclaimed: u64,
    /// A refresh whose loader failed served the old value although an invalidation
    /// reached the store during it: it had no claim, or its claim's end went unanswered.
    pub(super) unconfirmed_stale_if_error: u64,
    /// Two loads in one generation of a `lock` key, with something failing open between.
    pub(super) lock_excused: u64,
}

impl Tally {
    pub(super) fn add(&mut self, other: Tally) {
        self.in_flight += other.in_flight;
        self.unclaimed += other.unclaimed;
        self.unconfirmed_stale_if_error += other.unconfirmed_stale_if_error;
        self.lock_excused += other.lock_excused;
    }
}

/// Every invariant over one run.
pub(super) fn check(plan: &Plan, lines: &[Line]) -> (Vec<Violation>, Tally) {
    let facts = Facts::new(plan, lines);
    let (mut violations, mut tally) = (Vec::new(), Tally::default());
    freshness::check(&facts, &mut tally, &mut violations);
    lock::check(&facts, &mut tally, &mut violations);
    lease::check(&facts, &mut violations);
    (violations, tally)
}
