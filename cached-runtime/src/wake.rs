//! What an announcement wakes in this cache: the callers waiting for another
//! process's load of a key (registered here while they wait), and the loads running
//! here that an invalidation elsewhere voided (no longer shared with new callers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::coalesce::Flights;
use crate::store::{Announcement, Listener};
use crate::sync::lock;

/// The cache's listener: every announcement its store hears comes here.
#[derive(Debug)]
pub(crate) struct Wake {
    /// This cache's id in the invalidations it announces.
    pub(crate) origin: u64,
    pub(crate) fills: Arc<FillWaiters>,
    pub(crate) flights: Arc<Flights>,
}

impl Wake {
    pub(crate) fn new(origin: u64, flights: Arc<Flights>, fills: Arc<FillWaiters>) -> Self {
        Self { origin, fills, flights }
    }
}

impl Listener for Wake {
    /// A cache ignores its own invalidations: it detached the loads they concern before
    /// sending them, and a load started since is newer than the invalidation.
    fn heard(&self, announcement: Announcement) {
        match announcement {
            Announcement::Filled { key } | Announcement::Released { key } => self.fills.notify(&key),
            Announcement::Deleted { origin, key } => {
                if origin != self.origin {
                    self.flights.detach(&key);
                }
                self.fills.notify(&key);
            }
            Announcement::TagBumped { origin, tag_key } => {
                if origin != self.origin {
                    self.flights.detach_tag(&tag_key);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct FillWaiters {
    waiting: Mutex<HashMap<String, Arc<Watch>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Watch {
    pub(crate) filled: Notify,
    registrations: std::sync::atomic::AtomicUsize,
}

/// Keeps a key registered while it lives.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    waiters: &'a FillWaiters,
    key: &'a str,
    pub(crate) watch: Arc<Watch>,
}

impl FillWaiters {
    pub(crate) fn register<'a>(&'a self, key: &'a str) -> Registration<'a> {
        let mut waiting = lock(&self.waiting);
        let watch = waiting.entry(key.to_owned()).or_default().clone();
        watch.registrations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Registration {
            waiters: self,
            key,
            watch,
        }
    }

    /// Wakes everyone waiting for `key`; a no-op (one map lookup) when nobody is.
    pub(crate) fn notify(&self, key: &str) {
        let waiting = lock(&self.waiting);
        if let Some(watch) = waiting.get(key) {
            watch.filled.notify_waiters();
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.waiters.waiting);
        if self
            .watch
            .registrations
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            == 1
        {
            waiting.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::Join;

    /// Regression: a cache's own invalidation message, arriving after a new load of the
    /// key had started, detached that load and split it in two.
    #[test]
    fn a_caches_own_invalidation_message_does_not_detach_a_later_load() {
        let wake = Wake::new(7, Arc::default(), Arc::default());
        let Join::Leader(_load) = wake.flights.join("k", &["t".to_owned()]) else {
            panic!("leads")
        };
        wake.heard(Announcement::Deleted {
            origin: wake.origin,
            key: "k".into(),
        });
        wake.heard(Announcement::TagBumped {
            origin: wake.origin,
            tag_key: "t".into(),
        });
        assert!(matches!(wake.flights.join("k", &[]), Join::Waiter(_)), "still shared");
        wake.heard(Announcement::Deleted {
            origin: wake.origin ^ 1,
            key: "k".into(),
        });
        assert!(
            matches!(wake.flights.join("k", &[]), Join::Leader(_)),
            "another cache's invalidation detaches it"
        );
    }
}
