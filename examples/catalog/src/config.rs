//! The service's settings, read from the environment.

use std::fmt;

/// Where the service listens when `CATALOG_ADDR` is not set.
const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// The database when `DATABASE_URL` is not set: a SQLite file in the current directory,
/// created (and migrated) at the first start, shared by every instance started there.
const DEFAULT_DATABASE_URL: &str = "sqlite://catalog.db";
/// The Redis when `REDIS_URL` is not set.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How reads are served: the setting the load comparison changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheMode {
    /// No cache at all: every request queries the database.
    Off,
    /// `#[redis_cached]` fns on a cache without a near cache: a hit is one Redis round trip.
    Redis,
    /// The same fns on a cache with a near cache: hot values are served from memory.
    Near,
}

impl CacheMode {
    fn parse(text: &str) -> Result<CacheMode, ConfigError> {
        match text {
            "off" => Ok(CacheMode::Off),
            "redis" => Ok(CacheMode::Redis),
            "near" => Ok(CacheMode::Near),
            other => Err(ConfigError(format!(
                "`CATALOG_CACHE={other}` is not a cache mode; expected `off`, `redis` or `near`"
            ))),
        }
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMode::Off => "off",
            CacheMode::Redis => "redis",
            CacheMode::Near => "near",
        })
    }
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `CATALOG_ADDR`: the address to listen on (port 0 picks a free one).
    pub(crate) addr: String,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub(crate) database_url: String,
    /// `REDIS_URL`.
    pub(crate) redis_url: String,
    /// `CATALOG_CACHE`: `off`, `redis` (the default) or `near`.
    pub(crate) mode: CacheMode,
}

impl Config {
    /// Reads the settings, with a default for each one that is not set.
    ///
    /// # Errors
    ///
    /// An unknown `CATALOG_CACHE`.
    pub(crate) fn from_env() -> Result<Config, ConfigError> {
        Ok(Config {
            addr: var_or("CATALOG_ADDR", DEFAULT_ADDR),
            database_url: var_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url: var_or("REDIS_URL", DEFAULT_REDIS_URL),
            mode: CacheMode::parse(&var_or("CATALOG_CACHE", "redis"))?,
        })
    }
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A setting the service cannot run with.
#[derive(Debug)]
pub(crate) struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
