//! The fake Redis every process shares: its keyspace, one connection per process (a
//! queue that applies requests in the order they were sent), each process's breaker and
//! subscription, and the history.

mod breaker;
mod delivery;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::data::Data;
use super::history::{Answer, Event, Stamped};
use super::op::{Op, Reply};
use super::script::{Delivery, Fault, Rules, Script};
use crate::store::{Announcement, Listener, StoreError};
use crate::sync::lock;

/// A handle on the fake Redis. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    op_timeout: Duration,
    tag_ttl: Duration,
    start: Instant,
}

struct State {
    data: Data,
    processes: Vec<Process>,
    rules: Rules,
    log: Vec<Stamped>,
    seq: u64,
    announcements: u64,
}

/// One process's connection, breaker and subscription.
struct Process {
    origin: u64,
    listener: Arc<dyn Listener>,
    connection: mpsc::UnboundedSender<Job>,
    subscription: Option<u64>,
    subscriptions: u64,
    open: bool,
    /// Counts outages, so the end of an old one does not end a newer one.
    outages: u64,
    failures: u32,
    /// The subscription died silently: it delivers nothing until its keepalive notices.
    silent: bool,
    dead: bool,
    held: Vec<(u64, Announcement)>,
}

/// A request on its way: applied at `arrives` (or later, behind earlier ones).
pub(super) struct Job {
    pub(super) op: Op,
    pub(super) call: Option<u64>,
    pub(super) arrives: Instant,
    pub(super) reply: Option<oneshot::Sender<Reply>>,
}

/// Breaker-opening failures in a row (as `breaker.rs`).
const FAILURES_TO_OPEN: u32 = 3;

