//! Playing a plan: processes (each a cache's context over its own handle on the
//! scripted store), a database whose rows have versions, callers, writers that
//! invalidate as `Cache` does, deaths and outages, all on tokio's paused clock.

mod actors;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::chaos::Chaos;
use super::plan::{Action, Plan};
use super::record::{Line, Note, Noted, merged};
use crate::policy::TAG_TTL;
use crate::read_path::Context;
use crate::store::scripted::{ScriptedStore, Server};
use crate::sync::lock;

const OP_TIMEOUT: Duration = Duration::from_millis(50);
const CALL_BUDGET: Duration = Duration::from_millis(150);

/// A row as loaded: its version, and which call's loader read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    version: u64,
    load: u64,
}

#[derive(Debug)]
struct DbError;

type Out = Result<Option<Row>, DbError>;

/// Plays the schedule of `seed` and returns its trace.
pub(super) fn run(seed: u64) -> (Plan, Vec<Line>) {
    crate::random::seed_this_thread(seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let Ok(runtime) = runtime else {
        unreachable!("a current-thread runtime with a paused clock always builds")
    };
    let world = runtime.block_on(async move {
        let world = Arc::new(World::new(Plan::draw(seed), seed));
        world.clone().play().await;
        world.wind_down().await;
        world
    });
    drop(runtime);
    match Arc::try_unwrap(world) {
        Ok(world) => world.into_trace(),
        Err(_) => unreachable!("every task ended with the runtime"),
    }
}

struct World {
    plan: Plan,
    server: Server,
    processes: Vec<Process>,
    /// Each row's version and whether it exists; absent rows are at version 0.
    db: Mutex<BTreeMap<String, (u64, bool)>>,
    notes: Mutex<Vec<Noted>>,
}

struct Process {
    cx: Context,
    store: ScriptedStore,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl World {
    fn new(plan: Plan, seed: u64) -> Self {
        let server = Server::new(OP_TIMEOUT, TAG_TTL);
        server.draw_from(Box::new(Chaos::new(seed, plan.storm)));
        let processes = (0..plan.processes)
            .map(|p| Process::new(&server, p as u64 + 1))
            .collect();
        Self {
            plan,
            server,
            processes,
            db: Mutex::new(BTreeMap::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, note: Note) {
        let (seq, at) = self.server.stamp();
        lock(&self.notes).push(Noted { seq, at, note });
    }

    fn into_trace(self) -> (Plan, Vec<Line>) {
        let notes = self.notes.into_inner().unwrap_or_else(|e| e.into_inner());
        let trace = merged(self.server.take_history(), notes);
        (self.plan, trace)
    }

    /// Starts each action at its time; returns once every call and write has ended.
    async fn play(self: Arc<Self>) {
        let start = Instant::now();
        let mut running = Vec::new();
        for (i, &(at, action)) in self.plan.actions.iter().enumerate() {
            tokio::time::sleep_until(start + at).await;
            let id = i as u64 + 1;
            match action {
                Action::Call { process, .. } | Action::Write { process, .. } => {
                    let Some(process) = self.alive(process) else { continue };
                    let task = tokio::spawn(self.clone().act(id, process, action));
                    lock(&self.processes[process].tasks).push(task.abort_handle());
                    running.push(task);
                }
                Action::Kill { process } => self.kill(process),
                Action::Outage { process, lasts } => self.processes[process].store.trip(Some(lasts)),
                Action::Deafen { process, lasts } => {
                    let store = self.processes[process].store.clone();
                    store.unsubscribe();
                    tokio::spawn(async move {
                        tokio::time::sleep(lasts).await;
                        store.resubscribe();
                    });
                }
            }
        }
        for task in running {
            let _ = task.await;
        }
    }

    /// `process` if it lives, else another that does.
    fn alive(&self, process: usize) -> Option<usize> {
        let n = self.processes.len();
        (0..n)
            .map(|i| (process + i) % n)
            .find(|&p| !self.processes[p].store.dead())
    }

    fn kill(&self, process: usize) {
        self.processes[process].store.kill();
        for task in lock(&self.processes[process].tasks).drain(..) {
            task.abort();
        }
    }

    /// Lets every lease, fence and retry run out, so what outlives its holder shows.
    async fn wind_down(&self) {
        let longest = self.plan.funcs.iter().map(|func| func.policy.lease()).max();
        tokio::time::sleep(longest.unwrap_or_default() + Duration::from_secs(1)).await;
        let now = Instant::now();
        let held_for = self
            .server
            .last_claim_expiry()
            .filter(|&expires| expires > now)
            .map(|expires| expires - now);
        self.note(Note::WoundDown { held_for });
    }
}

impl Process {
    fn new(server: &Server, origin: u64) -> Self {
        let (cx, wake) = Context::wired(origin, CALL_BUDGET);
        Self {
            cx,
            store: ScriptedStore::connect(server, wake, origin),
            tasks: Mutex::new(Vec::new()),
        }
    }
}
