//! What a failing seed prints: the seed and how to replay it, the broken promises, the
//! functions' policies, and the trace of the key concerned.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::check::Violation;
use super::plan::Plan;
use super::record::{Line, Note};
use crate::key::{full_key, tag_key};
use crate::store::Announcement;
use crate::store::scripted::Event;

/// Lines of trace printed at most, and events shown after the first broken promise.
const SHOWN: usize = 200;
const AFTER: u64 = 10;

pub(super) fn failure(seed: u64, plan: &Plan, trace: &[Line], violations: &[Violation]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "seed {seed} broke {} promise(s):", violations.len());
    for violation in violations {
        let _ = writeln!(out, "  {violation}");
    }
    let _ = writeln!(
        out,
        "replay: SIM_SEED={seed} cargo test -p redis-cached-runtime simulation -- --nocapture"
    );
    let _ = writeln!(out, "{} processes; functions:", plan.processes);
    for (i, func) in plan.funcs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  f{i} keys {:?} tags {:?} {:?}",
            func.keys, func.tags, func.policy
        );
    }
    let Some(first) = violations.iter().min_by_key(|v| v.seq) else {
        return out;
    };
    // What led to the first broken promise, and a little of what followed.
    let shown: Vec<&Line> = concerning(plan, trace, &first.key)
        .into_iter()
        .filter(|line| line.seq() <= first.seq + AFTER)
        .collect();
    let _ = writeln!(
        out,
        "trace of {:?} up to event #{} (of {}):",
        first.key,
        first.seq,
        trace.len()
    );
    for line in shown.iter().rev().take(SHOWN).rev() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The lines about `key` (its calls, requests, announcements, writes, invalidations,
/// and every breaker, subscription and death); all of them for an empty key.
pub(super) fn concerning<'t>(plan: &Plan, trace: &'t [Line], key: &str) -> Vec<&'t Line> {
    if key.is_empty() {
        return trace.iter().collect();
    }
    let tags: Vec<String> = plan
        .funcs
        .iter()
        .filter(|func| func.keys.iter().any(|k| full_key("", k) == key))
        .flat_map(|func| func.tags.iter().map(|tag| tag_key("", tag)))
        .collect();
    let ours = |target: &str| target.starts_with(key) || target.split(' ').any(|t| tags.iter().any(|tag| tag == t));
    let (mut calls, mut announcements) = (BTreeSet::new(), BTreeSet::new());
    let mut kept = Vec::new();
    for line in trace {
        let keep = match line {
            Line::World(noted) => match &noted.note {
                Note::CallStarted { call, key: k, .. } => k == key && calls.insert(*call),
                Note::Wrote { key: k, .. } => k == key,
                Note::InvalidationStarted { id, target, .. } => ours(target) && calls.insert(*id),
                Note::CallEnded { call, .. }
                | Note::CallDropped { call }
                | Note::LoadStarted { call, .. }
                | Note::LoadEnded { call, .. }
                | Note::LoadDropped { call } => calls.contains(call),
                Note::InvalidationEnded { id, .. } => calls.contains(id),
                Note::WoundDown { .. } => true,
            },
            Line::Store(stamped) => match &stamped.event {
                Event::Sent { call, target, .. }
                | Event::Applied { call, target, .. }
                | Event::Returned { call, target, .. } => ours(target) || call.is_some_and(|c| calls.contains(&c)),
                Event::Expired { key: k, .. } => k == key,
                Event::ClaimExpired { claim_key, .. } => claim_key.starts_with(key),
                Event::Published { id, announcement, .. } => {
                    let about = match announcement {
                        Announcement::Filled { key: k }
                        | Announcement::Released { key: k }
                        | Announcement::Deleted { key: k, .. } => ours(k),
                        Announcement::TagBumped { tag_key, .. } => ours(tag_key),
                    };
                    about && announcements.insert(*id)
                }
                Event::Delivered { id, .. } | Event::Lost { id, .. } => announcements.contains(id),
                Event::Subscription { .. } | Event::Breaker { .. } | Event::Killed { .. } => true,
            },
        };
        if keep {
            kept.push(line);
        }
    }
    kept
}
