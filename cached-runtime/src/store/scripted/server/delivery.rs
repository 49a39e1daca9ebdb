//! How announcements reach each process (at once, late, never, or when the test
//! says), and each process's subscription.

use std::sync::Arc;
use std::time::Duration;

use super::{Server, State};
use crate::store::scripted::history::Event;
use crate::store::scripted::script::Delivery;
use crate::store::{Announcement, Listener};

impl Server {
    /// Sends `announcement` to every live process as the script says; returns the ones
    /// to hand over at once.
    pub(super) fn publish(
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
    pub(super) fn arrive(&self, id: u64, process: usize, number: u64, announcement: Announcement) {
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
    pub(in crate::store::scripted) fn deliver_held(&self, process: usize, reversed: bool) {
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

    /// `process` subscribes again: announcements since its last subscription may be lost.
    pub(in crate::store::scripted) fn resubscribe(&self, process: usize) {
        let mut state = self.state();
        self.resubscribe_locked(&mut state, process);
    }

    /// `process` has no subscription until it subscribes again.
    pub(in crate::store::scripted) fn unsubscribe(&self, process: usize) {
        let mut state = self.state();
        self.set_subscription(&mut state, process, None);
    }

    pub(super) fn resubscribe_locked(&self, state: &mut State, process: usize) {
        state.processes[process].subscriptions += 1;
        let number = state.processes[process].subscriptions;
        self.set_subscription(state, process, Some(number));
    }

    pub(super) fn set_subscription(&self, state: &mut State, process: usize, number: Option<u64>) {
        if state.processes[process].subscription != number {
            state.processes[process].subscription = number;
            state.processes[process].silent = false;
            self.record(state, Event::Subscription { process, number });
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
