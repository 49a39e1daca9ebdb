//! One request to the fake Redis, owned so it can travel and arrive late, and its reply.

use std::time::Duration;

use crate::store::{Acquire, Claim, Entry};

/// A request, one per [`Store`](crate::store::Store) operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Get {
        key: String,
        timed: bool,
    },
    GetTagged {
        key: String,
        tag_keys: Vec<String>,
        timed: bool,
    },
    TouchTags {
        tag_keys: Vec<String>,
        life: Duration,
    },
    TagVersionsForLoad {
        tag_keys: Vec<String>,
        life: Duration,
    },
    BumpTag {
        tag_key: String,
    },
    Acquire {
        claim: Claim,
        duration: Duration,
        expected: Option<Vec<u8>>,
    },
    Fill {
        claim: Claim,
        bytes: Vec<u8>,
        ttl: Duration,
    },
    Clear {
        claim: Claim,
    },
    Extend {
        claim: Claim,
        duration: Duration,
    },
    Release {
        claim: Claim,
    },
    Delete {
        key: String,
    },
}

/// Which operation a request is: what faults are scripted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Get,
    GetTagged,
    TouchTags,
    TagVersionsForLoad,
    BumpTag,
    Acquire,
    Fill,
    Clear,
    Extend,
    Release,
    Delete,
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Get { .. } => OpKind::Get,
            Op::GetTagged { .. } => OpKind::GetTagged,
            Op::TouchTags { .. } => OpKind::TouchTags,
            Op::TagVersionsForLoad { .. } => OpKind::TagVersionsForLoad,
            Op::BumpTag { .. } => OpKind::BumpTag,
            Op::Acquire { .. } => OpKind::Acquire,
            Op::Fill { .. } => OpKind::Fill,
            Op::Clear { .. } => OpKind::Clear,
            Op::Extend { .. } => OpKind::Extend,
            Op::Release { .. } => OpKind::Release,
            Op::Delete { .. } => OpKind::Delete,
        }
    }

    /// The key it acts on: the value's key, or the tags' version keys joined by spaces.
    pub(crate) fn target(&self) -> String {
        match self {
            Op::Get { key, .. } | Op::GetTagged { key, .. } | Op::Delete { key } => key.clone(),
            Op::TouchTags { tag_keys, .. } | Op::TagVersionsForLoad { tag_keys, .. } => tag_keys.join(" "),
            Op::BumpTag { tag_key } => tag_key.clone(),
            Op::Acquire { claim, .. }
            | Op::Fill { claim, .. }
            | Op::Clear { claim }
            | Op::Extend { claim, .. }
            | Op::Release { claim } => claim.key().to_owned(),
        }
    }

    /// The claim token it carries, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        match self {
            Op::Acquire { claim, .. }
            | Op::Fill { claim, .. }
            | Op::Clear { claim }
            | Op::Extend { claim, .. }
            | Op::Release { claim } => Some(&claim.token().token),
            _ => None,
        }
    }
}

/// What the fake Redis answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Entry(Option<Entry>),
    Tagged(Option<Entry>, Vec<Option<u64>>),
    Versions(Vec<Option<u64>>),
    Created(Vec<u64>),
    Acquire(Acquire),
    /// Whether the claim held (fill, clear, extend, release).
    Held(bool),
    Done,
}
