//! What the cache emits through the [`metrics`](https://docs.rs/metrics) facade, with the
//! `metrics` feature: the application installs the recorder (a Prometheus exporter, say);
//! the cache never does. Without the feature every function here is empty.
//!
//! Keys are built once: the per-operation and per-error ones at compile time, a
//! function's the first time it emits. Emitting is then a lookup and the recorder's
//! own work; with no recorder installed, no allocation and no lock.
//!
//! Labels are bounded by the program: a function's name, an operation, an error kind,
//! an outcome. Never a key, a tag, a URL or an error message.

use std::time::Duration;

use crate::stats::Outcome;

/// A Redis operation, the `op` label of `redis_cached_redis_seconds`: one per operation of
/// the store contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// The read of a value (`GET`, with its `PTTL` when timed).
    Get,
    /// The read of a tagged value with its tags' versions (`MGET`).
    GetTagged,
    /// Reading (and keeping alive) tag versions.
    TagVersions,
    /// An invalidation of a tag.
    BumpTag,
    /// Asking for a key's claim (the lease or the fence).
    Acquire,
    /// Storing a loaded value under its claim.
    Fill,
    /// Extending a held claim.
    Extend,
    /// Giving a claim up (and, for a refresh that found nothing, its value).
    Release,
    /// An invalidation of a key.
    Delete,
}

impl Op {
    /// The label value.
    #[cfg(feature = "metrics")]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetTagged => "get_tagged",
            Op::TagVersions => "tag_versions",
            Op::BumpTag => "bump_tag",
            Op::Acquire => "acquire",
            Op::Fill => "fill",
            Op::Extend => "extend",
            Op::Release => "release",
            Op::Delete => "delete",
        }
    }
}

/// Why a Redis operation failed, the `kind` label of `redis_cached_redis_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer within `op_timeout`.
    Timeout,
    /// The call had spent its Redis budget (`call_budget`).
    Budget,
    /// A connection attempt failed or timed out (counted once per attempt).
    Connect,
    /// The connection broke or was refused.
    Connection,
    /// Redis is out of memory (`OOM`): `maxmemory` with `noeviction`.
    Oom,
    /// The Redis user lacks a permission (`NOPERM`).
    NoPerm,
    /// A replica, or a master that was demoted (`READONLY`).
    ReadOnly,
    /// Redis is loading, failing over or down (`LOADING`, `MASTERDOWN`, `TRYAGAIN`,
    /// `CLUSTERDOWN`, ...).
    Unavailable,
    /// Any other error reply.
    Other,
}

/// The label of [`Failure::Other`].
const OTHER: &str = "other";

impl Failure {
    /// The label value.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Budget => "budget",
            Failure::Connect => "connect",
            Failure::Connection => "connection",
            Failure::Oom => "oom",
            Failure::NoPerm => "noperm",
            Failure::ReadOnly => "readonly",
            Failure::Unavailable => "unavailable",
            Failure::Other => OTHER,
        }
    }
}

/// Counts one call of `function` that came to `outcome`.
#[inline]
pub(crate) fn call(function: &'static str, outcome: Outcome) {
    #[cfg(feature = "metrics")]
    emit::call(function, outcome);
    #[cfg(not(feature = "metrics"))]
    let _ = (function, outcome);
}

/// Records how long a loader of `function` ran.
pub(crate) fn load(function: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    emit::load(function, took);
    #[cfg(not(feature = "metrics"))]
    let _ = (function, took);
}

/// Records how long a miss of `function` waited for another caller's lease.
pub(crate) fn lock_wait(function: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    emit::lock_wait(function, took);
    #[cfg(not(feature = "metrics"))]
    let _ = (function, took);
}

/// Records how long a Redis operation took.
#[inline]
pub(crate) fn redis_op(op: Op, took: Duration) {
    #[cfg(feature = "metrics")]
    emit::redis_op(op, took);
    #[cfg(not(feature = "metrics"))]
    let _ = (op, took);
}

