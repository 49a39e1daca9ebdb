//! What the expansion of `#[redis_cached]` calls. Not public API: it may change in any
//! release.

pub use crate::key::KeyBuilder;
pub use crate::{Cache, Cacheable, Codec, DEFAULT_LEASE, DEFAULT_REFRESH_BETA, Error, Policy};
pub use core::time::Duration;

use crate::install::{installed, warn_not_installed};
use crate::shape::{CachedValue, Fallible, Optional, Plain, ResultOption, Shape};

/// The codecs `codec = "..."` names, looked up as `<Enabled as MsgPack>::CODEC`: with the
/// codec's feature off the trait is not implemented, and the user's crate fails to compile
/// with a message that names the feature (a `const` that panics would fail this crate).
pub mod codec {
    use crate::Codec;

    /// What the codec traits are implemented for, each with its feature.
    #[derive(Debug)]
    pub struct Enabled;

    /// bincode, always there.
    pub trait Bincode {
        /// The codec.
        const CODEC: Codec;
    }

    impl Bincode for Enabled {
        const CODEC: Codec = Codec::Bincode;
    }

    /// MessagePack, with the `msgpack` feature.
    #[diagnostic::on_unimplemented(
        message = "`codec = \"msgpack\"` needs the `msgpack` feature of redis-cached",
        label = "the `msgpack` feature is off",
        note = "enable it in Cargo.toml: `redis-cached = {{ version = \"...\", features = [\"msgpack\"] }}`"
    )]
    pub trait MsgPack {
        /// The codec.
        const CODEC: Codec;
    }

    #[cfg(feature = "msgpack")]
    impl MsgPack for Enabled {
        const CODEC: Codec = Codec::MsgPack;
    }

    /// JSON, with the `json` feature.
    #[diagnostic::on_unimplemented(
        message = "`codec = \"json\"` needs the `json` feature of redis-cached",
        label = "the `json` feature is off",
        note = "enable it in Cargo.toml: `redis-cached = {{ version = \"...\", features = [\"json\"] }}`"
    )]
    pub trait Json {
        /// The codec.
        const CODEC: Codec;
    }

    #[cfg(feature = "json")]
    impl Json for Enabled {
        const CODEC: Codec = Codec::Json;
    }
}

/// Where the expansion gets its cache when the attribute names none.
#[must_use]
pub fn default_cache() -> Option<Cache> {
    installed()
}

/// `cache = EXPR` accepts a `Cache`, a reference to one, or an `Arc`/`Box` of one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `redis_cached::Cache`",
    label = "`cache = ...` must name a `Cache`",
    note = "pass a `Cache`, a `&Cache` or an `Arc<Cache>`, e.g. `cache = self.cache`"
)]
pub trait AsCache {
    /// The cache.
    fn as_cache(&self) -> &Cache;
}

impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}

