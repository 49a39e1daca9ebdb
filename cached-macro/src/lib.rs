//! The `#[redis_cached]` and `#[redis_invalidate]` attributes. Use them through the
//! `redis-cached` crate, whose docs describe every argument.
//!
//! One phase per module: `args` parses the arguments by each attribute's table (the
//! docs are tested against it), `sig` checks the fn, `key` parses the key and tag
//! templates, `check` checks everything together into a plan, and `expand` generates
//! the code (the only module that writes `quote!`). This file only forwards to `expand`.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

mod args;
mod async_trait;
mod check;
mod expand;
mod key;
mod sig;

/// Turns an async fn into a read-through cache. See the `redis-cached` crate docs.
#[proc_macro_attribute]
pub fn redis_cached(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand::redis_cached(args.into(), item.into()).into()
}

/// Invalidates keys after an async fn succeeds. See the `redis-cached` crate docs.
#[proc_macro_attribute]
pub fn redis_invalidate(args: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand::redis_invalidate(args.into(), item.into()).into()
}
