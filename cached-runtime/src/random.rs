//! Randomness for lease tokens, tag versions, cache ids, jitter and XFetch draws: two
//! per-process random hash keys over a counter (not for secrets). A leaf module.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static KEYS: std::sync::LazyLock<(RandomState, RandomState)> =
    std::sync::LazyLock::new(|| (RandomState::new(), RandomState::new()));

/// A 128-bit token unique to this load: two per-process random hash keys over a counter.
pub(crate) fn new_token() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:016x}", KEYS.0.hash_one(n), KEYS.1.hash_one(n))
}

/// A random number (for tag versions and jitter; not for secrets).
pub(crate) fn random_u64() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEYS.0.hash_one(n) ^ KEYS.1.hash_one(n).rotate_left(32)
}

/// A random number in `0.0..1.0`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_128_bit() {
        let a = super::new_token();
        let b = super::new_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
