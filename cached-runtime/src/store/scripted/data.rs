//! What the fake Redis holds, and every operation applied to it as one atomic step: the
//! semantics of the Lua scripts (`store/scripts.rs`), on tokio's clock.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::history::{Effect, Event};
use super::op::{Op, Reply};
use crate::key::{fence_key, lease_key};
use crate::random::random_u64;
use crate::store::{Acquire, Announcement, Claim, Entry, parse_version};
use crate::time::later;

/// A stored string: a value, a negative entry or a tag version. `fill`: which fill wrote
/// it (0 for tag versions and values put by hand).
#[derive(Debug)]
struct Stored {
    bytes: Vec<u8>,
    expires: Instant,
    fill: u64,
}

/// A lease (one token) or a fence (a set of tokens), with its expiry.
#[derive(Debug)]
struct Held {
    tokens: Vec<String>,
    expires: Instant,
}

/// The keyspace.
#[derive(Debug, Default)]
pub(super) struct Data {
    values: BTreeMap<String, Stored>,
    claims: BTreeMap<String, Held>,
    fills: u64,
}

/// What applying an operation did.
pub(super) struct Applied {
    pub(super) reply: Reply,
    pub(super) effect: Effect,
    pub(super) announcement: Option<Announcement>,
}

impl Data {
    /// Applies `op` at `now` for the cache `origin`. Expiries noticed on the way go to
    /// `events`.
    pub(super) fn apply(
        &mut self,
        op: &Op,
        now: Instant,
        origin: u64,
        tag_ttl: Duration,
        events: &mut Vec<Event>,
    ) -> Applied {
        match op {
            Op::Get { key, timed } => {
                let (entry, fill) = self.read(key, *timed, now, events);
                plain(Reply::Entry(entry), Effect::Read { fill })
            }
            Op::GetTagged { key, tag_keys, timed } => {
                let (entry, fill) = self.read(key, *timed, now, events);
                let versions = self.versions(tag_keys, now, events);
                plain(Reply::Tagged(entry, versions), Effect::Read { fill })
            }
            Op::TouchTags { .. } | Op::TagVersionsForLoad { .. } | Op::BumpTag { .. } => {
                self.tags(op, now, origin, tag_ttl, events)
            }
            Op::Acquire {
                claim,
                duration,
                expected,
            } => self.acquire(claim, *duration, expected.as_deref(), now, events),
            Op::Fill { claim, bytes, ttl } => self.fill(claim, bytes, *ttl, now, events),
            Op::Clear { claim } | Op::Extend { claim, .. } | Op::Release { claim } => {
                self.end_or_extend(op, claim, now, events)
            }
            Op::Delete { key } => {
                self.values.remove(key);
                self.claims.remove(&lease_key(key));
                self.claims.remove(&fence_key(key));
                let deleted = Announcement::Deleted {
                    origin,
                    key: key.clone(),
                };
                announced(Reply::Done, Effect::Done, Some(deleted))
            }
        }
    }

    /// The tag-versions scripts and the tag bump.
    fn tags(&mut self, op: &Op, now: Instant, origin: u64, tag_ttl: Duration, events: &mut Vec<Event>) -> Applied {
        match op {
            Op::TouchTags { tag_keys, life } => {
                let versions = self.versions(tag_keys, now, events);
                for (tag_key, version) in tag_keys.iter().zip(&versions) {
                    if version.is_some() {
                        self.lengthen(tag_key, *life, now);
                    }
                }
                plain(Reply::Versions(versions), Effect::Done)
            }
            Op::TagVersionsForLoad { tag_keys, life } => {
                let versions = self.versions(tag_keys, now, events);
                let created = tag_keys
                    .iter()
                    .zip(versions)
                    .map(|(tag_key, version)| {
                        if let Some(version) = version {
                            self.lengthen(tag_key, *life, now);
                            return version;
                        }
                        let version = random_u64();
                        self.put(tag_key, version.to_string().into_bytes(), *life, 0, now);
                        version
                    })
                    .collect();
                plain(Reply::Created(created), Effect::Done)
            }
            Op::BumpTag { tag_key } => {
                self.put(tag_key, random_u64().to_string().into_bytes(), tag_ttl, 0, now);
                let bumped = Announcement::TagBumped {
                    origin,
                    tag_key: tag_key.clone(),
                };
                announced(Reply::Done, Effect::Done, Some(bumped))
            }
            other => unreachable!("{other:?} is no tag operation"),
        }
    }

