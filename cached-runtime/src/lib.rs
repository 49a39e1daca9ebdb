//! The runtime of [redis-cached](https://docs.rs/redis-cached): read-through caching
//! over Redis with a stampede lease, negative entries and fail-open. Use it through the
//! `redis-cached` crate, which re-exports everything here.
//!
//! Inside, layers point one way: leaf helpers; the stored format and policies; the
//! stores (one `Store` contract: every Redis operation written once over a topology that
//! only connects and supervises, and an in-memory store); claims and in-process
//! coordination; the read path, generic over the store; and the `Cache` on top.
//! `ARCHITECTURE.md` at the repository's root names the modules of each layer.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

// Leaves: used by every layer, using none.
mod backoff;
mod log;
#[cfg(test)]
mod ordered_watch;
mod random;
mod sync;
mod time;
// The stored format and what a function asks of the cache.
mod codec;
mod key;
mod policy;
mod shape;
// Counters and errors.
mod error;
mod server_stats;
mod stats;
mod telemetry;
// Stores: the contract, Redis (once, over its topologies) and memory.
mod breaker;
mod store;
// Claims and in-process coordination.
mod budget;
mod coalesce;
mod fail_open;
mod lease;
mod near;
mod wake;
// The read path, then the cache that owns it.
mod cache;
mod config;
mod health;
mod install;
mod read_path;
mod report;

#[doc(hidden)]
pub mod private;
#[cfg(test)]
mod simulation;

pub use cache::{Cache, INVALIDATION_RETRY};
pub use codec::{Codec, DECODE_LIMIT};
pub use config::{CacheBuilder, DEFAULT_NEAR_CACHE_BYTES};
pub use error::Error;
pub use install::install;
pub use key::{KeyBuilder, PlaceholderValue};
pub use policy::{
    DEFAULT_JITTER_PERCENT, DEFAULT_LEASE, DEFAULT_NEAR_AGE, DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA, MAX_DURATION,
    Policy,
};
pub use server_stats::ServerStats;
pub use shape::{Cacheable, CachedValue};
pub use stats::Stats;

/// The redis-rs version this crate is built on, so users need no second dependency.
pub use redis;
