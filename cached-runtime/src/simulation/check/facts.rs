//! A run's trace, indexed: each call (what it read, won, loaded and returned), each
//! invalidation (when it reached the store, when it returned, where its message went),
//! each fill, and the database's writes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::key::{full_key, tag_key};
use crate::simulation::plan::Plan;
use crate::simulation::record::{Line, Note, Served};
use crate::store::scripted::{Answer, Effect, Event, OpKind};

#[derive(Debug, Default)]
pub(super) struct Call {
    pub(super) process: usize,
    pub(super) func: usize,
    pub(super) key: String,
    pub(super) start: u64,
    /// When it returned, or was dropped.
    pub(super) end: Option<u64>,
    pub(super) served: Option<Served>,
    /// When its first request came back: from then on it may have joined a load.
    pub(super) joined: Option<u64>,
    /// When its first read reached the store.
    pub(super) first_read: Option<u64>,
    /// Whether it asked for a claim.
    pub(super) asked: bool,
    /// When a lease request of its own came back won.
    pub(super) won: Option<u64>,
    /// When the store gave it a claim (a lease request applied, won).
    pub(super) claim_taken: Option<u64>,
    pub(super) load: Option<Load>,
    /// Fills whose value the store showed it: (fill, when, at).
    pub(super) seen: Vec<(u64, u64, Duration)>,
    /// When its claim's fill, clear or release reached the store.
    pub(super) ending: Option<u64>,
    /// Whether that ending came back answered.
    pub(super) ending_answered: bool,
    /// When its re-read of its tags' versions reached the store.
    pub(super) touched: Option<u64>,
    /// Whether it stored a value.
    pub(super) filled: Option<u64>,
    /// Requests it sent, and answers (or errors) it got: fewer answers means it gave
    /// one up (its Redis budget ran out).
    pub(super) sent: u32,
    pub(super) returned: u32,
}

#[derive(Debug, Default)]
pub(super) struct Load {
    pub(super) start: u64,
    pub(super) version: u64,
    pub(super) present: bool,
    pub(super) subscription: Option<u64>,
    pub(super) end: Option<u64>,
    pub(super) failed: bool,
    pub(super) subscription_after: Option<u64>,
    pub(super) reachable_after: bool,
}

#[derive(Debug, Default)]
pub(super) struct Invalidation {
    pub(super) process: usize,
    /// A full key, or a tag's version key.
    pub(super) target: String,
    pub(super) applied: Option<u64>,
    pub(super) announcement: Option<u64>,
    /// When it returned, and whether it went through.
    pub(super) ended: Option<(u64, bool)>,
}

#[derive(Debug)]
pub(super) struct Fill {
    pub(super) call: Option<u64>,
    pub(super) at: Duration,
}

/// Everything the invariants ask of a run.
#[derive(Debug)]
pub(super) struct Facts<'a> {
    pub(super) plan: &'a Plan,
    pub(super) lines: &'a [Line],
    pub(super) calls: BTreeMap<u64, Call>,
    pub(super) invalidations: BTreeMap<u64, Invalidation>,
    pub(super) fills: BTreeMap<u64, Fill>,
    /// When announcement `.0` reached process `.1`.
    pub(super) delivered: BTreeMap<(u64, usize), u64>,
    /// Per key: (when, version, present) of each write.
    pub(super) writes: BTreeMap<String, Vec<(u64, u64, bool)>>,
}

impl<'a> Facts<'a> {
    pub(super) fn new(plan: &'a Plan, lines: &'a [Line]) -> Self {
        let mut facts = Facts {
            plan,
            lines,
            calls: BTreeMap::new(),
            invalidations: BTreeMap::new(),
            fills: BTreeMap::new(),
            delivered: BTreeMap::new(),
            writes: BTreeMap::new(),
        };
        // The invalidation whose request was just applied: its announcement comes next.
        let mut announcing = None;
        for line in lines {
            match line {
                Line::World(noted) => facts.world(noted.seq, &noted.note),
                Line::Store(stamped) => {
                    announcing = facts.store(stamped.seq, stamped.at, &stamped.event, announcing.take());
                }
            }
        }
        facts
    }

    fn world(&mut self, seq: u64, note: &Note) {
        match note {
            Note::CallStarted {
                call,
                process,
                func,
                key,
            } => {
                let started = Call {
                    process: *process,
                    func: *func,
                    key: key.clone(),
                    start: seq,
                    ..Call::default()
                };
                self.calls.insert(*call, started);
            }
            Note::CallEnded { call, served } => {
                let call = self.call(*call);
                call.end = Some(seq);
                call.served = Some(*served);
            }
            Note::CallDropped { call } => self.call(*call).end = Some(seq),
            Note::LoadStarted {
                call,
                version,
                present,
                subscription,
            } => {
                self.call(*call).load = Some(Load {
                    start: seq,
                    version: *version,
                    present: *present,
                    subscription: *subscription,
                    ..Load::default()
                });
            }
            Note::LoadEnded {
                call,
                failed,
                subscription,
                reachable,
            } => {
                if let Some(load) = &mut self.call(*call).load {
                    load.end = Some(seq);
                    load.failed = *failed;
                    load.subscription_after = *subscription;
                    load.reachable_after = *reachable;
                }
            }
            Note::LoadDropped { .. } | Note::WoundDown { .. } => {}
            Note::Wrote { key, version, present } => {
                self.writes
                    .entry(key.clone())
                    .or_default()
                    .push((seq, *version, *present));
            }
            Note::InvalidationStarted { id, process, target } => {
                let started = Invalidation {
                    process: *process,
                    target: target.clone(),
                    ..Invalidation::default()
                };
                self.invalidations.insert(*id, started);
            }
            Note::InvalidationEnded { id, ok } => {
                if let Some(invalidation) = self.invalidations.get_mut(id) {
                    invalidation.ended = Some((seq, *ok));
                }
            }
        }
    }

