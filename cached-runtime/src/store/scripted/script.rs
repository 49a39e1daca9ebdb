//! How the fake Redis misbehaves: faults per request, the fate of each announcement at
//! each process, and how long an opened breaker stays open. A test queues what it wants
//! ([`Rules`]); a simulation draws them ([`Script`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::op::{Op, OpKind};
use crate::store::Announcement;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// Not sent (an open breaker, no connection): `StoreError::Skipped` at once.
    Skipped,
    /// Sent and applied, but its answer never comes: `StoreError::Timeout` after the
    /// operation deadline.
    Unanswered,
    /// Lost on the way, never applied: `StoreError::Timeout` after the deadline.
    Lost,
    /// Arrives `before` after it is sent (and after every request sent before it, as on
    /// one connection); its answer takes `after` more. Past the deadline it times out,
    /// applied all the same.
    Slow { before: Duration, after: Duration },
}

/// How one announcement reaches one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Delivery {
    Now,
    /// In flight this long; lost if the subscription changes meanwhile.
    After(Duration),
    /// Lost, and the subscription is made again (its number changes), as when it breaks.
    Lost,
    /// Lost while the subscription still looks up, until its keepalive notices
    /// (`noticed` later) and makes it again.
    Silent {
        noticed: Duration,
    },
    /// Kept until the test hands it over (`ScriptedStore::deliver_held`).
    Held,
}

/// Draws the misbehaviour of a whole run.
pub(crate) trait Script: Send {
    /// The fault of a request `process` sends, if any.
    fn fault(&mut self, process: usize, op: &Op) -> Option<Fault>;
    /// How an announcement reaches `process`.
    fn delivery(&mut self, process: usize, announcement: &Announcement) -> Delivery;
    /// How long a breaker that failures opened stays open (the reconnect's backoff).
    fn outage(&mut self, process: usize) -> Duration;
}

/// What a test scripted: faults queued for the next request of a kind, and a way of
/// delivery per process. What it did not script comes from the drawn [`Script`], if
/// any, else all goes well.
#[derive(Default)]
pub(super) struct Rules {
    queued: Vec<(usize, OpKind, Fault)>,
    delivery: BTreeMap<usize, Delivery>,
    drawn: Option<Box<dyn Script>>,
}

/// The first reconnect attempt's pause (`Backoff`'s first).
const OUTAGE: Duration = Duration::from_millis(20);

impl Rules {
    pub(super) fn queue(&mut self, process: usize, kind: OpKind, fault: Fault) {
        self.queued.push((process, kind, fault));
    }

    pub(super) fn deliver(&mut self, process: usize, delivery: Delivery) {
        self.delivery.insert(process, delivery);
    }

    pub(super) fn draw_from(&mut self, script: Box<dyn Script>) {
        self.drawn = Some(script);
    }

    pub(super) fn fault(&mut self, process: usize, op: &Op) -> Option<Fault> {
        let kind = op.kind();
        if let Some(at) = self.queued.iter().position(|&(p, k, _)| p == process && k == kind) {
            return Some(self.queued.remove(at).2);
        }
        self.drawn.as_mut().and_then(|script| script.fault(process, op))
    }

    pub(super) fn delivery(&mut self, process: usize, announcement: &Announcement) -> Delivery {
        if let Some(delivery) = self.delivery.get(&process) {
            return *delivery;
        }
        self.drawn
            .as_mut()
            .map_or(Delivery::Now, |script| script.delivery(process, announcement))
    }

    pub(super) fn outage(&mut self, process: usize) -> Duration {
        self.drawn.as_mut().map_or(OUTAGE, |script| script.outage(process))
    }
}
