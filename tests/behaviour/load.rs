//! Callers that keep calling a cached fn while a test fails a server, moves a slot or
//! switches a master, counting what a user would see.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Db;

/// What the callers saw.
#[derive(Debug)]
pub struct Seen {
    pub calls: u64,
    /// Results that are not the loader's (an error, or another key's value).
    pub wrong: u64,
    pub slowest: Duration,
}

/// Callers of `Db::product` over a range of ids, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    wrong: Arc<AtomicU64>,
    slowest_micros: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `callers` tasks, each calling `db.product` over `ids` in turn, 2 ms apart.
    pub fn start(db: &Arc<Db>, callers: u64, ids: RangeInclusive<u64>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicU64::new(0));
        let slowest_micros = Arc::new(AtomicU64::new(0));
        let tasks = (0..callers)
            .map(|caller| {
                let (db, ids) = (db.clone(), ids.clone());
                let (stop, calls, wrong, slowest) =
                    (stop.clone(), calls.clone(), wrong.clone(), slowest_micros.clone());
                tokio::spawn(async move {
                    let mut n = caller;
                    let count = ids.end() - ids.start() + 1;
                    while !stop.load(Ordering::SeqCst) {
                        let id = ids.start() + n % count;
                        n += 1;
                        let started = Instant::now();
                        let result = db.product(id).await;
                        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        slowest.fetch_max(took, Ordering::SeqCst);
                        // Any generation: tests write while callers read.
                        if !matches!(&result, Ok(Some(p)) if p.id == id) {
                            wrong.fetch_add(1, Ordering::SeqCst);
                        }
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            calls,
            wrong,
            slowest_micros,
            tasks,
        }
    }

    /// Stops the callers and says what they saw.
    pub async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a caller panicked");
        }
        Seen {
            calls: self.calls.load(Ordering::SeqCst),
            wrong: self.wrong.load(Ordering::SeqCst),
            slowest: Duration::from_micros(self.slowest_micros.load(Ordering::SeqCst)),
        }
    }
}
