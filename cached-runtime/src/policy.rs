//! How one cached function stores its values.

use std::time::Duration;

use crate::Codec;

/// The lease of `lock` when it names none, and the lifetime of the fence that every
/// load without `lock` joins.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The longest negative ttl of `negative` without a duration (and of
/// [`Policy::negative_default`]): `None` is cached for the smaller of the ttl and this.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// The `beta` of `refresh = "xfetch"` when the attribute names none: 1.0, the XFetch
/// paper's choice.
pub const DEFAULT_REFRESH_BETA: f64 = 1.0;

/// How long a value may be served from the near cache (the in-process tier of a cache
/// built with `near_cache`) when the function names no `near = "..."`: 10 seconds, a
/// bound on how stale a local copy could be if an invalidation were ever lost. A hot
/// key costs one Redis read per process per this interval.
pub const DEFAULT_NEAR_AGE: Duration = Duration::from_secs(10);

/// Whether a function's values are kept in the near cache, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Near {
    /// For [`DEFAULT_NEAR_AGE`] at most.
    Default,
    /// Never: every call reads Redis.
    Off,
    /// For this long at most.
    Within(Duration),
}

/// The storage settings of one cached function: the `#[redis_cached]` arguments, for
/// calling [`Cache::get_or_load`](crate::Cache::get_or_load) by hand.
///
/// Built in a `const` or `static`, once:
///
/// ```
/// use std::time::Duration;
/// use redis_cached_runtime::{Codec, Policy};
///
/// # #[cfg(feature = "msgpack")]
/// static PRODUCT: Policy = Policy::new("get_product", Duration::from_secs(300))
///     .lock(Duration::from_secs(10))
///     .negative(Duration::from_secs(60))
///     .codec(Codec::MsgPack)
///     .version(2);
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) name: &'static str,
    /// The key template as written (`"product:<id>"`), for spans; `""` when unknown.
    pub(crate) key_template: &'static str,
    pub(crate) ttl: Duration,
    pub(crate) lock: Option<Duration>,
    pub(crate) negative: Option<Duration>,
    pub(crate) codec: Codec,
    pub(crate) version: u32,
    pub(crate) jitter_percent: u32,
    pub(crate) stale: Option<Duration>,
    pub(crate) refresh_beta: Option<f64>,
    pub(crate) near: Near,
}

/// How long a tag version lives at least after its last use by a load (or its bump).
/// When it expires, the values computed under it become misses (never stale ones).
pub(crate) const TAG_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The longest ttl, lease, negative ttl or stale window a policy keeps: 100 years. Longer
/// ones are clamped to it. Redis rejects an expiry that overflows its clock (which would
/// silently disable caching), and the in-memory store needs deadlines an `Instant` holds.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration a policy can keep: not zero, at most [`MAX_DURATION`].
const fn checked(duration: Duration, what: &str) -> Duration {
    assert!(!duration.is_zero(), "{}", what);
    if duration.as_secs() > MAX_DURATION.as_secs() {
        MAX_DURATION
    } else {
        duration
    }
}

/// The share of a ttl that jitter may take off by default, in percent.
pub const DEFAULT_JITTER_PERCENT: u32 = 5;

impl Policy {
    /// Values of the function `name` (used in logs; an empty one is logged as `unnamed`)
    /// live for `ttl` (at most [`MAX_DURATION`]; longer is clamped). No lock, no negative
    /// caching, bincode, version 0, [`DEFAULT_JITTER_PERCENT`] jitter.
    ///
    /// # Panics
    /// If `ttl` is zero; in a `const` or `static` that is a compile error.
    #[must_use]
    pub const fn new(name: &'static str, ttl: Duration) -> Self {
        Self {
            // A log line never has an empty `function` field.
            name: if name.is_empty() { "unnamed" } else { name },
            key_template: "",
            ttl: checked(ttl, "a policy's ttl must be longer than zero"),
            lock: None,
            negative: None,
            codec: Codec::Bincode,
            version: 0,
            jitter_percent: DEFAULT_JITTER_PERCENT,
            stale: None,
            refresh_beta: None,
            near: Near::Default,
        }
    }

