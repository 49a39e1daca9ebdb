//! Invalidations that survive a failover: a delete or tag bump is sent on the
//! topology's invalidation connection, in one pipeline with `ROLE` and, when the master
//! has replicas, `WAIT 1`, and counts as done only when a master took it and, if it has
//! replicas, one acknowledged it.

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use super::{RedisStore, Topology, Verdict, unexpected_redis, verdict};
use crate::store::StoreError;
use crate::store::replication::{Durability, Role};
use crate::telemetry::{self, Op};

impl<T: Topology> RedisStore<T> {
    /// Sends an invalidation of `key` (`write`: an `EVALSHA` of `script`) on the
    /// topology's invalidation connection, in one pipeline with `WAIT 1` when the master
    /// has replicas, and `ROLE`. `Ok` only when a master took the write and, if it has
    /// replicas, one of them acknowledged it within the deadline; otherwise the
    /// invalidation is not confirmed and the caller retries or reports it.
    pub(super) async fn invalidate(
        &self,
        op: Op,
        key: &str,
        script: &redis::Script,
        write: redis::Cmd,
    ) -> Result<(), StoreError> {
        let Some((mut connection, ticket, durability)) = self.topology.invalidation_connection(key) else {
            return Err(StoreError::Skipped);
        };
        let started = Instant::now();
        let deadline = self.settings.limits.op_timeout;
        // The wait ends well before the deadline, so its answer (even "no replica") comes
        // back in time. `WAIT 0` would block for ever.
        let wait_ms = u64::try_from((deadline * 3 / 4).as_millis()).unwrap_or(u64::MAX).max(1);
        let sent = send_invalidation(&mut connection, script, &write, durability, wait_ms);
        // A wait that takes long says nothing about the master (Redis ends a `WAIT` only
        // at its next timer tick, up to 100 ms late, and the next invalidation queues
        // behind it): only errors, and no answer without a wait, count against the
        // connection. Hits, on the other connection, judge the master.
        let sent = tokio::time::timeout(deadline, sent).await;
        telemetry::redis_op(op, started.elapsed());
        let (verdict, result) = match sent {
            Ok(Ok(confirmation)) => (Verdict::Healthy, Ok(confirmation)),
            Ok(Err(e)) => (verdict(&e), Err(StoreError::Redis(e))),
            Err(_) if durability == Durability::Replicated => (Verdict::Neutral, Err(unconfirmed_after(wait_ms))),
            Err(_) => (Verdict::Failing, Err(StoreError::Timeout(deadline))),
        };
        let confirmation = match result {
            Ok(Confirmation {
                role: Some(Role::Other),
                ..
            }) => {
                // A demoted master that still took the write: replace the connection.
                self.topology.record(&ticket, Verdict::Broken);
                return Err(unconfirmed(
                    "the server that took the invalidation is no longer a master (it was demoted)",
                ));
            }
            other => {
                self.topology.record(&ticket, verdict);
                other?
            }
        };
        let Some(role) = confirmation.role else {
            return Ok(());
        };
        self.topology.saw_replicas(&ticket, role.replicas());
        let acknowledged = match confirmation.acknowledged {
            // A master with replicas it was not known to have: wait now (the wait covers
            // the connection's earlier writes), within what is left of the deadline.
            None if role.replicas() > 0 => {
                let left = deadline.saturating_sub(started.elapsed());
                Some(wait_for_replica(&mut connection, wait_ms, left).await)
            }
            acknowledged => acknowledged,
        };
        match acknowledged {
            Some(0) => Err(unconfirmed_after(wait_ms)),
            _ => Ok(()),
        }
    }
}

/// An `EVALSHA` of `script` on `keys`, its arguments to be added.
pub(super) fn evalsha(script: &redis::Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// What the master said of an invalidation.
#[derive(Debug)]
struct Confirmation {
    /// `None` when not asked ([`Durability::Unchecked`]).
    role: Option<Role>,
    /// How many replicas acknowledged it; `None` when it had none to wait for.
    acknowledged: Option<i64>,
}

/// Sends `write`, then `WAIT 1 <wait_ms>` (for [`Durability::Replicated`]), then `ROLE`
/// (unless [`Durability::Unchecked`]), in one pipeline on the invalidation connection;
/// loads `script` and sends again if Redis does not have it (a pipeline has no
/// `invoke_async` retry).
async fn send_invalidation<C: ConnectionLike + Send>(
    connection: &mut C,
    script: &redis::Script,
    write: &redis::Cmd,
    durability: Durability,
    wait_ms: u64,
) -> Result<Confirmation, RedisError> {
    let mut pipe = redis::pipe();
    pipe.add_command(write.clone());
    if durability == Durability::Replicated {
        pipe.cmd("WAIT").arg(1).arg(wait_ms);
    }
    if durability != Durability::Unchecked {
        pipe.cmd("ROLE");
    }
    let replies: Vec<Value> = match pipe.query_async(connection).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(connection).await?;
            pipe.query_async(connection).await?
        }
        replies => replies?,
    };
    let mut replies = replies.into_iter().skip(1);
    let acknowledged = if durability == Durability::Replicated {
        match replies.next() {
            Some(Value::Int(acknowledged)) => Some(acknowledged),
            other => return Err(unexpected_redis(&other.unwrap_or(Value::Nil))),
        }
    } else {
        None
    };
    let role = replies.next().map(|reply| Role::read(&reply));
    Ok(Confirmation { role, acknowledged })
}

/// How many replicas acknowledge the connection's writes within `wait_ms` (and `left`,
/// the time the call has left); 0 when the wait fails.
async fn wait_for_replica<C: ConnectionLike + Send>(connection: &mut C, wait_ms: u64, left: Duration) -> i64 {
    let mut wait = redis::cmd("WAIT");
    wait.arg(1).arg(wait_ms);
    match tokio::time::timeout(left, wait.query_async::<i64>(connection)).await {
        Ok(Ok(acknowledged)) => acknowledged,
        _ => 0,
    }
}

/// An invalidation that no replica acknowledged within `wait_ms`.
fn unconfirmed_after(wait_ms: u64) -> StoreError {
    StoreError::Redis(RedisError::from((
        ErrorKind::Client,
        "no replica acknowledged the invalidation in time; a failover could lose it",
        format!("waited {wait_ms} ms"),
    )))
}

/// An invalidation that cannot count as done, for this reason.
fn unconfirmed(why: &'static str) -> StoreError {
    StoreError::Redis(RedisError::from((ErrorKind::Client, why)))
}