    /// Clear, extend and release: each acts only while the claim holds.
    fn end_or_extend(&mut self, op: &Op, claim: &Claim, now: Instant, events: &mut Vec<Event>) -> Applied {
        let released = Announcement::Released {
            key: claim.key().to_owned(),
        };
        match op {
            Op::Clear { .. } => {
                let held = self.give_up(claim, now, events);
                if held {
                    self.values.remove(claim.key());
                }
                announced(Reply::Held(held), Effect::Held(held), held.then_some(released))
            }
            Op::Extend { duration, .. } => {
                let held = self.ours(claim, now, events);
                if held && let Some(claim) = self.claims.get_mut(&claim.token().claim_key) {
                    claim.expires = later(now, *duration);
                }
                plain(Reply::Held(held), Effect::Held(held))
            }
            Op::Release { .. } => {
                let held = self.give_up(claim, now, events);
                // A fence has no waiters to tell.
                let announce = held && matches!(claim, Claim::Lease(_));
                announced(Reply::Held(held), Effect::Held(held), announce.then_some(released))
            }
            other => unreachable!("{other:?} neither ends nor extends a claim"),
        }
    }

    /// Stores `bytes` under `key` by hand (a test's corrupt or foreign value).
    pub(super) fn put_raw(&mut self, key: &str, bytes: Vec<u8>, ttl: Duration, now: Instant) {
        self.put(key, bytes, ttl, 0, now);
    }

    /// The bytes stored under `key`, if any.
    pub(super) fn bytes(&mut self, key: &str, now: Instant, events: &mut Vec<Event>) -> Option<Vec<u8>> {
        self.live(key, now, events).map(|stored| stored.bytes.clone())
    }

    /// The tokens of the claim kept at `claim_key` (empty: none).
    pub(super) fn tokens(&mut self, claim_key: &str, now: Instant, events: &mut Vec<Event>) -> Vec<String> {
        self.live_claim(claim_key, now, events)
            .map(|held| held.tokens.clone())
            .unwrap_or_default()
    }

    /// The latest expiry of any claim held now.
    pub(super) fn last_claim_expiry(&self) -> Option<Instant> {
        self.claims.values().map(|held| held.expires).max()
    }

    fn put(&mut self, key: &str, bytes: Vec<u8>, ttl: Duration, fill: u64, now: Instant) {
        let stored = Stored {
            bytes,
            expires: later(now, ttl),
            fill,
        };
        self.values.insert(key.to_owned(), stored);
    }

    /// Only ever lengthens a key's life (as the tag-versions script does).
    fn lengthen(&mut self, key: &str, life: Duration, now: Instant) {
        if let Some(stored) = self.values.get_mut(key) {
            stored.expires = stored.expires.max(later(now, life));
        }
    }

    /// The value under `key` unless it has expired (then it is removed, as Redis would).
    fn live(&mut self, key: &str, now: Instant, events: &mut Vec<Event>) -> Option<&Stored> {
        if self.values.get(key).is_some_and(|stored| stored.expires <= now) {
            if let Some(gone) = self.values.remove(key)
                && gone.fill != 0
            {
                events.push(Event::Expired {
                    key: key.to_owned(),
                    fill: gone.fill,
                });
            }
            return None;
        }
        self.values.get(key)
    }

    fn live_claim(&mut self, claim_key: &str, now: Instant, events: &mut Vec<Event>) -> Option<&mut Held> {
        if self.claims.get(claim_key).is_some_and(|held| held.expires <= now) {
            if let Some(gone) = self.claims.remove(claim_key) {
                events.push(Event::ClaimExpired {
                    claim_key: claim_key.to_owned(),
                    tokens: gone.tokens,
                });
            }
            return None;
        }
        self.claims.get_mut(claim_key)
    }