    /// The key template the function's keys are rendered from, as written in
    /// `#[redis_cached(key = "...")]`: each call's `tracing` span shows it (never the
    /// rendered key, which may hold user data). Defaults to none (`""`).
    #[must_use]
    pub const fn key_template(mut self, template: &'static str) -> Self {
        self.key_template = template;
        self
    }

    /// Stampede protection across processes with this lease (at most [`MAX_DURATION`]).
    /// Defaults to no lock.
    ///
    /// # Panics
    /// If `lease` is zero; in a `const` or `static` that is a compile error.
    #[must_use]
    pub const fn lock(mut self, lease: Duration) -> Self {
        self.lock = Some(checked(lease, "a lock's lease must be longer than zero"));
        self
    }

    /// Caches "not found" (`None`) for `ttl` (at most [`MAX_DURATION`]). Defaults to not
    /// caching `None`.
    ///
    /// # Panics
    /// If `ttl` is zero; in a `const` or `static` that is a compile error.
    #[must_use]
    pub const fn negative(mut self, ttl: Duration) -> Self {
        self.negative = Some(checked(ttl, "a negative ttl must be longer than zero"));
        self
    }

    /// Caches "not found" (`None`) for the smaller of the ttl and
    /// [`DEFAULT_NEGATIVE_TTL`]: what `negative` without a duration does. Defaults to not
    /// caching `None`.
    #[must_use]
    pub const fn negative_default(mut self) -> Self {
        self.negative = Some(if self.ttl.as_nanos() < DEFAULT_NEGATIVE_TTL.as_nanos() {
            self.ttl
        } else {
            DEFAULT_NEGATIVE_TTL
        });
        self
    }

    /// The codec. Defaults to [`Codec::Bincode`].
    #[must_use]
    pub const fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The stored format's version: values written under another one are misses.
    /// Defaults to 0.
    #[must_use]
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// After the ttl, a value stays servable for `window` while one caller refreshes it
    /// (stale-while-revalidate), and is served if that refresh fails (stale-if-error).
    /// Defaults to none: a value is gone at its ttl. At most [`MAX_DURATION`].
    ///
    /// # Panics
    /// If `window` is zero; in a `const` or `static` that is a compile error.
    #[must_use]
    pub const fn stale(mut self, window: Duration) -> Self {
        self.stale = Some(checked(window, "a stale window must be longer than zero"));
        self
    }

    /// Refresh-ahead with XFetch: a read refreshes the value before its ttl with a
    /// probability that grows as the expiry nears and with the measured load time
    /// (`beta` scales it; [`DEFAULT_REFRESH_BETA`], 1.0, is the paper's choice). One
    /// caller in the deployment refreshes; the others keep getting the current value.
    /// Defaults to no early refresh.
    ///
    /// # Panics
    /// If `beta` is negative, infinite or NaN; in a `const` or `static` that is a compile
    /// error.
    #[must_use]
    pub const fn refresh_early(mut self, beta: f64) -> Self {
        assert!(beta >= 0.0 && beta.is_finite(), "beta must be a finite number from 0");
        self.refresh_beta = Some(beta);
        self
    }

    /// Serves a value from the near cache for at most `max_age` after it was read from
    /// Redis (`near = "10s"`), even if an invalidation were lost. Only a cache built with
    /// `near_cache` has a near cache. Defaults to [`DEFAULT_NEAR_AGE`].
    ///
    /// # Panics
    /// When `max_age` is zero (use [`no_near`](Self::no_near)); in a `const`, a compile
    /// error.
    #[must_use]
    pub const fn near(mut self, max_age: Duration) -> Self {
        self.near = Near::Within(checked(max_age, "a near cache's max age must be longer than zero"));
        self
    }

    /// Never serves this function's values from the near cache (`near = false`): every
    /// call reads Redis, as without `near_cache`.
    #[must_use]
    pub const fn no_near(mut self) -> Self {
        self.near = Near::Off;
        self
    }

