//! No claim outlives its holder beyond its ttl: nothing renews a claim after the call
//! that took it ended, and once every call has ended and every claim's time has run
//! out, no claim is held.

use std::collections::BTreeMap;

use super::Violation;
use super::facts::Facts;
use crate::simulation::record::{Line, Note};
use crate::store::scripted::{Event, OpKind};

pub(super) fn check(facts: &Facts<'_>, violations: &mut Vec<Violation>) {
    // Which call asked for each claim token.
    let mut holders: BTreeMap<&str, u64> = BTreeMap::new();
    for line in facts.lines {
        match line {
            Line::Store(stamped) => match &stamped.event {
                Event::Sent {
                    op: OpKind::Acquire,
                    token: Some(token),
                    call: Some(call),
                    ..
                } => {
                    holders.insert(token, *call);
                }
                Event::Sent {
                    op: OpKind::Extend,
                    token: Some(token),
                    target,
                    ..
                } => {
                    let holder = holders.get(token.as_str()).copied();
                    let ended = holder.and_then(|h| facts.calls.get(&h)).and_then(|call| call.end);
                    if let (Some(holder), Some(ended)) = (holder, ended)
                        && ended < stamped.seq
                    {
                        let what = format!("call {holder}'s claim was renewed after the call ended");
                        violations.push(Violation::at(target, stamped.seq, what));
                    }
                }
                _ => {}
            },
            Line::World(noted) => {
                if let Note::WoundDown { held_for: Some(left) } = noted.note {
                    let what = format!(
                        "a claim is still held, {left:?} more, after every holder ended and every claim's time ran out"
                    );
                    violations.push(Violation::at("", noted.seq, what));
                }
            }
        }
    }
}
