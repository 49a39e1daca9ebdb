//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

use crate::store::StoreError;

/// What went wrong when building a [`Cache`](crate::Cache) or invalidating a key.
///
/// Reads never return this: a cached call fails open to its loader. Only the calls
/// whose caller must know that Redis did not act (building, invalidating) report it.
///
/// The causes from redis-rs are boxed, so a new major version of redis-rs is not a
/// breaking change here; they are the [`source`](std::error::Error::source) of the
/// error, and can be downcast to [`redis::RedisError`].
///
/// ```
/// use redis_cached_runtime::{Cache, Error};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// match Cache::builder().url("redis//127.0.0.1:6379").build().await {
///     Ok(_) => unreachable!("the url lacks its `:`"),
///     Err(Error::InvalidUrl(cause)) => {
///         let redis_error = cause.downcast_ref::<redis_cached_runtime::redis::RedisError>();
///         assert!(redis_error.is_some(), "redis-rs said what was wrong: {cause}");
///     }
///     Err(other) => panic!("another error: {other}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL could not be parsed, or needs a feature of the crate that is off
    /// (`rediss://` needs `tls`); the cause says which.
    InvalidUrl(Box<dyn std::error::Error + Send + Sync>),
    /// A builder setting is out of range; the message says which and why.
    InvalidConfig(String),
    /// The Redis command failed: an error reply, or a broken connection (the cause says
    /// which).
    Redis(Box<dyn std::error::Error + Send + Sync>),
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
            Error::InvalidUrl(cause) => write!(f, "invalid redis url: {cause}"),
            Error::InvalidConfig(why) => write!(f, "invalid cache configuration: {why}"),
            Error::Redis(cause) => write!(f, "the redis command failed: {cause}"),
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
            StoreError::Redis(e) => Error::Redis(Box::new(e)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidUrl(cause) | Error::Redis(cause) => Some(&**cause),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn redis_error(kind: redis::ErrorKind, what: &'static str) -> Box<redis::RedisError> {
        Box::new(redis::RedisError::from((kind, what)))
    }

    #[test]
    fn the_message_says_the_cause_and_source_gives_it() {
        let error = Error::Redis(redis_error(redis::ErrorKind::Io, "connection reset"));
        assert_eq!(error.to_string(), "the redis command failed: connection reset - Io");
        let source = error.source().and_then(|s| s.downcast_ref::<redis::RedisError>());
        assert_eq!(source.map(redis::RedisError::kind), Some(redis::ErrorKind::Io));

        let error = Error::InvalidUrl(redis_error(
            redis::ErrorKind::InvalidClientConfig,
            "Redis URL did not parse",
        ));
        assert_eq!(
            error.to_string(),
            "invalid redis url: Redis URL did not parse - InvalidClientConfig"
        );
        assert!(error.source().is_some());
    }
}
