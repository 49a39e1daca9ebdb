//! The pause between attempts of anything retried while Redis is failing: reconnects,
//! resubscribes, lease releases and invalidations. A leaf module.

use std::time::Duration;

/// The first pause.
const FIRST: Duration = Duration::from_millis(20);
/// The longest pause, so a recovered Redis is used again well within a second.
const LONGEST: Duration = Duration::from_millis(400);

/// Doubling pauses from 20 ms up to 400 ms.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { next: FIRST }
    }

    /// The pause before the next attempt.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(LONGEST);
        pause
    }

    /// An attempt succeeded: the next failure starts from the first pause again.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_longest_and_reset() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u128> = (0..7).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 400, 400]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), FIRST);
    }
}
