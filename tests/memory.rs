//! The in-memory store shows the same behaviour as Redis.

mod behaviour;
mod support;

use std::sync::Arc;

use behaviour::Db;
use redis_cached::Cache;

fn db() -> Db {
    Db::new(Cache::in_memory())
}

#[tokio::test]
async fn hit_after_miss() {
    behaviour::hit_after_miss(&db()).await;
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    behaviour::values_expire_after_their_ttl(&db()).await;
}

#[tokio::test]
async fn none_is_cached_negatively_for_its_own_ttl() {
    behaviour::none_is_cached_negatively_for_its_own_ttl(&db()).await;
}

#[tokio::test]
async fn none_is_not_cached_without_negative() {
    behaviour::none_is_not_cached_without_negative(&db()).await;
}

#[tokio::test]
async fn errors_are_never_cached() {
    behaviour::errors_are_never_cached(&db()).await;
}

#[tokio::test]
async fn separators_in_values_do_not_collide() {
    behaviour::separators_in_values_do_not_collide(&db()).await;
}

#[tokio::test]
async fn invalidate_makes_the_next_call_load() {
    behaviour::invalidate_makes_the_next_call_load(&db()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_during_a_load_discards_its_fill() {
    behaviour::invalidation_during_a_load_discards_its_fill(&Arc::new(db())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_load() {
    behaviour::concurrent_misses_share_one_load(&Arc::new(db())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loader_hands_over_to_waiters() {
    behaviour::a_panicking_loader_hands_over_to_waiters(&Arc::new(db())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_caller_hands_over_to_waiters() {
    behaviour::a_dropped_caller_hands_over_to_waiters(&Arc::new(db())).await;
}

#[tokio::test]
async fn another_version_or_codec_is_a_miss() {
    behaviour::another_version_or_codec_is_a_miss(&db()).await;
}

#[tokio::test]
async fn values_the_codec_cannot_read_back_are_not_stored() {
    behaviour::values_the_codec_cannot_read_back_are_not_stored(&db()).await;
}