    fn read(&mut self, key: &str, timed: bool, now: Instant, events: &mut Vec<Event>) -> (Option<Entry>, Option<u64>) {
        match self.live(key, now, events) {
            Some(stored) => (Some(entry(stored, timed, now)), Some(stored.fill)),
            None => (None, None),
        }
    }

    fn versions(&mut self, tag_keys: &[String], now: Instant, events: &mut Vec<Event>) -> Vec<Option<u64>> {
        tag_keys
            .iter()
            .map(|tag_key| {
                self.live(tag_key, now, events)
                    .and_then(|stored| parse_version(&stored.bytes))
            })
            .collect()
    }

    fn acquire(
        &mut self,
        claim: &Claim,
        duration: Duration,
        expected: Option<&[u8]>,
        now: Instant,
        events: &mut Vec<Event>,
    ) -> Applied {
        let (found, over) = match self.live(claim.key(), now, events) {
            Some(stored) if !stored.bytes.is_empty() => match expected {
                Some(bytes) if bytes == stored.bytes.as_slice() => (None, Some(stored.fill)),
                _ => (Some((entry(stored, true, now), stored.fill)), None),
            },
            _ => (None, None),
        };
        if let Some((entry, fill)) = found {
            return plain(Reply::Acquire(Acquire::Value(entry)), Effect::Found { fill });
        }
        let token = claim.token();
        let lease = matches!(claim, Claim::Lease(_));
        if lease && let Some(held) = self.live_claim(&token.claim_key, now, events) {
            let remaining = held.expires - now;
            return plain(Reply::Acquire(Acquire::Held { remaining }), Effect::Busy);
        }
        let held = match self.live_claim(&token.claim_key, now, events) {
            Some(_) => self.claims.get_mut(&token.claim_key),
            None => None,
        };
        let expires = later(now, duration);
        match held {
            // A fence: every unlocked load joins it; its expiry starts over (PEXPIRE).
            Some(held) => {
                held.tokens.push(token.token.clone());
                held.expires = expires;
            }
            None => {
                let held = Held {
                    tokens: vec![token.token.clone()],
                    expires,
                };
                self.claims.insert(token.claim_key.clone(), held);
            }
        }
        let over_expected = over.is_some();
        plain(Reply::Acquire(Acquire::Won { over_expected }), Effect::Won { over })
    }

    fn fill(&mut self, claim: &Claim, bytes: &[u8], ttl: Duration, now: Instant, events: &mut Vec<Event>) -> Applied {
        let held = self.give_up(claim, now, events);
        let mut fill = None;
        if held {
            self.fills += 1;
            self.put(claim.key(), bytes.to_vec(), ttl, self.fills, now);
            fill = Some(self.fills);
        }
        let filled = Announcement::Filled {
            key: claim.key().to_owned(),
        };
        announced(Reply::Held(held), Effect::Filled { fill }, held.then_some(filled))
    }

    /// Whether `claim` holds now.
    fn ours(&mut self, claim: &Claim, now: Instant, events: &mut Vec<Event>) -> bool {
        let token = claim.token();
        self.live_claim(&token.claim_key, now, events)
            .is_some_and(|held| held.tokens.contains(&token.token))
    }

    /// Gives `claim` up if it holds; says whether it did.
    fn give_up(&mut self, claim: &Claim, now: Instant, events: &mut Vec<Event>) -> bool {
        let token = claim.token();
        let Some(held) = self.live_claim(&token.claim_key, now, events) else {
            return false;
        };
        let Some(position) = held.tokens.iter().position(|t| *t == token.token) else {
            return false;
        };
        held.tokens.swap_remove(position);
        if held.tokens.is_empty() {
            self.claims.remove(&token.claim_key);
        }
        true
    }
}

fn plain(reply: Reply, effect: Effect) -> Applied {
    announced(reply, effect, None)
}

fn announced(reply: Reply, effect: Effect, announcement: Option<Announcement>) -> Applied {
    Applied {
        reply,
        effect,
        announcement,
    }
}

fn entry(stored: &Stored, timed: bool, now: Instant) -> Entry {
    Entry {
        bytes: stored.bytes.clone(),
        remaining: timed.then(|| stored.expires - now),
    }
}
