//! What a caller is served. No caller gets a row older than an invalidation that
//! returned before its call began, beyond the windows the guide documents; every row
//! has a source (the caller's own load, a load it shared in its process, or the store)
//! and one read from the store was read within its ttl plus stale window; a refresh
//! whose loader failed serves the value it replaces only if no invalidation reached
//! the store during the refresh.

use std::time::Duration;

use super::facts::{Call, Facts, Invalidation};
use super::{Tally, Violation};
use crate::simulation::record::Served;

/// An invalidation that returned before a call began, and the row version it requires:
/// the row's as the invalidation reached the store (a write after that is not yet
/// invalidated, so it is not required).
struct Binding<'f> {
    id: u64,
    invalidation: &'f Invalidation,
    floor: u64,
}

pub(super) fn check(facts: &Facts<'_>, tally: &mut Tally, violations: &mut Vec<Violation>) {
    for (&id, call) in &facts.calls {
        let Some(served) = call.served else { continue };
        let bindings = bindings(facts, call);
        let verdict = match served {
            Served::Row { version, load } => match facts.calls.get(&load) {
                Some(source) => judge(facts, tally, (id, call), (load, source), version, &bindings),
                None => Err(format!("served a row of call {load}, which never loaded")),
            },
            Served::Absent => absent(facts, tally, (id, call), &bindings),
            Served::Failed => Ok(()),
        };
        let broken = [verdict.err(), stale_if_error(facts, tally, (id, call), served).err()];
        for what in broken.into_iter().flatten() {
            let what = format!("call {id}: {what}");
            violations.push(Violation::at(&call.key, call.end.unwrap_or(0), what));
        }
    }
}

/// The invalidations of the call's key (or its tags) that returned before it began.
fn bindings<'f>(facts: &'f Facts<'_>, call: &Call) -> Vec<Binding<'f>> {
    facts
        .invalidations
        .iter()
        .filter(|(_, i)| facts.covers(&i.target, call.func, &call.key))
        .filter_map(|(&id, invalidation)| {
            let (ended, ok) = invalidation.ended?;
            let applied = invalidation.applied?;
            (ok && ended < call.start).then(|| Binding {
                id,
                invalidation,
                floor: facts.row_at(&call.key, applied).0,
            })
        })
        .collect()
}