    /// How long a value may be served from the near cache; `None`: not at all.
    pub(crate) fn near_age(&self) -> Option<Duration> {
        match self.near {
            Near::Default => Some(DEFAULT_NEAR_AGE),
            Near::Off => None,
            Near::Within(max_age) => Some(max_age),
        }
    }

    /// The longest time Redis keeps an entry of this function: its ttl plus `stale`, or
    /// its negative ttl.
    pub(crate) fn kept(&self) -> Duration {
        let value = self.stale.map_or(self.ttl, |window| self.ttl.saturating_add(window));
        self.negative.map_or(value, |negative| value.max(negative))
    }

    /// Whether stored values carry their load time, and reads ask how long the store
    /// keeps them (freshness is judged by the store's clock).
    pub(crate) fn timed(&self) -> bool {
        self.stale.is_some() || self.refresh_beta.is_some()
    }

    /// Takes up to `percent` % (at most 50) off each stored ttl at random, so entries
    /// written together do not expire together; 0 turns it off. Defaults to
    /// [`DEFAULT_JITTER_PERCENT`].
    #[must_use]
    pub const fn jitter(mut self, percent: u32) -> Self {
        self.jitter_percent = if percent > 50 { 50 } else { percent };
        self
    }

    /// `ttl` with the jitter taken off: uniformly between `ttl * (1 - jitter)` and `ttl`.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        if self.jitter_percent == 0 {
            return ttl;
        }
        let share = f64::from(self.jitter_percent) / 100.0 * crate::random::random_unit();
        ttl.mul_f64(1.0 - share).max(Duration::from_millis(1))
    }

    /// The lease of a load: the `lock` lease, or [`DEFAULT_LEASE`] for the fence that
    /// every load takes so an invalidation can void it.
    pub(crate) fn lease(&self) -> Duration {
        match self.lock {
            Some(lease) => lease,
            None => DEFAULT_LEASE,
        }
    }

    /// How long a caller waits for another caller's load (a lease that keeps being
    /// renewed) before it loads itself: twice the lease, and at least 30 s, so a loader
    /// slower than its lease is waited for while its owner renews it.
    pub(crate) fn wait_budget(&self) -> Duration {
        self.lease().saturating_mul(2).max(Duration::from_secs(30))
    }

    /// How long a tag this function's values carry must live at least from a load:
    /// as long as the values do, and at least [`TAG_TTL`].
    pub(crate) fn tag_life(&self) -> Duration {
        self.kept().max(TAG_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a ttl past what Redis accepts silently disabled caching.
    #[test]
    fn durations_past_the_maximum_are_clamped() {
        let huge = Duration::from_secs(u64::MAX);
        let policy = Policy::new("f", huge).lock(huge).negative(huge).stale(huge);
        assert_eq!(policy.ttl, MAX_DURATION);
        assert_eq!(policy.lock, Some(MAX_DURATION));
        assert_eq!(policy.negative, Some(MAX_DURATION));
        assert_eq!(policy.stale, Some(MAX_DURATION));
    }

    /// Regression: `Policy::lock(Duration::ZERO)` was accepted although the attribute
    /// rejects a zero lease.
    #[test]
    #[should_panic(expected = "a lock's lease must be longer than zero")]
    fn a_zero_lease_is_refused() {
        let _ = Policy::new("f", Duration::from_secs(1)).lock(Duration::ZERO);
    }

    #[test]
    fn the_default_negative_ttl_is_the_smaller_of_the_ttl_and_a_minute() {
        let short = Policy::new("f", Duration::from_secs(5)).negative_default();
        let long = Policy::new("f", Duration::from_secs(300)).negative_default();
        assert_eq!(short.negative, Some(Duration::from_secs(5)));
        assert_eq!(long.negative, Some(DEFAULT_NEGATIVE_TTL));
    }

    #[test]
    #[should_panic(expected = "beta must be a finite number from 0")]
    fn a_nan_beta_is_refused() {
        let _ = Policy::new("f", Duration::from_secs(1)).refresh_early(f64::NAN);
    }
}
