//! Each step of the read path: a hit, a miss that leads, a coalesced waiter, a lock wait
//! ended by an announcement or by a poll, a refresh that wins or finds the lease busy, a
//! value found while asking for the lease, an unusable value taken over.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::support::{Db, DbError, EARLY, LOCKED, PLAIN, STALE, deployment, full, loaded, ms, pass};
use crate::key::lease_key;
use crate::store::scripted::{Delivery, Fault, OpKind};
use crate::store::{Claim, Expected, Store};

#[tokio::test(start_paused = true)]
async fn a_hit_is_answered_from_the_store_without_loading() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&PLAIN, "k", db.load(ms(10))).await, loaded(1));
    assert_eq!(ps[1].read(&PLAIN, "k", db.load(ms(10))).await, loaded(1));
    assert_eq!(db.loads(), 1);
    assert_eq!(ps[1].stats().hits, 1);
}

#[tokio::test(start_paused = true)]
async fn a_miss_leads_a_load_stores_it_and_gives_its_lease_up() {
    let (server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&LOCKED, "k", db.load(ms(10))).await, loaded(1));
    assert!(server.bytes(&full("k")).is_some(), "stored");
    assert!(server.claim_tokens(&lease_key(&full("k"))).is_empty(), "lease given up");
    let stats = ps[0].stats();
    assert_eq!((stats.misses, stats.loads), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_in_one_process_share_one_load() {
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    let calls: Vec<_> = (0..5)
        .map(|_| ps[0].spawn_read(&PLAIN, "k", db.load(ms(100))))
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().0, loaded(1));
    }
    assert_eq!(db.loads(), 1);
    assert_eq!(ps[0].stats().coalesced, 4);
}

#[tokio::test(start_paused = true)]
async fn a_lock_waiter_in_another_process_is_woken_by_the_fill_announcement() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    let start = Instant::now();
    let holder = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    pass(ms(10)).await;
    let (out, at) = ps[1].spawn_read(&LOCKED, "k", db.load(ms(100))).await.unwrap();
    assert_eq!(out, loaded(1));
    assert_eq!(at - start, ms(100), "woken by the fill, not by a poll");
    assert_eq!(holder.await.unwrap().0, loaded(1));
    assert_eq!(db.loads(), 1);
    assert_eq!(ps[1].stats().lock_waits, 1);
}

/// Regression: the callers that joined a lock waiter's flight in another process were
/// not handed the value it found after the holder's fill (it was read after they
/// joined); each asked the store again, one after another, which kept a 250-caller
/// stampede waiting tens of milliseconds past the load.
#[tokio::test(start_paused = true)]
async fn callers_joined_to_a_lock_waiter_share_the_value_it_finds_after_the_fill() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    let start = Instant::now();
    let holder = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    pass(ms(10)).await;
    let waiters: Vec<_> = (0..20)
        .map(|_| ps[1].spawn_read(&LOCKED, "k", db.load(ms(100))))
        .collect();
    for waiter in waiters {
        let (out, at) = waiter.await.unwrap();
        assert_eq!(out, loaded(1));
        assert_eq!(at - start, ms(100), "answered at the fill");
    }
    assert_eq!(holder.await.unwrap().0, loaded(1));
    assert_eq!(db.loads(), 1);
    let stats = ps[1].stats();
    assert_eq!((stats.lock_waits, stats.coalesced), (1, 19), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lock_waiter_gets_the_value_by_polling_when_the_fill_announcement_never_arrives() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    // The waiter's subscription dies silently: it still looks up, so the waiter polls
    // at its slower pace.
    ps[1].store.hear_by(Delivery::Silent {
        noticed: Duration::from_secs(10),
    });
    let start = Instant::now();
    let holder = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    pass(ms(10)).await;
    let (out, at) = ps[1].spawn_read(&LOCKED, "k", db.load(ms(100))).await.unwrap();
    assert_eq!(out, loaded(1), "the holder's value");
    assert_eq!(at - start, ms(260), "its first poll, 250 ms after it began waiting");
    assert_eq!(holder.await.unwrap().0, loaded(1));
    assert_eq!(db.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stale_value_is_refreshed_by_one_caller_while_the_others_are_served_it() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    let refresher = ps[0].spawn_read(&STALE, "k", db.load(ms(100)));
    pass(ms(10)).await;
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(100))).await, loaded(1), "here");
    assert_eq!(ps[1].read(&STALE, "k", db.load(ms(100))).await, loaded(1), "elsewhere");
    assert_eq!(refresher.await.unwrap().0, loaded(2), "the refresher gets its load");
    assert_eq!(db.loads(), 2);
    let (here, elsewhere) = (ps[0].stats(), ps[1].stats());
    assert_eq!((here.refreshes, here.stale_hits), (1, 1));
    assert_eq!((elsewhere.refreshes, elsewhere.stale_hits), (0, 1));
    assert_eq!(ps[1].read(&STALE, "k", db.load(ms(100))).await, loaded(2), "stored");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_whose_loader_fails_serves_the_value_it_replaces_to_its_caller() {
    let (_server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&STALE, "k", db.load(ms(0))).await, loaded(1));
    pass(ms(600)).await;
    assert_eq!(ps[0].read(&STALE, "k", db.failing(ms(100))).await, loaded(1));
    assert_eq!(ps[0].stats().stale_hits, 1);
}

