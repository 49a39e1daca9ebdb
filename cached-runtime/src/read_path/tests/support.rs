//! Processes on one scripted store, a database that names each load, and a cached read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::key::full_key;
use crate::near::NearCache;
use crate::policy::TAG_TTL;
use crate::read_path::{Context, read_through};
use crate::shape::ResultOption;
use crate::store::Store;
use crate::store::Tracked;
use crate::store::scripted::{ScriptedStore, Server};
use crate::{Policy, Stats};

/// No lock, no stale window, no jitter.
pub(super) static PLAIN: Policy = Policy::new("plain", Duration::from_secs(60)).jitter(0);
/// A lock whose lease lasts a second.
pub(super) static LOCKED: Policy = Policy::new("locked", Duration::from_secs(60))
    .lock(Duration::from_secs(1))
    .jitter(0);
/// Stale after 500 ms, servable for 5 s more.
pub(super) static STALE: Policy = Policy::new("stale", Duration::from_millis(500))
    .stale(Duration::from_secs(5))
    .jitter(0);
/// Every read of a value whose load took a while draws an early refresh.
pub(super) static EARLY: Policy = Policy::new("early", Duration::from_secs(60))
    .refresh_early(1e6)
    .jitter(0);

pub(super) const OP_TIMEOUT: Duration = Duration::from_millis(50);
const CALL_BUDGET: Duration = Duration::from_millis(150);

/// A loaded row: `load` says which load of the database produced it (1 for the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Row {
    pub(super) load: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct DbError;

pub(super) type Out = Result<Option<Row>, DbError>;

/// The result of the `n`-th load.
pub(super) fn loaded(n: u64) -> Out {
    Ok(Some(Row { load: n }))
}

/// The database behind every process: counts loads, and each row names its load.
#[derive(Debug, Default)]
pub(super) struct Db {
    loads: AtomicU64,
}

impl Db {
    pub(super) fn loads(&self) -> u64 {
        self.loads.load(Ordering::SeqCst)
    }

    /// A load that takes `time`.
    pub(super) fn load(self: &Arc<Self>, time: Duration) -> impl Future<Output = Out> + Send + 'static {
        let db = self.clone();
        async move {
            let n = db.loads.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(time).await;
            loaded(n)
        }
    }

    /// A load that fails after `time`.
    pub(super) fn failing(self: &Arc<Self>, time: Duration) -> impl Future<Output = Out> + Send + 'static {
        let db = self.clone();
        async move {
            db.loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(time).await;
            Err(DbError)
        }
    }
}

/// One process: a cache's context and its handle on the shared store.
#[derive(Debug)]
pub(super) struct Process {
    pub(super) cx: Context,
    pub(super) store: ScriptedStore,
}

/// `n` processes on one scripted store.
pub(super) fn deployment(n: u64) -> (Server, Vec<Arc<Process>>) {
    let server = Server::new(OP_TIMEOUT, TAG_TTL);
    let processes = (1..=n).map(|origin| Arc::new(Process::new(&server, origin))).collect();
    (server, processes)
}

/// `n` processes on one scripted store, the first with a near cache whose tracking
/// is on: the test plays Redis's invalidation pushes on it.
pub(super) fn deployment_with_near(n: u64) -> (Server, Vec<Arc<Process>>, Arc<NearCache>) {
    let server = Server::new(OP_TIMEOUT, TAG_TTL);
    let near = Arc::new(NearCache::new("", 100, 1 << 20));
    near.resumed();
    // Confirmed for longer than any test runs (the near cache keeps real time).
    near.confirmed(std::time::Instant::now() + Duration::from_secs(3600));
    let mut first = Process::new(&server, 1);
    first.cx.near = Some(near.clone());
    let others = (2..=n).map(|origin| Arc::new(Process::new(&server, origin)));
    let processes = std::iter::once(Arc::new(first)).chain(others).collect();
    (server, processes, near)
}

impl Process {
    fn new(server: &Server, origin: u64) -> Self {
        let (cx, wake) = Context::wired(origin, CALL_BUDGET);
        Self {
            cx,
            store: ScriptedStore::connect(server, wake, origin),
        }
    }

    pub(super) async fn read(&self, policy: &Policy, key: &str, load: impl Future<Output = Out>) -> Out {
        self.read_with_outcome(policy, key, load).await.0
    }

    /// A read, and what it came to.
    pub(super) async fn read_with_outcome(
        &self,
        policy: &Policy,
        key: &str,
        load: impl Future<Output = Out>,
    ) -> (Out, crate::stats::Outcome) {
        let came = crate::read_path::Came::new();
        let out = read_through::<ResultOption<Row, DbError>, ScriptedStore>(
            &self.cx,
            &self.store,
            policy,
            (key, &[]),
            load,
            &came,
        )
        .await;
        (out, came.get())
    }

    /// Starts a read on its own task; it answers with the result and when it came.
    pub(super) fn spawn_read(
        self: &Arc<Self>,
        policy: &'static Policy,
        key: &'static str,
        load: impl Future<Output = Out> + Send + 'static,
    ) -> JoinHandle<(Out, Instant)> {
        let process = self.clone();
        tokio::spawn(async move {
            let out = process.read(policy, key, load).await;
            (out, Instant::now())
        })
    }

    /// What `Cache::invalidate` does: this process's load of the key is no longer
    /// shared, and the store voids every other one.
    pub(super) async fn invalidate(&self, key: &str) {
        let key = full_key(&self.cx.prefix, key);
        self.cx.flights.detach(&key);
        let done = self.store.delete(&key).await;
        assert!(done.is_ok(), "the invalidation went through");
    }

    pub(super) fn stats(&self) -> Stats {
        self.cx.counters.snapshot()
    }
}

/// The full key of `key`.
pub(super) fn full(key: &str) -> String {
    full_key("", key)
}

/// Lets `time` pass, and the tasks due by then run.
pub(super) async fn pass(time: Duration) {
    tokio::time::sleep(time).await;
    tokio::task::yield_now().await;
}

pub(super) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}
