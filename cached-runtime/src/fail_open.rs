//! Failing open, visibly: a Redis error never reaches the caller; it becomes a counter
//! and a rate-limited warning. Also the once-per-function warnings about values that
//! cannot be cached.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::log::RateLimited;
use crate::stats::{Count, Counters};
use crate::store::StoreError;
use crate::sync::lock;
use crate::telemetry;

/// What a function is warned about once (per cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Warning {
    /// Its values cannot be stored (too large, or the codec cannot read them back).
    Unstorable,
    /// A value of another type was found under its key.
    OtherType,
}

/// Where swallowed Redis errors go. Shared by a cache's calls and its background tasks.
#[derive(Debug)]
pub(crate) struct FailOpen {
    counters: Arc<Counters>,
    logged: RateLimited,
    warned: Mutex<HashSet<(&'static str, Warning)>>,
}

impl FailOpen {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Self {
            counters,
            logged: RateLimited::new(),
            warned: Mutex::default(),
        }
    }

    /// Accounts for a Redis operation that failed open.
    pub(crate) fn failed(&self, error: StoreError) {
        match error.failure() {
            None => self.counters.bump(Count::Skipped),
            Some(kind) => {
                self.counters.bump(Count::Errors);
                telemetry::redis_error(kind);
                if let Some(suppressed) = self.logged.admit() {
                    let hint = error.hint();
                    // The error's message carries its cause; a hint with nothing to say
                    // is left out (`None` records nothing).
                    let error = crate::Error::from(error);
                    tracing::warn!(
                        error = %error,
                        kind = kind.as_str(),
                        hint,
                        suppressed,
                        "redis-cached: redis operation failed; calls fail open to their loader"
                    );
                }
            }
        }
    }

    /// `Some(number held back)` when a rate-limited warning may be logged now.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.logged.admit()
    }

    /// True the first time `function` is warned about `warning`.
    pub(crate) fn first(&self, function: &'static str, warning: Warning) -> bool {
        lock(&self.warned).insert((function, warning))
    }
}
