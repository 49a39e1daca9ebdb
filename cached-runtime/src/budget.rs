//! A call's total Redis time. Each operation has its own deadline (`op_timeout`); a call
//! as a whole may also spend at most its budget waiting on Redis, so a Redis that is slow
//! but answers cannot stretch a miss across many near-deadline replies. Time spent in the
//! loader, or waiting for another caller's load, does not count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::StoreError;

#[derive(Debug)]
pub(crate) struct Budget {
    limit: Duration,
    /// Nanoseconds spent so far (atomic only so a call's future stays `Send`).
    spent: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            spent: AtomicU64::new(0),
        }
    }

    pub(crate) fn spend(&self, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.spent.fetch_add(nanos, Ordering::Relaxed);
    }

    fn left(&self) -> Duration {
        self.limit
            .saturating_sub(Duration::from_nanos(self.spent.load(Ordering::Relaxed)))
    }

    /// Runs a Redis operation within what is left; once it is spent, the operation is not
    /// sent and the call fails open.
    pub(crate) async fn run<T>(&self, op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let left = self.left();
        if left.is_zero() {
            return Err(StoreError::OverBudget {
                limit: self.limit,
                sent: false,
            });
        }
        let started = Instant::now();
        let result = tokio::time::timeout(left, op).await;
        self.spend(started.elapsed());
        result.unwrap_or(Err(StoreError::OverBudget {
            limit: self.limit,
            sent: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spent_budget_sends_nothing() {
        let budget = Budget::new(Duration::from_millis(30));
        let slow = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, StoreError>(())
        };
        assert!(budget.run(slow).await.is_ok());
        let too_slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, StoreError>(())
        };
        assert!(matches!(
            budget.run(too_slow).await,
            Err(StoreError::OverBudget { sent: true, .. })
        ));
        let mut sent = false;
        let never = async {
            sent = true;
            Ok::<_, StoreError>(())
        };
        assert!(matches!(
            budget.run(never).await,
            Err(StoreError::OverBudget { sent: false, .. })
        ));
        assert!(!sent);
    }
}
