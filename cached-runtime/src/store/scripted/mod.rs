//! A store for tests of the read path: the semantics of the Lua scripts (values with a
//! ttl, a lease as one token, a fence as a set of tokens, fenced fill, clear, extend and
//! release, a delete that voids lease and fence, tag versions) on tokio's clock, so
//! paused time drives every expiry.
//!
//! Several processes share one [`Server`], each through its own [`ScriptedStore`]
//! (its own connection, breaker, subscription and listener), as processes share one
//! Redis. And it misbehaves on demand: a request can be skipped, lost, left unanswered
//! or slowed ([`Fault`]); a breaker can open; each announcement can reach each process
//! at once, late, never, or when the test says ([`Delivery`]). Every request, with the
//! call it was sent for ([`attributed`]), and everything it did is kept in a history.

mod calls;
mod data;
mod history;
mod op;
mod script;
mod server;
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

pub(crate) use calls::attributed;
pub(crate) use history::{Answer, Effect, Event, Stamped};
pub(crate) use op::{Op, OpKind};
pub(crate) use script::{Delivery, Fault, Script};
pub(crate) use server::Server;

use super::{Acquire, Claim, Entry, Expected, Listener, Store, StoreError};
use op::Reply;
use server::Job;

/// One process's handle on a [`Server`].
#[derive(Clone, Debug)]
pub(crate) struct ScriptedStore {
    server: Server,
    process: usize,
}

impl ScriptedStore {
    /// A new process on `server`: what it hears goes to `listener`; its invalidations
    /// name `origin`.
    pub(crate) fn connect(server: &Server, listener: Arc<dyn Listener>, origin: u64) -> Self {
        let process = server.attach(listener, origin);
        Self {
            server: server.clone(),
            process,
        }
    }

    pub(crate) fn process(&self) -> usize {
        self.process
    }

    /// The next request of this kind from this process meets `fault`.
    pub(crate) fn fail_next(&self, kind: OpKind, fault: Fault) {
        self.server.queue(self.process, kind, fault);
    }

    /// Announcements reach this process this way from now on.
    pub(crate) fn hear_by(&self, delivery: Delivery) {
        self.server.deliver(self.process, delivery);
    }

    /// Hands over the announcements held for this process (see [`Delivery::Held`]).
    pub(crate) fn deliver_held(&self, reversed: bool) {
        self.server.deliver_held(self.process, reversed);
    }

    /// Opens this process's breaker; it closes after `outage`, or at
    /// [`recover`](Self::recover).
    pub(crate) fn trip(&self, outage: Option<Duration>) {
        self.server.trip(self.process, outage);
    }

    pub(crate) fn recover(&self) {
        self.server.recover(self.process);
    }

    /// This process subscribes again (its subscription's number changes).
    pub(crate) fn resubscribe(&self) {
        self.server.resubscribe(self.process);
    }

    /// This process has no subscription until it subscribes again.
    pub(crate) fn unsubscribe(&self) {
        self.server.unsubscribe(self.process);
    }

    /// This process dies: nothing it sends arrives any more.
    pub(crate) fn kill(&self) {
        self.server.kill(self.process);
    }

    pub(crate) fn dead(&self) -> bool {
        self.server.dead(self.process)
    }

    /// Sends `op` and waits for its answer, as the script says it goes.
    async fn request(&self, op: Op) -> Result<Reply, StoreError> {
        let call = calls::current();
        let timeout = self.server.op_timeout();
        let fault = self.server.send(self.process, call, &op)?;
        let (before, after) = match fault {
            Some(Fault::Skipped) => {
                self.server.returned(self.process, call, &op, Answer::Skipped, false);
                return Err(StoreError::Skipped);
            }
            Some(Fault::Lost) => return self.no_answer(call, &op, timeout).await,
            Some(Fault::Unanswered) => {
                self.enqueue(call, op.clone(), Duration::ZERO, None);
                return self.no_answer(call, &op, timeout).await;
            }
            Some(Fault::Slow { before, after }) => (before, after),
            None => (Duration::ZERO, Duration::ZERO),
        };
        let started = Instant::now();
        let (reply, replied) = oneshot::channel();
        self.enqueue(call, op.clone(), before, Some(reply));
        let answered = async {
            let reply = replied.await.ok()?;
            tokio::time::sleep(after).await;
            Some(reply)
        };
        match tokio::time::timeout(timeout, answered).await {
            Ok(Some(reply)) => {
                let answer = match reply {
                    Reply::Acquire(Acquire::Won { .. }) => Answer::Won,
                    _ => Answer::Ok,
                };
                let slow = started.elapsed() > timeout / 2;
                self.server.returned(self.process, call, &op, answer, slow);
                Ok(reply)
            }
            // The process died with the request on its way.
            Ok(None) => {
                self.server.returned(self.process, call, &op, Answer::Skipped, false);
                Err(StoreError::Skipped)
            }
            Err(_elapsed) => {
                self.server.returned(self.process, call, &op, Answer::Timeout, false);
                Err(StoreError::Timeout(timeout))
            }
        }
    }

