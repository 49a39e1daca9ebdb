//! What each call came to (`Outcome`), as the span and `redis_cached_calls_total` report
//! it, against the docs (`stats::Outcome`, the guide's "Metrics").

use std::sync::Arc;

use super::support::{Db, EARLY, LOCKED, STALE, deployment, loaded, ms, pass};
use crate::stats::Outcome;
use crate::store::scripted::{Fault, OpKind};

/// Regression: the docs called any value a failed refresh served a stale hit, while an
/// early refresh's (still within its ttl) is a hit, in `stats()` as in the metric. An
/// early refresh whose loader fails is answered with the value it replaces: a hit.
#[tokio::test(start_paused = true)]
async fn a_failed_early_refresh_is_reported_as_the_hit_stats_count_it_as() {
    crate::random::seed_this_thread(7);
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&EARLY, "k", db.load(ms(100))).await, loaded(1));
    let (out, outcome) = ps[0].read_with_outcome(&EARLY, "k", db.failing(ms(100))).await;
    assert_eq!(out, loaded(1), "the value the refresh replaces");
    assert_eq!(db.loads(), 2, "the early refresh ran its loader");
    assert_eq!(outcome, Outcome::Hit, "a value within its ttl");
    assert_eq!(
        (
            ps[0].cx.counters.snapshot().hits,
            ps[0].cx.counters.snapshot().stale_hits
        ),
        (1, 0)
    );
}

/// Sanity: a failed refresh of a value past its ttl is a stale hit.
#[tokio::test(start_paused = true)]
async fn a_failed_stale_refresh_is_a_stale_hit() {
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    let (out, outcome) = ps[0].read_with_outcome(&STALE, "k", db.failing(ms(100))).await;
    assert_eq!(out, loaded(1));
    assert_eq!(outcome, Outcome::StaleHit);
}

/// Sanity: a lock waiter answered by the holder's fill is a miss; its holder a load.
#[tokio::test(start_paused = true)]
async fn a_lock_waiter_answered_by_the_fill_is_a_miss() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    let holder = {
        let p = ps[0].clone();
        let load = db.load(ms(100));
        tokio::spawn(async move { p.read_with_outcome(&LOCKED, "k", load).await })
    };
    pass(ms(10)).await;
    let (out, outcome) = ps[1].read_with_outcome(&LOCKED, "k", db.load(ms(100))).await;
    assert_eq!((out, outcome), (loaded(1), Outcome::Miss));
    assert_eq!(holder.await.unwrap(), (loaded(1), Outcome::Load));
}

/// Sanity: a first read that times out makes the call an error, whatever answers it.
#[tokio::test(start_paused = true)]
async fn a_call_whose_first_read_failed_is_an_error() {
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    ps[0].store.fail_next(OpKind::Get, Fault::Lost);
    let (out, outcome) = ps[0].read_with_outcome(&LOCKED, "k", db.load(ms(10))).await;
    assert_eq!((out, outcome), (loaded(1), Outcome::Error));
    ps[0].store.fail_next(OpKind::Get, Fault::Skipped);
    let (_, outcome) = ps[0].read_with_outcome(&LOCKED, "k2", db.load(ms(10))).await;
    assert_eq!(outcome, Outcome::Skipped);
}
