//! The in-process store: moka with a per-entry expiry, and leases in a small map.
//!
//! It keeps the semantics of the Redis store (TTL, fenced fill, lease, negative
//! entries, envelope, announcements) so code tested against it behaves the same against
//! Redis. Several handles can share one state, each with its own listener, as several
//! processes share one Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::policy::EvictionPolicy;
use moka::sync::Cache as Moka;

use super::announce::{Announcement, Listener};
use super::{Acquire, Claim, Entry, Expected, Store, StoreError, parse_version};
use crate::key::{fence_key, lease_key};
use crate::random::random_u64;
use crate::sync::{lock, read};
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
struct Held {
    tokens: Vec<String>,
    expires: Instant,
}

/// What every handle on one in-memory store shares.
struct State {
    values: Moka<String, Stored>,
    /// Leases and fences; the mutex also serialises every write, so a fenced fill is
    /// atomic with its check.
    claims: Mutex<HashMap<String, Held>>,
    /// Every handle's listener: the in-memory announcement channel.
    listeners: RwLock<Vec<Weak<dyn Listener>>>,
    tag_ttl: Duration,
}

/// A handle on an in-memory store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct MemoryStore {
    state: Arc<State>,
    /// This handle's id in the invalidations it announces.
    origin: u64,
    /// This handle's listener, kept alive while the handle is: the state holds its
    /// listeners weakly (Redis's subscription task holds its cache's listener the same
    /// way).
    _listener: Arc<dyn Listener>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.state.values.entry_count())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A new, empty store; announcements go to `listener`.
    pub(crate) fn new(listener: &Arc<dyn Listener>, origin: u64, tag_ttl: Duration) -> Self {
        let state = State {
            values: Moka::builder()
                .max_capacity(MAX_ENTRIES)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(StoredTtl)
                .build(),
            claims: Mutex::new(HashMap::new()),
            listeners: RwLock::new(vec![Arc::downgrade(listener)]),
            tag_ttl,
        };
        Self {
            state: Arc::new(state),
            origin,
            _listener: listener.clone(),
        }
    }

    /// Another handle on the same store, as another process sees it: its own listener
    /// and origin.
    #[cfg(test)]
    #[allow(dead_code)]
    pub(crate) fn join(&self, listener: &Arc<dyn Listener>, origin: u64) -> Self {
        crate::sync::write(&self.state.listeners).push(Arc::downgrade(listener));
        Self {
            state: self.state.clone(),
            origin,
            _listener: listener.clone(),
        }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        lock(&self.state.claims)
    }

    /// Tells every handle (this one too), as Redis pub/sub would.
    fn announce(&self, announcement: &Announcement) {
        let listeners: Vec<Arc<dyn Listener>> = read(&self.state.listeners).iter().filter_map(Weak::upgrade).collect();
        for listener in listeners {
            listener.heard(announcement.clone());
        }
    }

    fn entry(&self, key: &str, timed: bool) -> Option<Entry> {
        self.state.values.get(key).map(|stored| stored.entry(timed))
    }

    fn versions(&self, tag_keys: &[String]) -> Vec<Option<u64>> {
        tag_keys
            .iter()
            .map(|tag| {
                self.state
                    .values
                    .get(tag)
                    .and_then(|stored| parse_version(&stored.bytes))
            })
            .collect()
    }

    /// Stores a tag's version for at least `life`, never shortening the life it has.
    fn store_version(&self, tag_key: &str, version: u64, life: Duration) {
        let bytes: Arc<[u8]> = version.to_string().into_bytes().into();
        let left = self.state.values.get(tag_key).map_or(Duration::ZERO, |stored| {
            stored.expires.saturating_duration_since(Instant::now())
        });
        self.state
            .values
            .insert(tag_key.to_owned(), Stored::new(bytes, life.max(left)));
    }

    /// Runs `write` while `claim` holds, then gives the claim up; false if it did not hold.
    fn while_held(&self, claim: &Claim, write: impl FnOnce(&Moka<String, Stored>)) -> bool {
        let mut claims = self.claims();
        if !give_up(&mut claims, claim) {
            return false;
        }
        write(&self.state.values);
        true
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str, timed: bool) -> Result<Option<Entry>, StoreError> {
        Ok(self.entry(key, timed))
    }

    async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        Ok((self.entry(key, timed), self.versions(tag_keys)))
    }

    async fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Result<Vec<Option<u64>>, StoreError> {
        let _writes = self.claims();
        let versions = self.versions(tag_keys);
        for (tag_key, version) in tag_keys.iter().zip(&versions) {
            if let Some(version) = version {
                self.store_version(tag_key, *version, life);
            }
        }
        Ok(versions)
    }

    async fn tag_versions_for_load(&self, tag_keys: &[String], life: Duration) -> Result<Vec<u64>, StoreError> {
        let _writes = self.claims();
        let versions = self.versions(tag_keys);
        Ok(tag_keys
            .iter()
            .zip(versions)
            .map(|(tag_key, version)| {
                let version = version.unwrap_or_else(random_u64);
                // Re-inserted: the tag lives at least `life` from now.
                self.store_version(tag_key, version, life);
                version
            })
            .collect())
    }

    async fn bump_tag(&self, tag_key: &str) -> Result<(), StoreError> {
        {
            let _writes = self.claims();
            self.store_version(tag_key, random_u64(), self.state.tag_ttl);
        }
        self.announce(&Announcement::TagBumped {
            origin: self.origin,
            tag_key: tag_key.to_owned(),
        });
        Ok(())
    }

    async fn acquire(&self, claim: &Claim, duration: Duration, expected: Expected<'_>) -> Result<Acquire, StoreError> {
        let mut claims = self.claims();
        let stored = self.entry(claim.key(), true);
        let over_expected = match (stored, expected) {
            (None, _) => false,
            (Some(entry), Expected::Bytes(bytes)) if entry.bytes == bytes => true,
            (Some(entry), _) => return Ok(Acquire::Value(entry)),
        };
        let token = claim.token();
        let now = Instant::now();
        let held = claims.entry(token.claim_key.clone()).or_insert(Held {
            tokens: Vec::new(),
            expires: now,
        });
        if held.expires <= now {
            held.tokens.clear();
        }
        if matches!(claim, Claim::Lease(_)) && !held.tokens.is_empty() {
            return Ok(Acquire::Held {
                remaining: held.expires - now,
            });
        }
        held.tokens.push(token.token.clone());
        held.expires = later(now, duration);
        Ok(Acquire::Won { over_expected })
    }

    async fn fill(&self, claim: &Claim, bytes: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let key = claim.key();
        let filled = self.while_held(claim, |values| {
            values.insert(key.to_owned(), Stored::new(bytes.into(), ttl))
        });
        if filled {
            self.announce(&Announcement::Filled { key: key.to_owned() });
        }
        Ok(filled)
    }

    async fn clear(&self, claim: &Claim) -> Result<bool, StoreError> {
        let key = claim.key();
        let cleared = self.while_held(claim, |values| values.invalidate(key));
        if cleared {
            self.announce(&Announcement::Released { key: key.to_owned() });
        }
        Ok(cleared)
    }

    async fn extend(&self, claim: &Claim, duration: Duration) -> Result<bool, StoreError> {
        let mut claims = self.claims();
        let token = claim.token();
        let now = Instant::now();
        Ok(match claims.get_mut(&token.claim_key) {
            Some(held) if held.expires > now && held.tokens.contains(&token.token) => {
                held.expires = later(now, duration);
                true
            }
            _ => false,
        })
    }

    async fn release(&self, claim: &Claim) -> Result<bool, StoreError> {
        let released = give_up(&mut self.claims(), claim);
        if released && matches!(claim, Claim::Lease(_)) {
            self.announce(&Announcement::Released {
                key: claim.key().to_owned(),
            });
        }
        Ok(released)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        {
            let mut claims = self.claims();
            self.state.values.invalidate(key);
            claims.remove(&lease_key(key));
            claims.remove(&fence_key(key));
        }
        self.announce(&Announcement::Deleted {
            origin: self.origin,
            key: key.to_owned(),
        });
        Ok(())
    }

    fn announcements(&self) -> Option<u64> {
        // Delivered directly: never missed.
        Some(0)
    }

    fn reachable(&self) -> bool {
        true
    }
}

