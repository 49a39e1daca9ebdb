//! tokio's `watch`, as far as coalescing uses it, waking its receivers in the order
//! they began to wait. tokio's spreads its receivers over eight `Notify`s picked at
//! random, so the order in which a flight's waiters wake, and with it a simulated
//! schedule, would not replay from its seed. A leaf module, for tests only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::sync::lock;

#[derive(Debug)]
struct Shared<T> {
    value: Mutex<T>,
    changed: Notify,
    closed: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

#[derive(Debug)]
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// The sender is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl<T> Sender<T> {
    pub(crate) fn new(value: T) -> Self {
        let shared = Shared {
            value: Mutex::new(value),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    pub(crate) fn subscribe(&self) -> Receiver<T> {
        Receiver {
            shared: self.shared.clone(),
        }
    }

    pub(crate) fn send_replace(&self, value: T) -> T {
        let old = std::mem::replace(&mut *lock(&self.shared.value), value);
        self.shared.changed.notify_waiters();
        old
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
    }
}

impl<T> Receiver<T> {
    /// The value once `ready` holds for it; `Closed` if the sender went first.
    pub(crate) async fn wait_for(&mut self, mut ready: impl FnMut(&T) -> bool) -> Result<MutexGuard<'_, T>, Closed> {
        loop {
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let value = lock(&self.shared.value);
                if ready(&value) {
                    return Ok(value);
                }
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(Closed);
            }
            changed.await;
        }
    }
}
