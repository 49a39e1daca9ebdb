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
/// `#[redis_invalidate]` functions invalidate nothing. The first such call says so in a
/// `tracing` warning, or on stderr when no subscriber would show the warning.
pub fn install(cache: Cache) {
    *write(&DEFAULT) = Some(cache);
}

/// The installed default cache.
pub(crate) fn installed() -> Option<Cache> {
    read(&DEFAULT).clone()
}

/// What forgetting `install` does, said once per process.
const NOT_INSTALLED: &str = "redis-cached: no cache installed and none named; cached functions call their loader \
                             uncached and invalidations do nothing. Call `redis_cached::install(cache)` at startup \
                             or add `cache = ...`.";

/// Says once per process that `function` ran with no cache: its loader ran uncached,
/// or its invalidation did nothing. On stderr too when no `tracing` subscriber would
/// show the warning.
pub(crate) fn warn_not_installed(function: &'static str) {
    static WARNED: WarnOnce = WarnOnce::new();
    if WARNED.first() {
        if !tracing::enabled!(tracing::Level::WARN) {
            // ok: forgetting `install` is a misconfiguration a developer must see on the
            // first run, and an application without a subscriber would never show the
            // warning below. Once per process, and only when no subscriber would.
            eprintln!("{NOT_INSTALLED} (first called: `{function}`)");
        }
        tracing::warn!(function, "{NOT_INSTALLED}");
    }
}