    /// Indexes one store event; returns the invalidation whose announcement is next.
    fn store(&mut self, seq: u64, at: Duration, event: &Event, announcing: Option<u64>) -> Option<u64> {
        match event {
            Event::Applied { call, op, effect, .. } => {
                let call = (*call)?;
                if let Some(invalidation) = self.invalidations.get_mut(&call) {
                    invalidation.applied = Some(seq);
                    return Some(call);
                }
                self.applied(call, seq, at, *op, effect);
            }
            Event::Sent { call, op, .. } => {
                let call = (*call).filter(|call| !self.invalidations.contains_key(call))?;
                let c = self.call(call);
                c.sent += 1;
                c.asked |= *op == OpKind::Acquire;
            }
            Event::Returned { call, op, answer, .. } => {
                let call = (*call).filter(|call| !self.invalidations.contains_key(call))?;
                let c = self.call(call);
                c.returned += 1;
                c.joined.get_or_insert(seq);
                if *answer == Answer::Won {
                    c.won.get_or_insert(seq);
                }
                let ends = matches!(op, OpKind::Fill | OpKind::Clear | OpKind::Release);
                if ends && *answer == Answer::Ok {
                    c.ending_answered = true;
                }
            }
            Event::Published { id, .. } => {
                if let Some(invalidation) = announcing.and_then(|i| self.invalidations.get_mut(&i)) {
                    invalidation.announcement = Some(*id);
                }
            }
            Event::Delivered { id, process } => {
                self.delivered.insert((*id, *process), seq);
            }
            _ => {}
        }
        None
    }

    fn applied(&mut self, call: u64, seq: u64, at: Duration, op: OpKind, effect: &Effect) {
        let c = self.call(call);
        match (op, effect) {
            (OpKind::Get | OpKind::GetTagged, Effect::Read { fill }) => {
                c.first_read.get_or_insert(seq);
                if let Some(fill) = fill {
                    c.seen.push((*fill, seq, at));
                }
            }
            (OpKind::Acquire, Effect::Found { fill }) => c.seen.push((*fill, seq, at)),
            (OpKind::Acquire, Effect::Won { over }) => {
                c.claim_taken = Some(seq);
                if let Some(fill) = over {
                    c.seen.push((*fill, seq, at));
                }
            }
            (OpKind::Fill, Effect::Filled { fill }) => {
                c.ending = Some(seq);
                c.filled = *fill;
                if let Some(fill) = fill {
                    self.fills.insert(*fill, Fill { call: Some(call), at });
                }
            }
            (OpKind::Clear | OpKind::Release, _) => c.ending = Some(seq),
            (OpKind::TouchTags, _) => c.touched = Some(seq),
            _ => {}
        }
    }

    fn call(&mut self, id: u64) -> &mut Call {
        self.calls.entry(id).or_default()
    }

    /// The full keys of a function, and its tags' version keys.
    pub(super) fn func_keys(&self, func: usize) -> (Vec<String>, Vec<String>) {
        let func = &self.plan.funcs[func];
        let keys = func.keys.iter().map(|key| full_key("", key)).collect();
        let tags = func.tags.iter().map(|tag| tag_key("", tag)).collect();
        (keys, tags)
    }

    /// Whether invalidating `target` (a key or a tag's version key) invalidates `key`
    /// of `func`.
    pub(super) fn covers(&self, target: &str, func: usize, key: &str) -> bool {
        target == key || self.func_keys(func).1.iter().any(|tag| tag == target)
    }

    /// The row's version and presence just before `seq`.
    pub(super) fn row_at(&self, key: &str, seq: u64) -> (u64, bool) {
        self.writes
            .get(key)
            .and_then(|writes| writes.iter().rev().find(|(at, ..)| *at < seq))
            .map_or((0, true), |&(_, version, present)| (version, present))
    }

    /// Whether the row was absent at some version from `version` on.
    pub(super) fn absent_since(&self, key: &str, version: u64) -> bool {
        self.writes
            .get(key)
            .is_some_and(|writes| writes.iter().any(|&(_, v, present)| v >= version && !present))
    }

    /// Whether a load ran under a claim of its own: its lease request came back won
    /// before it started.
    pub(super) fn claimed(&self, call: &Call) -> bool {
        match (&call.load, call.won) {
            (Some(load), Some(won)) => won < load.start,
            _ => false,
        }
    }
}