    fn enqueue(&self, call: Option<u64>, op: Op, before: Duration, reply: Option<oneshot::Sender<Reply>>) {
        let arrives = Instant::now() + before;
        let job = Job {
            op,
            call,
            arrives,
            reply,
        };
        self.server.enqueue(self.process, job);
    }

    async fn no_answer<T>(&self, call: Option<u64>, op: &Op, timeout: Duration) -> Result<T, StoreError> {
        tokio::time::sleep(timeout).await;
        self.server.returned(self.process, call, op, Answer::Timeout, false);
        Err(StoreError::Timeout(timeout))
    }
}

fn held(reply: Reply) -> bool {
    match reply {
        Reply::Held(held) => held,
        other => unreachable!("{other:?} answers no claim script"),
    }
}

impl Store for ScriptedStore {
    async fn get(&self, key: &str, timed: bool) -> Result<Option<Entry>, StoreError> {
        let op = Op::Get {
            key: key.to_owned(),
            timed,
        };
        match self.request(op).await? {
            Reply::Entry(entry) => Ok(entry),
            other => unreachable!("{other:?} answers no GET"),
        }
    }

    async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        let op = Op::GetTagged {
            key: key.to_owned(),
            tag_keys: tag_keys.to_vec(),
            timed,
        };
        match self.request(op).await? {
            Reply::Tagged(entry, versions) => Ok((entry, versions)),
            other => unreachable!("{other:?} answers no MGET"),
        }
    }

    async fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Result<Vec<Option<u64>>, StoreError> {
        let op = Op::TouchTags {
            tag_keys: tag_keys.to_vec(),
            life,
        };
        match self.request(op).await? {
            Reply::Versions(versions) => Ok(versions),
            other => unreachable!("{other:?} answers no tag versions script"),
        }
    }

    async fn tag_versions_for_load(&self, tag_keys: &[String], life: Duration) -> Result<Vec<u64>, StoreError> {
        let op = Op::TagVersionsForLoad {
            tag_keys: tag_keys.to_vec(),
            life,
        };
        match self.request(op).await? {
            Reply::Created(versions) => Ok(versions),
            other => unreachable!("{other:?} answers no tag versions script"),
        }
    }

    async fn bump_tag(&self, tag_key: &str) -> Result<(), StoreError> {
        let op = Op::BumpTag {
            tag_key: tag_key.to_owned(),
        };
        self.request(op).await.map(drop)
    }

    async fn acquire(&self, claim: &Claim, duration: Duration, expected: Expected<'_>) -> Result<Acquire, StoreError> {
        let expected = match expected {
            Expected::Nothing => None,
            Expected::Bytes(bytes) => Some(bytes.to_vec()),
        };
        let op = Op::Acquire {
            claim: claim.clone(),
            duration,
            expected,
        };
        match self.request(op).await? {
            Reply::Acquire(acquire) => Ok(acquire),
            other => unreachable!("{other:?} answers no lease request"),
        }
    }

    async fn fill(&self, claim: &Claim, bytes: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let op = Op::Fill {
            claim: claim.clone(),
            bytes: bytes.to_vec(),
            ttl,
        };
        self.request(op).await.map(held)
    }

    async fn clear(&self, claim: &Claim) -> Result<bool, StoreError> {
        self.request(Op::Clear { claim: claim.clone() }).await.map(held)
    }

    async fn extend(&self, claim: &Claim, duration: Duration) -> Result<bool, StoreError> {
        let op = Op::Extend {
            claim: claim.clone(),
            duration,
        };
        self.request(op).await.map(held)
    }

    async fn release(&self, claim: &Claim) -> Result<bool, StoreError> {
        self.request(Op::Release { claim: claim.clone() }).await.map(held)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.request(Op::Delete { key: key.to_owned() }).await.map(drop)
    }

    fn announcements(&self) -> Option<u64> {
        self.server.announcements(self.process)
    }

    fn reachable(&self) -> bool {
        self.server.reachable(self.process)
    }
}
