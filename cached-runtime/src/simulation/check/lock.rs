//! With `lock`, one load per key and generation: no load runs beside another, and none
//! starts after another stored its value, until the value is invalidated (the key, or
//! a tag), expires, or is taken over by a refresh. Only where nothing failed open in
//! between: no request about the key failed, no breaker open, no lease expired, no call
//! dropped or out of its Redis budget, no process dead. A caller that waited in its
//! process for a load that failed runs its own loader without asking for the lease
//! (errors are not shared): such loads are not counted.

use std::collections::BTreeSet;

use super::facts::Facts;
use super::{Tally, Violation};
use crate::key::{fence_key, lease_key};
use crate::simulation::record::{Line, Note};
use crate::store::scripted::{Answer, Effect, Event, OpKind};

pub(super) fn check(facts: &Facts<'_>, tally: &mut Tally, violations: &mut Vec<Violation>) {
    for (func, plan) in facts.plan.funcs.iter().enumerate() {
        if plan.policy.lock.is_none() {
            continue;
        }
        let (keys, tags) = facts.func_keys(func);
        for key in &keys {
            check_key(facts, key, &tags, tally, violations);
        }
    }
}

/// When the key's generations end, and when something failed open around it.
#[derive(Default)]
struct Marks {
    generations: Vec<u64>,
    anomalies: Vec<u64>,
    /// Breakers open from `.0` to `.1`.
    outages: Vec<(u64, u64)>,
}

fn check_key(facts: &Facts<'_>, key: &str, tags: &[String], tally: &mut Tally, violations: &mut Vec<Violation>) {
    let calls: BTreeSet<u64> = facts
        .calls
        .iter()
        .filter(|(_, call)| call.key == key)
        .map(|(&id, _)| id)
        .collect();
    let marks = marks(facts, key, tags, &calls);
    // A load belongs to the generation in which its claim was taken (or, without one,
    // in which it started): an invalidation after that voids it.
    let mut loads: Vec<(u64, u64, u64)> = calls
        .iter()
        .filter_map(|&id| {
            let call = &facts.calls[&id];
            let start = call.load.as_ref()?.start;
            if !call.asked {
                return None;
            }
            let claimed = call.claim_taken.filter(|_| facts.claimed(call));
            Some((start, claimed.unwrap_or(start), id))
        })
        .collect();
    loads.sort_unstable();
    // A takeover's own claim is the first of the generation it starts.
    let generation_of = |at: u64| marks.generations.iter().filter(|&&g| g <= at).count();
    for (i, &(b_start, b_since, b)) in loads.iter().enumerate() {
        let generation = generation_of(b_since);
        let generation_start = marks
            .generations
            .iter()
            .rev()
            .find(|&&g| g <= b_since)
            .copied()
            .unwrap_or(0);
        for &(_, a_since, a) in &loads[..i] {
            let same = generation_of(a_since) == generation;
            let a_call = &facts.calls[&a];
            let running = a_call.load.as_ref().and_then(|l| l.end).unwrap_or(u64::MAX) > b_start;
            let stored = a_call.filled.is_some() && a_call.ending.is_some_and(|e| e < b_start);
            if !same || !(running || stored) {
                continue;
            }
            let from = generation_start.min(a_call.start).min(facts.calls[&b].start);
            if marks.clean(from, b_start) {
                let how = if running { "beside" } else { "after the fill of" };
                violations.push(Violation::at(
                    key,
                    b_start,
                    format!(
                        "with lock, call {b} loaded {how} call {a}'s load, in one generation, with nothing failing"
                    ),
                ));
            } else {
                tally.lock_excused += 1;
            }
        }
    }
}

fn marks(facts: &Facts<'_>, key: &str, tags: &[String], calls: &BTreeSet<u64>) -> Marks {
    let mut marks = Marks::default();
    let (lease, fence) = (lease_key(key), fence_key(key));
    let mut opened = std::collections::BTreeMap::new();
    let ours = |target: &str| target == key || target.split(' ').any(|t| tags.iter().any(|tag| tag == t));
    for line in facts.lines {
        let seq = line.seq();
        match line {
            Line::Store(stamped) => match &stamped.event {
                Event::Applied { op, target, effect, .. } => {
                    let ends = match (op, effect) {
                        (OpKind::Delete, _) => target == key,
                        (OpKind::BumpTag, _) => tags.contains(target),
                        (OpKind::Acquire, Effect::Won { over: Some(_) }) | (OpKind::Clear, Effect::Held(true)) => {
                            target == key
                        }
                        _ => false,
                    };
                    if ends {
                        marks.generations.push(seq);
                    }
                }
                Event::Expired { key: expired, .. } if expired == key => marks.generations.push(seq),
                // A request that failed open (slow ones that answered in time did not).
                Event::Returned {
                    answer: Answer::Timeout | Answer::Skipped,
                    target,
                    call,
                    ..
                } if ours(target) || call.is_some_and(|c| calls.contains(&c)) => marks.anomalies.push(seq),
                Event::ClaimExpired { claim_key, .. } if *claim_key == lease || *claim_key == fence => {
                    marks.anomalies.push(seq);
                }
                Event::Killed { .. } => marks.anomalies.push(seq),
                Event::Breaker { process, open: true } => {
                    opened.insert(*process, seq);
                }
                Event::Breaker { process, open: false } => {
                    if let Some(from) = opened.remove(process) {
                        marks.outages.push((from, seq));
                    }
                }
                _ => {}
            },
            Line::World(noted) => match &noted.note {
                Note::CallDropped { call } if calls.contains(call) => marks.anomalies.push(seq),
                Note::CallStarted { call, .. } if calls.contains(call) => {
                    let gave_up = facts.calls[call].sent > facts.calls[call].returned;
                    if gave_up {
                        marks.anomalies.push(seq);
                    }
                }
                _ => {}
            },
        }
    }
    marks.outages.extend(opened.into_values().map(|from| (from, u64::MAX)));
    marks
}

impl Marks {
    /// Nothing failed open from `from` to `to`.
    fn clean(&self, from: u64, to: u64) -> bool {
        !self.anomalies.iter().any(|&a| from <= a && a <= to)
            && !self.outages.iter().any(|&(open, close)| open <= to && close >= from)
    }
}
