//! What a caller sees when the world moves under a load: its lease lost, an
//! announcement that never comes, Redis gone midway, a fill with no answer, a refresh
//! racing an invalidation.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::support::{Db, DbError, PLAIN, STALE, deployment, deployment_with_near, full, loaded, ms, pass};
use crate::Policy;
use crate::store::Tracked;
use crate::store::scripted::{Delivery, Fault, OpKind};

static LOCKED: Policy = Policy::new("locked", Duration::from_secs(60))
    .lock(Duration::from_secs(10))
    .jitter(0);
/// A lease renewed every 100 ms.
static SHORT_LEASE: Policy = Policy::new("short", Duration::from_secs(60))
    .lock(Duration::from_millis(300))
    .jitter(0);

#[tokio::test(start_paused = true)]
async fn a_lease_that_expires_mid_load_refuses_the_fill_and_is_not_shared_with_later_callers() {
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    // The first two renewals never arrive: the lease expires at 300 ms, under the loader.
    for _ in 0..2 {
        ps[0].store.fail_next(OpKind::Extend, Fault::Lost);
    }
    let first = ps[0].spawn_read(&SHORT_LEASE, "k", db.load(ms(1000)));
    pass(ms(500)).await;
    let joined = ps[0].spawn_read(&SHORT_LEASE, "k", db.load(ms(10)));
    assert_eq!(first.await.unwrap().0, loaded(1), "its caller gets its result");
    assert_eq!(
        joined.await.unwrap().0,
        loaded(2),
        "a caller that joined midway loads again"
    );
    assert_eq!(
        ps[0].read(&SHORT_LEASE, "k", db.load(ms(10))).await,
        loaded(2),
        "never stored"
    );
    assert_eq!(db.loads(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_lease_invalidated_mid_load_refuses_the_fill_and_is_not_shared_when_the_message_is_lost() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    ps[0].store.hear_by(Delivery::Lost);
    let first = ps[0].spawn_read(&LOCKED, "k", db.load(ms(1000)));
    pass(ms(300)).await;
    ps[1].invalidate("k").await;
    let joined = ps[0].spawn_read(&LOCKED, "k", db.load(ms(10)));
    assert_eq!(
        first.await.unwrap().0,
        loaded(1),
        "its caller started before the invalidation"
    );
    assert_eq!(joined.await.unwrap().0, loaded(2), "not the voided load");
    assert_eq!(
        ps[1].read(&LOCKED, "k", db.load(ms(10))).await,
        loaded(2),
        "never stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_voided_unlocked_load_is_not_shared_with_callers_that_joined_after_it_started_when_the_message_is_lost() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    ps[0].store.hear_by(Delivery::Lost);
    let first = ps[0].spawn_read(&PLAIN, "k", db.load(ms(1000)));
    pass(ms(300)).await;
    ps[1].invalidate("k").await;
    let joined = ps[0].spawn_read(&PLAIN, "k", db.load(ms(10)));
    assert_eq!(first.await.unwrap().0, loaded(1));
    assert_eq!(joined.await.unwrap().0, loaded(2), "not the voided load");
    assert_eq!(
        ps[1].read(&PLAIN, "k", db.load(ms(10))).await,
        loaded(2),
        "never stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opening_mid_call_fails_open_with_the_loaders_result() {
    let (server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    let first = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    pass(ms(50)).await;
    ps[0].store.trip(None);
    let joined = ps[0].spawn_read(&LOCKED, "k", db.load(ms(10)));
    assert_eq!(first.await.unwrap().0, loaded(1), "the loader's result");
    assert_eq!(
        joined.await.unwrap().0,
        loaded(2),
        "its own load: the fill was never confirmed"
    );
    assert!(ps[0].stats().skipped >= 2, "the fill and what followed were skipped");
    assert_eq!(server.bytes(&full("k")), None, "nothing stored");
    ps[0].store.recover();
    assert_eq!(
        ps[0].read(&LOCKED, "k", db.load(ms(10))).await,
        loaded(3),
        "still a miss"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fill_that_times_out_returns_the_result_releases_the_lease_and_is_not_shared() {
    let (server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    ps[0].store.fail_next(OpKind::Fill, Fault::Lost);
    let start = Instant::now();
    let first = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    pass(ms(50)).await;
    let joined = ps[0].spawn_read(&LOCKED, "k", db.load(ms(10)));
    assert_eq!(first.await.unwrap().0, loaded(1));
    let (out, at) = joined.await.unwrap();
    assert_eq!(out, loaded(2), "not a load whose fill is unconfirmed");
    assert!(
        at - start < ms(500),
        "the lease was released, not left to its 10 s expiry"
    );
    assert_eq!(ps[0].stats().errors, 1);
    assert!(server.bytes(&full("k")).is_some(), "the second load stored");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_racing_an_invalidation_does_not_store_its_result_over_it() {
    let (server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    let refresh = ps[0].spawn_read(&STALE, "k", db.load(ms(200)));
    pass(ms(100)).await;
    ps[1].invalidate("k").await;
    assert_eq!(
        refresh.await.unwrap().0,
        loaded(2),
        "its caller started before the invalidation"
    );
    assert_eq!(server.bytes(&full("k")), None, "not stored over the invalidation");
    assert_eq!(ps[1].read(&STALE, "k", db.load(ms(10))).await, loaded(3));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_whose_loader_fails_after_an_invalidation_does_not_serve_the_invalidated_value() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    let refresh = ps[0].spawn_read(&STALE, "k", db.failing(ms(200)));
    pass(ms(100)).await;
    ps[1].invalidate("k").await;
    assert_eq!(refresh.await.unwrap().0, Err(DbError), "no stale-if-error");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_finds_its_value_invalidated_before_taking_the_lease_does_not_serve_it_when_its_loader_fails() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    // The stale read's answer takes 20 ms: the invalidation lands before the lease request.
    let slow = Fault::Slow {
        before: ms(0),
        after: ms(20),
    };
    ps[0].store.fail_next(OpKind::Get, slow);
    let refresh = ps[0].spawn_read(&STALE, "k", db.failing(ms(100)));
    pass(ms(10)).await;
    ps[1].invalidate("k").await;
    assert_eq!(refresh.await.unwrap().0, Err(DbError), "no stale-if-error");
}

/// The near cache's race, forced: a read is answered with the old value after the
/// key was invalidated (the read ran in Redis first, its answer was still on the way when
/// the invalidation's push arrived). The old value must not be kept, nor served.
#[tokio::test(start_paused = true)]
async fn a_value_invalidated_while_its_read_was_in_flight_is_not_kept_in_the_near_cache() {
    let (_server, ps, near) = deployment_with_near(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&PLAIN, "k", db.load(ms(0))).await, loaded(1));
    // Applied at once, answered 20 ms later.
    let slow = Fault::Slow {
        before: ms(0),
        after: ms(20),
    };
    ps[0].store.fail_next(OpKind::Get, slow);
    let read = ps[0].spawn_read(&PLAIN, "k", db.load(ms(0)));
    pass(ms(10)).await;
    ps[1].invalidate("k").await;
    near.invalidated(full("k").as_bytes());
    assert_eq!(read.await.unwrap().0, loaded(1), "the read ran before the invalidation");
    assert_eq!(ps[0].stats().near_hits, 0);
    assert_eq!(
        ps[0].read(&PLAIN, "k", db.load(ms(0))).await,
        loaded(2),
        "not the old value, from the near cache or anywhere"
    );
    assert_eq!(ps[0].stats().near_hits, 0);
    assert_eq!(ps[0].read(&PLAIN, "k", db.load(ms(0))).await, loaded(2));
    assert_eq!(ps[0].read(&PLAIN, "k", db.load(ms(0))).await, loaded(2));
    assert_eq!(ps[0].stats().near_hits, 1, "the new value is kept once read");
}
