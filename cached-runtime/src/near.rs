//! The near cache: values read from Redis, kept decoded in this process and served
//! with no round trip while Redis's client tracking says nobody changed them.
//!
//! Coherence comes from `store/tracking.rs`: every write, delete, expiry or eviction of
//! a key under the cache's prefix, by any process, arrives as an invalidation
//! ([`NearCache::invalidated`]). While tracking is down on any master nothing is served
//! and nothing is kept: a loss clears the cache ([`NearCache::lost`]), and serving
//! resumes only once tracking is on again everywhere ([`NearCache::resumed`]).
//!
//! **A read racing an invalidation.** Every key and tag key hashes to one of
//! [`STRIPES`] counters, and every invalidation bumps its counter before it evicts the
//! entry. A read takes a [`Ticket`] (its key's and tags' counters, and the tracking
//! epoch) before it is sent. The value it gets is kept with the ticket, and served
//! only while none of those has moved, so an invalidation that arrived while the value
//! was read is never served past; the insert also checks and takes the value out
//! again. A collision only costs a read.
//!
//! **Tags.** A tagged value keeps its tags' counters as read with the ticket (the
//! local tag versions) and is served only while they have not moved, so a tag bump
//! evicts every value under the tag without a round trip and without a list of them.
//!
//! **Age.** A value is served until the earliest of: the function's `near` max age
//! after its read was sent, the end of its ttl by Redis's `PTTL` (less the `stale`
//! window, since a value past its ttl is the refresh path's), and, under `refresh`,
//! the start of the early-refresh window (three times the load time times beta before
//! expiry, where the draw could matter). After that, calls read Redis as before.
//!
//! Memory is bounded by entries and bytes at once: every entry weighs at least
//! `max_bytes / max_entries`, and more when its stored size is larger.

use std::any::Any;
use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::Policy;
use crate::coalesce::Shared;
use crate::codec::{Codec, load_ms};
use crate::shape::{Loaded, Shape};
use crate::store::Tracked;

/// Counters that invalidations bump; keys and tags hash to one each.
const STRIPES: usize = 1 << 14;

/// How much of the time to expiry belongs to `refresh`'s draws: a draw with a head start
/// past three load times (times beta) has a probability under 5%.
const EARLY_REFRESH_LOADS: f64 = 3.0;

/// The near cache of one `Cache`.
pub(crate) struct NearCache {
    /// By rendered key (a hit need not build the full key: one allocation less).
    entries: moka::sync::Cache<String, Arc<Kept>>,
    /// The cache's prefix, which full keys start with.
    prefix: String,
    stripes: Box<[AtomicU64]>,
    /// Odd while tracking is on at every master (values are served and kept); bumped at
    /// each loss and resumption, and by two at each flush.
    epoch: AtomicU64,
    /// Whether the cache serves now, for whoever waits for it.
    serving: watch::Sender<bool>,
    /// The least weight of an entry, so that `max_entries` holds too.
    least_weight: u32,
    /// Until when tracking is known to be delivering (nanoseconds after `origin`): every
    /// message Redis sent before the last check has been handled. Nothing is served
    /// past it, however the checks fail (a silent connection, a starved task).
    confirmed_until: AtomicU64,
    origin: Instant,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("entries", &self.entries.entry_count())
            .field("serving", &self.is_serving())
            .finish_non_exhaustive()
    }
}

/// A value as kept.
struct Kept {
    /// A `Shared<V>` of the function's value type.
    value: Arc<dyn Any + Send + Sync>,
    /// The terms it was kept under: served only to a call with the same.
    terms: Terms,
    /// The tags of the call that kept it (as rendered): a call with other tags needs a
    /// value computed under those.
    tags: Box<[String]>,
    /// Served until then.
    until: Instant,
    /// The tracking epoch when the read was sent.
    epoch: u64,
    /// The counters of the key, then of each tag, as they were when the read was sent.
    seen: Box<[(usize, u64)]>,
    weight: u32,
}

/// What a read saw before it was sent: a value it returns is kept only if none of
/// this moved since.
#[derive(Debug)]
pub(crate) struct Ticket {
    epoch: u64,
    sent: Instant,
    max_age: Duration,
    /// The counters of the key, then of each tag.
    seen: Box<[(usize, u64)]>,
}

