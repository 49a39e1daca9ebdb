//! Every Redis operation of the store contract, written once. A [`Topology`] supplies
//! only the connection to send it on and supervises that connection (reconnects, the
//! breaker, the announcement subscription); this file holds the commands, the cache's
//! deadline on each of them, and how their replies are read.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use invalidation::evalsha;
use migrating::migrating;
use redis::aio::ConnectionLike;
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};

mod invalidation;
mod migrating;

use super::announce::Announcement;
use super::masters::{self, Masters};
use super::replication::Durability;
use super::scripts::{BUMP_TAG, ClaimScripts, DELETE, FENCE_SCRIPTS, LEASE_SCRIPTS, TAG_VERSIONS};
use super::{Acquire, Claim, Entry, Expected, Limits, Store, StoreError, parse_version};
use crate::key::{fence_key, lease_key};
use crate::random::random_u64;
use crate::telemetry::{self, Op};
use crate::time::millis;

/// How a Redis deployment is reached: the connection an operation is sent on, and
/// what the operation's outcome says about it.
pub(crate) trait Topology: fmt::Debug + Send + Sync + 'static {
    type Connection: ConnectionLike + Send + 'static;
    /// What `record` needs to know which connection (and node) an outcome is about.
    type Ticket: Send;

    /// Whether one command may name keys of different hash slots (not on a cluster).
    const CROSS_SLOT: bool;

    /// A connection for one operation on `key` (a full key), with its ticket; `None`
    /// while the cache fails open for that key (not connected, or its breaker is open).
    fn connection(&self, key: &str) -> Option<(Self::Connection, Self::Ticket)>;

    /// How one operation sent with `ticket` went.
    fn record(&self, ticket: &Self::Ticket, verdict: Verdict);

    /// The connection an invalidation of `key` is sent on, with its ticket, and what it
    /// is sent with: `ROLE`, and `WAIT` when the master it reaches has replicas that must
    /// acknowledge it. A topology that waits must not hand out the connection of
    /// [`connection`](Self::connection): a `WAIT` counts only the writes of its own
    /// connection, and blocks it. `None` while the cache fails open.
    ///
    /// By default the operations' connection, and the write alone
    /// ([`Durability::Unchecked`]): a topology that knows its masters' replicas says so.
    fn invalidation_connection(&self, key: &str) -> Option<(Self::Connection, Self::Ticket, Durability)> {
        self.connection(key)
            .map(|(connection, ticket)| (connection, ticket, Durability::Unchecked))
    }

    /// How many replicas the `ROLE` of an invalidation sent with `ticket` listed. By
    /// default, nothing is kept.
    fn saw_replicas(&self, ticket: &Self::Ticket, replicas: usize) {
        let _ = (ticket, replicas);
    }

    /// See [`Store::announcements`].
    fn announcements(&self) -> Option<u64>;

    /// See [`Store::reachable`].
    fn reachable(&self) -> bool;

    /// Sends `command` where the redirection `redirect` (`ASK` or `MOVED`) says, with its
    /// `ASKING` in the same write. By default an error: only a cluster redirects.
    fn follow(
        &self,
        connection: Self::Connection,
        redirect: &RedisError,
        command: redis::Cmd,
    ) -> impl Future<Output = Result<Value, RedisError>> + Send {
        let _ = (connection, command);
        let error = RedisError::from((
            ErrorKind::Client,
            "a redirection from a server that is not a cluster node",
            redirect.to_string(),
        ));
        async move { Err(error) }
    }
}

/// What one operation's outcome says about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answered in good time.
    Healthy,
    /// Counts towards opening the breaker: no answer in time, an answer slower than half
    /// the deadline, or a server that is loading, failing over or down.
    Failing,
    /// Replace the connection now: it is gone, or it talks to a demoted primary.
    Broken,
    /// About this one command (a script error, `NOPERM`, `TRYAGAIN` on keys of a slot
    /// a resharding has split): the connection is fine.
    Neutral,
}

/// What a Redis store knows besides its topology.
#[derive(Debug)]
struct Settings {
    limits: Limits,
    /// The announcement channel.
    channel: String,
    /// This cache's id in the invalidations it announces.
    origin: u64,
}

/// The store over any Redis topology. Cheap to clone.
pub(crate) struct RedisStore<T> {
    topology: Arc<T>,
    settings: Arc<Settings>,
}

impl<T> Clone for RedisStore<T> {
    fn clone(&self) -> Self {
        Self {
            topology: self.topology.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for RedisStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.topology)
            .field("channel", &self.settings.channel)
            .finish_non_exhaustive()
    }
}

impl<T: Topology> RedisStore<T> {
    pub(crate) fn new(topology: Arc<T>, limits: Limits, channel: String, origin: u64) -> Self {
        Self {
            topology,
            settings: Arc::new(Settings {
                limits,
                channel,
                origin,
            }),
        }
    }

