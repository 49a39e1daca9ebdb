//! The in-process store: moka with a per-entry expiry, and leases in a small map.
//!
//! It keeps the semantics of the Redis store (TTL, fenced fill, lease, negative
//! entries, envelope) so code tested against it behaves the same against Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use moka::sync::Cache as Moka;

use super::{Acquire, Entry, Lease, TAG_TTL, parse_version};
use crate::fills::FillWaiters;
use crate::key::{fence_key, lease_key};
use crate::random::random_u64;
use crate::time::later;

/// Entries kept at most; the least recently used go first past this.
const MAX_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone)]
struct Stored {
    bytes: Arc<[u8]>,
    ttl: Duration,
    expires: Instant,
}

impl Stored {
    fn new(bytes: Arc<[u8]>, ttl: Duration) -> Self {
        Self {
            bytes,
            ttl,
            expires: later(Instant::now(), ttl),
        }
    }

    fn entry(&self, timed: bool) -> Entry {
        Entry {
            bytes: self.bytes.to_vec(),
            remaining: timed.then(|| self.expires.saturating_duration_since(Instant::now())),
        }
    }
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

/// A lease (one token) or a fence (the tokens of every unlocked load in flight).
#[derive(Debug)]
struct Claim {
    tokens: Vec<String>,
    expires: Instant,
}

pub(crate) struct MemoryStore {
    values: Moka<String, Stored>,
    /// Leases and fences; the mutex also serialises every write, so a fenced fill is
    /// atomic with its check.
    claims: Mutex<HashMap<String, Claim>>,
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
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(StoredTtl)
                .build(),
            claims: Mutex::new(HashMap::new()),
            fills,
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claim>> {
        self.claims.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn get(&self, key: &str, timed: bool) -> Option<Entry> {
        self.values.get(key).map(|stored| stored.entry(timed))
    }

    pub(crate) fn get_tagged(&self, key: &str, tag_keys: &[String], timed: bool) -> (Option<Entry>, Vec<Option<u64>>) {
        (self.get(key, timed), self.tag_versions(tag_keys))
    }

    pub(crate) fn tag_versions(&self, tag_keys: &[String]) -> Vec<Option<u64>> {
        tag_keys
            .iter()
            .map(|tag| self.values.get(tag).and_then(|stored| parse_version(&stored.bytes)))
            .collect()
    }

    pub(crate) fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Vec<Option<u64>> {
        let _writes = self.claims();
        let versions = self.tag_versions(tag_keys);
        for (tag_key, version) in tag_keys.iter().zip(&versions) {
            if let Some(version) = version {
                self.store_version(tag_key, *version, life);
            }
        }
        versions
    }

    pub(crate) fn tag_versions_for_load(&self, tag_keys: &[String], life: Duration) -> Vec<u64> {
        let _writes = self.claims();
        tag_keys
            .iter()
            .map(|tag_key| {
                let version = self
                    .values
                    .get(tag_key)
                    .and_then(|stored| parse_version(&stored.bytes))
                    .unwrap_or_else(random_u64);
                // Re-inserted: the tag lives at least `life` from now.
                self.store_version(tag_key, version, life);
                version
            })
            .collect()
    }

    pub(crate) fn bump_tag(&self, tag_key: &str) {
        let _writes = self.claims();
        self.store_version(tag_key, random_u64(), TAG_TTL);
    }

    /// Stores a tag's version for at least `life`, never shortening the life it has.
    fn store_version(&self, tag_key: &str, version: u64, life: Duration) {
        let bytes: Arc<[u8]> = version.to_string().into_bytes().into();
        let left = self.values.get(tag_key).map_or(Duration::ZERO, |stored| {
            stored.expires.saturating_duration_since(Instant::now())
        });
        self.values
            .insert(tag_key.to_owned(), Stored::new(bytes, life.max(left)));
    }

    pub(crate) fn acquire(&self, lease: &Lease, duration: Duration, check_value: bool) -> Acquire {
        let mut claims = self.claims();
        if check_value && let Some(entry) = self.get(&lease.key, true) {
            return Acquire::Value(entry);
        }
        let now = Instant::now();
        let expires = later(now, duration);
        let claim = claims.entry(lease.lease_key.clone()).or_insert(Claim {
            tokens: Vec::new(),
            expires: now,
        });
        if claim.expires <= now {
            claim.tokens.clear();
        }
        if lease.exclusive && !claim.tokens.is_empty() {
            return Acquire::Held {
                remaining: claim.expires - now,
            };
        }
        claim.tokens.push(lease.token.clone());
        claim.expires = expires;
        Acquire::Won
    }

    pub(crate) fn fill(&self, lease: &Lease, bytes: &[u8], ttl: Duration) -> bool {
        {
            let mut claims = self.claims();
            if !give_up(&mut claims, lease) {
                return false;
            }
            self.values.insert(lease.key.clone(), Stored::new(bytes.into(), ttl));
        }
        self.fills.notify(&lease.key);
        true
    }

    pub(crate) fn clear(&self, lease: &Lease) -> bool {
        {
            let mut claims = self.claims();
            if !give_up(&mut claims, lease) {
                return false;
            }
            self.values.invalidate(&lease.key);
        }
        self.fills.notify(&lease.key);
        true
    }

    pub(crate) fn extend(&self, lease: &Lease, duration: Duration) -> bool {
        let mut claims = self.claims();
        let now = Instant::now();
        match claims.get_mut(&lease.lease_key) {
            Some(claim) if claim.expires > now && claim.tokens.contains(&lease.token) => {
                claim.expires = later(now, duration);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn release(&self, lease: &Lease) -> bool {
        let released = give_up(&mut self.claims(), lease);
        if released && lease.exclusive {
            self.fills.notify(&lease.key);
        }
        released
    }

    pub(crate) fn delete(&self, key: &str) {
        {
            let mut claims = self.claims();
            self.values.invalidate(key);
            claims.remove(&lease_key(key));
            claims.remove(&fence_key(key));
        }
        self.fills.notify(key);
    }
}

/// Removes `lease`'s token from its claim; false if the claim was not (or no longer) ours.
fn give_up(claims: &mut HashMap<String, Claim>, lease: &Lease) -> bool {
    let Some(claim) = claims.get_mut(&lease.lease_key) else {
        return false;
    };
    let Some(position) = claim.tokens.iter().position(|t| *t == lease.token) else {
        return false;
    };
    if claim.expires <= Instant::now() {
        claims.remove(&lease.lease_key);
        return false;
    }
    claim.tokens.swap_remove(position);
    if claim.tokens.is_empty() {
        claims.remove(&lease.lease_key);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a load under a tag by a short-lived function cut the life a
    /// long-lived function had given the tag, unlike Redis (whose script only lengthens).
    #[test]
    fn a_tags_life_is_never_shortened() {
        let store = MemoryStore::new(Arc::default());
        let tags = ["t".to_owned()];
        let long = TAG_TTL * 3;
        let version = store.tag_versions_for_load(&tags, long)[0];
        assert_eq!(store.touch_tags(&tags, Duration::from_secs(1)), vec![Some(version)]);
        let left = store.values.get("t").map(|stored| stored.expires - Instant::now());
        assert!(left.is_some_and(|left| left > TAG_TTL * 2), "{left:?}");
    }
}