/// Counts one Redis error.
pub(crate) fn redis_error(kind: Failure) {
    #[cfg(feature = "metrics")]
    emit::redis_error(kind);
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// Sets `redis_cached_available`.
pub(crate) fn available(up: bool) {
    #[cfg(feature = "metrics")]
    emit::available(up);
    #[cfg(not(feature = "metrics"))]
    let _ = up;
}

#[cfg(feature = "metrics")]
mod emit {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};
    use std::sync::Mutex;
    use std::time::Duration;

    use metrics::{Key, Label, Level, Metadata, with_recorder};

    use super::{Failure, Op};
    use crate::stats::Outcome;
    use crate::sync::lock;

    /// `redis_cached_calls_total{fn, outcome}`: calls of cached functions, by what each came to.
    const CALLS: &str = "redis_cached_calls_total";
    /// `redis_cached_load_seconds{fn}`: how long loaders ran.
    const LOAD_SECONDS: &str = "redis_cached_load_seconds";
    /// `redis_cached_redis_seconds{op}`: how long Redis operations took, answered or not.
    const REDIS_SECONDS: &str = "redis_cached_redis_seconds";
    /// `redis_cached_redis_errors_total{kind}`: Redis errors the cache failed open on.
    const REDIS_ERRORS: &str = "redis_cached_redis_errors_total";
    /// `redis_cached_available`: 1 while Redis is answering, 0 while the cache fails open.
    const AVAILABLE: &str = "redis_cached_available";
    /// `redis_cached_lock_wait_seconds{fn}`: how long misses waited for another caller's lease.
    const LOCK_WAIT_SECONDS: &str = "redis_cached_lock_wait_seconds";

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// The keys of one function's metrics, made once per function name and kept for the
    /// life of the process (a program has a bounded number of cached functions).
    struct FunctionKeys {
        calls: [Key; Outcome::ALL.len()],
        load: Key,
        lock_wait: Key,
    }

    impl FunctionKeys {
        fn new(function: &'static str) -> Self {
            let labels = |outcome: Outcome| -> &'static [Label] {
                Box::leak(Box::new([
                    Label::from_static_parts("fn", function),
                    Label::from_static_parts("outcome", outcome.as_str()),
                ]))
            };
            let function_only: &'static [Label] = Box::leak(Box::new([Label::from_static_parts("fn", function)]));
            Self {
                calls: Outcome::ALL.map(|outcome| Key::from_static_parts(CALLS, labels(outcome))),
                load: Key::from_static_parts(LOAD_SECONDS, function_only),
                lock_wait: Key::from_static_parts(LOCK_WAIT_SECONDS, function_only),
            }
        }
    }

    /// Hashes the address and length of a `&'static str` (a map keyed by them needs no
    /// string hashing on the hit path).
    #[derive(Default)]
    struct AddressHasher(u64);

    impl Hasher for AddressHasher {
        fn write(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.write_u64(u64::from(*byte));
            }
        }

        fn write_u64(&mut self, n: u64) {
            self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }

        fn write_usize(&mut self, n: usize) {
            self.write_u64(n as u64);
        }

        fn finish(&self) -> u64 {
            self.0
        }
    }

    type ByAddress = HashMap<(usize, usize), &'static FunctionKeys, BuildHasherDefault<AddressHasher>>;

    /// The keys of `function`: from this thread's map, else from the process's (made there
    /// once per name).
    fn keys(function: &'static str) -> &'static FunctionKeys {
        thread_local! {
            static SEEN: RefCell<ByAddress> = RefCell::default();
        }
        static MADE: Mutex<Option<HashMap<&'static str, &'static FunctionKeys>>> = Mutex::new(None);
        let address = (function.as_ptr() as usize, function.len());
        let seen = SEEN
            .try_with(|seen| seen.borrow().get(&address).copied())
            .ok()
            .flatten();
        if let Some(keys) = seen {
            return keys;
        }
        let keys = *lock(&MADE)
            .get_or_insert_with(HashMap::new)
            .entry(function)
            .or_insert_with(|| Box::leak(Box::new(FunctionKeys::new(function))));
        let _ = SEEN.try_with(|seen| seen.borrow_mut().insert(address, keys));
        keys
    }

    pub(super) fn call(function: &'static str, outcome: Outcome) {
        let key = &keys(function).calls[outcome as usize];
        with_recorder(|recorder| recorder.register_counter(key, &METADATA)).increment(1);
    }

    pub(super) fn load(function: &'static str, took: Duration) {
        let key = &keys(function).load;
        with_recorder(|recorder| recorder.register_histogram(key, &METADATA)).record(took.as_secs_f64());
    }

    pub(super) fn lock_wait(function: &'static str, took: Duration) {
        let key = &keys(function).lock_wait;
        with_recorder(|recorder| recorder.register_histogram(key, &METADATA)).record(took.as_secs_f64());
    }

    /// One key per variant of `$ty`, at the index of its discriminant (the variants are
    /// listed in order), built at compile time; and, for the tests, the variants.
    macro_rules! static_keys {
        ($keys:ident, $name:expr, $label:literal, $ty:ident [$($variant:ident),* $(,)?]) => {
            static $keys: &[Key] = &[$({
                static LABELS: [Label; 1] = [Label::from_static_parts($label, $ty::$variant.as_str())];
                Key::from_static_parts($name, &LABELS)
            }),*];

            #[cfg(test)]
            impl $ty {
                const ALL: &[$ty] = &[$($ty::$variant),*];
            }
        };
    }

    static_keys!(
        OP_KEYS,
        REDIS_SECONDS,
        "op",
        Op[Get, GetTagged, TagVersions, BumpTag, Acquire, Fill, Extend, Release, Delete]
    );

    static_keys!(
        FAILURE_KEYS,
        REDIS_ERRORS,
        "kind",
        Failure[Timeout, Budget, Connect, Connection, Oom, NoPerm, ReadOnly, Unavailable, Other]
    );

    static AVAILABLE_KEY: Key = Key::from_static_name(AVAILABLE);

    pub(super) fn redis_op(op: Op, took: Duration) {
        let key = &OP_KEYS[op as usize];
        with_recorder(|recorder| recorder.register_histogram(key, &METADATA)).record(took.as_secs_f64());
    }

    pub(super) fn redis_error(kind: Failure) {
        let key = &FAILURE_KEYS[kind as usize];
        with_recorder(|recorder| recorder.register_counter(key, &METADATA)).increment(1);
    }

    pub(super) fn available(up: bool) {
        let value = if up { 1.0 } else { 0.0 };
        with_recorder(|recorder| recorder.register_gauge(&AVAILABLE_KEY, &METADATA)).set(value);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn each_op_and_failure_has_its_own_key_in_declaration_order() {
            assert_eq!(Op::ALL.len(), OP_KEYS.len());
            for (i, op) in Op::ALL.iter().enumerate() {
                let label = OP_KEYS[*op as usize].labels().next().expect("an op label");
                assert_eq!((*op as usize, label.value()), (i, op.as_str()));
            }
            assert_eq!(Failure::ALL.len(), FAILURE_KEYS.len());
            for (i, failure) in Failure::ALL.iter().enumerate() {
                let label = FAILURE_KEYS[*failure as usize].labels().next().expect("a kind label");
                assert_eq!((*failure as usize, label.value()), (i, failure.as_str()));
            }
            for (outcome, key) in Outcome::ALL.into_iter().zip(&keys("f").calls) {
                assert_eq!(Outcome::ALL[outcome as usize], outcome);
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("fn", "f"), ("outcome", outcome.as_str())]);
            }
        }
    }
}
