//! What the simulated world did (calls, loads, writes, invalidations), numbered in one
//! order with what the store did, so a run reads as one trace.

use std::fmt;
use std::time::Duration;

use crate::store::scripted::Stamped;

/// An event of the world, numbered like the store's.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Noted {
    pub(super) seq: u64,
    pub(super) at: Duration,
    pub(super) note: Note,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Note {
    CallStarted {
        call: u64,
        process: usize,
        func: usize,
        key: String,
    },
    CallEnded {
        call: u64,
        served: Served,
    },
    /// The caller gave up, or its process died.
    CallDropped {
        call: u64,
    },
    /// The loader of `call` read the row at `version`; `subscription`: the process's,
    /// as the read path sees it.
    LoadStarted {
        call: u64,
        version: u64,
        present: bool,
        subscription: Option<u64>,
    },
    LoadEnded {
        call: u64,
        failed: bool,
        subscription: Option<u64>,
        reachable: bool,
    },
    LoadDropped {
        call: u64,
    },
    Wrote {
        key: String,
        version: u64,
        present: bool,
    },
    /// Invalidation `id` of a key or a tag (full keys) began in `process`.
    InvalidationStarted {
        id: u64,
        process: usize,
        target: String,
    },
    InvalidationEnded {
        id: u64,
        ok: bool,
    },
    /// Every call has ended and every claim's time has run out: a claim still held has
    /// outlived its holder by `held_for` more.
    WoundDown {
        held_for: Option<Duration>,
    },
}

/// What a call returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Served {
    /// A row at `version`, loaded by the loader of call `load`.
    Row {
        version: u64,
        load: u64,
    },
    Absent,
    Failed,
}

/// One line of a run's trace: the store's or the world's.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Line {
    Store(Stamped),
    World(Noted),
}

impl Line {
    pub(super) fn seq(&self) -> u64 {
        match self {
            Line::Store(stamped) => stamped.seq,
            Line::World(noted) => noted.seq,
        }
    }
}

/// Both in one order.
pub(super) fn merged(store: Vec<Stamped>, world: Vec<Noted>) -> Vec<Line> {
    let mut lines: Vec<Line> = store
        .into_iter()
        .map(Line::Store)
        .chain(world.into_iter().map(Line::World))
        .collect();
    lines.sort_by_key(Line::seq);
    lines
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Store(stamped) => write!(f, "{stamped}"),
            Line::World(noted) => write!(
                f,
                "#{:<5} {:>7.1}ms  {:?}",
                noted.seq,
                noted.at.as_secs_f64() * 1000.0,
                noted.note
            ),
        }
    }
}
