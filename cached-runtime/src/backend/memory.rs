//! The in-process store: moka with a per-entry expiry, and leases in a small map.
//!
//! It keeps the semantics of the Redis store (TTL, fenced fill, lease, negative
//! entries, envelope) so code tested against it behaves the same against Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache as Moka;

use super::{Acquire, LeaseRequest};
use crate::fills::FillWaiters;

/// Entries kept at most; the least recently used go first past this.
const MAX_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone)]
struct Stored {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct StoredTtl;

impl Expiry<String, Stored> for StoredTtl {
    fn expire_after_create(&self, _key: &String, value: &Stored, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Debug)]
struct Lease {
    token: String,
    expires: Instant,
}

pub(crate) struct MemoryStore {
    values: Moka<String, Stored>,
    /// Leases; also serialises every write so a fenced fill is atomic with its check.
    leases: Mutex<HashMap<String, Lease>>,
    fills: Arc<FillWaiters>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.values.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub(crate) fn new(fills: Arc<FillWaiters>) -> Self {
        Self {
            values: Moka::builder()
                .max_capacity(MAX_ENTRIES)
                .expire_after(StoredTtl)
                .build(),
            leases: Mutex::new(HashMap::new()),
            fills,
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.get(key).map(|stored| stored.bytes.to_vec())
    }

    pub(crate) fn acquire(&self, request: LeaseRequest<'_>) -> Acquire {
        let mut leases = self.leases();
        if request.check_value
            && let Some(bytes) = self.get(request.key)
        {
            return Acquire::Value(bytes);
        }
        let now = Instant::now();
        if request.exclusive
            && let Some(held) = leases.get(request.lease_key)
            && held.expires > now
        {
            return Acquire::Held {
                remaining: held.expires - now,
            };
        }
        leases.insert(
            request.lease_key.to_owned(),
            Lease {
                token: request.token.to_owned(),
                expires: now + request.lease,
            },
        );
        Acquire::Won
    }

    pub(crate) fn fill(&self, key: &str, lease_key: &str, token: &str, bytes: &[u8], ttl: Duration) -> bool {
        {
            let mut leases = self.leases();
            if !holds(&leases, lease_key, token) {
                return false;
            }
            self.values.insert(
                key.to_owned(),
                Stored {
                    bytes: bytes.into(),
                    ttl,
                },
            );
            leases.remove(lease_key);
        }
        self.fills.notify(key);
        true
    }

    pub(crate) fn extend(&self, lease_key: &str, token: &str, lease: Duration) -> bool {
        let mut leases = self.leases();
        if !holds(&leases, lease_key, token) {
            return false;
        }
        if let Some(held) = leases.get_mut(lease_key) {
            held.expires = Instant::now() + lease;
        }
        true
    }

    pub(crate) fn release(&self, key: &str, lease_key: &str, token: &str) {
        let released = {
            let mut leases = self.leases();
            holds(&leases, lease_key, token) && leases.remove(lease_key).is_some()
        };
        if released {
            self.fills.notify(key);
        }
    }

    pub(crate) fn delete(&self, key: &str, lease_key: &str) {
        {
            let mut leases = self.leases();
            self.values.invalidate(key);
            leases.remove(lease_key);
        }
        self.fills.notify(key);
    }
}

fn holds(leases: &HashMap<String, Lease>, lease_key: &str, token: &str) -> bool {
    leases
        .get(lease_key)
        .is_some_and(|held| held.token == token && held.expires > Instant::now())
}
