#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

pub use redis_cached_macro::redis_cached;
pub use redis_cached_runtime::{
    Cache, CacheBuilder, Cacheable, Codec, DECODE_LIMIT, DEFAULT_LEASE, Error, KeyBuilder, Policy, Stats, install,
    redis,
};

#[doc(hidden)]
pub mod __private {
    pub use ::redis_cached_runtime::private::*;
    pub use ::std::string::String;
}
