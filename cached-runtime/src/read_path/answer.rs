//! What a stored entry means for a call: a value, a "not found", a value due for
//! refresh, or nothing usable (a miss).

use std::time::Duration;

use super::Context;
use crate::Policy;
use crate::codec::{self, DECODE_LIMIT, Decoded, Freshness, Unstorable};
use crate::fail_open::Warning;
use crate::shape::Shape;
use crate::stats::Count;
use crate::store::Entry;

pub(super) enum Answer<T, V> {
    Value(T),
    Negative(T),
    /// A value due for refresh, raw: fresh but drawn for an early refresh (`refresh`),
    /// or past its ttl within `stale` (`stale: true`), served while it is refreshed.
    Due {
        value: V,
        stale: bool,
    },
}

/// Reads a stored entry; `None` means "treat as a miss". Unreadable entries and values
/// of another type are counted on the first read of a call only (`first_read`).
pub(super) fn answer<S: Shape>(
    cx: &Context,
    policy: &Policy,
    bytes: &[u8],
    remaining: Option<Duration>,
    tags: &[u64],
    first_read: bool,
) -> Option<Answer<S::Output, S::Value>> {
    let freshness = Freshness {
        remaining,
        stale_window: policy.stale.unwrap_or_default(),
        early_beta: policy.refresh_beta,
    };
    match codec::decode::<S::Value>(bytes, policy.codec, policy.version, tags, freshness) {
        Decoded::Value(value) => Some(Answer::Value(S::from_value(value))),
        Decoded::Early(value) => Some(Answer::Due { value, stale: false }),
        Decoded::Stale(value) => Some(Answer::Due { value, stale: true }),
        Decoded::Negative if policy.negative.is_some() => S::absent().map(Answer::Negative),
        Decoded::Negative | Decoded::OtherFormat => None,
        Decoded::Unreadable => {
            if first_read {
                cx.counters.bump(Count::Unreadable);
            }
            None
        }
        Decoded::OtherType { stored } => {
            if first_read {
                cx.counters.bump(Count::TypeMismatches);
                if cx.fail_open.first(policy.name, Warning::OtherType) {
                    log_other_type::<S>(policy, stored);
                }
            }
            None
        }
    }
}

/// What a value found while asking for the claim answers: a usable value or "not
/// found", with `negative` set for the latter. A refresh takes a new value as it is
/// (`untimed`): drawing an early refresh for it again would make early refreshes need
/// two draws. A stale or unusable value answers nothing: the claim is taken over it.
pub(super) fn found<S: Shape>(
    cx: &Context,
    policy: &Policy,
    entry: &Entry,
    tags: &[u64],
    refreshing: bool,
) -> Option<(S::Output, bool)> {
    let remaining = if refreshing { None } else { entry.remaining };
    match answer::<S>(cx, policy, &entry.bytes, remaining, tags, false) {
        Some(Answer::Value(out)) => Some((out, false)),
        Some(Answer::Due { value, stale: false }) => Some((S::from_value(value), false)),
        Some(Answer::Negative(out)) => Some((out, true)),
        Some(Answer::Due { stale: true, .. }) | None => None,
    }
}

fn log_other_type<S: Shape>(policy: &Policy, stored: u32) {
    let found = codec::stored_type_name(stored).map_or_else(
        || "a type this process has not stored".to_owned(),
        |name| format!("`{name}`"),
    );
    tracing::warn!(
        function = policy.name,
        "redis-cached: `{}` found a value of another type under its key ({found}, expected `{}`); treated \
         as a miss. Two functions share this key template, or a generic function is used at two types",
        policy.name,
        std::any::type_name::<S::Value>(),
    );
}

/// Says once per function, loudly, why its values are not cached and what to do.
pub(super) fn log_unstorable(policy: &Policy, why: &Unstorable) {
    match why {
        Unstorable::TooLarge(bytes) => tracing::error!(
            function = policy.name,
            "redis-cached: `{}` returned a value of {bytes} bytes, over the {} MiB decode limit; \
             it is not cached",
            policy.name,
            DECODE_LIMIT / (1024 * 1024),
        ),
        Unstorable::NotReadBack(reason) => tracing::error!(
            function = policy.name,
            codec = policy.codec.name(),
            "redis-cached: `{}` returns values that the {} codec cannot read back ({reason}); they are \
             not cached. Use `#[redis_cached(codec = \"msgpack\")]` (or \"json\").",
            policy.name,
            policy.codec.name(),
        ),
    }
}