#[tokio::test(start_paused = true)]
async fn an_early_refresh_that_finds_the_lease_held_serves_the_current_value() {
    crate::random::seed_this_thread(7);
    let (server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&EARLY, "k", db.load(ms(100))).await, loaded(1));
    // Another process refreshes: it holds the lease over the current value.
    let current = server.bytes(&full("k")).unwrap_or_default();
    let lease = Claim::lease(&full("k"));
    let taken = ps[1]
        .store
        .acquire(&lease, Duration::from_secs(10), Expected::Bytes(&current));
    assert!(matches!(taken.await, Ok(crate::store::Acquire::Won { .. })));
    assert_eq!(ps[0].read(&EARLY, "k", db.load(ms(100))).await, loaded(1));
    assert_eq!(db.loads(), 1, "no second refresh");
    let stats = ps[0].stats();
    assert_eq!((stats.hits, stats.refreshes), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_value_filled_while_the_lease_is_asked_for_answers_the_call_without_loading() {
    let (_server, ps) = deployment(2);
    let db = Arc::new(Db::default());
    // This process's lease request arrives late, after the other process's fill.
    let late = Fault::Slow {
        before: ms(30),
        after: ms(0),
    };
    ps[0].store.fail_next(OpKind::Acquire, late);
    let slow = ps[0].spawn_read(&LOCKED, "k", db.load(ms(100)));
    let quick = ps[1].spawn_read(&LOCKED, "k", db.load(ms(10)));
    assert_eq!(quick.await.unwrap().0, loaded(1));
    assert_eq!(slow.await.unwrap().0, loaded(1), "the other process's value");
    assert_eq!(db.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_value_is_taken_over_and_replaced_by_a_load() {
    let (server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    server.put(&full("k"), b"garbage".to_vec(), Duration::from_secs(60));
    assert_eq!(ps[0].read(&LOCKED, "k", db.load(ms(10))).await, loaded(1));
    assert_eq!(ps[0].stats().unreadable, 1);
    assert_eq!(ps[0].read(&LOCKED, "k", db.load(ms(10))).await, loaded(1), "now a hit");
    assert_eq!(db.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_is_returned_as_is_and_never_stored() {
    let (server, ps) = deployment(1);
    let db = Arc::new(Db::default());
    assert_eq!(ps[0].read(&LOCKED, "k", db.failing(ms(10))).await, Err(DbError));
    assert_eq!(server.bytes(&full("k")), None);
}
