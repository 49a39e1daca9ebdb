//! Each process's breaker: opened by failures in a row (as `breaker.rs`) or by a
//! test, closed after the outage with a new connection and a new subscription.

use std::time::Duration;

use super::{FAILURES_TO_OPEN, Server, State};
use crate::store::scripted::history::Event;

impl Server {
    /// Counts a failure of `process`; enough in a row open its breaker.
    pub(super) fn failed(&self, state: &mut State, process: usize) {
        state.processes[process].failures += 1;
        if state.processes[process].failures >= FAILURES_TO_OPEN && !state.processes[process].open {
            let outage = state.rules.outage(process);
            self.open(state, process, Some(outage));
        }
    }

    /// Opens `process`'s breaker (its subscription goes with the connection); it closes
    /// after `outage`, or (`None`) when [`recover`](Self::recover) is called.
    pub(in crate::store::scripted) fn trip(&self, process: usize, outage: Option<Duration>) {
        let mut state = self.state();
        if !state.processes[process].open {
            self.open(&mut state, process, outage);
        }
    }

    pub(super) fn open(&self, state: &mut State, process: usize, outage: Option<Duration>) {
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
    pub(in crate::store::scripted) fn recover(&self, process: usize) {
        let mut state = self.state();
        if state.processes[process].open && !state.processes[process].dead {
            state.processes[process].open = false;
            state.processes[process].failures = 0;
            self.record(&mut state, Event::Breaker { process, open: false });
            self.resubscribe_locked(&mut state, process);
        }
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
