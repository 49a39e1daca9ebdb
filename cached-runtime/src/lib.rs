//! The runtime of [redis-cached](https://docs.rs/redis-cached): read-through caching
//! over Redis with a stampede lease, negative entries and fail-open. Use it through the
//! `redis-cached` crate, which re-exports everything here.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

mod backend;
mod breaker;
mod budget;
mod cache;
mod coalesce;
mod codec;
mod config;
mod error;
mod fills;
mod key;
mod lock;
mod log;
mod policy;
mod random;
mod read_through;
mod shape;
mod stats;
mod time;

#[doc(hidden)]
pub mod private;

pub use cache::{Cache, INVALIDATION_RETRY, install};
pub use codec::{Codec, DECODE_LIMIT};
pub use config::CacheBuilder;
pub use error::Error;
pub use key::KeyBuilder;
pub use policy::{
    DEFAULT_JITTER_PERCENT, DEFAULT_LEASE, DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA, MAX_DURATION, Policy,
};
pub use shape::Cacheable;
pub use stats::Stats;

/// The redis-rs version this crate is built on, so users need no second dependency.
pub use redis;
