//! Randomness for lease tokens, tag versions, cache ids, jitter and XFetch draws: two
//! per-process random hash keys over a counter (not for secrets). A leaf module.
//!
//! Tests can make a thread's draws repeat exactly ([`seed_this_thread`]), so a
//! simulated schedule replays from its seed.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);
static KEYS: std::sync::LazyLock<(RandomState, RandomState)> =
    std::sync::LazyLock::new(|| (RandomState::new(), RandomState::new()));

/// The next pair of random words.
fn draw() -> (u64, u64) {
    #[cfg(test)]
    if let Some(pair) = seeded::draw() {
        return pair;
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (KEYS.0.hash_one(n), KEYS.1.hash_one(n))
}

/// A 128-bit token unique to this load: two per-process random hash keys over a counter.
pub(crate) fn new_token() -> String {
    let (a, b) = draw();
    format!("{a:016x}{b:016x}")
}

/// A random number (for tag versions and jitter; not for secrets).
pub(crate) fn random_u64() -> u64 {
    let (a, b) = draw();
    a ^ b.rotate_left(32)
}

/// A random number in `0.0..1.0`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
pub(crate) use seeded::seed_this_thread;

#[cfg(test)]
mod seeded {
    use std::cell::Cell;

    thread_local! {
        static STATE: Cell<Option<u64>> = const { Cell::new(None) };
    }

    /// From now on this thread's draws come from `seed` (splitmix64), so they repeat.
    pub(crate) fn seed_this_thread(seed: u64) {
        STATE.with(|state| state.set(Some(seed)));
    }

    pub(super) fn draw() -> Option<(u64, u64)> {
        STATE.with(|state| {
            let mut x = state.get()?;
            let mut next = || {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            };
            let pair = (next(), next());
            state.set(Some(x));
            Some(pair)
        })
    }
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

    #[test]
    fn a_seeded_thread_repeats_its_draws() {
        let run = || {
            super::seed_this_thread(42);
            (super::new_token(), super::random_u64())
        };
        assert_eq!(run(), run());
    }
}
