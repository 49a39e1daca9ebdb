//! What the near-cache tests share on every topology: a database of one number, a policy
//! with a near max age, and waits for a near hit or for an old value to stop being served.
//! Two caches stand for two processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis_cached::{Cache, Policy};

/// How long a change may take to reach another process's near cache before a test
/// fails: far above the sub-millisecond it takes, for a busy machine.
pub const WINDOW: Duration = Duration::from_secs(2);

pub static PRODUCT: Policy = Policy::new("product", Duration::from_secs(300)).near(Duration::from_secs(60));

/// A value the loader reads: the database, the same number for every key.
#[derive(Clone, Default)]
pub struct Db(Arc<AtomicU32>);

impl Db {
    pub fn set(&self, value: u32) {
        self.0.store(value, Ordering::SeqCst);
    }

    pub async fn load(&self) -> Result<Option<u32>, ()> {
        Ok(Some(self.0.load(Ordering::SeqCst)))
    }
}

pub async fn read(cache: &Cache, db: &Db, key: &str) -> Option<u32> {
    cache.get_or_load(&PRODUCT, key, db.load()).await.unwrap()
}

/// Reads until the value is served from the near cache.
pub async fn until_near_hit(cache: &Cache, db: &Db, key: &str) -> Option<u32> {
    let deadline = Instant::now() + super::PATIENCE;
    loop {
        let before = cache.stats().near_hits;
        let value = read(cache, db, key).await;
        if cache.stats().near_hits > before {
            return value;
        }
        assert!(Instant::now() < deadline, "{key} never became a near hit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until `cache` no longer serves `old`; returns how long that took.
pub async fn until_not_served(cache: &Cache, db: &Db, key: &str, old: u32) -> Duration {
    let took = until_none_served(cache, db, &[(key.to_owned(), Instant::now())], old).await;
    println!("{key}: the old value stopped being served after {took:?}");
    took
}

/// Reads each of the `changed` keys until `cache` serves `old` for none of them, each
/// within [`WINDOW`] of when it changed; returns the longest a key took.
pub async fn until_none_served(cache: &Cache, db: &Db, changed: &[(String, Instant)], old: u32) -> Duration {
    let mut served: Vec<&(String, Instant)> = changed.iter().collect();
    let mut longest = Duration::ZERO;
    while !served.is_empty() {
        let mut still = Vec::new();
        for change @ (key, at) in served {
            if read(cache, db, key).await == Some(old) {
                assert!(
                    at.elapsed() < WINDOW,
                    "the old value of {key} (one of {} keys changed) was still served after {WINDOW:?}",
                    changed.len()
                );
                still.push(change);
            } else {
                longest = longest.max(at.elapsed());
            }
        }
        served = still;
        tokio::task::yield_now().await;
    }
    longest
}