/// What of a function's policy decides whether and how long a kept value may be served:
/// two functions that share a key but not these do not share kept values.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Terms {
    function: &'static str,
    codec: Codec,
    version: u32,
    negative: bool,
    stale: Option<Duration>,
    refresh_beta: Option<f64>,
    max_age: Option<Duration>,
}

impl Terms {
    fn of(policy: &Policy) -> Self {
        Self {
            function: policy.name,
            codec: policy.codec,
            version: policy.version,
            negative: policy.negative.is_some(),
            stale: policy.stale,
            refresh_beta: policy.refresh_beta,
            max_age: policy.near_age(),
        }
    }
}

/// What moka counts for an entry besides its stored bytes: the map's own node, the
/// kept value's boxes and counters (about what a small entry was measured to take).
const ENTRY_OVERHEAD: usize = 512;

impl NearCache {
    /// A near cache for the keys under `prefix`, of at most `max_entries` entries and
    /// about `max_bytes` bytes (each entry counted at its stored size), not serving until
    /// tracking is on.
    pub(crate) fn new(prefix: &str, max_entries: u64, max_bytes: u64) -> Self {
        let max_entries = max_entries.max(1);
        let max_bytes = max_bytes.max(max_entries);
        let least_weight = u32::try_from(max_bytes / max_entries).unwrap_or(u32::MAX);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_key: &String, kept: &Arc<Kept>| kept.weight)
                .build(),
            prefix: prefix.to_owned(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            serving: watch::Sender::new(false),
            least_weight,
            confirmed_until: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn confirmed_at(&self, now: Instant) -> bool {
        let now = u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        now < self.confirmed_until.load(SeqCst)
    }

    fn is_serving(&self) -> bool {
        self.epoch.load(SeqCst) % 2 == 1
    }

    /// Waits until the cache serves (tracking is on), at most `timeout`.
    pub(crate) async fn serving_within(&self, timeout: Duration) {
        let mut serving = self.serving.subscribe();
        let _ = tokio::time::timeout(timeout, serving.wait_for(|serving| *serving)).await;
    }

    /// The value of `key` (rendered, with `tags`) for a function of shape `S`, if one is
    /// kept and still current.
    pub(crate) fn get<S: Shape>(&self, key: &str, tags: &[String], policy: &Policy) -> Option<S::Output> {
        if !self.is_serving() {
            return None;
        }
        let kept = self.entries.get(key)?;
        let now = Instant::now();
        if now >= kept.until {
            // Expired here rather than by moka's per-entry expiry, which costs every hit.
            self.entries.invalidate(key);
            return None;
        }
        if kept.terms != Terms::of(policy)
            || *kept.tags != *tags
            || !self.unmoved(kept.epoch, &kept.seen)
            || !self.confirmed_at(now)
        {
            return None;
        }
        match kept.value.downcast_ref::<Shared<S::Value>>()? {
            Shared::Value(value) => Some(S::from_value(value.clone())),
            Shared::Absent if policy.negative.is_some() => S::absent(),
            Shared::Absent => None,
        }
    }

    /// What a read of `key` with `tag_keys` (full keys) sees before it is sent, for a
    /// function whose values may be kept for `max_age`; `None` while the cache does not
    /// serve.
    pub(crate) fn ticket(&self, key: &str, tag_keys: &[String], max_age: Duration) -> Option<Ticket> {
        let epoch = self.epoch.load(SeqCst);
        if epoch.is_multiple_of(2) {
            return None;
        }
        let counter = |key: &String| {
            let stripe = stripe(key.as_bytes());
            (stripe, self.stripes[stripe].load(SeqCst))
        };
        let key = key.to_owned();
        Some(Ticket {
            epoch,
            sent: Instant::now(),
            max_age,
            seen: std::iter::once(&key).chain(tag_keys).map(counter).collect(),
        })
    }

    /// Keeps `out`, the answer a read of `key` with `tags` (both as rendered) and `ticket`
    /// got from `bytes` (stored for `remaining` more, if known), unless an invalidation
    /// arrived since the ticket.
    #[allow(clippy::too_many_arguments, reason = "the read's parts, each needed")]
    pub(crate) fn keep<S: Shape>(
        &self,
        ticket: Ticket,
        key: &str,
        tags: &[String],
        out: &S::Output,
        policy: &Policy,
        bytes: &[u8],
        remaining: Option<Duration>,
    ) {
        let (value, absent): (Arc<dyn Any + Send + Sync>, bool) = match S::classify(out) {
            Loaded::Value(value) => (Arc::new(Shared::Value(value.clone())), false),
            Loaded::Absent => (Arc::new(Shared::<S::Value>::Absent), true),
            Loaded::Failed => return,
        };
        let until = served_until(&ticket, policy, bytes, remaining, absent);
        if until <= Instant::now() {
            return;
        }
        let size = bytes.len() + key.len() + tags.iter().map(String::len).sum::<usize>() + ENTRY_OVERHEAD;
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let kept = Arc::new(Kept {
            value,
            terms: Terms::of(policy),
            tags: tags.into(),
            until,
            epoch: ticket.epoch,
            seen: ticket.seen,
            weight: size.max(self.least_weight),
        });
        self.entries.insert(key.to_owned(), kept.clone());
        // Not served either way (`get` checks too); this frees the room at once.
        if !self.unmoved(kept.epoch, &kept.seen) {
            self.entries.invalidate(key);
        }
    }

    /// Whether neither the epoch nor any of the counters `seen` has moved.
    fn unmoved(&self, epoch: u64, seen: &[(usize, u64)]) -> bool {
        self.epoch.load(SeqCst) == epoch
            && seen
                .iter()
                .all(|&(stripe, value)| self.stripes[stripe].load(SeqCst) == value)
    }

    /// `key` (a full key, or a tag's key) changed, here or elsewhere: its value, and
    /// every value under it as a tag, is no longer served, and reads in flight do not
    /// keep what they get.
    pub(crate) fn evict(&self, key: &str) {
        self.invalidated(key.as_bytes());
    }
}

impl NearCache {
    /// The rendered keys whose full key (`key::full_key`) is `key`: without the prefix,
    /// and also without the braces of the hash tag the cache adds (when the rendered key
    /// had its own, the braces are its).
    fn rendered_of<'a>(&self, key: &'a str) -> impl Iterator<Item = &'a str> {
        let unprefixed = key.strip_prefix(self.prefix.as_str());
        let untagged = unprefixed.and_then(|key| key.strip_prefix('{')?.strip_suffix('}'));
        unprefixed.into_iter().chain(untagged)
    }
}

