//! What happened in the fake Redis, in order: every request, what it did and what its
//! caller heard, expiries, announcements and their fate, breakers and subscriptions.

use std::fmt;
use std::time::Duration;

use super::op::OpKind;
use super::script::Fault;
use crate::store::Announcement;

/// One event, numbered in the order of all events (`seq`), at `at` since the store began.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamped {
    pub(crate) seq: u64,
    pub(crate) at: Duration,
    pub(crate) event: Event,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A request left `process` on behalf of `call` (`None`: a background task);
    /// `fault` is what the script did to it.
    Sent {
        process: usize,
        call: Option<u64>,
        op: OpKind,
        target: String,
        token: Option<String>,
        fault: Option<Fault>,
    },
    /// It reached the store and was applied.
    Applied {
        process: usize,
        call: Option<u64>,
        op: OpKind,
        target: String,
        token: Option<String>,
        effect: Effect,
    },
    /// Its caller got an answer, or an error, just now.
    Returned {
        process: usize,
        call: Option<u64>,
        op: OpKind,
        target: String,
        answer: Answer,
    },
    /// A value written by `fill` went past its expiry.
    Expired {
        key: String,
        fill: u64,
    },
    /// A claim went past its expiry with these tokens in it.
    ClaimExpired {
        claim_key: String,
        tokens: Vec<String>,
    },
    /// An announcement was published by `by`.
    Published {
        id: u64,
        by: usize,
        announcement: Announcement,
    },
    /// It reached `process`'s listener.
    Delivered {
        id: u64,
        process: usize,
    },
    /// It never will; `silent`: and `process`'s subscription still looks up.
    Lost {
        id: u64,
        process: usize,
        silent: bool,
    },
    /// `process`'s subscription changed (`None`: it has none).
    Subscription {
        process: usize,
        number: Option<u64>,
    },
    Breaker {
        process: usize,
        open: bool,
    },
    /// `process` died: nothing it sends arrives any more.
    Killed {
        process: usize,
    },
}

/// What an applied request did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// A read; `fill`: the fill whose value it returned.
    Read {
        fill: Option<u64>,
    },
    /// A lease request returned the value of `fill` instead.
    Found {
        fill: u64,
    },
    /// A lease request took the claim, over the value of `over` (the expected one).
    Won {
        over: Option<u64>,
    },
    /// A lease request found the lease held.
    Busy,
    /// A fill stored the value as `fill`; `None`: refused (the claim did not hold).
    Filled {
        fill: Option<u64>,
    },
    /// A clear, extend or release: whether the claim held.
    Held(bool),
    Done,
}

/// What a caller heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A lease request that took the claim.
    Won,
    Ok,
    Skipped,
    Timeout,
}

impl fmt::Display for Stamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<5} {:>7.1}ms  ", self.seq, self.at.as_secs_f64() * 1000.0)?;
        match &self.event {
            Event::Sent {
                process,
                call,
                op,
                target,
                token,
                fault,
            } => {
                write!(
                    f,
                    "p{process} c{} sends {op:?} {target}{}",
                    id(*call),
                    short(token.as_deref())
                )?;
                match fault {
                    Some(fault) => write!(f, " [{fault:?}]"),
                    None => Ok(()),
                }
            }
            Event::Applied {
                process,
                call,
                op,
                target,
                token,
                effect,
            } => write!(
                f,
                "p{process} c{} applied {op:?} {target}{} -> {effect:?}",
                id(*call),
                short(token.as_deref())
            ),
            Event::Returned {
                process,
                call,
                op,
                target,
                answer,
            } => write!(f, "p{process} c{} got {answer:?} for {op:?} {target}", id(*call)),
            Event::Expired { key, fill } => write!(f, "{key} (fill {fill}) expired"),
            Event::ClaimExpired { claim_key, tokens } => {
                let tokens: Vec<String> = tokens.iter().map(|t| short(Some(t))).collect();
                write!(f, "{claim_key} expired, held by{}", tokens.concat())
            }
            Event::Published { id, by, announcement } => write!(f, "p{by} publishes a{id} {announcement:?}"),
            Event::Delivered { id, process } => write!(f, "a{id} reaches p{process}"),
            Event::Lost { id, process, silent } => {
                write!(
                    f,
                    "a{id} lost for p{process}{}",
                    if *silent { " (silently)" } else { "" }
                )
            }
            Event::Subscription { process, number } => write!(f, "p{process} subscription {number:?}"),
            Event::Breaker { process, open } => {
                write!(f, "p{process} breaker {}", if *open { "opens" } else { "closes" })
            }
            Event::Killed { process } => write!(f, "p{process} dies"),
        }
    }
}

fn id(call: Option<u64>) -> String {
    call.map_or_else(|| "-".to_owned(), |call| call.to_string())
}

/// A token's first characters, enough to tell tokens of one schedule apart.
fn short(token: Option<&str>) -> String {
    token.map_or_else(String::new, |token| format!(" ~{}", &token[..token.len().min(6)]))
}