impl Server {
    /// An empty store whose operations time out after `op_timeout`.
    pub(crate) fn new(op_timeout: Duration, tag_ttl: Duration) -> Self {
        let state = State {
            data: Data::default(),
            processes: Vec::new(),
            rules: Rules::default(),
            log: Vec::new(),
            seq: 0,
            announcements: 0,
        };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                op_timeout,
                tag_ttl,
                start: Instant::now(),
            }),
        }
    }

    /// A new process's connection: its announcements go to `listener`, its
    /// invalidations name `origin`. Returns the process's number.
    pub(super) fn attach(&self, listener: Arc<dyn Listener>, origin: u64) -> usize {
        let (connection, jobs) = mpsc::unbounded_channel();
        let mut state = self.state();
        let process = state.processes.len();
        state.processes.push(Process {
            origin,
            listener,
            connection,
            subscription: Some(1),
            subscriptions: 1,
            open: false,
            outages: 0,
            failures: 0,
            silent: false,
            dead: false,
            held: Vec::new(),
        });
        tokio::spawn(serve(Arc::downgrade(&self.shared), process, jobs));
        process
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    pub(super) fn op_timeout(&self) -> Duration {
        self.shared.op_timeout
    }

    /// Misbehaviour not scripted by hand is drawn from `script`.
    pub(crate) fn draw_from(&self, script: Box<dyn Script>) {
        self.state().rules.draw_from(script);
    }

    /// Every event so far.
    pub(crate) fn history(&self) -> Vec<Stamped> {
        self.state().log.clone()
    }

    /// Every event so far, leaving none behind.
    pub(crate) fn take_history(&self) -> Vec<Stamped> {
        std::mem::take(&mut self.state().log)
    }

    /// The number of the next event, taken for an event outside the store, and the time.
    pub(crate) fn stamp(&self) -> (u64, Duration) {
        let mut state = self.state();
        state.seq += 1;
        (state.seq, self.shared.start.elapsed())
    }

    /// Stores `bytes` under `key` by hand, for `ttl`.
    pub(crate) fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) {
        self.state().data.put_raw(key, bytes, ttl, Instant::now());
    }

    /// The bytes stored under `key`.
    pub(crate) fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        let mut state = self.state();
        let mut events = Vec::new();
        let bytes = state.data.bytes(key, Instant::now(), &mut events);
        self.record_all(&mut state, events);
        bytes
    }

    /// The tokens of the claim kept at `claim_key` now.
    pub(crate) fn claim_tokens(&self, claim_key: &str) -> Vec<String> {
        let mut state = self.state();
        let mut events = Vec::new();
        let tokens = state.data.tokens(claim_key, Instant::now(), &mut events);
        self.record_all(&mut state, events);
        tokens
    }

    /// When the last claim held now expires, if any is.
    pub(crate) fn last_claim_expiry(&self) -> Option<Instant> {
        self.state().data.last_claim_expiry()
    }

    fn record(&self, state: &mut State, event: Event) {
        state.seq += 1;
        let stamped = Stamped {
            seq: state.seq,
            at: self.shared.start.elapsed(),
            event,
        };
        state.log.push(stamped);
    }

    fn record_all(&self, state: &mut State, events: Vec<Event>) {
        for event in events {
            self.record(state, event);
        }
    }

    /// A request leaves `process`: its fault, or `Skipped` if nothing can be sent.
    pub(super) fn send(&self, process: usize, call: Option<u64>, op: &Op) -> Result<Option<Fault>, StoreError> {
        let mut state = self.state();
        let down = state.processes[process].open || state.processes[process].dead;
        let fault = if down {
            Some(Fault::Skipped)
        } else {
            state.rules.fault(process, op)
        };
        let event = Event::Sent {
            process,
            call,
            op: op.kind(),
            target: op.target(),
            token: op.token().map(str::to_owned),
            fault,
        };
        self.record(&mut state, event);
        if down { Err(StoreError::Skipped) } else { Ok(fault) }
    }

    /// Puts a request on `process`'s connection.
    pub(super) fn enqueue(&self, process: usize, job: Job) {
        // A closed connection (the task ended with the runtime) drops the request.
        let _ = self.state().processes[process].connection.send(job);
    }

    /// `process`'s caller got `answer` just now; `slow`: slower than half the deadline.
    /// Counts towards the breaker as `breaker.rs` does.
    pub(super) fn returned(&self, process: usize, call: Option<u64>, op: &Op, answer: Answer, slow: bool) {
        let mut state = self.state();
        let event = Event::Returned {
            process,
            call,
            op: op.kind(),
            target: op.target(),
            answer,
        };
        self.record(&mut state, event);
        match answer {
            Answer::Skipped => {}
            Answer::Timeout => self.failed(&mut state, process),
            Answer::Won | Answer::Ok if slow => self.failed(&mut state, process),
            Answer::Won | Answer::Ok => state.processes[process].failures = 0,
        }
    }

    /// Applies a request that reached the store; announces what it did.
    fn apply(&self, process: usize, call: Option<u64>, op: &Op) -> Option<Reply> {
        let mut state = self.state();
        if state.processes[process].dead {
            return None;
        }
        let origin = state.processes[process].origin;
        let mut events = Vec::new();
        let applied = state
            .data
            .apply(op, Instant::now(), origin, self.shared.tag_ttl, &mut events);
        self.record_all(&mut state, events);
        let event = Event::Applied {
            process,
            call,
            op: op.kind(),
            target: op.target(),
            token: op.token().map(str::to_owned),
            effect: applied.effect,
        };
        self.record(&mut state, event);
        let now = match applied.announcement {
            Some(announcement) => self.publish(&mut state, process, &announcement),
            None => Vec::new(),
        };
        drop(state);
        for (listener, announcement) in now {
            listener.heard(announcement);
        }
        Some(applied.reply)
    }

    pub(super) fn queue(&self, process: usize, kind: super::OpKind, fault: Fault) {
        self.state().rules.queue(process, kind, fault);
    }

    pub(super) fn deliver(&self, process: usize, delivery: Delivery) {
        self.state().rules.deliver(process, delivery);
    }

    /// `process` dies: nothing it sends arrives, nothing reaches it.
    pub(super) fn kill(&self, process: usize) {
        let mut state = self.state();
        state.processes[process].dead = true;
        self.record(&mut state, Event::Killed { process });
    }

    pub(super) fn dead(&self, process: usize) -> bool {
        self.state().processes[process].dead
    }

    pub(super) fn announcements(&self, process: usize) -> Option<u64> {
        self.state().processes[process].subscription
    }

    pub(super) fn reachable(&self, process: usize) -> bool {
        let state = self.state();
        !state.processes[process].open && !state.processes[process].dead
    }
}

/// `process`'s connection: applies its requests one at a time, in the order sent.
async fn serve(shared: Weak<Shared>, process: usize, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        tokio::time::sleep_until(job.arrives).await;
        let Some(shared) = shared.upgrade() else { return };
        let reply = Server { shared }.apply(process, job.call, &job.op);
        if let (Some(reply), Some(to)) = (reply, job.reply) {
            let _ = to.send(reply);
        }
    }
}
