//! The fake Redis every process shares: its keyspace, one connection per process (a
//! queue that applies requests in the order they were sent), each process's breaker and
//! subscription, and the history.

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

    fn failed(&self, state: &mut State, process: usize) {
        state.processes[process].failures += 1;
        if state.processes[process].failures >= FAILURES_TO_OPEN && !state.processes[process].open {
            let outage = state.rules.outage(process);
            self.open(state, process, Some(outage));
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

    /// Sends `announcement` to every live process as the script says; returns the ones
    /// to hand over at once.
    fn publish(
        &self,
        state: &mut State,
        by: usize,
        announcement: &Announcement,
    ) -> Vec<(Arc<dyn Listener>, Announcement)> {
        state.announcements += 1;
        let id = state.announcements;
        let event = Event::Published {
            id,
            by,
            announcement: announcement.clone(),
        };
        self.record(state, event);
        let mut now = Vec::new();
        for process in 0..state.processes.len() {
            if state.processes[process].dead {
                continue;
            }
            let Some(number) = state.processes[process].subscription else {
                self.record(
                    state,
                    Event::Lost {
                        id,
                        process,
                        silent: false,
                    },
                );
                continue;
            };
            if state.processes[process].silent {
                self.record(
                    state,
                    Event::Lost {
                        id,
                        process,
                        silent: true,
                    },
                );
                continue;
            }
            match state.rules.delivery(process, announcement) {
                Delivery::Now => {
                    self.record(state, Event::Delivered { id, process });
                    now.push((state.processes[process].listener.clone(), announcement.clone()));
                }
                Delivery::After(delay) => {
                    let late = deliver_late(self.clone(), id, process, number, announcement.clone(), delay);
                    tokio::spawn(late);
                }
                Delivery::Lost => {
                    self.record(
                        state,
                        Event::Lost {
                            id,
                            process,
                            silent: false,
                        },
                    );
                    self.resubscribe_locked(state, process);
                }
                Delivery::Silent { noticed } => {
                    self.record(
                        state,
                        Event::Lost {
                            id,
                            process,
                            silent: true,
                        },
                    );
                    state.processes[process].silent = true;
                    tokio::spawn(keepalive(self.clone(), process, number, noticed));
                }
                Delivery::Held => state.processes[process].held.push((id, announcement.clone())),
            }
        }
        now
    }

    /// Hands over an announcement that was in flight, unless the subscription it was
    /// sent on is gone.
    fn arrive(&self, id: u64, process: usize, number: u64, announcement: Announcement) {
        let mut state = self.state();
        let live = !state.processes[process].dead && state.processes[process].subscription == Some(number);
        if !live || state.processes[process].silent {
            let silent = live;
            self.record(&mut state, Event::Lost { id, process, silent });
            return;
        }
        self.record(&mut state, Event::Delivered { id, process });
        let listener = state.processes[process].listener.clone();
        drop(state);
        listener.heard(announcement);
    }

    /// Hands over the announcements held for `process`, oldest first or (`reversed`)
    /// newest first.
    pub(super) fn deliver_held(&self, process: usize, reversed: bool) {
        let mut state = self.state();
        let mut held = std::mem::take(&mut state.processes[process].held);
        if reversed {
            held.reverse();
        }
        for (id, _) in &held {
            self.record(&mut state, Event::Delivered { id: *id, process });
        }
        let listener = state.processes[process].listener.clone();
        drop(state);
        for (_, announcement) in held {
            listener.heard(announcement);
        }
    }

    pub(super) fn queue(&self, process: usize, kind: super::OpKind, fault: Fault) {
        self.state().rules.queue(process, kind, fault);
    }

    pub(super) fn deliver(&self, process: usize, delivery: Delivery) {
        self.state().rules.deliver(process, delivery);
    }

    /// Opens `process`'s breaker (its subscription goes with the connection); it closes
    /// after `outage`, or (`None`) when [`recover`](Self::recover) is called.
    pub(super) fn trip(&self, process: usize, outage: Option<Duration>) {
        let mut state = self.state();
        if !state.processes[process].open {
            self.open(&mut state, process, outage);
        }
    }

    fn open(&self, state: &mut State, process: usize, outage: Option<Duration>) {
        state.processes[process].open = true;
        state.processes[process].outages += 1;
        self.record(state, Event::Breaker { process, open: true });
        self.set_subscription(state, process, None);
        if let Some(outage) = outage {
            let this = state.processes[process].outages;
            tokio::spawn(reconnect(self.clone(), process, this, outage));
        }
    }

    /// Closes `process`'s breaker: a new connection, and a new subscription.
    pub(super) fn recover(&self, process: usize) {
        let mut state = self.state();
        if state.processes[process].open && !state.processes[process].dead {
            state.processes[process].open = false;
            state.processes[process].failures = 0;
            self.record(&mut state, Event::Breaker { process, open: false });
            self.resubscribe_locked(&mut state, process);
        }
    }

    /// `process` subscribes again: announcements since its last subscription may be lost.
    pub(super) fn resubscribe(&self, process: usize) {
        let mut state = self.state();
        self.resubscribe_locked(&mut state, process);
    }

    /// `process` has no subscription until it subscribes again.
    pub(super) fn unsubscribe(&self, process: usize) {
        let mut state = self.state();
        self.set_subscription(&mut state, process, None);
    }

    fn resubscribe_locked(&self, state: &mut State, process: usize) {
        state.processes[process].subscriptions += 1;
        let number = state.processes[process].subscriptions;
        self.set_subscription(state, process, Some(number));
    }

    fn set_subscription(&self, state: &mut State, process: usize, number: Option<u64>) {
        if state.processes[process].subscription != number {
            state.processes[process].subscription = number;
            state.processes[process].silent = false;
            self.record(state, Event::Subscription { process, number });
        }
    }

    /// `process` dies: nothing it sends arrives, nothing reaches it.
    pub(super) fn kill(&self, process: usize) {
        let mut state = self.state();
        state.processes[process].dead = true;
        self.record(&mut state, Event::Killed { process });
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

async fn deliver_late(
    server: Server,
    id: u64,
    process: usize,
    number: u64,
    announcement: Announcement,
    delay: Duration,
) {
    tokio::time::sleep(delay).await;
    server.arrive(id, process, number, announcement);
}

/// A silently dead subscription is noticed by its keepalive and made again.
async fn keepalive(server: Server, process: usize, number: u64, noticed: Duration) {
    tokio::time::sleep(noticed).await;
    let mut state = server.state();
    if state.processes[process].subscription == Some(number) {
        server.resubscribe_locked(&mut state, process);
    }
}

/// Ends the outage `this` of `process` after `outage`, unless a newer one began.
async fn reconnect(server: Server, process: usize, this: u64, outage: Duration) {
    tokio::time::sleep(outage).await;
    let current = server.state().processes[process].outages == this;
    if current {
        server.recover(process);
    }
}
