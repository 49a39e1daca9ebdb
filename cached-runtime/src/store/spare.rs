//! Connection handles kept per thread, so an operation does not clone the shared
//! multiplexed connection (and drop the clone) each time: at 64 concurrent hits the
//! atomic counters inside a clone, written by both cores, cost more than the rest of
//! the cache's work on a hit. A handle is the same connection as the shared one; after
//! a reconnect (a new generation) old handles are dropped instead of reused.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Handles kept per thread at most: about as many as operations in flight on it.
const KEPT_PER_THREAD: usize = 64;

/// Ids of the stores that lend handles, so two stores never share one.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(0);

struct Spare {
    owner: u64,
    generation: u64,
    connection: MultiplexedConnection,
}

thread_local! {
    static SPARES: RefCell<Vec<Spare>> = const { RefCell::new(Vec::new()) };
}

/// A new owner id.
pub(super) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// A handle of `owner`'s connection of `generation` kept by this thread, if any.
pub(super) fn take(owner: u64, generation: u64) -> Option<MultiplexedConnection> {
    SPARES
        .try_with(|spares| {
            let mut spares = spares.try_borrow_mut().ok()?;
            let spare = spares.pop()?;
            (spare.owner == owner && spare.generation == generation).then_some(spare.connection)
        })
        .ok()
        .flatten()
}

/// A handle for one operation; given back to the thread it is dropped on.
pub(crate) struct Lent {
    connection: Option<MultiplexedConnection>,
    owner: u64,
    generation: u64,
}

impl Lent {
    pub(super) fn new(connection: MultiplexedConnection, owner: u64, generation: u64) -> Self {
        Self {
            connection: Some(connection),
            owner,
            generation,
        }
    }

    fn get(&mut self) -> &mut MultiplexedConnection {
        self.connection
            .as_mut()
            .unwrap_or_else(|| unreachable!("present until dropped"))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let spare = Spare {
            owner: self.owner,
            generation: self.generation,
            connection,
        };
        let _ = SPARES.try_with(|spares| {
            if let Ok(mut spares) = spares.try_borrow_mut() {
                // Handles of another store or an older connection are not reused.
                spares.retain(|kept| kept.owner == spare.owner && kept.generation == spare.generation);
                if spares.len() < KEPT_PER_THREAD {
                    spares.push(spare);
                }
            }
        });
    }
}

impl ConnectionLike for Lent {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.get().req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.get().req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.connection.as_ref().map_or(0, ConnectionLike::get_db)
    }
}
