#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub, rust_2018_idioms)]

/// Turns an async fn into a read-through cache.
///
/// ```no_run
/// use redis_cached::redis_cached;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Product { id: u64, name: String }
///
/// #[redis_cached(key = "product:<id>", ttl = 300, lock, negative)]
/// async fn get_product(id: u64) -> Result<Option<Product>, std::io::Error> {
///     Ok(Some(Product { id, name: "lamp".into() }))
/// }
/// ```
///
/// # Arguments
/// Durations (`ttl`, `lock`, `negative`, `stale`) are whole seconds, a bare number
/// (`lock = 10` is a 10 s lease), or a string with a unit (`ms`, `s`, `m`, `h`, `d`:
/// `lock = "10s"`); a string without a unit is a compile error.
/// - `key = "item:<param>:<param.field>/part:<self.field>"` (required): the key
///   template. Placeholders name a parameter, a field of one, or a field of `self`; their
///   values are rendered with `Display`, and every character but `A-Z a-z 0-9 _ . -` is
///   percent-encoded (`%XX` per UTF-8 byte). The grammar, checked at compile time for
///   keys and tags: a `:` in the text marks a value, so it is followed by a placeholder
///   (or by `{` and one, opening a hash tag of your own: `"user:{<id>}"`) and every
///   placeholder follows one; text right after a placeholder is empty or starts with a
///   character values escape other than `%` and `{` (`/`, `}`, `|`, `#`, ...); the text
///   has no `%` and does not start with `{`. A key template does not start with `tag:{`,
///   and one with its own hash tag does not end with a placeholder. So no value can forge
///   another key, of any template: `"user:<id>/orders"`, not `"user:<id>:orders"` (the
///   compile error shows the template written right).
/// - `ttl = 300` or `ttl = "5m"` (required): how long a value is fresh, in whole seconds
///   or with a unit.
/// - `lock`, `lock = 10` or `lock = "10s"`: one loader in the whole deployment per miss,
///   under a lease (in whole seconds or with a unit) renewed while the loader runs.
///   Defaults to no lock; `lock` alone takes a 10 s lease.
/// - `negative`, `negative = 30` or `negative = "30s"`: cache `None`, for a ttl in whole
///   seconds or with a unit (only on `Option<T>` or `Result<Option<T>, E>` returns).
///   Defaults to not caching `None`; `negative` alone caches it for the smaller of `ttl`
///   and 60 s.
/// - `stale = 60` or `stale = "1m"`: past the ttl, serve the stale value for this window
///   (in whole seconds or with a unit) while one caller refreshes it, or when the refresh
///   fails. Defaults to none.
/// - `refresh = "xfetch"`: refresh hot values early, in one caller, while the others keep
///   the current value. Defaults to no early refresh.
/// - `beta = 2.0`: how early `refresh` refreshes; larger is earlier. Defaults to 1.0.
/// - `cache = EXPR`: a `Cache`, `&Cache` or `Arc<Cache>` instead of the installed one.
///   Defaults to the installed one.
/// - `codec = "bincode" | "msgpack" | "json"`: the value codec. Defaults to bincode.
/// - `version = N`: values stored under another version are misses. Defaults to 0.
/// - `jitter = "10%"` or `jitter = 0`: a random share taken off each stored ttl, at most
///   50%. Defaults to 5%.
/// - `tags = ["catalog", "category:<id>"]`: groups of values to invalidate at once with
///   `Cache::invalidate_tag`. Defaults to none.
///
/// The defaults are [`DEFAULT_LEASE`], [`DEFAULT_NEGATIVE_TTL`], [`DEFAULT_REFRESH_BETA`]
/// and [`DEFAULT_JITTER_PERCENT`]. The crate docs describe each argument, what happens
/// under concurrency and how Redis failures fail open.
///
/// # What it expands to
/// For `get_product` above, roughly (the expansion uses absolute paths and hygienic
/// names):
///
/// ```text
/// async fn get_product(id: u64) -> Result<Option<Product>, std::io::Error> {
///     static POLICY: Policy = Policy::new("get_product", Duration::from_millis(300_000))
///         .lock(DEFAULT_LEASE)
///         .negative_default();
///     let key = /* "product:" + escaped id */;
///     let cache = default_cache();
///     result_option::<Product, _>(cache.as_ref(), &POLICY, &key, get_product_uncached(id)).await
/// }
/// /// Runs `get_product`'s body without the cache.
/// async fn get_product_uncached(id: u64) -> Result<Option<Product>, std::io::Error> { /* body */ }
/// /// The full Redis key under which `get_product` caches its result, e.g. `shop:{product:42}`.
/// fn get_product_key(id: u64) -> String { /* ... */ }
/// /// Deletes `get_product`'s cached result for these arguments and voids a load of it in flight.
/// async fn get_product_invalidate(id: u64) -> Result<(), redis_cached::Error> { /* ... */ }
/// ```
pub use redis_cached_macro::redis_cached;