/// A row from the loader of `source`: the caller's own, one it read, or one it shared.
fn judge(
    facts: &Facts<'_>,
    tally: &mut Tally,
    (id, call): (u64, &Call),
    (load_id, source): (u64, &Call),
    version: u64,
    bindings: &[Binding<'_>],
) -> Result<(), String> {
    let Some(load) = &source.load else {
        return Err(format!("served a row of call {load_id}, which never loaded"));
    };
    let older: Vec<&Binding<'_>> = bindings.iter().filter(|b| b.floor > version).collect();
    let first_older = |older: &[&Binding<'_>]| {
        older.first().map_or_else(String::new, |b| {
            format!("invalidation {} required version {} or later", b.id, b.floor)
        })
    };
    if load_id == id {
        return match older.is_empty() {
            true => Ok(()),
            false => Err(format!("its own load read version {version}; {}", first_older(&older))),
        };
    }
    let mut why = Vec::new();
    if let Some(&(fill, _, seen_at)) = call
        .seen
        .iter()
        .rev()
        .find(|(fill, ..)| facts.fills.get(fill).is_some_and(|f| f.call == Some(load_id)))
    {
        let stored_at = facts.fills[&fill].at;
        let servable = servable(facts, call.func, !load.present);
        if seen_at > stored_at + servable {
            why.push(format!(
                "read fill {fill} {:?} after it was stored, past its ttl and stale window ({servable:?})",
                seen_at - stored_at
            ));
        } else if older.is_empty() {
            return Ok(());
        } else {
            why.push(format!(
                "read version {version} from the store; {}",
                first_older(&older)
            ));
        }
    }
    if let Some(&(fill, _, seen_at)) = read_nearby(facts, call, load_id) {
        let stored_at = facts.fills[&fill].at;
        let servable = servable(facts, call.func, !load.present);
        if seen_at > stored_at + servable {
            why.push(format!(
                "shared fill {fill}, read past its ttl and stale window ({servable:?})"
            ));
        } else if older.is_empty() {
            return Ok(());
        } else {
            why.push(format!(
                "shared version {version}, read from the store during the call; {}",
                first_older(&older)
            ));
        }
    }
    let shareable = source.process == call.process
        && load.end.is_some_and(|end| end < call.end.unwrap_or(u64::MAX))
        && call.start < source.end.unwrap_or(u64::MAX);
    if shareable {
        let unexcused: Vec<&Binding<'_>> = older
            .iter()
            .copied()
            .filter(|b| !excused(facts, tally, call, source, b))
            .collect();
        if unexcused.is_empty() {
            return Ok(());
        }
        why.push(format!(
            "shared the load of call {load_id} (version {version}); {}; no documented window applies",
            first_older(&unexcused)
        ));
    }
    if why.is_empty() {
        why.push(format!(
            "served the row of call {load_id}, which it neither loaded, read, nor could share"
        ));
    }
    Err(why.join("; "))
}

/// A read of a fill of `load_id`'s load by a caller in `call`'s process while `call`
/// was running: a lock waiter's find, shared with the callers waiting for it, is as good
/// as their own read.
fn read_nearby<'f>(facts: &'f Facts<'_>, call: &Call, load_id: u64) -> Option<&'f (u64, u64, Duration)> {
    facts
        .calls
        .values()
        .filter(|reader| reader.process == call.process)
        .find_map(|reader| {
            reader.seen.iter().find(|&&(fill, when, _)| {
                facts.fills.get(&fill).is_some_and(|f| f.call == Some(load_id))
                    && when > call.start
                    && call.end.is_none_or(|end| when < end)
            })
        })
}

/// A "not found": fine if the row was absent at some version the invalidations allow;
/// else it must come from a load that may serve it.
fn absent(
    facts: &Facts<'_>,
    tally: &mut Tally,
    (id, call): (u64, &Call),
    bindings: &[Binding<'_>],
) -> Result<(), String> {
    let floor = bindings.iter().map(|b| b.floor).max().unwrap_or(0);
    if facts.absent_since(&call.key, floor) {
        return Ok(());
    }
    let mut why = None;
    let sources = facts
        .calls
        .iter()
        .filter(|(_, source)| source.key == call.key && source.load.as_ref().is_some_and(|l| !l.present && !l.failed));
    for (&load_id, source) in sources {
        let version = source.load.as_ref().map_or(0, |load| load.version);
        match judge(facts, tally, (id, call), (load_id, source), version, bindings) {
            Ok(()) => return Ok(()),
            Err(what) => why = why.or(Some(what)),
        }
    }
    Err(why.unwrap_or_else(|| "served \"not found\" for a row that exists, and no load found it absent".to_owned()))
}

/// Whether a documented window explains sharing a load older than `binding`.
fn excused(facts: &Facts<'_>, tally: &mut Tally, call: &Call, source: &Call, binding: &Binding<'_>) -> bool {
    let invalidation = binding.invalidation;
    let joined = call.joined.unwrap_or(call.start);
    // The invalidating process detached its loads before sending; elsewhere the
    // message detaches them on arrival.
    let heard = invalidation.process == call.process
        || invalidation
            .announcement
            .and_then(|a| facts.delivered.get(&(a, call.process)))
            .is_some_and(|&delivered| delivered < joined);
    if heard {
        return false;
    }
    let Some(load) = &source.load else { return false };
    if !facts.claimed(source) {
        // "A load that ran without a lease ... goes to every caller that joined it when
        // the process's subscription stayed up through the load, or while Redis is out
        // of reach."
        let heard_throughout = load.subscription.is_some() && load.subscription == load.subscription_after;
        let window = heard_throughout || !load.reachable_after;
        if window {
            tally.unclaimed += 1;
        }
        return window;
    }
    // "A message in flight: a call ... may join a load there that started before the
    // invalidation and whose fill had already gone through." A tagged load's last word
    // on a tag is its re-read of the tags' versions after the fill.
    let tag = invalidation.target.starts_with("tag:");
    let last_word = if tag {
        source.touched.or(source.ending)
    } else {
        source.ending
    };
    let window = matches!((last_word, invalidation.applied), (Some(last), Some(applied)) if last < applied);
    if window {
        tally.in_flight += 1;
    }
    window
}

/// How long after its fill a value may still be read: its ttl and stale window, or the
/// negative ttl of a "not found".
fn servable(facts: &Facts<'_>, func: usize, absent: bool) -> Duration {
    let policy = &facts.plan.funcs[func].policy;
    if absent {
        policy.negative.unwrap_or_default()
    } else {
        policy.ttl + policy.stale.unwrap_or_default()
    }
}

/// A refresh whose loader failed serves the value it replaces (stale-if-error), but
/// not if an invalidation reached the store between its read and its loader's failure.
fn stale_if_error(
    facts: &Facts<'_>,
    tally: &mut Tally,
    (id, call): (u64, &Call),
    served: Served,
) -> Result<(), String> {
    let (Some(load), Served::Row { load: source, .. }) = (&call.load, served) else {
        return Ok(());
    };
    let (Some(read), Some(failed)) = (call.first_read, load.end) else {
        return Ok(());
    };
    if !load.failed || source == id {
        return Ok(());
    }
    let during = facts.invalidations.iter().find(|(_, i)| {
        facts.covers(&i.target, call.func, &call.key)
            && i.applied.is_some_and(|applied| read < applied && applied < failed)
    });
    let Some((&invalidation, _)) = during else {
        return Ok(());
    };
    // A refresh without a claim, or whose claim's end went unanswered, cannot learn of it.
    if !facts.claimed(call) || !call.ending_answered {
        tally.unconfirmed_stale_if_error += 1;
        return Ok(());
    }
    Err(format!(
        "its loader failed and it served the value it refreshed, although invalidation {invalidation} reached \
         the store during the refresh"
    ))
}