impl<C: AsCache + ?Sized> AsCache for &C {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<C: AsCache + ?Sized> AsCache for std::sync::Arc<C> {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<C: AsCache + ?Sized> AsCache for Box<C> {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// Reads through `cache`, or runs the loader when there is none.
async fn call<S: Shape>(
    cache: Option<&Cache>,
    policy: &Policy,
    key: &str,
    tags: &[String],
    load: impl Future<Output = S::Output>,
) -> S::Output {
    match cache {
        Some(cache) => cache.read::<S>(policy, key, tags, load).await,
        None => {
            warn_not_installed(policy.name);
            load.await
        }
    }
}

// The entries take the value type `V` as `CachedValue` and use `V::Value` (which is `V`):
// a type that cannot be cached is then one error under the fn's return type, naming no
// item of this module.

/// `-> T`
pub async fn plain<V: CachedValue>(
    cache: Option<&Cache>,
    policy: &Policy,
    key: &str,
    tags: &[String],
    load: impl Future<Output = V::Value>,
) -> V::Value {
    call::<Plain<V::Value>>(cache, policy, key, tags, load).await
}

/// `-> Option<T>`
pub async fn option<V: CachedValue>(
    cache: Option<&Cache>,
    policy: &Policy,
    key: &str,
    tags: &[String],
    load: impl Future<Output = Option<V::Value>>,
) -> Option<V::Value> {
    call::<Optional<V::Value>>(cache, policy, key, tags, load).await
}

/// `-> Result<T, E>`
///
/// # Errors
/// The loader's.
pub async fn result<V: CachedValue, E>(
    cache: Option<&Cache>,
    policy: &Policy,
    key: &str,
    tags: &[String],
    load: impl Future<Output = Result<V::Value, E>>,
) -> Result<V::Value, E> {
    call::<Fallible<V::Value, E>>(cache, policy, key, tags, load).await
}

/// `-> Result<Option<T>, E>`
///
/// # Errors
/// The loader's.
pub async fn result_option<V: CachedValue, E>(
    cache: Option<&Cache>,
    policy: &Policy,
    key: &str,
    tags: &[String],
    load: impl Future<Output = Result<Option<V::Value>, E>>,
) -> Result<Option<V::Value>, E> {
    call::<ResultOption<V::Value, E>>(cache, policy, key, tags, load).await
}

/// The full key of `f_key`: with no cache, the rendered key with its hash tag only.
#[must_use]
pub fn full_key(cache: Option<&Cache>, rendered: &str) -> String {
    match cache {
        Some(cache) => cache.key(rendered),
        None => crate::key::full_key("", rendered),
    }
}

/// `f_invalidate`.
///
/// # Errors
/// See [`Cache::invalidate`]; [`Error::NotInstalled`] with no cache, since the caches
/// of other processes may well hold the value.
pub async fn invalidate(cache: Option<&Cache>, rendered: &str) -> Result<(), Error> {
    match cache {
        Some(cache) => cache.invalidate(rendered).await,
        None => Err(Error::NotInstalled),
    }
}
/// `#[redis_invalidate]`, after its fn succeeded: invalidates every key and tag
/// (rendered) once, even when two templates render to the same text, failing open
/// (counted, logged, retried in the background).
pub async fn invalidate_after(cache: Option<&Cache>, function: &'static str, keys: &[String], tags: &[String]) {
    let Some(cache) = cache else {
        warn_not_installed(function);
        return;
    };
    for key in distinct(keys) {
        cache.invalidate_or_retry(cache.key_target(key)).await;
    }
    for tag in distinct(tags) {
        cache.invalidate_or_retry(cache.tag_target(tag)).await;
    }
}

/// Each of `rendered` once, in order: an attribute has a few keys and tags, so a scan
/// of the ones before is cheaper than a set.
fn distinct(rendered: &[String]) -> impl Iterator<Item = &String> {
    rendered
        .iter()
        .enumerate()
        .filter(|&(at, text)| !rendered[..at].contains(text))
        .map(|(_, text)| text)
}

/// The stored bytes of `value` (envelope and payload), for the micro benchmarks;
/// `None` when the value cannot be stored.
#[must_use]
pub fn encode_envelope<T: Cacheable>(value: &T, codec: Codec, version: u32) -> Option<Vec<u8>> {
    crate::codec::encode_value(value, codec, version, &[], None).ok()
}

/// Reads stored bytes back, for the micro benchmarks; `None` for anything but a value
/// of this codec, version and type.
#[must_use]
pub fn decode_envelope<T: Cacheable>(bytes: &[u8], codec: Codec, version: u32) -> Option<T> {
    match crate::codec::decode(bytes, codec, version, &[], crate::codec::Freshness::default()) {
        crate::codec::Decoded::Value(value) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn two_templates_rendering_the_same_text_are_invalidated_once() {
        let rendered = ["category:7", "category:8", "category:7", "category:7"].map(str::to_owned);
        assert_eq!(
            distinct(&rendered).map(String::as_str).collect::<Vec<_>>(),
            ["category:7", "category:8"]
        );
        assert_eq!(distinct(&[]).count(), 0);
    }
}
