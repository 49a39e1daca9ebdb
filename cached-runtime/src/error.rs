//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

use crate::store::StoreError;

/// What went wrong when building a [`Cache`](crate::Cache) or invalidating a key.
///
/// Reads never return this: a cached call fails open to its loader. Only the calls
/// whose caller must know that Redis did not act (building, invalidating) report it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL could not be parsed.
    InvalidUrl(redis::RedisError),
    /// A builder setting is out of range; the message says which and why.
    InvalidConfig(String),
    /// The Redis command failed: an error reply, or a broken connection (see `source()`).
    Redis(redis::RedisError),
    /// Redis did not answer within the cache's `op_timeout`.
    Timeout(Duration),
    /// The cache is not talking to Redis right now: it is connecting, or it stopped
    /// calling Redis after repeated failures and is probing in the background.
    Unavailable,
    /// A `#[redis_cached]` companion was called with no cache installed or named, so it
    /// could not act (the caches of other processes may hold the value).
    NotInstalled,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(_) => f.write_str("invalid redis url"),
            Error::InvalidConfig(why) => write!(f, "invalid cache configuration: {why}"),
            Error::Redis(_) => f.write_str("the redis command failed"),
            Error::Timeout(limit) => write!(f, "redis did not answer within {limit:?}"),
            Error::Unavailable => f.write_str("redis is unavailable; the cache is failing open"),
            Error::NotInstalled => {
                f.write_str("no cache installed; call `redis_cached::install` or name one with `cache = ...`")
            }
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Skipped => Error::Unavailable,
            StoreError::Timeout(limit) | StoreError::OverBudget { limit, .. } => Error::Timeout(limit),
            StoreError::Redis(e) => Error::Redis(e),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidUrl(e) | Error::Redis(e) => Some(e),
            _ => None,
        }
    }
}