/// Invalidates keys after an async fn succeeds (evict on write).
///
/// ```no_run
/// use redis_cached::redis_invalidate;
///
/// struct Product { id: u64 }
/// #[derive(Debug)]
/// struct DbError;
///
/// #[redis_invalidate(key = "product:<product.id>", key = "product:<product.id>/related")]
/// async fn save_product(product: &Product) -> Result<(), DbError> {
///     Ok(())
/// }
/// ```
///
/// # Arguments
/// - `key = "product:<product.id>"` (one or more, required): a key to invalidate, a
///   template with `#[redis_cached]`'s rules and escaping.
/// - `tags = ["category:<product.category>"]`: tags to invalidate, templates like the
///   keys. Defaults to none.
/// - `cache = EXPR`: a `Cache`, `&Cache` or `Arc<Cache>` instead of the installed one.
///   Defaults to the installed one.
///
/// The keys and tags are rendered before the body runs (it may consume its arguments).
/// After the body returns they are invalidated, unless it returned `Err`. Invalidation
/// fails open: a key Redis did not confirm is counted, logged and retried in the
/// background for up to [`INVALIDATION_RETRY`]; meanwhile the old value may still be
/// served.
pub use redis_cached_macro::redis_invalidate;
pub use redis_cached_runtime::{
    Cache, CacheBuilder, Cacheable, CachedValue, Codec, DECODE_LIMIT, DEFAULT_JITTER_PERCENT, DEFAULT_LEASE,
    DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA, Error, INVALIDATION_RETRY, KeyBuilder, MAX_DURATION, PlaceholderValue,
    Policy, Stats, install, redis,
};

#[doc(hidden)]
pub mod __private {
    pub use ::redis_cached_runtime::private::*;
    pub use ::std::string::String;
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_JITTER_PERCENT, DEFAULT_LEASE, DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA};

    /// The attribute's docs state the runtime's defaults in words, which the macro's
    /// argument table must repeat (its own test checks that): a changed constant fails
    /// here until the docs and the table follow.
    #[test]
    fn the_argument_docs_state_the_runtime_defaults() {
        let lines: Vec<&str> = include_str!("lib.rs")
            .lines()
            .map(|line| line.trim().trim_start_matches("///").trim())
            .collect();
        let docs = lines.join(" ");
        for said in [
            format!("`lock` alone takes a {} s lease", DEFAULT_LEASE.as_secs()),
            format!("the smaller of `ttl` and {} s", DEFAULT_NEGATIVE_TTL.as_secs()),
            format!("larger is earlier. Defaults to {DEFAULT_REFRESH_BETA:.1}."),
            format!("Defaults to {DEFAULT_JITTER_PERCENT}%."),
        ] {
            assert!(docs.contains(&said), "the docs do not say {said:?}");
        }
    }
}