/// When a value read with `ticket` stops being served (see the module docs).
fn served_until(ticket: &Ticket, policy: &Policy, bytes: &[u8], remaining: Option<Duration>, absent: bool) -> Instant {
    let mut left = ticket.max_age;
    if let Some(remaining) = remaining {
        let mut fresh = remaining;
        if !absent {
            fresh = fresh.saturating_sub(policy.stale.unwrap_or_default());
            if let (Some(beta), Some(load_ms)) = (policy.refresh_beta, load_ms(bytes)) {
                let early = f64::from(load_ms) / 1000.0 * beta * EARLY_REFRESH_LOADS;
                fresh = fresh.saturating_sub(Duration::try_from_secs_f64(early).unwrap_or(Duration::MAX));
            }
        }
        left = left.min(fresh);
    }
    ticket.sent + left
}

/// The counter a key (or tag key) bumps.
fn stripe(key: &[u8]) -> usize {
    let mut hasher = DefaultHasher::new();
    hasher.write(key);
    // Truncation is the point: any bits serve as an index.
    #[allow(clippy::cast_possible_truncation, reason = "an index from a hash")]
    let hash = hasher.finish() as usize;
    hash % STRIPES
}

impl Tracked for NearCache {
    fn invalidated(&self, key: &[u8]) {
        self.stripes[stripe(key)].fetch_add(1, SeqCst);
        if let Ok(key) = std::str::from_utf8(key) {
            for rendered in self.rendered_of(key) {
                self.entries.invalidate(rendered);
            }
        }
    }

    fn flushed(&self) {
        self.epoch.fetch_add(2, SeqCst);
        self.entries.invalidate_all();
    }

    fn lost(&self) {
        if self.is_serving() {
            self.epoch.fetch_add(1, SeqCst);
        }
        self.entries.invalidate_all();
        self.serving.send_replace(false);
    }

