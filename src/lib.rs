#![doc = include_str!("../docs/guide.md")]
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
/// Durations (`ttl`, `lock`, `negative`, `stale`, `near`) are whole seconds, a bare
/// number (`lock = 10` is a 10 s lease), or a string with a unit (`ms`, `s`, `m`, `h`,
/// `d`: `lock = "10s"`); a string without a unit is a compile error.
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
/// - `near = "10s"`, `near = 10` or `near = false`: the longest a value read from Redis is
///   kept decoded in this process and served without a round trip (in whole seconds or
///   with a unit), or `false` for never. Only in a cache built with
///   `Cache::builder().near_cache(n)`; Redis's client tracking drops a kept value as soon
///   as any process writes or deletes its key, or the key expires. `near = false` suits
///   values that must never be served from process memory. Defaults to a 10 s max age.
/// - `cache = EXPR`: a `Cache`, `&Cache` or `Arc<Cache>` instead of the installed one.
///   Defaults to the installed one.
/// - `codec = "bincode" | "msgpack" | "json"`: the value codec. Defaults to bincode.
/// - `version = N`: values stored under another version are misses. Defaults to 0.
/// - `jitter = "10%"` or `jitter = 0`: a random share taken off each stored ttl, at most
///   50%. Defaults to 5%.
/// - `tags = ["catalog", "category:<id>"]`: groups of values to invalidate at once with
///   `Cache::invalidate_tag`. Defaults to none.
///
/// The defaults are [`DEFAULT_LEASE`], [`DEFAULT_NEGATIVE_TTL`], [`DEFAULT_REFRESH_BETA`],
/// [`DEFAULT_NEAR_AGE`] and [`DEFAULT_JITTER_PERCENT`]. The crate docs describe each
/// argument, what happens under concurrency and how Redis failures fail open.
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
///     result_option::<Product, _>(cache.as_ref(), &POLICY, &key, async move {
///         /* the body, as written */
///     })
///     .await
/// }
/// /// The full Redis key under which `get_product` caches its result, e.g. `shop:{product:42}`.
/// fn get_product_key(id: u64) -> String { /* ... */ }
/// /// Deletes `get_product`'s cached result for these arguments and voids a load of it in flight.
/// async fn get_product_invalidate(id: u64) -> Result<(), redis_cached::Error> { /* ... */ }
/// ```
///
/// The body stays in the fn, in an `async move` block, so `self`, `Self`, generics and
/// `where` clauses work as written, and it is compiled once. Nothing that skips the cache
/// is generated: a fn that needs the body without the cache calls a plain fn holding it,
/// which the cached fn calls too.
///
/// `f_key` and `f_invalidate` take only the parameters the key and `cache` use (and
/// `&self` in methods), and have the fn's visibility: a `pub` fn's are `pub`, so a writer
/// in another module can evict what it cached; a private fn's stay private to its
/// module. In a trait impl they are `pub(crate)` (below).
///
/// # Methods and traits
/// - **Free fns and methods, with or without `self`**: the attribute on the fn; the
///   companions are beside it, so `Product::find(id)` gets `Product::find_key(id)`.
/// - **A method of a trait impl**: a trait impl holds only the trait's members, so put
///   `#[redis_cached]`, with no arguments, on the `impl` block too. It caches each method
///   marked `#[redis_cached(...)]` in place and puts their `f_key` and `f_invalidate` in
///   an inherent `impl Type` beside the trait impl (same generics and `where` clause; a
///   parameter only the trait names goes on the companions that use it), `pub(crate)`:
///   usable across the crate, never new public API (wrap them in a `pub fn` to export
///   them). Without the attribute on the block, rustc reports E0407 (method `f_key` is
///   not a member of trait) under the method's attribute: the fix is `#[redis_cached]`
///   on the `impl` block. `#[redis_cached(companions = false)]` on the block caches the
///   methods without companions: for a type of another crate (`impl Repo for
///   Arc<PgRepo>`), which cannot have an inherent `impl` here (E0116), or for a second
///   trait impl caching a method of the same name (E0592). Reach those keys with
///   `Cache::key` and `Cache::invalidate`, or evict on write with `#[redis_invalidate]`.
/// - **`#[async_trait]`**: on the `impl` block, before or after `#[redis_cached]`. When
///   `#[async_trait]` expands first, the attribute finds the async block it boxed and
///   caches that block's `Output`. With the attribute on the method only, under
///   `#[async_trait]`, the method is cached and gets no companions.
/// - **A trait's method declaration** has no body to cache: the attribute goes on the
///   method in each `impl`; on the declaration it is a compile error saying so.
///
/// ```no_run
/// use redis_cached::{Cache, redis_cached};
///
/// trait Repo {
///     async fn name(&self, id: u64) -> Option<String>;
/// }
///
/// struct PgRepo { cache: Cache }
///
/// #[redis_cached]
/// impl Repo for PgRepo {
///     #[redis_cached(key = "name:<id>", ttl = 60, cache = self.cache)]
///     async fn name(&self, id: u64) -> Option<String> {
///         Some(id.to_string())
///     }
/// }
///
/// async fn rename(repo: &PgRepo, id: u64) -> Result<(), redis_cached::Error> {
///     // ... the write ...
///     repo.name_invalidate(id).await
/// }
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
/// Keys and tags may also name the value the fn succeeded with, `<return>` or a field of
/// it: the `Ok` value of a `Result`, else the returned value. A move between categories
/// invalidates both, from the rows it read and wrote:
///
/// ```no_run
/// # use redis_cached::redis_invalidate;
/// # struct Product { id: u64, category_id: u32 }
/// # #[derive(Debug)]
/// # struct DbError;
/// /// The row before and after the update.
/// struct Updated { before: Product, after: Product }
///
/// #[redis_invalidate(
///     key = "product:<id>",
///     tags = ["category:<return.before.category_id>", "category:<return.after.category_id>"]
/// )]
/// async fn move_product(id: u64, to: u32) -> Result<Updated, DbError> {
///     let before = Product { id, category_id: 1 };
///     Ok(Updated { after: Product { id, category_id: to }, before })
/// }
/// ```
///
/// The keys and tags are rendered before the body runs (it may consume its arguments);
/// those naming the result after it succeeded, from its value and the parameter values
/// rendered before. After the body returns they are invalidated, each distinct text
/// once, unless it returned `Err`. Invalidation
/// fails open: a key Redis did not confirm is counted, logged and retried in the
/// background for up to [`INVALIDATION_RETRY`]; meanwhile the old value may still be
/// served.
///
/// It goes on the same fns as `#[redis_cached]`: free fns, methods with or without
/// `self`, methods of trait impls (it has no companions, so it needs no attribute on the
/// `impl` block) and methods under `#[async_trait]`, in either order.
pub use redis_cached_macro::redis_invalidate;
pub use redis_cached_runtime::{
    Cache, CacheBuilder, Cacheable, CachedValue, Codec, DECODE_LIMIT, DEFAULT_JITTER_PERCENT, DEFAULT_LEASE,
    DEFAULT_NEAR_AGE, DEFAULT_NEAR_CACHE_BYTES, DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA, Error, INVALIDATION_RETRY,
    KeyBuilder, MAX_DURATION, PlaceholderValue, Policy, ServerStats, Stats, install, redis,
};

/// The README's examples compile too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

#[doc(hidden)]
pub mod __private {
    pub use ::redis_cached_runtime::private::*;
    pub use ::std::string::String;
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_JITTER_PERCENT, DEFAULT_LEASE, DEFAULT_NEAR_AGE, DEFAULT_NEGATIVE_TTL, DEFAULT_REFRESH_BETA};

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
            format!("Defaults to a {} s max age.", DEFAULT_NEAR_AGE.as_secs()),
            format!("Defaults to {DEFAULT_JITTER_PERCENT}%."),
        ] {
            assert!(docs.contains(&said), "the docs do not say {said:?}");
        }
    }
}
