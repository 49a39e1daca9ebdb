//! Invalidations while a key's slot moves between two cluster masters (a resharding).
//!
//! Until the move ends, the slot's keys may be split between the two, and a command
//! that names several of them gets `TRYAGAIN`; one that names a key the source no longer
//! has is redirected with `ASK`. The invalidation scripts name several keys, so here
//! they are done one key per command instead, each redirection followed, then
//! announced. Reads and fills simply fail open meanwhile.

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

use super::{RedisStore, Topology};
use crate::key::{fence_key, lease_key};
use crate::store::StoreError;
use crate::telemetry::Op;
use crate::time::millis;

/// Whether `e` says the key's slot is moving between cluster masters.
pub(super) fn migrating(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::TryAgain | ServerErrorKind::Ask | ServerErrorKind::Moved)
    )
}

impl<T: Topology> RedisStore<T> {
    /// `delete`, one key per command, the claims first: once they are gone no load in
    /// flight can fill, so the value, deleted last, stays deleted; a load that claims
    /// the key after that started after the write it reflects.
    pub(super) async fn delete_while_migrating(&self, key: &str, announcement: &[u8]) -> Result<(), StoreError> {
        let (lease_key, fence_key) = (lease_key(key), fence_key(key));
        let claims = [lease_key.as_str(), fence_key.as_str()].map(|claim_key| {
            self.on_one_key(Op::Delete, claim_key, move || {
                let mut del = redis::cmd("DEL");
                del.arg(claim_key);
                del
            })
        });
        let [lease, fence] = claims;
        tokio::try_join!(lease, fence)?;
        self.on_one_key(Op::Delete, key, || {
            let mut del = redis::cmd("DEL");
            del.arg(key);
            del
        })
        .await?;
        self.publish(Op::Delete, key, announcement).await
    }

    /// `bump_tag` as a `SET` of the new version, then its announcement.
    pub(super) async fn bump_tag_while_migrating(
        &self,
        tag_key: &str,
        version: &str,
        announcement: &[u8],
    ) -> Result<(), StoreError> {
        let life = millis(self.settings.limits.tag_ttl);
        self.on_one_key(Op::BumpTag, tag_key, || {
            let mut set = redis::cmd("SET");
            set.arg(tag_key).arg(version).arg("PX").arg(life);
            set
        })
        .await?;
        self.publish(Op::BumpTag, tag_key, announcement).await
    }

    /// Runs a command of one key. A redirection that redis-rs gave up on is followed
    /// here: its `ASKING` is a command of its own on a connection other calls share, so
    /// under load another call's command can come between it and the one it was for.
    async fn on_one_key(
        &self,
        op: Op,
        key: &str,
        command: impl Fn() -> redis::Cmd + Send + Sync,
    ) -> Result<Value, StoreError> {
        let command = &command;
        let sent = self
            .run(op, key, move |mut c| async move {
                command().query_async::<Value>(&mut c).await
            })
            .await;
        match sent {
            Err(StoreError::Redis(e)) if e.redirect_node().is_some() => {
                let topology = &*self.topology;
                self.run(op, key, move |c| async move { topology.follow(c, &e, command()).await })
                    .await
            }
            sent => sent,
        }
    }

    /// Announces on the channel (any node of a cluster hears it); `key` names the shard
    /// whose breaker the outcome counts for.
    async fn publish(&self, op: Op, key: &str, announcement: &[u8]) -> Result<(), StoreError> {
        let channel = &self.settings.channel;
        let _receivers: i64 = self
            .run(op, key, |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(announcement)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }
}