    fn confirmed(&self, until: Instant) {
        let until = u64::try_from(until.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        self.confirmed_until.fetch_max(until, SeqCst);
    }

    fn resumed(&self) {
        if !self.is_serving() {
            self.epoch.fetch_add(1, SeqCst);
        }
        self.serving.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Optional;

    static POLICY: Policy = Policy::new("f", Duration::from_secs(60)).negative(Duration::from_secs(60));

    fn serving() -> NearCache {
        let near = NearCache::new("", 100, 1 << 20);
        near.resumed();
        near.confirmed(Instant::now() + Duration::from_secs(60));
        near
    }

    fn keep(near: &NearCache, ticket: Ticket, key: &str, value: Option<u32>) {
        near.keep::<Optional<u32>>(ticket, key, &[], &value, &POLICY, b"", Some(Duration::from_secs(60)));
    }

    fn get(near: &NearCache, key: &str) -> Option<Option<u32>> {
        near.get::<Optional<u32>>(key, &[], &POLICY)
    }

    #[test]
    fn a_kept_value_and_a_kept_not_found_are_served() {
        let near = serving();
        keep(
            &near,
            near.ticket("k", &[], Duration::from_secs(10)).unwrap(),
            "k",
            Some(7),
        );
        keep(
            &near,
            near.ticket("none", &[], Duration::from_secs(10)).unwrap(),
            "none",
            None,
        );
        assert_eq!(get(&near, "k"), Some(Some(7)));
        assert_eq!(get(&near, "none"), Some(None));
        assert_eq!(
            near.get::<Optional<u64>>("k", &[], &POLICY),
            None,
            "another type is not served"
        );
    }

    /// The race of the issue, forced: the invalidation lands between the read and the
    /// insert; the value read must not be kept.
    #[test]
    fn a_value_invalidated_while_it_was_read_is_not_kept() {
        let near = serving();
        let ticket = near.ticket("k", &[], Duration::from_secs(10)).unwrap();
        near.invalidated(b"k");
        keep(&near, ticket, "k", Some(1));
        assert_eq!(get(&near, "k"), None);
    }

    #[test]
    fn a_value_read_while_tracking_was_lost_and_back_is_not_kept() {
        let near = serving();
        let ticket = near.ticket("k", &[], Duration::from_secs(10)).unwrap();
        near.lost();
        assert!(
            near.ticket("k", &[], Duration::from_secs(10)).is_none(),
            "no reads kept while lost"
        );
        near.resumed();
        keep(&near, ticket, "k", Some(1));
        assert_eq!(get(&near, "k"), None);
    }

    #[test]
    fn losing_tracking_clears_and_stops_serving() {
        let near = serving();
        keep(
            &near,
            near.ticket("k", &[], Duration::from_secs(10)).unwrap(),
            "k",
            Some(1),
        );
        near.lost();
        near.resumed();
        assert_eq!(get(&near, "k"), None);
    }

    #[test]
    fn a_tag_bump_stops_every_value_under_it() {
        let near = serving();
        let tags = ["tag:{t}".to_owned()];
        keep(
            &near,
            near.ticket("a", &tags, Duration::from_secs(10)).unwrap(),
            "a",
            Some(1),
        );
        keep(
            &near,
            near.ticket("b", &tags, Duration::from_secs(10)).unwrap(),
            "b",
            Some(2),
        );
        assert_eq!(get(&near, "a"), Some(Some(1)));
        near.invalidated(b"tag:{t}");
        assert_eq!(get(&near, "a"), None);
        assert_eq!(get(&near, "b"), None);
    }

    #[test]
    fn a_flush_clears_and_voids_reads_in_flight() {
        let near = serving();
        keep(
            &near,
            near.ticket("a", &[], Duration::from_secs(10)).unwrap(),
            "a",
            Some(1),
        );
        let ticket = near.ticket("b", &[], Duration::from_secs(10)).unwrap();
        near.flushed();
        keep(&near, ticket, "b", Some(2));
        assert_eq!(get(&near, "a"), None);
        assert_eq!(get(&near, "b"), None);
    }

    #[test]
    fn a_value_is_served_no_longer_than_its_ttl_or_max_age() {
        let near = serving();
        let ticket = near.ticket("k", &[], Duration::from_millis(1)).unwrap();
        keep(&near, ticket, "k", Some(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(get(&near, "k"), None, "max age");
        let ticket = near.ticket("k", &[], Duration::from_secs(10)).unwrap();
        near.keep::<Optional<u32>>(ticket, "k", &[], &Some(1), &POLICY, b"", Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(get(&near, "k"), None, "ttl");
    }

    /// A near cache of `max_entries` and `max_bytes` after 100 values of `size` bytes.
    fn filled(max_entries: u64, max_bytes: u64, size: usize) -> NearCache {
        let near = NearCache::new("", max_entries, max_bytes);
        near.resumed();
        for i in 0..100 {
            let key = format!("k{i}");
            let ticket = near.ticket(&key, &[], Duration::from_secs(10)).unwrap();
            let bytes = vec![0; size];
            near.keep::<Optional<u32>>(
                ticket,
                &key,
                &[],
                &Some(i),
                &POLICY,
                &bytes,
                Some(Duration::from_secs(60)),
            );
        }
        near.entries.run_pending_tasks();
        near
    }

    #[test]
    fn entries_are_bounded_by_count_and_by_bytes() {
        let near = filled(10, 1000, 10);
        assert!(near.entries.entry_count() <= 10, "{}", near.entries.entry_count());
        let big = filled(1000, 1000, 100);
        assert!(big.entries.weighted_size() <= 1000, "{}", big.entries.weighted_size());
    }

    /// Regression: a near hit ignored the caller's tags, so a call of the same key with
    /// another tag got the value computed under the first, even after its own tag was
    /// invalidated.
    #[test]
    fn a_value_kept_under_one_tag_is_not_served_to_a_call_with_another() {
        let near = serving();
        let (seven, eight) = (["category:7".to_owned()], ["category:8".to_owned()]);
        let ticket = near
            .ticket("p", &["tag:{category:7}".to_owned()], Duration::from_secs(10))
            .unwrap();
        near.keep::<Optional<u32>>(
            ticket,
            "p",
            &seven,
            &Some(7),
            &POLICY,
            b"",
            Some(Duration::from_secs(60)),
        );
        assert_eq!(near.get::<Optional<u32>>("p", &seven, &POLICY), Some(Some(7)));
        assert_eq!(near.get::<Optional<u32>>("p", &eight, &POLICY), None);
        assert_eq!(near.get::<Optional<u32>>("p", &[], &POLICY), None);
    }

    /// Regression: a value kept by one function was served to another sharing its key
    /// under that function's terms (its `stale`, `refresh` and max age).
    #[test]
    fn a_value_kept_by_one_function_is_not_served_to_another_with_other_terms() {
        static STALE: Policy = Policy::new("f", Duration::from_secs(60))
            .negative(Duration::from_secs(60))
            .stale(Duration::from_secs(60));
        static SHORT: Policy = Policy::new("f", Duration::from_secs(60))
            .negative(Duration::from_secs(60))
            .near(Duration::from_secs(1));
        let near = serving();
        keep(
            &near,
            near.ticket("k", &[], Duration::from_secs(10)).unwrap(),
            "k",
            Some(1),
        );
        assert_eq!(get(&near, "k"), Some(Some(1)));
        assert_eq!(near.get::<Optional<u32>>("k", &[], &STALE), None);
        assert_eq!(near.get::<Optional<u32>>("k", &[], &SHORT), None);
    }

    /// Nothing is served once tracking has not been confirmed for its lease: the checks
    /// may be failing, or starved, while the connection looks up.
    #[test]
    fn nothing_is_served_past_the_last_confirmation() {
        let near = NearCache::new("", 100, 1 << 20);
        near.resumed();
        near.confirmed(Instant::now() + Duration::from_millis(2));
        keep(
            &near,
            near.ticket("k", &[], Duration::from_secs(10)).unwrap(),
            "k",
            Some(1),
        );
        assert_eq!(get(&near, "k"), Some(Some(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(get(&near, "k"), None);
        near.confirmed(Instant::now() + Duration::from_secs(1));
        assert_eq!(get(&near, "k"), Some(Some(1)), "served again once confirmed");
    }

    /// Entries are kept by rendered key; Redis names full keys (prefix and hash tag).
    #[test]
    fn an_invalidation_of_a_full_key_reaches_the_rendered_key_kept() {
        let near = NearCache::new("shop:", 100, 1 << 20);
        near.resumed();
        near.confirmed(Instant::now() + Duration::from_secs(60));
        for (rendered, full) in [
            ("product:1", "shop:{product:1}"),
            ("{user:1}:orders", "shop:{user:1}:orders"),
        ] {
            keep(
                &near,
                near.ticket(full, &[], Duration::from_secs(10)).unwrap(),
                rendered,
                Some(1),
            );
            assert_eq!(get(&near, rendered), Some(Some(1)));
            near.invalidated(full.as_bytes());
            assert_eq!(get(&near, rendered), None, "{full}");
        }
    }
}