/// Removes `claim`'s token; false if the claim did not (or no longer) hold.
fn give_up(claims: &mut HashMap<String, Held>, claim: &Claim) -> bool {
    let token = claim.token();
    let Some(held) = claims.get_mut(&token.claim_key) else {
        return false;
    };
    let Some(position) = held.tokens.iter().position(|t| *t == token.token) else {
        return false;
    };
    if held.expires <= Instant::now() {
        claims.remove(&token.claim_key);
        return false;
    }
    held.tokens.swap_remove(position);
    if held.tokens.is_empty() {
        claims.remove(&token.claim_key);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Deaf;

    impl Listener for Deaf {
        fn heard(&self, _: Announcement) {}
    }

    const TAG_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    /// Regression: a load under a tag by a short-lived function cut the life a
    /// long-lived function had given the tag, unlike Redis (whose script only lengthens).
    #[tokio::test]
    async fn a_tags_life_is_never_shortened() {
        let listener: Arc<dyn Listener> = Arc::new(Deaf);
        let store = MemoryStore::new(&listener, 1, TAG_TTL);
        let tags = ["t".to_owned()];
        let long = TAG_TTL * 3;
        let version = store.tag_versions_for_load(&tags, long).await.unwrap()[0];
        let touched = store.touch_tags(&tags, Duration::from_secs(1)).await.unwrap();
        assert_eq!(touched, vec![Some(version)]);
        let left = store
            .state
            .values
            .get("t")
            .map(|stored| stored.expires - Instant::now());
        assert!(left.is_some_and(|left| left > TAG_TTL * 2), "{left:?}");
    }
}