    /// Runs one operation on `key` (its first key, which names the node on a cluster)
    /// under the cache's deadline and tells the topology how it went.
    async fn run<R, F>(&self, op: Op, key: &str, send: impl FnOnce(T::Connection) -> F) -> Result<R, StoreError>
    where
        F: Future<Output = Result<R, RedisError>>,
    {
        let Some((connection, ticket)) = self.topology.connection(key) else {
            return Err(StoreError::Skipped);
        };
        let deadline = self.settings.limits.op_timeout;
        let started = Instant::now();
        let result = tokio::time::timeout(deadline, send(connection)).await;
        let took = started.elapsed();
        telemetry::redis_op(op, took);
        let (verdict, result) = match result {
            // A Redis that answers, but barely within the deadline, is failing too.
            Ok(Ok(value)) if took > deadline / 2 => (Verdict::Failing, Ok(value)),
            Ok(Ok(value)) => (Verdict::Healthy, Ok(value)),
            Ok(Err(e)) => (verdict(&e), Err(StoreError::Redis(e))),
            Err(_elapsed) => (Verdict::Failing, Err(StoreError::Timeout(deadline))),
        };
        self.topology.record(&ticket, verdict);
        result
    }

    /// `get_tagged` where the value and its tags live in different slots (a cluster):
    /// the value and each tag's version are read at once, each from its own node, so
    /// the read is not atomic. It never serves a value older than a tag bump that
    /// completed before the call: such a bump is on the tag's master before this read is
    /// sent, so the version read is the new one and differs from the one the value
    /// carries (a miss). A bump racing the read is concurrent with the call, which may
    /// then see either side of it, as on one server.
    async fn get_tagged_across_slots(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        let versions = tag_keys.iter().map(|tag_key| {
            self.run(Op::GetTagged, tag_key, move |mut c| async move {
                redis::cmd("GET")
                    .arg(tag_key)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
        });
        let (entry, versions) = tokio::try_join!(self.get(key, timed), try_join_all(versions))?;
        let versions = versions
            .into_iter()
            .map(|v| v.as_deref().and_then(parse_version))
            .collect();
        Ok((entry, versions))
    }

    /// `read`, and the `PTTL` of `key`, in one round trip (a pipeline).
    async fn with_pttl<R: redis::FromRedisValue>(
        &self,
        op: Op,
        read: redis::Cmd,
        key: &str,
    ) -> Result<(R, i64), StoreError> {
        self.run(op, key, move |mut c| async move {
            let mut pipe = redis::pipe();
            pipe.add_command(read).cmd("PTTL").arg(key);
            pipe.query_async(&mut c).await
        })
        .await
    }

    /// The versions of `tag_keys`, kept alive for `life`; missing ones created if `create`.
    /// One script for all of them; on a cluster, where tags live in different slots, one
    /// per tag, sent at once (each tag's version is independent of the others').
    async fn tag_versions(
        &self,
        tag_keys: &[String],
        life: Duration,
        create: bool,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if T::CROSS_SLOT || tag_keys.len() <= 1 {
            return self.tag_versions_together(tag_keys, life, create).await;
        }
        let each = tag_keys
            .iter()
            .map(|tag_key| self.tag_versions_together(std::slice::from_ref(tag_key), life, create));
        Ok(try_join_all(each).await?.into_iter().flatten().collect())
    }

    /// [`tag_versions`](Self::tag_versions) in one script, for tags a command may name together.
    async fn tag_versions_together(
        &self,
        tag_keys: &[String],
        life: Duration,
        create: bool,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let Some(first) = tag_keys.first() else {
            return Ok(Vec::new());
        };
        let candidates: Vec<String> = if create {
            tag_keys.iter().map(|_| random_u64().to_string()).collect()
        } else {
            Vec::new()
        };
        let candidates = candidates.as_slice();
        let replies: Vec<Option<Vec<u8>>> = self
            .run(Op::TagVersions, first, |mut c| async move {
                let mut invocation = TAG_VERSIONS.prepare_invoke();
                invocation.key(tag_keys).arg(millis(life)).arg(candidates);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        if replies.len() != tag_keys.len() {
            return Err(unexpected(&Value::Int(i64::try_from(replies.len()).unwrap_or(-1))));
        }
        Ok(replies
            .into_iter()
            .map(|v| v.as_deref().and_then(parse_version))
            .collect())
    }

    /// Runs one of `claim`'s scripts (`KEYS = [value, claim]`, `ARGV[1]` its token, then
    /// what `args` adds); true if the claim held.
    async fn on_claim(
        &self,
        op: Op,
        script: &redis::Script,
        claim: &Claim,
        args: impl Fn(&mut redis::ScriptInvocation<'_>) + Send + Sync,
    ) -> Result<bool, StoreError> {
        let token = claim.token();
        let args = &args;
        let held: i64 = self
            .run(op, &token.key, |mut c| async move {
                let mut invocation = script.key(&token.key);
                invocation.key(&token.claim_key).arg(&token.token);
                args(&mut invocation);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(held == 1)
    }

    /// Runs a script that gives `claim` up announcing `announcement` (release, clear);
    /// true if the claim held.
    async fn give_up(
        &self,
        script: &redis::Script,
        claim: &Claim,
        announcement: Announcement,
    ) -> Result<bool, StoreError> {
        let channel = self.settings.channel.as_str();
        let announcement = announcement.encode();
        self.on_claim(Op::Release, script, claim, |invocation| {
            invocation.arg(channel).arg(announcement.as_slice());
        })
        .await
    }
}

fn scripts(claim: &Claim) -> &'static ClaimScripts {
    match claim {
        Claim::Lease(_) => &LEASE_SCRIPTS,
        Claim::Fence(_) => &FENCE_SCRIPTS,
    }
}

impl<T: Topology + Masters> RedisStore<T> {
    /// The `INFO` text of every master.
    pub(crate) async fn server_info(&self) -> Result<Vec<String>, StoreError> {
        masters::info(&*self.topology, self.settings.limits.connect_timeout).await
    }
}

impl<T: Topology> Store for RedisStore<T> {
    async fn get(&self, key: &str, timed: bool) -> Result<Option<Entry>, StoreError> {
        if !timed {
            let bytes: Option<Vec<u8>> = self
                .run(Op::Get, key, |mut c| async move {
                    redis::cmd("GET").arg(key).query_async(&mut c).await
                })
                .await?;
            return Ok(bytes.map(|bytes| Entry { bytes, remaining: None }));
        }
        let mut read = redis::cmd("GET");
        read.arg(key);
        let (bytes, pttl): (Option<Vec<u8>>, i64) = self.with_pttl(Op::Get, read, key).await?;
        Ok(timed_entry(bytes, pttl))
    }

    async fn get_tagged(
        &self,
        key: &str,
        tag_keys: &[String],
        timed: bool,
    ) -> Result<(Option<Entry>, Vec<Option<u64>>), StoreError> {
        if !T::CROSS_SLOT {
            return self.get_tagged_across_slots(key, tag_keys, timed).await;
        }
        let mut read = redis::cmd("MGET");
        read.arg(key).arg(tag_keys);
        let (replies, pttl): (Vec<Option<Vec<u8>>>, Option<i64>) = if timed {
            let (replies, pttl) = self.with_pttl(Op::GetTagged, read, key).await?;
            (replies, Some(pttl))
        } else {
            let replies = self
                .run(
                    Op::GetTagged,
                    key,
                    |mut c| async move { read.query_async(&mut c).await },
                )
                .await?;
            (replies, None)
        };
        let mut replies = replies.into_iter();
        let value = replies.next().flatten();
        let versions = replies.map(|v| v.as_deref().and_then(parse_version)).collect();
        let entry = match pttl {
            Some(pttl) => timed_entry(value, pttl),
            None => value.map(|bytes| Entry { bytes, remaining: None }),
        };
        Ok((entry, versions))
    }

    async fn touch_tags(&self, tag_keys: &[String], life: Duration) -> Result<Vec<Option<u64>>, StoreError> {
        self.tag_versions(tag_keys, life, false).await
    }

    async fn tag_versions_for_load(&self, tag_keys: &[String], life: Duration) -> Result<Vec<u64>, StoreError> {
        let versions = self.tag_versions(tag_keys, life, true).await?;
        versions
            .into_iter()
            .map(|version| version.ok_or_else(|| unexpected(&Value::Nil)))
            .collect()
    }

    async fn bump_tag(&self, tag_key: &str) -> Result<(), StoreError> {
        let settings = &*self.settings;
        let announcement = Announcement::TagBumped {
            origin: settings.origin,
            tag_key: tag_key.to_owned(),
        }
        .encode();
        let version = random_u64().to_string();
        let mut write = evalsha(&BUMP_TAG, &[tag_key]);
        write
            .arg(&version)
            .arg(millis(settings.limits.tag_ttl))
            .arg(&settings.channel)
            .arg(announcement.as_slice());
        match self.invalidate(Op::BumpTag, tag_key, &BUMP_TAG, write).await {
            Err(StoreError::Redis(e)) if migrating(&e) => {
                self.bump_tag_while_migrating(tag_key, &version, &announcement).await
            }
            bumped => bumped,
        }
    }

    async fn acquire(&self, claim: &Claim, duration: Duration, expected: Expected<'_>) -> Result<Acquire, StoreError> {
        let token = claim.token();
        let script = &scripts(claim).acquire;
        let limit = self.settings.limits.value_limit;
        let (expects, bytes): (u8, &[u8]) = match expected {
            Expected::Nothing => (0, &[]),
            Expected::Bytes(bytes) => (1, bytes),
        };
        let reply: Value = self
            .run(Op::Acquire, &token.key, |mut c| async move {
                script
                    .key(&token.key)
                    .key(&token.claim_key)
                    .arg(&token.token)
                    .arg(millis(duration))
                    .arg(limit)
                    .arg(expects)
                    .arg(bytes)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        read_acquire(reply)
    }

    async fn fill(&self, claim: &Claim, bytes: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let channel = self.settings.channel.as_str();
        let announcement = Announcement::Filled {
            key: claim.key().to_owned(),
        }
        .encode();
        self.on_claim(Op::Fill, &scripts(claim).fill, claim, |invocation| {
            invocation
                .arg(bytes)
                .arg(millis(ttl))
                .arg(channel)
                .arg(announcement.as_slice());
        })
        .await
    }

    async fn clear(&self, claim: &Claim) -> Result<bool, StoreError> {
        let released = Announcement::Released {
            key: claim.key().to_owned(),
        };
        self.give_up(&scripts(claim).clear, claim, released).await
    }

    async fn extend(&self, claim: &Claim, duration: Duration) -> Result<bool, StoreError> {
        self.on_claim(Op::Extend, &scripts(claim).extend, claim, |invocation| {
            invocation.arg(millis(duration));
        })
        .await
    }

    async fn release(&self, claim: &Claim) -> Result<bool, StoreError> {
        let released = Announcement::Released {
            key: claim.key().to_owned(),
        };
        self.give_up(&scripts(claim).release, claim, released).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let settings = &*self.settings;
        let announcement = Announcement::Deleted {
            origin: settings.origin,
            key: key.to_owned(),
        }
        .encode();
        let mut write = evalsha(&DELETE, &[key, &lease_key(key), &fence_key(key)]);
        write.arg(&settings.channel).arg(announcement.as_slice());
        match self.invalidate(Op::Delete, key, &DELETE, write).await {
            Err(StoreError::Redis(e)) if migrating(&e) => self.delete_while_migrating(key, &announcement).await,
            deleted => deleted,
        }
    }

    fn announcements(&self) -> Option<u64> {
        self.topology.announcements()
    }

    fn reachable(&self) -> bool {
        self.topology.reachable()
    }
}

/// Reads the reply of an `acquire` script.
fn read_acquire(reply: Value) -> Result<Acquire, StoreError> {
    let mut items = match reply {
        Value::Array(items) => items.into_iter(),
        other => return Err(unexpected(&other)),
    };
    match (items.next(), items.next()) {
        (Some(Value::Int(1)), Some(Value::BulkString(bytes))) => match items.next() {
            Some(Value::Int(pttl)) => timed_entry(Some(bytes), pttl)
                .map(Acquire::Value)
                .ok_or_else(|| unexpected(&Value::Int(pttl))),
            other => Err(unexpected(&other.unwrap_or(Value::Nil))),
        },
        (Some(Value::Int(2)), Some(Value::Int(over))) => Ok(Acquire::Won {
            over_expected: over == 1,
        }),
        (Some(Value::Int(3)), Some(Value::Int(ms))) => Ok(Acquire::Held {
            remaining: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
        }),
        (first, _) => Err(unexpected(&first.unwrap_or(Value::Nil))),
    }
}

/// What an error says about the connection it came on.
pub(crate) fn verdict(e: &RedisError) -> Verdict {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::ReadOnly) => Verdict::Broken,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown | ServerErrorKind::ClusterDown,
        ) => Verdict::Failing,
        _ if e.is_connection_dropped() || e.is_unrecoverable_error() => Verdict::Broken,
        _ if e.is_io_error() || e.is_timeout() => Verdict::Failing,
        _ => Verdict::Neutral,
    }
}

/// An entry read with its `PTTL`: -2 (gone by the time of the `PTTL`) is a miss, -1 (no
/// expiry) has no remaining time.
fn timed_entry(bytes: Option<Vec<u8>>, pttl: i64) -> Option<Entry> {
    let bytes = bytes?;
    match pttl {
        -2 => None,
        _ => Some(Entry {
            bytes,
            remaining: u64::try_from(pttl).ok().map(Duration::from_millis),
        }),
    }
}

fn unexpected(reply: &Value) -> StoreError {
    StoreError::Redis(unexpected_redis(reply))
}

fn unexpected_redis(reply: &Value) -> RedisError {
    RedisError::from((
        ErrorKind::UnexpectedReturnType,
        "unexpected reply from a redis-cached script",
        format!("{reply:?}"),
    ))
}
