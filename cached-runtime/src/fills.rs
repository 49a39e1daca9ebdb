//! Fill announcements: a caller waiting for another process's load registers the key
//! here; the store's fill message (pub/sub for Redis, a direct call in memory) wakes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::coalesce::Flights;

/// Whom a fill announcement concerns in this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wake {
    pub(crate) fills: Arc<FillWaiters>,
    pub(crate) flights: Arc<Flights>,
}

impl Wake {
    /// `f<key>`: filled or released, waiters ask again. `d<key>`: invalidated, and
    /// loads of it already running here are no longer shared with new callers.
    /// `t<tag key>`: a tag was invalidated; loads running here under it are no longer
    /// shared with new callers.
    pub(crate) fn announced(&self, payload: &[u8]) {
        let Some((&kind, key)) = payload.split_first() else {
            return;
        };
        let Ok(key) = std::str::from_utf8(key) else { return };
        match kind {
            b'd' => self.flights.detach(key),
            b't' => {
                self.flights.detach_tag(key);
                return;
            }
            _ => {}
        }
        self.fills.notify(key);
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
        let mut waiting = self.waiting.lock().unwrap_or_else(|poison| poison.into_inner());
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
        let waiting = self.waiting.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(watch) = waiting.get(key) {
            watch.filled.notify_waiters();
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiters.waiting.lock().unwrap_or_else(|poison| poison.into_inner());
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
