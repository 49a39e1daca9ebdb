//! The four return shapes a cached function may have, and what each one caches.

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use crate::coalesce::{Outcome, Shared};

/// A type whose values a cache can store and hand to concurrent callers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the cached value must implement `Serialize`, `DeserializeOwned` and `Clone`, and be `Send + Sync + 'static`",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`"
)]
pub trait Cacheable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Cacheable for T {}

/// A type `#[redis_cached]` can return the values of: every [`Cacheable`] type. Never
/// implemented or named by hand; the attribute checks the return type against it so that
/// a type that cannot be cached is one error under that type, where a bound on
/// `Cacheable` would give one for each missing trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the cached value must implement `Serialize`, `DeserializeOwned` and `Clone`, and be `Send + Sync + 'static`",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`"
)]
pub trait CachedValue {
    /// Always `Self`. Reached through this projection, a type that is not `Cacheable`
    /// fails once, and the expansion's other uses of it are not reported again.
    type Value: Cacheable;
}

// Not recommended: the error names `CachedValue`, not each missing trait.
#[diagnostic::do_not_recommend]
impl<T: Cacheable> CachedValue for T {
    type Value = T;
}

/// What a loader's output means for the cache.
pub(crate) enum Loaded<'a, V> {
    /// Store this value.
    Value(&'a V),
    /// "Not found": store the negative sentinel if the policy says so.
    Absent,
    /// An error: store nothing.
    Failed,
}

pub(crate) trait Shape {
    type Value: Cacheable;
    type Output;

    fn classify(out: &Self::Output) -> Loaded<'_, Self::Value>;
    fn from_value(value: Self::Value) -> Self::Output;
    /// The output for a stored "not found"; `None` where the shape has no `None`.
    fn absent() -> Option<Self::Output>;

    /// What concurrent callers of the same key receive from this result; `voided`: the
    /// mark of the read it rests on, when an invalidation may have made it stale for
    /// callers that joined after that read (see `coalesce`).
    fn outcome(out: &Self::Output, voided: Option<u64>) -> Outcome {
        let shared: std::sync::Arc<dyn std::any::Any + Send + Sync> = match Self::classify(out) {
            Loaded::Value(value) => std::sync::Arc::new(Shared::Value(value.clone())),
            Loaded::Absent => std::sync::Arc::new(Shared::<Self::Value>::Absent),
            Loaded::Failed => return Outcome::Failed,
        };
        match voided {
            Some(mark) => Outcome::Voided { shared, mark },
            None => Outcome::Done(shared),
        }
    }

    /// The output for a coalesced caller, if the shared result fits this shape.
    fn from_shared(shared: &Shared<Self::Value>) -> Option<Self::Output> {
        match shared {
            Shared::Value(value) => Some(Self::from_value(value.clone())),
            Shared::Absent => Self::absent(),
        }
    }
}

/// `-> T`
pub(crate) struct Plain<T>(PhantomData<T>);
/// `-> Option<T>`
pub(crate) struct Optional<T>(PhantomData<T>);
/// `-> Result<T, E>`
pub(crate) struct Fallible<T, E>(PhantomData<(T, E)>);
/// `-> Result<Option<T>, E>`
pub(crate) struct ResultOption<T, E>(PhantomData<(T, E)>);

impl<T: Cacheable> Shape for Plain<T> {
    type Value = T;
    type Output = T;

    fn classify(out: &T) -> Loaded<'_, T> {
        Loaded::Value(out)
    }
    fn from_value(value: T) -> T {
        value
    }
    fn absent() -> Option<T> {
        None
    }
}

impl<T: Cacheable> Shape for Optional<T> {
    type Value = T;
    type Output = Option<T>;

    fn classify(out: &Option<T>) -> Loaded<'_, T> {
        match out {
            Some(value) => Loaded::Value(value),
            None => Loaded::Absent,
        }
    }
    fn from_value(value: T) -> Option<T> {
        Some(value)
    }
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

impl<T: Cacheable, E> Shape for Fallible<T, E> {
    type Value = T;
    type Output = Result<T, E>;

    fn classify(out: &Result<T, E>) -> Loaded<'_, T> {
        match out {
            Ok(value) => Loaded::Value(value),
            Err(_) => Loaded::Failed,
        }
    }
    fn from_value(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn absent() -> Option<Result<T, E>> {
        None
    }
}

impl<T: Cacheable, E> Shape for ResultOption<T, E> {
    type Value = T;
    type Output = Result<Option<T>, E>;

    fn classify(out: &Result<Option<T>, E>) -> Loaded<'_, T> {
        match out {
            Ok(Some(value)) => Loaded::Value(value),
            Ok(None) => Loaded::Absent,
            Err(_) => Loaded::Failed,
        }
    }
    fn from_value(value: T) -> Result<Option<T>, E> {
        Ok(Some(value))
    }
    fn absent() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
    }
}
