//! The process-wide default cache, used by every `#[redis_cached]` function that names
//! no `cache = ...`.

use std::sync::RwLock;

use crate::Cache;
use crate::log::WarnOnce;
use crate::sync::{read, write};

static DEFAULT: RwLock<Option<Cache>> = RwLock::new(None);

/// Makes `cache` the default of every `#[redis_cached]` function that names no
/// `cache = ...`. Installing again replaces the default.
///
/// Until a cache is installed those functions call their loader directly, and
/// `#[redis_invalidate]` functions invalidate nothing (the first such call says so in a
/// warning).
pub fn install(cache: Cache) {
    *write(&DEFAULT) = Some(cache);
}

/// The installed default cache.
pub(crate) fn installed() -> Option<Cache> {
    read(&DEFAULT).clone()
}

/// Says once per process that `function` ran with no cache: its loader ran uncached,
/// or its invalidation did nothing.
pub(crate) fn warn_not_installed(function: &'static str) {
    static WARNED: WarnOnce = WarnOnce::new();
    if WARNED.first() {
        tracing::warn!(
            function,
            "redis-cached: no cache installed and none named; cached functions call their loader uncached \
             and invalidations do nothing. Call `redis_cached::install(cache)` at startup or add `cache = ...`."
        );
    }
}
