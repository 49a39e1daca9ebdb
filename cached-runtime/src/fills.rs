//! Announcements between caches: a caller waiting for another process's load registers
//! the key here; the store's message (pub/sub for Redis, a direct call in memory) wakes
//! it. Invalidations also tell every other cache to stop sharing the loads it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::coalesce::Flights;

/// One message on the announcement channel. Encoded here only; the scripts publish the
/// bytes they are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Announcement {
    /// `key` was filled, or its lease released: waiters ask again.
    Filled { key: String },
    /// `key` was invalidated by the cache `origin`: loads of it running elsewhere are no
    /// longer shared with new callers, and waiters ask again.
    Invalidated { origin: u64, key: String },
    /// A tag (its version key) was invalidated by the cache `origin`.
    TagInvalidated { origin: u64, tag_key: String },
}

impl Announcement {
    /// `f<key>`, `d<origin as 16 hex digits><key>`, `t<origin><tag key>`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, origin, key) = match self {
            Announcement::Filled { key } => (b'f', None, key),
            Announcement::Invalidated { origin, key } => (b'd', Some(origin), key),
            Announcement::TagInvalidated { origin, tag_key } => (b't', Some(origin), tag_key),
        };
        let mut out = Vec::with_capacity(17 + key.len());
        out.push(kind);
        if let Some(origin) = origin {
            out.extend_from_slice(format!("{origin:016x}").as_bytes());
        }
        out.extend_from_slice(key.as_bytes());
        out
    }

    pub(crate) fn decode(payload: &[u8]) -> Option<Announcement> {
        let (&kind, rest) = payload.split_first()?;
        let with_origin = |rest: &[u8]| -> Option<(u64, String)> {
            let (origin, key) = rest.split_at_checked(16)?;
            let origin = u64::from_str_radix(std::str::from_utf8(origin).ok()?, 16).ok()?;
            Some((origin, String::from_utf8(key.to_vec()).ok()?))
        };
        match kind {
            b'f' => Some(Announcement::Filled {
                key: String::from_utf8(rest.to_vec()).ok()?,
            }),
            b'd' => with_origin(rest).map(|(origin, key)| Announcement::Invalidated { origin, key }),
            b't' => with_origin(rest).map(|(origin, tag_key)| Announcement::TagInvalidated { origin, tag_key }),
            _ => None,
        }
    }
}

/// Whom an announcement concerns in this cache.
#[derive(Debug, Clone)]
pub(crate) struct Wake {
    /// This cache's id in the invalidations it announces.
    pub(crate) origin: u64,
    pub(crate) fills: Arc<FillWaiters>,
    pub(crate) flights: Arc<Flights>,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Self {
            origin: crate::random::random_u64(),
            fills: Arc::default(),
            flights: Arc::default(),
        }
    }

    /// Acts on a message from the channel. A cache ignores its own invalidations: it
    /// detached the loads they concern before sending them, and a load started since is
    /// newer than the invalidation.
    pub(crate) fn announced(&self, payload: &[u8]) {
        match Announcement::decode(payload) {
            Some(Announcement::Filled { key }) => self.fills.notify(&key),
            Some(Announcement::Invalidated { origin, key }) => {
                if origin != self.origin {
                    self.flights.detach(&key);
                }
                self.fills.notify(&key);
            }
            Some(Announcement::TagInvalidated { origin, tag_key }) if origin != self.origin => {
                self.flights.detach_tag(&tag_key);
            }
            Some(Announcement::TagInvalidated { .. }) | None => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::Join;

    #[test]
    fn announcements_round_trip() {
        for announcement in [
            Announcement::Filled { key: "p:{a:1}".into() },
            Announcement::Invalidated {
                origin: u64::MAX,
                key: "p:{a:1}".into(),
            },
            Announcement::TagInvalidated {
                origin: 7,
                tag_key: "p:tag:{c:1}".into(),
            },
        ] {
            assert_eq!(Announcement::decode(&announcement.encode()), Some(announcement));
        }
        assert_eq!(Announcement::decode(b"dshort"), None);
        assert_eq!(Announcement::decode(b""), None);
    }

    /// Regression: a cache's own invalidation message, arriving after a new load of the
    /// key had started, detached that load and split it in two.
    #[test]
    fn a_caches_own_invalidation_message_does_not_detach_a_later_load() {
        let wake = Wake::new();
        let Join::Leader(_load) = wake.flights.join("k", &["t".to_owned()]) else {
            panic!("leads")
        };
        wake.announced(
            &Announcement::Invalidated {
                origin: wake.origin,
                key: "k".into(),
            }
            .encode(),
        );
        wake.announced(
            &Announcement::TagInvalidated {
                origin: wake.origin,
                tag_key: "t".into(),
            }
            .encode(),
        );
        assert!(matches!(wake.flights.join("k", &[]), Join::Waiter(_)), "still shared");
        wake.announced(
            &Announcement::Invalidated {
                origin: wake.origin ^ 1,
                key: "k".into(),
            }
            .encode(),
        );
        assert!(
            matches!(wake.flights.join("k", &[]), Join::Leader(_)),
            "another cache's invalidation detaches it"
        );
    }
}
