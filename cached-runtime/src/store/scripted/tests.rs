//! The fake Redis keeps the scripts' semantics, and misbehaves only when told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::store::Announcement;

const OP_TIMEOUT: Duration = Duration::from_millis(50);
const TAG_TTL: Duration = Duration::from_secs(3600);
const LEASE: Duration = Duration::from_millis(300);

/// A listener that keeps what it hears.
#[derive(Debug, Default)]
struct Heard(Mutex<Vec<Announcement>>);

impl Listener for Heard {
    fn heard(&self, announcement: Announcement) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(announcement);
    }
}

impl Heard {
    fn taken(&self) -> Vec<Announcement> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Lets `time` pass, and the tasks due by then run.
async fn pass(time: Duration) {
    tokio::time::sleep(time).await;
    tokio::task::yield_now().await;
}

/// Two processes on one fake Redis, with their listeners.
fn two() -> (Server, [(ScriptedStore, Arc<Heard>); 2]) {
    let server = Server::new(OP_TIMEOUT, TAG_TTL);
    let process = |origin| {
        let heard = Arc::new(Heard::default());
        (ScriptedStore::connect(&server, heard.clone(), origin), heard)
    };
    let processes = [process(1), process(2)];
    assert_eq!((processes[0].0.process(), processes[1].0.process()), (0, 1));
    (server, processes)
}

#[tokio::test(start_paused = true)]
async fn a_lease_has_one_holder_and_a_fence_many() {
    let (server, [(a, _), (b, _)]) = two();
    let (first, second) = (Claim::lease("{k}"), Claim::lease("{k}"));
    let won = a.acquire(&first, LEASE, Expected::Nothing).await.unwrap();
    assert!(matches!(won, Acquire::Won { over_expected: false }));
    assert_eq!(server.last_claim_expiry(), Some(Instant::now() + LEASE));
    let busy = b.acquire(&second, LEASE, Expected::Nothing).await.unwrap();
    assert!(matches!(busy, Acquire::Held { remaining } if remaining == LEASE));
    let (one, two) = (Claim::fence("{f}"), Claim::fence("{f}"));
    for (store, claim) in [(&a, &one), (&b, &two)] {
        let joined = store.acquire(claim, LEASE, Expected::Nothing).await.unwrap();
        assert!(matches!(joined, Acquire::Won { .. }));
    }
    assert!(a.fill(&one, b"1", LEASE).await.unwrap(), "one fenced load fills");
    assert!(b.fill(&two, b"2", LEASE).await.unwrap(), "so does the other");
}

#[tokio::test(start_paused = true)]
async fn a_delete_voids_lease_and_fence_and_is_announced_with_its_origin() {
    let (_server, [(a, heard_a), (b, heard_b)]) = two();
    let (lease, fence) = (Claim::lease("{k}"), Claim::fence("{k}"));
    a.acquire(&lease, LEASE, Expected::Nothing).await.unwrap();
    a.acquire(&fence, LEASE, Expected::Nothing).await.unwrap();
    b.delete("{k}").await.unwrap();
    assert!(!a.fill(&lease, b"old", LEASE).await.unwrap(), "the lease was voided");
    assert!(!a.fill(&fence, b"old", LEASE).await.unwrap(), "the fence was voided");
    assert_eq!(a.get("{k}", false).await.unwrap(), None);
    let deleted = Announcement::Deleted {
        origin: 2,
        key: "{k}".into(),
    };
    assert_eq!(heard_a.taken(), vec![deleted.clone()]);
    assert_eq!(heard_b.taken(), vec![deleted], "Redis tells the sender too");
}

#[tokio::test(start_paused = true)]
async fn values_and_leases_expire_on_tokios_clock() {
    let (_server, [(a, _), (b, _)]) = two();
    let lease = Claim::lease("{k}");
    a.acquire(&lease, LEASE, Expected::Nothing).await.unwrap();
    assert!(a.fill(&lease, b"v", Duration::from_secs(1)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(999)).await;
    let entry = b.get("{k}", true).await.unwrap().unwrap();
    assert_eq!(entry.remaining, Some(Duration::from_millis(1)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(b.get("{k}", true).await.unwrap(), None);
    let held = Claim::lease("{k}");
    a.acquire(&held, LEASE, Expected::Nothing).await.unwrap();
    tokio::time::sleep(LEASE).await;
    assert!(!a.extend(&held, LEASE).await.unwrap(), "expired: cannot be renewed");
    let next = b.acquire(&Claim::lease("{k}"), LEASE, Expected::Nothing).await.unwrap();
    assert!(matches!(next, Acquire::Won { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_lease_request_over_the_expected_bytes_takes_the_lease_and_any_other_value_is_returned() {
    let (server, [(a, _), _]) = two();
    server.put("{k}", b"old".to_vec(), LEASE);
    let other = a.acquire(&Claim::lease("{k}"), LEASE, Expected::Nothing).await.unwrap();
    assert!(matches!(other, Acquire::Value(entry) if entry.bytes == b"old"));
    let over = a
        .acquire(&Claim::lease("{k}"), LEASE, Expected::Bytes(b"old"))
        .await
        .unwrap();
    assert!(matches!(over, Acquire::Won { over_expected: true }));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_request_is_applied_and_a_lost_one_is_not() {
    let (server, [(a, _), _]) = two();
    let (applied, lost) = (Claim::lease("{a}"), Claim::lease("{b}"));
    a.fail_next(OpKind::Acquire, Fault::Unanswered);
    let unanswered = a.acquire(&applied, LEASE, Expected::Nothing).await;
    assert!(matches!(unanswered, Err(StoreError::Timeout(t)) if t == OP_TIMEOUT));
    assert_eq!(server.claim_tokens("{a}:lease"), vec![applied.token().token.clone()]);
    a.fail_next(OpKind::Acquire, Fault::Lost);
    assert!(a.acquire(&lost, LEASE, Expected::Nothing).await.is_err());
    assert!(server.claim_tokens("{b}:lease").is_empty());
}

#[tokio::test(start_paused = true)]
async fn requests_of_one_process_are_applied_in_the_order_sent() {
    let (server, [(a, _), _]) = two();
    let lease = Claim::lease("{k}");
    let slow = Fault::Slow {
        before: Duration::from_millis(200),
        after: Duration::ZERO,
    };
    a.fail_next(OpKind::Acquire, slow);
    assert!(
        a.acquire(&lease, LEASE, Expected::Nothing).await.is_err(),
        "past the deadline"
    );
    // Sent after it, so applied after it: the release finds the lease and frees it.
    assert!(a.release(&lease).await.is_err(), "waits behind the slow request");
    pass(Duration::from_millis(200)).await;
    assert!(server.claim_tokens("{k}:lease").is_empty());
}

#[tokio::test(start_paused = true)]
async fn three_failures_in_a_row_open_the_breaker_until_the_outage_ends() {
    let (_server, [(a, _), (b, _)]) = two();
    for _ in 0..3 {
        a.fail_next(OpKind::Get, Fault::Lost);
        assert!(a.get("{k}", false).await.is_err());
    }
    assert!(!a.reachable());
    assert_eq!(a.announcements(), None, "the subscription went with the connection");
    assert!(matches!(a.get("{k}", false).await, Err(StoreError::Skipped)));
    assert!(b.reachable(), "another process is not concerned");
    pass(Duration::from_millis(20)).await;
    assert!(a.reachable());
    assert_eq!(a.announcements(), Some(2), "subscribed anew");
}

#[tokio::test(start_paused = true)]
async fn announcements_arrive_late_never_or_when_released() {
    let (_server, [(a, heard_a), (b, heard_b)]) = two();
    a.hear_by(Delivery::After(Duration::from_millis(10)));
    b.hear_by(Delivery::Held);
    b.delete("{x}").await.unwrap();
    b.delete("{y}").await.unwrap();
    assert!(heard_a.taken().is_empty(), "in flight");
    pass(Duration::from_millis(10)).await;
    assert_eq!(heard_a.taken().len(), 2);
    b.deliver_held(true);
    let keys: Vec<String> = heard_b
        .taken()
        .into_iter()
        .map(|a| match a {
            Announcement::Deleted { key, .. } => key,
            other => unreachable!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, ["{y}", "{x}"], "reordered");
    a.hear_by(Delivery::Lost);
    b.delete("{z}").await.unwrap();
    assert!(heard_a.taken().is_empty());
    assert_eq!(a.announcements(), Some(2), "a lost message shows as a new subscription");
}

#[tokio::test(start_paused = true)]
async fn a_silently_dead_subscription_loses_everything_until_its_keepalive_notices() {
    let (_server, [(a, heard_a), (b, _)]) = two();
    let noticed = Duration::from_millis(1500);
    a.hear_by(Delivery::Silent { noticed });
    b.delete("{x}").await.unwrap();
    a.hear_by(Delivery::Now);
    b.delete("{y}").await.unwrap();
    assert!(heard_a.taken().is_empty(), "both lost");
    assert_eq!(a.announcements(), Some(1), "while it still looks up");
    pass(noticed).await;
    assert_eq!(a.announcements(), Some(2));
    b.delete("{z}").await.unwrap();
    assert_eq!(heard_a.taken().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_history_names_the_call_each_request_was_sent_for() {
    let (server, [(a, _), _]) = two();
    attributed(7, a.get("{k}", false)).await.unwrap();
    a.get("{k}", false).await.unwrap();
    let calls: Vec<Option<u64>> = server
        .history()
        .into_iter()
        .filter_map(|stamped| match stamped.event {
            Event::Sent { call, .. } => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(calls, [Some(7), None]);
    let last = server.history().last().map(|stamped| stamped.seq);
    assert_eq!(
        Some(server.stamp().0),
        last.map(|seq| seq + 1),
        "numbered after the last event"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_process_sends_nothing_and_hears_nothing() {
    let (server, [(a, heard_a), (b, _)]) = two();
    a.kill();
    assert!(a.dead() && !a.reachable());
    assert!(matches!(a.delete("{k}").await, Err(StoreError::Skipped)));
    b.delete("{k}").await.unwrap();
    assert!(heard_a.taken().is_empty());
    assert!(server.history().iter().any(|s| s.event == Event::Killed { process: 0 }));
}

#[tokio::test(start_paused = true)]
async fn without_a_subscription_announcements_are_lost_until_it_subscribes_again() {
    let (_server, [(a, heard_a), (b, _)]) = two();
    a.unsubscribe();
    assert_eq!(a.announcements(), None);
    b.delete("{k}").await.unwrap();
    a.resubscribe();
    assert_eq!(a.announcements(), Some(2));
    assert!(heard_a.taken().is_empty());
    b.delete("{k}").await.unwrap();
    assert_eq!(heard_a.taken().len(), 1);
}

/// Skips every request, loses every announcement, keeps a breaker open for a second.
struct Hostile;

impl Script for Hostile {
    fn fault(&mut self, _: usize, _: &Op) -> Option<Fault> {
        Some(Fault::Skipped)
    }
    fn delivery(&mut self, _: usize, _: &Announcement) -> Delivery {
        Delivery::Lost
    }
    fn outage(&mut self, _: usize) -> Duration {
        Duration::from_secs(1)
    }
}

#[tokio::test(start_paused = true)]
async fn what_a_test_does_not_script_by_hand_is_drawn_from_its_script() {
    let (server, [(a, heard_a), (b, _)]) = two();
    server.draw_from(Box::new(Hostile));
    assert!(matches!(a.get("{k}", false).await, Err(StoreError::Skipped)));
    a.fail_next(
        OpKind::Get,
        Fault::Slow {
            before: Duration::ZERO,
            after: Duration::ZERO,
        },
    );
    assert!(a.get("{k}", false).await.is_ok(), "scripted by hand");
    b.hear_by(Delivery::Now);
    b.fail_next(
        OpKind::Delete,
        Fault::Slow {
            before: Duration::ZERO,
            after: Duration::ZERO,
        },
    );
    b.delete("{k}").await.unwrap();
    assert!(heard_a.taken().is_empty(), "drawn: lost");
}
